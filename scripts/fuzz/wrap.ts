// Turns a binaryen fuzz module into a WASI command both engines run as is.
//
// binaryen's modules import `log-i32/i64/f32/f64/v128` from "fuzzing-support",
// which thaw refuses (WASI preview1 only), and have no `_start`. The rewrite
// happens in the text format: wasm2wat --generate-names names every
// function, global, type and table, so the text refers to everything by
// name; the four log imports become ordinary functions that print, one
// WASI import (fd_write) is added, and `_start` is appended. wat2wasm then
// renumbers the index spaces. Binary rewriting would have to renumber every
// call and element segment by hand when imports disappear; binaryen 108 has
// no wasm-merge to link an implementation in; its own text format is less
// stable across versions than the standard one wabt reads and writes. Both
// wasm2wat and wat2wasm are wabt 1.0.32, the same release thaw compiles
// with, so anything they cannot round-trip thaw could not take either.
//
// What `_start` does, and what the wrapped module prints (one line each,
// values in fixed-width hex, so output compares byte for byte):
//   - for every exported function, in export order: `call    <index>`;
//     `grow    <old size>` after growing the memory by one page while it is
//     under its maximum; hangLimitInitializer() if exported (binaryen's own
//     runners do the same: its loops and calls trap once a budget of 10
//     runs out, so no module runs forever); the call with fixed arguments;
//     each result as `ret <type> <bits>`;
//   - first, the module's start function, if it has one (taken out of the
//     start section: a start function that logs would print during
//     instantiation, before the reference can see the memory);
//   - every log import as `log <type> <bits>`, a v128 as `log v128` and its
//     two 64-bit halves on two lines (results likewise as `ret v128`);
//   - any NaN as `nan` instead of its bits (see outcome.ts for why).
// Nothing is caught: the first trap ends the run, and both engines report it.
//
// The grow step is there because binaryen 108 never emits memory.grow, and
// a restored instance growing its memory is thaw's own code (instance.c,
// buddy.c), not wasm2c's. It stops at the maximum: after any refused grow,
// thaw reports the next unreachable or out-of-bounds trap as memory_limit
// (classify() in native/src/call.c), even when the refusal was the
// module's own maximum and not thaw's cap, so growing past it would turn
// most trapping modules into that one mismatch and hide everything else.
//
// Printing needs 48 bytes of linear memory for the iovec and the text; the
// printer saves those bytes, writes, and puts them back, so the fuzz code
// never sees the logging. The memory gets at least one page and its maximum
// is clamped to the memory cap thaw runs with, so `memory.grow` fails at the
// same size in both engines instead of at thaw's cap only.

import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export class WrapError extends Error {}

type ValType = "i32" | "i64" | "f32" | "f64" | "v128";
interface Sig {
  params: ValType[];
  results: ValType[];
}

/** Arguments for exported functions: fixed per type, chosen by parameter position. */
const ARGS: Record<ValType, string[]> = {
  i32: ["0", "1", "-1", "0x7fffffff", "-0x80000000", "42"],
  i64: ["0", "1", "-1", "0x7fffffffffffffff", "-0x8000000000000000", "4294967296"],
  f32: ["0", "1.5", "-0", "inf", "-3.4e38", "1e-40"],
  f64: ["0", "-2.5", "-0", "-inf", "1.7e308", "5e-324"],
  v128: ["i64x2 0 0", "i32x4 1 -1 0x7fffffff -0x80000000", "f32x4 1.5 -0 inf -3.4e38", "i8x16 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15"],
};

const DIGITS: Record<Exclude<ValType, "v128">, number> = { i32: 8, i64: 16, f32: 8, f64: 16 };

/** An 8-character ASCII tag as the i64 that stores it little-endian. */
const tag = (text: string) => {
  if (text.length !== 8) throw new Error(`tag "${text}" is not 8 characters`);
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(text.charCodeAt(i));
  return `0x${v.toString(16)}`;
};

/** The 8-character tag of a `log` or `ret` line for a value of type t. */
const typeTag = (kind: "log" | "ret", t: ValType) => tag(t === "v128" ? `${kind} v128` : `${kind} ${t} `);

/** `$fz.put_<t>(tag, value)` prints `<tag><hex bits>` or `<tag>nan`; a v128 prints as its two i64 halves. */
function putFunction(t: ValType): string {
  if (t === "v128")
    return `(func $fz.put_v128 (param $tag i64) (param $v v128)
    (call $fz.emit (local.get $tag) (i64x2.extract_lane 0 (local.get $v)) (i32.const 16) (i32.const 0))
    (call $fz.emit (local.get $tag) (i64x2.extract_lane 1 (local.get $v)) (i32.const 16) (i32.const 0)))`;
  const bits = {
    i32: "(i64.extend_i32_u (local.get $v))",
    i64: "(local.get $v)",
    f32: "(i64.extend_i32_u (i32.reinterpret_f32 (local.get $v)))",
    f64: "(i64.reinterpret_f64 (local.get $v))",
  }[t];
  const nan = t[0] === "f" ? `(${t}.ne (local.get $v) (local.get $v))` : "(i32.const 0)";
  return `(func $fz.put_${t} (param $tag i64) (param $v ${t})
    (call $fz.emit (local.get $tag) ${bits} (i32.const ${DIGITS[t]}) ${nan}))`;
}

/** Writes one line to fd 1 through 48 scratch bytes at address 0, then restores them. */
const EMIT = `(func $fz.emit (param $tag i64) (param $bits i64) (param $digits i32) (param $nan i32)
    (local $s0 i64) (local $s1 i64) (local $s2 i64) (local $s3 i64) (local $s4 i64) (local $s5 i64)
    (local $i i32) (local $n i32) (local $len i32)
    (local.set $s0 (i64.load offset=0 (i32.const 0)))
    (local.set $s1 (i64.load offset=8 (i32.const 0)))
    (local.set $s2 (i64.load offset=16 (i32.const 0)))
    (local.set $s3 (i64.load offset=24 (i32.const 0)))
    (local.set $s4 (i64.load offset=32 (i32.const 0)))
    (local.set $s5 (i64.load offset=40 (i32.const 0)))
    (i64.store offset=16 (i32.const 0) (local.get $tag))
    (if (local.get $nan)
      (then
        (i32.store offset=24 (i32.const 0) (i32.const 0x0a6e616e))
        (local.set $len (i32.const 12)))
      (else
        (block $done
          (loop $digit
            (br_if $done (i32.ge_u (local.get $i) (local.get $digits)))
            (local.set $n (i32.wrap_i64 (i64.and (i64.const 15) (i64.shr_u (local.get $bits)
              (i64.extend_i32_u (i32.shl (i32.sub (i32.sub (local.get $digits) (i32.const 1)) (local.get $i)) (i32.const 2)))))))
            (i32.store8 offset=24 (local.get $i)
              (i32.add (local.get $n) (select (i32.const 48) (i32.const 87) (i32.lt_u (local.get $n) (i32.const 10)))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $digit)))
        (i32.store8 offset=24 (local.get $digits) (i32.const 10))
        (local.set $len (i32.add (local.get $digits) (i32.const 9)))))
    (i32.store offset=0 (i32.const 0) (i32.const 16))
    (i32.store offset=4 (i32.const 0) (local.get $len))
    (drop (call $fz.fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i64.store offset=0 (i32.const 0) (local.get $s0))
    (i64.store offset=8 (i32.const 0) (local.get $s1))
    (i64.store offset=16 (i32.const 0) (local.get $s2))
    (i64.store offset=24 (i32.const 0) (local.get $s3))
    (i64.store offset=32 (i32.const 0) (local.get $s4))
    (i64.store offset=40 (i32.const 0) (local.get $s5)))`;

const VALTYPES = new Set(["i32", "i64", "f32", "f64", "v128"]);
function parseList(text: string, keyword: "param" | "result"): ValType[] {
  const out: ValType[] = [];
  for (const m of text.matchAll(new RegExp(`\\(${keyword}((?: [a-z0-9]+)+)\\)`, "g")))
    for (const t of m[1]!.trim().split(" ")) {
      if (!VALTYPES.has(t)) throw new WrapError(`unsupported value type ${t}`);
      out.push(t as ValType);
    }
  return out;
}

/** The rewrite on wasm2wat's text (one declaration per line, as wasm2wat prints). */
export function wrapText(wat: string, memoryCapPages: number): string {
  // The module's closing parenthesis ends its last line; take it off so
  // every line parses alike, and put it back after the additions.
  const text = wat.trimEnd();
  if (!text.startsWith("(module") || !text.endsWith(")")) throw new WrapError("wasm2wat output is not one (module ...)");
  const lines = text.slice(0, -1).split("\n");
  const types = new Map<string, Sig>();
  const funcType = new Map<string, string>();
  const exports: { name: string; func: string }[] = [];
  const logs: string[] = [];
  /** The memory's maximum in pages once clamped; undefined until a memory is seen. */
  let maxPages: number | undefined;
  let memoryExported = false;
  let startFunc: string | undefined;
  const kept: string[] = [];
  for (const line of lines) {
    let m: RegExpExecArray | null;
    if ((m = /^\s*\(type (\$[^\s)]+) \(func(.*)\)\)$/.exec(line))) {
      types.set(m[1]!, { params: parseList(m[2]!, "param"), results: parseList(m[2]!, "result") });
    } else if ((m = /^\s*\(import "fuzzing-support" "log-(i32|i64|f32|f64|v128)" \(func (\$[^\s)]+) \(type (\$[^\s)]+)\)\)\)$/.exec(line))) {
      // Same name, same type: every call site stays as it was.
      logs.push(`(func ${m[2]} (type ${m[3]}) (call $fz.put_${m[1]} (i64.const ${typeTag("log", m[1] as ValType)}) (local.get 0)))`);
      continue;
    } else if ((m = /^\s*\((?:func|import "[^"]*" "[^"]*" \(func) (\$[^\s)]+) \(type (\$[^\s)]+)\)/.exec(line))) {
      funcType.set(m[1]!, m[2]!);
    } else if ((m = /^(\s*)\(memory (\$[^\s)]+ )?(\d+)(?: (\d+))?\)$/.exec(line))) {
      const min = Math.max(1, Number(m[3]));
      maxPages = Math.max(min, Math.min(m[4] === undefined ? memoryCapPages : Number(m[4]), memoryCapPages));
      kept.push(`${m[1]}(memory ${m[2] ?? ""}${min} ${maxPages})`);
      continue;
    } else if (/^\s*\(import .*\(memory /.test(line)) {
      throw new WrapError("imported memory");
    } else if ((m = /^\s*\(export "((?:[^"\\]|\\.)*)" \(func (\$[^\s)]+)\)\)$/.exec(line))) {
      exports.push({ name: m[1]!, func: m[2]! });
    } else if (/^\s*\(export "memory" /.test(line)) {
      memoryExported = true;
    } else if ((m = /^\s*\(start (\$[^\s)]+)\)$/.exec(line))) {
      // Run by _start instead: a start function that logs would print
      // before the reference can reach the memory (instantiation has not
      // returned), and thaw runs one when it makes the snapshot.
      startFunc = m[1]!;
      continue;
    }
    kept.push(line);
  }
  if (exports.some((e) => e.name === "_start")) throw new WrapError("module already exports _start");

  const sigOf = (func: string): Sig => {
    const sig = types.get(funcType.get(func) ?? "");
    if (!sig) throw new WrapError(`no type for ${func}`);
    return sig;
  };
  const hangInit = exports.find((e) => e.name === "hangLimitInitializer");
  const usesV128 =
    logs.some((l) => l.includes("$fz.put_v128")) ||
    exports.some((e) => [...sigOf(e.func).params, ...sigOf(e.func).results].includes("v128"));
  const locals: string[] = [];
  const body: string[] = startFunc ? [`(call ${startFunc})`] : [];
  exports.forEach((e, index) => {
    const sig = sigOf(e.func);
    body.push(`(call $fz.put_i32 (i64.const ${tag("call    ")}) (i32.const ${index}))`);
    body.push(`(call $fz.put_i32 (i64.const ${tag("grow    ")}) (call $fz.grow))`);
    if (hangInit) body.push(`(call ${hangInit.func})`);
    const args = sig.params.map((t, k) => `(${t}.const ${ARGS[t][k % ARGS[t].length]})`);
    body.push(`(call ${e.func}${args.map((a) => ` ${a}`).join("")})`);
    // Results come off the stack last first; print them first to last.
    const names = sig.results.map((t, k) => {
      locals.push(`(local $r${index}_${k} ${t})`);
      return `$r${index}_${k}`;
    });
    for (const name of [...names].reverse()) body.push(`(local.set ${name})`);
    sig.results.forEach((t, k) => body.push(`(call $fz.put_${t} (i64.const ${typeTag("ret", t)}) (local.get ${names[k]}))`));
  });

  const added = [
    ...(maxPages !== undefined ? [] : [`(memory $fz.memory 1 ${(maxPages = Math.max(1, memoryCapPages))})`]),
    `(func $fz.grow (result i32)
    (if (result i32) (i32.lt_u (memory.size) (i32.const ${maxPages}))
      (then (memory.grow (i32.const 1)))
      (else (memory.size))))`,
    ...(memoryExported ? [] : [`(export "memory" (memory 0))`]),
    EMIT,
    // The v128 printer only where a v128 is printed: it is SIMD code itself.
    ...(["i32", "i64", "f32", "f64", "v128"] as const).filter((t) => t !== "v128" || usesV128).map(putFunction),
    ...logs,
    `(func $fz.start (export "_start") ${locals.join(" ")}\n    ${body.join("\n    ")})`,
  ];
  return [
    kept[0],
    `  (import "wasi_snapshot_preview1" "fd_write" (func $fz.fd_write (param i32 i32 i32 i32) (result i32)))`,
    ...kept.slice(1),
    ...added.map((a) => `  ${a}`),
    ")",
    "",
  ].join("\n");
}

function tool(cmd: string, args: string[], dir: string): void {
  const r = spawnSync(cmd, args, { cwd: dir, encoding: "utf8" });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new WrapError(`${cmd} failed: ${r.stderr.trim()}`);
}

/** Fuzz module in, WASI command out; leaves fuzz.wat and command.wat in `dir` for reading. */
export function wrap(fuzzWasm: Uint8Array, dir: string, memoryCapPages: number): Uint8Array {
  writeFileSync(join(dir, "fuzz.wasm"), fuzzWasm);
  tool("wasm2wat", ["--generate-names", "fuzz.wasm", "-o", "fuzz.wat"], dir);
  writeFileSync(join(dir, "command.wat"), wrapText(readFileSync(join(dir, "fuzz.wat"), "utf8"), memoryCapPages));
  tool("wat2wasm", ["command.wat", "-o", "command.wasm"], dir);
  return new Uint8Array(readFileSync(join(dir, "command.wasm")));
}
