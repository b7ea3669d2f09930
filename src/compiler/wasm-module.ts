// Reads what the compiler must know about a module before it spends seconds
// on wasm2c and the C compiler: its imports with their signatures, its
// exports and its memories. Full validation is wabt's job (wasm-validate);
// this reader only walks the sections it needs and fails on anything that
// does not parse, with the byte offset.

export type ValType = "i32" | "i64" | "f32" | "f64" | "v128" | "funcref" | "externref";

export interface FuncType {
  params: ValType[];
  results: ValType[];
}

export interface Import {
  module: string;
  name: string;
  kind: "func" | "table" | "memory" | "global" | "tag";
  type?: FuncType;
}

export interface Export {
  name: string;
  kind: "func" | "table" | "memory" | "global" | "tag";
}

export interface ModuleInfo {
  imports: Import[];
  exports: Export[];
  definedMemories: number;
  memoryLimits: { min: number; max?: number }[];
}

export class WasmFormatError extends Error {}

const VALTYPES: Record<number, ValType> = {
  0x7f: "i32",
  0x7e: "i64",
  0x7d: "f32",
  0x7c: "f64",
  0x7b: "v128",
  0x70: "funcref",
  0x6f: "externref",
};
const KINDS = ["func", "table", "memory", "global", "tag"] as const;

class Reader {
  pos = 0;
  constructor(private readonly bytes: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.bytes.length;
  }

  fail(what: string): never {
    throw new WasmFormatError(`${what} at byte ${this.pos}`);
  }

  byte(): number {
    if (this.pos >= this.bytes.length) this.fail("unexpected end of module");
    return this.bytes[this.pos++]!;
  }

  u32(): number {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
    }
    this.fail("malformed LEB128 integer");
  }

  name(): string {
    const len = this.u32();
    if (this.pos + len > this.bytes.length) this.fail("name runs past the end");
    const s = new TextDecoder("utf-8", { fatal: true }).decode(
      this.bytes.subarray(this.pos, this.pos + len),
    );
    this.pos += len;
    return s;
  }

  valtype(): ValType {
    const t = VALTYPES[this.byte()];
    return t ?? this.fail("unknown value type");
  }

  limits(): { min: number; max?: number } {
    const flags = this.byte();
    const min = this.u32();
    return flags & 1 ? { min, max: this.u32() } : { min };
  }
}

function readTypes(r: Reader): FuncType[] {
  const types: FuncType[] = [];
  for (let n = r.u32(); n > 0; n--) {
    if (r.byte() !== 0x60) r.fail("unsupported type form");
    const params = Array.from({ length: r.u32() }, () => r.valtype());
    const results = Array.from({ length: r.u32() }, () => r.valtype());
    types.push({ params, results });
  }
  return types;
}

function readImports(r: Reader, types: FuncType[], info: ModuleInfo): void {
  for (let n = r.u32(); n > 0; n--) {
    const module = r.name();
    const name = r.name();
    const kind = KINDS[r.byte()] ?? r.fail("unknown import kind");
    const imp: Import = { module, name, kind };
    if (kind === "func") {
      imp.type = types[r.u32()] ?? r.fail("import type out of range");
    } else if (kind === "table") {
      r.valtype();
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

function readExports(r: Reader, info: ModuleInfo): void {
  for (let n = r.u32(); n > 0; n--) {
    const name = r.name();
    const kind = KINDS[r.byte()] ?? r.fail("unknown export kind");
    r.u32();
    info.exports.push({ name, kind });
  }
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
  const r = new Reader(bytes);
  r.pos = 8;
  const info: ModuleInfo = { imports: [], exports: [], definedMemories: 0, memoryLimits: [] };
  let types: FuncType[] = [];
  while (!r.done) {
    const id = r.byte();
    const size = r.u32();
    const end = r.pos + size;
    if (end > bytes.length) r.fail(`section ${id} runs past the end`);
    if (id === 1) types = readTypes(r);
    else if (id === 2) readImports(r, types, info);
    else if (id === 5) {
      for (let n = r.u32(); n > 0; n--) {
        info.memoryLimits.push(r.limits());
        info.definedMemories++;
      }
    } else if (id === 7) readExports(r, info);
    r.pos = end;
  }
  return info;
}

export function formatSignature(t: FuncType): string {
  return `(${t.params.join(", ")}) -> (${t.results.join(", ")})`;
}
