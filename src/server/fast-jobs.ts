// The job routes every async call takes -- POST /v1/functions/{name}/jobs
// (submit) and GET /v1/jobs/{id} (status) -- served as native Bun routes,
// as fast-invoke.ts serves the sync call and for the same reason: a job is
// two requests, and Elysia's lifecycle costs more per request than the
// queue does per job (`bun run bench jobs`).
//
// Each handler does the Elysia route's steps inline through fast-invoke.ts's
// `answerWithBody` (submit) and `answer` (status): request id and CORS
// headers, the body deadline, authentication, error mapping; the work itself
// is submitJob / ctx.jobs.get, as in routes/jobs.ts.
//
// Only the common case is served here: a name or id that passes the route's
// schema without percent-decoding, and a query string whose every parameter
// is one the schema accepts as it stands (no callback, no repeats, no
// escapes, no unknown keys). Anything else -- a draining server, a bad id, a
// callback URL, a malformed query -- goes to the Elysia app untouched, so
// its answer (a 400 and its message, a 503 shutting_down) is Elysia's by
// construction. The Elysia routes stay registered for those, for
// app.handle() in tests, and for the OpenAPI document.

import type { Server } from "bun";
import type { AppContext } from "./context.ts";
import { answer, answerWithBody, type FastInvokeOptions } from "./fast-invoke.ts";
import { hasNoBody, REQUEST_ID_HEADER } from "./http.ts";
import { jobResponse, type SubmitQuery, submitJob } from "./routes/jobs.ts";
import { FunctionName, JobId } from "./schemas.ts";

export const SUBMIT_PATH = "/v1/functions/:name/jobs";
export const STATUS_PATH = "/v1/jobs/:id";

type ParamRequest<P> = Request & { params: P };

/**
 * The submit's query when every parameter is one JobQuery takes as it is
 * (attempts 1 to 20 in plain digits, retryFunctionErrors a flag), at most
 * once each; undefined for anything else, which Elysia then answers.
 */
export function plainSubmitQuery(url: string): SubmitQuery | undefined {
  const q = url.indexOf("?");
  if (q < 0 || q === url.length - 1) return {};
  const query: SubmitQuery = {};
  for (const pair of url.slice(q + 1).split("&")) {
    const eq = pair.indexOf("=");
    const key = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? undefined : pair.slice(eq + 1);
    if (key === "attempts" && query.attempts === undefined && value !== undefined && /^(?:[1-9]|1\d|20)$/.test(value)) {
      query.attempts = Number(value);
    } else if (key === "retryFunctionErrors" && query.retryFunctionErrors === undefined && value !== undefined && /^(?:true|false|1|0)$/.test(value)) {
      query.retryFunctionErrors = value;
    } else {
      return undefined;
    }
  }
  return query;
}

/** The Bun routes (serve `routes`) for job submit and job status. */
export function fastJobRoutes(ctx: AppContext, opts: FastInvokeOptions) {
  return {
    [SUBMIT_PATH]: {
      POST: async (request: ParamRequest<{ name: string }>, server: Server<unknown>): Promise<Response> => {
        const name = request.params.name;
        const query = opts.draining() || request.url.includes("%") || !FunctionName.allows({ name }) ? undefined : plainSubmitQuery(request.url);
        if (!query) return opts.app().handle(request);
        const bodyless = hasNoBody(request);
        return answerWithBody(ctx, opts.cors, request, server, bodyless, (tenant, headers) =>
          submitJob(ctx, request, tenant, name, query, headers[REQUEST_ID_HEADER]!, headers, bodyless),
        );
      },
    },
    [STATUS_PATH]: {
      GET: async (request: ParamRequest<{ id: string }>): Promise<Response> => {
        const id = request.params.id;
        if (opts.draining() || request.url.includes("%") || !JobId.allows({ id })) return opts.app().handle(request);
        return answer(ctx, opts.cors, request, async (tenant, headers) => jobResponse(await ctx.jobs.get(tenant, id), 200, headers));
      },
    },
  };
}
