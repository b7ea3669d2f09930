// OpenFaaS-style routes, so clients written for an OpenFaaS gateway call
// thaw functions unchanged:
//
//   GET|POST /function/{name}[/*]   a synchronous call. It is the WAGI call
//                                   (invoke.ts) under /function: the body is
//                                   stdin, the request is in CGI variables,
//                                   stdout is the response -- with its CGI
//                                   head applied if the function writes one.
//                                   Same auth, limits and errors as
//                                   /v1/functions/{name}/invoke.
//   POST /async-function/{name}     an async job (jobs.ts): 202 with the job,
//                                   its id in X-Call-Id; X-Callback-Url is
//                                   the job's callback, checked exactly as
//                                   ?callback= is (destination.ts).
//
// OpenFaaS answers an async call with an empty body; thaw sends the job
// (as POST /v1/functions/{name}/jobs does), which such clients ignore.

import { type } from "arktype";
import { Elysia } from "elysia";
import type { AppContext } from "../context.ts";
import { json, readBody, requestIdOf } from "../http.ts";
import { binaryResponse, errorResponses } from "../openapi.ts";
import { ErrorBody, FunctionName, JobView } from "../schemas.ts";
import { CALL_ERRORS, CALL_HEADERS, type WagiContext, wagiCall } from "./invoke.ts";

const BINARY = { content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } } };
const CallbackHeader = type({
  "x-callback-url?": type("string").describe("POST the finished job here: http or https, no credentials, a public address unless the operator allows it"),
});
const NAME_PARAMETER = { name: "name", in: "path", required: true, schema: (FunctionName.toJsonSchema() as { properties: { name: object } }).properties.name };

// The sync route has two paths and two methods; like /fn/{name}/* (invoke.ts)
// it is described here, once per method, and the document takes it from system.ts.
const syncOperation = (method: "get" | "post", path: string) => ({
  operationId: `openFaas${method === "get" ? "Get" : "Post"}${path ? "Path" : ""}`,
  summary: `Call a function, OpenFaaS style (${method.toUpperCase()})`,
  description:
    "A synchronous call, as on an OpenFaaS gateway. The body is the function's stdin and the request reaches it as CGI variables (REQUEST_METHOD, PATH_INFO: the rest of the path after /function/{name}, QUERY_STRING, HTTP_*), as on /fn/{name}/*: stdout is the response, and a CGI head at its top (`Status:`, `Content-Type:`) sets the status and headers. Auth, limits and errors are those of POST /v1/functions/{name}/invoke.",
  parameters: [NAME_PARAMETER],
  ...(method === "post" ? { requestBody: BINARY } : {}),
  responses: {
    200: binaryResponse("the function's stdout, after its CGI head if it wrote one", CALL_HEADERS),
    default: binaryResponse("the status the function's CGI head set (`Status: ...`)", CALL_HEADERS),
    ...errorResponses({ ...CALL_ERRORS, 502: "function_exit (a non-zero exit code) or function_bad_response (a CGI head that is not valid HTTP)" }),
  },
});

export const openFaasPaths = {
  "/function/{name}": { get: syncOperation("get", ""), post: syncOperation("post", "") },
  "/function/{name}/*": { get: syncOperation("get", "*"), post: syncOperation("post", "*") },
};

export const openFaasRoutes = (ctx: AppContext) => {
  const sync = (c: WagiContext) => wagiCall(ctx, c, "/function");
  const hidden = { parse: "none", detail: { hide: true } } as const;
  return new Elysia({ name: "openfaas" })
    .use(ctx.authn)
    .get("/function/:name", sync, hidden)
    .post("/function/:name", sync, hidden)
    .get("/function/:name/*", sync, hidden)
    .post("/function/:name/*", sync, hidden)
    .post(
      "/async-function/:name",
      async ({ request, params, headers, set, principal: { tenant } }) => {
        const body = await readBody(request, ctx.config.maxBody);
        const job = await ctx.jobs.submit(tenant, params.name, {
          body,
          callbackUrl: headers["x-callback-url"],
          requestId: requestIdOf(set),
        });
        return json(job, 202, { location: `/v1/jobs/${encodeURIComponent(job.id)}`, "x-call-id": job.id });
      },
      {
        parse: "none",
        params: FunctionName,
        headers: CallbackHeader,
        detail: {
          summary: "Call a function asynchronously, OpenFaaS style",
          description:
            "Queues a call as POST /v1/functions/{name}/jobs does (the body is its stdin; 3 attempts for platform failures) and answers 202 with the job, its id in X-Call-Id and its URL in Location. X-Callback-Url, if present, is where the finished job is POSTed (signed, see GET /v1/callback-secret): http or https, no credentials, a public address unless the operator allows it -- 400 invalid_request otherwise.",
          requestBody: BINARY,
        } as never,
        response: { 202: JobView, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 408: ErrorBody, 413: ErrorBody, 503: ErrorBody },
      },
    );
};
