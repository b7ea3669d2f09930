// GET /v1/functions/{name}/logs: a function's call logs (src/logs/store.ts),
// oldest first, from this node's memory. `since` is the `seq` of the last
// entry the client has (exclusive), `next` what to pass as `since` next
// time: polling with it (`thaw logs --follow`) reads each entry once.

import { type } from "arktype";
import { Elysia } from "elysia";
import { DEFAULT_READ, MAX_READ } from "../../logs/store.ts";
import { ThawError } from "../../service/errors.ts";
import type { AppContext } from "../context.ts";
import { ErrorBody, FunctionName } from "../schemas.ts";

const LogQuery = type({
  "since?": type("/^[0-9]{1,15}$/").describe("the seq of the last entry already read (exclusive); default 0"),
  "limit?": type("/^[0-9]{1,4}$/").describe(`entries to return, 1 to ${MAX_READ}; default ${DEFAULT_READ}`),
});

const LogEntry = type({
  seq: "number",
  time: type("string").describe("when the call ended (ISO 8601)"),
  callId: type("string").describe("the call's id: the job's id for an async call"),
  requestId: type("string | null").describe("the X-Request-Id of the request behind the call (null for a job enqueued without one)"),
  outcome: type("'ok' | 'exit' | 'trap' | 'timeout' | 'memory_limit'").describe("how the call ended"),
  exitCode: "number",
  "trap?": type("string").describe("the trap, for outcome trap (unreachable, out_of_bounds, ...)"),
  stderr: type("string").describe("what the call wrote to stderr, decoded as UTF-8 (bytes that are not UTF-8 become U+FFFD)"),
  truncated: type("boolean").describe("stderr was cut: at the engine's per-call cap or the log's per-entry cap (64 KiB)"),
  version: type("number").describe("the version of the function that ran"),
  durationMs: "number",
});

const LogPage = type({ entries: LogEntry.array(), next: type("number").describe("pass as `since` to read what comes after") });

/** since and limit as numbers (their shape is checked by the route's schema), or a 400. */
function parseQuery(q: typeof LogQuery.infer): { since: number; limit: number } {
  const limit = q.limit === undefined ? DEFAULT_READ : Number(q.limit);
  if (limit < 1 || limit > MAX_READ) throw new ThawError("invalid_request", `limit must be 1 to ${MAX_READ}`);
  return { since: q.since === undefined ? 0 : Number(q.since), limit };
}

export const logRoutes = (ctx: AppContext) =>
  new Elysia({ name: "logs" }).use(ctx.authn).get(
    "/v1/functions/:name/logs",
    ({ params, query, principal: { tenant } }) => {
      const { since, limit } = parseQuery(query);
      const page = ctx.invoke.logs.read(tenant, params.name, since, limit);
      if (!page) throw new ThawError("function_not_found", `no function "${params.name}"`);
      return page;
    },
    {
      params: FunctionName,
      query: LogQuery,
      detail: {
        summary: "A function's call logs: the stderr of its recent calls",
        description:
          "Kept for every call that failed (exit, trap, timeout, memory limit: with or without stderr) and every successful call that wrote to stderr; a successful call with an empty stderr leaves no entry. Sync calls, WAGI calls and job attempts alike, each with the request id it came with (X-Request-Id). Held in memory on the node that ran the call, bounded per function (1000 entries, 1 MiB), per tenant (8 MiB) and per node (--call-log-bytes, default 64 MiB), oldest first out; lost on restart, and gone with the function when it is deleted. In a cluster each node serves the calls it ran. `seq` counts per function from 1 on each node; a `since` past the newest seq (the node restarted) starts over from the oldest entry.",
      },
      response: { 200: LogPage, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
    },
  );
