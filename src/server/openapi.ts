// OpenAPI metadata the routes share where @elysiajs/openapi cannot derive
// it from a response schema: bodies that are not JSON (a function's stdout,
// Prometheus text), empty ones (204), and which token an operation takes.
// The plugin replaces a route's `detail.responses` with what its `response`
// schemas give, so a route that needs these documents all its responses in
// `detail.responses` and has no `response` schemas.

import { ErrorBody } from "./schemas.ts";

export const SECURITY_SCHEMES = {
  bearer: {
    type: "http",
    scheme: "bearer",
    description:
      "A tenant's token (--tokens), or the admin token (--admin-token) acting for the tenant named in X-Thaw-Tenant. Not needed when the server has neither.",
  },
  metricsToken: {
    type: "http",
    scheme: "bearer",
    description:
      "The admin token or the metrics token (--metrics-token), never a tenant's: /metrics lists every tenant's functions. Not needed when the server has no token of any kind.",
  },
} as const;

/** The `security` of an operation that takes no token (the document's default is `bearer`). */
export const PUBLIC: Record<string, string[]>[] = [];
export const METRICS_SECURITY: Record<string, string[]>[] = [{ metricsToken: [] }];

const ERROR_SCHEMA = ErrorBody.toJsonSchema();

/** JSON error responses, status -> what it means (the error codes it carries). */
export function errorResponses(meanings: Record<number, string>) {
  return Object.fromEntries(
    Object.entries(meanings).map(([status, description]) => [
      status,
      { description, content: { "application/json": { schema: ERROR_SCHEMA } } },
    ]),
  );
}

/** A response whose body is bytes in whatever content type the function or job declared. */
export function binaryResponse(description: string, headers: Record<string, string> = {}) {
  return {
    description,
    headers: Object.fromEntries(Object.entries(headers).map(([name, meaning]) => [name, { description: meaning, schema: { type: "string" } }])),
    content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } },
  };
}
