// Structured logs: one JSON object per line on stdout. THAW_LOG_LEVEL picks
// the least severe level written (debug, info, warn, error, silent).
//
// Lines are buffered and written once per event-loop turn: a call log line
// per request would otherwise be a write(2) per request, the largest cost
// of logging under load. Whatever is buffered is written at exit.

import { writeSync } from "node:fs";

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type Level = keyof typeof LEVELS;

export class Logger {
  private readonly min: number;
  private buffer: string[] = [];
  private scheduled = false;

  constructor(level: string = process.env.THAW_LOG_LEVEL ?? "info") {
    this.min = LEVELS[level as Level] ?? LEVELS.info;
    process.on("exit", () => this.flush());
  }

  enabled(level: Level): boolean {
    return LEVELS[level] >= this.min;
  }

  private write(level: Level, msg: string, fields: Record<string, unknown>): void {
    if (LEVELS[level] < this.min) return;
    this.buffer.push(`${JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields })}\n`);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.scheduled = false;
    if (!this.buffer.length) return;
    const data = this.buffer.join("");
    this.buffer = [];
    writeSync(1, data);
  }

  debug(msg: string, fields: Record<string, unknown> = {}) { this.write("debug", msg, fields); }
  info(msg: string, fields: Record<string, unknown> = {}) { this.write("info", msg, fields); }
  warn(msg: string, fields: Record<string, unknown> = {}) { this.write("warn", msg, fields); }
  error(msg: string, fields: Record<string, unknown> = {}) { this.write("error", msg, fields); }
}
