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

/** A module that writes `text` (newlines included) to stdout and exits 0: a CGI head a WAGI function sends. */
export function printing(text: string): Uint8Array {
  return wat(`(module
    (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (data (i32.const 64) "${text.replaceAll("\n", "\\0a")}")
    (func (export "_start")
      (i32.store (i32.const 0) (i32.const 64))
      (i32.store (i32.const 4) (i32.const ${text.length}))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`);
}

/** A minimal WASI `_start` body around `body`, with one page of memory. */
export const command = (body: string, extra = "") => `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ${extra}
  (func (export "_start") ${body}))`;
