// Shared by the test files: one engine per test process and the example
// functions compiled through the real pipeline into a data directory that
// persists between runs (artifacts are content-addressed, so a toolchain or
// runtime change rebuilds them).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type Artifact, CompileError, compile } from "../src/compiler/compile.ts";
import { DEFAULT_LIMITS, Engine, type Limits } from "../src/engine/engine.ts";

export const ROOT = join(import.meta.dir, "..");
export const DATA_DIR = process.env.THAW_TEST_DATA ?? join(ROOT, "test-output", "data");
export const wasmPath = (name: string) => join(ROOT, "functions", "build", `${name}.wasm`);

let engine: Engine | undefined;
export function sharedEngine(): Engine {
  engine ??= new Engine();
  return engine;
}

const artifacts = new Map<string, Promise<Artifact>>();
export function artifact(name: string): Promise<Artifact> {
  let a = artifacts.get(name);
  if (!a) {
    a = compile(readFileSync(wasmPath(name)), { dataDir: DATA_DIR, engine: sharedEngine() });
    artifacts.set(name, a);
  }
  return a;
}

export async function loadFunction(name: string, limits: Partial<Limits> = {}) {
  const a = await artifact(name);
  return sharedEngine().load(a.soPath, a.snapshotPath, { ...DEFAULT_LIMITS, ...limits });
}

export const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** Resident set size of this process in bytes. */
export function rssBytes(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return Number(m?.[1] ?? 0) * 1024;
}

/** The CompileError a module gets from the real pipeline; fails the test if it compiles. */
export async function compileError(bytes: Uint8Array): Promise<CompileError> {
  try {
    await compile(bytes, { dataDir: DATA_DIR, engine: sharedEngine() });
  } catch (e) {
    if (e instanceof CompileError) return e;
    throw e;
  }
  throw new Error("compile succeeded");
}
