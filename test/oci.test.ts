// OCI registries, through the real parts: `thaw push` (the CLI) and
// PUT /v1/functions/{name} with {"oci": ...} (a real server) against
// Debian's docker-registry (distribution v2) on loopback, with and without
// htpasswd auth; then the hostile cases against a registry written here to
// misbehave (huge layers, lying digests, endless or trickling bodies,
// redirects inside, token realms inside, not-JSON manifests), with the
// server's address policy allowing only 127.0.0.1.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createPrivateKey, createSign, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server, Subprocess } from "bun";
import { pull } from "../src/oci/client.ts";
import { OciError } from "../src/oci/errors.ts";
import { RegistryPolicy } from "../src/oci/policy.ts";
import { parseReference } from "../src/oci/reference.ts";
import { ROOT, wasmPath } from "./helpers.ts";
import { type ServerProcess, startServer } from "./server.ts";

const sha256 = (b: Uint8Array | string) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;
const ECHO = new Uint8Array(readFileSync(wasmPath("echo")));
const MAX_MODULE = 1 << 20;

function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

interface Registry {
  host: string;
  stop(): Promise<void>;
}

/**
 * Debian's docker-registry on a free loopback port, its storage in a temp
 * dir; htpasswd auth if given users, token auth if given a token service.
 */
async function startRegistry(opts: { users?: Record<string, string>; token?: TokenService } = {}): Promise<Registry> {
  const dir = mkdtempSync(join(tmpdir(), "thaw-registry-"));
  const port = freePort();
  let auth = "";
  const users = opts.users;
  if (opts.token)
    auth = `auth:\n  token:\n    realm: ${opts.token.realm}\n    service: ${TOKEN_SERVICE}\n    issuer: ${TOKEN_ISSUER}\n    rootcertbundle: ${opts.token.certPath}\n`;
  if (users) {
    const lines = await Promise.all(Object.entries(users).map(async ([u, p]) => `${u}:${await Bun.password.hash(p, { algorithm: "bcrypt", cost: 4 })}`));
    writeFileSync(join(dir, "htpasswd"), `${lines.join("\n")}\n`);
    auth = `auth:\n  htpasswd:\n    realm: thaw-test\n    path: ${join(dir, "htpasswd")}\n`;
  }
  writeFileSync(
    join(dir, "config.yml"),
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "data")}\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: thaw-test-secret\n${auth}`,
  );
  let proc: Subprocess;
  try {
    // Its log has a line for every 404, which these tests cause on purpose.
    proc = Bun.spawn(["docker-registry", "serve", join(dir, "config.yml")], { stdout: "ignore", stderr: "ignore" });
  } catch (e) {
    throw new Error(`docker-registry is not installed (Debian package docker-registry; scripts/test.sh installs it): ${e}`);
  }
  for (let i = 0; i < 200; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined);
    if (res && (res.status === 200 || res.status === 401)) return { host: `127.0.0.1:${port}`, stop: async () => void (proc.kill(), await proc.exited) };
    await Bun.sleep(25);
  }
  proc.kill();
  throw new Error("docker-registry did not start");
}

const TOKEN_SERVICE = "thaw-test-registry";
const TOKEN_ISSUER = "thaw-test-issuer";

interface TokenService {
  realm: string;
  certPath: string;
  /** A token for `scope` ("repository:NAME:pull,push"), as the service gives it. */
  issue(scope: string): string;
  stop(): void;
}

/**
 * The token service a registry with token auth sends clients to (Docker's
 * token protocol): checks Basic credentials, answers a JWT signed with a
 * fresh self-signed certificate the registry trusts (x5c header). The
 * registry itself verifies every token.
 */
function startTokenService(users: Record<string, string>): TokenService {
  const dir = mkdtempSync(join(tmpdir(), "thaw-token-"));
  const key = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certPath, "-days", "1", "-subj", "/CN=thaw-test-token"], { stderr: "pipe" });
  if (gen.exitCode !== 0) throw new Error(`openssl could not make the token certificate: ${gen.stderr}`);
  const privateKey = createPrivateKey(readFileSync(key));
  const der = new X509Certificate(readFileSync(certPath)).raw.toString("base64");
  const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const issue = (scope: string) => {
    const [type, name, actions] = scope.split(":");
    const now = Math.floor(Date.now() / 1000);
    const head = `${b64url({ typ: "JWT", alg: "RS256", x5c: [der] })}.${b64url({
      iss: TOKEN_ISSUER,
      sub: "carol",
      aud: TOKEN_SERVICE,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: crypto.randomUUID(),
      access: type && name && actions ? [{ type, name, actions: actions.split(",") }] : [],
    })}`;
    return `${head}.${createSign("RSA-SHA256").update(head).sign(privateKey).toString("base64url")}`;
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      const basic = /^Basic (.+)$/.exec(req.headers.get("authorization") ?? "")?.[1];
      const [user, pass] = Buffer.from(basic ?? "", "base64").toString().split(":");
      if (!user || users[user] !== pass || url.searchParams.get("service") !== TOKEN_SERVICE) return new Response("no", { status: 401 });
      return Response.json({ token: issue(url.searchParams.get("scope") ?? "") });
    },
  });
  return { realm: `http://127.0.0.1:${server.port}/token`, certPath, issue, stop: () => server.stop(true) };
}

async function thaw(...args: string[]) {
  const proc = Bun.spawn([process.execPath, join(ROOT, "src/cli.ts"), ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, code };
}

function deployOci(s: ServerProcess, name: string, body: unknown, query = "wait=true") {
  return fetch(`${s.url}/v1/functions/${name}?${query}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function errorOf(res: Response): Promise<{ status: number; code: string; reason?: string; message: string }> {
  const body = (await res.json()) as { error: { code: string; reason?: string; message: string } };
  return { status: res.status, ...body.error };
}

async function invokeEcho(s: ServerProcess, name: string) {
  const res = await fetch(`${s.url}/v1/functions/${name}/invoke`, { method: "POST", body: "ping" });
  return { status: res.status, body: await res.text() };
}

/** What oras or another tool would push: its own config type, an `application/wasm` layer, annotations. */
async function pushOrasStyle(host: string, repo: string, tag: string, module: Uint8Array, authorization?: string) {
  const headers: Record<string, string> = authorization ? { authorization } : {};
  const config = new TextEncoder().encode("{}");
  const upload = async (bytes: Uint8Array) => {
    const start = await fetch(`http://${host}/v2/${repo}/blobs/uploads/`, { method: "POST", headers });
    expect(start.status).toBe(202);
    const url = new URL(start.headers.get("location")!, `http://${host}`);
    url.searchParams.set("digest", sha256(bytes));
    const put = await fetch(url, { method: "PUT", headers: { ...headers, "content-type": "application/octet-stream" }, body: bytes });
    expect(put.status).toBe(201);
  };
  await upload(config);
  await upload(module);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    artifactType: "application/vnd.wasm.module.v1+wasm",
    config: { mediaType: "application/vnd.oci.empty.v1+json", digest: sha256(config), size: config.length },
    layers: [{ mediaType: "application/wasm", digest: sha256(module), size: module.length, annotations: { "org.opencontainers.image.title": "echo.wasm" } }],
    annotations: { "org.opencontainers.image.created": "2026-01-01T00:00:00Z" },
  });
  const put = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {
    method: "PUT",
    headers: { ...headers, "content-type": "application/vnd.oci.image.manifest.v1+json" },
    body: manifest,
  });
  expect(put.status).toBe(201);
  return sha256(manifest);
}

let server: ServerProcess;
let registry: Registry;
let authRegistry: Registry;
let tokenRegistry: Registry;
let tokens: TokenService;
const BASIC = `Basic ${Buffer.from("alice:s3cret").toString("base64")}`;
const WRONG = `Basic ${Buffer.from("alice:nope").toString("base64")}`;

beforeAll(async () => {
  tokens = startTokenService({ carol: "pw" });
  [registry, authRegistry, tokenRegistry, server] = await Promise.all([
    startRegistry(),
    startRegistry({ users: { alice: "s3cret" } }),
    startRegistry({ token: tokens }),
    startServer({
      args: ["--registry-allow", "127.0.0.1/32", "--registry-plain-http", "127.0.0.1", "--registry-timeout", "2000", "--max-module", String(MAX_MODULE)],
    }),
  ]);
});

afterAll(async () => {
  await Promise.all([server?.stop(), registry?.stop(), authRegistry?.stop(), tokenRegistry?.stop()]);
  tokens?.stop();
});

describe("against docker-registry", () => {
  test("thaw push, then deploy by tag and by the digest it printed, then call", async () => {
    const pushed = await thaw("push", wasmPath("echo"), `${registry.host}/fns/echo:v1`, "--plain-http");
    expect(pushed.stderr).toContain(`pushed ${registry.host}/fns/echo:v1`);
    expect(pushed.code).toBe(0);
    const byDigest = pushed.stdout.trim();
    expect(byDigest).toMatch(new RegExp(`^${registry.host}/fns/echo@sha256:[0-9a-f]{64}$`));

    // What the registry stored is the Wasm artifact format.
    const manifest = await (await fetch(`http://${registry.host}/v2/fns/echo/manifests/v1`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } })).json() as {
      mediaType: string;
      config: { mediaType: string; digest: string };
      layers: unknown[];
    };
    expect(manifest.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(manifest.config.mediaType).toBe("application/vnd.wasm.config.v0+json");
    expect(manifest.layers).toEqual([{ mediaType: "application/vnd.wasm.content.layer.v1+wasm", digest: sha256(ECHO), size: ECHO.length }]);
    const config = await (await fetch(`http://${registry.host}/v2/fns/echo/blobs/${manifest.config.digest}`)).json();
    expect(config).toMatchObject({ architecture: "wasm", os: "wasip1", layerDigests: [sha256(ECHO)] });

    const res = await deployOci(server, "echo-oci", { oci: `oci://${registry.host}/fns/echo:v1`, config: { env: { A: "1" } } });
    expect(res.status).toBe(201);
    const view = (await res.json()) as { moduleHash?: string; config: { env?: Record<string, string> } };
    expect(view.moduleHash).toBeDefined();
    expect(view.config.env).toEqual({ A: "1" });
    expect(await invokeEcho(server, "echo-oci")).toEqual({ status: 200, body: "ping" });

    const again = await deployOci(server, "echo-digest", { oci: byDigest });
    expect(again.status).toBe(201);
    expect(await invokeEcho(server, "echo-digest")).toEqual({ status: 200, body: "ping" });

    // Pushing the same bytes again skips the blobs the registry has and still succeeds.
    const repush = await thaw("push", wasmPath("echo"), `${registry.host}/fns/echo:v2`, "--plain-http");
    expect(repush.code).toBe(0);
  });

  test("an oras-style artifact (application/wasm layer, empty config) deploys", async () => {
    const digest = await pushOrasStyle(registry.host, "other/tools/echo", "1.0", ECHO);
    const res = await deployOci(server, "echo-oras", { oci: `${registry.host}/other/tools/echo@${digest}` });
    expect(res.status).toBe(201);
    expect(await invokeEcho(server, "echo-oras")).toEqual({ status: 200, body: "ping" });
  });

  test("missing tag or repository: 422 not_found", async () => {
    const e = await errorOf(await deployOci(server, "nope", { oci: `${registry.host}/fns/echo:missing` }));
    expect(e).toMatchObject({ status: 422, code: "oci_pull_failed", reason: "not_found" });
    const d = await errorOf(await deployOci(server, "nope", { oci: `${registry.host}/fns/echo@sha256:${"0".repeat(64)}` }));
    expect(d).toMatchObject({ status: 422, code: "oci_pull_failed", reason: "not_found" });
  });

  test("htpasswd registry: push and deploy with Basic credentials; none or wrong ones are a clear 4xx", async () => {
    const pushed = await thaw("push", wasmPath("echo"), `${authRegistry.host}/private/echo:v1`, "--plain-http", "--auth", BASIC);
    expect(pushed.code).toBe(0);
    const refused = await thaw("push", wasmPath("echo"), `${authRegistry.host}/private/echo:v2`, "--plain-http", "--auth", WRONG);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("refused access");
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);

    const ref = `${authRegistry.host}/private/echo:v1`;
    const ok = await deployOci(server, "echo-private", { oci: ref, auth: BASIC });
    expect(ok.status).toBe(201);
    expect(await invokeEcho(server, "echo-private")).toEqual({ status: 200, body: "ping" });
    for (const auth of [undefined, WRONG, "Bearer not-a-token"]) {
      const e = await errorOf(await deployOci(server, "echo-private2", { oci: ref, ...(auth ? { auth } : {}) }));
      expect(e).toMatchObject({ status: 422, code: "oci_pull_failed", reason: "unauthorized" });
      expect(e.message).toContain("credentials");
      // The credentials are not echoed back.
      expect(JSON.stringify(e)).not.toContain("bm9wZQ");
    }
  });
});

describe("against docker-registry with token auth", () => {
  const CAROL = `Basic ${Buffer.from("carol:pw").toString("base64")}`;

  test("push and deploy through the Bearer challenge with Basic credentials, or with a token given as is", async () => {
    const pushed = await thaw("push", wasmPath("echo"), `${tokenRegistry.host}/team/echo:v1`, "--plain-http", "--auth", CAROL);
    expect(pushed.stderr).toContain("pushed");
    expect(pushed.code).toBe(0);
    const ref = `${tokenRegistry.host}/team/echo:v1`;
    expect((await deployOci(server, "echo-token", { oci: ref, auth: CAROL })).status).toBe(201);
    expect(await invokeEcho(server, "echo-token")).toEqual({ status: 200, body: "ping" });
    const token = tokens.issue("repository:team/echo:pull");
    expect((await deployOci(server, "echo-token2", { oci: ref, auth: `Bearer ${token}` })).status).toBe(201);
  });

  test("no, wrong or out-of-scope credentials: 422 unauthorized", async () => {
    const ref = `${tokenRegistry.host}/team/echo:v1`;
    const wrong = `Basic ${Buffer.from("carol:nope").toString("base64")}`;
    const otherRepo = `Bearer ${tokens.issue("repository:team/other:pull")}`;
    for (const auth of [undefined, wrong, otherRepo, "Bearer forged.jwt.token"]) {
      const e = await errorOf(await deployOci(server, "echo-token3", { oci: ref, ...(auth ? { auth } : {}) }));
      expect({ auth, ...e }).toMatchObject({ auth, status: 422, code: "oci_pull_failed", reason: "unauthorized" });
    }
  });
});

describe("hostile requests", () => {
  test("thaw push refuses what it cannot push, in one line", async () => {
    const notWasm = join(mkdtempSync(join(tmpdir(), "thaw-push-")), "x.wasm");
    writeFileSync(notWasm, "not a module");
    const cases: [string[], number, string][] = [
      [[notWasm, `${registry.host}/fns/x:v1`, "--plain-http"], 1, "not a WebAssembly module"],
      [[wasmPath("echo"), `${registry.host}/fns/x@sha256:${"0".repeat(64)}`], 2, "not a digest"],
      [[wasmPath("echo"), "no-host-here"], 2, "HOST[:PORT]/REPOSITORY"],
      [[wasmPath("echo"), `${registry.host}/fns/x:v1`, "--auth", "token"], 2, "--auth"],
      [[wasmPath("echo"), `${registry.host}/fns/x:v1`], 1, "--plain-http"],
    ];
    for (const [args, code, message] of cases) {
      const r = await thaw("push", ...args);
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code, stdout: "" });
      expect(r.stderr).toContain(message);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });

  test("bodies, references and auth values that are not well-formed: 400", async () => {
    const cases: unknown[] = [
      "{not json",
      "[]",
      { oci: 42 },
      { oci: `${registry.host}/fns/echo:v1`, extra: 1 },
      { oci: `${registry.host}/fns/echo:v1`, config: "x" },
      { oci: `${registry.host}/fns/echo:v1`, config: { memoryMiB: "lots" } },
      { oci: `${registry.host}/fns/echo:v1`, config: { env: { "A=B": "x" } } },
      { oci: `${registry.host}/fns/echo:v1`, auth: "Bearer a\r\nX-Injected: 1" },
      { oci: `${registry.host}/fns/echo:v1`, auth: "Digest abc" },
      { oci: "echo:v1" },
      { oci: `${registry.host}/../../etc/passwd:v1` },
      { oci: `${registry.host}/fns/echo:v1?x=1` },
      { oci: `${registry.host}/fns/echo#frag` },
      { oci: `user:pass@${registry.host}/fns/echo:v1` },
      { oci: `${registry.host}/Fns/Echo:v1` },
      { oci: `${registry.host}/fns/echo@sha256:abc` },
      { oci: `${registry.host}:99999/fns/echo:v1` },
      { oci: "1.2.3.4.5/fns/echo:v1" },
      { oci: "999.1.1.1/fns/echo:v1" },
      { oci: "[1:2]/fns/echo:v1" },
      { oci: "a..b/fns/echo:v1" },
      { oci: `${registry.host}/${"a/".repeat(200)}x:v1` },
    ];
    for (const body of cases) {
      const e = await errorOf(await deployOci(server, "bad", body));
      expect({ body, status: e.status, code: e.code }).toEqual({ body, status: 400, code: "invalid_request" });
    }
    const huge = await deployOci(server, "bad", { oci: `${registry.host}/fns/echo:v1`, config: { env: { A: "x".repeat(100_000) } } });
    expect(huge.status).toBe(413);
  });

  test("registries at refused addresses: 422 address_refused, nothing connected", async () => {
    let hits = 0;
    const inside = Bun.serve({ hostname: "127.0.0.2", port: 0, fetch: () => (hits++, new Response("{}")) });
    try {
      for (const host of [`127.0.0.2:${inside.port}`, `0177.0.0.2:${inside.port}`, `localhost:${inside.port}`, `[::1]:${inside.port}`, "169.254.169.254", "10.0.0.1", "[::ffff:127.0.0.2]", "metadata.google.internal"]) {
        const e = await errorOf(await deployOci(server, "inside", { oci: `${host}/fns/echo:v1` }));
        expect({ host, ...e }).toMatchObject({ host, status: 422, code: "oci_pull_failed", reason: "address_refused" });
      }
      expect(hits).toBe(0);
    } finally {
      inside.stop(true);
    }
  });

  describe("a misbehaving registry", () => {
    let evil: Server<undefined>;
    let inside: Server<undefined>;
    let insideHits = 0;
    let blobBytesServed = 0;
    const wasm = ECHO;
    const manifest = (layers: unknown[], extra: Record<string, unknown> = {}) =>
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.wasm.config.v0+json", digest: sha256("{}"), size: 2 },
        layers,
        ...extra,
      });
    const layer = (over: Record<string, unknown> = {}) => ({ mediaType: "application/vnd.wasm.content.layer.v1+wasm", digest: sha256(wasm), size: wasm.length, ...over });
    const manifests: Record<string, string> = {};

    beforeAll(() => {
      inside = Bun.serve({ hostname: "127.0.0.2", port: 0, fetch: () => (insideHits++, new Response(wasm)) });
      Object.assign(manifests, {
        huge: manifest([layer({ size: 10 * 2 ** 30 })]),
        overlimit: manifest([layer({ size: MAX_MODULE + 1 })]),
        liar: manifest([layer()]),
        endless: manifest([layer()]),
        short: manifest([layer()]),
        trickle: manifest([layer()]),
        notjson: "{\"schemaVersion\": 2, \"layers\": [",
        binary: "\u0000\u00ff\u0001",
        image: manifest([{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha256("x"), size: 1 }]),
        index: JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] }),
        two: manifest([layer(), layer()]),
        baddigest: manifest([layer({ digest: "md5:abc" })]),
        redirectmeta: manifest([layer()]),
        redirectinside: manifest([layer()]),
        redirectname: manifest([layer()]),
        redirectloop: manifest([layer()]),
        realminside: manifest([layer()]),
        bearer: manifest([layer()]),
        good: manifest([layer()]),
        docker: manifest([layer()], { mediaType: "application/vnd.docker.distribution.manifest.v2+json" }),
        nomediatype: manifest([layer({ mediaType: "application/wasm" })], { mediaType: undefined }),
      });
      evil = Bun.serve({
        hostname: "127.0.0.1",
        port: 0,
        idleTimeout: 30,
        async fetch(req) {
          const url = new URL(req.url);
          const m = /^\/v2\/(\w+)\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
          const self = `http://127.0.0.1:${evil.port}`;
          if (url.pathname === "/token") {
            return req.headers.get("authorization") === `Basic ${Buffer.from("bob:pw").toString("base64")}`
              ? Response.json({ token: "tok-123" })
              : new Response("no", { status: 401 });
          }
          if (!m) return new Response("?", { status: 404 });
          const [, repo, kind, ref] = m as unknown as [string, string, string, string];
          if (repo === "realminside" || repo === "bearer") {
            if (req.headers.get("authorization") !== "Bearer tok-123") {
              const realm = repo === "bearer" ? `${self}/token` : "http://169.254.169.254/token";
              return new Response("auth", { status: 401, headers: { "www-authenticate": `Bearer realm="${realm}",service="evil",scope="repository:${repo}:pull"` } });
            }
          }
          if (repo === "slow") {
            await Bun.sleep(10_000);
            return new Response("late");
          }
          if (kind === "manifests") {
            const body = manifests[repo];
            if (body === undefined) return new Response("?", { status: 404 });
            return new Response(body, { headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
          }
          if (ref !== sha256(wasm)) return new Response("?", { status: 404 });
          switch (repo) {
            case "liar": {
              const other = new Uint8Array(wasm);
              other[100] = other[100]! ^ 1;
              return new Response(other);
            }
            case "endless":
              return new Response(
                new ReadableStream({
                  pull(c) {
                    blobBytesServed += 65536;
                    c.enqueue(new Uint8Array(65536));
                  },
                }),
              );
            case "short":
              return new Response(wasm.subarray(0, 100));
            case "trickle":
              return new Response(
                new ReadableStream({
                  async pull(c) {
                    await Bun.sleep(200);
                    c.enqueue(new Uint8Array(1));
                  },
                }),
              );
            case "redirectmeta":
              return Response.redirect("http://169.254.169.254/latest/meta-data/", 302);
            case "redirectinside":
              return Response.redirect(`http://127.0.0.2:${inside.port}/blob`, 307);
            case "redirectname":
              return Response.redirect(`http://localhost:${inside.port}/blob`, 302);
            case "redirectloop":
              return Response.redirect(`${self}${url.pathname}`, 302);
            case "good":
              return Response.redirect(`${self}/v2/bearer/blobs/${ref}`, 302);
            default:
              return new Response(wasm);
          }
        },
      });
    });

    afterAll(() => {
      evil?.stop(true);
      inside?.stop(true);
    });

    const pullError = async (repo: string, extra: Record<string, unknown> = {}) => {
      const started = performance.now();
      const e = await errorOf(await deployOci(server, "evil", { oci: `127.0.0.1:${evil.port}/${repo}:t`, ...extra }));
      return { ...e, ms: performance.now() - started };
    };

    test("a Docker v2 manifest, and one with no mediaType field, deploy like OCI ones", async () => {
      for (const repo of ["docker", "nomediatype"]) {
        const res = await deployOci(server, `evil-${repo}`, { oci: `127.0.0.1:${evil.port}/${repo}:t` });
        expect({ repo, status: res.status }).toEqual({ repo, status: 201 });
      }
    });

    test("a layer declared over the module limit: 413 before any blob byte is fetched", async () => {
      for (const repo of ["huge", "overlimit"]) {
        const e = await pullError(repo);
        expect(e).toMatchObject({ status: 413, code: "payload_too_large", reason: "too_large" });
      }
    });

    test("blob bytes that do not match the manifest: 422 digest_mismatch, reading stops at the declared size", async () => {
      for (const repo of ["liar", "endless", "short"]) {
        const e = await pullError(repo);
        expect({ repo, ...e }).toMatchObject({ repo, status: 422, code: "oci_pull_failed", reason: "digest_mismatch" });
      }
      // The endless blob's connection was closed: it is no longer being read (what was served
      // beyond the declared size sat in socket buffers, not in thaw).
      const served = blobBytesServed;
      await Bun.sleep(300);
      expect(blobBytesServed).toBe(served);
      expect(served).toBeLessThan(MAX_MODULE * 16);
    });

    test("a manifest digest that does not match the reference's: 422 digest_mismatch", async () => {
      const e = await errorOf(await deployOci(server, "evil", { oci: `127.0.0.1:${evil.port}/good@sha256:${"a".repeat(64)}` }));
      expect(e).toMatchObject({ status: 422, code: "oci_pull_failed", reason: "digest_mismatch" });
    });

    test("manifests that are not JSON, not Wasm, an index, two modules: 422 with the reason", async () => {
      const expected: Record<string, string> = {
        notjson: "bad_manifest",
        binary: "bad_manifest",
        baddigest: "bad_manifest",
        image: "not_wasm_artifact",
        index: "not_wasm_artifact",
        two: "not_wasm_artifact",
      };
      for (const [repo, reason] of Object.entries(expected)) {
        const e = await pullError(repo);
        expect({ repo, ...e }).toMatchObject({ repo, status: 422, code: "oci_pull_failed", reason });
      }
      expect((await pullError("image")).message).toContain("application/vnd.oci.image.layer.v1.tar+gzip");
    });

    test("redirects to the metadata service, loopback by address or by name, or in a loop: refused, nothing reached", async () => {
      for (const [repo, reason] of [
        ["redirectmeta", "address_refused"],
        ["redirectinside", "address_refused"],
        ["redirectname", "address_refused"],
        ["redirectloop", "registry_error"],
      ] as const) {
        const e = await pullError(repo);
        expect({ repo, ...e }).toMatchObject({ repo, status: 422, code: "oci_pull_failed", reason });
      }
      expect(insideHits).toBe(0);
    });

    test("a token realm inside is refused; a realm on an allowed host gives a token for the retry", async () => {
      expect(await pullError("realminside")).toMatchObject({ status: 422, reason: "address_refused" });
      expect(await pullError("bearer")).toMatchObject({ status: 422, reason: "unauthorized" });
      const ok = await deployOci(server, "evil-bearer", { oci: `127.0.0.1:${evil.port}/bearer:t`, auth: `Basic ${Buffer.from("bob:pw").toString("base64")}` });
      expect(ok.status).toBe(201);
      expect(await invokeEcho(server, "evil-bearer")).toEqual({ status: 200, body: "ping" });
      // A redirect within the registry keeps the token (here the blob is behind the bearer check).
      const redirected = await deployOci(server, "evil-bearer2", { oci: `127.0.0.1:${evil.port}/good:t`, auth: `Basic ${Buffer.from("bob:pw").toString("base64")}` });
      expect(redirected.status).toBe(201);
    });

    test("a registry that never answers, or trickles its blob: 422 timeout within --registry-timeout", async () => {
      for (const repo of ["slow", "trickle"]) {
        const e = await pullError(repo);
        expect({ repo, status: e.status, reason: e.reason }).toEqual({ repo, status: 422, reason: "timeout" });
        expect(e.ms).toBeLessThan(2000 + 1500);
      }
      // The server is still fine.
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    });
  });
});

describe("names and DNS (the pull in process, with a resolver standing in for DNS)", () => {
  test("each hop is resolved again and connected to the vetted address: a name rebound inside between manifest and blob is refused", async () => {
    const seen: string[] = [];
    const evil = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        seen.push(req.headers.get("host") ?? "");
        const url = new URL(req.url);
        if (url.pathname.includes("/manifests/"))
          return new Response(
            JSON.stringify({
              schemaVersion: 2,
              mediaType: "application/vnd.oci.image.manifest.v1+json",
              config: { mediaType: "application/vnd.wasm.config.v0+json", digest: sha256("{}"), size: 2 },
              layers: [{ mediaType: "application/wasm", digest: sha256(ECHO), size: ECHO.length }],
            }),
          );
        return new Response(ECHO);
      },
    });
    try {
      const answers = [["127.0.0.1"], ["10.1.2.3"]];
      const resolved: string[] = [];
      const policy = new RegistryPolicy({ allow: ["127.0.0.1/32"], plainHttp: ["registry.test"], timeoutMs: 2000 }, async (host) => {
        resolved.push(host);
        return answers.shift() ?? ["10.1.2.3"];
      });
      const ref = parseReference(`registry.test:${evil.port}/fns/echo:v1`);
      const options = { dial: policy.dial, plainHttp: policy.plainHttp, timeoutMs: 2000 };
      const failure = await pull(ref, MAX_MODULE, options).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(OciError);
      expect((failure as OciError).reason).toBe("address_refused");
      // The manifest came from the pinned address under the name; the blob was never asked for.
      expect(seen).toEqual([`registry.test:${evil.port}`]);
      expect(resolved).toEqual(["registry.test", "registry.test"]);

      // Answers that stay inside the allowed range: the whole pull works by name.
      answers.push(["127.0.0.1"], ["127.0.0.1"]);
      const { module } = await pull(ref, MAX_MODULE, options);
      expect(sha256(module)).toBe(sha256(ECHO));
      // Not listed for plain http: the pull speaks https, which this plain-http registry cannot answer.
      const strict = new RegistryPolicy({ allow: ["127.0.0.1/32"], plainHttp: [], timeoutMs: 2000 }, async () => ["127.0.0.1"]);
      const https = await pull(ref, MAX_MODULE, { ...options, dial: strict.dial, plainHttp: strict.plainHttp }).catch((e: unknown) => e);
      expect((https as OciError).reason).toBe("unreachable");
    } finally {
      evil.stop(true);
    }
  });
});

