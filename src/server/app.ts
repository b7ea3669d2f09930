// The HTTP application: routes plus one error mapping. Routes stay thin
// (validate, call a service, map the result); every error leaves as JSON
// with a stable code.
//
// Before routing, every request gets its request id (the client's valid
// X-Request-Id or a new one) and, with --cors-origins, its CORS headers;
// both go on whatever the response is -- a call, an error, a 404, a 401 --
// because Elysia merges `set.headers` into every response. A preflight is
// answered here, before authentication.

import { Elysia } from "elysia";
import { ThawError } from "../service/errors.ts";
import { requestIdFrom } from "../logs/request-id.ts";
import type { AppContext } from "./context.ts";
import { Cors } from "./cors.ts";
import { errorResponse, json, REQUEST_ID_HEADER, requestIdOf, responseReady } from "./http.ts";
import { functionRoutes } from "./routes/functions.ts";
import { invokeRoutes } from "./routes/invoke.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { logRoutes } from "./routes/logs.ts";
import { nodeRoutes } from "./routes/nodes.ts";
import { openFaasRoutes } from "./routes/openfaas.ts";
import { poolRoutes } from "./routes/pools.ts";
import { systemRoutes } from "./routes/system.ts";

/** Elysia's validation error as one readable line (its `message` is a JSON document). */
function validationMessage(error: unknown): string {
  const first = (error as { valueError?: { message?: string } }).valueError?.message;
  const message = first ?? "request does not match the API's schema";
  return message.length > 300 ? `${message.slice(0, 300)}...` : message;
}

/** The id of `request` and its response: the client's valid X-Request-Id, or a new one. */
export const requestIdFor = (request: Request): string => requestIdFrom(request.headers.get(REQUEST_ID_HEADER));

/** The headers every response to `request` carries: its request id and, with CORS on, the CORS headers. */
export function platformHeaders(request: Request, cors: Cors, requestId = requestIdFor(request)): Record<string, string> {
  const headers: Record<string, string> = { [REQUEST_ID_HEADER]: requestId };
  if (cors.enabled) Object.assign(headers, cors.headers(request.headers.get("origin")));
  return headers;
}

/** The response to a request that failed with `error` (Elysia's error `code`), with `headers` added. */
export function errorFor(ctx: AppContext, error: unknown, code: unknown, requestId: string, headers: Record<string, string> = {}): Response {
  if (error instanceof ThawError) return errorResponse(error, headers);
  // A response that fails its own schema is thaw's bug, not the client's request.
  if (code === "VALIDATION" && (error as { type?: string }).type !== "response")
    return errorResponse(new ThawError("invalid_request", validationMessage(error)), headers);
  if (code === "NOT_FOUND") return json({ error: { code: "not_found", message: "no such route" } }, 404, headers);
  if (code === "PARSE") return errorResponse(new ThawError("invalid_request", "malformed request body"), headers);
  ctx.log.error("unhandled error", { requestId, error: String(error), stack: (error as Error).stack });
  return errorResponse(new ThawError("internal", "internal error"), headers);
}

/** The Elysia app; `routes` are native Bun routes that take precedence (fast-invoke.ts). */
export function createApp(ctx: AppContext, cors = new Cors(ctx.config.corsOrigins), routes?: Record<string, unknown>) {
  return new Elysia(routes ? { serve: { routes } as never } : {})
    .onRequest(({ request, set }) => {
      Object.assign(set.headers, platformHeaders(request, cors));
      return cors.preflight(request);
    })
    .onAfterHandle({ as: "global" }, ({ request }) => responseReady(request))
    .onError(({ error, code, request, set }) => {
      responseReady(request);
      return errorFor(ctx, error, code, requestIdOf(set));
    })
    .use(systemRoutes(ctx))
    .use(functionRoutes(ctx))
    .use(invokeRoutes(ctx))
    .use(jobRoutes(ctx))
    .use(logRoutes(ctx))
    .use(openFaasRoutes(ctx))
    .use(poolRoutes(ctx))
    .use(nodeRoutes(ctx));
}
