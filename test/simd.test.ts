// WebAssembly SIMD conformance: modules using SIMD run on thaw (lowered to
// scalar code before wasm2c, src/compiler/simd.ts) and print what Bun's own
// WebAssembly (JavaScriptCore) prints for the same module and input.
//
// - C programs built with clang -msimd128 (functions/tests/simd_*.c, by
//   functions/Makefile), on both compile tiers, with several inputs;
// - WAT cases for the edge of each instruction family: shuffles and
//   swizzles with every kind of index, lanes, saturation, float-to-int
//   conversions of NaN and infinities, NaN and signed zeros in min/max
//   (where the spec allows any NaN, only NaN-ness is compared);
// - v128 through the module's plumbing (params, results, blocks, select,
//   drop, globals, tables), and a v128 global set by wizer.initialize
//   surviving the snapshot;
// - refusals: SIMD that does not type-check, bad lane indices.

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { CompileError, compile, type Tier } from "../src/compiler/compile.ts";
import { DEFAULT_LIMITS } from "../src/engine/engine.ts";
import { DATA_DIR, sharedEngine, wasmPath } from "./helpers.ts";
import { wat } from "./wat.ts";

const enc = (s: string) => new TextEncoder().encode(s);
/** Output bytes one char each, so binary output compares exactly. */
const bytesText = (b: Uint8Array) => Array.from(b, (c) => String.fromCharCode(c)).join("");

interface Run {
  status: string;
  exitCode: number;
  stdout: string;
}

async function onThaw(bytes: Uint8Array, stdin = "", tier: Tier = "optimized"): Promise<Run> {
  const a = await compile(bytes, { dataDir: DATA_DIR, engine: sharedEngine(), tier });
  const mod = sharedEngine().load(a.soPath, a.snapshotPath, DEFAULT_LIMITS);
  const inst = mod.restore();
  try {
    const r = await sharedEngine().call(inst, { stdin: enc(stdin) });
    return { status: r.status, exitCode: r.exitCode, stdout: bytesText(r.stdout) };
  } finally {
    inst.free();
    mod.release();
  }
}

class Exit {
  constructor(readonly code: number) {}
}

/** The same module in Bun's WebAssembly, with the WASI a C program's start-up and stdio need. */
function onJsc(bytes: Uint8Array, stdin = ""): Run {
  let memory: WebAssembly.Memory | undefined;
  const view = () => new DataView(memory!.buffer);
  const input = enc(stdin);
  let pos = 0;
  let stdout = "";
  const iovecs = (iovs: number, n: number) =>
    Array.from({ length: n }, (_, i) => [view().getUint32(iovs + 8 * i, true), view().getUint32(iovs + 8 * i + 4, true)] as const);
  const wasi: Record<string, (...a: number[]) => number> = {
    fd_write(fd, iovs, n, written) {
      let total = 0;
      for (const [p, l] of iovecs(iovs, n)) {
        if (fd === 1) stdout += bytesText(new Uint8Array(memory!.buffer, p, l));
        total += l;
      }
      view().setUint32(written, total, true);
      return 0;
    },
    fd_read(_fd, iovs, n, read) {
      let total = 0;
      for (const [p, l] of iovecs(iovs, n)) {
        const k = Math.min(l, input.length - pos);
        new Uint8Array(memory!.buffer, p, k).set(input.subarray(pos, pos + k));
        pos += k;
        total += k;
      }
      view().setUint32(read, total, true);
      return 0;
    },
    proc_exit(code) {
      throw new Exit(code);
    },
    args_sizes_get: (a, b) => (view().setUint32(a, 0, true), view().setUint32(b, 0, true), 0),
    environ_sizes_get: (a, b) => (view().setUint32(a, 0, true), view().setUint32(b, 0, true), 0),
    args_get: () => 0,
    environ_get: () => 0,
    fd_fdstat_get: (fd, p) => (view().setUint8(p, 2), fd <= 2 ? 0 : 8),
    fd_close: () => 0,
    fd_seek: () => 70,
    fd_prestat_get: () => 8,
  };
  const mod = new WebAssembly.Module(bytes);
  const imports = Object.fromEntries(WebAssembly.Module.imports(mod).map((i) => [i.name, wasi[i.name] ?? (() => 52)]));
  const inst = new WebAssembly.Instance(mod, { wasi_snapshot_preview1: imports });
  memory = inst.exports.memory as WebAssembly.Memory;
  try {
    (inst.exports._start as () => void)();
    return { status: "ok", exitCode: 0, stdout };
  } catch (e) {
    if (e instanceof Exit) return { status: "ok", exitCode: e.code, stdout };
    return { status: /out of bounds/i.test(String(e)) ? "out_of_bounds" : String(e), exitCode: 0, stdout };
  }
}

describe("C programs built with -msimd128 print what Bun's WebAssembly prints", () => {
  const inputs = ["", "hello simd world, 0123456789abcdef!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "\xff\x80\x7f\x00".repeat(40)];
  for (const program of ["simd_int", "simd_float", "simd_memory"])
    for (const tier of ["fast", "optimized"] as const)
      test(`${program} (${tier} tier)`, async () => {
        const bytes = new Uint8Array(readFileSync(wasmPath(program)));
        for (const input of inputs) {
          const expected = onJsc(bytes, input);
          expect(expected.stdout.length).toBeGreaterThan(200);
          expect(await onThaw(bytes, input, tier)).toEqual(expected);
        }
      });

  test("a vector store across the end of memory traps in both", async () => {
    const bytes = new Uint8Array(readFileSync(wasmPath("simd_memory")));
    const expected = onJsc(bytes, "trap");
    expect(expected.status).toBe("out_of_bounds");
    expect(await onThaw(bytes, "trap")).toEqual(expected);
  });
});

// ---- WAT edge cases ------------------------------------------------------------

type Shape = "i8" | "i16" | "i32" | "i64" | "f32" | "f64";

/** Each case is a v128 expression; the module stores them side by side and writes them to stdout. */
function casesModule(cases: string[]): Uint8Array {
  const stores = cases.map((c, i) => `(v128.store (i32.const ${1024 + 16 * i}) ${c})`).join("\n");
  return wat(`(module
    (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "_start")
      ${stores}
      (i32.store (i32.const 0) (i32.const 1024))
      (i32.store (i32.const 4) (i32.const ${16 * cases.length}))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`);
}

/** Lanes of one 16-byte result, NaN as "NaN" (the spec lets its bits vary). */
function lanes(bytes: Uint8Array, shape: Shape): string[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, 16);
  const width = { i8: 1, i16: 2, i32: 4, i64: 8, f32: 4, f64: 8 }[shape];
  return Array.from({ length: 16 / width }, (_, i) => {
    const at = i * width;
    if (shape === "f32") return Number.isNaN(v.getFloat32(at, true)) ? "NaN" : Object.is(v.getFloat32(at, true), -0) ? "-0" : String(v.getFloat32(at, true));
    if (shape === "f64") return Number.isNaN(v.getFloat64(at, true)) ? "NaN" : Object.is(v.getFloat64(at, true), -0) ? "-0" : String(v.getFloat64(at, true));
    return [...bytes.subarray(at, at + width)].map((b) => b.toString(16).padStart(2, "0")).join("");
  });
}

async function compareCases(cases: [string, Shape][]) {
  const bytes = casesModule(cases.map(([c]) => c));
  const jsc = onJsc(bytes);
  const thaw = await onThaw(bytes);
  expect(thaw.status).toBe("ok");
  const raw = (s: string) => Uint8Array.from(s, (ch) => ch.charCodeAt(0));
  const jscBytes = raw(jsc.stdout);
  const thawBytes = raw(thaw.stdout);
  expect(thawBytes.length).toBe(16 * cases.length);
  cases.forEach(([c, shape], i) => {
    const at = 16 * i;
    expect([c, lanes(thawBytes.subarray(at, at + 16), shape)]).toEqual([c, lanes(jscBytes.subarray(at, at + 16), shape)]);
  });
}

describe("SIMD edge cases agree with Bun's WebAssembly", () => {
  const A = "(v128.const i8x16 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)";
  const B = "(v128.const i8x16 -1 -2 -3 -128 127 100 -100 50 16 17 18 19 20 21 22 23)";
  test("shuffles, swizzles and lanes", async () => {
    await compareCases([
      [`(i8x16.shuffle 0 16 1 17 2 18 3 19 31 30 29 28 15 15 0 0 ${A} ${B})`, "i8"],
      [`(i8x16.shuffle 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 ${A} ${B})`, "i8"],
      [`(i8x16.swizzle ${B} (v128.const i8x16 0 15 16 255 128 3 17 1 2 2 2 2 31 32 -1 5))`, "i8"],
      [`(i32x4.splat (i8x16.extract_lane_s 3 ${B}))`, "i32"],
      [`(i32x4.splat (i8x16.extract_lane_u 3 ${B}))`, "i32"],
      [`(i32x4.splat (i16x8.extract_lane_s 1 ${B}))`, "i32"],
      [`(i8x16.replace_lane 15 ${A} (i32.const 0x1ff))`, "i8"],
      [`(i64x2.replace_lane 1 ${A} (i64.const -2))`, "i64"],
      [`(f64x2.replace_lane 0 ${A} (f64.const -0))`, "f64"],
      [`(i16x8.splat (i32.const 0x12345))`, "i16"],
    ]);
  });

  test("saturating and wrapping integer arithmetic", async () => {
    await compareCases([
      [`(i8x16.add_sat_s ${B} ${B})`, "i8"],
      [`(i8x16.sub_sat_u ${A} ${B})`, "i8"],
      [`(i16x8.add_sat_u (v128.const i16x8 65535 1 32768 0 0 0 0 7) (v128.const i16x8 1 65535 32768 0 0 0 0 9))`, "i16"],
      [`(i16x8.q15mulr_sat_s (v128.const i16x8 -32768 -32768 16384 -1 32767 0 0 0) (v128.const i16x8 -32768 32767 16384 -1 32767 0 0 0))`, "i16"],
      [`(i8x16.narrow_i16x8_s (v128.const i16x8 300 -300 127 -128 128 -129 0 1) (v128.const i16x8 -1 255 256 -32768 32767 5 6 7))`, "i8"],
      [`(i8x16.narrow_i16x8_u (v128.const i16x8 300 -300 127 -128 128 -129 0 1) (v128.const i16x8 -1 255 256 -32768 32767 5 6 7))`, "i8"],
      [`(i16x8.narrow_i32x4_u (v128.const i32x4 70000 -1 65535 65536) (v128.const i32x4 0 1 2 -70000))`, "i16"],
      [`(i8x16.abs (v128.const i8x16 -128 -127 127 0 -1 1 2 3 4 5 6 7 8 9 10 11))`, "i8"],
      [`(i64x2.abs (v128.const i64x2 -9223372036854775808 -5))`, "i64"],
      [`(i64x2.mul (v128.const i64x2 -1 0x123456789abcdef) (v128.const i64x2 -1 0xfedcba987654321))`, "i64"],
      [`(i32x4.dot_i16x8_s (v128.const i16x8 -32768 -32768 32767 32767 -1 2 3 4) (v128.const i16x8 -32768 -32768 32767 32767 5 6 7 8))`, "i32"],
      [`(i8x16.shl ${B} (i32.const 9))`, "i8"],
      [`(i16x8.shr_s ${B} (i32.const 31))`, "i16"],
      [`(i64x2.shr_u ${B} (i32.const 65))`, "i64"],
      [`(i8x16.avgr_u ${A} ${B})`, "i8"],
      [`(i8x16.popcnt ${B})`, "i8"],
      [`(i32x4.splat (i8x16.bitmask ${B}))`, "i32"],
      [`(i32x4.splat (i64x2.bitmask ${B}))`, "i32"],
      [`(i32x4.splat (i8x16.all_true ${A}))`, "i32"],
      [`(i32x4.splat (v128.any_true (v128.const i64x2 0 0)))`, "i32"],
      [`(i64x2.extmul_high_i32x4_s ${B} ${B})`, "i64"],
      [`(i32x4.extadd_pairwise_i16x8_s ${B})`, "i32"],
      [`(v128.bitselect ${A} ${B} (v128.const i64x2 0xff00ff00ff00ff00 0x0f0f0f0f0f0f0f0f))`, "i8"],
    ]);
  });

  const F = "(v128.const f32x4 nan -inf inf -0)";
  const G = "(v128.const f32x4 1 -0 0 2147483648)";
  test("float conversions, NaN and signed zeros", async () => {
    await compareCases([
      [`(i32x4.trunc_sat_f32x4_s ${F})`, "i32"],
      [`(i32x4.trunc_sat_f32x4_u ${F})`, "i32"],
      [`(i32x4.trunc_sat_f32x4_s (v128.const f32x4 2147483648 -2147483904 -0.9 1.9))`, "i32"],
      [`(i32x4.trunc_sat_f32x4_u (v128.const f32x4 4294967296 -1 -0.9 4294967040))`, "i32"],
      [`(i32x4.trunc_sat_f64x2_s_zero (v128.const f64x2 nan -1e300))`, "i32"],
      [`(i32x4.trunc_sat_f64x2_u_zero (v128.const f64x2 4294967295.9 -0.5))`, "i32"],
      [`(f32x4.convert_i32x4_u (v128.const i32x4 -1 0x80000001 16777217 3))`, "f32"],
      [`(f32x4.demote_f64x2_zero (v128.const f64x2 1e300 -1e-300))`, "f32"],
      [`(f64x2.promote_low_f32x4 ${F})`, "f64"],
      [`(f32x4.min ${F} ${G})`, "f32"],
      [`(f32x4.max ${F} ${G})`, "f32"],
      [`(f32x4.min (v128.const f32x4 0 -0 0 -0) (v128.const f32x4 -0 0 0 -0))`, "f32"],
      [`(f32x4.max (v128.const f32x4 0 -0 0 -0) (v128.const f32x4 -0 0 0 -0))`, "f32"],
      [`(f32x4.pmin ${F} ${G})`, "f32"],
      [`(f32x4.pmax ${G} ${F})`, "f32"],
      [`(f64x2.min (v128.const f64x2 nan 0) (v128.const f64x2 1 -0))`, "f64"],
      [`(f32x4.nearest (v128.const f32x4 2.5 -0.5 3.5 -2.5))`, "f32"],
      [`(f32x4.ceil (v128.const f32x4 -0.5 0.5 -1.5 1e30))`, "f32"],
      [`(f64x2.trunc (v128.const f64x2 -0.9 4503599627370497.5))`, "f64"],
      [`(f32x4.sqrt (v128.const f32x4 -1 0 -0 2))`, "f32"],
      [`(f32x4.abs ${F})`, "f32"],
      [`(f32x4.neg ${F})`, "f32"],
      [`(f32x4.eq ${F} ${F})`, "i32"],
      [`(f64x2.lt (v128.const f64x2 nan -0) (v128.const f64x2 1 0))`, "i64"],
      [`(f32x4.div (v128.const f32x4 1 -1 0 0) (v128.const f32x4 0 0 0 -0))`, "f32"],
    ]);
  });
});

describe("v128 through the module's plumbing", () => {
  test("params, results, blocks, loops, select, drop, tee, tables and globals", async () => {
    const bytes = wat(`(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (type $vv (func (param v128 i32) (result v128)))
      (table 2 funcref)
      (elem (i32.const 0) $twice $swap)
      (global $g (mut v128) (v128.const i32x4 1 2 3 4))
      (global $k i32 (i32.const 7))
      (func $twice (type $vv) (i32x4.add (local.get 0) (i32x4.splat (local.get 1))))
      (func $swap (type $vv) (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get 0) (local.get 0)))
      (func $pick (param v128 v128 i32) (result v128 v128)
        (select (local.get 0) (local.get 1) (local.get 2))
        (select (result v128) (local.get 1) (local.get 0) (local.get 2)))
      (func (export "_start") (local $v v128) (local $w v128) (local $i i32)
        (local.set $v (global.get $g))
        (block $out (result v128)
          (local.get $v)
          (loop $l (param v128) (result v128)
            (local.tee $v (call_indirect (type $vv) (i32.const 3) (i32.const 0)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $out (i32.ge_u (local.get $i) (global.get $k)))
            (br $l (call_indirect (type $vv) (i32.const 0) (i32.const 1))))
          (local.get $v)
          (drop))
        (drop (v128.const i64x2 1 2))
        (global.set $g)
        (call $pick (global.get $g) (v128.const i32x4 9 9 9 9) (i32.const 0))
        (local.set $w)
        (local.set $v)
        (v128.store (i32.const 1024) (local.get $v))
        (v128.store (i32.const 1040) (local.get $w))
        (v128.store (i32.const 1056) (global.get $g))
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 48))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`);
    const expected = onJsc(bytes);
    expect(expected.stdout.length).toBe(48);
    expect(await onThaw(bytes)).toEqual(expected);
  });

  test("a v128 global set by wizer.initialize is in the snapshot", async () => {
    const bytes = wat(`(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (global $g (mut v128) (v128.const i32x4 1 2 3 4))
      (func (export "wizer.initialize") (global.set $g (i32x4.mul (global.get $g) (i32x4.splat (i32.const 1000)))))
      (func (export "_start")
        (call $exit (i32.add (i32x4.extract_lane 3 (global.get $g)) (i32x4.extract_lane 0 (global.get $g))))))`);
    for (const tier of ["fast", "optimized"] as const) expect(await onThaw(bytes, "", tier)).toEqual({ status: "ok", exitCode: 5000, stdout: "" });
  });
});

describe("SIMD that cannot run is refused by name", () => {
  const refused = async (source: string) => {
    const err = await compile(wat(source), { dataDir: DATA_DIR, engine: sharedEngine() }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CompileError);
    return err as CompileError;
  };
  const command = (body: string) => `(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory 1)
    (func (export "_start") (local v128) ${body}))`;

  test("a lane index out of range", async () => {
    // wat2wasm checks lanes itself; patch the byte after assembling.
    const bytes = wat(command("(drop (i32x4.extract_lane 3 (local.get 0)))"));
    const at = bytes.findIndex((b, i) => b === 0xfd && bytes[i + 1] === 27 && bytes[i + 2] === 3);
    bytes[at + 2] = 4;
    const err = await compile(bytes, { dataDir: DATA_DIR, engine: sharedEngine() }).then(
      () => undefined,
      (e: unknown) => e as CompileError,
    );
    expect(err?.code).toBe("invalid_module");
    expect(err?.message).toContain("lane index 4 out of range");
  });

  test("a module that uses SIMD without importing WASI", async () => {
    const err = await refused(`(module (memory 1) (func (export "_start") (drop (i32x4.splat (i32.const 1)))))`);
    expect(err.code).toBe("unsupported_module");
    expect(err.message).toContain("SIMD");
  });
});
