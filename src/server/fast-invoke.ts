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
//   request id and CORS headers  requestIdFor / platformHeaders (app.ts)
//   body deadline                startBodyDeadline (http.ts); the idle timeout
//                                is lifted only while a call is still working
//   authentication               Auth.authenticate, as the auth plugin
//   the call                     invokeCall (routes/invoke.ts), the route's own
//   errors                       errorFor (app.ts), Elysia's onError mapping
//
// And without a promise where none is needed: a call without a body that
// the engine runs inline is answered before the handler returns (invokeNow).
//
// Whatever is not the common case goes to the Elysia app untouched, before
// anything is read: a server that is draining, a name that fails the
// route's schema (or is percent-encoded). The Elysia route stays registered for those, for app.handle() in
// tests, and for the OpenAPI document; both answer the same way, which the
// HTTP tests check through this path.

import type { Server } from "bun";
import type { Elysia } from "elysia";
import type { AppContext } from "./context.ts";
import { errorFor, platformHeaders, requestIdFor } from "./app.ts";
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

type Work = (tenant: string, headers: Record<string, string>) => Response | Promise<Response>;

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
 * `answer` for a request that may carry a body (`bodyless`: hasNoBody),
 * under the body deadline until the response is ready. A request without a
 * body has no deadline to keep: its connection's idle timeout is lifted and
 * given back here, as http.ts would.
 */
export async function answerWithBody(
  ctx: AppContext,
  cors: Cors,
  request: Request,
  server: Server<unknown>,
  bodyless: boolean,
  work: Work,
): Promise<Response> {
  if (bodyless) server.timeout(request, 0);
  else startBodyDeadline(request, server, ctx.config.bodyTimeout, ctx.config.idleTimeout);
  try {
    return await answer(ctx, cors, request, work);
  } finally {
    if (bodyless) server.timeout(request, ctx.config.idleTimeout);
    else responseReady(request);
  }
}

/** A call's error as Elysia's onError maps it, with its request id and CORS headers. */
const callError = (ctx: AppContext, e: unknown, requestId: string, headers: Record<string, string> | undefined) =>
  errorFor(ctx, e, "UNKNOWN", requestId, headers ?? { [REQUEST_ID_HEADER]: requestId });

/**
 * `answerWithBody` for the call itself, without a promise where none is
 * needed: a call without a body that the engine finished inline is
 * answered before this returns, and its connection's idle timeout never
 * has to be lifted. Only a call still working when this returns (reading
 * its body, waiting, running on a worker) lifts it until its response is
 * ready, as http.ts would.
 */
function invokeNow(ctx: AppContext, cors: Cors, request: Request, server: Server<unknown>, name: string): Response | Promise<Response> {
  const bodyless = hasNoBody(request);
  if (!bodyless) startBodyDeadline(request, server, ctx.config.bodyTimeout, ctx.config.idleTimeout);
  const requestId = requestIdFor(request);
  // Without CORS a call's only platform header is its request id, which invokeCall sets.
  const headers = cors.enabled ? platformHeaders(request, cors, requestId) : undefined;
  let response: Response | Promise<Response>;
  try {
    const { tenant } = ctx.auth.authenticate(request.headers);
    response = invokeCall(ctx, request, name, tenant, requestId, headers, bodyless);
  } catch (e) {
    return callError(ctx, e, requestId, headers);
  }
  if (!(response instanceof Promise)) return response;
  server.timeout(request, 0);
  const idle = ctx.config.idleTimeout;
  return response.then(
    (r) => {
      server.timeout(request, idle);
      return r;
    },
    (e) => {
      server.timeout(request, idle);
      return callError(ctx, e, requestId, headers);
    },
  );
}

/** The Bun route (serve `routes`) for POST /v1/functions/{name}/invoke. */
export function fastInvokeRoute(ctx: AppContext, opts: FastInvokeOptions) {
  return {
    [INVOKE_PATH]: {
      POST: (request: NamedRequest, server: Server<unknown>): Response | Promise<Response> => {
        const name = request.params.name;
        if (opts.draining() || !FunctionName.allows({ name }) || request.url.includes("%")) return opts.app().handle(request);
        return invokeNow(ctx, opts.cors, request, server, name);
      },
    },
  };
}
