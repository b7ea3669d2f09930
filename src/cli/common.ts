// Pieces every CLI command shares. This file and everything a client command
// imports must stay light (no compiler, engine, server, ioredis): `thaw --help`
// and the client commands start in a few tens of milliseconds only because
// nothing heavy is loaded on their path (test/cli-start.test.ts checks it).
//
// Errors: a command throws UsageError (bad arguments, exit 2) or CliError
// (anything else it can explain in one line, exit 1 unless told otherwise);
// src/cli.ts prints either as `thaw: MESSAGE`. Anything else is a bug and
// keeps its stack trace.

import { isatty } from "node:tty";

export class UsageError extends Error {
  override name = "UsageError";
}

export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly exitCode = 1,
    /** Printed after the one-line message (a build log, a module's stderr). */
    readonly detail?: string,
  ) {
    super(message);
  }
}

/**
 * Text a tenant's module may have chosen (its stderr, names inside an error
 * message) made safe for a terminal: control characters other than newline
 * and tab are shown as \xNN, so they cannot move the cursor, clear the
 * screen or retitle the window.
 */
export const visible = (s: string) => s.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);

/** A function name as the server accepts it (src/server/schemas.ts, FunctionName). */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const NAME_RULE = "1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit";

export function checkName(name: string, what = "function name"): string {
  if (!NAME_PATTERN.test(name)) throw new UsageError(`invalid ${what} ${JSON.stringify(name)}: ${NAME_RULE}`);
  return name;
}

/** The one function NAME a command takes among its positional arguments, checked. */
export function onlyName(positionals: readonly string[]): string {
  const [name, ...extra] = positionals;
  if (!name) throw new UsageError("needs the NAME of a function");
  if (extra.length) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  return checkName(name);
}

/** K=V strings as an environment; the first = splits, so values may hold more. */
export function parseEnv(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--env expects K=V, got ${JSON.stringify(pair)}`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

/** A positive integer flag value, or a usage error naming the flag. */
export function positiveInt(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`--${flag} takes a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

/** All of stdin. Only called when stdin is a pipe or file (or `@-` asked for it). */
export async function readStdin(): Promise<Uint8Array> {
  return Bun.stdin.bytes();
}

/** Whether stdin is something other than a terminal: a pipe, a file, /dev/null. */
export const stdinIsPiped = () => !isatty(0);

/** Prints each compile step with its elapsed time on stderr. */
export function reportCompileProgress(name: string): (step: string) => void {
  const started = performance.now();
  return (step) => {
    const s = ((performance.now() - started) / 1000).toFixed(1);
    process.stderr.write(`thaw: ${name}: ${step} (${s}s)\n`);
  };
}
