// The hot route, POST /v1/functions/{name}/invoke, served as a native Bun
// route instead of through Elysia's per-request lifecycle.
//
// Elysia runs every request through its hooks: the request id and CORS
// hook, the draining and body-deadline hook, the auth resolve, the params
// validation, the after-handle hook, and then merges `set.headers` into the
// response, which copies it. For a call that does nothing but run a function
// that machinery costs as much as the call itself (`bun run bench invoke`),
// so this handler does the same steps inline, in the same order, with
// the same helpers:
//
//   request id and CORS headers  platformHeaders (app.ts)
//   body deadline                startBodyDeadline / responseReady (http.ts);
//                                a call without a body only lifts the idle timeout
//   authentication               Auth.authenticate, as the auth plugin
//   the call                     invokeCall (routes/invoke.ts), the route's own
//   errors                       errorFor (app.ts), Elysia's onError mapping
//
// Whatever is not the common case goes to the Elysia app untouched, before
// anything is read: a server that is draining, a name that fails the
// route's schema (or is percent-encoded). The Elysia route stays registered for those, for app.handle() in
// tests, and for the OpenAPI document; both answer the same way, which the
// HTTP tests check through this path.

import type { Server } from "bun";
import type { Elysia } from "elysia";
import type { AppContext } from "./context.ts";
import { errorFor, platformHeaders } from "./app.ts";
import type { Cors } from "./cors.ts";
import { hasNoBody, REQUEST_ID_HEADER, responseReady, startBodyDeadline } from "./http.ts";
import { invokeCall } from "./routes/invoke.ts";
import { FunctionName } from "./schemas.ts";

export const INVOKE_PATH = "/v1/functions/:name/invoke";

type NamedRequest = Request & { params: { name: string } };

export interface FastInvokeOptions {
  /** The app that answers whatever this handler leaves alone. */
  app: () => Pick<Elysia, "handle">;
  cors: Cors;
  /** True once the server refuses new requests (server.ts answers those). */
  draining: () => boolean;
}

type Work = (tenant: string, headers: Record<string, string>) => Promise<Response>;

/**
 * Elysia's steps around `work`, inline: the request id and CORS headers,
 * authentication, and its error mapping. `work` gets the tenant and the
 * headers its response carries.
 */
export async function answer(ctx: AppContext, cors: Cors, request: Request, work: Work): Promise<Response> {
  const headers = platformHeaders(request, cors);
  try {
    const { tenant } = ctx.auth.authenticate(request.headers);
    return await work(tenant, headers);
  } catch (e) {
    return errorFor(ctx, e, "UNKNOWN", headers[REQUEST_ID_HEADER]!, headers);
  }
}

/**
 * `answer` for a request that may carry a body, under the body deadline
 * until the response is ready. A request without a body has no deadline to
 * keep: its connection's idle timeout is lifted and given back here, as
 * http.ts would.
 */
export async function answerWithBody(ctx: AppContext, cors: Cors, request: Request, server: Server<unknown>, work: Work): Promise<Response> {
  const bodyless = hasNoBody(request);
  if (bodyless) server.timeout(request, 0);
  else startBodyDeadline(request, server, ctx.config.bodyTimeout, ctx.config.idleTimeout);
  try {
    return await answer(ctx, cors, request, work);
  } finally {
    if (bodyless) server.timeout(request, ctx.config.idleTimeout);
    else responseReady(request);
  }
}

/** The Bun route (serve `routes`) for POST /v1/functions/{name}/invoke. */
export function fastInvokeRoute(ctx: AppContext, opts: FastInvokeOptions) {
  return {
    [INVOKE_PATH]: {
      POST: async (request: NamedRequest, server: Server<unknown>): Promise<Response> => {
        const name = request.params.name;
        if (opts.draining() || !FunctionName.allows({ name }) || request.url.includes("%")) return opts.app().handle(request);
        return answerWithBody(ctx, opts.cors, request, server, (tenant, headers) =>
          invokeCall(ctx, request, name, tenant, headers[REQUEST_ID_HEADER]!, headers),
        );
      },
    },
  };
}
