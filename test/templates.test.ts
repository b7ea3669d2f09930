// `thaw new` as a user runs it: every language's template, in both modes, is
// created by the real CLI, built by its own build script with the real
// toolchain (setup installs them), run with `thaw run`, and the HTTP ones
// deployed from their thaw.toml with `thaw deploy` to a real server and
// called over HTTP. Hostile names and options must be refused before
// anything is written.
//
// Builds and thaw compiles are slow on two cores, so each template is
// created and built once (beforeAll) and every assertion shares it; `thaw
// run` and the server share one data directory, so a module compiled by
// `thaw run` is a cache hit when the server deploys it.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers.ts";
import { type ServerProcess, startServer } from "./server.ts";

const LANGS = ["c", "cpp", "rust", "assemblyscript"] as const;
const SOURCES = { c: "main.c", cpp: "main.cpp", rust: "main.rs", assemblyscript: "assembly/index.ts" };

interface Run {
  code: number;
  out: string;
  err: string;
}

async function run(cmd: string[], opts: { cwd?: string; stdin?: string; env?: Record<string, string> } = {}): Promise<Run> {
  const proc = Bun.spawn(cmd, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out, err };
}

const thaw = (args: string[], opts: Parameters<typeof run>[1] = {}) =>
  run([process.execPath, join(ROOT, "src/cli.ts"), ...args], opts);

// `thaw run` compiles on the fast tier (clang -O0): seconds instead of tens of
// seconds for the C++ template on two busy cores. Tiers differ in speed, not
// behaviour (test/tier.test.ts), and the server's deploys then find the
// artifact cached.
const FAST = { THAW_COMPILE_TIER: "fast" };

const work = mkdtempSync(join(tmpdir(), "thaw-templates-"));
const dataDir = join(work, "data");
let server: ServerProcess;

interface Built {
  dir: string;
  wasm: string;
  created: Run;
  built: Run;
  buildMs: number;
}
const built = new Map<string, Promise<Built>>();

/** `thaw new` + the template's build script, once per language and mode. */
function build(lang: string, http: boolean): Promise<Built> {
  const key = `${lang}-${http ? "http" : "stdio"}`;
  let b = built.get(key);
  if (!b) {
    b = (async () => {
      const name = `fn-${key}`;
      const dir = join(work, key);
      const created = await thaw(["new", name, "--lang", lang, ...(http ? ["--http"] : []), "--dir", dir]);
      const started = performance.now();
      const builtRun = await run(["sh", "build.sh"], { cwd: dir });
      const buildMs = Math.round(performance.now() - started);
      const wasm = join(dir, "build", `${name}.wasm`);
      if (builtRun.code === 0) console.log(`template ${key}: build ${buildMs} ms, ${statSync(wasm).size} bytes`);
      return { dir, wasm, created, built: builtRun, buildMs };
    })();
    built.set(key, b);
  }
  return b;
}

const deploys = new Map<string, Promise<Run>>();

/** `thaw deploy` in an HTTP template's directory (thaw.toml: runs build.sh, then deploys), once per language. */
function deploy(lang: string): Promise<Run> {
  let d = deploys.get(lang);
  if (!d) {
    d = build(lang, true).then((b) => thaw(["deploy"], { cwd: b.dir, env: { THAW_URL: server.url } }));
    deploys.set(lang, d);
  }
  return d;
}

beforeAll(async () => {
  mkdirSync(dataDir);
  server = await startServer({ dataDir });
  // Two builds at a time: one per core.
  await Promise.all([
    (async () => {
      for (const lang of ["cpp", "c"]) for (const http of [false, true]) await build(lang, http);
    })(),
    (async () => {
      for (const lang of ["assemblyscript", "rust"]) for (const http of [false, true]) await build(lang, http);
    })(),
  ]);
  // All deploys at once, so their first builds queue on the server ahead of
  // the background upgrades each ready deploy starts.
  await Promise.all(LANGS.map(deploy));
}, 300_000);

afterAll(async () => {
  await server?.stop();
  rmSync(work, { recursive: true, force: true });
});

for (const lang of LANGS) {
  describe(`thaw new --lang ${lang}`, () => {
    test("creates a project whose build script makes a module", async () => {
      const b = await build(lang, false);
      expect(b.created.code).toBe(0);
      expect(b.created.out).toContain("sh build.sh");
      expect(readdirSync(b.dir).sort()).toEqual(
        [".gitignore", "README.md", "build", "build.sh", "thaw.toml", SOURCES[lang].split("/")[0]!, ...(lang === "assemblyscript" ? ["asconfig.json", "bun.lock", "node_modules", "package.json"] : [])].sort(),
      );
      expect(statSync(join(b.dir, "build.sh")).mode & 0o111).not.toBe(0);
      expect(b.built.code).toBe(0);
      expect(readFileSync(b.wasm).subarray(0, 4)).toEqual(Buffer.from("\0asm"));
      const manifest = Bun.TOML.parse(readFileSync(join(b.dir, "thaw.toml"), "utf8"));
      expect(manifest).toEqual({ name: `fn-${lang}-stdio`, module: `build/fn-${lang}-stdio.wasm`, build: "sh build.sh" });
      for (const file of ["README.md", SOURCES[lang], "build.sh"]) expect(readFileSync(join(b.dir, file), "utf8")).not.toContain("{{");
    }, 300_000);

    test("thaw run: stdin to stdout, stderr is the log", async () => {
      const b = await build(lang, false);
      const r = await thaw(["run", b.wasm, "--data", dataDir], { stdin: "  Ada Lovelace\n", env: FAST });
      expect(r.err).toContain(`fn-${lang}-stdio: read 15 bytes`);
      expect(r.out).toBe("Hello, Ada Lovelace!\n");
      expect(r.code).toBe(0);
      const empty = await thaw(["run", b.wasm, "--data", dataDir], { stdin: "", env: FAST });
      expect(empty.out).toBe("Hello, world!\n");
    }, 300_000);

    test("--http: thaw run prints CGI headers, then the body", async () => {
      const b = await build(lang, true);
      expect(b.built.code).toBe(0);
      const manifest = Bun.TOML.parse(readFileSync(join(b.dir, "thaw.toml"), "utf8")) as Record<string, unknown>;
      expect(manifest.content_type).toBe("text/plain; charset=utf-8");
      const env = ["--env", "REQUEST_METHOD=GET", "--env", "PATH_INFO=/x/y", "--env", "QUERY_STRING=a=1&name=Ada%20L%2B+x"];
      const r = await thaw(["run", b.wasm, "--data", dataDir, ...env], { stdin: "", env: FAST });
      expect(r.out).toBe("Status: 200 OK\nContent-Type: text/plain; charset=utf-8\nX-Content-Type-Options: nosniff\n\nHello, Ada L+ x!\n");
      expect(r.err).toContain(`fn-${lang}-http: GET /x/y`);
      expect(r.code).toBe(0);
    }, 300_000);

    test("--http: thaw deploy from thaw.toml, then called over HTTP", async () => {
      const name = `fn-${lang}-http`;
      const deployed = await deploy(lang);
      expect(deployed.err + deployed.out).not.toContain("error");
      expect(deployed.code).toBe(0);
      const base = `${server.url}/fn/${name}`;

      const get = await fetch(`${base}/some/path?name=Grace`);
      expect(get.status).toBe(200);
      expect(get.headers.get("content-type")).toBe("text/plain; charset=utf-8");
      expect(get.headers.get("x-content-type-options")).toBe("nosniff");
      expect(await get.text()).toBe("Hello, Grace!\n");

      const post = await fetch(`${base}/`, { method: "POST", body: "  Barbara \n" });
      expect(post.status).toBe(200);
      expect(await post.text()).toBe("Hello, Barbara!\n");

      const bare = await fetch(`${base}/`);
      expect(await bare.text()).toBe("Hello, world!\n");

      const put = await fetch(`${base}/`, { method: "PUT", body: "x" });
      expect(put.status).toBe(405);
      expect(put.headers.get("allow")).toBe("GET, POST");
      expect(await put.text()).toBe("method not allowed\n");
    }, 300_000);
  });
}

describe("the single binary", () => {
  /** Every file under dir, by relative path, with its bytes as text. */
  const tree = (dir: string): Record<string, string> =>
    Object.fromEntries(
      (readdirSync(dir, { recursive: true }) as string[])
        .filter((p) => statSync(join(dir, p)).isFile())
        .map((p) => [p, readFileSync(join(dir, p), "utf8")]),
    );

  test("carries the templates: thaw new writes the same files as from source", async () => {
    const binary = join(work, "bin", "thaw");
    const built = await run(["bash", join(ROOT, "scripts", "build-binary.sh"), binary]);
    expect(built.code).toBe(0);
    // Run where no templates/ directory could be found on disk.
    const cwd = join(work, "binary-cwd");
    mkdirSync(cwd);
    for (const lang of LANGS) {
      for (const http of [[], ["--http"]]) {
        const args = ["new", `b-${lang}`, "--lang", lang, ...http];
        const fromBinary = await run([binary, ...args, "--dir", join(cwd, "bin")], { cwd });
        const fromSource = await thaw([...args, "--dir", join(cwd, "src")], { cwd });
        expect(fromBinary.err).toBe("");
        expect(fromBinary.code).toBe(0);
        expect(fromSource.code).toBe(0);
        const files = tree(join(cwd, "bin"));
        expect(Object.keys(files)).toContain(SOURCES[lang]);
        expect(files).toEqual(tree(join(cwd, "src")));
        expect(statSync(join(cwd, "bin", "build.sh")).mode & 0o111).not.toBe(0);
        rmSync(join(cwd, "bin"), { recursive: true });
        rmSync(join(cwd, "src"), { recursive: true });
      }
    }
  }, 180_000);
});

describe("thaw new refuses hostile input before writing anything", () => {
  const cwd = join(work, "hostile");

  const hostileNames = [
    "../evil", "a/b", "/abs", "..", ".", "", "Evil", "a b", 'a"b', "a'b", "a;touch x", "$(touch x)", "`touch x`",
    "a\nb", "a\\b", "_x", "a.b", "é", "x".repeat(64), "a=b", "{{name}}",
  ];
  for (const name of hostileNames) {
    test(`name ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}…(${name.length})` : name)}`, async () => {
      mkdirSync(cwd, { recursive: true });
      const r = await thaw(["new", "--lang", "c", "--", name], { cwd });
      expect(r.code).toBe(2);
      expect(r.err).toContain("1 to 63 of a-z, 0-9, _ and -");
      expect(readdirSync(cwd)).toEqual([]);
      expect(existsSync(join(work, "evil"))).toBe(false);
    });
  }

  test("a name that looks like a flag is a usage error", async () => {
    mkdirSync(cwd, { recursive: true });
    const r = await thaw(["new", "-rf", "--lang", "c"], { cwd });
    expect(r.code).toBe(2);
    expect(readdirSync(cwd)).toEqual([]);
  });

  for (const lang of ["python", "__proto__", "constructor", "../c", "C", ""]) {
    test(`--lang ${JSON.stringify(lang)}`, async () => {
      mkdirSync(cwd, { recursive: true });
      const r = await thaw(["new", "ok", "--lang", lang], { cwd });
      expect(r.code).toBe(2);
      expect(r.err).toContain("c, cpp, rust, assemblyscript");
      expect(readdirSync(cwd)).toEqual([]);
    });
  }

  test("no --lang, or two names", async () => {
    mkdirSync(cwd, { recursive: true });
    expect((await thaw(["new", "ok"], { cwd })).code).toBe(2);
    expect((await thaw(["new", "ok", "other", "--lang", "c"], { cwd })).code).toBe(2);
    expect(readdirSync(cwd)).toEqual([]);
  });

  test("an existing non-empty directory or a file is refused and left alone", async () => {
    const full = join(work, "full");
    mkdirSync(full, { recursive: true });
    writeFileSync(join(full, "main.c"), "mine");
    const r = await thaw(["new", "ok", "--lang", "c", "--dir", full]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("not empty");
    expect(readdirSync(full)).toEqual(["main.c"]);
    expect(readFileSync(join(full, "main.c"), "utf8")).toBe("mine");

    const file = join(work, "a-file");
    writeFileSync(file, "mine");
    const f = await thaw(["new", "ok", "--lang", "c", "--dir", file]);
    expect(f.code).toBe(1);
    expect(readFileSync(file, "utf8")).toBe("mine");
  });

  test("an empty directory, a nested new one and the longest name are fine", async () => {
    const empty = join(work, "empty");
    mkdirSync(empty);
    expect((await thaw(["new", "ok", "--lang", "rust", "--dir", empty])).code).toBe(0);
    expect(readFileSync(join(empty, "main.rs"), "utf8")).toContain("ok: read");

    const longest = `a${"-".repeat(61)}z`;
    const nested = join(work, "x", "y");
    const r = await thaw(["new", longest, "--lang", "assemblyscript", "--http", "--dir", nested]);
    expect(r.code).toBe(0);
    expect(Bun.TOML.parse(readFileSync(join(nested, "thaw.toml"), "utf8"))).toMatchObject({ name: longest, module: `build/${longest}.wasm` });
    expect(JSON.parse(readFileSync(join(nested, "package.json"), "utf8")).name).toBe(longest);

    // Without --dir the directory is the name, relative to where thaw runs.
    const here = join(work, "here");
    mkdirSync(here);
    expect((await thaw(["new", "plain", "--lang", "cpp"], { cwd: here })).code).toBe(0);
    expect(readdirSync(join(here, "plain")).sort()).toEqual([".gitignore", "README.md", "build.sh", "main.cpp", "thaw.toml"]);
  });
});
