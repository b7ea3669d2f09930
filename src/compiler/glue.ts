// Generates the C file that describes a wasm2c module to libthaw
// (native/include/thaw_module.h): where the WASI import pointer, the memory
// and the tables sit in the instance struct, which entry points exist, and
// whether the code was built without bounds checks (wasm-rt.h), so libthaw
// gives its instances guarded memory. The C compiler computes the offsets
// and reads the flag from the same header the code was built with.
//
// Everything here follows from thaw's own parse of the sanitized module
// (sanitize.ts) and from wasm2c's deterministic naming of unnamed items,
// never from text wasm2c copied out of the module: with no name section and
// only generated export names, wasm2c names the memory `w2c_M0`, table i
// `w2c_T<i>`, function i `w2c_f<i>` (or `w2c_<export name>` when exported),
// an export `Z_<module>Z_<export name>`, and the WASI import pointer
// `Z_wasi_snapshot_preview1_instance`. checkHeader() compares the header
// wasm2c wrote against that, so a wabt release that names things
// differently fails the build instead of producing a wrong descriptor.

import { ENTRY_EXPORTS } from "./sanitize.ts";
import { WASI_MODULE } from "./wasi.ts";
import type { ModuleInfo, RefType } from "./wasm-module.ts";

export const MODULE_NAME = "thawfn";
const INSTANCE_T = `Z_${MODULE_NAME}_instance_t`;
const WASI_INSTANCE_T = `struct Z_${WASI_MODULE}_instance_t`;
const WASI_FIELD = `Z_${WASI_MODULE}_instance`;
const MEMORY_FIELD = "w2c_M0";
// The generated export names are lowercase letters, digits and `_`, which
// wasm2c's mangling leaves as they are.
const exportSymbol = (name: string) => `Z_${MODULE_NAME}Z_${name}`;

export interface Layout {
  /** The module imports WASI, so the instance holds a pointer to it and instantiate takes one. */
  wasi: boolean;
  funcrefTables: string[];
  externrefTables: string[];
  start?: string;
  initialize?: string;
}

/** wasm2c's output does not match thaw's reading of the module: a toolchain problem, not the module's. */
export class GlueError extends Error {}

export function layoutOf(info: ModuleInfo): Layout {
  const tables = (type: RefType) => info.tables.flatMap((t, i) => (t.type === type ? [`w2c_T${i}`] : []));
  const has = (tenantName: string) => info.exports.some((e) => e.name === tenantName && e.kind === "func");
  return {
    // inspect() admits WASI preview1 functions as the only imports.
    wasi: info.imports.length > 0,
    funcrefTables: tables("funcref"),
    externrefTables: tables("externref"),
    ...(has("_start") ? { start: exportSymbol(ENTRY_EXPORTS._start) } : {}),
    ...(has("wizer.initialize") ? { initialize: exportSymbol(ENTRY_EXPORTS["wizer.initialize"]) } : {}),
  };
}

/**
 * Checks the instance struct and the entry point declarations in wasm2c's
 * header against the layout: the same fields of each kind, in order, and
 * nothing else that needs relocating (pointers), plus the expected
 * prototypes. The header is only compared, never searched for names.
 */
const SEGMENT_DROPPED = /^\s*bool (data|elem)_segment_dropped_w2c_[de]\d+ : 1;$/;

export function checkHeader(header: string, layout: Layout): void {
  const body = new RegExp(`typedef struct ${INSTANCE_T} \\{\\n([^}]*)\\} ${INSTANCE_T};`).exec(header)?.[1];
  if (body === undefined) throw new GlueError("wasm2c header has no instance struct");
  const found = { wasi: [] as string[], memory: [] as string[], funcref: [] as string[], externref: [] as string[] };
  for (const line of body.split("\n")) {
    // Passive segments get a one-bit "dropped" flag: plain data, restored with the struct's bytes.
    if (!line.trim() || SEGMENT_DROPPED.test(line)) continue;
    const m = /^\s*(.+?)\s*\b([A-Za-z_][A-Za-z0-9_]*);$/.exec(line);
    if (!m) throw new GlueError(`unexpected line in wasm2c's instance struct: ${JSON.stringify(line)}`);
    const [, type, field] = m as unknown as [string, string, string];
    if (type === `${WASI_INSTANCE_T}*`) found.wasi.push(field);
    else if (type === "wasm_rt_memory_t") found.memory.push(field);
    else if (type === "wasm_rt_funcref_table_t") found.funcref.push(field);
    else if (type === "wasm_rt_externref_table_t") found.externref.push(field);
    else if (type.includes("*")) throw new GlueError(`unexpected pointer field in wasm2c's instance struct: ${type} ${field}`);
  }
  const expect = (what: string, actual: string[], wanted: string[]) => {
    if (actual.join() !== wanted.join())
      throw new GlueError(`wasm2c's instance struct has ${what} [${actual.join(", ")}], expected [${wanted.join(", ")}]`);
  };
  expect("WASI pointer", found.wasi, layout.wasi ? [WASI_FIELD] : []);
  expect("memory", found.memory, [MEMORY_FIELD]);
  expect("funcref tables", found.funcref, layout.funcrefTables);
  expect("externref tables", found.externref, layout.externrefTables);
  const prototypes = [
    `void Z_${MODULE_NAME}_instantiate(${INSTANCE_T}*${layout.wasi ? `, ${WASI_INSTANCE_T}*` : ""});`,
    ...[layout.start, layout.initialize].flatMap((sym) => (sym ? [`void ${sym}(${INSTANCE_T}*);`] : [])),
  ];
  for (const p of prototypes)
    if (!header.includes(`\n${p}\n`)) throw new GlueError(`wasm2c header does not declare ${p}`);
}

/**
 * Names the wasm function behind a C function of the build, for messages
 * about it (frame sizes): `function 12`, `function 3 (_start)`, or the C
 * name for thaw's and wasm2c's own code.
 */
export function describeCFunction(cName: string, info: ModuleInfo): string {
  const prefix = ["w2c_", exportSymbol("")].find((p) => cName.startsWith(p));
  const name = prefix && cName.slice(prefix.length);
  const index = name && /^f(\d+)$/.exec(name)?.[1];
  if (index) return `function ${index}`;
  const entry = Object.entries(ENTRY_EXPORTS).find(([, n]) => n === name)?.[0];
  const e = entry && info.exports.find((x) => x.name === entry && x.kind === "func");
  return e ? `function ${e.index} (${entry})` : `C function ${cName}`;
}

const offsets = (fields: string[]) => `{${fields.map((f) => `offsetof(${INSTANCE_T}, ${f})`).join(", ")}}`;

export function generateGlue(layout: Layout, headerFile: string): string {
  const entry = (name: string, sym: string | undefined) => (sym ? `static void thaw_${name}(void* i) { ${sym}(i); }\n` : "");
  return `/* Generated by thaw's compiler: describes this module to libthaw. */
#include <stddef.h>
#include "thaw_module.h"
#include "${headerFile}"

static void thaw_instantiate(void* i, void* w) {
${layout.wasi ? `  Z_${MODULE_NAME}_instantiate(i, w);` : `  (void)w;\n  Z_${MODULE_NAME}_instantiate(i);`}
}
static void thaw_free(void* i) { Z_${MODULE_NAME}_free(i); }
${entry("start", layout.start)}${entry("initialize", layout.initialize)}
__attribute__((visibility("default"))) const thaw_module_info thaw_function_info = {
  .abi = THAW_MODULE_ABI,
  .flags = WASM_RT_MEMCHECK_SIGNAL_HANDLER ? THAW_MODULE_GUARDED : 0,
  .instance_size = sizeof(${INSTANCE_T}),
  .wasi_offset = ${layout.wasi ? `offsetof(${INSTANCE_T}, ${WASI_FIELD})` : "-1"},
  .memory_offset = offsetof(${INSTANCE_T}, ${MEMORY_FIELD}),
  .n_funcref_tables = ${layout.funcrefTables.length},
  .n_externref_tables = ${layout.externrefTables.length},
  .funcref_table_offsets = ${offsets(layout.funcrefTables)},
  .externref_table_offsets = ${offsets(layout.externrefTables)},
  .init_module = Z_${MODULE_NAME}_init_module,
  .instantiate = thaw_instantiate,
  .free_instance = thaw_free,
  .start = ${layout.start ? "thaw_start" : "NULL"},
  .initialize = ${layout.initialize ? "thaw_initialize" : "NULL"},
};
`;
}
