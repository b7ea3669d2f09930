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

import { openapi } from "@elysiajs/openapi";
import { Elysia } from "elysia";
import swaggerCss from "swagger-ui-dist/swagger-ui.css" with { type: "file" };
import swaggerJs from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "file" };
import type { AppContext } from "../context.ts";

export const ASSETS = "/openapi/assets";

/** Routes that keep answering while the node drains: probes, scrapes and the docs. */
export const operational = (path: string) =>
  path === "/healthz" || path === "/readyz" || path === "/metrics" || path === "/openapi" || path.startsWith("/openapi/");

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
              "Serverless WebAssembly functions run from copy-on-write snapshots. Errors are JSON `{error: {code, message}}` with a stable code. Authenticate with `Authorization: Bearer <token>` when the server has tokens.",
          },
          components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
          security: [{ bearer: [] }],
        },
      }),
    )
    .get(`${ASSETS}/swagger-ui-bundle.js`, () => new Response(Bun.file(swaggerJs), { headers: { "content-type": "text/javascript" } }))
    .get(`${ASSETS}/swagger-ui.css`, () => new Response(Bun.file(swaggerCss), { headers: { "content-type": "text/css" } }))
    .get("/healthz", () => ({ status: "ok" }), { detail: { summary: "Liveness" } })
    .get(
      "/readyz",
      ({ set }) => {
        const readiness = ctx.readiness();
        set.status = readiness.status === "ready" || readiness.status === "degraded" ? 200 : 503;
        return readiness;
      },
      { detail: { summary: "Readiness: whether to send this node traffic" } },
    )
    .get(
      "/metrics",
      async ({ request }) => {
        ctx.auth.authorizeMetrics(request.headers);
        return new Response(await ctx.metrics.registry.metrics(), { headers: { "content-type": ctx.metrics.registry.contentType } });
      },
      { detail: { summary: "Prometheus metrics" } },
    );
