// Job callbacks: where they may go (the address classifier and the URL
// policy, as tables), and through real `thaw serve` processes with real
// receivers on loopback, what is and is not delivered: refused addresses,
// coarse errors, signatures, delivery outside the job slots, a delivery
// that outlives a kill -9, and one final callback per job across a Redis
// restart.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHmac, timingSafeEqual } from "node:crypto";
import { lookup } from "node:dns/promises";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import type { Server, TCPSocketListener } from "bun";
import { forbiddenReason, parseIP } from "../src/jobs/address.ts";
import { CallbackDispatcher, CALLBACK_DEFAULTS, callbackSettings, type Delivery, ERR_CONNECT, ERR_NOT_ALLOWED } from "../src/jobs/callback.ts";
import { CallbackPolicy, parseAllowList, type Resolver } from "../src/jobs/destination.ts";
import { fixedSecret, tenantKey, verifySignature } from "../src/jobs/secret.ts";
import { ConfigError, parseServerConfig } from "../src/config.ts";
import { Logger } from "../src/log.ts";
import { type RedisServer, startRedis } from "./redis.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";

// biome-ignore lint: response bodies are checked field by field below.
type Json = any;

const quiet = new Logger("silent");

// ---------------------------------------------------------------------------
// The classifier: every address a callback must not reach, and some it may.

describe("address classifier", () => {
  const forbidden: [string, RegExp][] = [
    ["0.0.0.0", /unspecified/],
    ["0.1.2.3", /unspecified/],
    ["10.0.0.1", /private/],
    ["10.255.255.255", /private/],
    ["100.64.0.1", /CGNAT/],
    ["100.127.255.255", /CGNAT/],
    ["100.100.100.200", /CGNAT/], // Alibaba Cloud's metadata service
    ["127.0.0.1", /loopback/],
    ["127.255.255.254", /loopback/],
    ["169.254.169.254", /link-local/], // AWS, GCP, Azure metadata
    ["169.254.0.1", /link-local/],
    ["172.16.0.1", /private/],
    ["172.31.255.255", /private/],
    ["192.0.0.8", /IETF/],
    ["192.0.2.1", /documentation/],
    ["192.88.99.1", /6to4/],
    ["192.168.0.1", /private/],
    ["198.18.0.1", /benchmarking/],
    ["198.19.255.255", /benchmarking/],
    ["198.51.100.7", /documentation/],
    ["203.0.113.9", /documentation/],
    ["224.0.0.1", /multicast/],
    ["239.255.255.250", /multicast/],
    ["240.0.0.1", /reserved/],
    ["255.255.255.255", /broadcast/],
    ["::", /unspecified/],
    ["::1", /loopback/],
    ["0:0:0:0:0:0:0:1", /loopback/],
    ["::ffff:127.0.0.1", /loopback \(embedded in IPv6\)/],
    ["::ffff:7f00:1", /loopback \(embedded/],
    ["::ffff:10.0.0.1", /private \(embedded/],
    ["::ffff:169.254.169.254", /link-local \(embedded/],
    ["::ffff:0.0.0.0", /unspecified \(embedded/],
    ["::127.0.0.1", /IPv4-compatible/],
    ["::7f00:1", /IPv4-compatible/],
    ["::8.8.8.8", /IPv4-compatible/],
    ["::ffff:0:7f00:1", /IPv4-translated/],
    ["64:ff9b::7f00:1", /loopback \(embedded/], // NAT64
    ["64:ff9b::a9fe:a9fe", /link-local \(embedded/],
    ["64:ff9b::192.168.1.1", /private \(embedded/],
    ["64:ff9b:1::a00:1", /local-use NAT64/],
    ["2002:7f00:1::", /loopback \(embedded/], // 6to4
    ["2002:a00:1::1", /private \(embedded/],
    ["2002:a9fe:a9fe::1", /link-local \(embedded/],
    ["100::1", /discard/],
    ["2001::1", /Teredo/],
    ["2001:2::1", /benchmarking/],
    ["2001:db8::1", /documentation/],
    ["3fff::1", /documentation/],
    ["5f00::1", /SRv6/],
    ["fc00::1", /unique-local/],
    ["fd00:ec2::254", /unique-local/], // AWS metadata over IPv6
    ["fe80::1", /link-local/],
    ["febf:ffff::1", /link-local/],
    ["fec0::1", /site-local/],
    ["ff02::1", /multicast/],
    ["ff05::1:3", /multicast/],
    ["4000::1", /not IPv6 global unicast/],
    ["e000::1", /not IPv6 global unicast/],
  ];
  test.each(forbidden)("%s is refused: %p", (address, reason) => {
    const ip = parseIP(address);
    expect(ip).toBeDefined();
    expect(forbiddenReason(ip!)).toMatch(reason);
  });

  const publicAddresses = [
    "1.1.1.1",
    "8.8.8.8",
    "93.184.216.34",
    "9.255.255.255",
    "11.0.0.1",
    "100.63.255.255",
    "100.128.0.1",
    "126.255.255.255",
    "128.0.0.1",
    "169.253.255.255",
    "169.255.0.1",
    "172.15.255.255",
    "172.32.0.1",
    "192.167.255.255",
    "192.169.0.1",
    "198.17.255.255",
    "198.20.0.1",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
  ];
  test.each(publicAddresses)("%s is public", (address) => {
    expect(forbiddenReason(parseIP(address)!)).toBeUndefined();
  });

  test("only well-formed addresses parse; brackets are accepted, zones and odd spellings are not", () => {
    expect(parseIP("[::1]")).toEqual({ family: 6, bytes: new Uint8Array([...Array(15).fill(0), 1]) });
    expect(parseIP("1.2.3.4")?.bytes).toEqual(new Uint8Array([1, 2, 3, 4]));
    for (const bad of ["", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "0x7f.0.0.1", "2130706433", "1.2.3.-1", ":::1", "1::2::3", "12345::1", "fe80::1%eth0", "::ffff:1.2.3", "g::1", "1:2:3:4:5:6:7:8:9", "example.com"])
      expect(parseIP(bad)).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------
// The URL policy at submit: every spelling of an inside address is refused.

/** A resolver from a table; unknown names do not exist, "flaky.test" times out. */
function tableResolver(table: Record<string, string[]>): Resolver {
  return async (host) => {
    if (host === "flaky.test") throw Object.assign(new Error("timeout"), { code: "EAI_AGAIN" });
    const a = table[host];
    if (!a) throw Object.assign(new Error("not found"), { code: "ENOTFOUND" });
    return a;
  };
}

const DNS = {
  "example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
  "internal.test": ["10.0.0.5"],
  "mixed.test": ["93.184.216.34", "127.0.0.1"],
  "v6inside.test": ["fd00::1"],
  "metadata.test": ["169.254.169.254"],
  "hooks.internal": ["192.168.1.1"],
  "a.corp.example": ["192.168.1.2"],
  "corp.example": ["192.168.1.3"],
};

describe("callback URL policy", () => {
  const policy = new CallbackPolicy([], tableResolver(DNS));
  const refused: [string, RegExp][] = [
    ["not a url", /is not an absolute URL/],
    ["/relative/path", /is not an absolute URL/],
    ["ftp://example.com/", /must be http or https, not ftp/],
    ["file:///etc/passwd", /must be http or https, not file/],
    ["gopher://example.com/", /must be http or https/],
    ["javascript:alert(1)", /must be http or https/],
    ["http://user:pass@example.com/", /must not carry credentials/],
    ["http://user@example.com/", /must not carry credentials/],
    ["https://:secret@example.com/", /must not carry credentials/],
    ["http://127.0.0.1/", /127\.0\.0\.1 is a loopback address/],
    ["http://127.0.0.1:8080/hook", /loopback/],
    ["http://2130706433/", /127\.0\.0\.1 is a loopback/],
    ["http://0x7f000001/", /127\.0\.0\.1 is a loopback/],
    ["http://0x7f.1/", /127\.0\.0\.1 is a loopback/],
    ["http://0177.0.0.1/", /127\.0\.0\.1 is a loopback/],
    ["http://0177.0.0.01/", /127\.0\.0\.1 is a loopback/],
    ["http://127.1/", /127\.0\.0\.1 is a loopback/],
    ["http://127.0.0.1./", /127\.0\.0\.1 is a loopback/],
    ["http://%31%32%37.0.0.1/", /127\.0\.0\.1 is a loopback/],
    ["http://127.000.000.001/", /loopback/],
    ["http://[::1]/", /::1 is a loopback/],
    ["http://[0:0:0:0:0:0:0:1]/", /loopback/],
    ["http://[::ffff:127.0.0.1]/", /::ffff:7f00:1 is a loopback \(embedded in IPv6\)/],
    ["http://[::ffff:7f00:1]/", /loopback/],
    ["http://[::127.0.0.1]/", /IPv4-compatible/],
    ["http://[64:ff9b::127.0.0.1]/", /loopback \(embedded/],
    ["http://[2002:7f00:1::1]/", /loopback \(embedded/],
    ["http://0/", /0\.0\.0\.0 is a unspecified/],
    ["http://0.0.0.0:8080/", /unspecified/],
    ["http://[::]/", /unspecified/],
    ["http://169.254.169.254/latest/meta-data/", /link-local/],
    ["http://[::ffff:169.254.169.254]/", /link-local \(embedded/],
    ["http://[fd00:ec2::254]/", /unique-local/],
    ["http://100.100.100.200/", /CGNAT/],
    ["http://10.0.0.1/", /private/],
    ["http://172.16.5.4/", /private/],
    ["http://192.168.0.1:8080/", /private/],
    ["http://[fe80::1]/", /link-local/],
    ["http://[fc00::1]/", /unique-local/],
    ["http://224.0.0.1/", /multicast/],
    ["http://[ff02::1]/", /multicast/],
    ["http://255.255.255.255/", /broadcast/],
    ["http://240.0.0.1/", /reserved/],
    ["http://192.0.2.10/", /documentation/],
    ["http://198.18.0.1/", /benchmarking/],
    ["http://localhost/", /host localhost is this machine/],
    ["http://LOCALHOST:8080/", /host localhost is this machine/],
    ["http://localhost./", /host localhost is this machine/],
    ["http://app.localhost/", /host app\.localhost is this machine/],
    ["http://a.b.localhost./", /is this machine/],
    // Names: every address they resolve to must be public; no answer is refused alike.
    ["http://internal.test/", /host internal\.test must resolve, and only to public addresses/],
    ["http://mixed.test/", /must resolve, and only to public addresses/],
    ["http://v6inside.test/", /must resolve, and only to public addresses/],
    ["http://metadata.test/", /must resolve, and only to public addresses/],
    ["http://nx.test/", /must resolve, and only to public addresses/],
  ];
  test.each(refused)("%s is refused: %p", async (url, message) => {
    const err = await policy.check(url).then(
      () => undefined,
      (e) => e,
    );
    expect(err?.code).toBe("invalid_request");
    expect(err.message).toMatch(/^callback URL /);
    expect(err.message).toMatch(message);
    // What the tenant reads never repeats URL credentials.
    expect(err.message).not.toContain("user:pass");
    expect(err.message).not.toContain(":secret");
  });

  const accepted: [string, string][] = [
    ["http://93.184.216.34/hook", "http://93.184.216.34/hook"],
    ["https://example.com/hook?x=1", "https://example.com/hook?x=1"],
    ["HTTPS://Example.COM:8443/x#fragment", "https://example.com:8443/x"],
    ["http://[2606:4700:4700::1111]:8080/", "http://[2606:4700:4700::1111]:8080/"],
    ["http://[::ffff:8.8.8.8]/", "http://[::ffff:808:808]/"],
    // A DNS hiccup at submit is not the tenant's fault: checked again at delivery.
    ["http://flaky.test/", "http://flaky.test/"],
  ];
  test.each(accepted)("%s is accepted as %s", async (url, stored) => {
    expect(await policy.check(url)).toBe(stored);
  });

  test("the operator's allow list: CIDR ranges, addresses, host names and *.subdomains", async () => {
    const allowing = new CallbackPolicy(["127.0.0.1", "10.0.0.0/8", "fd00::/8", "hooks.internal", "*.corp.example"], tableResolver(DNS));
    for (const url of ["http://127.0.0.1:9/", "http://2130706433:9/", "http://10.2.3.4/", "http://internal.test/", "http://[fd00::5]/", "http://v6inside.test/", "http://hooks.internal/", "http://a.corp.example/"])
      expect(await allowing.check(url)).toBe(new URL(url).toString());
    for (const url of ["http://127.0.0.2/", "http://[::1]/", "http://localhost/", "http://corp.example/", "http://metadata.test/", "http://192.168.0.1/", "http://u:p@hooks.internal/"])
      expect(await allowing.check(url).then(() => "accepted", (e) => e.code)).toBe("invalid_request");
  });

  test("a bad allow-list entry stops the server at start with a ConfigError", () => {
    for (const bad of ["300.1.1.1", "10.0.0.0/33", "http://x", "a b", "::1/129", "-bad.example"])
      expect(() => parseAllowList([bad])).toThrow(/callback-allow/);
    expect(() => callbackSettings(parseServerConfig(["--callback-allow", "127.0.0.1,nope/12"], {}))).toThrow(ConfigError);
    expect(() => callbackSettings(parseServerConfig(["--callback-secret", "short"], {}))).toThrow(ConfigError);
    expect(callbackSettings(parseServerConfig(["--callback-allow", " 127.0.0.1 , *.corp.example "], { THAW_CALLBACK_CONCURRENCY: "3" }))).toMatchObject({
      allow: ["127.0.0.1", "*.corp.example"],
      concurrency: 3,
      tenantConcurrency: 2,
      timeoutMs: 5000,
      attempts: 3,
    });
  });
});

// ---------------------------------------------------------------------------
// One delivery attempt, against a receiver on loopback.

interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
}

function receiver(answer: (req: Request, path: string) => Response | Promise<Response> = () => new Response("ok")) {
  const received: Received[] = [];
  const server: Server<undefined> = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      received.push({ path, headers: Object.fromEntries(req.headers), body: await req.text() });
      return answer(req, path);
    },
  });
  return { server, received, port: server.port!, url: (path = "/hook") => `http://127.0.0.1:${server.port}${path}` };
}

/** A TCP port that accepts connections and never answers. */
function silentListener(): TCPSocketListener {
  return Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
}

function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

const SECRET = "0123456789abcdef0123456789abcdef";

function dispatcher(allow: string[], resolve: Resolver, settings: Partial<typeof CALLBACK_DEFAULTS> = {}) {
  return new CallbackDispatcher({ ...CALLBACK_DEFAULTS, allow, timeoutMs: 500, ...settings }, fixedSecret(SECRET), quiet, resolve);
}

const delivery = (url: string, over: Partial<Delivery> = {}): Delivery => ({
  jobId: "job-1",
  tenant: "alpha",
  url,
  key: "job-1:1",
  status: "succeeded",
  body: JSON.stringify({ id: "job-1", status: "succeeded" }),
  ...over,
});

describe("a delivery attempt", () => {
  test("connects to the vetted address and sends the original Host, signed", async () => {
    const r = receiver();
    try {
      const d = dispatcher(["127.0.0.0/8"], tableResolver({ "pinned.test": ["127.0.0.1"] }));
      const sent = delivery(`http://pinned.test:${r.port}/hook?x=1`);
      expect(await d.deliverOnce(sent, 1)).toBe("delivered");
      expect(r.received).toHaveLength(1);
      const got = r.received[0]!;
      expect(got.path).toBe("/hook");
      expect(got.headers.host).toBe(`pinned.test:${r.port}`);
      expect(got.headers).toMatchObject({
        "content-type": "application/json",
        "x-thaw-job-id": "job-1",
        "x-thaw-job-status": "succeeded",
        "x-thaw-delivery-attempt": "1",
        "idempotency-key": "job-1:1",
      });
      expect(got.body).toBe(sent.body);
      expect(verifySignature(tenantKey(SECRET, "alpha"), got.headers["x-thaw-signature"]!, got.body)).toBe(true);
      expect(verifySignature(tenantKey(SECRET, "beta"), got.headers["x-thaw-signature"]!, got.body)).toBe(false);
      expect(verifySignature(tenantKey(SECRET, "alpha"), got.headers["x-thaw-signature"]!, `${got.body} `)).toBe(false);
    } finally {
      r.server.stop(true);
    }
  });

  test("a name rebound to an inside address after the submit check is not connected to", async () => {
    const r = receiver();
    try {
      let lookups = 0;
      // Public when the job is submitted, loopback when the callback goes out.
      const rebinding: Resolver = async () => (lookups++ === 0 ? ["93.184.216.34"] : ["127.0.0.1"]);
      const d = dispatcher([], rebinding);
      const url = `http://rebind.test:${r.port}/hook`;
      expect(await d.policy.check(url)).toBe(url);
      expect(await d.deliverOnce(delivery(url), 1)).toEqual({ error: ERR_NOT_ALLOWED, retry: false });
      // One inside address among public ones is enough to refuse.
      const mixed = dispatcher([], async () => ["93.184.216.34", "127.0.0.1"]);
      expect(await mixed.deliverOnce(delivery(url), 1)).toEqual({ error: ERR_NOT_ALLOWED, retry: false });
      // And an address literal is checked again too (a payload another service put in Redis).
      expect(await mixed.deliverOnce(delivery(r.url()), 1)).toEqual({ error: ERR_NOT_ALLOWED, retry: false });
      expect(await mixed.deliverOnce(delivery(`http://u:p@127.0.0.1:${r.port}/`), 1)).toEqual({ error: ERR_NOT_ALLOWED, retry: false });
      await Bun.sleep(50);
      expect(r.received).toHaveLength(0);
    } finally {
      r.server.stop(true);
    }
  });

  test("the next address only when one cannot be reached at all", async () => {
    const r = receiver();
    try {
      // 127.0.0.2 has nothing listening on the receiver's port.
      const d = dispatcher(["127.0.0.0/8"], async () => ["127.0.0.2", "127.0.0.1"]);
      expect(await d.deliverOnce(delivery(`http://two.test:${r.port}/`), 1)).toBe("delivered");
      expect(r.received).toHaveLength(1);
    } finally {
      r.server.stop(true);
    }
  });

  test("errors are coarse: a closed port, a silent one and no DNS answer all read 'could not connect'", async () => {
    const silent = silentListener();
    const statuses = receiver((_req, path) => (path === "/moved" ? Response.redirect("/elsewhere", 302) : new Response("no", { status: 503 })));
    try {
      const d = dispatcher(["127.0.0.1"], tableResolver({}));
      expect(await d.deliverOnce(delivery(`http://127.0.0.1:${freePort()}/`), 1)).toEqual({ error: ERR_CONNECT, retry: true });
      expect(await d.deliverOnce(delivery(`http://127.0.0.1:${silent.port}/`), 1)).toEqual({ error: ERR_CONNECT, retry: true });
      expect(await d.deliverOnce(delivery("http://nx.test/"), 1)).toEqual({ error: ERR_CONNECT, retry: true });
      expect(await d.deliverOnce(delivery(statuses.url()), 1)).toEqual({ error: "callback delivery failed: HTTP 503", retry: true });
      // Redirects are not followed.
      expect(await d.deliverOnce(delivery(statuses.url("/moved")), 1)).toEqual({ error: "callback delivery failed: HTTP 302", retry: true });
      expect(statuses.received.map((r) => r.path)).toEqual(["/hook", "/moved"]);
    } finally {
      silent.stop(true);
      statuses.server.stop(true);
    }
  });
});

// ---------------------------------------------------------------------------
// Through real servers.

const ALPHA = { authorization: "Bearer alpha-token" };
const BETA = { authorization: "Bearer beta-token" };
const TOKENS = "alpha-token:alpha,beta-token:beta";

async function submit(s: ServerProcess, fn: string, body: string, headers: Record<string, string>, callback?: string): Promise<Json> {
  const q = callback ? `?callback=${encodeURIComponent(callback)}` : "";
  const res = await fetch(`${s.url}/v1/functions/${fn}/jobs${q}`, { method: "POST", body, headers });
  const json: Json = await res.json();
  if (res.status !== 202) throw new Error(`submit: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const getJob = async (s: ServerProcess, id: string, headers: Record<string, string> = {}): Promise<Json> =>
  (await fetch(`${s.url}/v1/jobs/${id}`, { headers })).json();

/** Poll a job until `done` holds for it. */
async function until(s: ServerProcess, id: string, done: (j: Json) => boolean, headers: Record<string, string> = {}, timeoutMs = 30_000): Promise<Json> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const j = await getJob(s, id, headers);
    if (done(j)) return j;
    if (Date.now() > deadline) throw new Error(`job ${id}: ${JSON.stringify(j)}`);
    await Bun.sleep(20);
  }
}

const settled = (j: Json) => j.callback && j.callback.state !== "pending";

/** README, "Callbacks": how a receiver verifies X-Thaw-Signature. */
function readmeVerify(secret: string, header: string, rawBody: string, toleranceSeconds = 300) {
  const { t, v1 } = Object.fromEntries(header.split(",").map((kv) => kv.split("=")));
  const expected = createHmac("sha256", secret).update(`${t}.${rawBody}`).digest("hex");
  return Math.abs(Date.now() / 1000 - Number(t)) <= toleranceSeconds && v1?.length === 64 && timingSafeEqual(Buffer.from(v1), Buffer.from(expected));
}

async function deploy(s: ServerProcess, name: string, module: string, headers: Record<string, string> = {}) {
  const res = await putModule(s, name, module, "wait=true", headers);
  expect(res.status).toBe(201);
}

describe("callbacks through a server that allows none inside", () => {
  let s: ServerProcess;
  const r = receiver();
  beforeAll(async () => {
    s = await startServer();
    await deploy(s, "wordcount", "wordcount");
  });
  afterAll(async () => {
    await s.stop();
    r.server.stop(true);
  });

  test("every spelling of an inside address is refused at submit, and nothing reaches it", async () => {
    const p = r.port;
    const urls = [
      `http://127.0.0.1:${p}/hook`,
      `http://2130706433:${p}/hook`,
      `http://0x7f000001:${p}/hook`,
      `http://0177.0.0.1:${p}/hook`,
      `http://127.1:${p}/hook`,
      `http://127.0.0.1.:${p}/hook`,
      `http://[::ffff:127.0.0.1]:${p}/hook`,
      `http://[::1]:${p}/hook`,
      `http://[::]:${p}/hook`,
      `http://0.0.0.0:${p}/hook`,
      `http://localhost:${p}/hook`,
      `http://hooks.localhost:${p}/hook`,
      `http://user:pass@127.0.0.1:${p}/hook`,
      "http://user:pass@example.com/hook",
      "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
      "http://[fd00:ec2::254]/latest/meta-data/",
      "http://10.0.0.1/",
      "http://100.64.0.1/",
      "http://[fe80::1]/",
      "ftp://example.com/",
    ];
    // The machine's own name resolves (through /etc/hosts) to an address of the machine.
    const own = await lookup(hostname(), { all: true }).catch(() => []);
    if (own.length > 0 && own.some((a) => forbiddenReason(parseIP(a.address)!))) urls.push(`http://${hostname()}:${p}/hook`);
    for (const url of urls) {
      const res = await fetch(`${s.url}/v1/functions/wordcount/jobs?callback=${encodeURIComponent(url)}`, { method: "POST", body: "x" });
      const body: Json = await res.json();
      expect({ url, status: res.status, code: body.error?.code }).toEqual({ url, status: 400, code: "invalid_request" });
      expect(body.error.message).toMatch(/^callback URL /);
      expect(body.error.message).not.toContain("pass@");
    }
    await Bun.sleep(300);
    expect(r.received).toHaveLength(0);
  });
});

describe("callbacks through a server that allows its loopback receivers", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    s = await startServer({
      env: {
        THAW_TOKENS: TOKENS,
        THAW_CALLBACK_ALLOW: "127.0.0.1",
        THAW_CALLBACK_TIMEOUT: "500",
        THAW_CALLBACK_BACKOFF: "20",
      },
    });
    await Promise.all([deploy(s, "wordcount", "wordcount", ALPHA), deploy(s, "wordcount", "wordcount", BETA)]);
  });
  afterAll(async () => {
    await s.stop();
  });

  test("a callback is signed with the tenant's secret and says which job, outcome and attempt it is", async () => {
    const r = receiver();
    try {
      const job = await submit(s, "wordcount", "a b a", ALPHA, r.url("/signed"));
      const done = await until(s, job.id, settled, ALPHA);
      expect(done.callback).toEqual({ url: r.url("/signed"), state: "delivered", attempts: 1 });
      expect(r.received).toHaveLength(1);
      const { headers, body } = r.received[0]!;
      expect(headers).toMatchObject({
        host: `127.0.0.1:${r.port}`,
        "content-type": "application/json",
        "x-thaw-job-id": job.id,
        "x-thaw-job-status": "succeeded",
        "x-thaw-delivery-attempt": "1",
        "idempotency-key": `${job.id}:1`,
      });
      const sent: Json = JSON.parse(body);
      expect(sent).toMatchObject({ id: job.id, status: "succeeded", tenant: "alpha", attempts: 1, result: { exitCode: 0 } });
      expect(sent.callback).toBeUndefined();
      expect(JSON.parse(Buffer.from(sent.body, "base64").toString())).toMatchObject({ words: 3 });

      const secretRes = await fetch(`${s.url}/v1/callback-secret`, { headers: ALPHA });
      expect(secretRes.status).toBe(200);
      const { secret, tenant }: Json = await secretRes.json();
      expect(tenant).toBe("alpha");
      expect(secret).toMatch(/^[0-9a-f]{64}$/);
      // The receiver's check, as the README gives it.
      expect(headers["x-thaw-signature"]).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      expect(readmeVerify(secret, headers["x-thaw-signature"]!, body)).toBe(true);
      expect(readmeVerify(secret, headers["x-thaw-signature"]!, body.replace("succeeded", "failed"))).toBe(false);
      expect(readmeVerify(secret, headers["x-thaw-signature"]!.replace(/t=\d+/, "t=1000"), body)).toBe(false);

      // Another tenant's secret is another; without a token there is none.
      const beta: Json = await (await fetch(`${s.url}/v1/callback-secret`, { headers: BETA })).json();
      expect(beta.tenant).toBe("beta");
      expect(beta.secret).not.toBe(secret);
      expect(verifySignature(beta.secret, headers["x-thaw-signature"]!, body)).toBe(false);
      expect((await fetch(`${s.url}/v1/callback-secret`)).status).toBe(401);
      // The node's secret is kept in the data directory, readable by its owner only.
      const file = join(s.dataDir, "callback-secret");
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(file, "utf8")).not.toContain(secret);
    } finally {
      r.server.stop(true);
    }
  });

  test("what a job records cannot tell a closed port from a silent one: a tenant cannot scan ports", async () => {
    const silent = silentListener();
    const r = receiver((_req, path) => (path === "/moved" ? Response.redirect("/elsewhere", 302) : new Response("no", { status: 500 })));
    try {
      const cases: [string, string][] = [
        [`http://127.0.0.1:${freePort()}/closed`, "callback delivery failed: could not connect"],
        [`http://127.0.0.1:${silent.port}/silent`, "callback delivery failed: could not connect"],
        [r.url("/fails"), "callback delivery failed: HTTP 500"],
        [r.url("/moved"), "callback delivery failed: HTTP 302"],
      ];
      const jobs = await Promise.all(cases.map(([url]) => submit(s, "wordcount", "x", ALPHA, url)));
      const views = await Promise.all(jobs.map((j) => until(s, j.id, settled, ALPHA)));
      for (let i = 0; i < cases.length; i++) {
        expect(views[i].status).toBe("succeeded");
        expect(views[i].callback).toEqual({ url: cases[i]![0], state: "failed", attempts: 3, lastError: cases[i]![1] });
        expect(JSON.stringify(views[i])).not.toMatch(/ECONN|refused|timed? ?out|reset/i);
      }
      // Three attempts each, the same key and body every time; the redirect was not followed.
      const byPath = (p: string) => r.received.filter((x) => x.path === p);
      expect(byPath("/fails").map((x) => x.headers["x-thaw-delivery-attempt"])).toEqual(["1", "2", "3"]);
      expect(new Set(byPath("/fails").map((x) => `${x.headers["idempotency-key"]} ${x.body}`)).size).toBe(1);
      expect(byPath("/moved")).toHaveLength(3);
      expect(byPath("/elsewhere")).toHaveLength(0);
    } finally {
      silent.stop(true);
      r.server.stop(true);
    }
  });
});

test("a tenant's dead webhook holds no job slot and delays no other tenant's jobs or callbacks", async () => {
  // Two job slots; callbacks time out after 5 s, three attempts each. The
  // dead webhook used to hold both job slots for 15 s.
  const s = await startServer({ env: { THAW_TOKENS: TOKENS, THAW_CALLBACK_ALLOW: "127.0.0.1", THAW_JOB_CONCURRENCY: "2" } });
  let hanging = 0;
  let maxHanging = 0;
  const dead = receiver(() => {
    hanging++;
    maxHanging = Math.max(maxHanging, hanging);
    return new Promise<Response>(() => {});
  });
  const good = receiver();
  try {
    await Promise.all([deploy(s, "wordcount", "wordcount", ALPHA), deploy(s, "wordcount", "wordcount", BETA)]);
    const stuck = await Promise.all(Array.from({ length: 6 }, () => submit(s, "wordcount", "a", ALPHA, dead.url())));
    await Promise.all(stuck.map((j) => until(s, j.id, (v) => v.status === "succeeded", ALPHA)));
    await Bun.sleep(200);

    const started = Date.now();
    const jobs = await Promise.all(Array.from({ length: 6 }, () => submit(s, "wordcount", "b", BETA, good.url())));
    const views = await Promise.all(jobs.map((j) => until(s, j.id, (v) => v.callback?.state === "delivered", BETA)));
    const elapsed = Date.now() - started;
    expect(views.every((v) => v.status === "succeeded")).toBe(true);
    expect(good.received).toHaveLength(6);
    expect(elapsed).toBeLessThan(2500);
    // The dead webhook is still being tried, two at a time (the per-tenant cap).
    expect(maxHanging).toBe(2);
    expect((await getJob(s, stuck[0].id, ALPHA)).callback.state).toBe("pending");
  } finally {
    dead.server.stop(true);
    good.server.stop(true);
    await s.stop();
  }
});

test("a callback still pending when the node is killed is delivered after it restarts, with the same key and body", async () => {
  let answer = 500;
  const r = receiver(() => new Response("", { status: answer }));
  // A long backoff: the second attempt is the restarted node's.
  const env = { THAW_CALLBACK_ALLOW: "127.0.0.1", THAW_CALLBACK_BACKOFF: "600000" };
  const s = await startServer({ env });
  let again: ServerProcess | undefined;
  try {
    await deploy(s, "wordcount", "wordcount");
    const job = await submit(s, "wordcount", "x y", {}, r.url());
    const first = await until(s, job.id, (j) => j.callback?.attempts === 1);
    expect(first.callback).toMatchObject({ state: "pending", lastError: "callback delivery failed: HTTP 500" });
    s.proc.kill("SIGKILL");
    await s.proc.exited;
    answer = 200;
    again = await startServer({ env, dataDir: s.dataDir });
    const done = await until(again, job.id, settled);
    expect(done.callback).toEqual({ url: r.url(), state: "delivered", attempts: 2 });
    expect(r.received.map((x) => x.headers["x-thaw-delivery-attempt"])).toEqual(["1", "2"]);
    expect(new Set(r.received.map((x) => `${x.headers["idempotency-key"]} ${x.body}`)).size).toBe(1);
    expect(again.logs.some((l) => l.msg === "callback deliveries resumed after restart")).toBe(true);
  } finally {
    r.server.stop(true);
    await again?.stop();
  }
});

test("https: the connection goes to the vetted address, with the URL's name as SNI and for the certificate check", async () => {
  if (!Bun.which("openssl")) return console.warn("openssl not found: https callback test skipped");
  const dir = mkdtempSync(join(tmpdir(), "thaw-tls-"));
  const sh = (...args: string[]) => {
    const p = Bun.spawnSync(["openssl", ...args], { cwd: dir, stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(`openssl ${args[0]}: ${p.stderr.toString()}`);
  };
  sh("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=thaw test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign");
  const leaf = (name: string) => {
    sh("req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=DNS:${name}\n`);
    sh("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.pem`, "-days", "1", "-extfile", `${name}.ext`);
    return { cert: readFileSync(join(dir, `${name}.pem`), "utf8"), key: readFileSync(join(dir, `${name}.key`), "utf8") };
  };
  const hosts: string[] = [];
  const tls = (name: string) =>
    Bun.serve({ hostname: "127.0.0.1", port: 0, tls: leaf(name), fetch: (req) => (hosts.push(req.headers.get("host")!), new Response("ok")) });
  const right = tls("localhost");
  const wrong = tls("other.test");
  // Trusts the test CA; allows the name localhost, which resolves to 127.0.0.1.
  const s = await startServer({ env: { NODE_EXTRA_CA_CERTS: join(dir, "ca.pem"), THAW_CALLBACK_ALLOW: "localhost", THAW_CALLBACK_ATTEMPTS: "1" } });
  try {
    expect(existsSync(join(dir, "ca.pem"))).toBe(true);
    await deploy(s, "wordcount", "wordcount");
    const ok = await submit(s, "wordcount", "x", {}, `https://localhost:${right.port}/hook`);
    expect((await until(s, ok.id, settled)).callback).toMatchObject({ state: "delivered" });
    expect(hosts).toEqual([`localhost:${right.port}`]);
    // A certificate for another name is refused, and reads like any failure to connect.
    const bad = await submit(s, "wordcount", "x", {}, `https://localhost:${wrong.port}/hook`);
    expect((await until(s, bad.id, settled)).callback).toMatchObject({ state: "failed", lastError: "callback delivery failed: could not connect" });
    expect(hosts).toHaveLength(1);
  } finally {
    right.stop(true);
    wrong.stop(true);
    await s.stop();
  }
});

// ---------------------------------------------------------------------------
// Redis: the callback follows the recorded outcome.

describe("redis queue", () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis({ persistent: true });
  });
  afterAll(async () => {
    await redis.stop();
  });

  test("Redis restarted while jobs run: every job's callbacks carry one final status and one body", async () => {
    const env = { THAW_REDIS_URL: redis.url, THAW_CALLBACK_ALLOW: "127.0.0.1", THAW_JOB_CONCURRENCY: "4", THAW_JOB_BACKOFF: "100" };
    const r = receiver();
    const nodes = await Promise.all([startServer({ env }), startServer({ env })]);
    const [one, two] = nodes as [ServerProcess, ServerProcess];
    try {
      await deploy(one, "nap", "sleep");
      for (let i = 0; i < 100; i++) {
        if ((await fetch(`${two.url}/v1/functions/nap/invoke`, { method: "POST", body: "1" })).status === 200) break;
        await Bun.sleep(50);
      }
      const ids: string[] = [];
      for (let i = 0; i < 40; i++) ids.push((await submit(i % 2 ? one : two, "nap", "250", {}, r.url())).id);
      // While the nodes are in the middle of them: long enough for locks to expire.
      await Bun.sleep(400);
      await redis.stop();
      await Bun.sleep(6000);
      await redis.start();

      const views: Json[] = [];
      for (const id of ids) views.push(await until(one, id, (j) => ["succeeded", "failed", "dead"].includes(j.status) && j.callback?.state === "delivered", {}, 90_000));
      expect(views.map((j) => j.status)).toEqual(Array(ids.length).fill("succeeded"));
      await Bun.sleep(500);
      for (const view of views) {
        const calls = r.received.filter((x) => x.headers["x-thaw-job-id"] === view.id);
        expect(calls.length).toBeGreaterThanOrEqual(1);
        // One outcome: one key, one status, one body -- and it is the one the job shows.
        const distinct = new Set(calls.map((x) => JSON.stringify([x.headers["idempotency-key"], x.headers["x-thaw-job-status"], x.body])));
        expect({ id: view.id, outcomes: distinct.size }).toEqual({ id: view.id, outcomes: 1 });
        const sent: Json = JSON.parse(calls[0]!.body);
        expect(calls[0]!.headers["idempotency-key"]).toBe(`${view.id}:${view.attempts}`);
        expect({ node: sent.node, attempts: sent.attempts, finishedAt: sent.finishedAt }).toEqual({
          node: view.node,
          attempts: view.attempts,
          finishedAt: view.finishedAt,
        });
      }
      // Some jobs were caught by the outage and ran again: their callback is the second run's.
      console.log(`redis restart: ${views.filter((v) => v.attempts > 1).length} of ${views.length} jobs ran more than once`);
    } finally {
      r.server.stop(true);
      await Promise.all([one.stop(), two.stop()]);
    }
  });

  test("a delivery whose node is killed is taken over by another node once its lease runs out", async () => {
    let answer = 500;
    const r = receiver(() => new Response("", { status: answer }));
    const env = { THAW_REDIS_URL: redis.url, THAW_CALLBACK_ALLOW: "127.0.0.1", THAW_CALLBACK_BACKOFF: "600000" };
    const one = await startServer({ env });
    let two: ServerProcess | undefined;
    try {
      await deploy(one, "wc", "wordcount");
      const job = await submit(one, "wc", "x", {}, r.url());
      await until(one, job.id, (j) => j.callback?.attempts === 1);
      one.proc.kill("SIGKILL");
      await one.proc.exited;
      answer = 200;
      two = await startServer({ env });
      const done = await until(two, job.id, settled, {}, 90_000);
      expect(done.callback).toEqual({ url: r.url(), state: "delivered", attempts: 2 });
      expect(r.received.map((x) => x.headers["x-thaw-delivery-attempt"])).toEqual(["1", "2"]);
      expect(new Set(r.received.map((x) => `${x.headers["idempotency-key"]} ${x.body}`)).size).toBe(1);
      // The signing secret is the cluster's: the second node signs as the first did.
      const secret: Json = await (await fetch(`${two.url}/v1/callback-secret`)).json();
      for (const x of r.received) expect(verifySignature(secret.secret, x.headers["x-thaw-signature"]!, x.body, 600)).toBe(true);
    } finally {
      r.server.stop(true);
      await two?.stop();
    }
  });
});
