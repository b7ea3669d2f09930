// Builds libthaw's native tests with AddressSanitizer and UBSan and runs
// them: the unit tests standalone, the engine test against functions
// compiled by the real pipeline.

import { expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { artifact, ROOT } from "./helpers.ts";

const NATIVE = join(ROOT, "native");

function make(target: string) {
  const r = Bun.spawnSync(["make", "-s", "-C", NATIVE, target]);
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
}

// Every native test but test_engine runs standalone: found by name, so a new
// test file is run without being listed here.
const STANDALONE = readdirSync(join(NATIVE, "test"))
  .filter((f) => /^test_\w+\.c$/.test(f) && f !== "test_engine.c")
  .map((f) => f.slice(0, -2));

for (const name of STANDALONE) {
  test(`native ${name} under ASan/UBSan`, () => {
    make(`build/${name}`);
    const r = Bun.spawnSync([join(NATIVE, `build/${name}`)]);
    const out = r.stdout.toString() + r.stderr.toString();
    if (r.exitCode !== 0) console.error(out);
    expect(out).toMatch(/\d+ passed, 0 failed/);
    expect(r.exitCode).toBe(0);
  });
}

test("native engine tests under ASan/UBSan", async () => {
  make("build/test_engine");
  const names = ["state_leak", "page_leak", "trap_unreachable", "trap_oob", "trap_div0", "trap_recursion", "loop_forever", "exit_code", "memory_bomb", "malloc_bomb", "hello", "sleep"];
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
