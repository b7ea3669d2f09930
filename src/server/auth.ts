// Bearer tokens mapped to tenants. A tenant sees and calls only its own
// functions. The admin token acts for any tenant named in X-Thaw-Tenant
// (default "default"). With no token configured at all, every request is
// the "default" tenant -- fine on a laptop, and the server warns at start.
//
// /metrics names every tenant's functions, so no tenant token opens it:
// it takes the admin token or the metrics token (a Prometheus scraper's),
// and is open only when no token of any kind is configured.

import { ThawError } from "../service/errors.ts";

export const DEFAULT_TENANT = "default";
/** A tenant name is a directory name under the data directory: no dots, no slashes. */
export const TENANT_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const TENANT_RULE = "1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit";

export interface Principal {
  tenant: string;
  admin: boolean;
}

const bearer = (headers: Headers) => /^Bearer\s+(.+)$/i.exec(headers.get("authorization") ?? "")?.[1]?.trim();

/** Every request's principal when no token is configured (shared: nobody changes a principal). */
const OPEN: Principal = Object.freeze({ tenant: DEFAULT_TENANT, admin: true });

export class Auth {
  /** No token of any kind for tenants or the admin: decided once, asked on every request. */
  readonly open: boolean;

  constructor(
    private readonly tokens: Record<string, string>,
    private readonly adminToken?: string,
    private readonly metricsToken?: string,
  ) {
    this.open = !adminToken && Object.keys(tokens).length === 0;
  }

  authenticate(headers: Headers): Principal {
    if (this.open) return OPEN;
    const token = bearer(headers);
    if (!token) throw new ThawError("unauthorized", "missing bearer token");
    if (this.adminToken && token === this.adminToken) {
      const tenant = headers.get("x-thaw-tenant") ?? DEFAULT_TENANT;
      if (!TENANT_PATTERN.test(tenant)) throw new ThawError("invalid_request", "invalid X-Thaw-Tenant");
      return { tenant, admin: true };
    }
    const tenant = this.tokens[token];
    if (!tenant) throw new ThawError("unauthorized", "unknown bearer token");
    return { tenant, admin: false };
  }

  /** Refuses a /metrics scrape without the admin or the metrics token (401), unless nothing is configured. */
  authorizeMetrics(headers: Headers): void {
    if (this.open && !this.metricsToken) return;
    const token = bearer(headers);
    if (!token) throw new ThawError("unauthorized", "missing bearer token: /metrics takes the admin token or the metrics token");
    if (token !== this.adminToken && token !== this.metricsToken)
      throw new ThawError("unauthorized", "/metrics takes the admin token or the metrics token");
  }
}
