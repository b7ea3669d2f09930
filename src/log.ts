// Structured logs: one JSON object per line on stdout. THAW_LOG_LEVEL picks
// the least severe level written (debug, info, warn, error, silent).

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type Level = keyof typeof LEVELS;

export class Logger {
  private readonly min: number;

  constructor(level: string = process.env.THAW_LOG_LEVEL ?? "info") {
    this.min = LEVELS[level as Level] ?? LEVELS.info;
  }

  private write(level: Level, msg: string, fields: Record<string, unknown>): void {
    if (LEVELS[level] < this.min) return;
    process.stdout.write(`${JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields })}\n`);
  }

  debug(msg: string, fields: Record<string, unknown> = {}) { this.write("debug", msg, fields); }
  info(msg: string, fields: Record<string, unknown> = {}) { this.write("info", msg, fields); }
  warn(msg: string, fields: Record<string, unknown> = {}) { this.write("warn", msg, fields); }
  error(msg: string, fields: Record<string, unknown> = {}) { this.write("error", msg, fields); }
}
