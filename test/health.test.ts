// What an operator and their infrastructure see of a node, against a real
// `thaw serve`: /readyz (loading, Redis reachable or not, draining on
// SIGTERM while calls in flight finish and new ones are refused), /metrics
// (closed to tenants when tokens are configured, series only for functions
// that exist), and tenant names from the command line checked before they
// reach the data directory.

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
      expect(lines[0]).toMatch(/^thaw: .*invalid tenant name/);
      expect(stderr).not.toContain("secret-token");
    });
  }
});
