// The OpenAPI document a real `thaw serve` publishes at /openapi/json:
// valid by a real validator (@readme/openapi-parser: the OpenAPI 3.1 schema
// plus the rules a schema cannot say, such as unique operationIds and
// declared path parameters), with every operation's success responses, and
// with security exactly where the server asks for a token -- checked by
// calling every operation without one and with the token it documents.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { validate } from "@readme/openapi-parser";
import { type ServerProcess, startServer } from "./server.ts";

type Security = Record<string, string[]>[];
interface Operation {
  operationId?: string;
  security?: Security;
  responses?: Record<string, unknown>;
}
interface Document {
  openapi: string;
  security?: Security;
  components: { securitySchemes: Record<string, unknown> };
  paths: Record<string, Record<string, Operation>>;
}

const TOKENS: Record<string, string> = { bearer: "alice-token", metricsToken: "scrape-token" };
const PUBLIC = ["GET /healthz", "GET /readyz"];

let server: ServerProcess;
let doc: Document;
let operations: { key: string; method: string; path: string; op: Operation; security: Security }[];

beforeAll(async () => {
  server = await startServer({ args: ["--tokens", "alice-token:alice", "--metrics-token", "scrape-token"] });
  const res = await fetch(`${server.url}/openapi/json`);
  expect(res.status).toBe(200);
  doc = (await res.json()) as Document;
  operations = Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({
      key: `${method.toUpperCase()} ${path}`,
      method: method.toUpperCase(),
      path,
      op,
      security: op.security ?? doc.security ?? [],
    })),
  );
});

afterAll(async () => {
  await server?.stop();
});

/** A concrete URL for a documented path: any function name, job id and sub-path will do. */
const urlOf = (path: string) => `${server.url}${path.replace("{name}", "hello").replace("{id}", "some-job").replace("*", "x")}`;

describe("OpenAPI document", () => {
  test("is valid OpenAPI 3.1, with no warnings", async () => {
    expect(doc.openapi).toMatch(/^3\.1\./);
    const result = await validate(structuredClone(doc) as never);
    expect(result).toMatchObject({ valid: true, warnings: [] });
  });

  test("every operation has its own operationId", () => {
    const ids = operations.map((o) => o.op.operationId);
    expect(ids.every((id) => typeof id === "string" && id.length > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  test("every operation documents a success response", () => {
    for (const { key, op } of operations) {
      const success = Object.keys(op.responses ?? {}).filter((status) => /^2\d\d$/.test(status));
      expect({ key, success: success.length > 0 }).toEqual({ key, success: true });
    }
  });

  test("only the probes are public; /metrics takes its own token, everything else a tenant's; 401 documented where a token is", () => {
    for (const { key, op, security } of operations) {
      const schemes = security.flatMap((s) => Object.keys(s)).sort();
      const expected = PUBLIC.includes(key) ? [] : key === "GET /metrics" ? ["metricsToken"] : ["bearer"];
      expect({ key, schemes }).toEqual({ key, schemes: expected });
      for (const scheme of schemes) expect(doc.components.securitySchemes[scheme]).toBeDefined();
      expect({ key, documents401: "401" in (op.responses ?? {}) }).toEqual({ key, documents401: schemes.length > 0 });
    }
  });

  test("the server agrees: without a token, 401 exactly where the document asks for one; with it, never", async () => {
    for (const { key, method, path, security } of operations) {
      const res = await fetch(urlOf(path), { method });
      await res.arrayBuffer();
      expect({ key, status: res.status === 401 ? 401 : "not 401" }).toEqual({ key, status: security.length > 0 ? 401 : "not 401" });
      if (res.status === 401) expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      for (const scheme of security.flatMap((s) => Object.keys(s))) {
        const authed = await fetch(urlOf(path), { method, headers: { authorization: `Bearer ${TOKENS[scheme]}` } });
        await authed.arrayBuffer();
        expect({ key, scheme, status: authed.status === 401 ? 401 : "not 401" }).toEqual({ key, scheme, status: "not 401" });
      }
    }
  });
});

describe("documents the call logs, the OpenFaaS routes and request ids", () => {
  test("GET /v1/functions/{name}/logs: since, limit and the entry fields", () => {
    const op = doc.paths["/v1/functions/{name}/logs"]?.get as Operation & { parameters?: { name: string }[] };
    expect(op).toBeDefined();
    expect(op.parameters?.map((p) => p.name)).toEqual(expect.arrayContaining(["name", "since", "limit"]));
    const schema = JSON.stringify(op.responses?.["200"]);
    for (const field of ["seq", "time", "callId", "requestId", "outcome", "exitCode", "stderr", "truncated", "next"]) expect(schema).toContain(`"${field}"`);
  });

  test("/function/{name} (GET and POST, with a sub-path) and /async-function/{name} with X-Callback-Url", () => {
    for (const path of ["/function/{name}", "/function/{name}/*"]) expect(Object.keys(doc.paths[path] ?? {}).sort()).toEqual(["get", "post"]);
    const async = doc.paths["/async-function/{name}"]?.post as Operation & { parameters?: { name: string; in: string }[] };
    expect(async.parameters?.map((p) => `${p.in} ${p.name.toLowerCase()}`)).toContain("header x-callback-url");
    expect(Object.keys(async.responses ?? {})).toEqual(expect.arrayContaining(["202", "400", "401", "404"]));
  });

  test("POST /v1/functions/{name}/jobs documents its query parameters", () => {
    const op = doc.paths["/v1/functions/{name}/jobs"]?.post as Operation & { parameters?: { name: string; in: string }[] };
    expect(op.parameters?.filter((p) => p.in === "query").map((p) => p.name).sort()).toEqual(["attempts", "callback", "retryFunctionErrors"]);
  });

  test("X-Request-Id and CORS are described, and the call responses list X-Request-Id", () => {
    const info = (doc as unknown as { info: { description: string } }).info.description;
    expect(info).toContain("X-Request-Id");
    expect(info).toContain("--cors-origins");
    const invoke = doc.paths["/v1/functions/{name}/invoke"]?.post as Operation;
    expect(JSON.stringify(invoke.responses?.["200"])).toContain("X-Request-Id");
  });
});
