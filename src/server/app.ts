// The HTTP application: routes plus one error mapping. Routes stay thin
// (validate, call a service, map the result); every error leaves as JSON
// with a stable code.

import { Elysia } from "elysia";
import { ThawError } from "../service/errors.ts";
import type { AppContext } from "./context.ts";
import { errorResponse, json, responseReady } from "./http.ts";
import { functionRoutes } from "./routes/functions.ts";
import { invokeRoutes } from "./routes/invoke.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { nodeRoutes } from "./routes/nodes.ts";
import { poolRoutes } from "./routes/pools.ts";
import { systemRoutes } from "./routes/system.ts";

/** Elysia's validation error as one readable line (its `message` is a JSON document). */
function validationMessage(error: unknown): string {
  const first = (error as { valueError?: { message?: string } }).valueError?.message;
  const message = first ?? "request does not match the API's schema";
  return message.length > 300 ? `${message.slice(0, 300)}...` : message;
}

export function createApp(ctx: AppContext) {
  return new Elysia()
    .onAfterHandle({ as: "global" }, ({ request }) => responseReady(request))
    .onError(({ error, code, request }) => {
      responseReady(request);
      if (error instanceof ThawError) return errorResponse(error);
      // A response that fails its own schema is thaw's bug, not the client's request.
      if (code === "VALIDATION" && (error as { type?: string }).type !== "response")
        return errorResponse(new ThawError("invalid_request", validationMessage(error)));
      if (code === "NOT_FOUND") return json({ error: { code: "not_found", message: "no such route" } }, 404);
      if (code === "PARSE") return errorResponse(new ThawError("invalid_request", "malformed request body"));
      ctx.log.error("unhandled error", { error: String(error), stack: (error as Error).stack });
      return errorResponse(new ThawError("internal", "internal error"));
    })
    .use(systemRoutes(ctx))
    .use(functionRoutes(ctx))
    .use(invokeRoutes(ctx))
    .use(jobRoutes(ctx))
    .use(poolRoutes(ctx))
    .use(nodeRoutes(ctx));
}
