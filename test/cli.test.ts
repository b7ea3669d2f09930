// `thaw run` and `thaw compile` as a user (or a WASI test harness) runs them.

import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { DATA_DIR, ROOT, wasmPath } from "./helpers.ts";

function thaw(args: string[], stdin?: string) {
  const r = Bun.spawnSync([process.execPath, join(ROOT, "src/cli.ts"), ...args], {
    env: { ...process.env, THAW_DATA_DIR: DATA_DIR },
    stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
  });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

describe("thaw run", () => {
  test("stdout and exit status are the module's", () => {
    const input = join(DATA_DIR, "exit-input.txt");
    writeFileSync(input, "7\n");
    const r = thaw(["run", wasmPath("exit_code"), "--stdin", input]);
    expect(r.out).toBe("bye\n");
    expect(r.err).toBe("err\n");
    expect(r.code).toBe(7);
  });

  test("--env and words after -- reach the module", () => {
    const r = thaw(["run", wasmPath("echo"), "--env", "K=V", "--", "a", "b"]);
    expect(r.code).toBe(0);
    expect(r.err).toBe("a\nb\nK=V\n");
  });

  test("a trap exits below 128 and is named on stderr", () => {
    const r = thaw(["run", wasmPath("trap_div0")]);
    expect(r.code).toBe(103);
    expect(r.err).toContain("trap: divide_by_zero");
  });

  test("--timeout stops a runaway module", () => {
    const r = thaw(["run", "--timeout", "150", wasmPath("loop_forever")]);
    expect(r.code).toBe(109);
    expect(r.err).toContain("trap: timeout");
  });

  test("piped stdin is the module's stdin, as in functions/README.md", () => {
    const json = thaw(["run", wasmPath("json")], '{"b":[1,"x"],"a":"hi"}\n');
    expect(json).toEqual({ code: 0, out: '{"a":"HI","b":[1,"X"]}\n', err: "" });
    const words = thaw(["run", wasmPath("wordcount")], "The cat and the hat.\nThe end\n");
    expect(words.out).toBe('{"lines":2,"words":7,"bytes":29,"top":[["the",3],["and",1],["cat",1],["end",1],["hat",1]]}\n');
    const primes = thaw(["run", wasmPath("primes")], "10\n97\n");
    expect(primes.out).toBe("10 4 0\n97 25 1\n");
  });

  test("--stdin FILE wins over piped stdin; no stdin at all is an empty one", () => {
    const input = join(DATA_DIR, "words-input.txt");
    writeFileSync(input, "from the file\n");
    expect(JSON.parse(thaw(["run", wasmPath("wordcount"), "--stdin", input], "piped words ignored here").out)).toMatchObject({ words: 3 });
    expect(JSON.parse(thaw(["run", wasmPath("wordcount")]).out)).toMatchObject({ words: 0, bytes: 0 });
  });

  test("a module thaw cannot build is one line with its code, exit 1", () => {
    const file = join(DATA_DIR, "not-a-module.wasm");
    writeFileSync(file, "not wasm at all");
    const r = thaw(["run", file]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^thaw: not_wasm: [^\n]+\n$/);
  });

  test("a bad flag is a usage error", () => {
    const r = thaw(["run", "--bogus", wasmPath("hello")]);
    expect(r.code).toBe(2);
  });

  test("a file that does not exist is a clear error", () => {
    const r = thaw(["run", "/nonexistent.wasm"]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("/nonexistent.wasm");
  });
});

describe("thaw compile", () => {
  test("prints the artifact path and sizes", () => {
    const r = thaw(["compile", "--json", wasmPath("primes")]);
    expect(r.code).toBe(0);
    const meta = JSON.parse(r.out);
    expect(meta.path).toEndWith("fn.so");
    expect(meta.hasInitialize).toBe(true);
    expect(meta.snapshotBytes).toBeGreaterThan(0);
  });
});
