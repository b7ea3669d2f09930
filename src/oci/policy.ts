// Which registries the server may pull from on a tenant's behalf. A deploy
// from OCI makes the server fetch a URL the tenant chose (and whatever the
// registry redirects to, and its token realm): without a check that is a
// request forgery into the server's own network and its cloud's metadata
// service. So registries get the callbacks' rule (jobs/destination.ts):
// public addresses only, every address a name resolves to checked, the
// connection pinned to the checked address; the operator lifts it for
// CIDR ranges and host names with --registry-allow. Plain http is refused
// but for the hosts in --registry-plain-http (host or host:port), since a
// module fetched over plain http could be swapped on the way (a digest
// reference still protects it, a tag does not).
//
// A refused address and a name that does not resolve get the same
// message, so a tenant cannot probe which internal names exist.

import { CallbackPolicy, parseAllowList, type Resolver, systemResolver } from "../jobs/destination.ts";
import { OciError } from "./errors.ts";
import type { Dialer } from "./transport.ts";

export interface RegistrySettings {
  /** --registry-allow: CIDR ranges, addresses, host names (`*.` for subdomains). */
  allow: string[];
  /** --registry-plain-http: host or host:port reached over http. */
  plainHttp: string[];
  /** --registry-timeout: one pull, first connect to last byte (ms). */
  timeoutMs: number;
}

/** Checks the flags' syntax: a message naming the flag, or undefined. */
export function registrySettingsError(s: Pick<RegistrySettings, "allow" | "plainHttp">): string | undefined {
  try {
    parseAllowList(s.allow);
  } catch (e) {
    return `--registry-allow: ${(e as Error).message.replace(/^callback-allow: /, "")}`;
  }
  const bad = s.plainHttp.find((h) => !/^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?$/i.test(h));
  return bad === undefined ? undefined : `--registry-plain-http: "${bad}" is not a host or host:port`;
}

export class RegistryPolicy {
  private readonly addresses: CallbackPolicy;
  private readonly plain: Set<string>;

  constructor(
    readonly settings: RegistrySettings,
    resolve: Resolver = systemResolver,
  ) {
    this.addresses = new CallbackPolicy(settings.allow, resolve);
    this.plain = new Set(settings.plainHttp.map((h) => h.toLowerCase()));
  }

  /** Plain http to `host` (URL host: hostname, with the port unless default)? */
  readonly plainHttp = (host: string): boolean => {
    const h = host.toLowerCase();
    return this.plain.has(h) || this.plain.has(h.replace(/:[0-9]+$/, ""));
  };

  readonly dial: Dialer = async (url) => {
    try {
      return await this.addresses.vet(url);
    } catch {
      // AddressNotAllowed or ResolveFailed: one answer for both.
      throw new OciError(
        "address_refused",
        `registry host ${url.hostname.slice(0, 100)} must resolve, and only to public addresses (the operator can allow others with --registry-allow)`,
      );
    }
  };
}
