// The compiler pipeline: what it refuses, with which error, and that a
// module is compiled once.

import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { compile } from "../src/compiler/compile.ts";
import { compileError, DATA_DIR, ROOT, sharedEngine, wasmPath } from "./helpers.ts";

describe("compiler", () => {
  test("bytes that are not wasm", async () => {
    const e = await compileError(new TextEncoder().encode("#!/bin/sh\necho hi\n"));
    expect(e.code).toBe("not_wasm");
  });

  test("a truncated module", async () => {
    const bytes = readFileSync(wasmPath("hello")).subarray(0, 200);
    expect((await compileError(bytes)).code).toBe("invalid_module");
  });

  test("a module wasm-validate rejects", async () => {
    // header + a type section whose function type uses an unknown value type
    const bytes = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 5, 1, 0x60, 1, 0x42, 0]);
    expect((await compileError(bytes)).code).toBe("invalid_module");
  });

  test("unknown imports are refused with their list", async () => {
    const e = await compileError(readFileSync(wasmPath("unknown_import")));
    expect(e.code).toBe("unsupported_imports");
    expect(e.details.imports?.map((i) => i.import)).toEqual(["env.foo"]);
    expect(e.message).toContain("env.foo");
  });

  test("the same module is compiled once", async () => {
    const bytes = readFileSync(wasmPath("hello"));
    const first = await compile(bytes, { dataDir: DATA_DIR, engine: sharedEngine() });
    const second = await compile(bytes, { dataDir: DATA_DIR, engine: sharedEngine() });
    expect(second.cached).toBe(true);
    expect(second.soPath).toBe(first.soPath);
    expect(second.meta.codeBytes).toBeGreaterThan(0);
  });

  test("a missing toolchain names the package to install", () => {
    const r = Bun.spawnSync([process.execPath, join(ROOT, "src/cli.ts"), "compile", wasmPath("exit_code")], {
      env: { ...process.env, PATH: "/nonexistent", THAW_DATA_DIR: join(DATA_DIR, "no-tools") },
    });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr.toString()).toContain("apt-get install wabt");
  });

  test("a C compiler failure shows its log and leaves no build directory", () => {
    const dataDir = join(DATA_DIR, "bad-cc");
    const r = Bun.spawnSync([process.execPath, join(ROOT, "src/cli.ts"), "compile", wasmPath("exit_code")], {
      env: { ...process.env, CC: "false", THAW_DATA_DIR: dataDir },
    });
    expect(r.exitCode).toBe(1);
    const err = r.stderr.toString();
    expect(err).toContain("compiler_failed");
    expect(err).toContain("build log");
    expect(err).toContain("wasm2c");
    expect(readdirSync(join(dataDir, "artifacts")).filter((f) => f.startsWith(".build-"))).toEqual([]);
  });
});
