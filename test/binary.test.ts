// The single executable (scripts/build-binary.sh): built from this checkout
// and started as `thaw serve` with an empty data directory, it must carry
// everything it needs -- libthaw (written out of the binary at start) and
// the runtime headers new functions are compiled against -- so a deploy
// over real HTTP compiles hello from scratch and a call answers; `thaw run`
// works from the same file, and `serve --examples` deploys the examples the
// binary embeds, saying what it compiles and when each is ready.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, wasmPath } from "./helpers.ts";
import { type ServerProcess, startServer } from "./server.ts";

const BINARY = join(ROOT, "test-output", "bin", "thaw");
const BUILD_TIMEOUT = 180_000;

let scratch: string;
let libDir: string;
let dataDir: string;
/** The environment of the test process minus anything that would point the
 * binary at the checkout's libthaw. */
let env: Record<string, string>;

beforeAll(async () => {
  mkdirSync(join(ROOT, "test-output"), { recursive: true });
  scratch = mkdtempSync(join(tmpdir(), "thaw-binary-"));
  libDir = join(scratch, "lib");
  dataDir = join(scratch, "data");
  mkdirSync(libDir);
  env = Object.fromEntries(
    Object.entries({ ...process.env, THAW_LIB_DIR: libDir }).filter(([k, v]) => k !== "THAW_LIB" && v !== undefined),
  ) as Record<string, string>;

  const build = Bun.spawn(["bash", join(ROOT, "scripts", "build-binary.sh"), BINARY], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, out, err] = await Promise.all([build.exited, new Response(build.stdout).text(), new Response(build.stderr).text()]);
  if (code !== 0) throw new Error(`build-binary.sh exited with ${code}:\n${out}${err}`);
  // It names the output and its size.
  expect(out).toContain(BINARY);
  expect(out).toMatch(/\d+ bytes/);
}, BUILD_TIMEOUT);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe("single binary", () => {
  test("is an executable file", () => {
    const st = statSync(BINARY);
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o111).not.toBe(0);
    expect(st.size).toBeGreaterThan(1 << 20);
  });

  test(
    "serve: deploy hello over HTTP, invoke it, stop cleanly",
    async () => {
      let server: ServerProcess | undefined;
      try {
        // Nothing is in flight at the stop; a short drain bound keeps it quick.
        server = await startServer({ command: [BINARY], dataDir, env, args: ["--shutdown-timeout", "3000"] });
        const put = await fetch(`${server.url}/v1/functions/hello?wait=true`, {
          method: "PUT",
          headers: { "content-type": "application/wasm" },
          body: readFileSync(wasmPath("hello")),
        });
        const putBody = (await put.json()) as { name: string; status: string };
        expect({ status: put.status, body: putBody }).toMatchObject({ status: 201, body: { name: "hello", status: "ready" } });

        const res = await fetch(`${server.url}/v1/functions/hello/invoke`, { method: "POST" });
        expect(res.status).toBe(200);
        expect(await res.text()).toBe("Hello, world!\n");

        // libthaw came out of the binary, not from native/build.
        expect(readdirSync(libDir).some((f) => /^libthaw-[0-9a-f]+\.so$/.test(f))).toBe(true);

        const code = await server.stop();
        server = undefined;
        expect(code).toBe(0);
      } finally {
        if (server) await server.stop();
      }
    },
    BUILD_TIMEOUT,
  );

  test(
    "serve --examples: the embedded examples deploy and answer, one line each as they compile and are ready",
    async () => {
      let server: ServerProcess | undefined;
      try {
        server = await startServer({
          command: [BINARY],
          dataDir: join(scratch, "examples-data"),
          env,
          args: ["--examples", "--shutdown-timeout", "3000"],
        });
        const names = ["hello", "json", "thumbnail", "wordcount", "primes"];
        const lines = (msg: string) => server!.logs.filter((l) => l.msg === msg).map((l) => l.function as string).sort();
        expect(lines("compiling example")).toEqual([...names].sort());
        expect(lines("example ready")).toEqual([...names].sort());
        const res = await fetch(`${server.url}/v1/functions/json/invoke`, { method: "POST", body: '{"b":"x","a":1}' });
        expect(res.status).toBe(200);
        expect(res.headers.get("content-type")).toContain("application/json");
        expect(await res.text()).toBe('{"a":1,"b":"X"}\n');
        const hello = await fetch(`${server.url}/v1/functions/hello/invoke`, { method: "POST" });
        expect(await hello.text()).toBe("Hello, world!\n");
      } finally {
        if (server) await server.stop();
      }
    },
    BUILD_TIMEOUT,
  );

  test(
    "run: one call from the same binary",
    async () => {
      const proc = Bun.spawn([BINARY, "run", wasmPath("hello"), "--data", dataDir, "--env", "QUERY_STRING=name=bin"], {
        cwd: scratch,
        env,
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      });
      const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
      expect({ code, out, err }).toEqual({ code: 0, out: "Hello, bin!\n", err: "" });
    },
    BUILD_TIMEOUT,
  );
});
