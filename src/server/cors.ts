// CORS for browser callers, off unless --cors-origins names origins.
//
// An allowed origin (exact match against the configured list, or any
// origin when the list is exactly `*`) gets Access-Control-Allow-Origin on
// every response, errors included, with Vary: Origin, and the headers thaw
// sets exposed to scripts. Any other origin gets no CORS headers, so the
// browser keeps the response from the page. The response only ever names
// an origin that is in the operator's list: the client's Origin header is
// compared, never copied.
//
// Preflights (OPTIONS with Origin and Access-Control-Request-Method) are
// answered here, before routing and without a token -- a browser never
// sends credentials on a preflight -- with 204. With CORS configured that
// includes preflights to WAGI functions (/fn/...), which then do not see
// OPTIONS requests that are preflights. No Access-Control-Allow-Credentials:
// thaw's credential is the Authorization header, which a script sets
// itself; it uses no cookies.

export const ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
export const ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-Id, X-Thaw-Tenant, Idempotency-Key, X-Callback-Url";
export const EXPOSED_HEADERS =
  "X-Request-Id, X-Call-Id, X-Thaw-Exit-Code, X-Thaw-Duration-Ms, X-Thaw-Cold, X-Thaw-Version, X-Thaw-Tier, X-Thaw-Outcome, Location, Retry-After";
const MAX_AGE_SECONDS = "600";
/** A host name (letters, digits, hyphens, dots), an IPv4 address or a bracketed IPv6 one: no wildcards. */
const ORIGIN_HOST = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])$/;

export class CorsConfigError extends Error {}

/** --cors-origins: `*`, or comma-separated origins as browsers send them (https://app.example.com[:port]). */
export function parseCorsOrigins(spec: string): string[] {
  const origins = spec.split(",").map((s) => s.trim()).filter(Boolean);
  if (origins.includes("*")) {
    if (origins.length > 1) throw new CorsConfigError("cors-origins: `*` allows every origin and cannot be combined with others");
    return origins;
  }
  for (const origin of origins) {
    let serialized: string | undefined;
    try {
      const url = new URL(origin);
      if ((url.protocol === "http:" || url.protocol === "https:") && ORIGIN_HOST.test(url.hostname)) serialized = url.origin;
    } catch {}
    if (serialized !== origin)
      throw new CorsConfigError(
        `cors-origins: ${JSON.stringify(origin.slice(0, 100))} is not an origin as browsers send it: scheme://host[:port], lower case, no path or trailing slash`,
      );
  }
  return origins;
}

export class Cors {
  private readonly any: boolean;
  private readonly origins: Set<string>;

  constructor(origins: string[]) {
    this.any = origins.includes("*");
    this.origins = new Set(origins);
  }

  get enabled(): boolean {
    return this.any || this.origins.size > 0;
  }

  /**
   * The CORS headers of a response to a request from `origin`: none for a
   * disallowed one but Vary, since the answer depends on the Origin (caches).
   */
  headers(origin: string | null): Record<string, string> | undefined {
    if (this.any) return { "access-control-allow-origin": "*", "access-control-expose-headers": EXPOSED_HEADERS };
    if (!this.enabled) return undefined;
    if (origin === null || !this.origins.has(origin)) return { vary: "Origin" };
    return { "access-control-allow-origin": origin, "access-control-expose-headers": EXPOSED_HEADERS, vary: "Origin" };
  }

  /** The answer to a preflight, or undefined when `request` is not one (or CORS is off). */
  preflight(request: Request): Response | undefined {
    if (!this.enabled || request.method !== "OPTIONS") return undefined;
    const origin = request.headers.get("origin");
    if (origin === null || !request.headers.has("access-control-request-method")) return undefined;
    const { "access-control-expose-headers": _, ...headers } = this.headers(origin)!;
    if (headers["access-control-allow-origin"])
      Object.assign(headers, {
        "access-control-allow-methods": ALLOWED_METHODS,
        "access-control-allow-headers": ALLOWED_HEADERS,
        "access-control-max-age": MAX_AGE_SECONDS,
      });
    return new Response(null, { status: 204, headers });
  }
}
