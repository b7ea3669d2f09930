// Hostile and edge-case modules are written inline in the tests as WAT and
// assembled here with wabt's real wat2wasm, so each test shows the exact
// module it throws at thaw. Binary-level tricks WAT cannot express (odd
// names, custom sections) are built with the byte helpers below.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Assembles WAT text with wat2wasm (all features it knows enabled). */
export function wat(source: string): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "thaw-wat-"));
  try {
    writeFileSync(join(dir, "m.wat"), source);
    const r = spawnSync("wat2wasm", ["--enable-all", "m.wat", "-o", "m.wasm"], { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`wat2wasm failed: ${r.stderr}`);
    return new Uint8Array(readFileSync(join(dir, "m.wasm")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A minimal WASI `_start` body around `body`, with one page of memory. */
export const command = (body: string, extra = "") => `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ${extra}
  (func (export "_start") ${body}))`;
