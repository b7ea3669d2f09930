// Calling functions: POST /v1/functions/{name}/invoke (request body to
// stdin, stdout to the response) and ANY /fn/{name}/* (WAGI: the HTTP
// request as CGI variables, CGI headers in stdout set the response). The
// WAGI call is exported for the OpenFaaS routes (openfaas.ts).

import type { Server } from "bun";
import { Elysia } from "elysia";
import { ThawError } from "../../service/errors.ts";
import type { Tier } from "../../compiler/compile.ts";
import type { FunctionConfig } from "../../registry/registry.ts";
import type { InvokeOutcome } from "../../service/invoke.ts";
import type { Principal } from "../auth.ts";
import type { AppContext } from "../context.ts";
import { errorResponse, REQUEST_ID_HEADER, readBody, requestIdOf, withBody } from "../http.ts";
import { binaryResponse, errorResponses } from "../openapi.ts";
import { FunctionName } from "../schemas.ts";
import { type CgiResponse, CgiResponseError, cgiEnvironment, parseCgiOutput } from "../wagi.ts";

const STDERR_TAIL = 4096;

export const CALL_HEADERS = {
  "X-Request-Id": "the request's id: the client's if it sent a valid one, else a new one; also in the call's log entry",
  "X-Thaw-Exit-Code": "the function's exit code",
  "X-Thaw-Duration-Ms": "time the call took in the engine",
  "X-Thaw-Cold": "true when no warm instance was ready and one was restored (a cold start)",
  "X-Thaw-Version": "the version of the function that ran",
  "X-Thaw-Tier": "the code the call ran on: fast (callable while the optimized build runs) or optimized",
};
export const CALL_ERRORS = {
  401: "unauthorized: no bearer token, or an unknown one (WWW-Authenticate: Bearer)",
  404: "function_not_found",
  408: "request_timeout: the body did not arrive within the server's body timeout",
  409: "function_failed: the function's deploy failed",
  413: "payload_too_large",
  429: "overloaded (Retry-After), with its reason: the function's calls waiting are at their limit, the tenant's calls in flight at --tenant-concurrency (tenant_concurrency), or the call waited --queue-timeout for an instance or a CPU slot (queue_timeout)",
  500: "function_trap, with the trap and the stderr tail",
  502: "function_exit (a non-zero exit code), with the stderr tail",
  503: "function_not_ready (still compiling), memory_exhausted or shutting_down, with Retry-After",
  504: "function_timeout, with the stderr tail",
  507: "function_memory_limit, with the stderr tail",
};
const BINARY = { content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } } };

// @elysiajs/openapi gives an `.all` route one operation, with one operationId,
// under all eight methods, which makes the document invalid: the trigger is
// described here once per method, and the document takes it from system.ts.
const WAGI_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;
export const wagiPathItem = Object.fromEntries(
  WAGI_METHODS.map((method) => [
    method,
    {
      operationId: `wagi${method[0]!.toUpperCase()}${method.slice(1)}`,
      summary: `HTTP trigger (WAGI), ${method.toUpperCase()}`,
      description:
        "Any method and path under /fn/{name}/ (the `*`) calls the function with the request as CGI variables (REQUEST_METHOD, PATH_INFO, QUERY_STRING, CONTENT_TYPE, HTTP_*) and its body as stdin. If stdout starts with headers (`Status: 201`, `Content-Type: ...`) and a blank line, they set the response; headers a function may not set (X-Thaw-*, Date, Server, hop-by-hop, framing) are dropped.",
      parameters: [{ name: "name", in: "path", required: true, schema: (FunctionName.toJsonSchema() as { properties: { name: object } }).properties.name }],
      ...(method === "post" || method === "put" || method === "patch" ? { requestBody: BINARY } : {}),
      responses: {
        200: binaryResponse("the function's stdout, after its CGI head if it wrote one", CALL_HEADERS),
        default: binaryResponse("the status the function's CGI head set (`Status: ...`)", CALL_HEADERS),
        ...errorResponses({ ...CALL_ERRORS, 502: "function_exit (a non-zero exit code) or function_bad_response (a CGI head that is not valid HTTP)" }),
      },
    },
  ]),
);

export interface WagiContext {
  request: Request;
  params: { name: string };
  principal: Principal;
  server: Server<unknown> | null;
  set: { headers: Record<string, unknown> };
}

const durationMs = (o: InvokeOutcome) => (o.result.durationNs / 1e6).toFixed(3);

/** `headers` with the call's X-Thaw-* headers added. */
function addCallHeaders(headers: Record<string, string>, o: InvokeOutcome): Record<string, string> {
  headers["x-thaw-exit-code"] = String(o.result.exitCode);
  headers["x-thaw-duration-ms"] = durationMs(o);
  headers["x-thaw-cold"] = o.cold ? "true" : "false";
  headers["x-thaw-version"] = String(o.version);
  headers["x-thaw-tier"] = o.tier;
  return headers;
}

export const callHeaders = (o: InvokeOutcome): Record<string, string> => addCallHeaders({}, o);

/** A function error as JSON, with the stderr tail (and `headers`); undefined when it went well. */
export function functionError(o: InvokeOutcome, headers: Record<string, string> = {}): Response | undefined {
  if (o.outcome === "ok") return undefined;
  const stderr = new TextDecoder().decode(o.result.stderr.subarray(-STDERR_TAIL));
  const messages: Record<string, string> = {
    function_exit: `function exited with code ${o.result.exitCode}`,
    function_trap: `function trapped: ${o.result.status}`,
    function_timeout: `function ran past its ${o.config.timeoutMs} ms timeout`,
    function_memory_limit: `function ran out of memory at its ${o.config.memoryMiB} MiB limit`,
  };
  const err = new ThawError(o.outcome, messages[o.outcome] ?? o.outcome, {
    exitCode: o.result.exitCode,
    ...(o.result.status !== "ok" ? { trap: o.result.status } : {}),
    stderr,
  });
  return errorResponse(err, addCallHeaders(headers, o));
}

/**
 * POST /v1/functions/{name}/invoke once the request is admitted (its name
 * valid, its tenant known): the body to stdin, stdout or the function's
 * error back, with the request id and `headers` (fast-invoke.ts passes the
 * CORS headers here, as Elysia's lifecycle would add them). The response
 * comes without a promise when the call needed none (no body to wait for,
 * and the engine ran it inline). `bodyless`: hasNoBody(request), when the
 * caller asked already.
 */
export function invokeCall(
  ctx: AppContext,
  request: Request,
  name: string,
  tenant: string,
  requestId: string,
  headers?: Record<string, string>,
  bodyless?: boolean,
): Response | Promise<Response> {
  return withBody(request, ctx.config.maxBody, (body) => call(ctx, request, name, tenant, requestId, headers, body), bodyless);
}

function call(
  ctx: AppContext,
  request: Request,
  name: string,
  tenant: string,
  requestId: string,
  headers: Record<string, string> | undefined,
  body: Uint8Array,
): Response | Promise<Response> {
  const o = ctx.invoke.start(tenant, name, { body, signal: request.signal, requestId });
  if (o instanceof Promise) return o.then((o) => callResponse(o, requestId, headers));
  return callResponse(o, requestId, headers);
}

/**
 * The headers of a successful call of one version of a function on one
 * tier, warm or cold: all but the request id and the duration are the same
 * for every such call. Response copies the Headers it is given, so a call
 * sets its two on the shared ones and hands them over; that is half the
 * cost of building seven headers from a record per call.
 */
interface OkHeaders {
  version: number;
  tier: Tier;
  contentType: string;
  warm: Headers;
  cold: Headers;
}

const okHeaders = new WeakMap<FunctionConfig, OkHeaders>();

function okHeadersOf(o: InvokeOutcome): Headers {
  let h = okHeaders.get(o.config);
  if (h?.version !== o.version || h.tier !== o.tier || h.contentType !== o.config.contentType) {
    const of = (cold: boolean) =>
      new Headers({ [REQUEST_ID_HEADER]: "", "content-type": o.config.contentType, ...addCallHeaders({}, { ...o, cold }) });
    h = { version: o.version, tier: o.tier, contentType: o.config.contentType, warm: of(false), cold: of(true) };
    okHeaders.set(o.config, h);
  }
  return o.cold ? h.cold : h.warm;
}

/** The response to a call that ran: its stdout, or its error; with the request id and `headers`. */
function callResponse(o: InvokeOutcome, requestId: string, headers: Record<string, string> | undefined): Response {
  if (o.outcome !== "ok") return functionError(o, headers ?? { [REQUEST_ID_HEADER]: requestId })!;
  if (headers) {
    headers[REQUEST_ID_HEADER] = requestId;
    headers["content-type"] = o.config.contentType;
    return new Response(o.result.stdout, { headers: addCallHeaders(headers, o) });
  }
  const shared = okHeadersOf(o);
  shared.set(REQUEST_ID_HEADER, requestId);
  shared.set("x-thaw-duration-ms", durationMs(o));
  return new Response(o.result.stdout, { headers: shared });
}

/**
 * The platform's headers over a function's own: the request id and, with
 * CORS on, the Access-Control-* headers win, and Vary: Origin is added to
 * the function's Vary rather than dropped (Elysia keeps a response's own
 * headers over `set.headers`).
 */
function platformHeaders(headers: Headers, set: WagiContext["set"]): void {
  for (const [name, value] of Object.entries(set.headers)) {
    if (typeof value !== "string") continue;
    if (name === "vary" && headers.has("vary")) headers.set("vary", `${headers.get("vary")}, ${value}`);
    else if (name === REQUEST_ID_HEADER || name.startsWith("access-control-")) headers.set(name, value);
  }
}

/**
 * A call with the HTTP request as CGI variables, its path under `base`
 * (/fn or /function): the function's CGI head, if it writes one, sets the
 * response -- but not the request id, nor the CORS headers when the
 * operator configured CORS.
 */
export async function wagiCall(ctx: AppContext, { request, params, principal, server, set }: WagiContext, base: string): Promise<Response> {
  const name = params.name;
  if (!FunctionName.allows({ name })) throw new ThawError("function_not_found", `no function "${name}"`);
  const body = await readBody(request, ctx.config.maxBody);
  const prefix = `${base}/${name}`;
  const path = new URL(request.url).pathname;
  const env = cgiEnvironment(request, prefix, path.slice(prefix.length) || "/", server?.requestIP(request)?.address ?? "");
  const requestId = requestIdOf(set);
  const o = await ctx.invoke.invoke(principal.tenant, name, { body, env, signal: request.signal, requestId });
  const failed = functionError(o);
  if (failed) return failed;
  let cgi: CgiResponse | undefined;
  try {
    cgi = parseCgiOutput(o.result.stdout);
  } catch (e) {
    if (!(e instanceof CgiResponseError)) throw e;
    return errorResponse(new ThawError("function_bad_response", `function output is not a valid HTTP response: ${e.message}`), callHeaders(o));
  }
  const headers = new Headers(callHeaders(o));
  if (!cgi) {
    headers.set("content-type", o.config.contentType);
    return new Response(o.result.stdout, { headers });
  }
  if (!cgi.headers.some(([n]) => n.toLowerCase() === "content-type")) headers.set("content-type", o.config.contentType);
  for (const [n, v] of cgi.headers) headers.append(n, v);
  platformHeaders(headers, set);
  return new Response(cgi.body, { status: cgi.status, headers });
}

export const invokeRoutes = (ctx: AppContext) => {
  const wagi = (c: WagiContext) => wagiCall(ctx, c, "/fn");
  const wagiOptions = { parse: "none", detail: { hide: true } } as const;
  return new Elysia({ name: "invoke" })
    .use(ctx.authn)
    .post(
      "/v1/functions/:name/invoke",
      ({ request, params, principal, set }) => invokeCall(ctx, request, params.name, principal.tenant, requestIdOf(set)),
      {
        parse: "none",
        params: FunctionName,
        detail: {
          summary: "Call a function synchronously",
          description:
            "The request body is the function's stdin; its stdout is the response body (content type from the function's config). Headers: X-Thaw-Exit-Code, X-Thaw-Duration-Ms, X-Thaw-Cold, X-Thaw-Version, X-Thaw-Tier. Function errors: 502 function_exit, 500 function_trap, 504 function_timeout, 507 function_memory_limit, each with the stderr tail. Platform errors: 404, 409 function_failed, 413, 429 overloaded (Retry-After; reason tenant_concurrency or queue_timeout), 503 function_not_ready. A call whose client disconnects before it starts never runs.",
          requestBody: BINARY,
          responses: {
            200: binaryResponse("the function's stdout, in the content type of its config", CALL_HEADERS),
            ...errorResponses({ 400: "invalid_request: not a function name", ...CALL_ERRORS }),
          },
        } as never,
      },
    )
    .all("/fn/:name", wagi, wagiOptions)
    .all("/fn/:name/*", wagi, wagiOptions);
};
