// Hostile modules against the compiler itself: names that try to become C,
// forged comments, counts and sizes past MODULE_LIMITS, module shapes thaw
// cannot run, and native frames over THAW_MAX_FRAME_BYTES. Everything goes
// through the real wat2wasm, wasm2c, C compiler and libthaw; binary-level
// oddities WAT cannot express are built with the byte helpers below.

import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import thawModuleH from "../native/include/thaw_module.h" with { type: "text" };
import wasmRtH from "../native/include/wasm-rt.h" with { type: "text" };
import { CompileError, compile, inspect } from "../src/compiler/compile.ts";
import { CFLAGS } from "../src/compiler/flags.ts";
import { checkHeader, describeCFunction, generateGlue, GlueError, layoutOf, MODULE_NAME } from "../src/compiler/glue.ts";
import { frameViolations, MODULE_LIMITS, parseStackUsage, THAW_MAX_FRAME_BYTES } from "../src/compiler/limits.ts";
import { sanitize, uleb } from "../src/compiler/sanitize.ts";
import { readModule } from "../src/compiler/wasm-module.ts";
import { DEFAULT_LIMITS } from "../src/engine/engine.ts";
import { compileError, DATA_DIR, sharedEngine, text } from "./helpers.ts";
import { command, wat } from "./wat.ts";

// ---- bytes ----

const enc = (s: string) => new TextEncoder().encode(s);

const leb = uleb;

const vec = (items: number[][]) => [...leb(items.length), ...items.flat()];
const name = (s: string | Uint8Array) => {
  const b = typeof s === "string" ? enc(s) : s;
  return [...leb(b.length), ...b];
};
const section = (id: number, content: number[] | Uint8Array) => [id, ...leb(content.length), ...content];
const custom = (sectionName: string | Uint8Array, content: number[] | Uint8Array) =>
  section(0, [...name(sectionName), ...content]);
const HEADER = [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
const moduleOf = (...sections: number[][]) => new Uint8Array([...HEADER, ...sections.flat()]);

/** A module's sections as [id, content], split without thaw's reader. */
function sections(bytes: Uint8Array): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  let pos = 8;
  while (pos < bytes.length) {
    const id = bytes[pos++]!;
    let size = 0;
    for (let shift = 0; ; shift += 7) {
      const b = bytes[pos++]!;
      size += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) break;
    }
    out.push([id, bytes.subarray(pos, pos + size)]);
    pos += size;
  }
  return out;
}

/** `bytes` with its export section replaced, `before` inserted ahead of it and `after` appended. */
function rebuild(bytes: Uint8Array, exports: [string | Uint8Array, number, number][], before: number[][] = [], after: number[][] = []) {
  const out: number[][] = [];
  for (const [id, content] of sections(bytes)) {
    if (id === 7) out.push(...before, section(7, vec(exports.map(([n, kind, index]) => [...name(n), kind, ...leb(index)]))));
    else out.push(section(id, content));
  }
  return moduleOf(...out, ...after);
}

// ---- running ----


function inspectError(bytes: Uint8Array): CompileError {
  try {
    inspect(bytes);
  } catch (e) {
    if (e instanceof CompileError) return e;
    throw e;
  }
  throw new Error("inspect accepted the module");
}

async function run(bytes: Uint8Array) {
  const artifact = await compile(bytes, { dataDir: DATA_DIR, engine: sharedEngine() });
  const mod = sharedEngine().load(artifact.soPath, artifact.snapshotPath, DEFAULT_LIMITS);
  const inst = mod.restore();
  try {
    const result = await sharedEngine().call(inst, {});
    return { artifact, result, stdout: text(result.stdout) };
  } finally {
    inst.free();
    mod.release();
  }
}

/** wasm2c on `bytes` in a fresh directory: the generated fn.c + fn.h. */
function wasm2c(bytes: Uint8Array): string {
  const dir = mkdtempSync(join(tmpdir(), "thaw-w2c-"));
  try {
    writeFileSync(join(dir, "m.wasm"), bytes);
    const r = spawnSync("wasm2c", ["-n", MODULE_NAME, "m.wasm", "-o", "fn.c"], { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`wasm2c failed: ${r.stderr}`);
    return readFileSync(join(dir, "fn.c"), "latin1") + readFileSync(join(dir, "fn.h"), "latin1");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** WAT for "write these bytes to stdout", with memory [0, 8) as the iovec. */
const print = (offset: number, len: number) => `
  (i32.store (i32.const 0) (i32.const ${offset}))
  (i32.store (i32.const 4) (i32.const ${len}))
  (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))`;

// A module whose _start prints "good" and whose other function prints
// "evil"; the tests give the functions names.
const goodEvil = wat(
  command(
    print(64, 4),
    `(data (i32.const 64) "good") (data (i32.const 80) "evil")
     (func $evil (local i32) ${print(80, 4)})
     (func $init (i32.store8 (i32.const 64) (i32.const 71)))`,
  ),
);
// Function indices in goodEvil: 0, 1 imports; 2 $evil; 3 $init; 4 _start.
const EVIL = 2;
const INIT = 3;
const START = 4;
const FUNC = 0;
const MEMORY = 2;

const MARK = "THAWMARK";

describe("tenant names never become C", () => {
  const payload =
    `${MARK} */\n#include <stdlib.h>\n__attribute__((constructor)) static void pwn(void) { system("touch /tmp/${MARK}"); }\n/* `;
  const names = [
    payload,
    `_start' */ /* export: '_start`,
    `${MARK}\u0000nul`,
    `${MARK} spaces "quotes" 'single' \\ backslash`,
    `${MARK} ünïcödé ☃ 𝄞`,
    MARK + "x".repeat(100_000),
  ];
  // The name section: a module name, every function named, a local named.
  const nameSection = custom("name", [
    ...section(0, name(`${MARK}module */`)),
    ...section(1, vec([0, 1, 2, 3, 4].map((i) => [...leb(i), ...name(`${MARK}fn${i} */\n`)]))),
    ...section(2, vec([[...leb(2), ...vec([[0, ...name(`${MARK}local`)]])]])),
  ]);
  const hostile = rebuild(
    goodEvil,
    [["_start", FUNC, START], ["wizer.initialize", FUNC, INIT], ["memory", MEMORY, 0], ...names.map((n): [string, number, number] => [n, FUNC, EVIL])],
    [custom(`${MARK} custom */`, enc(`${MARK} content */`))],
    [nameSection, custom(`${MARK} custom */`, enc(`${MARK} content */`)), custom("producers", new Uint8Array(1 << 20).fill(0x2a))],
  );

  test("the hostile module is valid, and unsanitized its names reach wasm2c's C", () => {
    const dir = mkdtempSync(join(tmpdir(), "thaw-hostile-"));
    writeFileSync(join(dir, "m.wasm"), hostile);
    expect(spawnSync("wasm-validate", [join(dir, "m.wasm")]).status).toBe(0);
    rmSync(dir, { recursive: true, force: true });
    const c = wasm2c(hostile);
    expect(c).toContain(`__attribute__((constructor)) static void pwn(void)`);
    expect(c).toContain(MARK);
  });

  test("sanitized, no byte of any name or custom section reaches wasm2c's C", () => {
    const clean = sanitize(hostile, readModule(hostile));
    const c = wasm2c(clean);
    expect(c).not.toContain(MARK);
    expect(c).not.toContain("pwn");
    expect(c).toContain(`void Z_${MODULE_NAME}Z__start(Z_${MODULE_NAME}_instance_t*);`);
    expect(c).toContain(`void Z_${MODULE_NAME}Z_initialize(Z_${MODULE_NAME}_instance_t*);`);
    // No custom section left; every other section byte for byte, in order.
    const before = sections(hostile).filter(([id]) => id !== 0);
    const after = sections(clean);
    expect(after.map(([id]) => id)).toEqual(before.map(([id]) => id));
    for (const [i, [id, content]] of after.entries()) if (id !== 7) expect(content).toEqual(before[i]![1]);
    // Exports: the entry points under fixed names, the other function once under its index.
    expect(readModule(clean).exports).toEqual([
      { name: "_start", kind: "func", index: START },
      { name: "initialize", kind: "func", index: INIT },
      { name: `f${EVIL}`, kind: "func", index: EVIL },
    ]);
  });

  test("an export name carrying C compiles to nothing, and the module runs its own _start", async () => {
    rmSync(`/tmp/${MARK}`, { force: true });
    const { artifact, result, stdout } = await run(hostile);
    expect(result.status).toBe("ok");
    // wizer.initialize ran at snapshot time and changed "good" to "Good".
    expect(stdout).toBe("Good");
    expect(artifact.meta.hasInitialize).toBe(true);
    expect(existsSync(`/tmp/${MARK}`)).toBe(false);
  });

  test("an export forging wasm2c's export comment cannot replace _start", async () => {
    const forged = rebuild(goodEvil, [
      ["_start' */\nvoid Z_thawfnZ__start(Z_thawfn_instance_t*);\n/* export: '_start", FUNC, EVIL],
      ["_start", FUNC, START],
      ["_start' */ /* export: '_start", FUNC, EVIL],
    ]);
    const { stdout } = await run(forged);
    expect(stdout).toBe("good");
  });

  test("modules differing only in names and custom sections share one artifact", async () => {
    const a = rebuild(goodEvil, [["_start", FUNC, START], ["a", FUNC, EVIL]]);
    const b = rebuild(goodEvil, [["zzz", FUNC, EVIL], ["_start", FUNC, START]], [custom("x", [1, 2, 3])]);
    const first = await compile(a, { dataDir: DATA_DIR, engine: sharedEngine() });
    const second = await compile(b, { dataDir: DATA_DIR, engine: sharedEngine() });
    expect(second.meta.key).toBe(first.meta.key);
  });

  test("a function declared for ref.func only by its export still compiles", async () => {
    const mod = wat(
      command(
        `(if (ref.is_null (ref.func $f)) (then unreachable)) ${print(64, 2)}`,
        `(data (i32.const 64) "ok") (func $f (export "only-declaration") nop)`,
      ),
    );
    expect((await run(mod)).stdout).toBe("ok");
  });

  test("malformed names and export sections are invalid modules", () => {
    const badUtf8 = new Uint8Array([0x66, 0xff, 0xfe]);
    const cases: [string, Uint8Array][] = [
      ["export name", rebuild(goodEvil, [["_start", FUNC, START], [badUtf8, FUNC, EVIL]])],
      ["custom section name", rebuild(goodEvil, [["_start", FUNC, START]], [custom(badUtf8, [])])],
      ["duplicate export", rebuild(goodEvil, [["_start", FUNC, START], ["x", FUNC, EVIL], ["x", FUNC, INIT]])],
      ["function index", rebuild(goodEvil, [["_start", FUNC, START], ["x", FUNC, 99]])],
      ["memory index", rebuild(goodEvil, [["_start", FUNC, START], ["m", MEMORY, 1]])],
    ];
    for (const [what, bytes] of cases) {
      const e = inspectError(bytes);
      expect(`${what}: ${e.code}`).toBe(`${what}: invalid_module`);
    }
    expect(inspectError(rebuild(goodEvil, [["_start", FUNC, START], [badUtf8, FUNC, EVIL]])).message).toContain("UTF-8");
  });
});

describe("glue from the module", () => {
  test("tables of both kinds and no imports: the descriptor matches the instance", async () => {
    // No WASI: _start proves it ran by its exit (a trap otherwise).
    const mod = wat(`(module
      (memory 1)
      (table $a 1 funcref)
      (table $x 2 externref)
      (table $b 3 funcref)
      (type $r (func (result i32)))
      (elem (table $b) (i32.const 2) func $seven)
      (func $seven (result i32) (i32.const 7))
      (func (export "_start")
        (if (i32.ne (call_indirect $b (type $r) (i32.const 2)) (i32.const 7)) (then unreachable))
        (if (i32.eqz (ref.is_null (table.get $x (i32.const 1)))) (then unreachable))
        (if (i32.ne (table.size $b) (i32.const 3)) (then unreachable))))`);
    const layout = layoutOf(readModule(mod));
    expect(layout).toEqual({ wasi: false, funcrefTables: ["w2c_T0", "w2c_T2"], externrefTables: ["w2c_T1"], start: "Z_thawfnZ__start" });
    const { result } = await run(mod);
    expect(result.status).toBe("ok");
    expect(result.exitCode).toBe(0);
  });

  test("wasm2c's header is checked against the module, never searched", () => {
    const info = readModule(goodEvil);
    const header = wasm2c(sanitize(goodEvil, info));
    const layout = layoutOf(info);
    checkHeader(header, layout);
    expect(generateGlue(layout, "fn.h")).toContain("offsetof(Z_thawfn_instance_t, Z_wasi_snapshot_preview1_instance)");
    const mismatch = (l: typeof layout) => () => checkHeader(header, l);
    expect(mismatch({ ...layout, funcrefTables: ["w2c_T0", "w2c_T1"] })).toThrow(GlueError);
    expect(mismatch({ ...layout, wasi: false })).toThrow(GlueError);
    expect(mismatch({ ...layout, initialize: "Z_thawfnZ_initialize" })).toThrow(GlueError);
    const extraPointer = header.replace("wasm_rt_memory_t w2c_M0;", "wasm_rt_memory_t w2c_M0;\n  u8* w2c_extra;");
    expect(() => checkHeader(extraPointer, layout)).toThrow(GlueError);
  });

  test("entry points must be void functions of no arguments", () => {
    const startTakesArgs = wat(`(module (memory 1) (func (export "_start") (param i32)))`);
    expect(inspectError(startTakesArgs).message).toBe("_start must take no parameters and return nothing; it is (i32) -> ()");
    const initReturns = wat(`(module (memory 1) (func (export "_start")) (func (export "wizer.initialize") (result i32) (i32.const 0)))`);
    expect(inspectError(initReturns).code).toBe("unsupported_module");
  });
});

describe("module limits", () => {
  const L = MODULE_LIMITS;
  const i64 = 0x7e;
  const type = (params: number, results: number) => [0x60, ...leb(params), ...Array(params).fill(i64), ...leb(results), ...Array(results).fill(i64)];
  const body = (locals: number[][], code: number[] = []) => {
    const b = [...vec(locals), ...code, 0x0b];
    return [...leb(b.length), ...b];
  };
  const memory = section(5, vec([[0, 1]]));
  /** type () -> (), `n` functions of it, each with `locals` declared as groups. */
  const functions = (n: number, groups: number[][] = []) => [
    section(1, vec([type(0, 0)])),
    section(3, vec(Array.from({ length: n }, () => [0]))),
    memory,
    section(10, vec(Array.from({ length: n }, () => body(groups)))),
  ];

  const big = new Uint8Array(L.moduleBytes + 1);
  big.set(moduleOf(memory, [0, ...leb(L.moduleBytes - 8 - memory.length - 1 - 4 + 1)]));
  const over: [string, Uint8Array, string][] = [
    ["module size", big, `module is ${L.moduleBytes + 1} bytes; the limit is ${L.moduleBytes}`],
    ["types", moduleOf(section(1, leb(120_000))), "module has 120000 types; the limit is 10000"],
    ["types (2^32-1 declared)", moduleOf(section(1, leb(2 ** 32 - 1))), `module has ${2 ** 32 - 1} types; the limit is 10000`],
    ["params", moduleOf(section(1, vec([type(0, 0), type(1001, 0)]))), "type 1 has 1001 parameters; the limit is 1000"],
    ["results", moduleOf(section(1, vec([type(0, 1001)]))), "type 0 has 1001 results; the limit is 1000"],
    ["functions", moduleOf(section(1, vec([type(0, 0)])), section(3, leb(50_001))), "module has 50001 functions; the limit is 50000"],
    ["imports", moduleOf(section(2, leb(2 ** 32 - 1))), `module has ${2 ** 32 - 1} imports; the limit is 50000`],
    ["body size", moduleOf(section(1, vec([type(0, 0)])), section(3, vec([[0]])), section(10, [1, ...leb(L.functionBodyBytes + 1)])), `function 0 has a ${L.functionBodyBytes + 1}-byte body; the limit is ${L.functionBodyBytes}`],
    ["locals", moduleOf(...functions(1, [[...leb(40_000), i64]])), "function 0 declares 40000 locals; the limit is 10000"],
    ["locals (groups)", moduleOf(...functions(2, [[...leb(6000), i64], [...leb(4001), 0x7f]])), "function 0 declares 10001 locals; the limit is 10000"],
    ["locals (2^32-1)", moduleOf(...functions(1, [[...leb(2 ** 32 - 1), i64]])), `function 0 declares ${2 ** 32 - 1} locals; the limit is 10000`],
    ["globals", moduleOf(section(6, leb(10_001))), "module has 10001 globals; the limit is 10000"],
    ["tables", moduleOf(section(4, vec(Array.from({ length: 9 }, () => [0x70, 0, 1])))), "module has 9 tables; the limit is 8"],
    ["table size", moduleOf(section(4, vec([[0x70, 0, 1], [0x6f, 0, ...leb(100_001)]]))), "table 1 starts with 100001 elements; the limit is 100000"],
    ["memory", moduleOf(section(5, vec([[0, ...leb(16_385)]]))), "memory starts with 16385 pages (64 KiB each); the limit is 16384"],
    ["exports", moduleOf(memory, section(7, leb(100_001))), "module has 100001 exports; the limit is 100000"],
    ["element segments", moduleOf(section(9, leb(100_001))), "module has 100001 element segments; the limit is 100000"],
    ["data segments", moduleOf(memory, section(11, leb(100_001))), "module has 100001 data segments; the limit is 100000"],
    ["data count", moduleOf(memory, section(12, leb(2 ** 32 - 1))), `module has ${2 ** 32 - 1} data segments; the limit is 100000`],
  ];
  for (const [what, bytes, message] of over)
    test(`over the ${what} limit: module_limit`, () => {
      const e = inspectError(bytes);
      expect(e.code).toBe("module_limit");
      expect(e.message).toBe(message);
    });

  test("exactly at the limits for locals, tables, table size and memory passes inspect", () => {
    const start = [section(7, vec([[...name("_start"), 0, 0]]))];
    const at = (...s: number[][]) => {
      const [types, funcs, , code] = functions(1, [[...leb(L.localsPerFunction), i64]]);
      return moduleOf(types!, funcs!, ...s, ...start, code!);
    };
    expect(() => inspect(at(section(5, vec([[0, ...leb(L.memoryInitialPages)]]))))).not.toThrow();
    expect(() => inspect(at(section(4, vec(Array.from({ length: L.tables }, () => [0x70, 0, ...leb(L.tableInitialElements)]))), memory))).not.toThrow();
  });

  test("globals of every other type, with any constant initializer, parse", () => {
    const mod = wat(`(module (memory 1)
      (global i32 (i32.const -1))
      (global i64 (i64.const -9223372036854775808))
      (global f32 (f32.const 1.5))
      (global f64 (f64.const -2.5))
      (global v128 (v128.const i64x2 1 -1))
      (global (mut externref) (ref.null extern))
      (global i32 (i32.add (i32.const 1) (i32.mul (i32.const 2) (i32.const 3))))
      (func (export "_start")))`);
    expect(readModule(mod).globals).toEqual(["i32", "i64", "f32", "f64", "v128", "externref", "i32"]);
  });

  test("compile refuses before running any tool", async () => {
    const e = await compileError(moduleOf(section(1, leb(120_000))));
    expect(e.code).toBe("module_limit");
    expect(e.details.log).toBeUndefined();
  });

  test("modules thaw cannot run are unsupported_module, not a crash later", () => {
    const cases: [string, string, string][] = [
      ["imported memory", `(import "env" "mem" (memory 1))`, "module imports a memory (env.mem)"],
      ["imported table", `(import "wasi_snapshot_preview1" "t" (table 1 funcref)) (memory 1)`, "module imports a table"],
      ["imported global", `(import "wasi_snapshot_preview1" "g" (global i32)) (memory 1)`, "module imports a global"],
      ["no memory", "", "defines 0"],
      ["two memories", "(memory 1) (memory 1)", "defines 2"],
      ["memory64", "(memory i64 1)", "memory64"],
      ["shared memory", "(memory 1 1 shared)", "shared memories"],
      ["funcref global", "(memory 1) (global i32 (i32.const 1)) (global (mut funcref) (ref.null func))", "global 1 holds a funcref"],
    ];
    for (const [what, decls, message] of cases) {
      const e = inspectError(wat(`(module ${decls} (func (export "_start")))`));
      expect(`${what}: ${e.code}`).toBe(`${what}: unsupported_module`);
      expect(e.message).toContain(message);
    }
  });
});

describe("imports in tables and by odd names", () => {
  // wasm2c 1.0.32 would give such an entry a pointer into the instance as
  // its WASI context: the host would then read guest-influenced bytes.
  const withElems = (elems: string) =>
    wat(`(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (memory 1) (table $t 4 funcref)
      (func $own (param i32 i32 i32 i32) (result i32) (i32.const 0))
      ${elems}
      (func (export "_start")))`);

  for (const [form, elems] of [
    ["active", "(elem (i32.const 0) $own $fd_write)"],
    ["active, explicit table", "(elem (table $t) (i32.const 1) func $fd_write)"],
    ["passive", "(elem func $fd_write)"],
    ["active, expressions", "(elem (i32.const 0) funcref (ref.func $fd_write))"],
    ["passive, expressions", "(elem funcref (ref.null func) (ref.func $fd_write))"],
  ] as const) {
    test(`${form} segments with a WASI import are refused`, () => {
      const e = inspectError(withElems(elems));
      expect(e.code).toBe("unsupported_module");
      expect(e.message).toContain("imported function 0");
    });
  }

  test("imports named after Object.prototype members are unknown imports, not a crash", () => {
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      const e = inspectError(wat(`(module (import "wasi_snapshot_preview1" "${name}" (func)) (memory 1) (func (export "_start")))`));
      expect(e.code).toBe("unsupported_imports");
      expect(e.message).toContain(`wasi_snapshot_preview1.${name} (not a WASI preview1 function)`);
    }
  });

  test("the module's own functions, and declarative segments, are fine", () => {
    expect(() => inspect(withElems("(elem (i32.const 0) $own) (elem declare func $fd_write)"))).not.toThrow();
    expect(() => inspect(withElems("(elem (i32.const 0) funcref (ref.func $own) (ref.null func))"))).not.toThrow();
  });
});

describe("SIMD", () => {
  // Debian's wasm2c 1.0.32 aborts on any v128 instruction, so sanitize()
  // lowers SIMD to scalar code and helper imports (src/compiler/simd.ts);
  // test/simd.test.ts checks that lowered modules compute what JSC does.
  /** wat2wasm without its type check: modules no validator would pass. */
  const unchecked = (source: string) => {
    const dir = mkdtempSync(join(tmpdir(), "thaw-wat-"));
    try {
      writeFileSync(join(dir, "m.wat"), source);
      const r = spawnSync("wat2wasm", ["--enable-all", "--no-check", "m.wat", "-o", "m.wasm"], { cwd: dir, encoding: "utf8" });
      if (r.status !== 0) throw new Error(r.stderr);
      return new Uint8Array(readFileSync(join(dir, "m.wasm")));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  test("what wasm2c sees has no v128 left, and imports only WASI and thaw's helpers", () => {
    const mod = wat(command("(drop (i32x4.extract_lane 0 (i32x4.add (v128.const i32x4 1 2 3 4) (i32x4.splat (i32.const 5)))))"));
    const out = sanitize(mod, readModule(mod));
    const info = readModule(out);
    expect(info.types.flatMap((t) => [...t.params, ...t.results])).not.toContain("v128");
    expect(info.imports.map((i) => `${i.module}.${i.name}`)).toEqual([
      "wasi_snapshot_preview1.proc_exit",
      "wasi_snapshot_preview1.fd_write",
      "wasi_snapshot_preview1.thaw_simd_i32x4_splat",
      "wasi_snapshot_preview1.thaw_simd_i32x4_add",
      "wasi_snapshot_preview1.thaw_simd_i32x4_extract_lane",
    ]);
    const dir = mkdtempSync(join(tmpdir(), "thaw-simd-"));
    try {
      writeFileSync(join(dir, "m.wasm"), out);
      const r = spawnSync("wasm-validate", ["--disable-simd", "m.wasm"], { cwd: dir, encoding: "utf8" });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a module without SIMD is left exactly as the sanitizer made it", () => {
    const mod = wat(command("(drop (i64.add (i64.const 1) (i64.const -3)))"));
    const info = readModule(mod);
    const out = sanitize(mod, info);
    expect(readModule(out).imports.length).toBe(info.imports.length);
  });

  test("a tenant cannot import thaw's SIMD helpers itself", () => {
    const e = inspectError(
      wat(`(module (import "wasi_snapshot_preview1" "thaw_simd_i32x4_add" (func (param i64 i64 i64 i64) (result i64 i64)))
        (memory 1) (func (export "_start")))`),
    );
    expect(e.code).toBe("unsupported_imports");
  });

  test("SIMD whose types do not check is an invalid module, not lowered into a valid one", async () => {
    // Four i64 where i32x4.add wants two v128 would lower to valid scalar code.
    for (const body of [
      "(drop (i32x4.add (i64.const 1) (i64.const 2) (i64.const 3) (i64.const 4)))",
      "(drop (i32.add (local.get $v) (i32.const 1)))",
      "(drop (v128.any_true (i32.const 1)))",
    ]) {
      const e = await compileError(unchecked(command(body, "(global $unused v128 (v128.const i64x2 0 0))").replace("(local.get $v)", "(global.get $unused)")));
      expect([body, e.code]).toEqual([body, "invalid_module"]);
    }
  });

  test("relaxed SIMD is refused by name", async () => {
    const e = await compileError(wat(command("(drop (i32x4.relaxed_trunc_f32x4_s (v128.const i32x4 1 2 3 4)))")));
    expect(e.code).toBe("unsupported_module");
    expect(e.message).toContain("relaxed SIMD");
  });
});

describe("native frame sizes", () => {
  test("THAW_MAX_FRAME_BYTES agrees with native/include/thaw_module.h", () => {
    const define = /#define THAW_MAX_FRAME_BYTES\s+(.+)/.exec(thawModuleH)?.[1]?.replace(/\/\*.*$/, "").trim();
    expect(define).toBeDefined();
    const expr = define!.replace(/(\d+)[uU]?[lL]*/g, "$1");
    expect(expr).toMatch(/^[\d\s()<*]+$/);
    expect(new Function(`return ${expr};`)()).toBe(THAW_MAX_FRAME_BYTES);
  });

  test("gcc's and clang's -fstack-usage lines parse; unbounded and oversized frames are refused", () => {
    const frames = parseStackUsage(
      [
        "fn.c:598:12:w2c_f1\t40032\tstatic",
        "fn.c:620:6:w2c_f7.isra.0\t300000\tstatic",
        "fn.c:630:Z_thawfnZ__start\t8\tstatic",
        "glue.c:9:13:thaw_start\t16\tdynamic",
        "fn.c:700:6:w2c_f9.part.0\t262145\tdynamic,bounded",
        "fn.c:701:6:w2c_f10\t262144\tdynamic,bounded",
        "",
      ].join("\n"),
    );
    expect(frames.map((f) => f.function)).toEqual(["w2c_f1", "w2c_f7", "Z_thawfnZ__start", "thaw_start", "w2c_f9", "w2c_f10"]);
    const info = readModule(rebuild(goodEvil, [["_start", FUNC, START], ["wizer.initialize", FUNC, INIT]]));
    expect(frameViolations(frames, (c) => describeCFunction(c, info))).toEqual([
      "function 7 needs a 300000-byte native stack frame; the limit is 262144 bytes",
      "C function thaw_start has a native stack frame of unbounded size",
      "function 9 needs a 262145-byte native stack frame; the limit is 262144 bytes",
    ]);
    expect(describeCFunction("w2c__start", info)).toBe(`function ${START} (_start)`);
    expect(describeCFunction("Z_thawfnZ_initialize", info)).toBe(`function ${INIT} (wizer.initialize)`);
    expect(() => parseStackUsage("fn.c:1:1:f 12 static")).toThrow();
  });

  test("a real build's frames are measured and mapped to wasm functions", async () => {
    // Function 2 keeps 1,000 loaded i64 values live across an opaque host
    // call: ~8 KB of spills, under the limit, so compile() accepts it.
    const n = 1000;
    const loads = Array.from({ length: n }, (_, i) => `(i64.load offset=${8 * i} (i32.const 0))`).join("\n");
    const mod = wat(`(module
      (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory 1)
      (func $spill (result i64) ${loads} (drop (call $yield)) ${"i64.add ".repeat(n - 1)})
      (func (export "_start") (i64.store (i32.const 0) (i64.add (call $spill) (call $spill)))))`);
    const info = readModule(mod);
    const dir = mkdtempSync(join(tmpdir(), "thaw-frames-"));
    try {
      writeFileSync(join(dir, "m.wasm"), sanitize(mod, info));
      writeFileSync(join(dir, "wasm-rt.h"), wasmRtH);
      writeFileSync(join(dir, "thaw_module.h"), thawModuleH);
      expect(spawnSync("wasm2c", ["-n", MODULE_NAME, "m.wasm", "-o", "fn.c"], { cwd: dir }).status).toBe(0);
      writeFileSync(join(dir, "glue.c"), generateGlue(layoutOf(info), "fn.h"));
      const cc = spawnSync(process.env.CC ?? "cc", [...CFLAGS, "-I.", "-o", "fn.so", "fn.c", "glue.c"], { cwd: dir, encoding: "utf8" });
      expect(cc.stderr).toBe("");
      const reports = readdirSync(dir).filter((f) => f.endsWith(".su"));
      expect(reports.length).toBeGreaterThan(0);
      const frames = reports.flatMap((f) => parseStackUsage(readFileSync(join(dir, f), "utf8")));
      const spill = frames.find((f) => f.function === "w2c_f2");
      expect(spill?.bytes).toBeGreaterThan(8 * n * 0.9);
      expect(spill!.bytes).toBeLessThan(THAW_MAX_FRAME_BYTES);
      const label = (c: string) => describeCFunction(c, info);
      expect(frameViolations(frames, label)).toEqual([]);
      expect(frameViolations(frames, label, 4096)).toEqual([`function 2 needs a ${spill!.bytes}-byte native stack frame; the limit is 4096 bytes`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const { result } = await run(mod);
    expect(result.status).toBe("ok");
  });
});
