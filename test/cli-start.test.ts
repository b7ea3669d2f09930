// The CLI's start-up and its self-description: `thaw --help` and the client
// commands must not load the server, the compiler, the engine or ioredis
// (checked on the static import graph, which is what decides it, rather than
// by timing); every command answers --help; --version is package.json's;
// the flags the table lists are the flags the commands accept.

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { COMMANDS, parse } from "../src/cli/commands.ts";
import { NAME_PATTERN } from "../src/cli/common.ts";
import { reference } from "../src/cli/help.ts";
import { ROOT } from "./helpers.ts";

const transpiler = new Bun.Transpiler({ loader: "ts" });

/** Every file and package reachable from `entry` through static imports (dynamic import() is not followed). */
function staticGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    if (!/\.[cm]?[jt]sx?$/.test(file)) return;
    for (const imp of transpiler.scanImports(readFileSync(file, "utf8").replace(/^#!.*/, ""))) {
      if (imp.kind !== "import-statement" && imp.kind !== "require-call") continue;
      if (imp.path.startsWith(".")) visit(resolve(dirname(file), imp.path));
      else if (!imp.path.startsWith("node:") && !imp.path.startsWith("bun")) packages.add(imp.path.split("/").slice(0, imp.path.startsWith("@") ? 2 : 1).join("/"));
    }
  };
  visit(entry);
  return { files, packages };
}

const HEAVY_DIRS = ["src/server/", "src/compiler/", "src/engine/", "src/jobs/", "src/pool/", "src/cluster/", "src/registry/"];
const HEAVY_PACKAGES = ["ioredis", "elysia", "@elysiajs/openapi", "arktype", "prom-client", "msgpackr"];

function heavyParts(entry: string): string[] {
  const { files, packages } = staticGraph(join(ROOT, entry));
  const rel = [...files].map((f) => relative(ROOT, f));
  return [...rel.filter((f) => HEAVY_DIRS.some((d) => f.startsWith(d)) || f === "src/config.ts"), ...[...packages].filter((p) => HEAVY_PACKAGES.includes(p))];
}

describe("start-up", () => {
  // What `thaw --help`, `--version`, `completion` and every client command load before they run.
  const light = ["src/cli.ts", "src/cli/client.ts", "src/cli/deploy.ts", "src/cli/logs.ts", "src/cli/completion.ts", "src/cli/help.ts"];
  for (const entry of light)
    test(`${entry} imports nothing of the server, compiler, engine or ioredis`, () => {
      expect(heavyParts(entry)).toEqual([]);
    });

  test("the walk does see heavy imports where they are (so the checks above can fail)", () => {
    const serve = heavyParts("src/cli/serve.ts");
    expect(serve).toContain("src/server/server.ts");
    expect(serve).toContain("ioredis");
    expect(heavyParts("src/cli/run.ts")).toContain("src/compiler/compile.ts");
  });

  test("every command's module exists, so the lazy table cannot point nowhere", async () => {
    for (const c of COMMANDS) expect(typeof (await c.load())).toBe("function");
  });
});

function thaw(...args: string[]) {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "src/cli.ts"), ...args], { stdin: "ignore" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

describe("--help and --version", () => {
  test("--version prints package.json's version", () => {
    expect(thaw("--version")).toEqual({ code: 0, out: `thaw ${pkg.version}\n`, err: "" });
  });

  test("thaw --help lists every command; no command at all is a usage error", () => {
    const help = thaw("--help");
    expect(help.code).toBe(0);
    for (const c of COMMANDS) expect(help.out).toMatch(new RegExp(`^  ${c.name} `, "m"));
    const none = thaw();
    expect(none.code).toBe(2);
    expect(none.err).toContain("usage: thaw COMMAND");
  });

  for (const c of COMMANDS)
    test(`thaw ${c.name} --help and -h print its usage and every visible flag`, () => {
      for (const flag of ["--help", "-h"]) {
        const r = thaw(c.name, flag);
        expect(r.code).toBe(0);
        expect(r.err).toBe("");
        expect(r.out).toStartWith(`usage: thaw ${c.name}`);
        for (const f of c.flags) (f.hidden ? expect(r.out).not : expect(r.out)).toContain(`--${f.name}`);
      }
      expect(thaw("help", c.name).out).toBe(thaw(c.name, "--help").out);
    });

  test("docs/cli.md is the --help texts of today (regenerate: bun src/cli/help.ts > docs/cli.md)", () => {
    expect(readFileSync(join(ROOT, "docs/cli.md"), "utf8")).toBe(reference());
  });

  test("an unknown command or flag is a one-line usage error, exit 2", () => {
    const cmd = thaw("dpeloy");
    expect(cmd).toEqual({ code: 2, out: "", err: 'thaw: unknown command "dpeloy" (see thaw --help)\n' });
    const flag = thaw("functions", "--jsno");
    expect(flag.code).toBe(2);
    expect(flag.err).toBe("thaw functions: Unknown option '--jsno' (see thaw functions --help)\n");
  });
});

/** Valid values for the serve flags that take something other than a number. */
const VALUES: Record<string, string> = {
  host: "127.0.0.1",
  tokens: "t:a",
  "tenant-memory": "",
  "cors-origins": "*",
  "access-log": "errors",
  "redis-url": "redis://127.0.0.1:1",
  "callback-allow": "10.0.0.0/8",
  "registry-allow": "10.0.0.0/8",
  "registry-plain-http": "localhost:5000",
};

describe("the table and the parsers agree", () => {
  test("the CLI's function-name rule is the server's", async () => {
    const { FunctionName } = await import("../src/server/schemas.ts");
    const { type } = await import("arktype");
    for (const name of ["a", "0", "hello-world_2", "a".repeat(63), "a".repeat(64), "-a", "_a", "A", "a.b", "a/b", "", "é", "a b"])
      expect(NAME_PATTERN.test(name), name).toBe(!(FunctionName({ name }) instanceof type.errors));
  });

  test("the commands thaw parses itself accept every flag the table lists, and the table's typos are caught", () => {
    for (const c of COMMANDS.filter((c) => !["serve", "new", "push"].includes(c.name))) {
      const argv = c.flags.flatMap((f) => (f.value ? [`--${f.name}`, "1"] : [`--${f.name}`]));
      expect(() => parse(c.name, argv)).not.toThrow();
    }
    expect(() => parse("functions", []).string("jsno")).toThrow("no flag --jsno");
  });

  test("thaw serve accepts every flag its help lists, and lists every flag it accepts", async () => {
    const { parseServerConfig } = await import("../src/config.ts");
    const serve = COMMANDS.find((c) => c.name === "serve")!;
    const dir = join(ROOT, "functions", "build");
    for (const f of serve.flags) {
      const value = VALUES[f.name] ?? (f.name.endsWith("-dir") ? dir : "1");
      const argv = f.value ? [`--${f.name}`, value] : [`--${f.name}`];
      expect(() => parseServerConfig(argv, {}), `--${f.name}`).not.toThrow();
    }
    // The reverse: config.ts's option table, from its source, against ours.
    const source = readFileSync(join(ROOT, "src/config.ts"), "utf8");
    const spec = /const SPEC = \{([\s\S]*?)\n\}/.exec(source)?.[1] ?? "";
    const options = /options: \{([\s\S]*?)\n {4}\}/.exec(source.slice(source.indexOf("export function parseServerConfig")))?.[1] ?? "";
    const accepted = [...`${spec}\n${options}`.matchAll(/^\s+"?([a-z][a-z-]*)"?: \{/gm)].map((m) => m[1]);
    expect(accepted.length).toBeGreaterThan(20);
    const listed = serve.flags.map((f) => f.name);
    expect(accepted.filter((f) => !listed.includes(f!)), "serve flags missing from src/cli/commands.ts").toEqual([]);
  });

  test("thaw new and thaw push accept the flags listed for them", () => {
    const push = thaw("push", "/nonexistent.wasm", "127.0.0.1:1/r:t", "--auth", "Bearer x", "--plain-http");
    expect(push.err).not.toContain("Unknown option");
    const made = thaw("new", "bad/name", "--lang", "c", "--http", "--dir", "/nonexistent/x");
    expect(made.code).toBe(2);
    expect(made.err).not.toContain("Unknown option");
  });
});
