// Lowers WebAssembly SIMD to scalar code before translation, because
// Debian's wasm2c 1.0.32 has no SIMD at all: it aborts on any v128 type or
// instruction (its C writer predates wabt's simde-based SIMD support, and
// binaryen 108's wasm-opt has no lowering pass either).
//
// The rewrite, on a module the sanitizer has already rebuilt:
// - a v128 value becomes two i64 values (lanes 0-7 bytes, then 8-15), in
//   function types, locals, globals and on the operand stack;
// - v128.const and the plain loads and stores become i64 instructions (a
//   store writes its high half first, so one that is out of bounds traps
//   before it writes anything);
// - every other SIMD instruction becomes a call of a helper the module now
//   imports from wasi_snapshot_preview1 as `thaw_simd_<instruction>`: C
//   functions in native/include/wasm-rt.h that the C compiler inlines, with
//   lane immediates and shuffle masks passed as constants. Imports come
//   first in the function index space, so every function index shifts;
// - `drop` and `select` need to know whether their operand is a v128, so
//   the rewrite tracks operand types the way a validator does, and refuses
//   a module whose types do not check (wasm-validate only ever sees the
//   lowered module, in which SIMD typing can no longer be checked). SIMD
//   immediates (lanes, shuffle indices, alignment) are checked here too.
//
// A module without SIMD comes back unchanged (a lean first pass settles
// that). What is not supported (relaxed SIMD, and proposals the validator
// refuses anyway: exceptions, threads, tail calls) is refused by name.
//
// Trade-offs: each SIMD instruction moves its operands between general and
// vector registers, so vector-bound code runs slower than under a JIT that
// emits SIMD directly (a u8x16 blur loop: ~3x Bun's time; the compute kernel
// built with -msimd128: within 15 % of its scalar build). Growth is bounded:
// a v128 local becomes two, an instruction a handful. A wabt with SIMD in
// wasm2c (1.0.33 and later, through simde) would make this file unneeded.

import { WASI_MODULE } from "./wasi.ts";

/** A module thaw cannot lower: invalid (its SIMD typing does not check) or using what is not supported. */
export class SimdError extends Error {
  constructor(
    message: string,
    readonly code: "invalid_module" | "unsupported_module" = "invalid_module",
  ) {
    super(message);
  }
  /** A v128 or a SIMD instruction had been read when this was thrown: the module does use SIMD. */
  simdSeen = false;
}

type T = "i32" | "i64" | "f32" | "f64" | "v128" | "funcref" | "externref" | "?";
const VAL: Record<number, T> = { 0x7f: "i32", 0x7e: "i64", 0x7d: "f32", 0x7c: "f64", 0x7b: "v128", 0x70: "funcref", 0x6f: "externref" };
const CODE: Record<string, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, funcref: 0x70, externref: 0x6f };
const LETTER: Record<string, T> = { v: "v128", i: "i32", I: "i64", f: "f32", F: "f64" };

// ---- the SIMD instructions ------------------------------------------------------
// [opcode, name, signature "params:results" in letters (v v128, i i32, I i64,
// f f32, F f64), immediate: m memarg, l lane, ml memarg + lane, c 16 bytes
// (const), s 16 lane indices (shuffle)]. Names are the text format's.
type Imm = "" | "m" | "l" | "ml" | "c" | "s";
interface SimdOp {
  name: string;
  params: T[];
  results: T[];
  imm: Imm;
  lanes?: number; // lane immediates must be below this
  bytes?: number; // memory access width, for the alignment check
}
const SIMD = new Map<number, SimdOp>();
function op(code: number, name: string, sig: string, imm: Imm = "", lanes?: number, bytes?: number) {
  const [p, r] = sig.split(":") as [string, string];
  SIMD.set(code, { name, params: [...p].map((c) => LETTER[c]!), results: [...r].map((c) => LETTER[c]!), imm, lanes, bytes });
}
// Memory.
op(0, "v128.load", "i:v", "m", undefined, 16);
for (const [c, n] of [[1, "8x8_s"], [2, "8x8_u"], [3, "16x4_s"], [4, "16x4_u"], [5, "32x2_s"], [6, "32x2_u"]] as const)
  op(c, `v128.load${n}`, "i:v", "m", undefined, 8);
op(7, "v128.load8_splat", "i:v", "m", undefined, 1);
op(8, "v128.load16_splat", "i:v", "m", undefined, 2);
op(9, "v128.load32_splat", "i:v", "m", undefined, 4);
op(10, "v128.load64_splat", "i:v", "m", undefined, 8);
op(11, "v128.store", "iv:", "m", undefined, 16);
op(92, "v128.load32_zero", "i:v", "m", undefined, 4);
op(93, "v128.load64_zero", "i:v", "m", undefined, 8);
op(84, "v128.load8_lane", "iv:v", "ml", 16, 1);
op(85, "v128.load16_lane", "iv:v", "ml", 8, 2);
op(86, "v128.load32_lane", "iv:v", "ml", 4, 4);
op(87, "v128.load64_lane", "iv:v", "ml", 2, 8);
op(88, "v128.store8_lane", "iv:", "ml", 16, 1);
op(89, "v128.store16_lane", "iv:", "ml", 8, 2);
op(90, "v128.store32_lane", "iv:", "ml", 4, 4);
op(91, "v128.store64_lane", "iv:", "ml", 2, 8);
op(12, "v128.const", ":v", "c");
op(13, "i8x16.shuffle", "vv:v", "s");
op(14, "i8x16.swizzle", "vv:v");
// Splats, lanes.
op(15, "i8x16.splat", "i:v");
op(16, "i16x8.splat", "i:v");
op(17, "i32x4.splat", "i:v");
op(18, "i64x2.splat", "I:v");
op(19, "f32x4.splat", "f:v");
op(20, "f64x2.splat", "F:v");
op(21, "i8x16.extract_lane_s", "v:i", "l", 16);
op(22, "i8x16.extract_lane_u", "v:i", "l", 16);
op(23, "i8x16.replace_lane", "vi:v", "l", 16);
op(24, "i16x8.extract_lane_s", "v:i", "l", 8);
op(25, "i16x8.extract_lane_u", "v:i", "l", 8);
op(26, "i16x8.replace_lane", "vi:v", "l", 8);
op(27, "i32x4.extract_lane", "v:i", "l", 4);
op(28, "i32x4.replace_lane", "vi:v", "l", 4);
op(29, "i64x2.extract_lane", "v:I", "l", 2);
op(30, "i64x2.replace_lane", "vI:v", "l", 2);
op(31, "f32x4.extract_lane", "v:f", "l", 4);
op(32, "f32x4.replace_lane", "vf:v", "l", 4);
op(33, "f64x2.extract_lane", "v:F", "l", 2);
op(34, "f64x2.replace_lane", "vF:v", "l", 2);
// Comparisons.
const cmp = (base: number, shape: string, names: string[]) => names.forEach((n, i) => op(base + i, `${shape}.${n}`, "vv:v"));
const intCmp = ["eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u"];
cmp(35, "i8x16", intCmp);
cmp(45, "i16x8", intCmp);
cmp(55, "i32x4", intCmp);
cmp(65, "f32x4", ["eq", "ne", "lt", "gt", "le", "ge"]);
cmp(71, "f64x2", ["eq", "ne", "lt", "gt", "le", "ge"]);
cmp(214, "i64x2", ["eq", "ne", "lt_s", "gt_s", "le_s", "ge_s"]);
// Bitwise.
op(77, "v128.not", "v:v");
op(78, "v128.and", "vv:v");
op(79, "v128.andnot", "vv:v");
op(80, "v128.or", "vv:v");
op(81, "v128.xor", "vv:v");
op(82, "v128.bitselect", "vvv:v");
op(83, "v128.any_true", "v:i");
// Lane arithmetic: [opcode, name, signature].
const LANE_OPS: [number, string, string][] = [
  [94, "f32x4.demote_f64x2_zero", "v:v"], [95, "f64x2.promote_low_f32x4", "v:v"],
  [96, "i8x16.abs", "v:v"], [97, "i8x16.neg", "v:v"], [98, "i8x16.popcnt", "v:v"], [99, "i8x16.all_true", "v:i"],
  [100, "i8x16.bitmask", "v:i"], [101, "i8x16.narrow_i16x8_s", "vv:v"], [102, "i8x16.narrow_i16x8_u", "vv:v"],
  [103, "f32x4.ceil", "v:v"], [104, "f32x4.floor", "v:v"], [105, "f32x4.trunc", "v:v"], [106, "f32x4.nearest", "v:v"],
  [107, "i8x16.shl", "vi:v"], [108, "i8x16.shr_s", "vi:v"], [109, "i8x16.shr_u", "vi:v"],
  [110, "i8x16.add", "vv:v"], [111, "i8x16.add_sat_s", "vv:v"], [112, "i8x16.add_sat_u", "vv:v"],
  [113, "i8x16.sub", "vv:v"], [114, "i8x16.sub_sat_s", "vv:v"], [115, "i8x16.sub_sat_u", "vv:v"],
  [116, "f64x2.ceil", "v:v"], [117, "f64x2.floor", "v:v"],
  [118, "i8x16.min_s", "vv:v"], [119, "i8x16.min_u", "vv:v"], [120, "i8x16.max_s", "vv:v"], [121, "i8x16.max_u", "vv:v"],
  [122, "f64x2.trunc", "v:v"], [123, "i8x16.avgr_u", "vv:v"],
  [124, "i16x8.extadd_pairwise_i8x16_s", "v:v"], [125, "i16x8.extadd_pairwise_i8x16_u", "v:v"],
  [126, "i32x4.extadd_pairwise_i16x8_s", "v:v"], [127, "i32x4.extadd_pairwise_i16x8_u", "v:v"],
  [128, "i16x8.abs", "v:v"], [129, "i16x8.neg", "v:v"], [130, "i16x8.q15mulr_sat_s", "vv:v"],
  [131, "i16x8.all_true", "v:i"], [132, "i16x8.bitmask", "v:i"],
  [133, "i16x8.narrow_i32x4_s", "vv:v"], [134, "i16x8.narrow_i32x4_u", "vv:v"],
  [135, "i16x8.extend_low_i8x16_s", "v:v"], [136, "i16x8.extend_high_i8x16_s", "v:v"],
  [137, "i16x8.extend_low_i8x16_u", "v:v"], [138, "i16x8.extend_high_i8x16_u", "v:v"],
  [139, "i16x8.shl", "vi:v"], [140, "i16x8.shr_s", "vi:v"], [141, "i16x8.shr_u", "vi:v"],
  [142, "i16x8.add", "vv:v"], [143, "i16x8.add_sat_s", "vv:v"], [144, "i16x8.add_sat_u", "vv:v"],
  [145, "i16x8.sub", "vv:v"], [146, "i16x8.sub_sat_s", "vv:v"], [147, "i16x8.sub_sat_u", "vv:v"],
  [148, "f64x2.nearest", "v:v"], [149, "i16x8.mul", "vv:v"],
  [150, "i16x8.min_s", "vv:v"], [151, "i16x8.min_u", "vv:v"], [152, "i16x8.max_s", "vv:v"], [153, "i16x8.max_u", "vv:v"],
  [155, "i16x8.avgr_u", "vv:v"],
  [156, "i16x8.extmul_low_i8x16_s", "vv:v"], [157, "i16x8.extmul_high_i8x16_s", "vv:v"],
  [158, "i16x8.extmul_low_i8x16_u", "vv:v"], [159, "i16x8.extmul_high_i8x16_u", "vv:v"],
  [160, "i32x4.abs", "v:v"], [161, "i32x4.neg", "v:v"], [163, "i32x4.all_true", "v:i"], [164, "i32x4.bitmask", "v:i"],
  [167, "i32x4.extend_low_i16x8_s", "v:v"], [168, "i32x4.extend_high_i16x8_s", "v:v"],
  [169, "i32x4.extend_low_i16x8_u", "v:v"], [170, "i32x4.extend_high_i16x8_u", "v:v"],
  [171, "i32x4.shl", "vi:v"], [172, "i32x4.shr_s", "vi:v"], [173, "i32x4.shr_u", "vi:v"],
  [174, "i32x4.add", "vv:v"], [177, "i32x4.sub", "vv:v"], [181, "i32x4.mul", "vv:v"],
  [182, "i32x4.min_s", "vv:v"], [183, "i32x4.min_u", "vv:v"], [184, "i32x4.max_s", "vv:v"], [185, "i32x4.max_u", "vv:v"],
  [186, "i32x4.dot_i16x8_s", "vv:v"],
  [188, "i32x4.extmul_low_i16x8_s", "vv:v"], [189, "i32x4.extmul_high_i16x8_s", "vv:v"],
  [190, "i32x4.extmul_low_i16x8_u", "vv:v"], [191, "i32x4.extmul_high_i16x8_u", "vv:v"],
  [192, "i64x2.abs", "v:v"], [193, "i64x2.neg", "v:v"], [195, "i64x2.all_true", "v:i"], [196, "i64x2.bitmask", "v:i"],
  [199, "i64x2.extend_low_i32x4_s", "v:v"], [200, "i64x2.extend_high_i32x4_s", "v:v"],
  [201, "i64x2.extend_low_i32x4_u", "v:v"], [202, "i64x2.extend_high_i32x4_u", "v:v"],
  [203, "i64x2.shl", "vi:v"], [204, "i64x2.shr_s", "vi:v"], [205, "i64x2.shr_u", "vi:v"],
  [206, "i64x2.add", "vv:v"], [209, "i64x2.sub", "vv:v"], [213, "i64x2.mul", "vv:v"],
  [220, "i64x2.extmul_low_i32x4_s", "vv:v"], [221, "i64x2.extmul_high_i32x4_s", "vv:v"],
  [222, "i64x2.extmul_low_i32x4_u", "vv:v"], [223, "i64x2.extmul_high_i32x4_u", "vv:v"],
  [224, "f32x4.abs", "v:v"], [225, "f32x4.neg", "v:v"], [227, "f32x4.sqrt", "v:v"],
  [228, "f32x4.add", "vv:v"], [229, "f32x4.sub", "vv:v"], [230, "f32x4.mul", "vv:v"], [231, "f32x4.div", "vv:v"],
  [232, "f32x4.min", "vv:v"], [233, "f32x4.max", "vv:v"], [234, "f32x4.pmin", "vv:v"], [235, "f32x4.pmax", "vv:v"],
  [236, "f64x2.abs", "v:v"], [237, "f64x2.neg", "v:v"], [239, "f64x2.sqrt", "v:v"],
  [240, "f64x2.add", "vv:v"], [241, "f64x2.sub", "vv:v"], [242, "f64x2.mul", "vv:v"], [243, "f64x2.div", "vv:v"],
  [244, "f64x2.min", "vv:v"], [245, "f64x2.max", "vv:v"], [246, "f64x2.pmin", "vv:v"], [247, "f64x2.pmax", "vv:v"],
  [248, "i32x4.trunc_sat_f32x4_s", "v:v"], [249, "i32x4.trunc_sat_f32x4_u", "v:v"],
  [250, "f32x4.convert_i32x4_s", "v:v"], [251, "f32x4.convert_i32x4_u", "v:v"],
  [252, "i32x4.trunc_sat_f64x2_s_zero", "v:v"], [253, "i32x4.trunc_sat_f64x2_u_zero", "v:v"],
  [254, "f64x2.convert_low_i32x4_s", "v:v"], [255, "f64x2.convert_low_i32x4_u", "v:v"],
];
for (const [c, n, s] of LANE_OPS) op(c, n, s);

/** The helper's import name: `thaw_simd_` and the instruction, `.` as `_`. */
const helperName = (instruction: string) => `thaw_simd_${instruction.replace(".", "_")}`;

// ---- bytes ---------------------------------------------------------------------

class Reader {
  pos = 0;
  constructor(
    readonly b: Uint8Array,
    readonly end = b.length,
  ) {}
  fail(msg: string): never {
    throw new SimdError(`${msg} (at byte ${this.pos})`);
  }
  byte(): number {
    if (this.pos >= this.end) this.fail("unexpected end");
    return this.b[this.pos++]!;
  }
  u32(): number {
    let r = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const x = this.byte();
      r += (x & 0x7f) * 2 ** shift;
      if (!(x & 0x80)) return r > 0xffffffff ? this.fail("integer too large") : r;
    }
    return this.fail("malformed LEB128");
  }
  /** A signed LEB128 of up to 64 bits, as its bytes. */
  sleb(): Uint8Array {
    const at = this.pos;
    for (let i = 0; i < 10; i++) if (!(this.byte() & 0x80)) return this.b.subarray(at, this.pos);
    return this.fail("malformed LEB128");
  }
  /** A block type: -1 empty, a value type code (< 0x80), or a type index + 0x100. */
  blockType(): number {
    const x = this.b[this.pos];
    if (x === 0x40) return this.pos++, -1;
    if (x !== undefined && VAL[x]) return this.pos++, x;
    const bytes = this.sleb();
    let v = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) v = (v << 7n) | BigInt(bytes[i]! & 0x7f);
    if (v < 0n || v > 0xffffffffn) this.fail("bad block type");
    return Number(v) + 0x100;
  }
  take(n: number): Uint8Array {
    if (this.pos + n > this.end) this.fail("unexpected end");
    return this.b.subarray(this.pos, (this.pos += n));
  }
}

class Writer {
  parts: number[] = [];
  /** A writer that keeps nothing: the scanning pass decodes without writing. */
  constructor(readonly discard = false) {}
  byte(x: number) {
    if (!this.discard) this.parts.push(x);
  }
  u32(n: number) {
    if (this.discard) return;
    do {
      let b = n % 128;
      n = Math.floor(n / 128);
      if (n) b |= 0x80;
      this.parts.push(b);
    } while (n);
  }
  s64(v: bigint) {
    if (this.discard) return;
    for (;;) {
      const b = Number(v & 0x7fn);
      v >>= 7n;
      if ((v === 0n && !(b & 0x40)) || (v === -1n && b & 0x40)) return this.parts.push(b);
      this.parts.push(b | 0x80);
    }
  }
  bytes(b: ArrayLike<number>) {
    if (this.discard) return;
    for (let i = 0; i < b.length; i++) this.parts.push(b[i]!);
  }
  name(s: string) {
    const b = new TextEncoder().encode(s);
    this.u32(b.length);
    this.bytes(b);
  }
  vec(items: number[][]) {
    this.u32(items.length);
    for (const i of items) this.bytes(i);
  }
}

const le64 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset + at, 8).getBigInt64(0, true);

// ---- module structure ------------------------------------------------------------

interface FuncType {
  params: T[];
  results: T[];
}

interface Ctx {
  types: FuncType[]; // as the module declares them
  funcTypes: number[]; // type index of every function, imports first
  imports: number; // imported functions
  globals: { type: T; mutable: boolean }[];
  globalIndex: number[]; // old global index -> new
  tables: T[];
  helpers: Map<string, number>; // helper import name -> its index among the helpers
  helperTypes: FuncType[]; // lowered signature of each helper, same order
  v128BlockType: number; // type index of [] -> [i64 i64]
  funcShift: (f: number) => number;
}

const lower = (ts: T[]): T[] => ts.flatMap((t) => (t === "v128" ? (["i64", "i64"] as T[]) : [t]));
const usesV128 = (ts: T[]) => ts.includes("v128");

function encodeType(ft: FuncType): number[] {
  const w = new Writer();
  w.byte(0x60);
  w.vec(ft.params.map((t) => [CODE[t]!]));
  w.vec(ft.results.map((t) => [CODE[t]!]));
  return w.parts;
}

function readValType(r: Reader): T {
  return VAL[r.byte()] ?? r.fail("unknown value type");
}

interface Section {
  id: number;
  body: Uint8Array;
}

function sections(bytes: Uint8Array): Section[] {
  const r = new Reader(bytes);
  r.take(8);
  const out: Section[] = [];
  while (r.pos < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    out.push({ id, body: r.take(size) });
  }
  return out;
}

/**
 * The module with SIMD lowered to scalar code and helper imports, or the
 * same bytes when it has no SIMD. Throws SimdError for what it cannot
 * lower or a module whose types do not check.
 */
export function lowerSimd(bytes: Uint8Array): Uint8Array {
  const secs = sections(bytes);
  const ctx: Ctx = {
    types: [],
    funcTypes: [],
    imports: 0,
    globals: [],
    globalIndex: [],
    tables: [],
    helpers: new Map(),
    helperTypes: [],
    v128BlockType: -1,
    funcShift: (f) => f,
  };
  const get = (id: number) => secs.find((s) => s.id === id);
  readTypeSection(get(1), ctx);
  readImportSection(get(2), ctx);
  readFunctionSection(get(3), ctx);
  readTableSection(get(4), ctx);
  readGlobalSection(get(6), ctx);
  // First pass over the code: which helpers are needed, and is there SIMD at all.
  const code = get(10);
  let simd = ctx.types.some((t) => usesV128(t.params) || usesV128(t.results)) || ctx.globals.some((g) => g.type === "v128");
  const bodies = code ? readCodeSection(code, ctx) : [];
  if (!simd && !bodies.some(mayUseSimd)) return bytes;
  try {
    for (const b of bodies) simd = rewriteBody(b, ctx, true, () => (simd = true)).simd || simd;
  } catch (e) {
    if (e instanceof SimdError) e.simdSeen = simd;
    throw e;
  }
  if (!simd) return bytes;

  // The helpers are WASI imports so that the instance layout stays the one
  // the glue expects (glue.ts), which needs the module to import WASI already.
  if (ctx.helpers.size && !ctx.imports)
    throw new SimdError("a module using SIMD must import WASI functions (a WASI command does)", "unsupported_module");
  if (!get(1)) throw new SimdError("a module using SIMD has no type section");
  ctx.v128BlockType = ctx.types.length + ctx.helperTypes.length;
  const imports = ctx.imports;
  const helperCount = ctx.helpers.size;
  ctx.funcShift = (f) => (f < imports ? f : f + helperCount);

  const out = new Writer();
  out.bytes(bytes.subarray(0, 8));
  const emit = (id: number, body: number[] | Uint8Array) => {
    out.byte(id);
    out.u32(body.length);
    out.bytes(body);
  };
  for (const s of secs) {
    switch (s.id) {
      case 1:
        emit(1, typeSection(ctx));
        break;
      case 2:
        emit(2, importSection(s.body, ctx));
        break;
      case 6:
        emit(6, globalSection(s.body, ctx));
        break;
      case 7:
        emit(7, exportSection(s.body, ctx));
        break;
      case 8: {
        const w = new Writer();
        w.u32(ctx.funcShift(new Reader(s.body).u32()));
        emit(8, w.parts);
        break;
      }
      case 9:
        emit(9, elementSection(s.body, ctx));
        break;
      case 10: {
        const w = new Writer();
        w.u32(bodies.length);
        for (const b of bodies) {
          const body = rewriteBody(b, ctx, false, () => {}).out;
          w.u32(body.length);
          w.bytes(body);
        }
        emit(10, w.parts);
        break;
      }
      case 11:
        emit(11, dataSection(s.body, ctx));
        break;
      default:
        emit(s.id, s.body);
    }
  }
  return new Uint8Array(out.parts);
}

function readTypeSection(s: Section | undefined, ctx: Ctx) {
  if (!s) return;
  const r = new Reader(s.body);
  for (let n = r.u32(); n > 0; n--) {
    if (r.byte() !== 0x60) r.fail("not a function type");
    const params = Array.from({ length: r.u32() }, () => readValType(r));
    const results = Array.from({ length: r.u32() }, () => readValType(r));
    ctx.types.push({ params, results });
  }
}

function readImportSection(s: Section | undefined, ctx: Ctx) {
  if (!s) return;
  const r = new Reader(s.body);
  for (let n = r.u32(); n > 0; n--) {
    r.take(r.u32());
    r.take(r.u32());
    if (r.byte() !== 0) r.fail("only function imports are supported");
    ctx.funcTypes.push(r.u32());
    ctx.imports++;
  }
}

function readFunctionSection(s: Section | undefined, ctx: Ctx) {
  if (!s) return;
  const r = new Reader(s.body);
  for (let n = r.u32(); n > 0; n--) ctx.funcTypes.push(r.u32());
}

function readTableSection(s: Section | undefined, ctx: Ctx) {
  if (!s) return;
  const r = new Reader(s.body);
  for (let n = r.u32(); n > 0; n--) {
    ctx.tables.push(readValType(r));
    const flags = r.byte();
    r.u32();
    if (flags & 1) r.u32();
  }
}

/** Skips (or, given a writer, copies with indices remapped) a constant expression. */
function constExpr(r: Reader, ctx: Ctx, w?: Writer): Uint8Array | undefined {
  let v128: Uint8Array | undefined;
  for (;;) {
    const op = r.byte();
    w?.byte(op);
    if (op === 0x0b) return v128;
    // Reads happen whether or not there is a writer (`w?.f(read())` would skip them).
    if (op === 0x41 || op === 0x42) {
      const imm = r.sleb();
      w?.bytes(imm);
    } else if (op === 0x43 || op === 0x44) {
      const imm = r.take(op === 0x43 ? 4 : 8);
      w?.bytes(imm);
    } else if (op === 0x23) {
      const g = ctx.globalIndex[r.u32()] ?? r.fail("unknown global");
      w?.u32(g);
    } else if (op === 0xd2) {
      const f = ctx.funcShift(r.u32());
      w?.u32(f);
    } else if (op === 0xd0) {
      const t = r.byte();
      w?.byte(t);
    } else if (op === 0xfd && r.u32() === 12) v128 = r.take(16);
    else if (![0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e].includes(op)) r.fail("unsupported constant expression");
  }
}

function readGlobalSection(s: Section | undefined, ctx: Ctx) {
  if (!s) return;
  const r = new Reader(s.body);
  let next = 0;
  for (let n = r.u32(); n > 0; n--) {
    const type = readValType(r);
    const mutable = r.byte() === 1;
    ctx.globals.push({ type, mutable });
    ctx.globalIndex.push(next);
    next += type === "v128" ? 2 : 1;
    constExpr(r, ctx);
  }
}

function typeSection(ctx: Ctx): number[] {
  const all = [
    ...ctx.types.map((t) => ({ params: lower(t.params), results: lower(t.results) })),
    ...ctx.helperTypes,
    { params: [], results: ["i64", "i64"] as T[] },
  ];
  const w = new Writer();
  w.vec(all.map(encodeType));
  return w.parts;
}

function importSection(body: Uint8Array, ctx: Ctx): number[] {
  const r = new Reader(body);
  const n = r.u32();
  const w = new Writer();
  w.u32(n + ctx.helpers.size);
  w.bytes(body.subarray(r.pos));
  let i = 0;
  for (const name of ctx.helpers.keys()) {
    w.name(WASI_MODULE);
    w.name(name);
    w.byte(0);
    w.u32(ctx.types.length + i++);
  }
  return w.parts;
}

function globalSection(body: Uint8Array, ctx: Ctx): number[] {
  const r = new Reader(body);
  const n = r.u32();
  const w = new Writer();
  w.u32(ctx.globals.reduce((k, g) => k + (g.type === "v128" ? 2 : 1), 0));
  for (let i = 0; i < n; i++) {
    const type = readValType(r);
    const mut = r.byte();
    if (type !== "v128") {
      w.byte(CODE[type]!);
      w.byte(mut);
      constExpr(r, ctx, w);
      continue;
    }
    const value = constExpr(r, ctx) ?? r.fail("a v128 global's initializer must be v128.const");
    for (const half of [le64(value, 0), le64(value, 8)]) {
      w.byte(0x7e);
      w.byte(mut);
      w.byte(0x42);
      w.s64(half);
      w.byte(0x0b);
    }
  }
  return w.parts;
}

function exportSection(body: Uint8Array, ctx: Ctx): number[] {
  const r = new Reader(body);
  const w = new Writer();
  const n = r.u32();
  w.u32(n);
  for (let i = 0; i < n; i++) {
    const len = r.u32();
    w.u32(len);
    w.bytes(r.take(len));
    const kind = r.byte();
    const index = r.u32();
    w.byte(kind);
    if (kind === 0) w.u32(ctx.funcShift(index));
    else if (kind === 3 && ctx.globals[index]?.type === "v128") throw new SimdError("exporting a v128 global is not supported");
    else w.u32(kind === 3 ? (ctx.globalIndex[index] ?? index) : index);
  }
  return w.parts;
}

function elementSection(body: Uint8Array, ctx: Ctx): number[] {
  const r = new Reader(body);
  const w = new Writer();
  const n = r.u32();
  w.u32(n);
  for (let i = 0; i < n; i++) {
    const flags = r.u32();
    w.u32(flags);
    if (flags > 7) r.fail("unknown element segment kind");
    if (flags === 2 || flags === 6) w.u32(r.u32()); // table index
    if (!(flags & 1)) constExpr(r, ctx, w); // active: offset
    if (flags & 3) w.byte(r.byte()); // element kind or reference type
    const count = r.u32();
    w.u32(count);
    for (let k = 0; k < count; k++) {
      if (flags & 4) constExpr(r, ctx, w);
      else w.u32(ctx.funcShift(r.u32()));
    }
  }
  return w.parts;
}

function dataSection(body: Uint8Array, ctx: Ctx): number[] {
  const r = new Reader(body);
  const w = new Writer();
  const n = r.u32();
  w.u32(n);
  for (let i = 0; i < n; i++) {
    const flags = r.u32();
    w.u32(flags);
    if (flags === 2) w.u32(r.u32());
    if (flags !== 1) constExpr(r, ctx, w);
    const len = r.u32();
    w.u32(len);
    w.bytes(r.take(len));
  }
  return w.parts;
}

// ---- function bodies ------------------------------------------------------------

interface Body {
  func: number; // function index (imports included)
  locals: { count: number; type: T }[];
  code: Uint8Array; // the expression, through its final `end`
}

function readCodeSection(s: Section, ctx: Ctx): Body[] {
  const r = new Reader(s.body);
  const bodies: Body[] = [];
  const n = r.u32();
  for (let i = 0; i < n; i++) {
    const size = r.u32();
    const end = r.pos + size;
    const locals: Body["locals"] = [];
    let total = 0;
    for (let k = r.u32(); k > 0; k--) {
      const count = r.u32();
      total += count;
      if (total > 50_000) r.fail("too many locals");
      locals.push({ count, type: readValType(r) });
    }
    bodies.push({ func: ctx.imports + i, locals, code: r.b.subarray(r.pos, end) });
    r.pos = end;
  }
  return bodies;
}

/**
 * A quick pass over a body, skipping immediates without tracking types:
 * false when it certainly has no SIMD, so a module without SIMD costs one
 * lean decode. An instruction it does not know makes it answer true (the
 * full pass then decides).
 */
function mayUseSimd(body: Body): boolean {
  if (body.locals.some((l) => l.type === "v128")) return true;
  const r = new Reader(body.code);
  const skip = (n: number) => {
    for (let i = 0; i < n; i++) r.u32();
  };
  while (r.pos < body.code.length) {
    const op = r.byte();
    if (op === 0xfd) return true;
    if ((op >= 0x45 && op <= 0xc4) || op === 0x00 || op === 0x01 || op === 0x05 || op === 0x0b || op === 0x0f) continue;
    if (op === 0x1a || op === 0x1b || op === 0xd1) continue;
    if (op >= 0x02 && op <= 0x04) {
      if (r.blockType() === 0x7b) return true;
    } else if (op === 0x0c || op === 0x0d || op === 0x10 || (op >= 0x20 && op <= 0x26) || op === 0xd2) skip(1);
    else if (op === 0x0e) skip(r.u32() + 1);
    else if (op === 0x11 || (op >= 0x28 && op <= 0x3e)) skip(2);
    else if (op === 0x1c) {
      for (let n = r.u32(); n > 0; n--) if (r.byte() === 0x7b) return true;
    } else if (op === 0x3f || op === 0x40 || op === 0xd0) r.byte();
    else if (op === 0x41 || op === 0x42) r.sleb();
    else if (op === 0x43 || op === 0x44) r.take(op === 0x43 ? 4 : 8);
    else if (op === 0xfc) {
      const sub = r.u32();
      if (sub <= 7) continue;
      if (sub === 8) (r.u32(), r.byte());
      else if (sub === 10) (r.byte(), r.byte());
      else if (sub === 11) r.byte();
      else if (sub === 12 || sub === 14) skip(2);
      else if (sub === 9 || sub === 13 || (sub >= 15 && sub <= 17)) skip(1);
      else return true;
    } else return true;
  }
  return false;
}

interface Frame {
  op: number; // 0x02 block, 0x03 loop, 0x04 if, 0x05 else; 0 the function
  params: T[];
  results: T[];
  height: number;
  unreachable: boolean;
}

/**
 * Rewrites one body. With `scan` set it only collects the helpers the body
 * needs (ctx.helpers) and reports whether it uses SIMD; otherwise it returns
 * the lowered body (locals and expression).
 */
function rewriteBody(body: Body, ctx: Ctx, scan: boolean, seen: () => void): { simd: boolean; out: number[] } {
  const fnType = ctx.types[ctx.funcTypes[body.func]!] ?? { params: [], results: [] };
  const localTypes: T[] = [...fnType.params];
  for (const l of body.locals) for (let i = 0; i < l.count; i++) localTypes.push(l.type);
  const localIndex: number[] = [];
  let next = 0;
  for (const t of localTypes) {
    localIndex.push(next);
    next += t === "v128" ? 2 : 1;
  }
  // Scratch locals for rewrites that need to reorder the stack.
  const S = { a: next, l: next + 1, h: next + 2, l2: next + 3, h2: next + 4, x32: next + 5, x64: next + 6 };
  let simd = localTypes.includes("v128");
  if (simd) seen();

  const r = new Reader(body.code);
  const w = new Writer(scan);
  const stack: T[] = [];
  const frames: Frame[] = [{ op: 0, params: [], results: fnType.results, height: 0, unreachable: false }];
  const top = () => frames[frames.length - 1]!;
  const push = (...ts: T[]) => stack.push(...ts);
  const pop = (want?: T): T => {
    const f = top();
    if (stack.length === f.height) {
      if (f.unreachable) return want ?? "?";
      r.fail(`type mismatch: expected ${want ?? "a value"} on an empty stack`);
    }
    const t = stack.pop()!;
    if (want && t !== "?" && t !== want) r.fail(`type mismatch: expected ${want}, got ${t}`);
    return t;
  };
  const popAll = (ts: T[]) => {
    for (let i = ts.length - 1; i >= 0; i--) pop(ts[i]);
  };
  const setUnreachable = () => {
    stack.length = top().height;
    top().unreachable = true;
  };
  const labelTypes = (depth: number): T[] => {
    const f = frames[frames.length - 1 - depth] ?? r.fail("branch depth out of range");
    return f.op === 0x03 ? f.params : f.results;
  };
  const blockSig = (bt: number): FuncType => {
    if (bt === -1) return { params: [], results: [] };
    if (bt < 0x100) return { params: [], results: [VAL[bt]!] };
    return ctx.types[bt - 0x100] ?? r.fail("unknown block type");
  };
  const helper = (name: string, params: T[], results: T[]): number => {
    let i = ctx.helpers.get(name);
    if (i === undefined) {
      i = ctx.helpers.size;
      ctx.helpers.set(name, i);
      ctx.helperTypes.push({ params: lower(params), results: lower(results) });
    }
    return ctx.imports + i;
  };
  const local = (opcode: number, index: number) => {
    w.byte(opcode);
    w.u32(index);
  };
  const memarg = (op: number, align: number, offset: number) => {
    w.byte(op);
    w.u32(align);
    w.u32(offset);
  };
  const copy = (from: number) => w.bytes(body.code.subarray(from, r.pos));

  while (r.pos < body.code.length) {
    const at = r.pos;
    const op = r.byte();
    if (op >= 0x45 && op <= 0xc4) {
      numeric(op, pop, push, r);
      copy(at);
      continue;
    }
    switch (op) {
      case 0x00: // unreachable
        setUnreachable();
        copy(at);
        break;
      case 0x01:
        copy(at);
        break;
      case 0x02:
      case 0x03:
      case 0x04: {
        const bt = r.blockType();
        const sig = blockSig(bt);
        if (op === 0x04) pop("i32");
        popAll(sig.params);
        frames.push({ op, params: sig.params, results: sig.results, height: stack.length, unreachable: false });
        push(...sig.params);
        w.byte(op);
        if (bt === 0x7b) {
          simd = true;
          w.s64(BigInt(ctx.v128BlockType));
        } else copy(at + 1);
        break;
      }
      case 0x05: {
        const f = top();
        if (f.op !== 0x04) r.fail("else without if");
        popAll(f.results);
        if (stack.length !== f.height) r.fail("type mismatch at else");
        f.op = 0x05;
        f.unreachable = false;
        push(...f.params);
        copy(at);
        break;
      }
      case 0x0b: {
        const f = top();
        popAll(f.results);
        if (stack.length !== f.height) r.fail("type mismatch at end of block");
        if (f.op === 0x04 && (f.params.length || f.results.length) && f.params.join() !== f.results.join())
          r.fail("if without else must leave its parameters");
        frames.pop();
        push(...f.results);
        copy(at);
        if (!frames.length && r.pos !== body.code.length) r.fail("code after the end of the function");
        break;
      }
      case 0x0c: {
        popAll(labelTypes(r.u32()));
        setUnreachable();
        copy(at);
        break;
      }
      case 0x0d: {
        const types = labelTypes(r.u32());
        pop("i32");
        popAll(types);
        push(...types);
        copy(at);
        break;
      }
      case 0x0e: {
        const n = r.u32();
        const depths = Array.from({ length: n + 1 }, () => r.u32());
        pop("i32");
        const arity = labelTypes(depths[n]!).length;
        for (const d of depths) if (labelTypes(d).length !== arity) r.fail("br_table targets differ in arity");
        popAll(labelTypes(depths[n]!));
        setUnreachable();
        copy(at);
        break;
      }
      case 0x0f:
        popAll(fnType.results);
        setUnreachable();
        copy(at);
        break;
      case 0x10: {
        const f = r.u32();
        const t = ctx.types[ctx.funcTypes[f] ?? -1] ?? r.fail("unknown function");
        popAll(t.params);
        push(...t.results);
        w.byte(0x10);
        w.u32(ctx.funcShift(f));
        break;
      }
      case 0x11: {
        const t = ctx.types[r.u32()] ?? r.fail("unknown type");
        r.u32();
        pop("i32");
        popAll(t.params);
        push(...t.results);
        copy(at);
        break;
      }
      case 0x1a: {
        const t = pop();
        if (t === "v128") w.byte(0x1a);
        copy(at);
        break;
      }
      case 0x1b:
      case 0x1c: {
        let typed: T | undefined;
        if (op === 0x1c) {
          if (r.u32() !== 1) r.fail("select takes one type");
          typed = readValType(r);
        }
        pop("i32");
        const b = pop(typed);
        const a = pop(typed ?? (b === "?" ? undefined : b));
        const t = typed ?? (a === "?" ? b : a);
        push(t);
        if (t === "v128") {
          simd = true;
          for (const i of [S.a, S.h2, S.l2, S.h, S.l]) local(0x21, i);
          for (const [x, y] of [[S.l, S.l2], [S.h, S.h2]] as const) {
            local(0x20, x);
            local(0x20, y);
            local(0x20, S.a);
            w.byte(0x1b);
          }
        } else if (typed) {
          w.byte(0x1c);
          w.u32(1);
          w.byte(CODE[typed]!);
        } else w.byte(0x1b);
        break;
      }
      case 0x20:
      case 0x21:
      case 0x22: {
        const i = r.u32();
        const t = localTypes[i] ?? r.fail("unknown local");
        const n = localIndex[i]!;
        if (op !== 0x20) pop(t);
        if (op !== 0x21) push(t);
        if (t !== "v128") local(op, n);
        else if (op === 0x20) (local(0x20, n), local(0x20, n + 1));
        else if (op === 0x21) (local(0x21, n + 1), local(0x21, n));
        else (local(0x21, n + 1), local(0x22, n), local(0x20, n + 1));
        break;
      }
      case 0x23:
      case 0x24: {
        const i = r.u32();
        const g = ctx.globals[i] ?? r.fail("unknown global");
        const n = ctx.globalIndex[i]!;
        if (op === 0x24) pop(g.type);
        else push(g.type);
        if (g.type !== "v128") local(op, n);
        else if (op === 0x23) (local(0x23, n), local(0x23, n + 1));
        else (local(0x24, n + 1), local(0x24, n));
        break;
      }
      case 0x25: {
        const t = ctx.tables[r.u32()] ?? r.fail("unknown table");
        pop("i32");
        push(t);
        copy(at);
        break;
      }
      case 0x26: {
        const t = ctx.tables[r.u32()] ?? r.fail("unknown table");
        pop(t);
        pop("i32");
        copy(at);
        break;
      }
      case 0x3f:
      case 0x40:
        r.byte();
        if (op === 0x40) pop("i32");
        push("i32");
        copy(at);
        break;
      case 0x41:
        r.sleb();
        push("i32");
        copy(at);
        break;
      case 0x42:
        r.sleb();
        push("i64");
        copy(at);
        break;
      case 0x43:
        r.take(4);
        push("f32");
        copy(at);
        break;
      case 0x44:
        r.take(8);
        push("f64");
        copy(at);
        break;
      case 0xd0: {
        push(readValType(r));
        copy(at);
        break;
      }
      case 0xd1: {
        pop();
        push("i32");
        copy(at);
        break;
      }
      case 0xd2: {
        const f = r.u32();
        w.byte(0xd2);
        w.u32(ctx.funcShift(f));
        push("funcref");
        break;
      }
      case 0xfc:
        prefixFc(r, ctx, pop, push);
        copy(at);
        break;
      case 0xfd:
        simd = true;
        seen();
        simdOp(r.u32());
        break;
      default:
        if (op >= 0x28 && op <= 0x3e) {
          r.u32();
          r.u32();
          memoryOp(op, pop, push);
          copy(at);
          break;
        }
        throw new SimdError(`instruction 0x${op.toString(16)} is not supported together with SIMD`, "unsupported_module");
    }
  }
  if (frames.length) r.fail("function body does not end");

  function simdOp(code: number) {
    const o = SIMD.get(code);
    if (!o) throw new SimdError(`SIMD instruction 0xfd ${code} is not supported (relaxed SIMD is not)`, "unsupported_module");
    let align = 0;
    let offset = 0;
    let lane = 0;
    let imm: Uint8Array | undefined;
    if (o.imm === "m" || o.imm === "ml") {
      align = r.u32();
      offset = r.u32();
      if (2 ** align > o.bytes!) r.fail(`${o.name}: alignment must not be larger than natural`);
    }
    if (o.imm === "l" || o.imm === "ml") {
      lane = r.byte();
      if (lane >= o.lanes!) r.fail(`${o.name}: lane index ${lane} out of range`);
    }
    if (o.imm === "c" || o.imm === "s") imm = r.take(16);
    if (o.imm === "s" && imm!.some((x) => x >= 32)) r.fail("i8x16.shuffle: lane index out of range");
    popAll(o.params);
    push(...o.results);
    if (scan) {
      if (!o.imm.includes("m") && o.imm !== "c") helperFor(o);
      else if (o.imm === "m" && o.name.includes("x")) helper(helperName(o.name), ["i64"], ["v128"]);
      else if (o.name.endsWith("_splat")) helperFor(splatOf(o));
      else if (o.imm === "ml") helperFor(laneOpOf(o));
      return;
    }
    lowerOp(o, align, offset, lane, imm);
  }

  function helperFor(o: SimdOp): number {
    const params = [...o.params, ...(o.imm === "l" ? (["i32"] as T[]) : []), ...(o.imm === "s" ? (["v128"] as T[]) : [])];
    return helper(helperName(o.name), params, o.results);
  }

  function splatOf(o: SimdOp): SimdOp {
    const shape = { 1: "i8x16", 2: "i16x8", 4: "i32x4", 8: "i64x2" }[o.bytes as 1 | 2 | 4 | 8];
    return { name: `${shape}.splat`, params: [o.bytes === 8 ? "i64" : "i32"], results: ["v128"], imm: "" };
  }

  /** The lane instruction behind a load_lane (replace) or store_lane (extract). */
  function laneOpOf(o: SimdOp): SimdOp {
    const shape = { 1: "i8x16", 2: "i16x8", 4: "i32x4", 8: "i64x2" }[o.bytes as 1 | 2 | 4 | 8];
    const scalar: T = o.bytes === 8 ? "i64" : "i32";
    const store = o.name.includes("store");
    const suffix = o.bytes! < 4 ? "_u" : "";
    return store
      ? { name: `${shape}.extract_lane${suffix}`, params: ["v128"], results: [scalar], imm: "l" }
      : { name: `${shape}.replace_lane`, params: ["v128", scalar], results: ["v128"], imm: "l" };
  }

  function lowerOp(o: SimdOp, align: number, offset: number, lane: number, imm?: Uint8Array) {
    const callOp = (x: SimdOp) => {
      w.byte(0x10);
      w.u32(helperFor(x));
    };
    const i32 = (v: number) => (w.byte(0x41), w.s64(BigInt(v)));
    const i64 = (v: bigint) => (w.byte(0x42), w.s64(v));
    // Offsets past 4 GiB cannot be encoded; such an access is out of bounds for every memory.
    const load = (opcode: number, bytes: number, extra = 0) => {
      const off = offset + extra;
      if (off > 0xffffffff) memarg(0x29, 0, 0xffffffff);
      else memarg(opcode, Math.min(align, Math.log2(bytes)), off);
    };
    switch (o.name) {
      case "v128.const":
        i64(le64(imm!, 0));
        i64(le64(imm!, 8));
        return;
      case "v128.load":
        local(0x22, S.a);
        load(0x29, 8);
        local(0x20, S.a);
        load(0x29, 8, 8);
        return;
      case "v128.store":
        local(0x21, S.h);
        local(0x21, S.l);
        local(0x22, S.a);
        local(0x20, S.h);
        storeAt(0x37, 8, 8);
        local(0x20, S.a);
        local(0x20, S.l);
        storeAt(0x37, 8, 0);
        return;
      case "v128.load32_zero":
        load(0x28, 4);
        w.byte(0xad); // i64.extend_i32_u
        i64(0n);
        return;
      case "v128.load64_zero":
        load(0x29, 8);
        i64(0n);
        return;
    }
    if (o.name.endsWith("_splat")) {
      load({ 1: 0x2d, 2: 0x2f, 4: 0x28, 8: 0x29 }[o.bytes as 1 | 2 | 4 | 8], o.bytes!);
      callOp(splatOf(o));
      return;
    }
    if (o.imm === "m") {
      load(0x29, 8); // v128.loadNxM_s/u: 64 bits, widened by the helper
      w.byte(0x10);
      w.u32(helper(helperName(o.name), ["i64"], ["v128"]));
      return;
    }
    if (o.imm === "ml") {
      const lop = laneOpOf(o);
      local(0x21, S.h);
      local(0x21, S.l);
      if (o.name.includes("store")) {
        local(0x20, S.l);
        local(0x20, S.h);
        i32(lane);
        callOp(lop);
        storeAt({ 1: 0x3a, 2: 0x3b, 4: 0x36, 8: 0x37 }[o.bytes as 1 | 2 | 4 | 8], o.bytes!, 0);
      } else {
        load({ 1: 0x2d, 2: 0x2f, 4: 0x28, 8: 0x29 }[o.bytes as 1 | 2 | 4 | 8], o.bytes!);
        const x = o.bytes === 8 ? S.x64 : S.x32;
        local(0x21, x);
        local(0x20, S.l);
        local(0x20, S.h);
        local(0x20, x);
        i32(lane);
        callOp(lop);
      }
      return;
    }
    if (o.imm === "l") i32(lane);
    if (o.imm === "s") {
      i64(le64(imm!, 0));
      i64(le64(imm!, 8));
    }
    callOp(o);

    function storeAt(opcode: number, bytes: number, extra: number) {
      const off = offset + extra;
      if (off > 0xffffffff) {
        w.byte(0x1a); // the value; the address then traps as a load
        memarg(0x29, 0, 0xffffffff);
        w.byte(0x1a);
      } else memarg(opcode, Math.min(align, Math.log2(bytes)), off);
    }
  }

  const out = new Writer();
  const groups = body.locals.map((l) => (l.type === "v128" ? { count: l.count * 2, type: "i64" as T } : l));
  groups.push({ count: 1, type: "i32" }, { count: 4, type: "i64" }, { count: 1, type: "i32" }, { count: 1, type: "i64" });
  out.u32(groups.length);
  for (const g of groups) {
    out.u32(g.count);
    out.byte(CODE[g.type]!);
  }
  out.bytes(w.parts);
  return { simd, out: out.parts };
}

function numeric(op: number, pop: (t?: T) => T, push: (...t: T[]) => void, r: Reader) {
  const un = (a: T, res: T) => (pop(a), push(res));
  const bin = (a: T, res: T) => (pop(a), pop(a), push(res));
  if (op === 0x45) un("i32", "i32");
  else if (op <= 0x4f) bin("i32", "i32");
  else if (op === 0x50) un("i64", "i32");
  else if (op <= 0x5a) bin("i64", "i32");
  else if (op <= 0x60) bin("f32", "i32");
  else if (op <= 0x66) bin("f64", "i32");
  else if (op <= 0x69) un("i32", "i32");
  else if (op <= 0x78) bin("i32", "i32");
  else if (op <= 0x7b) un("i64", "i64");
  else if (op <= 0x8a) bin("i64", "i64");
  else if (op <= 0x91) un("f32", "f32");
  else if (op <= 0x98) bin("f32", "f32");
  else if (op <= 0x9f) un("f64", "f64");
  else if (op <= 0xa6) bin("f64", "f64");
  else {
    const conv: Record<number, [T, T]> = {
      0xa7: ["i64", "i32"], 0xa8: ["f32", "i32"], 0xa9: ["f32", "i32"], 0xaa: ["f64", "i32"], 0xab: ["f64", "i32"],
      0xac: ["i32", "i64"], 0xad: ["i32", "i64"], 0xae: ["f32", "i64"], 0xaf: ["f32", "i64"], 0xb0: ["f64", "i64"],
      0xb1: ["f64", "i64"], 0xb2: ["i32", "f32"], 0xb3: ["i32", "f32"], 0xb4: ["i64", "f32"], 0xb5: ["i64", "f32"],
      0xb6: ["f64", "f32"], 0xb7: ["i32", "f64"], 0xb8: ["i32", "f64"], 0xb9: ["i64", "f64"], 0xba: ["i64", "f64"],
      0xbb: ["f32", "f64"], 0xbc: ["f32", "i32"], 0xbd: ["f64", "i64"], 0xbe: ["i32", "f32"], 0xbf: ["i64", "f64"],
      0xc0: ["i32", "i32"], 0xc1: ["i32", "i32"], 0xc2: ["i64", "i64"], 0xc3: ["i64", "i64"], 0xc4: ["i64", "i64"],
    };
    const c = conv[op] ?? r.fail("unknown instruction");
    un(c[0], c[1]);
  }
}

function memoryOp(op: number, pop: (t?: T) => T, push: (...t: T[]) => void) {
  const loads: Record<number, T> = { 0x28: "i32", 0x29: "i64", 0x2a: "f32", 0x2b: "f64" };
  if (op <= 0x35) {
    pop("i32");
    push(loads[op] ?? (op <= 0x2f ? "i32" : "i64"));
    return;
  }
  const stores: Record<number, T> = { 0x36: "i32", 0x37: "i64", 0x38: "f32", 0x39: "f64", 0x3a: "i32", 0x3b: "i32" };
  pop(stores[op] ?? "i64");
  pop("i32");
}

function prefixFc(r: Reader, ctx: Ctx, pop: (t?: T) => T, push: (...t: T[]) => void) {
  const sub = r.u32();
  const ints = (n: number) => {
    for (let i = 0; i < n; i++) pop("i32");
  };
  if (sub <= 7) {
    const from: T = sub < 2 || sub === 4 || sub === 5 ? "f32" : "f64";
    pop(from);
    push(sub < 4 ? "i32" : "i64");
  } else if (sub === 8) (r.u32(), r.byte(), ints(3));
  else if (sub === 9) r.u32();
  else if (sub === 10) (r.byte(), r.byte(), ints(3));
  else if (sub === 11) (r.byte(), ints(3));
  else if (sub === 12) (r.u32(), r.u32(), ints(3));
  else if (sub === 13) r.u32();
  else if (sub === 14) (r.u32(), r.u32(), ints(3));
  else if (sub === 15) {
    const t = ctx.tables[r.u32()] ?? r.fail("unknown table");
    pop("i32");
    pop(t);
    push("i32");
  } else if (sub === 16) (r.u32(), push("i32"));
  else if (sub === 17) {
    const t = ctx.tables[r.u32()] ?? r.fail("unknown table");
    pop("i32");
    pop(t);
    pop("i32");
  } else throw new SimdError(`instruction 0xfc ${sub} is not supported together with SIMD`, "unsupported_module");
}
