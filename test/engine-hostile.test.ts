// Hostile modules against the engine, through the real pipeline: each module
// is WAT assembled by wat2wasm, compiled by the real compiler (wasm2c + cc,
// snapshot made by libthaw) and called through libthaw. Each one once
// crashed or hung the process, or let one call see another's data; every
// test checks the outcome a tenant sees (status, output) and, where state
// is involved, that the next call starts from the snapshot.

import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CompileError, compile } from "../src/compiler/compile.ts";
import { DEFAULT_LIMITS, type Engine, type Limits } from "../src/engine/engine.ts";
import { DATA_DIR, sharedEngine, text } from "./helpers.ts";
import { command, wat } from "./wat.ts";

const enc = (s: string) => new TextEncoder().encode(s);

/** The engine, with some limits of the snapshot's initialization replaced. */
function engineWithInitLimits(init: Partial<Limits>): Engine {
  const engine = sharedEngine();
  return {
    createSnapshot: (so: string, snap: string, limits: Limits) => engine.createSnapshot(so, snap, { ...limits, ...init }),
    load: (so: string, snap: string, limits: Limits) => engine.load(so, snap, limits),
  } as unknown as Engine;
}

async function load(source: string, limits: Partial<Limits> = {}) {
  const a = await compile(wat(source), { dataDir: DATA_DIR, engine: sharedEngine() });
  return sharedEngine().load(a.soPath, a.snapshotPath, { ...DEFAULT_LIMITS, ...limits });
}

/** Compiles into a data directory of its own, so that nothing comes from
 * the artifact cache (its key does not cover the limits, or the RSS). */
async function compileUncached(source: string, engine: Engine = sharedEngine()) {
  const dataDir = mkdtempSync(join(tmpdir(), "thaw-hostile-"));
  try {
    return await compile(wat(source), { dataDir, engine });
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Compiles a module whose initialization must fail; returns the error. */
async function initFailure(source: string, init: Partial<Limits> = {}) {
  const err = await compileUncached(source, engineWithInitLimits(init)).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CompileError);
  expect((err as CompileError).code).toBe("init_failed");
  return err as CompileError;
}

/** One call on a fresh instance of source. */
async function callOnce(source: string, limits: Partial<Limits> = {}, stdin = "") {
  const mod = await load(source, limits);
  const inst = mod.restore();
  try {
    return await sharedEngine().call(inst, { stdin: enc(stdin) });
  } finally {
    inst.free();
    mod.release();
  }
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

/** How far this process's peak RSS rose over its RSS while fn ran. */
async function peakRssGrowth(fn: () => Promise<unknown>): Promise<number> {
  const status = (key: string) =>
    Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync("/proc/self/status", "utf8"))?.[1]) * 1024;
  const before = status("VmRSS");
  // Resets the peak (VmHWM) to the current RSS: proc(5), clear_refs "5".
  writeFileSync("/proc/self/clear_refs", "5");
  await fn();
  return status("VmHWM") - before;
}

describe("function types are per module", () => {
  // 100 parameters: past the old fixed 64-slot signature (which aborted the
  // process). The two types differ only in the last parameter, so a
  // truncated signature would also make them one type.
  const params = (last: string) => `${"i64 ".repeat(99)}${last}`;
  const wide = command(
    `
    (if (i32.eqz (global.get $calls))
      (then (call $print (call_indirect (type $a) ${"(i64.const 1) ".repeat(100)} (i32.const 0))))
      (else (call $print (call_indirect (type $b) ${"(i64.const 1) ".repeat(99)} (f64.const 1) (i32.const 0)))))
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))`,
    `
    (type $a (func (param ${params("i64")}) (result i32)))
    (type $b (func (param ${params("f64")}) (result i32)))
    (global $calls (mut i32) (i32.const 0))
    (table 1 funcref)
    (elem (i32.const 0) $seven)
    (func $seven (type $a) (i32.const 7))
    ${PRINT}`,
  );

  test("a 100-parameter type works through call_indirect; a type differing in its last parameter traps", async () => {
    const mod = await load(wide);
    const inst = mod.restore();
    const engine = sharedEngine();
    const right = await engine.call(inst, {});
    expect(right.status).toBe("ok");
    expect(text(right.stdout)).toBe("7 ");
    // Same instance, not reset: the module now calls through the other type.
    const wrong = await engine.call(inst, {});
    expect(wrong.status).toBe("indirect_call");
    expect(inst.reset()).toBe(true);
    const again = await engine.call(inst, {});
    expect(text(again.stdout)).toBe("7 ");
    inst.free();
    mod.release();
  });

  test("thousands of distinct types: ids saved in the snapshot match the ones the loaded code registers", async () => {
    // 3,000 distinct unused types first, so the table's type gets id 3,001
    // and the registry grows through several rehashes.
    const vt = ["i32", "i64", "f32", "f64"];
    const types = Array.from({ length: 3000 }, (_, i) =>
      `(type (func (param ${Array.from({ length: 6 }, (_, d) => vt[Math.floor(i / 4 ** d) % 4]).join(" ")})))`,
    ).join("\n");
    const r = await callOnce(
      command(
        `(call $print (call_indirect (type $last) (i32.const 41) (i32.const 0)))
         (call $print (call_indirect (type $other) (i64.const 41) (i32.const 0)))`,
        `${types}
         (type $last (func (param i32) (result i32)))
         (type $other (func (param i64) (result i32)))
         (table 1 funcref)
         (elem (i32.const 0) $inc)
         (func $inc (type $last) (i32.add (local.get 0) (i32.const 1)))
         ${PRINT}`,
      ),
    );
    expect(r.status).toBe("indirect_call");
    expect(text(r.stdout)).toBe("42 ");
  }, 60_000);
});

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

describe("snapshots cost what initialization wrote", () => {
  test("a 4 GiB memory is snapshotted without touching the pages initialization never wrote", async () => {
    // The compiler refuses initial memories over 1 GiB, but the start
    // function may grow one to 4 GiB before the snapshot.
    const top = 0xffff0000 | 0;
    const source = `(module ${FD_WRITE}
      (memory 1 65536)
      (func $init
        (drop (memory.grow (i32.const 65535)))
        (i32.store (i32.const ${top}) (i32.const 0x706f74)))
      (start $init)
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const ${top}))
        (i32.store (i32.const 4) (i32.const 3))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`;
    const engine = sharedEngine();
    let faults = Number.NaN;
    const counting = {
      createSnapshot: (so: string, snap: string, limits: Limits) => {
        const before = process.resourceUsage().minorPageFault;
        const r = engine.createSnapshot(so, snap, limits);
        faults = process.resourceUsage().minorPageFault - before;
        return r;
      },
      load: (so: string, snap: string, limits: Limits) => engine.load(so, snap, limits),
    } as unknown as Engine;
    const growth = await peakRssGrowth(() => compileUncached(source, counting));
    // Reading every page faults each 2 MiB huge page in at least once (the
    // huge zero page; 4 KiB pages without it): 2,048 and more. Reading only
    // what init wrote faults a few dozen times.
    expect(faults).toBeLessThan(1024);
    expect(growth).toBeLessThan(256 << 20);
    const r = await callOnce(source, { memoryMiB: 4096 });
    expect(r.status).toBe("ok");
    expect(r.memoryPages).toBe(65536);
    expect(text(r.stdout)).toBe("top");
  }, 60_000);

  test("a large table is saved and loaded in bulk, and its entries survive", async () => {
    // The compiler bounds initial tables, but wizer.initialize may grow one:
    // here to 1M entries, the last one a function, the rest null.
    const source = command(
      `(call $print (call_indirect (type $t) (i32.const 999999)))
       (call $print (table.size 0))
       (drop (call_indirect (type $t) (i32.const 5)))`,
      `(type $t (func (result i32)))
       (table 1 funcref)
       (elem (i32.const 0) $f)
       (func $f (type $t) (i32.const 9))
       (func (export "wizer.initialize")
         (drop (table.grow 0 (ref.null func) (i32.const 999999)))
         (table.copy (i32.const 999999) (i32.const 0) (i32.const 1))
         (table.set 0 (i32.const 0) (ref.null func)))
       ${PRINT}`,
    );
    const a = await compile(wat(source), { dataDir: DATA_DIR, engine: sharedEngine() });
    const t0 = performance.now();
    const mod = sharedEngine().load(a.soPath, a.snapshotPath, DEFAULT_LIMITS);
    const loadMs = performance.now() - t0;
    // Entry by entry, this was a read() each: a second on the event loop.
    expect(loadMs).toBeLessThan(250);
    const inst = mod.restore();
    const r = await sharedEngine().call(inst, {});
    expect(text(r.stdout)).toBe("9 1000000 ");
    expect(r.status).toBe("indirect_call");
    inst.free();
    mod.release();
  }, 60_000);
});

describe("the wasm start function", () => {
  test("may call WASI while the snapshot is made; what it wrote is in the snapshot", async () => {
    const r = await callOnce(`(module ${FD_WRITE}
      (memory 1)
      (func $init
        (i32.store8 (i32.const 100) (i32.const 83))
        (i32.store (i32.const 0) (i32.const 100))
        (i32.store (i32.const 4) (i32.const 1))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
      (start $init)
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 100))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`);
    expect(r.status).toBe("ok");
    expect(text(r.stdout)).toBe("S");
  });

  test("an infinite loop in it stops at the initialization deadline", async () => {
    const t0 = performance.now();
    const err = await initFailure(
      `(module (memory 1) (func $spin (loop $l (br $l))) (start $spin) (func (export "_start")))`,
      { timeoutMs: 300 },
    );
    expect(err.message).toContain("initialization timed out");
    expect(performance.now() - t0).toBeLessThan(20_000);
    // The process is fine and compiles the next module.
    expect((await callOnce(command(`(call $print (i32.const 5))`, PRINT))).stdout).toEqual(enc("5 "));
  });

  test("start and wizer.initialize share one deadline", async () => {
    // Each half spins ~200 ms, within a 300 ms deadline on its own, not together.
    const spin = `(local $t0 i64)
      (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 0)))
      (local.set $t0 (i64.load (i32.const 0)))
      (loop $l
        (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 0)))
        (br_if $l (i64.lt_u (i64.sub (i64.load (i32.const 0)) (local.get $t0)) (i64.const 200000000))))`;
    const source = (init: boolean) => `(module
      (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
      (memory 1)
      (func $start ${spin})
      (start $start)
      ${init ? `(func (export "wizer.initialize") ${spin})` : ""}
      (func (export "_start")))`;
    const err = await initFailure(source(true), { timeoutMs: 300 });
    expect(err.message).toContain("initialization timed out");
    // The start function alone fits: the deadline is not simply too short.
    const a = await compileUncached(source(false), engineWithInitLimits({ timeoutMs: 300 }));
    expect(a.meta.hasInitialize).toBe(false);
  });

  test("runs under the memory cap and the call-depth limit", async () => {
    const grows = await initFailure(
      `(module (memory 1) (func $g (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable)))
        (start $g) (func (export "_start")))`,
      { memoryMiB: 4 },
    );
    expect(grows.message).toContain("memory_limit");
    const deep = await initFailure(`(module (memory 1) (func $r (call $r)) (start $r) (func (export "_start")))`);
    expect(deep.message).toContain("stack_exhaustion");
  });
});

describe("tables count against the memory limit", () => {
  // memoryMiB 4: a budget of 4 MiB for linear memory (1 page here) and all
  // tables together; a funcref is 24 bytes, an externref 8.
  const tables = `(module ${FD_WRITE} ${FD_READ}
    (memory 1)
    (table $f 1 funcref)
    (table $e 0 externref)
    (func (export "_start")
      (call $print (table.grow $f (ref.null func) (i32.const 100000)))
      (call $print (table.grow $e (ref.null extern) (i32.const 100000)))
      (call $print (table.grow $f (ref.null func) (i32.const 50000)))
      (call $print (memory.grow (i32.const 20)))
      (call $print (table.size $f))
      ;; stdin "t": trap right after a refused grow
      (if (i32.eq ${READ_BYTE} (i32.const 116)) (then unreachable)))
    ${PRINT})`;

  test("table.grow and memory.grow return -1 once memory plus tables would pass the limit", async () => {
    const mod = await load(tables, { memoryMiB: 4 });
    const inst = mod.restore();
    const engine = sharedEngine();
    const r = await engine.call(inst, {});
    expect(r.status).toBe("ok");
    // 1 + 2.4 MB of funcrefs fit; 0.8 MB of externrefs fit; 1.2 MB more
    // funcrefs would pass 4 MiB; so would 20 more pages of memory.
    expect(text(r.stdout)).toBe("1 0 4294967295 4294967295 100001 ");
    expect(r.growRefused).toBe(true);
    // Not reset: the grown tables are still there and still count.
    const again = await engine.call(inst, {});
    // (only the externref grow still fits next to them)
    expect(text(again.stdout)).toBe("4294967295 100000 4294967295 4294967295 100001 ");
    // Reset: tables are back to their snapshot sizes, and a trap after a
    // refused grow is reported as the memory limit.
    expect(inst.reset()).toBe(true);
    const trap = await engine.call(inst, { stdin: enc("t") });
    expect(trap.status).toBe("memory_limit");
    expect(text(trap.stdout)).toBe("1 0 4294967295 4294967295 100001 ");
    inst.free();
    mod.release();
  });

  test("eight tables grown by 16M entries each are refused, not allocated", async () => {
    const grows = Array.from({ length: 8 }, (_, t) => `(call $print (table.grow $t${t} (ref.null func) (i32.const 16000000)))`).join("\n");
    const decls = Array.from({ length: 8 }, (_, t) => `(table $t${t} 1 funcref)`).join(" ");
    let r: Awaited<ReturnType<typeof callOnce>> | undefined;
    const mod = await load(command(grows, `${decls} ${PRINT}`));
    const growth = await peakRssGrowth(async () => {
      const inst = mod.restore();
      r = await sharedEngine().call(inst, {});
      inst.free();
    });
    mod.release();
    expect(r!.status).toBe("ok");
    expect(text(r!.stdout)).toBe("4294967295 ".repeat(8));
    expect(growth).toBeLessThan(64 << 20);
  });

  test("a grow past the module's own declared maximum is -1, and a later trap is the module's, not the memory limit", async () => {
    const mod = await load(`(module ${FD_WRITE} ${FD_READ}
      (memory 1 2)
      (table 1 funcref)
      (func (export "_start")
        (call $print (memory.grow (i32.const 1)))
        (call $print (memory.grow (i32.const 5)))
        unreachable)
      ${PRINT})`, { memoryMiB: 64 });
    const inst = mod.restore();
    const r = await sharedEngine().call(inst, {});
    expect(text(r.stdout)).toBe("1 4294967295 ");
    expect(r.status).toBe("unreachable");
    expect(r.growRefused).toBe(false);
    inst.free();
    mod.release();
  });

  test("instantiation and loading apply the same limit", async () => {
    // 100,000 funcrefs are 2.4 MB: over a 2 MiB limit at initialization...
    const big = command("", "(table 100000 funcref)");
    const err = await initFailure(big, { memoryMiB: 2 });
    expect(err.message).toContain("memory_limit");
    // ...and a snapshot made under a larger limit does not load under it.
    const a = await compile(wat(big), { dataDir: DATA_DIR, engine: sharedEngine() });
    expect(() => sharedEngine().load(a.soPath, a.snapshotPath, { ...DEFAULT_LIMITS, memoryMiB: 2 })).toThrow(
      /exceed the memory limit/,
    );
    sharedEngine().load(a.soPath, a.snapshotPath, { ...DEFAULT_LIMITS, memoryMiB: 3 }).release();
  });
});
