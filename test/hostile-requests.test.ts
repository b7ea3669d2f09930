// Hostile requests and hostile function output against a real `thaw serve`:
// every one answers a clear 4xx/5xx JSON error or a sanitized response,
// never a 500, a hang or a forged platform header.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { putModule, type ServerProcess, startServer } from "./server.ts";

// biome-ignore lint: response bodies are checked field by field below.
const json = (res: Response): Promise<any> => res.json();

describe("WAGI output is untrusted", () => {
  let s: ServerProcess;
  // The echo function writes its stdin to stdout, so the request body is the
  // function's whole output, CGI head included.
  const wagi = (output: string) =>
    fetch(`${s.url}/fn/echo/`, { method: "POST", body: output, signal: AbortSignal.timeout(10_000) });

  beforeAll(async () => {
    s = await startServer();
    expect((await putModule(s, "echo", "echo")).status).toBe(201);
  });
  afterAll(async () => {
    await s.stop();
  });

  test("a valid head sets the status and the function's own headers", async () => {
    const res = await wagi("Status: 404 Not Found\nX-Mine: yes\n\nnope");
    expect(res.status).toBe(404);
    expect(res.headers.get("x-mine")).toBe("yes");
    expect(await res.text()).toBe("nope");
  });

  for (const status of ["100", "101 Switching Protocols", "199", "600", "99", "abc", "2000"]) {
    test(`Status: ${status} is a 502 function_bad_response, never a hang`, async () => {
      const res = await wagi(`Status: ${status}\nContent-Type: text/plain\n\nbody`);
      expect(res.status).toBe(502);
      expect((await json(res)).error.code).toBe("function_bad_response");
    });
  }

  test("a header value HTTP cannot carry is a 502", async () => {
    const res = await wagi("X-Evil: a\u0000b\n\nbody");
    expect(res.status).toBe(502);
    expect((await json(res)).error.code).toBe("function_bad_response");
  });

  test("platform, hop-by-hop and framing headers from a function are dropped", async () => {
    const head = [
      "X-Thaw-Exit-Code: 7",
      "X-Thaw-Cold: true",
      "x-thaw-version: 999",
      "Date: Thu, 01 Jan 1970 00:00:00 GMT",
      "Server: evil",
      "Connection: close",
      "Keep-Alive: timeout=1",
      "Transfer-Encoding: chunked",
      "Content-Length: 99999",
      "Upgrade: websocket",
      "X-Fine: kept",
    ].join("\n");
    const res = await wagi(`${head}\n\nhello`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("hello");
    expect(res.headers.get("x-thaw-exit-code")).toBe("0");
    expect(res.headers.get("x-thaw-cold")).toBe("false");
    expect(res.headers.get("x-thaw-version")).toBe("1");
    expect(res.headers.get("server")).not.toBe("evil");
    expect(res.headers.get("date")).not.toContain("1970");
    expect(res.headers.get("upgrade")).toBeNull();
    expect(res.headers.get("keep-alive")).toBeNull();
    expect(res.headers.get("x-fine")).toBe("kept");
    expect(res.headers.get("content-length")).toBe("5");
  });
});

describe("bad deploy input is a clear 400", () => {
  let s: ServerProcess;
  const put = (name: string, query: string, body: string | Uint8Array | FormData = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), headers: Record<string, string> = { "content-type": "application/wasm" }) =>
    fetch(`${s.url}/v1/functions/${name}?${query}`, { method: "PUT", body, headers });

  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(async () => {
    await s.stop();
  });

  async function expect400(res: Response, message: RegExp) {
    expect(res.status).toBe(400);
    const err = (await json(res)).error;
    expect(err.code).toBe("invalid_request");
    expect(err.message).toMatch(message);
  }

  test("a bad function name says what a name may be", async () => {
    await expect400(await put("Bad.Name", ""), /a-z, 0-9/);
    await expect400(await fetch(`${s.url}/v1/functions/${"x".repeat(64)}`), /a-z, 0-9/);
  });

  for (const [env, why] of [["A-B=1", "key with -"], ["A%20B=1", "key with a space"], ["=1", "empty key"], ["1A=x", "leading digit"], ["A%00B=1", "NUL in key"], ["A=x%00y", "NUL in value"]] as const) {
    test(`env ${why} is refused`, async () => {
      await expect400(await put("envy", `env=${env}`), /env/);
    });
  }

  for (const [contentType, why] of [["text/plain%0D%0AX-Evil: 1", "CR/LF"], ["t%C3%ABxt/plain", "non-ASCII"], ["text", "no subtype"], ["text/plain;%0D%0A charset=x", "folded parameter"]] as const) {
    test(`contentType with ${why} is refused at deploy`, async () => {
      await expect400(await put("typed", `contentType=${contentType}`), /contentType/);
    });
  }

  test("multipart with a missing or wrong boundary is a 400, not a 500", async () => {
    await expect400(await put("multi", "", "--x\r\nnot a form\r\n", { "content-type": "multipart/form-data" }), /multipart/);
    await expect400(await put("multi", "", "--x\r\nnot a form\r\n", { "content-type": "multipart/form-data; boundary=zzz" }), /multipart/);
  });

  test("a JSON config with a bad env key or content type is refused", async () => {
    for (const config of [{ env: { "A=B": "1" } }, { contentType: "text/html\r\nSet-Cookie: a=b" }]) {
      const form = new FormData();
      form.set("module", new Blob([new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0])]), "m.wasm");
      form.set("config", JSON.stringify(config));
      await expect400(await put("multi", "", form, {}), /env|contentType/);
    }
  });
});

describe("authentication", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    s = await startServer({ args: ["--tokens", "alice-token:alice"] });
  });
  afterAll(async () => {
    await s.stop();
  });

  test("401 says how to authenticate", async () => {
    for (const headers of [{}, { authorization: "Bearer wrong" }] as Record<string, string>[]) {
      const res = await fetch(`${s.url}/v1/functions`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect((await json(res)).error.code).toBe("unauthorized");
    }
  });
});

describe("metrics", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(async () => {
    await s.stop();
  });

  test("calls to names that do not exist add no metric series", async () => {
    const names = Array.from({ length: 50 }, (_, i) => `ghost-${i}-${Date.now()}`);
    for (const name of names) expect((await fetch(`${s.url}/v1/functions/${name}/invoke`, { method: "POST" })).status).toBe(404);
    const text = await (await fetch(`${s.url}/metrics`)).text();
    expect(text).not.toContain("ghost-");
    const unknown = /thaw_calls_total\{tenant="default",function="_unknown",outcome="function_not_found"\} (\d+)/.exec(text);
    expect(Number(unknown?.[1])).toBe(50);
  });
});
