// Hostile modules against the engine's limits, through the real pipeline
// (wat2wasm, wasm2c, cc, snapshot) and the real libthaw: native stack
// exhaustion must be a trap, and a timeout must hold inside host calls that
// a module makes as long as it can.

import { describe, expect, test } from "bun:test";
import { CompileError, compile } from "../src/compiler/compile.ts";
import { DEFAULT_LIMITS, type Limits } from "../src/engine/engine.ts";
import { RESULT } from "../src/engine/native.ts";
import { DATA_DIR, sharedEngine, text } from "./helpers.ts";
import { wat } from "./wat.ts";

const enc = (s: string) => new TextEncoder().encode(s);

async function load(source: string, limits: Partial<Limits> = {}) {
  const a = await compile(wat(source), { dataDir: DATA_DIR, engine: sharedEngine() });
  return sharedEngine().load(a.soPath, a.snapshotPath, { ...DEFAULT_LIMITS, ...limits });
}

// A recursive function whose frame holds `count` values live across its
// recursive call: loaded from memory (so the compiler cannot recompute
// them after the call) and folded into the result after it (which is
// stored, so no pass can drop them). Each level writes one "." to stdout,
// so the output's length is the depth reached. With stdin "deep" it
// recurses until something stops it, otherwise 100 levels, then prints
// "ok". With gcc -O3 the frame is 16,032 bytes for 2,000 i64 or f64 locals
// (-fstack-usage): the 20,000-level depth limit alone would let it use
// 320 MB of stack, and an executor thread has 128 MiB.
// `initialize` runs the deep recursion from wizer.initialize instead, on
// the thread that makes the snapshot.
function deepLocals(type: "i64" | "f64", count: number, initialize = false) {
  const asI64 = (v: string) => (type === "i64" ? v : `(i64.reinterpret_f64 ${v})`);
  const lines = (f: (i: number) => string) => Array.from({ length: count }, (_, i) => f(i)).join("\n    ");
  const deep = initialize ? "(i32.const 1)" : "(i32.eq (i32.load (i32.const 65508)) (i32.const 0x70656564))"; // "deep"
  return `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  ;; 65000: iovecs (stdin, ".", "ok\\n"), 65024: counts, 65508: stdin,
  ;; 65512: the text, 65520: the result, 65528: the depth to stop at
  (memory (export "memory") 1)
  (data (i32.const 65512) ".ok\\0a")
  (func $deep (param i64) (result i64) (local ${Array(count).fill(type).join(" ")})
    ${lines((i) => `(local.set ${i + 1} (${type}.load offset=${i * 8} (i32.and (i32.wrap_i64 (local.get 0)) (i32.const 56))))`)}
    (drop (call $fd_write (i32.const 1) (i32.const 65008) (i32.const 1) (i32.const 65024)))
    (if (i64.lt_u (local.get 0) (i64.load (i32.const 65528)))
      (then (local.set 0 (call $deep (i64.add (local.get 0) (i64.const 1))))))
    ${lines((i) => `(local.set 0 (i64.xor (local.get 0) ${asI64(`(local.get ${i + 1})`)}))`)}
    (local.get 0))
  (func $main
    (i32.store (i32.const 65000) (i32.const 65508)) (i32.store (i32.const 65004) (i32.const 4))
    (i32.store (i32.const 65008) (i32.const 65512)) (i32.store (i32.const 65012) (i32.const 1))
    (i32.store (i32.const 65016) (i32.const 65513)) (i32.store (i32.const 65020) (i32.const 3))
    (drop (call $fd_read (i32.const 0) (i32.const 65000) (i32.const 1) (i32.const 65024)))
    (i64.store (i32.const 65528) (select (i64.const 0x7fffffffffffffff) (i64.const 100) ${deep}))
    (i64.store (i32.const 65520) (call $deep (i64.const 0)))
    (drop (call $fd_write (i32.const 1) (i32.const 65016) (i32.const 1) (i32.const 65024))))
  ${initialize ? `(export "wizer.initialize" (func $main)) (func (export "_start"))` : `(export "_start" (func $main))`})`;
}

const depth = (r: { stdout: Uint8Array }) => text(r.stdout).replace("ok\n", "").length;

describe("native stack exhaustion", () => {
  for (const [type, count] of [["i64", 2000], ["f64", 2000]] as const)
    test(`recursion with ${count} ${type} locals live per frame traps stack_exhaustion`, async () => {
      const mod = await load(deepLocals(type, count));
      const inst = mod.restore();
      const engine = sharedEngine();
      const r = await engine.call(inst, { stdin: enc("deep") });
      expect(r.status).toBe("stack_exhaustion");
      // The stack floor stopped it, well before the depth limit, and after
      // most of the 128 MiB stack was in use.
      console.log(`${type} x ${count}: trapped at depth ${depth(r)}, ${((128 << 20) / depth(r) / 1024).toFixed(1)} KiB of stack per level`);
      expect(depth(r)).toBeLessThan(DEFAULT_LIMITS.maxCallDepth);
      expect(depth(r)).toBeGreaterThan(4000);
      // The same instance and a new one run normally afterwards.
      const again = await engine.call(inst, { stdin: enc("no") });
      expect(again.status).toBe("ok");
      expect(text(again.stdout)).toBe(`${".".repeat(101)}ok\n`);
      const fresh = mod.restore();
      expect((await engine.call(fresh, { stdin: enc("deep") })).status).toBe("stack_exhaustion");
      expect(fresh.reset()).toBe(true);
      expect((await engine.call(fresh, { stdin: enc("") })).status).toBe("ok");
      inst.free();
      fresh.free();
      mod.release();
    });

  test("thaw_call on the calling thread (Bun's main thread) traps too", async () => {
    const mod = await load(deepLocals("i64", 2000));
    const inst = mod.restore();
    const callHere = (stdin: string) => {
      const inputs = inst.prepare({ stdin: enc(stdin) }); // must outlive the call
      const rc = sharedEngine().lib.thaw_call(inst.handle, inst.request, inst.result);
      return { rc, inputs, status: Number(inst.result[RESULT.status]), depth: Number(inst.result[RESULT.stdoutLen]) };
    };
    const deep = callHere("deep");
    expect(deep.rc).toBe(0);
    expect(deep.status).toBe(8); // THAW_TRAP_STACK_EXHAUSTION
    // An 8 MiB main-thread stack holds a few hundred of these frames.
    expect(deep.depth).toBeGreaterThan(50);
    expect(callHere("no").status).toBe(0);
    inst.free();
    mod.release();
  });

  test("deep recursion in wizer.initialize fails the compile, not the process", async () => {
    let error: unknown;
    try {
      await compile(wat(deepLocals("i64", 2000, true)), { dataDir: DATA_DIR, engine: sharedEngine() });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CompileError);
    expect((error as CompileError).code).toBe("init_failed");
    expect((error as CompileError).message).toContain("stack_exhaustion");
  });
});

// A timeout that lands in a host function waits for it to return, so host
// functions must not run long whatever lengths the module passes them. The
// host aims at an overrun of a few milliseconds; the bound asserted leaves
// room for a loaded machine descheduling the worker (before slicing, these
// calls overran by 9.3 s and 0.7 s).
const MAX_OVERRUN_MS = 400;

describe("timeouts inside host calls", () => {
  async function timed(source: string, limits: Partial<Limits>, timeoutMs = 100) {
    const mod = await load(source, limits);
    const inst = mod.restore();
    const started = performance.now();
    const r = await sharedEngine().call(inst, { timeoutMs });
    const elapsed = performance.now() - started;
    inst.free();
    mod.release();
    return { r, elapsed, overrunMs: r.durationNs / 1e6 - timeoutMs };
  }

  test("random_get over 1 GiB of grown memory stops at a 100 ms timeout", async () => {
    const { r, elapsed, overrunMs } = await timed(
      `(module
        (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "_start")
          (drop (memory.grow (i32.const 16384)))
          (drop (call $random_get (i32.const 0) (i32.const 0x40000000)))))`,
      { memoryMiB: 1100 },
    );
    console.log(`random_get 1 GiB: timed out ${overrunMs.toFixed(1)} ms past its deadline (${elapsed.toFixed(0)} ms)`);
    expect(r.status).toBe("timeout");
    expect(r.instanceLost).toBe(true);
    expect(overrunMs).toBeLessThan(MAX_OVERRUN_MS);
    expect(elapsed).toBeLessThan(1000);
  });

  test("fd_write of 256M iovecs stops at a 100 ms timeout, and the output cap holds", async () => {
    // First a 32-byte write over the 10-byte cap, then 2 GiB of (empty)
    // iovecs: checking them alone takes seconds.
    const { r, elapsed, overrunMs } = await timed(
      `(module
        (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 100) "0123456789abcdefghijklmnopqrstuv")
        (func (export "_start")
          (i32.store (i32.const 8) (i32.const 100))
          (i32.store (i32.const 12) (i32.const 32))
          (drop (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 16)))
          (memory.fill (i32.const 0) (i32.const 0) (i32.const 65536))
          (drop (memory.grow (i32.const 32768)))
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0x10000000) (i32.const 0x80000000)))))`,
      { memoryMiB: 2100, stdoutCap: 10 },
    );
    console.log(`fd_write 256M iovecs: timed out ${overrunMs.toFixed(1)} ms past its deadline (${elapsed.toFixed(0)} ms)`);
    expect(r.status).toBe("timeout");
    expect(overrunMs).toBeLessThan(MAX_OVERRUN_MS);
    expect(elapsed).toBeLessThan(1000);
    expect(text(r.stdout)).toBe("0123456789");
    expect(r.stdoutTruncated).toBe(true);
  });

  test("one 256 MiB iovec is copied in slices up to the output cap", async () => {
    const { r } = await timed(
      `(module
        (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "_start")
          (drop (memory.grow (i32.const 4096)))
          (memory.fill (i32.const 64) (i32.const 120) (i32.const 0x10000000))
          (i32.store (i32.const 0) (i32.const 64))
          (i32.store (i32.const 4) (i32.const 0x10000000))
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
          (if (i32.ne (i32.load (i32.const 8)) (i32.const 0x10000000)) (then unreachable))))`,
      { memoryMiB: 300, stdoutCap: 3 << 20 },
      10_000,
    );
    expect(r.status).toBe("ok");
    expect(r.stdout.length).toBe(3 << 20);
    expect(r.stdout.every((b) => b === 120)).toBe(true);
    expect(r.stdoutTruncated).toBe(true);
  });
});
