// The gateway over real HTTP: a real `thaw serve` process, real deploys
// through the compiler, real calls. Each describe block starts its own
// server so their settings (tokens, limits) do not interfere.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { wasmPath } from "./helpers.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";

const wasm = (name: string) => readFileSync(wasmPath(name));
// biome-ignore lint: response bodies are checked field by field below.
const body = (res: Response): Promise<any> => res.json();

async function invoke(s: ServerProcess, name: string, payload: string | Uint8Array = "", headers: Record<string, string> = {}) {
  return fetch(`${s.url}/v1/functions/${name}/invoke`, { method: "POST", body: payload, headers });
}

describe("deploy and invoke", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(async () => {
    await s.stop();
  });

  test("raw application/wasm deploy, then a call", async () => {
    const res = await putModule(s, "hello", "hello", "wait=true&env=GREETING=hi&memoryMiB=16");
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe("/v1/functions/hello");
    const fn = await body(res);
    expect(fn.status).toBe("ready");
    expect(fn.config.memoryMiB).toBe(16);
    expect(fn.config.env).toEqual({ GREETING: "hi" });
    expect(fn.sizes.codeBytes).toBeGreaterThan(0);

    const call = await invoke(s, "hello");
    expect(call.status).toBe(200);
    expect(await call.text()).toBe("Hello, world!\n");
    expect(call.headers.get("x-thaw-exit-code")).toBe("0");
    expect(call.headers.get("x-thaw-cold")).toBe("false");
    expect(Number(call.headers.get("x-thaw-duration-ms"))).toBeGreaterThan(0);
  });

  test("multipart deploy with a config part; the content type is applied", async () => {
    const form = new FormData();
    form.set("module", new Blob([wasm("json")]), "json.wasm");
    form.set("config", JSON.stringify({ contentType: "application/json", timeoutMs: 5000 }));
    const res = await fetch(`${s.url}/v1/functions/json?wait=true`, { method: "PUT", body: form });
    expect(res.status).toBe(201);
    const call = await invoke(s, "json", '{"b":2,"a":"x"}');
    expect(call.headers.get("content-type")).toBe("application/json");
    expect(await body(call)).toEqual({ a: "X", b: 2 });
  });

  test("without wait a deploy answers 202 and becomes ready", async () => {
    const res = await putModule(s, "words", "wordcount", "");
    expect(res.status).toBe(202);
    expect((await body(res)).status).toBe("compiling");
    const early = await invoke(s, "words", "a");
    if (early.status !== 200) {
      expect(early.status).toBe(503);
      expect((await body(early)).error.code).toBe("function_not_ready");
      expect(early.headers.get("retry-after")).toBe("1");
    }
    let status = "compiling";
    for (let i = 0; i < 600 && status === "compiling"; i++) {
      await Bun.sleep(100);
      status = (await body(await fetch(`${s.url}/v1/functions/words`))).status;
    }
    expect(status).toBe("ready");
    expect((await invoke(s, "words", "a b a")).status).toBe(200);
  });

  test("the same bytes and config again are a no-op", async () => {
    const before = await body(await fetch(`${s.url}/v1/functions/hello`));
    const res = await putModule(s, "hello", "hello", "wait=true&env=GREETING=hi&memoryMiB=16");
    expect(res.status).toBe(200);
    expect((await body(res)).version).toBe(before.version);
  });

  test("list, get with pool stats, delete", async () => {
    const list = await body(await fetch(`${s.url}/v1/functions`));
    expect(list.functions.map((f: { name: string }) => f.name)).toContain("hello");
    const fn = await body(await fetch(`${s.url}/v1/functions/hello`));
    expect(fn.pool.calls).toBeGreaterThan(0);
    await putModule(s, "doomed", "hello");
    expect((await fetch(`${s.url}/v1/functions/doomed`, { method: "DELETE" })).status).toBe(204);
    expect((await fetch(`${s.url}/v1/functions/doomed`)).status).toBe(404);
    expect((await invoke(s, "doomed")).status).toBe(404);
  });

  test("WAGI trigger: request as CGI variables, CGI headers set the response", async () => {
    expect((await putModule(s, "cgi", "cgi")).status).toBe(201);
    const res = await fetch(`${s.url}/fn/cgi/some/path?x=1&y=2`, {
      method: "POST",
      body: "payload",
      headers: { "x-custom": "yes", authorization: "Bearer secret" },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("content-type")).toBe("text/x-test");
    expect(res.headers.get("x-method")).toBe("POST");
    expect(await res.text()).toBe("path=/some/path\nquery=x=1&y=2\ncustom=yes\nauth=none\nbody=payload");
  });

  test("a function without CGI headers answers with its body", async () => {
    const res = await fetch(`${s.url}/fn/hello/?name=wagi`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("Hello, wagi!\n");
    const bare = await fetch(`${s.url}/fn/hello?name=bare`);
    expect(await bare.text()).toBe("Hello, bare!\n");
  });

  test("health, readiness and metrics", async () => {
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toMatch(/thaw_calls_total\{tenant="default",function="hello",outcome="ok"\} \d+/);
    expect(metrics).toContain("thaw_call_duration_seconds_bucket");
    expect(metrics).toMatch(/thaw_warm_instances\{tenant="default",function="hello"\} \d+/);
    expect(metrics).toMatch(/thaw_compile_duration_seconds_count \d+/);
    expect(metrics).toMatch(/thaw_engine_memory_bytes \d+/);
  });
});

describe("errors", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    s = await startServer({ args: ["--max-body", "1024", "--max-waiting", "0"] });
    await Promise.all([
      putModule(s, "trap", "trap_unreachable"),
      putModule(s, "loop", "loop_forever", "wait=true&timeoutMs=200"),
      putModule(s, "exit", "exit_code"),
      putModule(s, "echo", "echo"),
      putModule(s, "slow", "sleep", "wait=true&maxConcurrency=1"),
    ]);
  });
  afterAll(async () => {
    await s.stop();
  });

  const errorOf = async (res: Response) => (await body(res)).error;

  test("not wasm", async () => {
    const res = await fetch(`${s.url}/v1/functions/x`, { method: "PUT", body: "#!/bin/sh", headers: { "content-type": "application/wasm" } });
    expect(res.status).toBe(422);
    expect((await errorOf(res)).code).toBe("not_wasm");
  });

  test("unknown imports are listed", async () => {
    const res = await putModule(s, "imports", "unknown_import");
    expect(res.status).toBe(422);
    const err = await errorOf(res);
    expect(err.code).toBe("unsupported_imports");
    expect(err.imports.map((i: { import: string }) => i.import)).toEqual(["env.foo"]);
  });

  test("a bad name and a bad config are 400", async () => {
    expect((await putModule(s, "Bad.Name", "hello")).status).toBe(400);
    expect((await putModule(s, "ok", "hello", "memoryMiB=0")).status).toBe(400);
  });

  test("a trap is 500 function_trap with the stderr tail", async () => {
    const res = await invoke(s, "trap");
    expect(res.status).toBe(500);
    const err = await errorOf(res);
    expect(err.code).toBe("function_trap");
    expect(err.trap).toBe("unreachable");
    expect(err.stderr).toContain("before trap");
  });

  test("a timeout is 504 function_timeout", async () => {
    const res = await invoke(s, "loop");
    expect(res.status).toBe(504);
    expect((await errorOf(res)).code).toBe("function_timeout");
    expect((await invoke(s, "trap")).status).toBe(500);
  });

  test("a non-zero exit is 502 function_exit with the code", async () => {
    const res = await invoke(s, "exit", "7");
    expect(res.status).toBe(502);
    expect(res.headers.get("x-thaw-exit-code")).toBe("7");
    const err = await errorOf(res);
    expect(err).toMatchObject({ code: "function_exit", exitCode: 7, stderr: "err\n" });
  });

  test("an unknown function is 404", async () => {
    const res = await invoke(s, "nobody");
    expect(res.status).toBe(404);
    expect((await errorOf(res)).code).toBe("function_not_found");
  });

  test("the invoke route: bodies of every framing reach stdin; odd names answer as the full router does", async () => {
    const stream = (parts: string[]) =>
      new ReadableStream({
        start(c) {
          for (const p of parts) c.enqueue(new TextEncoder().encode(p));
          c.close();
        },
      });
    const chunked = await invoke(s, "echo", stream(["ab", "cd"]) as never);
    expect(chunked.status).toBe(200);
    expect(await chunked.text()).toBe("abcd");
    const tooLong = await invoke(s, "echo", stream(["x".repeat(800), "x".repeat(800)]) as never);
    expect(tooLong.status).toBe(413);
    const empty = await invoke(s, "echo", "");
    expect(empty.status).toBe(200);
    expect(await empty.text()).toBe("");
    const encoded = await fetch(`${s.url}/v1/functions/%65cho/invoke`, { method: "POST", body: "hi" });
    expect(encoded.status).toBe(200);
    expect(await encoded.text()).toBe("hi");
    const bad = await invoke(s, "Echo", "hi", { "x-request-id": "bad-name-1" });
    expect(bad.status).toBe(400);
    expect(bad.headers.get("x-request-id")).toBe("bad-name-1");
    expect((await errorOf(bad)).code).toBe("invalid_request");
  });

  test("a body over the limit is 413", async () => {
    const res = await invoke(s, "echo", "x".repeat(2048));
    expect(res.status).toBe(413);
    expect((await errorOf(res)).code).toBe("payload_too_large");
    expect((await invoke(s, "echo", "x".repeat(1000))).status).toBe(200);
  });

  test("over the concurrency limit with a full queue: 429 with Retry-After", async () => {
    const first = invoke(s, "slow", "400");
    await Bun.sleep(100);
    const second = await invoke(s, "slow", "1");
    expect(second.status).toBe(429);
    expect(second.headers.get("retry-after")).toBe("1");
    expect((await errorOf(second)).code).toBe("overloaded");
    expect(await (await first).text()).toBe("slept 400\n");
  });
});

describe("tenants", () => {
  let s: ServerProcess;
  const alice = { authorization: "Bearer alice-token" };
  const bob = { authorization: "Bearer bob-token" };
  beforeAll(async () => {
    s = await startServer({ env: { THAW_TOKENS: "alice-token:alice,bob-token:bob", THAW_ADMIN_TOKEN: "root" } });
  });
  afterAll(async () => {
    await s.stop();
  });

  test("a tenant sees and calls only its own functions", async () => {
    expect((await putModule(s, "mine", "hello", "wait=true", alice)).status).toBe(201);
    expect((await invoke(s, "mine", "", alice)).status).toBe(200);
    expect((await invoke(s, "mine", "", bob)).status).toBe(404);
    const bobs = await body(await fetch(`${s.url}/v1/functions`, { headers: bob }));
    expect(bobs.functions).toEqual([]);
    const admin = await fetch(`${s.url}/v1/functions/mine`, { headers: { authorization: "Bearer root", "x-thaw-tenant": "alice" } });
    expect(admin.status).toBe(200);
  });

  test("no token or an unknown token is 401", async () => {
    expect((await invoke(s, "mine")).status).toBe(401);
    const res = await invoke(s, "mine", "", { authorization: "Bearer nope" });
    expect(res.status).toBe(401);
    expect((await body(res)).error.code).toBe("unauthorized");
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  });
});

describe("lifecycle", () => {
  test("a restarted server serves deployed functions without recompiling", async () => {
    const first = await startServer();
    expect((await putModule(first, "hello", "hello")).status).toBe(201);
    expect(await first.stop()).toBe(0);
    const second = await startServer({ dataDir: first.dataDir });
    try {
      const res = await invoke(second, "hello");
      expect(await res.text()).toBe("Hello, world!\n");
      const metrics = await (await fetch(`${second.url}/metrics`)).text();
      expect(metrics).not.toMatch(/thaw_compiles_total\{result="ok"\} [1-9]/);
      expect(second.logs.some((l) => l.msg === "deployed")).toBe(false);
    } finally {
      await second.stop();
    }
  });

  test("a redeploy during calls: calls in flight finish on the old version", async () => {
    const s = await startServer();
    try {
      expect((await putModule(s, "swap", "sleep")).status).toBe(201);
      const inflight = Array.from({ length: 8 }, () => invoke(s, "swap", "300"));
      await Bun.sleep(50);
      expect((await putModule(s, "swap", "hello")).status).toBe(201);
      const done = await Promise.all(inflight);
      for (const r of done) {
        expect(r.status).toBe(200);
        expect(r.headers.get("x-thaw-version")).toBe("1");
        expect(await r.text()).toBe("slept 300\n");
      }
      const after = await invoke(s, "swap");
      expect(after.headers.get("x-thaw-version")).toBe("2");
      expect(await after.text()).toBe("Hello, world!\n");
    } finally {
      await s.stop();
    }
  });

  test("graceful shutdown finishes calls in flight, then exits 0", async () => {
    const s = await startServer();
    expect((await putModule(s, "slow", "sleep")).status).toBe(201);
    const inflight = invoke(s, "slow", "500");
    await Bun.sleep(100);
    const exited = s.stop();
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("slept 500\n");
    const stopStarted = performance.now();
    expect(await exited).toBe(0);
    expect(performance.now() - stopStarted).toBeLessThan(5000);
    expect(s.logs.some((l) => l.msg === "stopped")).toBe(true);
  });

  test("with --access-log all, one JSON log line per call, with its request id", async () => {
    const s = await startServer({ args: ["--access-log", "all"] });
    try {
      await putModule(s, "hello", "hello");
      await invoke(s, "hello", "", { "x-request-id": "line-1" });
      await Bun.sleep(50);
      const calls = s.logs.filter((l) => l.msg === "call");
      expect(calls).toHaveLength(1);
      expect(calls[0]).toMatchObject({ level: "info", tenant: "default", function: "hello", outcome: "ok", cold: false, requestId: "line-1" });
      expect(typeof calls[0]?.durationMs).toBe("number");
    } finally {
      await s.stop();
    }
  });
});

describe("exposure", () => {
  const serve = async (args: string[], env: Record<string, string> = {}) => {
    const p = Bun.spawn([process.execPath, "src/cli.ts", "serve", "--port", "0", "--data", mkdtempSync(join(tmpdir(), "thaw-exposure-")), ...args], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, THAW_ADMIN_TOKEN: "", THAW_TOKENS: "", THAW_INSECURE_OPEN: "", ...env },
    });
    // A server that starts listens until stopped: it is told to stop once it says so
    // (and its stdout is read to the end, so its last lines do not meet a closed pipe).
    const started = (async () => {
      for await (const chunk of p.stdout) if (new TextDecoder().decode(chunk).includes('"listening"')) p.kill("SIGTERM");
    })();
    const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
    const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text(), started]);
    clearTimeout(timer);
    return { code, err };
  };

  test("no token on a non-loopback address: refused with one line naming the way out", async () => {
    for (const host of ["0.0.0.0", "::"]) {
      const { code, err } = await serve(["--host", host]);
      expect(code).not.toBe(0);
      expect(err.trim().split("\n")).toHaveLength(1);
      expect(err).toContain("--insecure-open");
      expect(err).toContain("--admin-token");
    }
  });

  test("it starts with a token, with --insecure-open or THAW_INSECURE_OPEN=1, and on loopback without either", async () => {
    expect((await serve(["--host", "0.0.0.0", "--admin-token", "root-token"])).code).toBe(0);
    expect((await serve(["--host", "0.0.0.0", "--insecure-open"])).code).toBe(0);
    expect((await serve(["--host", "0.0.0.0"], { THAW_INSECURE_OPEN: "1" })).code).toBe(0);
    expect((await serve(["--host", "127.0.0.1"])).code).toBe(0);
  });
});

describe("warm pools", () => {
  test("GET /v1/pools shows λ, τ, k and the budget; the plan pre-warms", async () => {
    const s = await startServer();
    try {
      expect((await putModule(s, "hello", "hello")).status).toBe(201);
      for (let i = 0; i < 20; i++) expect((await invoke(s, "hello")).status).toBe(200);
      await Bun.sleep(400);
      const pools = await body(await fetch(`${s.url}/v1/pools`));
      expect(pools.policy).toBe("predicted");
      expect(pools.budgetBytes).toBe(256 * 1024 * 1024);
      const hello = pools.functions.find((f: { name: string }) => f.name === "hello");
      expect(hello.lambda).toBeGreaterThan(0);
      expect(hello.tauMs).toBeGreaterThan(0);
      expect(hello.k).toBeGreaterThanOrEqual(1);
      expect(hello.warm).toBeGreaterThanOrEqual(1);
      expect(hello.mInstBytes).toBeGreaterThan(0);
      expect(hello.coldStarts).toBe(0);
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      expect(metrics).toMatch(/thaw_pool_arrival_rate\{tenant="default",function="hello"\} [0-9.e-]+/);
      expect(metrics).toMatch(/thaw_pool_budget_bytes\{kind="budget"\} 268435456/);
      // The 20 calls, warm, in cumulative buckets that end at the count.
      expect(metrics).toContain('thaw_calls_total{tenant="default",function="hello",outcome="ok"} 20');
      expect(metrics).toContain('thaw_call_duration_seconds_count{tenant="default",function="hello",cold="false"} 20');
      expect(metrics).toContain('thaw_call_duration_seconds_bucket{le="+Inf",tenant="default",function="hello",cold="false"} 20');
      const buckets = [...metrics.matchAll(/^thaw_call_duration_seconds_bucket\{le="[0-9.]+",tenant="default",function="hello",cold="false"\} (\d+)$/gm)].map((m) => Number(m[1]));
      expect(buckets.length).toBe(17);
      expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
      const sum = Number(/^thaw_call_duration_seconds_sum\{tenant="default",function="hello",cold="false"\} ([0-9.e-]+)$/m.exec(metrics)?.[1]);
      expect(sum).toBeGreaterThan(0);
      expect(sum).toBeLessThan(20);
      expect(metrics).not.toContain('cold="true"');
    } finally {
      await s.stop();
    }
  });

  test("with no budget nothing is kept warm: every call restores (a cold start)", async () => {
    const s = await startServer({ args: ["--warm-budget", "0"] });
    try {
      expect((await putModule(s, "hello", "hello")).status).toBe(201);
      await Bun.sleep(400);
      const res = await invoke(s, "hello");
      expect(await res.text()).toBe("Hello, world!\n");
      expect(res.headers.get("x-thaw-cold")).toBe("true");
      const pools = await body(await fetch(`${s.url}/v1/pools`));
      expect(pools.functions[0].target).toBe(0);
      expect(pools.functions[0].coldStarts).toBeGreaterThanOrEqual(1);
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      const cold = Number(/^thaw_cold_starts_total\{tenant="default",function="hello"\} (\d+)$/m.exec(metrics)?.[1]);
      expect(cold).toBeGreaterThanOrEqual(1);
      expect(metrics).toContain(`thaw_call_duration_seconds_count{tenant="default",function="hello",cold="true"} ${cold}`);
    } finally {
      await s.stop();
    }
  });

  test("a tenant's memory limit stops its instances, not the node's; the pool is in /metrics", async () => {
    const s = await startServer({
      env: { THAW_TOKENS: "a-token:small,b-token:big", THAW_TENANT_MEMORY: `small:0:${2 << 20}`, THAW_METRICS_TOKEN: "scrape" },
    });
    const small = { authorization: "Bearer a-token" };
    const big = { authorization: "Bearer b-token" };
    try {
      expect((await putModule(s, "f", "hello", "wait=true&memoryMiB=4", small)).status).toBe(201);
      expect((await putModule(s, "f", "hello", "wait=true&memoryMiB=4", big)).status).toBe(201);
      const refused = await invoke(s, "f", "", small);
      expect(refused.status).toBe(503);
      expect((await body(refused)).error.code).toBe("memory_exhausted");
      expect(await (await invoke(s, "f", "", big)).text()).toBe("Hello, world!\n");
      const pools = await body(await fetch(`${s.url}/v1/pools`, { headers: big }));
      expect(pools.memory.usedBytes).toBeGreaterThanOrEqual(4 << 20);
      expect(pools.memory.tenants).toEqual([{ tenant: "big", usedBytes: expect.any(Number), reservedBytes: 0 }]);
      const metrics = await (await fetch(`${s.url}/metrics`, { headers: { authorization: "Bearer scrape" } })).text();
      expect(metrics).toMatch(/thaw_memory_pool_bytes\{kind="used"\} [1-9]\d*/);
      expect(metrics).toMatch(/thaw_memory_pool_events\{event="failed_tenant_limit"\} [1-9]\d*/);
      expect(metrics).toMatch(/thaw_memory_tenant_bytes\{tenant="small",kind="limit"\} 2097152/);
    } finally {
      await s.stop();
    }
  });
});
