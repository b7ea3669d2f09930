// Hostile modules against the engine, through the real pipeline: each module
// is WAT assembled by wat2wasm, compiled by the real compiler (wasm2c + cc,
// snapshot made by libthaw) and called through libthaw. Each one once
// crashed or hung the process, or let one call see another's data; every
// test checks the outcome a tenant sees (status, output) and, where state
// is involved, that the next call starts from the snapshot.

import { describe, expect, test } from "bun:test";
import { compile } from "../src/compiler/compile.ts";
import { DEFAULT_LIMITS, type Limits } from "../src/engine/engine.ts";
import { DATA_DIR, sharedEngine, text } from "./helpers.ts";
import { wat } from "./wat.ts";

const enc = (s: string) => new TextEncoder().encode(s);

async function load(source: string, limits: Partial<Limits> = {}) {
  const a = await compile(wat(source), { dataDir: DATA_DIR, engine: sharedEngine() });
  return sharedEngine().load(a.soPath, a.snapshotPath, { ...DEFAULT_LIMITS, ...limits });
}

/** `$print`: writes an i32 as unsigned decimal and a space to stdout, using
 * memory [0, 49) as scratch. Needs the $fd_write import. */
const PRINT = `
  (func $print (param $v i32) (local $p i32)
    (local.set $p (i32.const 48))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $digit (local.get $v)))
    (i32.store8 (i32.const 48) (i32.const 32))
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (i32.sub (i32.const 49) (local.get $p)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))`;

const FD_WRITE = `(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))`;
const FD_READ = `(import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))`;
/** Reads one byte of stdin into address 64 and leaves it on the stack (0 at EOF). */
const READ_BYTE = `
  (i32.store (i32.const 56) (i32.const 64))
  (i32.store (i32.const 60) (i32.const 1))
  (drop (call $fd_read (i32.const 0) (i32.const 56) (i32.const 1) (i32.const 52)))
  (i32.load8_u (i32.const 64))`;

describe("a 4 GiB memory", () => {
  const fourGiB = `(module ${FD_WRITE} ${FD_READ}
    (memory 1 65536)
    (func (export "_start")
      (call $print (memory.grow (i32.const 65535)))
      (call $print (memory.size))
      (call $print (i32.load8_u (i32.const -1)))
      (i32.store8 (i32.const -1) (i32.const 90))
      (call $print (i32.load8_u (i32.const -1)))
      ;; stdin "x": an access straddling the end of memory
      (if (i32.eq ${READ_BYTE} (i32.const 120)) (then (drop (i32.load (i32.const -2))))))
    ${PRINT})`;

  test("grows to 65,536 pages, stores at its last byte, and the next call sees zero there", async () => {
    const mod = await load(fourGiB, { memoryMiB: 4096 });
    const inst = mod.restore();
    const engine = sharedEngine();
    for (let i = 0; i < 2; i++) {
      const r = await engine.call(inst, { resetAfter: true });
      expect(r.status).toBe("ok");
      expect(r.instanceReset).toBe(true);
      expect(r.memoryPages).toBe(65536);
      // old size, new size, last byte before and after the store
      expect(text(r.stdout)).toBe("1 65536 0 90 ");
    }
    const oob = await engine.call(inst, { stdin: enc("x"), resetAfter: true });
    expect(oob.status).toBe("out_of_bounds");
    const after = await engine.call(inst, {});
    expect(text(after.stdout)).toBe("1 65536 0 90 ");
    inst.free();
    mod.release();
  });
});

