// Hostile modules against the compiler itself: counts and sizes past
// MODULE_LIMITS and module shapes thaw cannot run, refused before any tool
// runs. Modules are assembled with the real wat2wasm, or, where WAT cannot
// express them, with the byte helpers below.

import { describe, expect, test } from "bun:test";
import { CompileError, compile, inspect } from "../src/compiler/compile.ts";
import { MODULE_LIMITS } from "../src/compiler/limits.ts";
import { DATA_DIR, sharedEngine } from "./helpers.ts";
import { wat } from "./wat.ts";

// ---- bytes ----

const enc = (s: string) => new TextEncoder().encode(s);

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

const vec = (items: number[][]) => [...leb(items.length), ...items.flat()];
const name = (s: string | Uint8Array) => {
  const b = typeof s === "string" ? enc(s) : s;
  return [...leb(b.length), ...b];
};
const section = (id: number, content: number[] | Uint8Array) => [id, ...leb(content.length), ...content];
const HEADER = [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
const moduleOf = (...sections: number[][]) => new Uint8Array([...HEADER, ...sections.flat()]);

// ---- running ----

async function compileError(bytes: Uint8Array): Promise<CompileError> {
  try {
    await compile(bytes, { dataDir: DATA_DIR, engine: sharedEngine() });
  } catch (e) {
    if (e instanceof CompileError) return e;
    throw e;
  }
  throw new Error("compile succeeded");
}

function inspectError(bytes: Uint8Array): CompileError {
  try {
    inspect(bytes);
  } catch (e) {
    if (e instanceof CompileError) return e;
    throw e;
  }
  throw new Error("inspect accepted the module");
}

describe("module limits", () => {
  test("entry points must be void functions of no arguments", () => {
    const startTakesArgs = wat(`(module (memory 1) (func (export "_start") (param i32)))`);
    expect(inspectError(startTakesArgs).message).toBe("_start must take no parameters and return nothing; it is (i32) -> ()");
    const initReturns = wat(`(module (memory 1) (func (export "_start")) (func (export "wizer.initialize") (result i32) (i32.const 0)))`);
    expect(inspectError(initReturns).code).toBe("unsupported_module");
  });
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
    ];
    for (const [what, decls, message] of cases) {
      const e = inspectError(wat(`(module ${decls} (func (export "_start")))`));
      expect(`${what}: ${e.code}`).toBe(`${what}: unsupported_module`);
      expect(e.message).toContain(message);
    }
  });
});
