// Async calls: POST /v1/functions/{name}/jobs accepts a call (202 with the
// job and its Location), /v1/jobs/{id} tells how it went, /result gives the
// function's stdout, /retry puts a dead job back in the queue.
// GET /v1/callback-secret gives a tenant the key its callbacks are signed
// with.

import { type } from "arktype";
import { Elysia } from "elysia";
import type { AppContext } from "../context.ts";
import { json, queryFlag, readBody, requestIdOf } from "../http.ts";
import { binaryResponse, errorResponses } from "../openapi.ts";
import { ErrorBody, FunctionName, JobId, JobQuery, JobView } from "../schemas.ts";

const CallbackSecret = type({ tenant: "string", secret: "string", algorithm: "string", header: "string", signedPayload: "string" });

/** A submit's query parameters, as JobQuery gives them. */
export interface SubmitQuery {
  callback?: string;
  attempts?: number;
  retryFunctionErrors?: string;
}

/** The submit itself, after auth and validation: read the body, queue the job, answer 202 (also fast-jobs.ts, which passes `bodyless`: hasNoBody). */
export async function submitJob(
  ctx: AppContext,
  request: Request,
  tenant: string,
  name: string,
  q: SubmitQuery,
  requestId: string,
  headers: Record<string, string> = {},
  bodyless?: boolean,
): Promise<Response> {
  const body = await readBody(request, ctx.config.maxBody, bodyless);
  const job = await ctx.jobs.submit(tenant, name, {
    body,
    callbackUrl: q.callback,
    attempts: q.attempts,
    retryFunctionErrors: queryFlag(q.retryFunctionErrors),
    requestId,
  });
  headers.location = `/v1/jobs/${encodeURIComponent(job.id)}`;
  return jobResponse(job, 202, headers);
}

/** http.ts's json() for a job, taking `headers` as they are rather than copying them (two per async call). */
export function jobResponse(job: unknown, status: number, headers: Record<string, string>): Response {
  headers["content-type"] = "application/json";
  return new Response(JSON.stringify(job), { status, headers });
}

export const jobRoutes = (ctx: AppContext) =>
  new Elysia({ name: "jobs" })
    .use(ctx.authn)
    .post(
      "/v1/functions/:name/jobs",
      ({ request, params, query, set, principal: { tenant } }) => submitJob(ctx, request, tenant, params.name, query, requestIdOf(set)),
      {
        parse: "none",
        params: FunctionName,
        query: JobQuery,
        detail: {
          summary: "Call a function asynchronously",
          description:
            "Queues a call (the request body is its stdin) and answers 202 with the job and a Location once the job is stored. Platform failures (overloaded, out of memory, node lost) are retried with exponential backoff up to `attempts` (default 3); function errors are the result unless `retryFunctionErrors=true`. After the last attempt a job is `dead`. With `callback=URL` (http or https, no credentials, a public address unless the operator allows it: 400 invalid_request otherwise), the finished job is POSTed there once its outcome is recorded, as JSON with the body in base64, signed (X-Thaw-Signature; see GET /v1/callback-secret), with X-Thaw-Job-Id, X-Thaw-Job-Status, X-Thaw-Delivery-Attempt and Idempotency-Key. 503 queue_unavailable when the queue's store (Redis) is unreachable.",
          requestBody: { content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } } },
        } as never,
        response: { 202: JobView, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 408: ErrorBody, 413: ErrorBody, 503: ErrorBody },
      },
    )
    .get("/v1/jobs/:id", ({ params, principal: { tenant } }) => ctx.jobs.get(tenant, params.id), {
      params: JobId,
      detail: {
        summary: "A job: status, attempts, timings, result summary, callback delivery",
        description: "Status is queued, running, succeeded, failed (the function failed) or dead (the platform gave up). Finished jobs are kept for the server's job retention.",
      },
      response: { 200: JobView, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 503: ErrorBody },
    })
    .get(
      "/v1/jobs/:id/result",
      async ({ params, principal: { tenant } }) => {
        const r = await ctx.jobs.result(tenant, params.id);
        return new Response(r.body, {
          headers: {
            "content-type": r.contentType,
            "x-thaw-exit-code": String(r.exitCode),
            "x-thaw-outcome": r.outcome,
            "x-thaw-duration-ms": r.durationMs.toFixed(3),
          },
        });
      },
      {
        params: JobId,
        detail: {
          summary: "A finished job's stdout, with its exit code and outcome in X-Thaw-* headers",
          responses: {
            200: binaryResponse("the function's stdout, in the content type of its config", {
              "X-Thaw-Exit-Code": "the function's exit code",
              "X-Thaw-Outcome": "ok, or the function error the result is",
              "X-Thaw-Duration-Ms": "time the call took in the engine",
            }),
            ...errorResponses({ 400: "invalid_request", 401: "unauthorized", 404: "job_not_found: no such job, or no result yet", 503: "queue_unavailable" }),
          },
        } as never,
      },
    )
    .post("/v1/jobs/:id/retry", async ({ params, principal: { tenant } }) => json(await ctx.jobs.retry(tenant, params.id), 202), {
      params: JobId,
      detail: { summary: "Put a dead job back in the queue with a fresh set of attempts" },
      response: { 202: JobView, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 503: ErrorBody },
    })
    .get(
      "/v1/callback-secret",
      async ({ principal: { tenant } }) => ({
        tenant,
        secret: await ctx.jobs.callbackSecret(tenant),
        algorithm: "HMAC-SHA256",
        header: "X-Thaw-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, signedPayload)>",
        signedPayload: "<t>.<request body>",
      }),
      {
        detail: {
          summary: "The key this tenant's callbacks are signed with",
          description:
            "Every callback carries X-Thaw-Signature: t=<unix seconds>,v1=<hex>, where hex is HMAC-SHA256 keyed with this secret over `${t}.${body}`. Recompute it, compare in constant time, and refuse a t more than a few minutes old. The secret is per tenant, derived from the node's (--callback-secret).",
        },
        response: { 200: CallbackSecret, 401: ErrorBody, 503: ErrorBody },
      },
    );
