// Where a callback may go, decided twice: when the job is submitted (a
// clear 400 for the tenant) and again right before every delivery attempt,
// against fresh DNS answers, because a name that was public at submit can
// point inside by the time the job finishes (DNS rebinding).
//
// A callback URL is http(s), carries no credentials, and its host is -- or
// resolves, every address of it, to -- a public address (address.ts):
// not loopback, private, link-local, CGNAT, metadata, multicast, reserved,
// documentation, or an IPv6 form embedding one of those. `localhost` and
// `*.localhost` are refused by name. The operator's allow list
// (--callback-allow) lifts this for CIDR ranges and for host names
// (`hooks.internal`, `*.corp.example`).
//
// At delivery the caller connects to the address vetted here, not to the
// name (fetch would resolve it again): see callback.ts.

import { lookup } from "node:dns/promises";
import { ThawError } from "../service/errors.ts";
import { forbiddenReason, inRange, type IP, parseCidr, parseIP } from "./address.ts";

/** Every address a name resolves to, as text. */
export type Resolver = (host: string) => Promise<string[]>;

export const systemResolver: Resolver = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

/** The delivery address is refused: the URL or what its name resolves to is not allowed. */
export class AddressNotAllowed extends Error {}

/** DNS had no answer (or no usable one) for the host. */
export class ResolveFailed extends Error {
  constructor(readonly code: string | undefined) {
    super(`could not resolve (${code ?? "unknown error"})`);
  }
}

const HOST_ENTRY = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

/** --callback-allow: CIDR ranges, addresses and host names (`*.` for subdomains), comma-separated. */
export function parseAllowList(entries: string[]): { ranges: { net: Uint8Array; bits: number }[]; hosts: string[] } {
  const ranges: { net: Uint8Array; bits: number }[] = [];
  const hosts: string[] = [];
  for (const raw of entries.map((e) => e.trim()).filter(Boolean)) {
    const cidr = parseCidr(raw);
    if (cidr) ranges.push(cidr);
    else if (/^[\d.]+(\/.*)?$/.test(raw) || /[:/]/.test(raw)) throw new Error(`callback-allow: "${raw}" is not a valid IP address or CIDR range`);
    else if (HOST_ENTRY.test(raw.toLowerCase().replace(/\.$/, ""))) hosts.push(raw.toLowerCase().replace(/\.$/, ""));
    else throw new Error(`callback-allow: "${raw}" is neither a CIDR range, an IP address nor a host name`);
  }
  return { ranges, hosts };
}

/** A parsed URL's host without brackets and trailing dots, lowercase. */
export const bareHost = (url: URL) => url.hostname.replace(/^\[|\]$/g, "").replace(/\.+$/, "").toLowerCase();

export class CallbackPolicy {
  private readonly ranges: { net: Uint8Array; bits: number }[];
  private readonly hosts: string[];

  constructor(
    allow: string[] = [],
    private readonly resolve: Resolver = systemResolver,
  ) {
    ({ ranges: this.ranges, hosts: this.hosts } = parseAllowList(allow));
  }

  private hostAllowed(host: string): boolean {
    return this.hosts.some((h) => (h.startsWith("*.") ? host.endsWith(h.slice(1)) : host === h));
  }

  /** Why `ip` is refused, or undefined if a callback may reach it. */
  private refusal(ip: IP): string | undefined {
    if (this.ranges.some((r) => inRange(ip.bytes, r))) return undefined;
    return forbiddenReason(ip);
  }

  /** The URL as it will be stored and called; a 400 that says what is wrong with it otherwise. */
  async check(raw: string): Promise<string> {
    const bad = (why: string) => new ThawError("invalid_request", `callback URL ${why}`);
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw bad("is not an absolute URL");
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw bad(`must be http or https, not ${url.protocol.slice(0, -1)}`);
    if (url.username || url.password) throw bad("must not carry credentials (a user name or password before @): receivers authenticate callbacks by their X-Thaw-Signature");
    url.hash = "";
    const host = bareHost(url);
    const ip = parseIP(host);
    if (ip) {
      const why = this.refusal(ip);
      if (why) throw bad(`host ${host} is a ${why} address: callbacks go to public addresses only`);
      return url.toString();
    }
    if (this.hostAllowed(host)) return url.toString();
    if (host === "" || host === "localhost" || host.endsWith(".localhost")) throw bad(`host ${host || url.hostname} is this machine: callbacks go to public addresses only`);
    let addresses: string[];
    try {
      addresses = await this.resolve(host);
    } catch (e) {
      const code = (e as { code?: string }).code;
      // Only a definite "no such name" is the tenant's mistake; a DNS hiccup is checked again at delivery.
      if (code !== "ENOTFOUND" && code !== "ENODATA") return url.toString();
      addresses = [];
    }
    // One message for "no such name" and "resolves inside": the tenant learns nothing about internal DNS.
    if (addresses.length === 0 || addresses.some((a) => this.addressRefused(a)))
      throw bad(`host ${host} must resolve, and only to public addresses`);
    return url.toString();
  }

  private addressRefused(address: string): boolean {
    const ip = parseIP(address);
    return !ip || this.refusal(ip) !== undefined;
  }

  /**
   * The addresses a delivery to `url` may connect to, from a fresh lookup:
   * all of them allowed, or AddressNotAllowed. ResolveFailed when DNS has
   * no answer.
   */
  async vet(url: URL): Promise<string[]> {
    if (url.username || url.password || (url.protocol !== "http:" && url.protocol !== "https:")) throw new AddressNotAllowed("bad URL");
    const host = bareHost(url);
    const ip = parseIP(host);
    if (ip) {
      if (this.refusal(ip)) throw new AddressNotAllowed(host);
      return [host];
    }
    const named = this.hostAllowed(host);
    if (!named && (host === "" || host === "localhost" || host.endsWith(".localhost"))) throw new AddressNotAllowed(host);
    let addresses: string[];
    try {
      addresses = await this.resolve(host);
    } catch (e) {
      throw new ResolveFailed((e as { code?: string }).code);
    }
    if (addresses.length === 0) throw new ResolveFailed("ENODATA");
    if (!named && addresses.some((a) => this.addressRefused(a))) throw new AddressNotAllowed(host);
    return addresses;
  }
}
