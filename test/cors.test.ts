// CORS over real HTTP: off by default; with --cors-origins, exactly the
// listed origins get Access-Control-Allow-Origin (on errors too), preflights
// are answered without a token, and hostile origins get nothing.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rawRequest } from "./raw-http.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";
import { printing } from "./wat.ts";

const APP = "https://app.example.com";
const DEV = "http://localhost:5173";
const alice = { authorization: "Bearer alice-token" };

const corsHeaders = (res: Response) => [...res.headers.keys()].filter((k) => k.startsWith("access-control-"));

const preflight = (s: ServerProcess, path: string, origin: string, headers: Record<string, string> = {}) =>
  fetch(`${s.url}${path}`, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type", ...headers },
  });

describe("without --cors-origins", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    s = await startServer();
    expect((await putModule(s, "hello", "hello")).status).toBe(201);
  });
  afterAll(async () => {
    await s.stop();
  });

  test("no CORS headers, whatever the origin; OPTIONS is not answered as a preflight", async () => {
    const res = await fetch(`${s.url}/v1/functions/hello/invoke`, { method: "POST", headers: { origin: APP } });
    expect(res.status).toBe(200);
    expect(corsHeaders(res)).toEqual([]);
    expect(res.headers.get("vary")).toBeNull();
    const pre = await preflight(s, "/v1/functions/hello/invoke", APP);
    expect(pre.status).toBe(404);
    expect(corsHeaders(pre)).toEqual([]);
  });
});

describe("with --cors-origins", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    s = await startServer({ args: ["--cors-origins", `${APP}, ${DEV}`, "--tokens", "alice-token:alice"] });
    expect((await putModule(s, "hello", "hello", "wait=true", alice)).status).toBe(201);
  });
  afterAll(async () => {
    await s.stop();
  });

  test("an allowed origin gets itself back, Vary: Origin and the exposed headers, on calls and on errors", async () => {
    for (const origin of [APP, DEV]) {
      const ok = await fetch(`${s.url}/v1/functions/hello/invoke`, { method: "POST", headers: { ...alice, origin } });
      expect(ok.status).toBe(200);
      expect(ok.headers.get("access-control-allow-origin")).toBe(origin);
      expect(ok.headers.get("vary")).toContain("Origin");
      const exposed = ok.headers.get("access-control-expose-headers")!.split(/,\s*/);
      expect(exposed).toEqual(expect.arrayContaining(["X-Request-Id", "X-Call-Id", "X-Thaw-Exit-Code", "X-Thaw-Duration-Ms", "X-Thaw-Cold", "X-Thaw-Version"]));
      expect(ok.headers.get("access-control-allow-credentials")).toBeNull();
    }
    for (const res of [
      await fetch(`${s.url}/v1/functions/hello/invoke`, { method: "POST", headers: { origin: APP } }),
      await fetch(`${s.url}/v1/functions/nosuch/invoke`, { method: "POST", headers: { ...alice, origin: APP } }),
      await fetch(`${s.url}/no/route`, { headers: { origin: APP } }),
    ]) {
      expect([401, 404]).toContain(res.status);
      expect(res.headers.get("access-control-allow-origin")).toBe(APP);
    }
  });

  test("a preflight is answered 204 without a token, with the methods and headers a browser needs", async () => {
    for (const path of ["/v1/functions/hello/invoke", "/v1/functions/hello", "/fn/hello/x", "/function/hello", "/async-function/hello", "/v1/jobs/abc"]) {
      const res = await preflight(s, path, APP);
      expect(res.status).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe(APP);
      expect(res.headers.get("vary")).toContain("Origin");
      const methods = res.headers.get("access-control-allow-methods")!.split(/,\s*/);
      expect(methods).toEqual(expect.arrayContaining(["GET", "POST", "PUT", "DELETE"]));
      const headers = res.headers.get("access-control-allow-headers")!.toLowerCase().split(/,\s*/);
      expect(headers).toEqual(
        expect.arrayContaining(["authorization", "content-type", "x-request-id", "x-thaw-tenant", "idempotency-key", "x-callback-url"]),
      );
      expect(Number(res.headers.get("access-control-max-age"))).toBeGreaterThan(0);
      expect(res.headers.get("x-request-id")).toBeTruthy();
    }
  });

  test("a disallowed origin gets no CORS headers, on calls and on preflights", async () => {
    const hostile = [
      "https://evil.example",
      "null",
      "https://app.example.com.evil.example",
      "https://APP.example.com",
      `${APP}/`,
      `${APP}:443`,
      "http://app.example.com",
      "https://app.example.co",
      "*",
      `${APP},${DEV}`,
    ];
    for (const origin of hostile) {
      const res = await fetch(`${s.url}/v1/functions/hello/invoke`, { method: "POST", headers: { ...alice, origin } });
      expect({ origin, status: res.status, cors: corsHeaders(res) }).toEqual({ origin, status: 200, cors: [] });
      const pre = await preflight(s, "/v1/functions/hello/invoke", origin);
      expect({ origin, status: pre.status, cors: corsHeaders(pre) }).toEqual({ origin, status: 204, cors: [] });
    }
  });

  test("an Origin with CR/LF cannot inject a header or be reflected", async () => {
    for (const origin of [`${APP}\rX-Evil: 1`, `${APP}\r\nAccess-Control-Allow-Origin: https://evil.example`]) {
      const head = await rawRequest(
        s.url,
        `OPTIONS /v1/functions/hello/invoke HTTP/1.1\r\nHost: x\r\nOrigin: ${origin}\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n`,
      );
      expect(head.toLowerCase()).not.toContain("x-evil");
      expect(head.toLowerCase()).not.toContain("evil.example");
      // The parser refuses the request, or splits the line (a bare CR ends it in Bun's parser): either
      // way the response names no origin but one of the list, and carries nothing of the rest.
      const allowed = /^access-control-allow-origin: (.*)$/im.exec(head)?.[1];
      if (allowed !== undefined) expect([APP, DEV]).toContain(allowed);
    }
  });

  test("a WAGI function's own CORS headers give way to the platform's, and its Vary keeps Origin", async () => {
    const head = "Vary: Accept\nAccess-Control-Allow-Origin: https://evil.example\nX-Request-Id: forged\n\nok";
    const module = printing(head);
    const put = await fetch(`${s.url}/v1/functions/corsy?wait=true`, { method: "PUT", body: module, headers: { ...alice, "content-type": "application/wasm" } });
    expect(put.status).toBe(201);
    for (const path of ["/fn/corsy/", "/function/corsy"]) {
      const res = await fetch(`${s.url}${path}`, { headers: { ...alice, origin: APP, "x-request-id": "cors-wagi" } });
      expect(await res.text()).toBe("ok");
      expect(res.headers.get("access-control-allow-origin")).toBe(APP);
      expect(res.headers.get("vary")!.split(/,\s*/).sort()).toEqual(["Accept", "Origin"]);
      expect(res.headers.get("x-request-id")).toBe("cors-wagi");
    }
  });

  test("a request without an Origin gets no CORS headers (not a browser's cross-origin request)", async () => {
    const res = await fetch(`${s.url}/v1/functions/hello/invoke`, { method: "POST", headers: alice });
    expect(corsHeaders(res)).toEqual([]);
  });
});

describe("--cors-origins '*'", () => {
  test("any origin gets *, never itself; preflights pass; no credentials", async () => {
    const s = await startServer({ args: ["--cors-origins", "*"] });
    try {
      const res = await fetch(`${s.url}/healthz`, { headers: { origin: "https://anyone.example" } });
      expect(res.headers.get("access-control-allow-origin")).toBe("*");
      const pre = await preflight(s, "/v1/functions", "null");
      expect(pre.status).toBe(204);
      expect(pre.headers.get("access-control-allow-origin")).toBe("*");
      expect(pre.headers.get("access-control-allow-credentials")).toBeNull();
    } finally {
      await s.stop();
    }
  });
});

describe("bad --cors-origins values stop the server with one line", () => {
  test("null, paths, wildcards mixed with origins, upper case, other schemes", async () => {
    const bads = ["null", `${APP}/`, `${APP}/app`, `*,${APP}`, "https://APP.example.com", "ftp://files.example", "app.example.com", "https://*.example.com", "https://a_b.example"];
    for (const bad of bads) {
      const p = Bun.spawn([process.execPath, "src/cli.ts", "serve", "--port", "0", "--cors-origins", bad], { stdout: "pipe", stderr: "pipe" });
      // A server that starts instead would never exit on its own.
      const timer = setTimeout(() => p.kill(), 15_000);
      const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
      clearTimeout(timer);
      expect({ bad, code: code === 1 || code === 2 ? "refused" : code, err: err.includes("cors-origins") }).toEqual({ bad, code: "refused", err: true });
      expect(err.trim().split("\n")).toHaveLength(1);
      expect(err).toContain("cors-origins");
    }
  });
});
