// `thaw deploy` with no FILE: ./thaw.toml (or --manifest) names the
// function, its module and build command, through the real CLI against a
// real server. Hostile manifests (bad TOML, wrong types, unknown keys,
// modules outside the manifest's directory) are refused in one line naming
// the key, before any request is made.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, wasmPath } from "./helpers.ts";
import { type ServerProcess, startServer } from "./server.ts";

let server: ServerProcess;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server.stop();
});

const UNREACHABLE = "http://127.0.0.1:1";

/** A fresh directory holding thaw.toml with `toml` (and any extra files). */
function project(toml: string, files: Record<string, string | Uint8Array> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "thaw-manifest-"));
  writeFileSync(join(dir, "thaw.toml"), toml);
  for (const [path, data] of Object.entries(files)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), data);
  }
  return dir;
}

function thaw(cwd: string, args: string[], url = server.url) {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "src/cli.ts"), ...args], { cwd, env: { ...process.env, THAW_URL: url }, stdin: "ignore" });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

const config = (name: string) => {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "src/cli.ts"), "functions", "--json"], { env: { ...process.env, THAW_URL: server.url } });
  return (JSON.parse(p.stdout.toString()) as { name: string; config: Record<string, unknown> }[]).find((f) => f.name === name)?.config;
};

describe("deploying from thaw.toml", () => {
  test("runs the build in the manifest's directory, then deploys what it built with the manifest's config", () => {
    const dir = project(`
name = "mf"
module = "build/mf.wasm"
build = "pwd > where.txt && echo building && mkdir -p build && cp ${wasmPath("echo")} build/mf.wasm"
memory_mib = 32
timeout_ms = 2000
max_concurrency = 4
content_type = "text/plain"
[env]
GREETING = "hi"
`);
    const r = thaw(dir, ["deploy"]);
    expect(r.stderr).toContain("building\n");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^mf ready v1/);
    expect(r.stdout).not.toContain("building");
    expect(readFileSync(join(dir, "where.txt"), "utf8").trim()).toBe(dir);
    expect(config("mf")).toMatchObject({ memoryMiB: 32, timeoutMs: 2000, maxConcurrency: 4, contentType: "text/plain", env: { GREETING: "hi" } });
  });

  test("flags override the manifest key by key; --manifest reads one from elsewhere; --no-build skips the build", () => {
    const dir = project(`name = "mf2"\nmodule = "m.wasm"\nbuild = "touch built"\nmemory_mib = 32\n[env]\nA = "1"\nB = "2"\n`, {
      "m.wasm": readFileSync(wasmPath("echo")),
    });
    const r = thaw(tmpdir(), ["deploy", "--manifest", join(dir, "thaw.toml"), "--no-build", "--memory", "16", "--env", "B=3", "--name", "mf3"]);
    expect(r.code).toBe(0);
    expect(existsSync(join(dir, "built"))).toBe(false);
    expect(config("mf3")).toMatchObject({ memoryMiB: 16, env: { A: "1", B: "3" } });
    expect(config("mf2")).toBeUndefined();
  });

  test("a failing build stops the deploy", () => {
    const dir = project(`name = "broken"\nmodule = "m.wasm"\nbuild = "echo oops >&2; exit 3"\n`);
    const r = thaw(dir, ["deploy"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("oops\n");
    expect(r.stderr.trimEnd().split("\n").at(-1)).toBe('thaw: build failed (exit 3): echo oops >&2; exit 3');
    expect(config("broken")).toBeUndefined();
  });

  test("no thaw.toml and no FILE is a usage error saying what to do", () => {
    const r = thaw(mkdtempSync(join(tmpdir(), "thaw-empty-")), ["deploy"], UNREACHABLE);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("thaw: no FILE given and no thaw.toml here (write one, or run `thaw new`)\n");
  });
});

describe("hostile manifests: one line naming the key, no request made", () => {
  const cases: [string, string, RegExp][] = [
    ["bad TOML", `name = "x\nmodule = `, /not valid TOML/],
    ["an unknown key", `name = "x"\nmodule = "m.wasm"\nmemory = 64\n`, /unknown key "memory"/],
    ["a misspelt key in a table", `name = "x"\nmodule = "m.wasm"\n[environment]\nA = "1"\n`, /unknown key "environment"/],
    ["no name", `module = "m.wasm"\n`, /"name" is required/],
    ["a name that is a number", `name = 5\nmodule = "m.wasm"\n`, /"name" must be a non-empty string/],
    ["a name the server refuses", `name = "../../etc"\nmodule = "m.wasm"\n`, /"name" "..\/..\/etc" is not a function name: 1 to 63 of a-z/],
    ["no module", `name = "x"\n`, /"module" is required/],
    ["memory as a string", `name = "x"\nmodule = "m.wasm"\nmemory_mib = "64"\n`, /"memory_mib" must be a positive integer/],
    ["a fractional timeout", `name = "x"\nmodule = "m.wasm"\ntimeout_ms = 1.5\n`, /"timeout_ms" must be a positive integer/],
    ["a negative concurrency", `name = "x"\nmodule = "m.wasm"\nmax_concurrency = -1\n`, /"max_concurrency" must be a positive integer/],
    ["an integer past 2^53", `name = "x"\nmodule = "m.wasm"\nmemory_mib = 9007199254740993\n`, /not valid TOML: .*Integer/],
    ["env as a string", `name = "x"\nmodule = "m.wasm"\nenv = "A=1"\n`, /"env" must be a table of strings/],
    ["an env value that is a number", `name = "x"\nmodule = "m.wasm"\n[env]\nA = 1\n`, /"env.A" must be a string/],
    ["a build that is a list", `name = "x"\nmodule = "m.wasm"\nbuild = ["make"]\n`, /"build" must be a non-empty string/],
    ["a module above the manifest", `name = "x"\nmodule = "../m.wasm"\n`, /"module" "..\/m.wasm" leaves the manifest's directory/],
    ["a module that climbs out through a subdirectory", `name = "x"\nmodule = "build/../../../etc/passwd"\n`, /leaves the manifest's directory/],
    ["an absolute module", `name = "x"\nmodule = "/etc/passwd"\n`, /"module" must be a path relative to the manifest's directory/],
    ["the directory itself", `name = "x"\nmodule = "."\n`, /leaves the manifest's directory/],
  ];
  for (const [what, toml, message] of cases)
    test(what, () => {
      const dir = project(toml);
      const r = thaw(dir, ["deploy"], UNREACHABLE);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(message);
      expect(r.stderr.split("\n")).toHaveLength(2);
      expect(r.stderr).toStartWith(`thaw: ${join(dir, "thaw.toml")}: `);
    });

  test("a module symlinked to a file outside the directory", () => {
    const dir = project(`name = "x"\nmodule = "m.wasm"\n`);
    symlinkSync(wasmPath("echo"), join(dir, "m.wasm"));
    const r = thaw(dir, ["deploy", "--no-build"], UNREACHABLE);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/"module" resolves outside the manifest's directory/);
  });

  test("a module that is missing, or a directory", () => {
    const missing = thaw(project(`name = "x"\nmodule = "build/x.wasm"\n`), ["deploy"], UNREACHABLE);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^thaw: \S+thaw.toml: module build\/x.wasm not found\n$/);
    const dir = project(`name = "x"\nmodule = "build"\n`);
    mkdirSync(join(dir, "build"));
    const directory = thaw(dir, ["deploy"], UNREACHABLE);
    expect(directory.code).toBe(2);
    expect(directory.stderr).toMatch(/"module" build is not a file/);
  });

  test("FILE with manifest flags is a usage error", () => {
    const r = thaw(tmpdir(), ["deploy", wasmPath("echo"), "--name", "x", "--no-build"], UNREACHABLE);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--manifest and --no-build are for deploys from thaw.toml");
  });
});
