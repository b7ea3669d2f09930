// Call logs over real HTTP: a real `thaw serve`, modules assembled with the
// real wat2wasm and compiled by the real pipeline, stderr read back from
// GET /v1/functions/{name}/logs. Also the store's eviction policy driven
// directly (which tenant gives way), and the access-log modes.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CallLogs, type CallRecord, logLimits } from "../src/logs/store.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";
import { wat } from "./wat.ts";

// biome-ignore lint: response bodies are checked field by field below.
const body = (res: Response): Promise<any> => res.json();

/**
 * Copies stdin (up to 64000 bytes) to stderr, then: first byte 'X' exits 3,
 * 'T' traps (unreachable), 'L' loops until the timeout; otherwise exits 0.
 */
export const STDERR_ECHO = wat(`(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 2)
  (func (export "_start") (local $n i32) (local $got i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 64000))
    (block $done
      (loop $more
        (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $got (i32.load (i32.const 8)))
        (br_if $done (i32.eqz (local.get $got)))
        (local.set $n (i32.add (local.get $n) (local.get $got)))
        (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $n)))
        (i32.store (i32.const 4) (i32.sub (i32.const 64000) (local.get $n)))
        (br_if $more (i32.lt_u (local.get $n) (i32.const 64000)))))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (local.get $n))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 12)))
    (if (i32.eq (i32.load8_u (i32.const 1024)) (i32.const 88)) (then (call $proc_exit (i32.const 3))))
    (if (i32.eq (i32.load8_u (i32.const 1024)) (i32.const 84)) (then unreachable))
    (if (i32.eq (i32.load8_u (i32.const 1024)) (i32.const 76)) (then (loop $forever (br $forever))))))`);

export function putBytes(s: ServerProcess, name: string, bytes: Uint8Array, query = "wait=true", headers: Record<string, string> = {}) {
  return fetch(`${s.url}/v1/functions/${name}?${query}`, {
    method: "PUT",
    body: bytes,
    headers: { "content-type": "application/wasm", ...headers },
  });
}

const call = (s: ServerProcess, name: string, stdin: string | Uint8Array = "", headers: Record<string, string> = {}) =>
  fetch(`${s.url}/v1/functions/${name}/invoke`, { method: "POST", body: stdin, headers });

const logs = async (s: ServerProcess, name: string, query = "", headers: Record<string, string> = {}) =>
  fetch(`${s.url}/v1/functions/${name}/logs${query}`, { headers });

describe("GET /v1/functions/{name}/logs", () => {
  let s: ServerProcess;
  const alice = { authorization: "Bearer alice-token" };
  const bob = { authorization: "Bearer bob-token" };
  beforeAll(async () => {
    s = await startServer({ env: { THAW_TOKENS: "alice-token:alice,bob-token:bob" } });
    expect((await putBytes(s, "echo", STDERR_ECHO, "wait=true&timeoutMs=300", alice)).status).toBe(201);
    expect((await putModule(s, "hello", "hello", "wait=true", alice)).status).toBe(201);
  });
  afterAll(async () => {
    await s.stop();
  });

  test("stderr of successful and failed calls, with outcome, exit code, ids and time", async () => {
    const before = Date.now();
    expect((await call(s, "echo", "first line\n", { ...alice, "x-request-id": "req-ok-1" })).status).toBe(200);
    expect((await call(s, "echo", "X exits 3", { ...alice, "x-request-id": "req-exit" })).status).toBe(502);
    expect((await call(s, "echo", "T traps", alice)).status).toBe(500);
    expect((await call(s, "echo", "L loops", alice)).status).toBe(504);
    const page = await body(await logs(s, "echo", "", alice));
    expect(page.entries.map((e: { seq: number }) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(page.next).toBe(4);
    const [ok, exit, trap, timeout] = page.entries;
    expect(ok).toMatchObject({ outcome: "ok", exitCode: 0, stderr: "first line\n", requestId: "req-ok-1", truncated: false, version: 1 });
    expect(exit).toMatchObject({ outcome: "exit", exitCode: 3, stderr: "X exits 3", requestId: "req-exit" });
    expect(trap).toMatchObject({ outcome: "trap", trap: "unreachable", stderr: "T traps" });
    expect(timeout).toMatchObject({ outcome: "timeout", stderr: "L loops" });
    for (const e of page.entries) {
      expect(Date.parse(e.time)).toBeGreaterThanOrEqual(before - 1000);
      expect(e.callId).toMatch(/^[0-9a-f-]{36}$/);
      expect(typeof e.durationMs).toBe("number");
    }
    expect(new Set(page.entries.map((e: { callId: string }) => e.callId)).size).toBe(4);
    // The request id a call came with is the X-Request-Id of the call's response too.
    const r = await call(s, "echo", "T again", alice);
    const last = (await body(await logs(s, "echo", "?since=4", alice))).entries;
    expect(last).toHaveLength(1);
    expect(last[0].requestId).toBe(r.headers.get("x-request-id"));
  });

  test("a successful call with an empty stderr leaves no entry; a failed one always does", async () => {
    const next = (await body(await logs(s, "hello", "", alice))).next;
    expect((await call(s, "hello", "", alice)).status).toBe(200);
    expect(await body(await logs(s, "hello", `?since=${next}`, alice))).toEqual({ entries: [], next });
  });

  test("since is exclusive, limit bounds a page, next continues", async () => {
    const start = (await body(await logs(s, "echo", "", alice))).next;
    for (let i = 0; i < 5; i++) await call(s, "echo", `line ${i}`, alice);
    const a = await body(await logs(s, "echo", `?since=${start}&limit=2`, alice));
    expect(a.entries.map((e: { stderr: string }) => e.stderr)).toEqual(["line 0", "line 1"]);
    const b = await body(await logs(s, "echo", `?since=${a.next}&limit=1000`, alice));
    expect(b.entries.map((e: { stderr: string }) => e.stderr)).toEqual(["line 2", "line 3", "line 4"]);
    expect(await body(await logs(s, "echo", `?since=${b.next}`, alice))).toEqual({ entries: [], next: b.next });
    // A since past the newest entry (the node restarted) starts over from the oldest.
    expect((await body(await logs(s, "echo", "?since=999999&limit=1", alice))).entries[0].seq).toBe(1);
  });

  test("binary stderr comes out as valid JSON text (lossy UTF-8)", async () => {
    const bytes = new Uint8Array([0x62, 0xff, 0xfe, 0x00, 0x1b, 0x5b, 0x33, 0x31, 0x6d, 0xc3, 0x22, 0x5c, 0xed, 0xa0, 0x80, 0x0a]);
    const next = (await body(await logs(s, "echo", "", alice))).next;
    await call(s, "echo", bytes, alice);
    const raw = await (await logs(s, "echo", `?since=${next}`, alice)).text();
    const entry = JSON.parse(raw).entries[0];
    expect(entry.stderr).toBe(new TextDecoder().decode(bytes));
    expect(entry.stderr).toContain("\ufffd");
    expect(entry.stderr.startsWith("b")).toBe(true);
  });

  test("hostile query values are 400 invalid_request", async () => {
    for (const q of ["?since=-1", "?since=1e3", "?since=abc", "?limit=0", "?limit=1001", "?limit=99999", "?since=1234567890123456", "?limit=%00"]) {
      const res = await logs(s, "echo", q, alice);
      expect(res.status).toBe(400);
      expect((await body(res)).error.code).toBe("invalid_request");
    }
    expect((await logs(s, "Not_A_Name", "", alice)).status).toBe(400);
  });

  test("tenant-scoped: another tenant's function is 404, as is no function; no token is 401", async () => {
    const other = await logs(s, "echo", "", bob);
    expect(other.status).toBe(404);
    expect((await body(other)).error.code).toBe("function_not_found");
    expect((await logs(s, "nosuch", "", alice)).status).toBe(404);
    expect((await logs(s, "echo")).status).toBe(401);
  });

  test("a deleted function's logs go, and do not come back with a new deploy of its name", async () => {
    expect((await putBytes(s, "gone", STDERR_ECHO, "wait=true", alice)).status).toBe(201);
    await call(s, "gone", "secret of the old one", alice);
    expect((await body(await logs(s, "gone", "", alice))).entries).toHaveLength(1);
    expect((await fetch(`${s.url}/v1/functions/gone`, { method: "DELETE", headers: alice })).status).toBe(204);
    expect((await logs(s, "gone", "", alice)).status).toBe(404);
    expect((await putBytes(s, "gone", STDERR_ECHO, "wait=true", alice)).status).toBe(201);
    expect(await body(await logs(s, "gone", "", alice))).toEqual({ entries: [], next: 0 });
  });

  test("stderr of a job's attempt is logged with the job's id and the submitter's request id", async () => {
    const next = (await body(await logs(s, "echo", "", alice))).next;
    const res = await fetch(`${s.url}/v1/functions/echo/jobs`, { method: "POST", body: "from a job", headers: { ...alice, "x-request-id": "job-submit-7" } });
    expect(res.status).toBe(202);
    const job = await body(res);
    expect(job.requestId).toBe("job-submit-7");
    let entries: { callId: string; requestId: string; stderr: string }[] = [];
    for (let i = 0; i < 100 && entries.length === 0; i++) {
      await Bun.sleep(50);
      entries = (await body(await logs(s, "echo", `?since=${next}`, alice))).entries;
    }
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ callId: job.id, requestId: "job-submit-7", stderr: "from a job" });
    expect((await body(await fetch(`${s.url}/v1/jobs/${job.id}`, { headers: alice }))).requestId).toBe("job-submit-7");
  });

  test("WAGI calls are logged too", async () => {
    const next = (await body(await logs(s, "echo", "", alice))).next;
    await fetch(`${s.url}/fn/echo/x`, { method: "POST", body: "via wagi", headers: alice });
    expect((await body(await logs(s, "echo", `?since=${next}`, alice))).entries[0].stderr).toBe("via wagi");
  });

  test("a function keeps its newest entries within its bounds (1 MiB, 64 KiB of stderr per entry)", async () => {
    expect((await putBytes(s, "big", STDERR_ECHO, "wait=true", alice)).status).toBe(201);
    for (let i = 0; i < 24; i++) expect((await call(s, "big", `${String(i).padStart(2, "0")}${"e".repeat(63_000)}`, alice)).status).toBe(200);
    const entries = (await body(await logs(s, "big", "?limit=1000", alice))).entries;
    expect(entries.length).toBeGreaterThan(10);
    expect(entries.length).toBeLessThan(24);
    expect(entries.at(-1).seq).toBe(24);
    expect(entries.at(-1).stderr.slice(0, 2)).toBe("23");
    expect(entries[0].seq).toBe(24 - entries.length + 1);
  });
});

describe("call log bounds across tenants", () => {
  test("a tenant spamming stderr evicts its own logs, not another tenant's", async () => {
    // 600 KB for the node, and so for a tenant and a function: the spammer's
    // one function can fill it, and only the node's bound stops it.
    const s = await startServer({ args: ["--call-log-bytes", "600000"], env: { THAW_TOKENS: "a-token:spammer,b-token:quiet" } });
    const spammer = { authorization: "Bearer a-token" };
    const quiet = { authorization: "Bearer b-token" };
    try {
      expect((await putBytes(s, "f", STDERR_ECHO, "wait=true", spammer)).status).toBe(201);
      expect((await putBytes(s, "g", STDERR_ECHO, "wait=true", quiet)).status).toBe(201);
      await call(s, "g", `quiet ${"q".repeat(40_000)}`, quiet);
      for (let i = 0; i < 40; i++) await call(s, "f", `spam ${i} ${"s".repeat(30_000)}`, spammer);
      const q = (await body(await logs(s, "g", "", quiet))).entries;
      expect(q).toHaveLength(1);
      expect(q[0].stderr.startsWith("quiet ")).toBe(true);
      const f = (await body(await logs(s, "f", "?limit=1000", spammer))).entries;
      expect(f.at(-1).stderr.startsWith("spam 39 ")).toBe(true);
      expect(f.length).toBeLessThan(20);
      expect(f.length).toBeGreaterThan(10);
    } finally {
      await s.stop();
    }
  });
});

describe("the store's eviction (driven directly)", () => {
  const record = (stderr: number): CallRecord => ({
    callId: "c",
    outcome: "ok",
    exitCode: 0,
    stderr: new Uint8Array(stderr),
    stderrTruncated: false,
    version: 1,
    durationMs: 0,
  });
  const alive = () => "gen-1";

  test("past the node's bound the largest tenant gives way; a smaller one keeps everything", () => {
    const store = new CallLogs({ ...logLimits(100_000), tenantBytes: 100_000, functionBytes: 100_000, entryBytes: 10_000 }, alive);
    for (let i = 0; i < 3; i++) store.append("small", "f", record(5_000));
    for (let i = 0; i < 40; i++) store.append("big", "f", record(9_000));
    expect(store.size).toBeLessThanOrEqual(100_000);
    expect(store.read("small", "f", 0, 1000)!.entries).toHaveLength(3);
    const big = store.read("big", "f", 0, 1000)!.entries;
    expect(big.at(-1)!.seq).toBe(40);
  });

  test("past a tenant's bound its own largest function gives way, not its neighbour's", () => {
    const store = new CallLogs({ entryBytes: 10_000, functionEntries: 1000, functionBytes: 100_000, tenantBytes: 50_000, nodeBytes: 1 << 30 }, alive);
    store.append("t", "small", record(1_000));
    for (let i = 0; i < 30; i++) store.append("t", "loud", record(9_000));
    expect(store.read("t", "small", 0, 10)!.entries).toHaveLength(1);
    expect(store.read("t", "loud", 0, 100)!.entries.at(-1)!.seq).toBe(30);
    expect(store.size).toBeLessThanOrEqual(50_000);
  });

  test("an entry keeps at most entryBytes of stderr and says it was cut", () => {
    const store = new CallLogs(logLimits(1 << 20), alive);
    store.append("t", "f", record(100_000));
    const [e] = store.read("t", "f", 0, 10)!.entries;
    expect(e!.stderr.length).toBe(logLimits(1 << 20).entryBytes);
    expect(e!.truncated).toBe(true);
  });

  test("at most functionEntries per function; 0 bytes keeps nothing", () => {
    const store = new CallLogs(logLimits(64 << 20), alive);
    for (let i = 0; i < 1005; i++) store.append("t", "f", record(0));
    const page = store.read("t", "f", 0, 1000)!;
    expect(page.entries).toHaveLength(1000);
    expect(page.entries[0]!.seq).toBe(6);
    const off = new CallLogs(logLimits(0), alive);
    off.append("t", "f", record(10));
    expect(off.read("t", "f", 0, 10)!.entries).toEqual([]);
  });

  test("the sweep drops the logs of functions that are gone", () => {
    let generation: string | undefined = "a";
    const store = new CallLogs(logLimits(1 << 20), () => generation);
    store.append("t", "f", record(10));
    expect(store.size).toBeGreaterThan(0);
    generation = undefined;
    store.sweep();
    expect(store.size).toBe(0);
  });
});

describe("--access-log", () => {
  const callLines = (s: ServerProcess) => s.logs.filter((l) => l.msg === "call");

  async function run(mode: string | undefined, calls: string[]): Promise<Record<string, unknown>[]> {
    const s = await startServer({ args: mode ? ["--access-log", mode] : [] });
    try {
      expect((await putBytes(s, "echo", STDERR_ECHO)).status).toBe(201);
      for (const [i, stdin] of calls.entries()) await call(s, "echo", stdin, { "x-request-id": `req-${i}` });
      await call(s, "nosuch", "");
      await Bun.sleep(100);
      return callLines(s);
    } finally {
      await s.stop();
    }
  }

  test("default (errors): no line for successful calls, one at warn for every failure, with the request id", async () => {
    const lines = await run(undefined, ["ok", "ok", "X fails", "T traps"]);
    expect(lines.map((l) => l.outcome)).toEqual(["function_exit", "function_trap", "function_not_found"]);
    expect(lines[0]).toMatchObject({ level: "warn", function: "echo", requestId: "req-2", exitCode: 3 });
    expect(lines[2]).toMatchObject({ function: "_unknown", level: "warn" });
    expect(lines[2]!.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("all: a line for every call; sample:2: every second success and every failure; off: none", async () => {
    expect((await run("all", ["ok", "ok", "X"])).map((l) => l.outcome)).toEqual(["ok", "ok", "function_exit", "function_not_found"]);
    expect((await run("sample:2", ["ok", "ok", "ok", "ok", "X"])).map((l) => [l.outcome, l.function === "echo" ? l.requestId : "-"])).toEqual([
      ["ok", "req-1"],
      ["ok", "req-3"],
      ["function_exit", "req-4"],
      ["function_not_found", "-"],
    ]);
    expect(await run("off", ["ok", "X"])).toEqual([]);
  });

  test("a bad mode stops the server with one line", async () => {
    for (const bad of ["sometimes", "sample:0", "sample:-1", "sample:", "ALL"]) {
      const p = Bun.spawn([process.execPath, "src/cli.ts", "serve", "--port", "0", "--access-log", bad], { stdout: "pipe", stderr: "pipe" });
      const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
      expect(code).not.toBe(0);
      expect(err.trim().split("\n")).toHaveLength(1);
      expect(err).toContain("--access-log");
    }
  });
});
