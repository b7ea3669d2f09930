// The job submit and status routes at the edges, over HTTP against a real
// server: the cases fast-jobs.ts serves itself (plain names, ids and
// queries) and those it leaves to the Elysia routes (percent-encoding,
// malformed ids and queries, callbacks, a draining node) must answer as
// the Elysia routes always have.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { putModule, type ServerProcess, startServer } from "./server.ts";

// biome-ignore lint: response bodies are checked field by field below.
type Json = any;

const ALPHA = { authorization: "Bearer alpha-token" };
const BETA = { authorization: "Bearer beta-token" };
const MAX_BODY = 1000;

const submit = (s: ServerProcess, path: string, init: RequestInit = {}) =>
  fetch(`${s.url}/v1/functions/${path}`, { method: "POST", ...init, headers: { ...ALPHA, ...(init.headers as Record<string, string>) } });

async function error(res: Response, status: number, code: string): Promise<string> {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/json");
  expect(res.headers.get("x-request-id")).toBeTruthy();
  const body: Json = await res.json();
  expect(body.error.code).toBe(code);
  return body.error.message;
}

describe("job routes", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    s = await startServer({
      args: ["--max-body", String(MAX_BODY)],
      env: { THAW_TOKENS: "alpha-token:alpha,beta-token:beta", THAW_CORS_ORIGINS: "https://app.example" },
    });
    expect((await putModule(s, "hello", "hello", "wait=true", ALPHA)).status).toBe(201);
  });
  afterAll(async () => {
    await s.stop();
  });

  test("a plain submit: 202, Location, the request id and CORS headers, the job as JSON; its status reads the same way", async () => {
    const res = await submit(s, "hello/jobs?attempts=2&retryFunctionErrors=true", {
      body: "x",
      headers: { "x-request-id": "submit-1", origin: "https://app.example" },
    });
    expect(res.status).toBe(202);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("x-request-id")).toBe("submit-1");
    expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example");
    const job: Json = await res.json();
    expect(res.headers.get("location")).toBe(`/v1/jobs/${job.id}`);
    expect(job).toMatchObject({ tenant: "alpha", function: "hello", status: "queued", maxAttempts: 2, requestId: "submit-1" });

    const read = await fetch(`${s.url}/v1/jobs/${job.id}`, { headers: { ...ALPHA, "x-request-id": "read-1", origin: "https://app.example" } });
    expect(read.status).toBe(200);
    expect(read.headers.get("content-type")).toBe("application/json");
    expect(read.headers.get("x-request-id")).toBe("read-1");
    expect(read.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(await read.json()).toMatchObject({ id: job.id, tenant: "alpha", requestId: "submit-1" });
  });

  test("percent-encoded names, ids and query values mean what they decode to", async () => {
    const res = await submit(s, "%68ello/jobs?attempts=%32");
    expect(res.status).toBe(202);
    const job: Json = await res.json();
    expect(job).toMatchObject({ function: "hello", maxAttempts: 2 });
    const encodedId = [...job.id].map((c: string) => `%${c.charCodeAt(0).toString(16)}`).join("");
    const read = await fetch(`${s.url}/v1/jobs/${encodedId}`, { headers: ALPHA });
    expect(read.status).toBe(200);
    expect(((await read.json()) as Json).id).toBe(job.id);
    expect(await error(await submit(s, "HELLO%2F/jobs"), 400, "invalid_request")).toContain("name must be");
  });

  test("bad ids: malformed or too long is 400 saying what an id is; unknown or another tenant's is 404", async () => {
    for (const id of ["a%20b", "x".repeat(129), "a%00b", "%E2%9C%93"])
      expect(await error(await fetch(`${s.url}/v1/jobs/${id}`, { headers: ALPHA }), 400, "invalid_request")).toContain("job id");
    expect(await error(await fetch(`${s.url}/v1/jobs/${"x".repeat(128)}`, { headers: ALPHA }), 404, "job_not_found")).toContain("no job");
    const job: Json = await (await submit(s, "hello/jobs")).json();
    await error(await fetch(`${s.url}/v1/jobs/${job.id}`, { headers: BETA }), 404, "job_not_found");
  });

  test("auth: no token or a wrong one is 401 with WWW-Authenticate, on submit and on status, before the name is looked up", async () => {
    for (const headers of [{}, { authorization: "Bearer wrong" }, { authorization: "Basic alpha-token" }] as Record<string, string>[]) {
      const sub = await fetch(`${s.url}/v1/functions/nope/jobs`, { method: "POST", headers });
      await error(sub, 401, "unauthorized");
      expect(sub.headers.get("www-authenticate")).toBe('Bearer realm="thaw"');
      const read = await fetch(`${s.url}/v1/jobs/some-id`, { headers });
      await error(read, 401, "unauthorized");
      expect(read.headers.get("www-authenticate")).toBe('Bearer realm="thaw"');
    }
    await error(await submit(s, "nope/jobs"), 404, "function_not_found");
  });

  test("bodies: at the limit accepted, over it 413 whether declared or streamed", async () => {
    expect((await submit(s, "hello/jobs", { body: "a".repeat(MAX_BODY) })).status).toBe(202);
    expect(await error(await submit(s, "hello/jobs", { body: "a".repeat(MAX_BODY + 1) }), 413, "payload_too_large")).toContain(String(MAX_BODY));
    const chunks = new ReadableStream({
      start(c) {
        for (let i = 0; i < 3; i++) c.enqueue(new Uint8Array(600));
        c.close();
      },
    });
    await error(await submit(s, "hello/jobs", { body: chunks }), 413, "payload_too_large");
  });

  test("queries the schema refuses are 400 with its message; unknown parameters are ignored", async () => {
    const refused: [string, string][] = [
      ["attempts=0", "at least 1"],
      ["attempts=21", "at most 20"],
      ["attempts=abc", "integer"],
      ["attempts", "integer"],
      ["attempts=020", "integer"],
      ["attempts=%2B3", "integer"],
      ["attempts=3&attempts=3", "must be a string"],
      ["retryFunctionErrors=yes", "retryFunctionErrors must be"],
      ["retryFunctionErrors", "retryFunctionErrors must be"],
    ];
    for (const [q, says] of refused) expect(await error(await submit(s, `hello/jobs?${q}`), 400, "invalid_request")).toContain(says);
    for (const [q, attempts] of [["foo=bar&attempts=4", 4], ["attempts=5&", 5], ["&", 3], ["attempts=%31%30", 10]] as const) {
      const res = await submit(s, `hello/jobs?${q}`);
      expect(res.status).toBe(202);
      expect(((await res.json()) as Json).maxAttempts).toBe(attempts);
    }
  });

  test("callback URLs: private, loopback, credentialed or non-http ones are refused with 400 before anything is queued", async () => {
    for (const url of ["http://127.0.0.1/x", "http://10.0.0.1/", "ftp://example.com/", "http://u:p@example.com/", "not a url"]) {
      const message = await error(await submit(s, `hello/jobs?callback=${encodeURIComponent(url)}`), 400, "invalid_request");
      expect(message).toContain("callback");
    }
  });

  test("other methods on the submit and status paths are still 404 no such route", async () => {
    for (const [method, path] of [["PUT", "/v1/jobs/abc"], ["DELETE", "/v1/jobs/abc"], ["GET", "/v1/functions/hello/jobs"], ["PATCH", "/v1/functions/hello/jobs"]])
      await error(await fetch(`${s.url}${path}`, { method, headers: ALPHA }), 404, "not_found");
  });
});

describe("job routes on a draining node", () => {
  test("submits and status reads get 503 shutting_down with a request id while a call finishes", async () => {
    const s = await startServer({ args: ["--shutdown-timeout", "15000"] });
    expect((await putModule(s, "slow", "sleep")).status).toBe(201);
    const job: Json = await (await fetch(`${s.url}/v1/functions/slow/jobs`, { method: "POST", body: "1" })).json();
    const inflight = fetch(`${s.url}/v1/functions/slow/invoke`, { method: "POST", body: "2000" });
    await Bun.sleep(200);
    s.proc.kill("SIGTERM");
    const deadline = Date.now() + 1500;
    while ((await fetch(`${s.url}/readyz`)).status !== 503 && Date.now() < deadline) await Bun.sleep(20);

    const sub = await fetch(`${s.url}/v1/functions/slow/jobs`, { method: "POST", body: "1", headers: { "x-request-id": "late-submit" } });
    expect(await error(sub, 503, "shutting_down")).toContain("shutting down");
    expect(sub.headers.get("x-request-id")).toBe("late-submit");
    expect(sub.headers.get("retry-after")).toBe("1");
    await error(await fetch(`${s.url}/v1/jobs/${job.id}`), 503, "shutting_down");

    expect((await inflight).status).toBe(200);
    expect(await s.proc.exited).toBe(0);
  });
});
