// `thaw run FILE.wasm [--stdin FILE] [--env K=V]... [--timeout MS]
// [--memory MIB] [-- ARG...]`: compile (cached) and run one call, the way
// `wasmtime run` does, so harnesses written for other WASI runtimes drive
// thaw unchanged. The module's stdout and stderr are written through; the
// exit status is the module's exit code, or TRAP_EXIT_BASE + the trap's
// number (below 128) with the trap named on stderr.

import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { compile } from "../compiler/compile.ts";
import { DEFAULT_LIMITS, Engine, TRAP_KINDS } from "../engine/engine.ts";
import { defaultDataDir, parseEnvPairs } from "../config.ts";
import { reportCompileProgress, UsageError } from "./common.ts";

export const TRAP_EXIT_BASE = 100;

export const parseEnv = (pairs: string[]) =>
  parseEnvPairs(pairs, (pair) => new UsageError(`--env expects K=V, got "${pair}"`));

export async function runCommand(argv: string[]): Promise<number> {
  const dash = argv.indexOf("--");
  const own = dash >= 0 ? argv.slice(0, dash) : argv;
  const moduleArgs = dash >= 0 ? argv.slice(dash + 1) : [];
  const { values, positionals } = parseArgs({
    args: own,
    allowPositionals: true,
    options: {
      stdin: { type: "string" },
      env: { type: "string", multiple: true },
      timeout: { type: "string" },
      memory: { type: "string" },
      data: { type: "string" },
      quiet: { type: "boolean", short: "q" },
    },
  });
  const [file, ...extra] = positionals;
  if (!file) throw new UsageError("thaw run needs a FILE.wasm");
  const timeoutMs = values.timeout ? Number(values.timeout) : DEFAULT_LIMITS.timeoutMs;
  const memoryMiB = values.memory ? Number(values.memory) : DEFAULT_LIMITS.memoryMiB;
  if (!(timeoutMs >= 0) || !(memoryMiB > 0)) throw new UsageError("--timeout and --memory take positive numbers");

  const engine = new Engine(undefined, 1, 16);
  try {
    const artifact = await compile(readFileSync(file), {
      dataDir: values.data ?? defaultDataDir(),
      engine,
      progress: values.quiet || !process.stderr.isTTY ? undefined : reportCompileProgress(basename(file)),
    });
    const mod = engine.load(artifact.soPath, artifact.snapshotPath, { ...DEFAULT_LIMITS, timeoutMs, memoryMiB });
    const instance = mod.restore();
    const result = await engine.call(instance, {
      stdin: values.stdin ? readFileSync(values.stdin) : new Uint8Array(0),
      argv0: basename(file),
      args: [...extra, ...moduleArgs],
      env: parseEnv(values.env ?? []),
    });
    instance.free();
    mod.release();
    await writeAll(process.stdout, result.stdout);
    await writeAll(process.stderr, result.stderr);
    if (result.status !== "ok") {
      process.stderr.write(`thaw: trap: ${result.status}\n`);
      return TRAP_EXIT_BASE + TRAP_KINDS.indexOf(result.status);
    }
    return result.exitCode & 0xff;
  } finally {
    engine.close();
  }
}

function writeAll(stream: NodeJS.WriteStream, data: Uint8Array): Promise<void> {
  if (!data.length) return Promise.resolve();
  return new Promise((resolve) => (stream.write(data) ? resolve() : stream.once("drain", resolve)));
}
