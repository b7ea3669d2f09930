// HTTP to one registry: address checks on every hop, redirects, the bearer
// token flow, one deadline, and bodies read with a byte limit.
//
// Every URL the client is about to connect to -- the registry, each
// redirect's target (blob GETs usually redirect to object storage), a token
// realm the registry names -- first goes through `dial`, which says which
// addresses it may connect to. The server's dial resolves the name, refuses
// it if any address is inside (policy.ts), and the request then connects to
// the vetted address itself, with the name as Host header and TLS server
// name, so DNS cannot rebind between the check and the connect (the way
// jobs/callback.ts delivers). `thaw push` dials by name: its user picks the
// registry.
//
// Plain http only to hosts `plainHttp` allows (for a redirect too); https
// otherwise. Credentials go to the registry's own origin and to the token
// realm only: a redirect to another origin drops them (object storage URLs
// carry their own signature). Redirects are followed for GET and HEAD,
// at most five.
//
// Auth: a static "Bearer T" is sent as is. Anonymous or "Basic B": a 401
// with `WWW-Authenticate: Bearer realm=...,service=...,scope=...` makes the
// client get a token from the realm (with the basic credentials, if any)
// and retry once; a new scope (pull, then push) gets a new token.
//
// One AbortSignal bounds the whole operation, reading bodies included: a
// registry that trickles bytes is cut off like one that never answers.

import { formatHost, parseIP } from "../jobs/address.ts";
import { OciError } from "./errors.ts";

/** The addresses a request to `url` may connect to; undefined: connect by name. Throws OciError to refuse. */
export type Dialer = (url: URL) => Promise<string[] | undefined>;

export interface TransportOptions {
  /** host[:port] of the registry, as in the reference. */
  registry: string;
  dial: Dialer;
  /** May plain http be used to this host (URL `host`, port included when not the default)? */
  plainHttp: (host: string) => boolean;
  /** "Bearer T" or "Basic B64". */
  auth?: string;
  signal: AbortSignal;
}

const MAX_REDIRECTS = 5;
const TOKEN_RESPONSE_LIMIT = 64 << 10;
const HEADER_SAFE = /^[\x21-\x7e]{1,8192}$/;

export class Transport {
  readonly base: URL;
  private authorization: string | undefined;
  private challengeKey: string | undefined;

  constructor(private readonly o: TransportOptions) {
    // The host as the URL parser normalizes it (0x7f.1 is 127.0.0.1), which is what every check sees.
    const host = new URL(`https://${o.registry}/`).host;
    this.base = new URL(`${o.plainHttp(host) ? "http" : "https"}://${o.registry}/`);
    this.authorization = o.auth;
  }

  /** A request to the registry (path from /v2/), authenticated; the response is the caller's to read. */
  async request(method: string, pathOrUrl: string | URL, init: { headers?: Record<string, string>; body?: Uint8Array } = {}): Promise<Response> {
    const url = typeof pathOrUrl === "string" ? new URL(pathOrUrl, this.base) : pathOrUrl;
    let res = await this.send(method, url, init, this.authorization);
    if (res.status !== 401 || this.o.auth?.startsWith("Bearer ")) return res;
    const challenge = parseChallenge(res.headers.get("www-authenticate") ?? "");
    await res.body?.cancel().catch(() => undefined);
    if (!challenge) return res;
    const key = `${challenge.realm} ${challenge.service ?? ""} ${challenge.scope ?? ""}`;
    // The token for this scope was just refused: asking again would give the same.
    if (key === this.challengeKey) return res;
    this.challengeKey = key;
    this.authorization = `Bearer ${await this.token(challenge)}`;
    res = await this.send(method, url, init, this.authorization);
    return res;
  }

  /** One request, following GET/HEAD redirects, each hop dialed again. */
  private async send(method: string, start: URL, init: { headers?: Record<string, string>; body?: Uint8Array }, authorization?: string): Promise<Response> {
    let url = start;
    for (let hop = 0; ; hop++) {
      const sameOrigin = url.origin === this.base.origin;
      const headers: Record<string, string> = { "user-agent": "thaw-oci/1", "accept-encoding": "identity", ...init.headers };
      if (authorization && sameOrigin) headers.authorization = authorization;
      const res = await this.connect(method, url, headers, init.body);
      const location = res.headers.get("location");
      if (res.status < 300 || res.status > 399 || res.status === 304 || !location || (method !== "GET" && method !== "HEAD")) return res;
      await res.body?.cancel().catch(() => undefined);
      if (hop >= MAX_REDIRECTS) throw new OciError("registry_error", `the registry redirected more than ${MAX_REDIRECTS} times`);
      try {
        url = new URL(location, url);
      } catch {
        throw new OciError("registry_error", "the registry redirected to an invalid URL");
      }
    }
  }

  /** Connects to `url` through its vetted addresses (the next only if one cannot be reached). */
  private async connect(method: string, url: URL, headers: Record<string, string>, body?: Uint8Array): Promise<Response> {
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new OciError("address_refused", `the registry sent the client to a ${url.protocol} URL`);
    if (url.username || url.password) throw new OciError("address_refused", "registry URLs must not carry credentials");
    if (url.protocol === "http:" && !this.o.plainHttp(url.host))
      throw new OciError("address_refused", `plain http to ${url.host} is not allowed (https only, unless the host is listed for plain http)`);
    if (this.o.signal.aborted) throw this.failure(undefined);
    // DNS takes no signal: the deadline races it.
    const addresses = await Promise.race([this.o.dial(url), this.deadline()]);
    const init = { method, headers, body, redirect: "manual" as const, signal: this.o.signal };
    if (!addresses) return this.fetch(url.toString(), init);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const name = parseIP(host) ? undefined : host;
    let last: unknown;
    for (const address of addresses.slice(0, 4)) {
      const pinned = `${url.protocol}//${formatHost(address)}${url.port ? `:${url.port}` : ""}${url.pathname}${url.search}`;
      try {
        return await this.fetch(pinned, {
          ...init,
          headers: { ...headers, host: url.host },
          ...(url.protocol === "https:" && name ? { tls: { serverName: name } } : {}),
        });
      } catch (e) {
        last = e;
        if (this.o.signal.aborted) break;
      }
    }
    throw last;
  }

  private deadline(): Promise<never> {
    const signal = this.o.signal;
    return new Promise((_, reject) => {
      const fail = () => reject(this.failure(undefined));
      if (signal.aborted) fail();
      else signal.addEventListener("abort", fail, { once: true });
    });
  }

  private async fetch(url: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(url, init);
    } catch (e) {
      throw this.failure(e);
    }
  }

  /** A network error as the coarse OciError a tenant sees. */
  failure(e: unknown): OciError {
    if (e instanceof OciError) return e;
    if (this.o.signal.aborted) return new OciError("timeout", "the registry did not answer in time");
    return new OciError("unreachable", `could not reach the registry ${this.o.registry}`);
  }

  /** Exchanges the challenge for a token at its realm (with the basic credentials, if any). */
  private async token(c: Challenge): Promise<string> {
    let realm: URL;
    try {
      realm = new URL(c.realm);
    } catch {
      throw new OciError("registry_error", "the registry's token realm is not a URL");
    }
    if (c.service) realm.searchParams.set("service", c.service);
    if (c.scope) realm.searchParams.set("scope", c.scope);
    const headers: Record<string, string> = { "user-agent": "thaw-oci/1", accept: "application/json" };
    if (this.o.auth?.startsWith("Basic ")) headers.authorization = this.o.auth;
    const res = await this.connect("GET", realm, headers);
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel().catch(() => undefined);
      throw new OciError("unauthorized", `the registry's token service refused the ${this.o.auth ? "credentials" : "anonymous request"} (HTTP ${res.status})`);
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new OciError("registry_error", `the registry's token service answered HTTP ${res.status}`);
    }
    const text = new TextDecoder().decode(await this.read(res, TOKEN_RESPONSE_LIMIT, () => new OciError("registry_error", "the token response is too large")));
    let token: unknown;
    try {
      const body = JSON.parse(text) as { token?: unknown; access_token?: unknown };
      token = body.token ?? body.access_token;
    } catch {
      token = undefined;
    }
    if (typeof token !== "string" || !HEADER_SAFE.test(token)) throw new OciError("registry_error", "the token service's answer has no usable token");
    return token;
  }

  /**
   * The body, at most `max` bytes: past that the read stops and `over()` is
   * thrown, whatever Content-Length said (it is checked first too).
   */
  async read(res: Response, max: number, over: () => OciError): Promise<Uint8Array> {
    const declared = res.headers.get("content-length");
    if (declared !== null && Number(declared) > max) {
      await res.body?.cancel().catch(() => undefined);
      throw over();
    }
    if (!res.body) return new Uint8Array();
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.length;
        if (total > max) {
          await reader.cancel().catch(() => undefined);
          throw over();
        }
        chunks.push(value);
      }
    } catch (e) {
      throw this.failure(e);
    }
    return Buffer.concat(chunks, total);
  }
}

interface Challenge {
  realm: string;
  service?: string;
  scope?: string;
}

/** The Bearer challenge of a WWW-Authenticate header, or undefined (Basic, or none). */
export function parseChallenge(header: string): Challenge | undefined {
  if (header.length > 4096) return undefined;
  const m = /^\s*Bearer\s+(.*)$/i.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[1]!.matchAll(/([A-Za-z]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))/g)) params[p[1]!.toLowerCase()] = p[2] ?? p[3]!;
  if (!params.realm) return undefined;
  return { realm: params.realm, service: params.service, scope: params.scope };
}
