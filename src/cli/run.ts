// `thaw run FILE.wasm [--stdin FILE] [--env K=V]... [--timeout MS]
// [--memory MIB] [-- ARG...]`: compile (cached) and run one call, the way
// `wasmtime run` does, so harnesses written for other WASI runtimes drive
// thaw unchanged. The module's stdin is --stdin's file, else whatever is
// piped in (`echo x | thaw run f.wasm`), else nothing when stdin is a
// terminal. It is read whole before the call: a module cannot read
// interactively. The module's stdout and stderr are written through; the
// exit status is the module's exit code, or TRAP_EXIT_BASE + the trap's
// number (below 128) with the trap named on stderr.

import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { compile } from "../compiler/compile.ts";
import { DEFAULT_LIMITS, Engine, TRAP_KINDS } from "../engine/engine.ts";
import { defaultDataDir } from "../config.ts";
import { parse } from "./commands.ts";
import { parseEnv, readStdin, reportCompileProgress, stdinIsPiped, UsageError } from "./common.ts";
import { localError } from "./compile.ts";

export const TRAP_EXIT_BASE = 100;

export async function runCommand(argv: string[]): Promise<number> {
  const dash = argv.indexOf("--");
  const own = dash >= 0 ? argv.slice(0, dash) : argv;
  const moduleArgs = dash >= 0 ? argv.slice(dash + 1) : [];
  const args = parse("run", own);
  const [file, ...extra] = args.positionals;
  if (!file) throw new UsageError("needs a FILE.wasm");
  const timeout = args.string("timeout");
  const memory = args.string("memory");
  const timeoutMs = timeout ? Number(timeout) : DEFAULT_LIMITS.timeoutMs;
  const memoryMiB = memory ? Number(memory) : DEFAULT_LIMITS.memoryMiB;
  if (!(timeoutMs >= 0) || !(memoryMiB > 0)) throw new UsageError("--timeout and --memory take positive numbers");
  const env = parseEnv(args.list("env"));
  const module = readFileSync(file);
  const stdinFile = args.string("stdin");
  const stdin = stdinFile ? readFileSync(stdinFile) : stdinIsPiped() ? await readStdin() : new Uint8Array(0);

  const engine = new Engine(undefined, 1, 16);
  try {
    const artifact = await compile(module, {
      dataDir: args.string("data") ?? defaultDataDir(),
      engine,
      progress: args.flag("quiet") || !process.stderr.isTTY ? undefined : reportCompileProgress(basename(file)),
    });
    const mod = engine.load(artifact.soPath, artifact.snapshotPath, { ...DEFAULT_LIMITS, timeoutMs, memoryMiB });
    const instance = mod.restore();
    const result = await engine.call(instance, { stdin, argv0: basename(file), args: [...extra, ...moduleArgs], env });
    instance.free();
    mod.release();
    await writeAll(process.stdout, result.stdout);
    await writeAll(process.stderr, result.stderr);
    if (result.status !== "ok") {
      process.stderr.write(`thaw: trap: ${result.status}\n`);
      return TRAP_EXIT_BASE + TRAP_KINDS.indexOf(result.status);
    }
    return result.exitCode & 0xff;
  } catch (e) {
    throw localError(e);
  } finally {
    engine.close();
  }
}

function writeAll(stream: NodeJS.WriteStream, data: Uint8Array): Promise<void> {
  if (!data.length) return Promise.resolve();
  return new Promise((resolve) => (stream.write(data) ? resolve() : stream.once("drain", resolve)));
}
