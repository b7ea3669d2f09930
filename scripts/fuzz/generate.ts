// Random modules from binaryen's translate-to-fuzz (`wasm-opt -ttf`), which
// turns any byte string into a valid module: functions full of arithmetic,
// memory and table traffic, calls, loops and traps, plus exports to call
// and `log-*` imports from "fuzzing-support" that report values.
//
// The bytes come from SHA-256 in counter mode over (seed, index), so module
// `index` of seed `seed` is the same module on every run and every machine
// with the same binaryen: a finding is reproduced from two numbers.
//
// Features are what wasm2c 1.0.32 and thaw's glue handle: MVP plus the
// post-MVP proposals wabt enables by default that thaw runs (sign-extension,
// mutable globals, non-trapping float-to-int, bulk memory, multi-value), and
// SIMD, which thaw lowers before wasm2c (src/compiler/simd.ts).
// `--mvp-features` first turns everything off, so threads, exception
// handling, reference types, GC, tail calls, memory64, multi-memory and any
// proposal a newer binaryen adds stay off without being named here.

import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";

export const FEATURE_FLAGS = [
  "--mvp-features",
  "--enable-sign-ext",
  "--enable-mutable-globals",
  "--enable-nontrapping-float-to-int",
  "--enable-bulk-memory",
  "--enable-multivalue",
  "--enable-simd",
];

/**
 * Input sizes for -ttf. binaryen sizes the module from its input, so a range
 * gives both tiny modules (fast to compile, easy to read when they fail) and
 * ones with tens of functions.
 */
const MIN_INPUT = 512;
const MAX_INPUT = 24 << 10;

export interface Generated {
  seed: number;
  index: number;
  /** The random bytes given to -ttf: with binaryen's version, the whole recipe. */
  input: Uint8Array;
  /** The module binaryen made (still importing "fuzzing-support"). */
  wasm: Uint8Array;
}

function randomBytes(seed: number, index: number): Uint8Array {
  const block = (n: number) => createHash("sha256").update(`thaw-fuzz:${seed}:${index}:${n}`).digest();
  const head = block(0);
  const size = MIN_INPUT + (head.readUInt32LE(0) % (MAX_INPUT - MIN_INPUT));
  const out = new Uint8Array(size);
  for (let off = 0, n = 1; off < size; off += 32, n++) out.set(block(n).subarray(0, size - off), off);
  return out;
}

function wasmOpt(input: Uint8Array, flags: string[], dir: string): Uint8Array {
  const r = spawnSync("wasm-opt", ["-", ...flags, ...FEATURE_FLAGS, "-o", "-"], { cwd: dir, input, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`wasm-opt ${flags.join(" ")} failed (${r.status}): ${r.stderr.toString().trim()}`);
  return new Uint8Array(r.stdout);
}

/** wasm-opt -ttf with the flags above; `bytes` in, a valid module out. */
export const translateToFuzz = (input: Uint8Array, dir: string) => wasmOpt(input, ["-ttf"], dir);

/** The same module with every NaN turned into 0 at run time (outcome.ts, equivalence 5). */
export const deNaN = (wasm: Uint8Array, dir: string) => wasmOpt(wasm, ["--denan"], dir);

export function generate(seed: number, index: number, dir: string): Generated {
  const input = randomBytes(seed, index);
  return { seed, index, input, wasm: translateToFuzz(input, dir) };
}
