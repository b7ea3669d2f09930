// OpenFaaS-style routes over real HTTP: /function/NAME answers as the invoke
// route does (WAGI functions included, same auth and errors), and
// /async-function/NAME queues a job, names it in X-Call-Id, and honours
// X-Callback-Url under exactly the checks of ?callback= -- a hostile URL
// is refused at submit and nothing reaches it.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import { putModule, type ServerProcess, startServer } from "./server.ts";

// biome-ignore lint: response bodies are checked field by field below.
const body = (res: Response): Promise<any> => res.json();
const alice = { authorization: "Bearer alice-token" };
const bob = { authorization: "Bearer bob-token" };

/** A loopback HTTP server that records what is POSTed to it. */
function receiver() {
  const received: { headers: Headers; body: string }[] = [];
  const server: Server<undefined> = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (req) => {
      received.push({ headers: req.headers, body: await req.text() });
      return new Response("ok");
    },
  });
  return { server, received, url: `http://127.0.0.1:${server.port}/hook` };
}

async function waitFor<T>(probe: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await Bun.sleep(50);
  }
}

describe("OpenFaaS routes", () => {
  let s: ServerProcess;
  const r = receiver();
  beforeAll(async () => {
    s = await startServer({ env: { THAW_TOKENS: "alice-token:alice,bob-token:bob", THAW_CALLBACK_ALLOW: "127.0.0.1" } });
    await Promise.all([
      putModule(s, "hello", "hello", "wait=true", alice),
      putModule(s, "wc", "wordcount", "wait=true&contentType=application/json", alice),
      putModule(s, "cgi", "cgi", "wait=true", alice),
      putModule(s, "trap", "trap_unreachable", "wait=true", alice),
    ]).then((all) => all.forEach((res) => expect(res.status).toBe(201)));
  });
  afterAll(async () => {
    await s.stop();
    r.server.stop(true);
  });

  test("POST /function/NAME: the body is stdin, stdout the response, with the invoke route's headers", async () => {
    const res = await fetch(`${s.url}/function/wc`, { method: "POST", body: "one two three", headers: alice });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("x-thaw-exit-code")).toBe("0");
    expect(res.headers.get("x-request-id")).toBeTruthy();
    const direct = await fetch(`${s.url}/v1/functions/wc/invoke`, { method: "POST", body: "one two three", headers: alice });
    expect(await body(res)).toEqual(await body(direct));
  });

  test("GET /function/NAME calls it too", async () => {
    const res = await fetch(`${s.url}/function/hello`, { headers: alice });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("Hello, world!\n");
  });

  test("a WAGI function gets the request as CGI variables under /function and sets the response", async () => {
    const res = await fetch(`${s.url}/function/cgi/some/path?x=1`, { method: "POST", body: "payload", headers: { ...alice, "x-custom": "yes" } });
    expect(res.status).toBe(201);
    expect(res.headers.get("content-type")).toBe("text/x-test");
    expect(await res.text()).toBe("path=/some/path\nquery=x=1\ncustom=yes\nauth=none\nbody=payload");
  });

  test("same auth and errors as the invoke route: 401, another tenant's function 404, a trap 500 with the code", async () => {
    expect((await fetch(`${s.url}/function/hello`)).status).toBe(401);
    expect((await fetch(`${s.url}/function/hello`, { headers: { authorization: "Bearer nope" } })).status).toBe(401);
    const other = await fetch(`${s.url}/function/hello`, { headers: bob });
    expect(other.status).toBe(404);
    expect((await body(other)).error.code).toBe("function_not_found");
    const trap = await fetch(`${s.url}/function/trap`, { method: "POST", headers: alice });
    expect(trap.status).toBe(500);
    expect((await body(trap)).error.code).toBe("function_trap");
    for (const bad of ["Bad.Name", "..", "%2e%2e", "a".repeat(80)]) {
      const res = await fetch(`${s.url}/function/${bad}`, { headers: alice });
      expect([400, 404]).toContain(res.status);
      expect((await body(res)).error.code).toMatch(/^(invalid_request|function_not_found|not_found)$/);
    }
  });

  test("POST /async-function/NAME: 202, the job's id in X-Call-Id, and the job runs", async () => {
    const res = await fetch(`${s.url}/async-function/wc`, { method: "POST", body: "a b", headers: { ...alice, "x-request-id": "of-async-1" } });
    expect(res.status).toBe(202);
    const job = await body(res);
    expect(res.headers.get("x-call-id")).toBe(job.id);
    expect(res.headers.get("location")).toBe(`/v1/jobs/${job.id}`);
    expect(job.requestId).toBe("of-async-1");
    const done = await waitFor(async () => {
      const j = await body(await fetch(`${s.url}/v1/jobs/${job.id}`, { headers: alice }));
      return j.status === "succeeded" ? j : undefined;
    });
    expect(done.result.outcome).toBe("ok");
    const result = await fetch(`${s.url}/v1/jobs/${job.id}/result`, { headers: alice });
    expect((await body(result)).words).toBe(2);
    expect((await fetch(`${s.url}/async-function/wc`, { method: "POST", headers: bob })).status).toBe(404);
    expect((await fetch(`${s.url}/async-function/wc`, { method: "POST" })).status).toBe(401);
  });

  test("X-Callback-Url gets the finished job, signed, with the job's id", async () => {
    const res = await fetch(`${s.url}/async-function/hello`, { method: "POST", headers: { ...alice, "x-callback-url": r.url } });
    expect(res.status).toBe(202);
    const id = res.headers.get("x-call-id")!;
    const got = await waitFor(async () => r.received.find((c) => c.headers.get("x-thaw-job-id") === id));
    expect(got.headers.get("x-thaw-signature")).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(JSON.parse(got.body)).toMatchObject({ id, status: "succeeded" });
  });

  test("a hostile X-Callback-Url is refused exactly like a hostile ?callback=, and nothing reaches it", async () => {
    const before = r.received.length;
    const urls = [
      "http://169.254.169.254/latest/meta-data/",
      "http://10.0.0.1/",
      "http://[::1]:1/hook",
      "http://localhost:1/hook",
      "http://0x7f000002/hook",
      `http://user:pass@127.0.0.1:${r.server.port}/hook`,
      "ftp://example.com/",
      "file:///etc/passwd",
      "not a url",
      "",
      `http://${"a".repeat(3000)}.example/`,
    ];
    for (const url of urls) {
      const viaHeader = await fetch(`${s.url}/async-function/hello`, { method: "POST", headers: { ...alice, "x-callback-url": url } });
      const viaQuery = await fetch(`${s.url}/v1/functions/hello/jobs?callback=${encodeURIComponent(url)}`, { method: "POST", headers: alice });
      const [h, q] = [await body(viaHeader), await body(viaQuery)];
      expect({ url, status: viaHeader.status, code: h.error?.code }).toEqual({ url, status: 400, code: "invalid_request" });
      expect({ url, header: h.error.message }).toEqual({ url, header: q.error.message });
      expect(h.error.message).not.toContain("pass@");
    }
    await Bun.sleep(300);
    expect(r.received.length).toBe(before);
  });
});
