// The keys callbacks are signed with. One node-wide secret -- the operator's
// --callback-secret, or else generated once: kept in the data directory
// (mode 0600) by a lone node, in Redis (thaw:callback-secret, SET NX) by a
// cluster, so that every node signs a tenant's callbacks alike -- and from
// it one key per tenant, HMAC-SHA256(node secret, tenant). A tenant reads
// its own key from GET /v1/callback-secret; it cannot learn another's, nor
// the node secret.
//
// A callback carries X-Thaw-Signature: t=<unix seconds>,v1=<hex>, where
// hex = HMAC-SHA256(tenant key, `${t}.${body}`) (Stripe's scheme): the
// receiver recomputes it and refuses old timestamps, so a captured callback
// cannot be replayed later or altered.

import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type Redis from "ioredis";
import type { Logger } from "../log.ts";

export const SECRET_FILE = "callback-secret";
export const SECRET_KEY = "thaw:callback-secret";

/** Where the node-wide secret comes from. `sync` (optional) re-reads it where it is shared. */
export interface SecretSource {
  load(): Promise<string>;
  sync?(current: string): Promise<string>;
}

const generate = () => randomBytes(32).toString("hex");

export function fixedSecret(secret: string): SecretSource {
  return { load: async () => secret };
}

/** DATA/callback-secret, created with mode 0600 on first use. */
export function fileSecret(dataDir: string): SecretSource {
  const path = join(dataDir, SECRET_FILE);
  return {
    async load() {
      try {
        writeFileSync(path, generate(), { mode: 0o600, flag: "wx" });
      } catch (e) {
        if ((e as { code?: string }).code !== "EEXIST") throw e;
      }
      if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
      const secret = readFileSync(path, "utf8").trim();
      if (!secret) throw new Error(`${path} is empty`);
      return secret;
    },
  };
}

/**
 * thaw:callback-secret in the cluster's Redis: the first node to need it
 * sets it (SET NX), every node reads the one that won. Should Redis lose
 * it, the nodes put back the one they hold (SET NX again), so the cluster
 * keeps one secret rather than one per node.
 */
export function redisSecret(client: Redis): SecretSource {
  const settle = async (candidate: string) => {
    await client.set(SECRET_KEY, candidate, "NX");
    const secret = await client.get(SECRET_KEY);
    if (!secret) throw new Error(`${SECRET_KEY} vanished`);
    return secret;
  };
  return { load: () => settle(generate()), sync: settle };
}

export class CallbackSecrets {
  private secret?: string;
  private loading?: Promise<string>;

  constructor(
    private readonly source: SecretSource,
    private readonly log: Logger,
  ) {}

  /** The node-wide secret; throws while it cannot be read (Redis down before it was first loaded). */
  private async node(): Promise<string> {
    if (this.secret) return this.secret;
    this.loading ??= this.source.load().finally(() => (this.loading = undefined));
    this.secret = await this.loading;
    return this.secret;
  }

  /** Where the secret is shared, read it again (a periodic check); never throws. */
  async sync(): Promise<void> {
    if (!this.secret || !this.source.sync) return;
    try {
      const now = await this.source.sync(this.secret);
      if (now !== this.secret) {
        this.log.warn("the cluster's callback secret changed: signing with the one in Redis (set --callback-secret to pin it)");
        this.secret = now;
      }
    } catch {}
  }

  /** The tenant's signing key. */
  async forTenant(tenant: string): Promise<string> {
    return tenantKey(await this.node(), tenant);
  }
}

export const tenantKey = (nodeSecret: string, tenant: string) =>
  createHmac("sha256", nodeSecret).update(`thaw callback key\0${tenant}`).digest("hex");

/** The X-Thaw-Signature value for `body` sent at `t` (unix seconds). */
export function signature(key: string, t: number, body: string): string {
  return `t=${t},v1=${createHmac("sha256", key).update(`${t}.${body}`).digest("hex")}`;
}

/** A receiver's check, as the README shows it; used by the tests. */
export function verifySignature(key: string, header: string, body: string, toleranceSeconds = 300, now = Date.now() / 1000): boolean {
  const parts = Object.fromEntries(header.split(",").map((p) => p.split("=", 2) as [string, string]));
  const t = Number(parts.t);
  if (!Number.isFinite(t) || Math.abs(now - t) > toleranceSeconds || !parts.v1) return false;
  const expected = Buffer.from(createHmac("sha256", key).update(`${t}.${body}`).digest("hex"));
  const given = Buffer.from(parts.v1);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
