// Builds libthaw's native tests with AddressSanitizer and UBSan and runs
// them: the WASI unit test standalone, the engine test against functions
// compiled by the real pipeline.

import { expect, test } from "bun:test";
import { join } from "node:path";
import { artifact, ROOT } from "./helpers.ts";

const NATIVE = join(ROOT, "native");

function make(target: string) {
  const r = Bun.spawnSync(["make", "-s", "-C", NATIVE, target]);
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
}

test("native WASI host tests under ASan/UBSan", () => {
  make("build/test_wasi");
  const r = Bun.spawnSync([join(NATIVE, "build/test_wasi")]);
  expect(r.stdout.toString() + r.stderr.toString()).toMatch(/\d+ passed, 0 failed/);
  expect(r.exitCode).toBe(0);
});

test("native memory pool (buddy allocator) tests under ASan/UBSan", () => {
  make("build/test_buddy");
  const r = Bun.spawnSync([join(NATIVE, "build/test_buddy")]);
  const out = r.stdout.toString() + r.stderr.toString();
  if (r.exitCode !== 0) console.error(out);
  expect(out).toMatch(/\d+ passed, 0 failed/);
  expect(r.exitCode).toBe(0);
});

test("native engine tests under ASan/UBSan", async () => {
  make("build/test_engine");
  const names = ["state_leak", "trap_unreachable", "trap_oob", "trap_div0", "trap_recursion", "loop_forever", "exit_code", "memory_bomb", "malloc_bomb", "hello"];
  const args = await Promise.all(names.map(async (n) => {
    const a = await artifact(n);
    return `${n}=${a.soPath}:${a.snapshotPath}`;
  }));
  const r = Bun.spawnSync([join(NATIVE, "build/test_engine"), ...args]);
  const out = r.stdout.toString() + r.stderr.toString();
  if (r.exitCode !== 0) console.error(out);
  expect(out).toMatch(/\d+ passed, 0 failed/);
  expect(r.exitCode).toBe(0);
});
