// `thaw compile FILE.wasm [--json] [--timeout MS]`: build (or find) the
// artifact and print where it is and how big its parts are. `--timeout`
// bounds the compiler's tools (default 120 s). The server runs this as its
// compile child with `--json` and `--build-dir DIR` (a directory it names,
// so it can remove it if it has to kill the child); both are for that use.

import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { CompileError, compile, DEFAULT_COMPILE_TIMEOUT_MS } from "../compiler/compile.ts";
import { Engine, EngineError } from "../engine/engine.ts";
import { defaultDataDir } from "../config.ts";
import { parse } from "./commands.ts";
import { CliError, reportCompileProgress, UsageError } from "./common.ts";

/** The compiler's and engine's errors as the one line src/cli.ts prints (it does not import their classes). */
export function localError(e: unknown): unknown {
  if (e instanceof CompileError) return new CliError(`${e.code}: ${e.message}`, 1, e.details.log ? `thaw: build log (tail):\n${e.details.log}` : undefined);
  if (e instanceof EngineError) return new CliError(`engine: ${e.message}`);
  return e;
}

export async function compileCommand(argv: string[]): Promise<number> {
  const args = parse("compile", argv);
  const file = args.positionals[0];
  if (!file) throw new UsageError("needs a FILE.wasm");
  const timeout = args.string("timeout");
  const timeoutMs = timeout ? Number(timeout) : DEFAULT_COMPILE_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new UsageError("--timeout takes a positive number of milliseconds");
  const json = args.flag("json");
  const module = readFileSync(file);
  const engine = new Engine(undefined, 1, 1);
  let a;
  try {
    a = await compile(module, {
      dataDir: args.string("data") ?? defaultDataDir(),
      engine,
      progress: json ? undefined : reportCompileProgress(basename(file)),
      timeoutMs,
      buildDir: args.string("build-dir"),
    });
  } catch (e) {
    if (!(json && e instanceof CompileError)) throw localError(e);
    console.log(JSON.stringify({ error: { code: e.code, message: e.message, ...e.details } }));
    return 1;
  } finally {
    engine.close();
  }
  if (json) {
    console.log(JSON.stringify({ path: a.soPath, snapshot: a.snapshotPath, cached: a.cached, ...a.meta }));
    return 0;
  }
  const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  console.log(a.soPath);
  console.log(`  snapshot  ${a.snapshotPath}`);
  console.log(`  module    ${kib(a.meta.moduleBytes)}`);
  console.log(`  native    ${kib(a.meta.codeBytes)} code, ${kib(a.meta.objectBytes)} object`);
  console.log(`  memory    ${kib(a.meta.snapshotBytes)} initialized${a.meta.hasInitialize ? " (wizer.initialize ran)" : ""}`);
  console.log(`  ${a.cached ? "cached" : `compiled in ${a.meta.compileMs} ms`}`);
  return 0;
}
