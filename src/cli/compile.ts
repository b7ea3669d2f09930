// `thaw compile FILE.wasm [--json] [--timeout MS]`: build (or find) the
// artifact and print where it is and how big its parts are. `--timeout`
// bounds the compiler's tools (default 120 s). The server runs this as its
// compile child with `--json` and `--build-dir DIR` (a directory it names,
// so it can remove it if it has to kill the child); both are for that use.

import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { CompileError, compile, DEFAULT_COMPILE_TIMEOUT_MS } from "../compiler/compile.ts";
import { Engine } from "../engine/engine.ts";
import { defaultDataDir } from "../config.ts";
import { reportCompileProgress, UsageError } from "./common.ts";

export async function compileCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      data: { type: "string" },
      json: { type: "boolean" },
      timeout: { type: "string" },
      "build-dir": { type: "string" },
    },
  });
  const file = positionals[0];
  if (!file) throw new UsageError("thaw compile needs a FILE.wasm");
  const timeoutMs = values.timeout ? Number(values.timeout) : DEFAULT_COMPILE_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new UsageError("--timeout takes a positive number of milliseconds");
  const engine = new Engine(undefined, 1, 1);
  let a;
  try {
    a = await compile(readFileSync(file), {
      dataDir: values.data ?? defaultDataDir(),
      engine,
      progress: values.json ? undefined : reportCompileProgress(basename(file)),
      timeoutMs,
      buildDir: values["build-dir"],
    });
  } catch (e) {
    if (!(values.json && e instanceof CompileError)) throw e;
    console.log(JSON.stringify({ error: { code: e.code, message: e.message, ...e.details } }));
    return 1;
  } finally {
    engine.close();
  }
  if (values.json) {
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
