// Bearer tokens mapped to tenants. A tenant sees and calls only its own
// functions. The admin token acts for any tenant named in X-Thaw-Tenant
// (default "default"). With no token configured at all, every request is
// the "default" tenant -- fine on a laptop, and the server warns at start.

import { ThawError } from "../service/errors.ts";

export const DEFAULT_TENANT = "default";
/** A tenant name is a directory name under the data directory: no dots, no slashes. */
export const TENANT_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const TENANT_RULE = "1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit";

export interface Principal {
  tenant: string;
  admin: boolean;
}

export class Auth {
  constructor(
    private readonly tokens: Record<string, string>,
    private readonly adminToken?: string,
  ) {}

  get open(): boolean {
    return !this.adminToken && Object.keys(this.tokens).length === 0;
  }

  authenticate(headers: Headers): Principal {
    if (this.open) return { tenant: DEFAULT_TENANT, admin: true };
    const header = headers.get("authorization") ?? "";
    const token = /^Bearer\s+(.+)$/i.exec(header)?.[1]?.trim();
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
}
