// The client commands (deploy, invoke, job, functions, logs, push) as a user
// runs them: the real CLI in its own process against a real server (and, for
// OCI, Debian's docker-registry on loopback).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { ROOT, wasmPath } from "./helpers.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";
import { wat } from "./wat.ts";

let server: ServerProcess;
beforeAll(async () => {
  server = await startServer({ args: ["--registry-allow", "127.0.0.1/32", "--registry-plain-http", "127.0.0.1"] });
  // Most tests call "wc"; deployed here so that each can run alone.
  expect((await putModule(server, "wc", "wordcount")).status).toBe(201);
});
afterAll(async () => {
  await server.stop();
});

const TMP = mkdtempSync(join(tmpdir(), "thaw-cli-"));

/** Runs the CLI; `stdin` is piped in when given, else stdin is /dev/null (not a terminal either). */
function thaw(args: string[], opts: { stdin?: string | Uint8Array; env?: Record<string, string> } = {}) {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "src/cli.ts"), ...args], {
    env: { ...process.env, THAW_URL: server.url, ...opts.env },
    stdin: opts.stdin === undefined ? "ignore" : typeof opts.stdin === "string" ? new TextEncoder().encode(opts.stdin) : opts.stdin,
  });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

describe("deploy, invoke, functions, job", () => {
  test("a function from file to answer", () => {
    const deployed = thaw(["deploy", wasmPath("wordcount"), "--name", "first"]);
    expect(deployed.code).toBe(0);
    expect(deployed.stdout).toMatch(/^first ready v1 /);
    const called = thaw(["invoke", "first", "--data", "a b a"]);
    expect(called.code).toBe(0);
    expect(JSON.parse(called.stdout)).toMatchObject({ words: 3, top: [["a", 2], ["b", 1]] });
    expect(thaw(["functions"]).stdout).toMatch(/^first\s+ready\s+v1/m);
    const missing = thaw(["invoke", "nope"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`thaw: function_not_found: no function "nope"\n`);
  });

  test("deploy shows its progress on stderr, one line per stage when not a terminal", () => {
    const deployed = thaw(["deploy", wasmPath("primes"), "--name", "progress", "--memory", "32", "--env", "A=1"]);
    expect(deployed.code).toBe(0);
    const lines = deployed.stderr.trimEnd().split("\n");
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatch(/^thaw: progress v1: [a-z :]+ \(\d+\.\d+s\)$/);
    expect(new Set(lines.map((l) => l.replace(/ \(.*/, ""))).size).toBe(lines.length);
    expect(deployed.stdout).toMatch(/^progress ready v1( \w+)? \(\d+ B module, \d+ B native code\)\n$/);
    const view = thaw(["functions", "--json"]);
    expect(JSON.parse(view.stdout).find((f: { name: string }) => f.name === "progress").config).toMatchObject({ memoryMiB: 32, env: { A: "1" } });
  });

  test("on a terminal, progress is one line rewritten in place", () => {
    // script(1) runs the CLI on a pseudo-terminal.
    const cmd = [process.execPath, join(ROOT, "src/cli.ts"), "deploy", wasmPath("primes"), "--name", "tty", "--url", server.url].map((a) => `'${a}'`).join(" ");
    const p = Bun.spawnSync(["script", "-qec", cmd, "/dev/null"], { stdin: "ignore" });
    const out = p.stdout.toString();
    expect(p.exitCode).toBe(0);
    expect(out).toMatch(/^(\r\x1b\[Kthaw: tty v1: [a-z :]+ \(\d+\.\d+s\))+\r\x1b\[Ktty ready v1/);
    expect(out).not.toMatch(/\(\d+\.\d+s\)\r?\n/);
  });

  test("--no-wait returns while the function compiles", () => {
    const r = thaw(["deploy", wasmPath("json"), "--name", "nowait", "--no-wait"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^nowait (compiling|ready) v1 /);
  });

  test("a module that fails its build is one line with the server's code, exit 1", () => {
    const file = join(TMP, "init-trap.wasm");
    writeFileSync(file, wat(`(module (memory 1) (func $boom unreachable) (start $boom) (func (export "_start")))`));
    const r = thaw(["deploy", file, "--name", "init-trap"]);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split("\n").at(-1)).toMatch(/^thaw: init_failed: [^\n]+$/);
    const notWasm = join(TMP, "not.wasm");
    writeFileSync(notWasm, "hello");
    const refused = thaw(["deploy", notWasm, "--name", "notwasm"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^thaw: not_wasm: [^\n]+\n$/);
  });

  test("invoke --async prints a job id; job --wait follows it to its result", () => {
    const queued = thaw(["invoke", "wc", "--async", "--data", "x y y"]);
    expect(queued.code).toBe(0);
    const id = queued.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(queued.stderr).toContain(`thaw job ${id}`);
    const state = thaw(["job", id, "--wait"]);
    expect(state.code).toBe(0);
    expect(JSON.parse(state.stdout)).toMatchObject({ id, status: "succeeded", attempts: 1 });
    const result = thaw(["job", id, "--result"]);
    expect(JSON.parse(result.stdout)).toMatchObject({ words: 3, top: [["y", 2], ["x", 1]] });
    const unknown = thaw(["job", "no-such-job"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^thaw: job_not_found: [^\n]+\n$/);
  });
});

describe("the request body", () => {
  test("piped stdin is the body when there is no --data", () => {
    const r = thaw(["invoke", "wc"], { stdin: "one two two\n" });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ words: 3, top: [["two", 2], ["one", 1]] });
  });

  test("no stdin and no --data is an empty body", () => {
    const r = thaw(["invoke", "wc"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ words: 0, bytes: 0 });
  });

  test("--data @- reads stdin, --data @FILE a file, --data TEXT itself; binary bytes arrive intact", () => {
    expect(JSON.parse(thaw(["invoke", "wc", "--data", "@-"], { stdin: "a a" }).stdout)).toMatchObject({ words: 2 });
    const file = join(TMP, "body.txt");
    writeFileSync(file, "from a file\n");
    expect(JSON.parse(thaw(["invoke", "wc", "-d", `@${file}`], { stdin: "ignored" }).stdout)).toMatchObject({ words: 3 });
    expect(JSON.parse(thaw(["invoke", "wc", "--data", "text wins"], { stdin: "ignored too" }).stdout)).toMatchObject({ words: 2 });
    const bytes = new Uint8Array(256).map((_, i) => i);
    expect(thaw(["deploy", wasmPath("echo"), "--name", "echo"]).code).toBe(0);
    const echoed = Bun.spawnSync([process.execPath, join(ROOT, "src/cli.ts"), "invoke", "echo"], {
      env: { ...process.env, THAW_URL: server.url },
      stdin: bytes,
    });
    expect(new Uint8Array(echoed.stdout)).toEqual(bytes);
  });

  test("a missing @FILE is a clear usage error", () => {
    const r = thaw(["invoke", "wc", "--data", "@/nonexistent/body"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("thaw: cannot read /nonexistent/body: ENOENT\n");
  });
});

describe("errors are one line", () => {
  test("a server that is not there", () => {
    for (const args of [["functions"], ["invoke", "wc"], ["deploy", wasmPath("hello"), "--name", "h"], ["logs", "wc"], ["job", "x"]]) {
      const r = thaw(args, { env: { THAW_URL: "http://127.0.0.1:1" } });
      expect(r).toEqual({ code: 1, stdout: "", stderr: "thaw: cannot reach http://127.0.0.1:1: connection refused\n" });
    }
  });

  test("a host that does not resolve, and a URL that is not http", () => {
    const r = thaw(["functions", "--url", "http://no-such-host.invalid"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^thaw: cannot reach http:\/\/no-such-host.invalid: [^\n]+\n$/);
    const bad = thaw(["functions", "--url", "ftp://x"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('thaw: server URL must start with http:// or https://, got "ftp://x"\n');
  });

  test("names a module chose are shown escaped in errors, never sent to the terminal", () => {
    const file = join(TMP, "esc-import.wasm");
    writeFileSync(file, wat(`(module (import "evil\\1b[2J" "x\\07" (func)) (memory (export "memory") 1) (func (export "_start")))`));
    const r = thaw(["deploy", file, "--name", "esc-import"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^thaw: unsupported_imports: [^\n]*evil\\x1b\[2J\.x\\x07[^\n]*\n$/);
    expect(r.stderr).not.toMatch(/[\x00-\x08\x0b-\x1f]/);
  });

  test("invalid names and job ids are refused before any request, naming the rule", () => {
    for (const name of ["Upper", "../etc", "a b", "_x", "a".repeat(64), "%2e%2e"]) {
      const r = thaw(["invoke", name], { env: { THAW_URL: "http://127.0.0.1:1" } });
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`thaw invoke: invalid function name ${JSON.stringify(name)}: 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit (see thaw invoke --help)\n`);
    }
    const job = thaw(["job", "{"]);
    expect(job.code).toBe(2);
    expect(job.stderr).toContain("invalid job id");
    const deploy = thaw(["deploy", wasmPath("hello"), "--name", "Bad/Name"]);
    expect(deploy.code).toBe(2);
  });

  test("usage errors exit 2 and name the command", () => {
    expect(thaw(["invoke"]).code).toBe(2);
    expect(thaw(["deploy", wasmPath("hello")]).stderr).toContain("needs --name NAME");
    expect(thaw(["invoke", "wc", "--callback", "http://x"]).stderr).toContain("--callback and --attempts need --async");
    expect(thaw(["deploy", wasmPath("hello"), "--name", "h", "--memory", "lots"]).stderr).toBe(
      'thaw deploy: --memory takes a positive integer, got "lots" (see thaw deploy --help)\n',
    );
  });

  test("an HTTP error that is not thaw's JSON still makes one line", async () => {
    const other = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("<html>\nBad Gateway\n</html>", { status: 502 }) });
    try {
      // Asynchronously: this process must keep serving while the CLI runs.
      const p = Bun.spawn([process.execPath, join(ROOT, "src/cli.ts"), "functions", "--url", `http://127.0.0.1:${other.port}`], { stdout: "pipe", stderr: "pipe" });
      const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      expect({ code, stdout, stderr }).toEqual({ code: 1, stdout: "", stderr: "thaw: HTTP 502: <html> Bad Gateway </html>\n" });
    } finally {
      other.stop(true);
    }
  });
});

describe("logs", () => {
  beforeAll(() => {
    // echo writes its environment to stderr: every call leaves a log entry.
    expect(thaw(["deploy", wasmPath("echo"), "--name", "talker", "--env", "GREETING=hi"]).code).toBe(0);
  });

  test("the stderr of each call, as text and as JSON, from --since", () => {
    expect(thaw(["invoke", "talker", "--data", "x"]).code).toBe(0);
    const all = thaw(["logs", "talker", "--json"]);
    expect(all.code).toBe(0);
    const entries = all.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(entries.length).toBeGreaterThan(0);
    const last = entries.at(-1);
    expect(last).toMatchObject({ outcome: "ok", exitCode: 0, stderr: "GREETING=hi\n" });
    const text = thaw(["logs", "talker"]);
    expect(text.stdout).toContain(`${last.time} ${last.callId} ok exit=0\n  GREETING=hi\n`);
    expect(thaw(["logs", "talker", "--since", String(last.seq), "--json"]).stdout).toBe("");
    expect(thaw(["logs", "talker", "--since", "-1"]).code).toBe(2);
    const none = thaw(["logs", "nobody"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^thaw: function_not_found: [^\n]+\n$/);
  });

  test("a function's control characters are shown escaped, never sent to the terminal", () => {
    const file = join(TMP, "esc.wasm");
    // Writes ESC[2J (clear screen) and a bell to stderr.
    writeFileSync(
      file,
      wat(`(module
        (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 16) "\\1b[2J\\07boom\\n")
        (func (export "_start") (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 10))
          (drop (call $w (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))))`),
    );
    expect(thaw(["deploy", file, "--name", "esc"]).code).toBe(0);
    expect(thaw(["invoke", "esc"]).code).toBe(0);
    const text = thaw(["logs", "esc"]).stdout;
    expect(text).toContain("  \\x1b[2J\\x07boom\n");
    expect(text).not.toContain("\x1b");
  });

  test("--follow prints new calls as they happen and stops on SIGINT with status 0", async () => {
    expect(thaw(["invoke", "talker"]).code).toBe(0);
    const since: number = JSON.parse(thaw(["logs", "talker", "--json"]).stdout.trimEnd().split("\n").at(-1)!).seq;
    const follower = Bun.spawn([process.execPath, join(ROOT, "src/cli.ts"), "logs", "talker", "--follow", "--json", "--since", String(since)], {
      env: { ...process.env, THAW_URL: server.url },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const reader = follower.stdout.getReader();
    let seen = "";
    const lines = () => seen.split("\n").filter(Boolean).length;
    /** Reads until `n` lines have arrived or 20 s have passed. */
    const readLines = async (n: number) => {
      const deadline = Date.now() + 20_000;
      while (lines() < n && Date.now() < deadline) {
        const chunk = await Promise.race([reader.read(), Bun.sleep(deadline - Date.now()).then(() => undefined)]);
        if (!chunk || chunk.done) break;
        seen += new TextDecoder().decode(chunk.value);
      }
      return lines();
    };
    try {
      expect(thaw(["invoke", "talker", "--data", "one"]).code).toBe(0);
      expect(await readLines(1)).toBe(1);
      expect(thaw(["invoke", "talker", "--data", "two"]).code).toBe(0);
      expect(await readLines(2)).toBe(2);
      expect(seen.split("\n").filter(Boolean).map((l) => JSON.parse(l).seq)).toEqual([since + 1, since + 2]);
      follower.kill("SIGINT");
      expect(await follower.exited).toBe(0);
    } finally {
      follower.kill();
    }
  });
});

function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

describe("OCI", () => {
  let registry: { host: string; proc: Subprocess } | undefined;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "thaw-cli-registry-"));
    const port = freePort();
    writeFileSync(
      join(dir, "config.yml"),
      `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`,
    );
    const proc = Bun.spawn(["docker-registry", "serve", join(dir, "config.yml")], { stdout: "ignore", stderr: "inherit" });
    for (let i = 0; i < 200 && !registry; i++) {
      if ((await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined))?.ok) registry = { host: `127.0.0.1:${port}`, proc };
      else await Bun.sleep(25);
    }
    if (!registry) throw new Error("docker-registry did not start (Debian package docker-registry; scripts/test.sh installs it)");
  });
  afterAll(async () => {
    registry?.proc.kill();
    await registry?.proc.exited;
  });

  test("thaw push, then thaw deploy oci://, then invoke", () => {
    const ref = `${registry!.host}/cli/wc:v1`;
    const pushed = thaw(["push", wasmPath("wordcount"), ref, "--plain-http"]);
    expect(pushed.code).toBe(0);
    expect(pushed.stdout).toMatch(/@sha256:[0-9a-f]{64}\n$/);
    const deployed = thaw(["deploy", `oci://${ref}`, "--name", "wc-oci", "--env", "K=V"]);
    expect(deployed.stderr + deployed.stdout).toMatch(/^wc-oci ready v1/m);
    expect(deployed.code).toBe(0);
    expect(JSON.parse(thaw(["invoke", "wc-oci", "--data", "a b"]).stdout)).toMatchObject({ words: 2 });
    const missing = thaw(["deploy", `oci://${registry!.host}/cli/none:v1`, "--name", "none"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trimEnd().split("\n").at(-1)).toMatch(/^thaw: [a-z_]+: [^\n]+$/);
    expect(thaw(["deploy", `oci://${ref}`]).code).toBe(2);
  });
});
