// The reference engine: Bun's own WebAssembly (JavaScriptCore) running the
// wrapped command through a minimal WASI shim, in a child process of its
// own. A child because JSC cannot be interrupted: neither a Worker's
// terminate() nor anything else stops wasm code spinning in a loop, so a
// hanging reference would hang the fuzzer; killing a process always works.
//
//   bun scripts/fuzz/reference.ts FILE.wasm   -> one line of JSON: an Outcome
//
// The shim gives what a WASI command needs to start and report: fd_write
// (stdout kept, stderr dropped: it is not compared), proc_exit, and empty
// args and environment. Nothing
// else is linked, so a module importing more fails to instantiate here;
// thaw-side refusals of such modules happen before the reference runs.

import { readFileSync } from "node:fs";
import { runChild } from "./child.ts";
import { jscTrapClass, type Outcome } from "./outcome.ts";

class Exit {
  constructor(readonly code: number) {}
}

export function runReference(bytes: Uint8Array): Outcome {
  const out: Uint8Array[] = [];
  let memory: WebAssembly.Memory | undefined;
  const view = () => new DataView(memory!.buffer);
  const wasi = {
    fd_write(fd: number, iovs: number, count: number, written: number): number {
      const v = view();
      let n = 0;
      for (let i = 0; i < count; i++) {
        const ptr = v.getUint32(iovs + i * 8, true);
        const len = v.getUint32(iovs + i * 8 + 4, true);
        if (fd === 1) out.push(new Uint8Array(memory!.buffer, ptr, len).slice());
        n += len;
      }
      v.setUint32(written, n, true);
      return fd === 1 || fd === 2 ? 0 : 8; // EBADF otherwise
    },
    proc_exit(code: number): never {
      throw new Exit(code);
    },
    args_sizes_get: (argc: number, size: number) => (view().setUint32(argc, 0, true), view().setUint32(size, 0, true), 0),
    args_get: () => 0,
    environ_sizes_get: (count: number, size: number) => (view().setUint32(count, 0, true), view().setUint32(size, 0, true), 0),
    environ_get: () => 0,
  };
  const stdout = () => Buffer.concat(out).toString("latin1");

  let instance: WebAssembly.Instance;
  try {
    instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { wasi_snapshot_preview1: wasi });
  } catch (e) {
    return { kind: "trap", trap: "instantiation", detail: String(e), stdout: "" };
  }
  memory = instance.exports.memory as WebAssembly.Memory;
  try {
    (instance.exports._start as () => void)();
    return { kind: "exit", code: 0, stdout: stdout() };
  } catch (e) {
    if (e instanceof Exit) return { kind: "exit", code: e.code, stdout: stdout() };
    const message = (e as Error).message ?? String(e);
    return { kind: "trap", trap: jscTrapClass(message), detail: message, stdout: stdout() };
  }
}

/**
 * The parent's side. Past `timeoutMs` the module ran out of time, which is
 * the `exhausted` class (outcome.ts); a child that fails otherwise is a
 * harness problem, reported as the unmatched trap class `other` so the
 * module is saved and looked at.
 */
export async function referenceInChild(file: string, timeoutMs: number): Promise<Outcome> {
  const r = await runChild([process.execPath, import.meta.path, file], timeoutMs);
  if (r.timedOut) return { kind: "trap", trap: "exhausted", detail: `no answer in ${timeoutMs} ms`, stdout: "" };
  if (r.exitCode !== 0)
    return { kind: "trap", trap: "other", detail: `reference failed (${r.signal ?? r.exitCode}): ${r.stderr.slice(-2000)}`, stdout: "" };
  return JSON.parse(r.stdout.toString("utf8")) as Outcome;
}

if (import.meta.main) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: bun scripts/fuzz/reference.ts FILE.wasm");
  process.stdout.write(`${JSON.stringify(runReference(readFileSync(file)))}\n`);
}
