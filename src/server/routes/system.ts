// Health, readiness, Prometheus metrics and the API docs (OpenAPI JSON at
// /openapi/json, Swagger UI at /openapi). Swagger UI's assets are served
// from the swagger-ui-dist package, embedded in the binary, so the docs
// page works on a machine with no internet.
//
// /readyz is 503 while the node starts (functions loading) and while it
// drains for shutdown. A configured Redis that is unreachable does not make
// it 503: calls keep working from the local registry, and only deploys,
// deletes and the Redis job queue need it, so taking the node out of a load
// balancer would turn a Redis outage into an outage of every call. It is a
// 200 with status "degraded" and the check saying "unreachable" instead.
// /healthz and /readyz take no token; /metrics takes the admin or the
// metrics token when any token is configured (auth.ts).

import { openapi } from "@elysiajs/openapi";
import { type } from "arktype";
import { Elysia } from "elysia";
import swaggerCss from "swagger-ui-dist/swagger-ui.css" with { type: "file" };
import swaggerJs from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "file" };
import type { AppContext } from "../context.ts";
import { errorResponses, METRICS_SECURITY, PUBLIC, SECURITY_SCHEMES } from "../openapi.ts";
import { wagiPathItem } from "./invoke.ts";
import { openFaasPaths } from "./openfaas.ts";

export const ASSETS = "/openapi/assets";

/** Routes that keep answering while the node drains: probes, scrapes and the docs. */
export const operational = (path: string) =>
  path === "/healthz" || path === "/readyz" || path === "/metrics" || path === "/openapi" || path.startsWith("/openapi/");

const Health = type({ status: "'ok'" });
const Ready = type({
  status: "'ready' | 'degraded'",
  checks: { functions: "'loaded'", redis: "'ok' | 'unreachable' | 'not configured'" },
});
const NotReady = type({ status: "'starting' | 'draining'" });

export const systemRoutes = (ctx: AppContext) =>
  new Elysia({ name: "system" })
    .use(
      openapi({
        path: "/openapi",
        specPath: "/openapi/json",
        provider: "swagger-ui",
        swagger: { cdn: `${ASSETS}/swagger-ui-bundle.js`, theme: `${ASSETS}/swagger-ui.css`, autoDarkMode: false },
        exclude: { paths: [`${ASSETS}/swagger-ui-bundle.js`, `${ASSETS}/swagger-ui.css`] },
        documentation: {
          info: {
            title: "thaw",
            version: "0.1.0",
            description:
              "Serverless WebAssembly functions run from copy-on-write snapshots. Errors are JSON `{error: {code, message}}` with a stable code. Authenticate with `Authorization: Bearer <token>` when the server has tokens. A request body that has not arrived within the server's body timeout (--body-timeout) is answered 408 `request_timeout`; while the node drains for shutdown, every request but /healthz, /readyz, /metrics and the docs is answered 503 `shutting_down` with Retry-After. Every response carries X-Request-Id: the client's own if it sent a valid one (1 to 128 of A-Z, a-z, 0-9, `.`, `_`, `:`, `-`), else a new one; it is in the call's log entry, the server's error lines and the job a request submits. With --cors-origins, allowed origins get Access-Control-Allow-Origin (with Vary: Origin) on every response, and preflights (OPTIONS with Access-Control-Request-Method) are answered 204 without a token.",
          },
          components: { securitySchemes: SECURITY_SCHEMES },
          security: [{ bearer: [] }],
          // The WAGI trigger answers any method: described once per method (see invoke.ts).
          // So are the OpenFaaS sync routes (openfaas.ts).
          paths: { "/fn/{name}/*": wagiPathItem, ...openFaasPaths },
        } as never,
      }),
    )
    .get(`${ASSETS}/swagger-ui-bundle.js`, () => new Response(Bun.file(swaggerJs), { headers: { "content-type": "text/javascript" } }))
    .get(`${ASSETS}/swagger-ui.css`, () => new Response(Bun.file(swaggerCss), { headers: { "content-type": "text/css" } }))
    .get("/healthz", () => ({ status: "ok" as const }), {
      detail: { summary: "Liveness: the process answers", security: PUBLIC },
      response: { 200: Health },
    })
    .get(
      "/readyz",
      ({ set }) => {
        const readiness = ctx.readiness();
        set.status = readiness.status === "ready" || readiness.status === "degraded" ? 200 : 503;
        return readiness;
      },
      {
        detail: {
          summary: "Readiness: whether to send this node traffic",
          description:
            "200 once deployed functions are loaded: `ready`, or `degraded` when the cluster's Redis is configured but unreachable (calls work; deploys, deletes and the Redis job queue answer 503 until it is back). 503 `starting` while the node loads its functions, and 503 `draining` once it is shutting down.",
          security: PUBLIC,
        },
        response: { 200: Ready, 503: NotReady },
      },
    )
    .get(
      "/metrics",
      async ({ request }) => {
        ctx.auth.authorizeMetrics(request.headers);
        return new Response(await ctx.metrics.registry.metrics(), { headers: { "content-type": ctx.metrics.registry.contentType } });
      },
      {
        detail: {
          summary: "Prometheus metrics",
          description:
            "Per-function series exist while the function does. With any token configured, this takes the admin token or the metrics token (--metrics-token); a tenant's token is refused.",
          security: METRICS_SECURITY,
          responses: {
            200: { description: "Prometheus text format", content: { "text/plain; version=0.0.4": { schema: { type: "string" } } } },
            ...errorResponses({ 401: "unauthorized: neither the admin nor the metrics token (WWW-Authenticate: Bearer)" }),
          },
        } as never,
      },
    );
