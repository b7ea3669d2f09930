// Rewrites a tenant's module so that no string the tenant chose reaches
// wasm2c. wasm2c copies names into the C it writes: export names into
// `/* export: '...' */` comments (unescaped: a name holding `*/` and a
// newline put its own C into fn.so, and a forged comment could redirect
// the entry point), debug names from the "name" section into identifiers.
// Names are data; thaw never lets them become code. So before wasm2c:
//
// - every custom section goes (the name section, producers, DWARF, ...);
// - the export section is rebuilt: `_start` and `wizer.initialize` under
//   the fixed names in ENTRY_EXPORTS, every other function export under
//   `f<function index>`, and no memory, table or global export (libthaw
//   reaches those through the instance struct). Other function exports stay
//   because an export is what declares a function for `ref.func` in code
//   (the spec's C.refs): dropping it would make a valid module invalid;
// - imports stay, and must all be WASI preview1 functions: inspect() has
//   refused anything else, and this is checked again here because import
//   names become C identifiers too.
//
// Then SIMD is lowered to scalar code and helper imports (simd.ts), because
// wasm2c cannot translate it; a module without SIMD is left as it is.
//
// Every other section keeps its bytes and its place. The artifact key
// hashes the sanitized module and SANITIZER_VERSION, so modules that differ
// only in names share an artifact, and a change here rebuilds them all.

import { lowerSimd, SimdError } from "./simd.ts";
import { WASI_MODULE, WASI_PREVIEW1 } from "./wasi.ts";
import { type Export, type ModuleInfo, SECTION } from "./wasm-module.ts";

/** Bump on any change to the output: it is part of every artifact key. */
export const SANITIZER_VERSION = 2;

/** The entry points thaw calls, by their names in the tenant's module, and their names after sanitizing. */
export const ENTRY_EXPORTS = { "_start": "_start", "wizer.initialize": "initialize" } as const;

/** The name of a function export that is not an entry point: wasm2c's own name for an unnamed function. */
const functionExportName = (index: number) => `f${index}`;

/** n as an unsigned LEB128, as section sizes and counts are encoded. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function exportSection(exports: Export[]): Uint8Array {
  const entries: [string, number][] = [];
  const declared = new Set<number>();
  for (const [tenantName, name] of Object.entries(ENTRY_EXPORTS)) {
    const e = exports.find((x) => x.name === tenantName && x.kind === "func");
    if (e) {
      entries.push([name, e.index]);
      declared.add(e.index);
    }
  }
  const others = exports.filter((e) => e.kind === "func" && !declared.has(e.index)).map((e) => e.index);
  for (const index of [...new Set(others)].sort((a, b) => a - b)) entries.push([functionExportName(index), index]);

  const encoder = new TextEncoder();
  const content: number[] = uleb(entries.length);
  for (const [name, index] of entries) {
    const bytes = encoder.encode(name);
    content.push(...uleb(bytes.length), ...bytes, 0x00, ...uleb(index));
  }
  return new Uint8Array([SECTION.export, ...uleb(content.length), ...content]);
}

/** The module to hand to wasm-validate and wasm2c. `info` is readModule(bytes), already inspected. */
export function sanitize(bytes: Uint8Array, info: ModuleInfo): Uint8Array {
  for (const imp of info.imports)
    if (imp.module !== WASI_MODULE || imp.kind !== "func" || !Object.hasOwn(WASI_PREVIEW1, imp.name))
      throw new Error(`sanitizer: import ${JSON.stringify(`${imp.module}.${imp.name}`)} is not a WASI preview1 function`);
  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  for (const s of info.sections) {
    if (s.id === SECTION.custom) continue;
    parts.push(s.id === SECTION.export ? exportSection(info.exports) : bytes.subarray(s.start, s.end));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return withSimdLowered(out, info);
}

/**
 * A module that uses SIMD must lower (or is refused with the SimdError).
 * One in which the lowering met no SIMD before it stopped may hold
 * instructions it does not decode (proposals the validator refuses): it
 * goes on as it is, and the validator has the last word, as before.
 */
function withSimdLowered(module: Uint8Array, info: ModuleInfo): Uint8Array {
  const declaresV128 =
    info.v128Locals || info.globals.includes("v128") || info.types.some((t) => [...t.params, ...t.results].includes("v128"));
  try {
    return lowerSimd(module);
  } catch (e) {
    if (e instanceof SimdError && !declaresV128 && !e.simdSeen) return module;
    throw e;
  }
}
