// X-Request-Id over real HTTP: on every response (calls, errors, 404s,
// auth failures, preflights, a draining node's refusals), the client's own
// when it is a plain short token and a new one otherwise -- never the
// client's bytes when they are not -- and the same id in the call's log
// entry, the access log and the job it submits.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rawRequest } from "./raw-http.ts";
import { startRedis } from "./redis.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";
import { printing } from "./wat.ts";

// biome-ignore lint: response bodies are checked field by field below.
const body = (res: Response): Promise<any> => res.json();
const putBytes = (s: ServerProcess, name: string, bytes: Uint8Array, headers: Record<string, string>) =>
  fetch(`${s.url}/v1/functions/${name}?wait=true`, { method: "PUT", body: bytes, headers: { "content-type": "application/wasm", ...headers } });
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("X-Request-Id", () => {
  let s: ServerProcess;
  const alice = { authorization: "Bearer alice-token" };
  beforeAll(async () => {
    s = await startServer({ args: ["--max-body", "1024"], env: { THAW_TOKENS: "alice-token:alice" } });
    expect((await putModule(s, "hello", "hello", "wait=true", alice)).status).toBe(201);
    expect((await putModule(s, "trap", "trap_unreachable", "wait=true", alice)).status).toBe(201);
    expect((await putModule(s, "cgi", "cgi", "wait=true", alice)).status).toBe(201);
  });
  afterAll(async () => {
    await s.stop();
  });

  const invoke = (name: string, headers: Record<string, string> = {}, payload = "") =>
    fetch(`${s.url}/v1/functions/${name}/invoke`, { method: "POST", body: payload, headers: { ...alice, ...headers } });

  test("a valid client id comes back as is", async () => {
    for (const id of ["abc", "req-1.2:3_4", "A".repeat(128), "00000000-0000-4000-8000-000000000000", "1-5759e988-bd862e3fe1be46a994272793:span.7"]) {
      const res = await invoke("hello", { "x-request-id": id });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-request-id")).toBe(id);
    }
  });

  test("without one, or with an invalid one, a new one; the client's bytes are never echoed", async () => {
    const seen = new Set<string>();
    for (const id of [undefined, "", "A".repeat(129), "has space", "semi;colon", "<script>", "ü-unicode", "a/b", "a\tb", "%0d%0aX-Evil: 1"]) {
      const res = await invoke("hello", id === undefined ? {} : { "x-request-id": id });
      const got = res.headers.get("x-request-id")!;
      expect(got).toMatch(UUID);
      expect(got).not.toBe(id);
      seen.add(got);
    }
    expect(seen.size).toBe(10);
  });

  test("CR/LF in the header cannot inject a header: refused by the parser or replaced", async () => {
    const head = await rawRequest(
      s.url,
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: ok\rX-Evil: 1\r\nConnection: close\r\n\r\n`,
    );
    expect(head.toLowerCase()).not.toContain("x-evil");
    const id = /^x-request-id: (.*)$/im.exec(head)?.[1];
    if (id !== undefined) expect(id).toMatch(UUID);
    else expect(head).toMatch(/^HTTP\/1\.1 400/);
  });

  test("on every kind of response: errors, 404 routes, auth failures, bad requests, function errors, WAGI", async () => {
    const cases: [string, Promise<Response>, number][] = [
      ["no route", fetch(`${s.url}/no/such/route`, { headers: { "x-request-id": "r-404" } }), 404],
      ["no token", fetch(`${s.url}/v1/functions`, { headers: { "x-request-id": "r-401" } }), 401],
      ["bad token", fetch(`${s.url}/v1/functions`, { headers: { authorization: "Bearer nope", "x-request-id": "r-401b" } }), 401],
      ["no function", invoke("nosuch", { "x-request-id": "r-nf" }), 404],
      ["bad name", invoke("Bad.Name", { "x-request-id": "r-400" }), 400],
      ["too large", invoke("hello", { "x-request-id": "r-413" }, "x".repeat(4096)), 413],
      ["trap", invoke("trap", { "x-request-id": "r-500" }), 500],
      ["probe", fetch(`${s.url}/healthz`, { headers: { "x-request-id": "r-h" } }), 200],
      ["metrics", fetch(`${s.url}/metrics`, { headers: { "x-request-id": "r-m" } }), 401],
      ["wagi", fetch(`${s.url}/fn/cgi/p`, { headers: { ...alice, "x-request-id": "r-wagi" } }), 201],
    ];
    for (const [what, pending, status] of cases) {
      const res = await pending;
      await res.arrayBuffer();
      const sent = { "no route": "r-404", "no token": "r-401", "bad token": "r-401b", "no function": "r-nf", "bad name": "r-400", "too large": "r-413", trap: "r-500", probe: "r-h", metrics: "r-m", wagi: "r-wagi" }[what];
      expect({ what, status: res.status, id: res.headers.get("x-request-id") }).toEqual({ what, status, id: sent! });
    }
  });

  test("a WAGI function cannot set the response's request id", async () => {
    const head = "Status: 200\nX-Request-Id: forged\nX-Other: kept\n\nbody";
    const forger = printing(head);
    expect((await putBytes(s, "forger", forger, alice)).status).toBe(201);
    const res = await fetch(`${s.url}/fn/forger/`, { headers: { ...alice, "x-request-id": "mine-1" } });
    expect(res.headers.get("x-other")).toBe("kept");
    expect(await res.text()).toBe("body");
    expect(res.headers.get("x-request-id")).toBe("mine-1");
  });

  test("the request id is in the access log line of a failed call", async () => {
    await invoke("trap", { "x-request-id": "trace-me-42" });
    await Bun.sleep(100);
    const line = s.logs.find((l) => l.msg === "call" && l.requestId === "trace-me-42");
    expect(line).toMatchObject({ function: "trap", outcome: "function_trap", tenant: "alice" });
  });

  test("a submitted job keeps its request id: in the 202, in GET /v1/jobs/{id}", async () => {
    const res = await fetch(`${s.url}/v1/functions/hello/jobs`, { method: "POST", headers: { ...alice, "x-request-id": "job-req-9" } });
    expect(res.status).toBe(202);
    expect(res.headers.get("x-request-id")).toBe("job-req-9");
    const job = await body(res);
    expect(job.requestId).toBe("job-req-9");
    const again = await fetch(`${s.url}/v1/jobs/${job.id}`, { headers: alice });
    expect((await body(again)).requestId).toBe("job-req-9");
    expect(again.headers.get("x-request-id")).toMatch(UUID);
  });
});

describe("X-Request-Id while draining", () => {
  test("a draining node's 503 carries one too", async () => {
    const s = await startServer();
    try {
      expect((await putModule(s, "slow", "sleep")).status).toBe(201);
      const inflight = fetch(`${s.url}/v1/functions/slow/invoke`, { method: "POST", body: "700" });
      await Bun.sleep(150);
      const stopped = s.stop();
      await Bun.sleep(100);
      const refused = await fetch(`${s.url}/v1/functions`, { headers: { "x-request-id": "late-1" } });
      expect(refused.status).toBe(503);
      expect(refused.headers.get("x-request-id")).toBe("late-1");
      expect((await inflight).status).toBe(200);
      await stopped;
    } catch (e) {
      await s.stop();
      throw e;
    }
  });
});

describe("X-Request-Id of jobs on the Redis queue", () => {
  test("kept with the job and given to its attempt's call log, with the job's id as the call id", async () => {
    const redis = await startRedis();
    const s = await startServer({ env: { THAW_REDIS_URL: redis.url } });
    try {
      expect((await putModule(s, "trap", "trap_unreachable")).status).toBe(201);
      const res = await fetch(`${s.url}/v1/functions/trap/jobs`, { method: "POST", headers: { "x-request-id": "redis-job-3" } });
      expect(res.status).toBe(202);
      const job = await body(res);
      expect(job.requestId).toBe("redis-job-3");
      let entries: { callId: string; requestId: string; outcome: string }[] = [];
      for (let i = 0; i < 200 && entries.length === 0; i++) {
        await Bun.sleep(50);
        entries = (await body(await fetch(`${s.url}/v1/functions/trap/logs`))).entries;
      }
      expect(entries[0]).toMatchObject({ callId: job.id, requestId: "redis-job-3", outcome: "trap" });
      expect((await body(await fetch(`${s.url}/v1/jobs/${job.id}`))).requestId).toBe("redis-job-3");
    } finally {
      await s.stop();
      await redis.stop();
    }
  });
});
