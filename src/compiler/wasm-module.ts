// Reads what the compiler must know about a module before it spends seconds
// on wasm2c and the C compiler: where each section lies (the sanitizer
// rewrites the module section by section), the types, imports, functions,
// tables, memories, globals and exports, and the counts and sizes that
// MODULE_LIMITS bounds. Full validation is wabt's job (wasm-validate); this
// reader walks only what it needs and fails on anything that does not
// parse, with the byte offset.
//
// The module is hostile: every count is checked against its limit before
// anything is read or allocated for it, so a declared count of 2^32 costs
// nothing, and all work is linear in the module's size. Function bodies are
// skipped by their size after reading their local declarations; data
// segments are only counted, element segments walked (readElements).

import { checkLimit } from "./limits.ts";

export type ValType = "i32" | "i64" | "f32" | "f64" | "v128" | "funcref" | "externref";
export type RefType = "funcref" | "externref";
export type ExternKind = "func" | "table" | "memory" | "global" | "tag";

export interface FuncType {
  params: ValType[];
  results: ValType[];
}

export interface Import {
  module: string;
  name: string;
  kind: ExternKind;
  type?: FuncType;
}

export interface Export {
  name: string;
  kind: ExternKind;
  index: number;
}

export interface Limits {
  min: number;
  max?: number;
}

export interface Memory extends Limits {
  shared: boolean;
  memory64: boolean;
}

export interface Table extends Limits {
  type: RefType;
}

export interface Section {
  id: number;
  /** Offset of the section id byte. */
  start: number;
  /** Offset of the first content byte (after the size). */
  contentStart: number;
  /** Offset just past the section. */
  end: number;
}

export interface ModuleInfo {
  sections: Section[];
  types: FuncType[];
  imports: Import[];
  /** Type index of each defined function, in function index order after the imported ones. */
  functionTypes: number[];
  /** Defined tables, in index order. */
  tables: Table[];
  /** Value types of the defined globals, in index order. */
  globals: ValType[];
  /** Defined memories: how many, and the first (thaw runs modules with exactly one). */
  memoryCount: number;
  memory?: Memory;
  exports: Export[];
  /** A function declares v128 locals (globals and signatures are in `globals` and `types`). */
  v128Locals?: boolean;
  /** The first imported function an active or passive element segment puts in a table. */
  importInTable?: { segment: number; func: number };
}

export class WasmFormatError extends Error {}

export const SECTION = {
  custom: 0,
  type: 1,
  import: 2,
  function: 3,
  table: 4,
  memory: 5,
  global: 6,
  export: 7,
  start: 8,
  element: 9,
  code: 10,
  data: 11,
  dataCount: 12,
  tag: 13,
} as const;

const VALTYPES: Record<number, ValType> = {
  0x7f: "i32",
  0x7e: "i64",
  0x7d: "f32",
  0x7c: "f64",
  0x7b: "v128",
  0x70: "funcref",
  0x6f: "externref",
};
const KINDS: readonly ExternKind[] = ["func", "table", "memory", "global", "tag"];

const utf8 = new TextDecoder("utf-8", { fatal: true });

class Reader {
  pos = 0;
  constructor(private readonly bytes: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.bytes.length;
  }

  fail(what: string, at = this.pos): never {
    throw new WasmFormatError(`${what} at byte ${at}`);
  }

  byte(): number {
    if (this.pos >= this.bytes.length) this.fail("unexpected end of module");
    return this.bytes[this.pos++]!;
  }

  /** An unsigned LEB128 of up to `bits` bits, as a number (exact up to 2^53). */
  uleb(bits: number): number {
    let result = 0;
    for (let shift = 0; shift < bits; shift += 7) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
    }
    this.fail("malformed LEB128 integer");
  }

  u32(): number {
    return this.uleb(32);
  }

  skip(n: number): void {
    if (this.pos + n > this.bytes.length) this.fail("unexpected end of module");
    this.pos += n;
  }

  name(): string {
    const len = this.u32();
    const at = this.pos;
    this.skip(len);
    try {
      return utf8.decode(this.bytes.subarray(at, at + len));
    } catch {
      this.fail("name is not valid UTF-8", at);
    }
  }

  valtype(): ValType {
    return VALTYPES[this.byte()] ?? this.fail("unknown value type", this.pos - 1);
  }

  reftype(): RefType {
    const t = this.valtype();
    return t === "funcref" || t === "externref" ? t : this.fail("not a reference type", this.pos - 1);
  }

  /** Skips an unsigned or signed LEB128 of up to 64 bits. */
  skipLeb(): void {
    for (let i = 0; i < 10; i++) if ((this.byte() & 0x80) === 0) return;
    this.fail("malformed LEB128 integer");
  }

  /** Skips a constant expression through its `end`: the instructions wasm allows in one. */
  constExpr(): void {
    for (;;) {
      const at = this.pos;
      const op = this.byte();
      if (op === 0x0b) return;
      if (op === 0x41 || op === 0x42 || op === 0x23 || op === 0xd2) this.skipLeb(); // t.const, global.get, ref.func
      else if (op === 0x43) this.skip(4); // f32.const
      else if (op === 0x44) this.skip(8); // f64.const
      else if (op === 0xd0) this.byte(); // ref.null t
      else if (op === 0xfd && this.u32() === 12) this.skip(16); // v128.const
      else if (![0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e].includes(op)) // extended-const add, sub, mul
        this.fail("unsupported instruction in a constant expression", at);
    }
  }

  /** An element expression through its `end`: the function of a `ref.func`, else undefined. */
  elementExpr(): number | undefined {
    const at = this.pos;
    const op = this.byte();
    let func: number | undefined;
    if (op === 0xd2) func = this.u32();
    else if (op === 0xd0) this.byte();
    else if (op === 0x23) this.u32();
    else this.fail("unsupported instruction in an element expression", at);
    if (this.byte() !== 0x0b) this.fail("element expression is not a single instruction", at);
    return func;
  }

  /** Table and memory limits; flag bit 1 is `shared`, bit 2 a 64-bit index type. */
  limits(): Memory {
    const flags = this.byte();
    if (flags > 7) this.fail("unknown limits flags", this.pos - 1);
    const memory64 = (flags & 4) !== 0;
    const bits = memory64 ? 64 : 32;
    const min = this.uleb(bits);
    const max = flags & 1 ? this.uleb(bits) : undefined;
    return { min, ...(max === undefined ? {} : { max }), shared: (flags & 2) !== 0, memory64 };
  }
}

function readTypes(r: Reader, info: ModuleInfo): void {
  const n = r.u32();
  checkLimit("types", n, (v) => `module has ${v} types`);
  for (let i = 0; i < n; i++) {
    if (r.byte() !== 0x60) r.fail("unsupported type form", r.pos - 1);
    const np = r.u32();
    checkLimit("paramsPerType", np, (v) => `type ${i} has ${v} parameters`);
    const params = Array.from({ length: np }, () => r.valtype());
    const nr = r.u32();
    checkLimit("resultsPerType", nr, (v) => `type ${i} has ${v} results`);
    const results = Array.from({ length: nr }, () => r.valtype());
    info.types.push({ params, results });
  }
}

function readImports(r: Reader, info: ModuleInfo): void {
  const n = r.u32();
  // Imports are mostly functions, so the function limit bounds them all; the
  // function, table and global limits then count imported and defined ones.
  checkLimit("functions", n, (v) => `module has ${v} imports`);
  for (let i = 0; i < n; i++) {
    const module = r.name();
    const name = r.name();
    const kind = KINDS[r.byte()] ?? r.fail("unknown import kind", r.pos - 1);
    const imp: Import = { module, name, kind };
    if (kind === "func") {
      imp.type = info.types[r.u32()] ?? r.fail("import type out of range");
    } else if (kind === "table") {
      r.reftype();
      r.limits();
    } else if (kind === "memory") {
      r.limits();
    } else if (kind === "global") {
      r.valtype();
      r.byte();
    } else {
      r.byte();
      r.u32();
    }
    info.imports.push(imp);
  }
}

function readFunctions(r: Reader, info: ModuleInfo): void {
  const n = r.u32();
  const imported = countImports(info, "func");
  checkLimit("functions", imported + n, (v) => `module has ${v} functions`);
  for (let i = 0; i < n; i++) {
    const t = r.u32();
    if (t >= info.types.length) r.fail(`function ${imported + i} has type ${t}, out of range`);
    info.functionTypes.push(t);
  }
}

function readTables(r: Reader, info: ModuleInfo): void {
  const n = r.u32();
  checkLimit("tables", countImports(info, "table") + n, (v) => `module has ${v} tables`);
  for (let i = 0; i < n; i++) {
    const type = r.reftype();
    const { min, max } = r.limits();
    checkLimit("tableInitialElements", min, (v) => `table ${i} starts with ${v} elements`);
    info.tables.push({ type, min, ...(max === undefined ? {} : { max }) });
  }
}

function readGlobals(r: Reader, info: ModuleInfo): void {
  const n = r.u32();
  checkLimit("globals", countImports(info, "global") + n, (v) => `module has ${v} globals`);
  for (let i = 0; i < n; i++) {
    info.globals.push(r.valtype());
    r.byte(); // mutability
    r.constExpr();
  }
}

function readMemories(r: Reader, info: ModuleInfo): void {
  info.memoryCount = r.u32();
  if (info.memoryCount === 0) return;
  info.memory = r.limits();
  checkLimit("memoryInitialPages", info.memory.min, (v) => `memory starts with ${v} pages (64 KiB each)`);
}

function readExports(r: Reader, info: ModuleInfo, counts: Record<ExternKind, number>): void {
  const n = r.u32();
  checkLimit("exports", n, (v) => `module has ${v} exports`);
  const names = new Set<string>();
  for (let i = 0; i < n; i++) {
    const at = r.pos;
    const name = r.name();
    const kind = KINDS[r.byte()] ?? r.fail("unknown export kind", r.pos - 1);
    const index = r.u32();
    // The sanitizer drops most exports before wasm-validate sees the module,
    // so what would make them invalid is checked here.
    if (names.has(name)) r.fail("duplicate export name", at);
    if (index >= counts[kind]) r.fail(`export of ${kind} ${index}, out of range`, at);
    names.add(name);
    info.exports.push({ name, kind, index });
  }
}

function readCode(r: Reader, info: ModuleInfo): void {
  const n = r.u32();
  const imported = countImports(info, "func");
  if (n !== info.functionTypes.length) r.fail("code and function sections disagree on the number of functions");
  for (let i = 0; i < n; i++) {
    const index = imported + i;
    const size = r.u32();
    checkLimit("functionBodyBytes", size, (v) => `function ${index} has a ${v}-byte body`);
    const end = r.pos + size;
    let locals = 0;
    for (let groups = r.u32(); groups > 0; groups--) {
      if (r.pos >= end) r.fail(`function ${index}'s local declarations run past its body`);
      locals += r.u32();
      checkLimit("localsPerFunction", locals, (v) => `function ${index} declares ${v} locals`);
      if (r.valtype() === "v128") info.v128Locals = true;
    }
    if (r.pos > end) r.fail(`function ${index}'s local declarations run past its body`);
    r.skip(end - r.pos);
  }
}

function countImports(info: ModuleInfo, kind: ExternKind): number {
  return info.imports.filter((i) => i.kind === kind).length;
}

/**
 * Element segments are walked for one fact: whether an active or passive
 * segment puts an imported function into a table. wasm2c 1.0.32 gives such
 * an entry the address of the import's field in the instance struct as its
 * module instance, so a call_indirect through it would hand WASI host code a
 * pointer into guest-influenced bytes. Declarative segments (flags 3 and 7)
 * only declare functions for ref.func and fill no table.
 */
function readElements(r: Reader, info: ModuleInfo): void {
  const n = r.u32();
  checkLimit("elementSegments", n, (v) => `module has ${v} element segments`);
  const imported = countImports(info, "func");
  for (let segment = 0; segment < n; segment++) {
    const flags = r.u32();
    if (flags > 7) r.fail("unknown element segment flags");
    const active = (flags & 1) === 0;
    const declarative = (flags & 3) === 3;
    const explicitTable = (flags & 2) !== 0 && active;
    const expressions = (flags & 4) !== 0;
    if (explicitTable) r.u32();
    if (active) r.constExpr();
    if (flags & 3) {
      if (expressions) r.reftype();
      else if (r.byte() !== 0x00) r.fail("unknown element kind");
    }
    for (let items = r.u32(); items > 0; items--) {
      const func = expressions ? r.elementExpr() : r.u32();
      if (func !== undefined && func < imported && !declarative && info.importInTable === undefined)
        info.importInTable = { segment, func };
    }
  }
}

/** Reads a section that is only counted: the vector length it starts with. */
function count(r: Reader, limit: "dataSegments", what: string): void {
  const n = r.u32();
  checkLimit(limit, n, (v) => `module has ${v} ${what}`);
}

export function readModule(bytes: Uint8Array): ModuleInfo {
  if (
    bytes.length < 8 ||
    bytes[0] !== 0x00 ||
    bytes[1] !== 0x61 ||
    bytes[2] !== 0x73 ||
    bytes[3] !== 0x6d
  )
    throw new WasmFormatError("not a WebAssembly module (no \\0asm header)");
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0)
    throw new WasmFormatError("unsupported WebAssembly version (a component, or a newer binary?)");
  checkLimit("moduleBytes", bytes.length, (v) => `module is ${v} bytes`);
  const r = new Reader(bytes);
  r.pos = 8;
  const info: ModuleInfo = { sections: [], types: [], imports: [], functionTypes: [], tables: [], globals: [], memoryCount: 0, exports: [] };
  let tags = 0;
  const seen = new Set<number>();
  while (!r.done) {
    const start = r.pos;
    const id = r.byte();
    const size = r.u32();
    const contentStart = r.pos;
    const end = contentStart + size;
    if (end > bytes.length) r.fail(`section ${id} runs past the end`, start);
    if (id !== SECTION.custom) {
      if (seen.has(id)) r.fail(`section ${id} appears twice`, start);
      seen.add(id);
    }
    if (id === SECTION.custom) r.name();
    else if (id === SECTION.type) readTypes(r, info);
    else if (id === SECTION.import) readImports(r, info);
    else if (id === SECTION.function) readFunctions(r, info);
    else if (id === SECTION.table) readTables(r, info);
    else if (id === SECTION.memory) readMemories(r, info);
    else if (id === SECTION.global) readGlobals(r, info);
    else if (id === SECTION.export)
      readExports(r, info, {
        func: countImports(info, "func") + info.functionTypes.length,
        table: countImports(info, "table") + info.tables.length,
        memory: countImports(info, "memory") + info.memoryCount,
        global: countImports(info, "global") + info.globals.length,
        tag: countImports(info, "tag") + tags,
      });
    else if (id === SECTION.element) readElements(r, info);
    else if (id === SECTION.dataCount || id === SECTION.data) count(r, "dataSegments", "data segments");
    else if (id === SECTION.code) readCode(r, info);
    else if (id === SECTION.tag) tags = r.u32();
    else if (id !== SECTION.start) r.fail(`unknown section ${id}`, start);
    if (r.pos > end) r.fail(`section ${id} runs past its declared size`, start);
    info.sections.push({ id, start, contentStart, end });
    r.pos = end;
  }
  return info;
}

/** The type of function `index` (imported functions first), if it exists. */
export function functionType(info: ModuleInfo, index: number): FuncType | undefined {
  const imported = info.imports.filter((i) => i.kind === "func");
  if (index < imported.length) return imported[index]!.type;
  const t = info.functionTypes[index - imported.length];
  return t === undefined ? undefined : info.types[t];
}

export function formatSignature(t: FuncType): string {
  return `(${t.params.join(", ")}) -> (${t.results.join(", ")})`;
}
