// What an operator and their infrastructure see of a node, against a real
// `thaw serve`: /metrics (closed to tenants when tokens are configured,
// series only for functions that exist), and tenant names from the command
// line checked before they reach the data directory.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";

// biome-ignore lint: response bodies are checked field by field below.
const json = (res: Response): Promise<any> => res.json();

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
