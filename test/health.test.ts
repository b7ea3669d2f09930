// What an operator sees of a node at start, against a real `thaw serve`:
// tenant names from the command line are checked before they reach the
// data directory.

import { describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers.ts";

describe("tenant names on the command line", () => {
  async function serve(args: string[], env: Record<string, string> = {}) {
    const data = mkdtempSync(join(tmpdir(), "thaw-test-"));
    const proc = Bun.spawn([process.execPath, join(ROOT, "src/cli.ts"), "serve", "--port", "0", "--data", data, ...args], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, ...env },
    });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    clearTimeout(timer);
    return { code, stderr };
  }

  for (const [what, args, env, tenant] of [
    ["--tokens", ["--tokens", "good-token:alice,secret-token:../evil"], {}, "../evil"],
    ["THAW_TOKENS", [], { THAW_TOKENS: "secret-token:Alice" }, "Alice"],
    ["--tenant-memory", ["--tenant-memory", "a/b:0:1048576"], {}, "a/b"],
  ] as const) {
    test(`a bad tenant name in ${what} stops the server at start with one line naming it`, async () => {
      const { code, stderr } = await serve([...args], env);
      expect(code).toBe(2);
      const lines = stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(JSON.stringify(tenant));
      expect(lines[0]).toMatch(/^thaw: .*invalid tenant name/);
      expect(stderr).not.toContain("secret-token");
    });
  }
});
