// What an operator and their infrastructure see of a node, against a real
// `thaw serve`: /readyz (loading, Redis reachable or not, draining on
// SIGTERM while calls in flight finish and new ones are refused), /metrics
// (closed to tenants when tokens are configured, series only for functions
// that exist), tenant names from the command line checked before they
// reach the data directory, and uploads that stall answered 408.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers.ts";
import { type RedisServer, startRedis } from "./redis.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";

// biome-ignore lint: response bodies are checked field by field below.
const json = (res: Response): Promise<any> => res.json();

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const started = performance.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await Bun.sleep(50);
  }
}

describe("readiness", () => {
  test("ready once functions are loaded, and says Redis is not configured", async () => {
    const s = await startServer();
    try {
      const res = await fetch(`${s.url}/readyz`);
      expect(res.status).toBe(200);
      expect(await json(res)).toEqual({ status: "ready", checks: { functions: "loaded", redis: "not configured" } });
    } finally {
      await s.stop();
    }
  });

  describe("with Redis", () => {
    let redis: RedisServer;
    let s: ServerProcess;
    beforeAll(async () => {
      redis = await startRedis();
      s = await startServer({ args: ["--redis-url", redis.url] });
    });
    afterAll(async () => {
      await s?.stop();
      await redis?.stop();
    });

    test("Redis unreachable: still 200 (calls work) but degraded, and ready again once it is back", async () => {
      const ready = await fetch(`${s.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(await json(ready)).toEqual({ status: "ready", checks: { functions: "loaded", redis: "ok" } });

      await redis.stop();
      const down = await until("readyz sees Redis down", 10_000, async () => {
        const res = await fetch(`${s.url}/readyz`);
        const body = await json(res);
        return body.checks?.redis === "unreachable" ? { status: res.status, body } : undefined;
      });
      expect(down).toEqual({ status: 200, body: { status: "degraded", checks: { functions: "loaded", redis: "unreachable" } } });

      await redis.start();
      await until("readyz sees Redis back", 10_000, async () => {
        const body = await json(await fetch(`${s.url}/readyz`));
        return body.status === "ready" ? body : undefined;
      });
    });
  });
});

describe("graceful shutdown", () => {
  test("SIGTERM: /readyz 503 draining and new calls 503 shutting_down while the call in flight finishes, then exit 0", async () => {
    const s = await startServer({ args: ["--shutdown-timeout", "15000"] });
    expect((await putModule(s, "slow", "sleep")).status).toBe(201);
    const inflight = fetch(`${s.url}/v1/functions/slow/invoke`, { method: "POST", body: "2000" });
    await Bun.sleep(200);
    s.proc.kill("SIGTERM");

    // The listener is still up: the probe gets an answer, not a refused connection.
    const draining = await until("readyz says draining", 1500, async () => {
      const res = await fetch(`${s.url}/readyz`);
      return res.status === 503 ? json(res) : undefined;
    });
    expect(draining).toEqual({ status: "draining" });
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);

    const refused = await fetch(`${s.url}/v1/functions/slow/invoke`, { method: "POST", body: "1" });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect((await json(refused)).error.code).toBe("shutting_down");

    const res = await inflight;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("slept 2000\n");
    expect(await s.proc.exited).toBe(0);
    expect(s.logs.some((l) => l.msg === "stopped")).toBe(true);
    await expect(fetch(`${s.url}/healthz`)).rejects.toThrow();
  });
});

describe("metrics", () => {
  let s: ServerProcess;
  const alice = { authorization: "Bearer alice-token" };
  const admin = { authorization: "Bearer root" };
  const scraper = { authorization: "Bearer scrape-token" };
  const scrape = (headers: Record<string, string> = {}) => fetch(`${s.url}/metrics`, { headers });

  beforeAll(async () => {
    s = await startServer({ args: ["--tokens", "alice-token:alice", "--admin-token", "root", "--metrics-token", "scrape-token"] });
  });
  afterAll(async () => {
    await s.stop();
  });

  test("with tokens configured, /metrics takes the admin or the metrics token; no token or a tenant's is 401", async () => {
    for (const headers of [{}, alice, { authorization: "Bearer wrong" }]) {
      const res = await scrape(headers);
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect((await json(res)).error.code).toBe("unauthorized");
    }
    for (const headers of [admin, scraper]) {
      const res = await scrape(headers);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain("thaw_engine_memory_bytes");
    }
    // The metrics token opens /metrics and nothing else.
    expect((await fetch(`${s.url}/v1/functions`, { headers: scraper })).status).toBe(401);
  });

  test("a deleted function's series are gone; deployed again, it starts from zero", async () => {
    const call = () => fetch(`${s.url}/v1/functions/doomed/invoke`, { method: "POST", headers: alice });
    expect((await putModule(s, "doomed", "hello", "wait=true", alice)).status).toBe(201);
    for (let i = 0; i < 3; i++) expect((await call()).status).toBe(200);
    const before = await (await scrape(scraper)).text();
    expect(before).toContain('thaw_calls_total{tenant="alice",function="doomed",outcome="ok"} 3');
    expect(before).toContain('thaw_call_duration_seconds_count{tenant="alice",function="doomed",cold="false"}');

    expect((await fetch(`${s.url}/v1/functions/doomed`, { method: "DELETE", headers: alice })).status).toBe(204);
    expect((await call()).status).toBe(404);
    const after = await (await scrape(scraper)).text();
    expect(after).not.toContain('function="doomed"');
    expect(after).toContain('thaw_calls_total{tenant="alice",function="_unknown",outcome="function_not_found"} 1');

    expect((await putModule(s, "doomed", "hello", "wait=true", alice)).status).toBe(201);
    expect((await call()).status).toBe(200);
    expect(await (await scrape(scraper)).text()).toContain('thaw_calls_total{tenant="alice",function="doomed",outcome="ok"} 1');
  });

  test("a metrics token alone closes /metrics, and leaves the API open", async () => {
    const open = await startServer({ args: ["--metrics-token", "scrape-token"] });
    try {
      expect((await fetch(`${open.url}/metrics`)).status).toBe(401);
      expect((await fetch(`${open.url}/metrics`, { headers: scraper })).status).toBe(200);
      expect((await fetch(`${open.url}/v1/functions`)).status).toBe(200);
    } finally {
      await open.stop();
    }
  });
});

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
      expect(lines[0]).toMatch(/^thaw serve: .*invalid tenant name/);
      expect(stderr).not.toContain("secret-token");
    });
  }
});

describe("slow uploads", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    s = await startServer({ args: ["--body-timeout", "1000"] });
    expect((await putModule(s, "echo", "echo")).status).toBe(201);
  });
  afterAll(async () => {
    await s.stop();
  });

  /** Sends the head and part of a body on a raw connection, then waits; returns what came back and when. */
  async function stall(head: string, declared: number, sent: string) {
    const { hostname, port } = new URL(s.url);
    const started = performance.now();
    let received = "";
    let closedAfter = -1;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, 15_000);
      Bun.connect({
        hostname,
        port: Number(port),
        socket: {
          open(socket) {
            socket.write(`${head}\r\nHost: ${hostname}\r\nContent-Length: ${declared}\r\n\r\n${sent}`);
          },
          data(_socket, chunk) {
            received += chunk.toString();
          },
          close() {
            closedAfter = performance.now() - started;
            clearTimeout(timer);
            resolve();
          },
          error(_socket, e) {
            reject(e);
          },
        },
      }).catch(reject);
    });
    const [status, ...rest] = received.split("\r\n");
    const body = received.slice(received.indexOf("\r\n\r\n") + 4);
    return { status, headers: rest.join("\n").toLowerCase(), body, closedAfter };
  }

  for (const [route, head] of [
    ["a call", "POST /v1/functions/echo/invoke HTTP/1.1"],
    ["a WAGI call", "POST /fn/echo/ HTTP/1.1"],
    ["an async submit", "POST /v1/functions/echo/jobs HTTP/1.1"],
    ["a deploy", "PUT /v1/functions/late HTTP/1.1\r\nContent-Type: application/wasm"],
    ["a multipart deploy", "PUT /v1/functions/late HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=b"],
  ] as const) {
    test(`${route} whose body stalls gets 408 request_timeout after --body-timeout, and the connection closes`, async () => {
      const r = await stall(head, 1000, "only part of it");
      expect(r.status).toBe("HTTP/1.1 408 Request Timeout");
      expect(r.headers).toContain("connection: close");
      expect(JSON.parse(r.body).error.code).toBe("request_timeout");
      expect(r.closedAfter).toBeGreaterThanOrEqual(900);
      expect(r.closedAfter).toBeLessThan(5000);
    });
  }

  test("the node serves on after timing bodies out", async () => {
    const res = await fetch(`${s.url}/v1/functions/echo/invoke`, { method: "POST", body: "still here" });
    expect(await res.text()).toBe("still here");
  });
});

describe("long requests", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    s = await startServer({ args: ["--idle-timeout", "1"] });
    expect((await putModule(s, "sleep", "sleep", "wait=true&timeoutMs=60000")).status).toBe(201);
  });
  afterAll(async () => {
    await s.stop();
  });

  // A call is the connection at work, not idle: the idle timeout (Bun's
  // timer fires within a few seconds of it) must not cut the call off.
  test("a call that runs far past the idle timeout still gets its answer", async () => {
    const res = await fetch(`${s.url}/v1/functions/sleep/invoke`, { method: "POST", body: "9000" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("slept 9000\n");
  });
});
