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

export function createApp(ctx: AppContext) {
  const cors = new Cors(ctx.config.corsOrigins);
  return new Elysia()
    .onRequest(({ request, set }) => {
      set.headers[REQUEST_ID_HEADER] = requestIdFrom(request.headers.get(REQUEST_ID_HEADER));
      if (!cors.enabled) return;
      Object.assign(set.headers, cors.headers(request.headers.get("origin")));
      return cors.preflight(request);
    })
    .onAfterHandle({ as: "global" }, ({ request }) => responseReady(request))
    .onError(({ error, code, request, set }) => {
      responseReady(request);
      if (error instanceof ThawError) return errorResponse(error);
      // A response that fails its own schema is thaw's bug, not the client's request.
      if (code === "VALIDATION" && (error as { type?: string }).type !== "response")
        return errorResponse(new ThawError("invalid_request", validationMessage(error)));
      if (code === "NOT_FOUND") return json({ error: { code: "not_found", message: "no such route" } }, 404);
      if (code === "PARSE") return errorResponse(new ThawError("invalid_request", "malformed request body"));
      ctx.log.error("unhandled error", { requestId: requestIdOf(set), error: String(error), stack: (error as Error).stack });
      return errorResponse(new ThawError("internal", "internal error"));
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
