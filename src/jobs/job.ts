// An async job: one call of a function, accepted now and run later, at
// least once, by whichever node takes it from the queue.
//
// Life of a job:
//
//   queued ──▶ running ──▶ succeeded       the function exited 0
//     ▲           │   ├──▶ failed          the function ran and failed (exit, trap,
//     │           │   │                    timeout, memory); final unless the job
//     │           │   │                    asked for retryFunctionErrors
//     └─ backoff ─┘   └──▶ dead            the platform could not complete it: a
//                                          retriable error on the last attempt, or
//                                          one that no retry can fix (no such function)
//
// Platform failures (overloaded, out of memory, still compiling, the node
// shutting down or dying) are retried with exponential backoff; function
// errors are the function's answer and are kept as the result. `dead` is the
// dead letter: the job keeps its last error (and last result, if the
// function ran) until it expires.
//
// The payload is one msgpack map, the same bytes in both queues (Redis and
// embedded), so other services can enqueue calls without thaw's code:
//
//   { v: 1, tenant: str, function: str, body: bin,
//     env?: {str: str}, callbackUrl?: str, retryFunctionErrors?: bool,
//     requestId?: str }
//
// requestId is the X-Request-Id of the request that submitted the job: it
// is shown with the job and is the request id of every attempt's call log.

import { Packr } from "msgpackr";
import { validRequestId } from "../logs/request-id.ts";
import type { ErrorCode } from "../service/errors.ts";
import { packPayload } from "./payload.ts";

export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "dead";

export interface JobSpec {
  tenant: string;
  function: string;
  body: Uint8Array;
  env?: Record<string, string>;
  /** Receives the finished job by POST (JSON, as GET /v1/jobs/{id}, plus the body in base64). */
  callbackUrl?: string;
  /** Retry function errors too, not only platform failures. */
  retryFunctionErrors?: boolean;
  /** The X-Request-Id of the submitting request. */
  requestId?: string;
}

/** What a finished call left: kept with the job until it expires. */
export interface JobResult {
  outcome: "ok" | ErrorCode;
  exitCode: number;
  body: Uint8Array;
  contentType: string;
  /** The last 4 KiB of stderr. */
  stderr: string;
  durationMs: number;
  cold: boolean;
  version: number;
}

/** The delivery of a job's final outcome to its callback URL (callback.ts). */
export interface CallbackStatus {
  url: string;
  state: "pending" | "delivered" | "failed";
  /** Delivery attempts made. */
  attempts: number;
  /** Coarse on purpose: "callback delivery failed: HTTP 503", "... could not connect", "callback address not allowed". */
  lastError?: string;
  /** The delivery's Idempotency-Key, kept with the job (not shown in the API). */
  key?: string;
}

/** A job as clients see it (GET /v1/jobs/{id}). */
export interface JobView {
  id: string;
  tenant: string;
  function: string;
  status: JobStatus;
  attempts: number;
  maxAttempts: number;
  /** The X-Request-Id of the request that submitted the job. */
  requestId?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** From acceptance to the start of the last attempt. */
  queueMs?: number;
  /** The last attempt, from start to finish. */
  runMs?: number;
  node?: string;
  /** The last platform error, for a job being retried or dead. */
  error?: { code: string; message: string };
  result?: {
    outcome: JobResult["outcome"];
    exitCode: number;
    contentType: string;
    bytes: number;
    stderr: string;
    durationMs: number;
    /** The body itself: GET it. */
    url: string;
  };
  callback?: CallbackStatus;
}

/** Everything a queue stores about a job besides the payload, in one shape for both queues. */
export interface JobState {
  id: string;
  spec: Pick<JobSpec, "tenant" | "function" | "callbackUrl" | "requestId">;
  status: JobStatus;
  attempts: number;
  maxAttempts: number;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  node?: string;
  error?: { code: string; message: string };
  result?: JobResult;
  callback?: CallbackStatus;
}

export const DEFAULT_ATTEMPTS = 3;
export const MAX_ATTEMPTS = 20;

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Optional fields are absent, not undefined, in the API. The view is built
 * field by field rather than pruned with `delete`, which would turn every
 * view into a slow dictionary object (a status read makes one per request).
 */
export function viewOf(s: JobState): JobView {
  const v: JobView = { id: s.id, tenant: s.spec.tenant, function: s.spec.function, status: s.status, attempts: s.attempts, maxAttempts: s.maxAttempts } as JobView;
  if (s.spec.requestId !== undefined) v.requestId = s.spec.requestId;
  v.createdAt = iso(s.createdAt);
  if (s.startedAt !== undefined) v.startedAt = iso(s.startedAt);
  if (s.finishedAt !== undefined) v.finishedAt = iso(s.finishedAt);
  if (s.startedAt !== undefined) {
    v.queueMs = Math.max(0, s.startedAt - s.createdAt);
    if (s.finishedAt !== undefined) v.runMs = s.finishedAt - s.startedAt;
  }
  if (s.node !== undefined) v.node = s.node;
  if (s.error !== undefined) v.error = s.error;
  const r = s.result;
  if (r) {
    v.result = {
      outcome: r.outcome,
      exitCode: r.exitCode,
      contentType: r.contentType,
      bytes: r.body.length,
      stderr: r.stderr,
      durationMs: r.durationMs,
      url: `/v1/jobs/${encodeURIComponent(s.id)}/result`,
    };
  }
  const cb = s.callback;
  if (cb) {
    const c: CallbackStatus = { url: cb.url, state: cb.state, attempts: cb.attempts };
    if (cb.lastError !== undefined) c.lastError = cb.lastError;
    v.callback = c;
  }
  return v;
}

/** Exponential backoff before attempt `attempt + 1`, after `attempt` attempts made (BullMQ's formula, which thaw has always used). */
export const backoffMs = (attempt: number, baseMs: number) => baseMs * 2 ** Math.max(0, attempt - 1);

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export const decode = <T>(bytes: Uint8Array): T => packr.unpack(bytes) as T;

export class PayloadError extends Error {}

export function encodePayload(spec: JobSpec): Uint8Array {
  return packPayload(spec);
}

/** A payload from the queue, checked: producers outside thaw write these too. */
export function decodePayload(bytes: Uint8Array): JobSpec {
  let p: Record<string, unknown>;
  try {
    p = decode(bytes);
  } catch (e) {
    throw new PayloadError(`payload is not msgpack: ${(e as Error).message}`);
  }
  if (typeof p !== "object" || p === null) throw new PayloadError("payload is not a msgpack map");
  if (p.v !== 1) throw new PayloadError(`payload version ${String(p.v)} is not supported (expected v: 1)`);
  if (typeof p.tenant !== "string" || typeof p.function !== "string")
    throw new PayloadError("payload needs string fields tenant and function");
  const body = p.body ?? new Uint8Array();
  if (!(body instanceof Uint8Array)) throw new PayloadError("payload body must be msgpack bin");
  const env = p.env ?? undefined;
  if (env !== undefined && (typeof env !== "object" || Object.values(env as object).some((v) => typeof v !== "string")))
    throw new PayloadError("payload env must map strings to strings");
  if (p.callbackUrl !== undefined && typeof p.callbackUrl !== "string") throw new PayloadError("payload callbackUrl must be a string");
  if (p.requestId !== undefined && (typeof p.requestId !== "string" || !validRequestId(p.requestId)))
    throw new PayloadError("payload requestId must be a string of 1 to 128 of A-Z, a-z, 0-9, '.', '_', ':' and '-'");
  return {
    tenant: p.tenant,
    function: p.function,
    body,
    env: env as Record<string, string> | undefined,
    callbackUrl: p.callbackUrl as string | undefined,
    retryFunctionErrors: p.retryFunctionErrors === true,
    requestId: p.requestId as string | undefined,
  };
}
