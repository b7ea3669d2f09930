// `bun run bench NAME` checks what the benchmark needs before loading it:
// a missing tool or build is one line naming it and the command that
// provides it, exit 2 -- run for real with a PATH that lacks the tools.

import { describe, expect, test } from "bun:test";
import { mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { BENCHES, built, missingLine, tool } from "../scripts/bench.ts";
import { ROOT } from "./helpers.ts";

/** A PATH holding bun and, linked in, only the named programs. */
function pathWith(...programs: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), "thaw-path-"));
  for (const p of programs) symlinkSync(Bun.which(p)!, join(dir, p));
  return `${dir}:${dirname(process.execPath)}`;
}

function bench(args: string[], PATH: string) {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "scripts/bench.ts"), ...args], { env: { ...process.env, PATH }, stdin: "ignore" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

describe("benchmark prerequisites", () => {
  test("invoke without wrk names it and the command to install it", () => {
    const r = bench(["invoke"], pathWith("wasm2c", "wasm-validate", "cc"));
    expect(r).toEqual({ code: 2, out: "", err: "bench invoke: missing wrk; run `apt-get install -y wrk` (or bash scripts/test.sh)\n" });
  });

  test("jobs without redis-server, and several tools missing at once, in one line", () => {
    expect(bench(["jobs"], pathWith("wasm2c", "wasm-validate", "cc")).err).toBe(
      "bench jobs: missing redis-server; run `apt-get install -y redis-server` (or bash scripts/test.sh)\n",
    );
    const bare = bench(["invoke"], pathWith());
    expect(bare.code).toBe(2);
    expect(bare.err).toBe("bench invoke: missing wasm2c, wasm-validate, cc, wrk; run `apt-get install -y wabt gcc wrk` (or bash scripts/test.sh)\n");
  });

  test("a missing build names the make command", () => {
    const line = missingLine("x", { load: async () => {}, needs: [built("no/such/file", "make -C nowhere"), tool("no-such-tool-thaw", "thaw-pkg")] });
    expect(line).toBe("bench x: missing no/such/file, no-such-tool-thaw; run `apt-get install -y thaw-pkg && make -C nowhere`");
    expect(missingLine("x", { load: async () => {}, needs: [built("no/such/file", "make -C nowhere")] })).toBe(
      "bench x: missing no/such/file; run `make -C nowhere` (or bash scripts/setup.sh)",
    );
    expect(missingLine("y", { load: async () => {}, needs: [tool("sh"), built("package.json", "true")] })).toBeUndefined();
  });

  test("no benchmark name is a usage line listing them", () => {
    const r = bench([], process.env.PATH!);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`usage: bun run bench <${Object.keys(BENCHES).join("|")}>\n`);
  });
});
