// Small HTTP helpers shared by the routes: JSON errors, bounded bodies.
//
// A body must arrive within the body timeout of its request's headers, or
// the client gets 408 request_timeout: a client that stalls (or trickles)
// its upload would otherwise hold a connection and a handler until Bun's
// idle timeout drops the connection without a word. While a body is read
// under that deadline, Bun's idle timeout is lifted for the request (the
// deadline is the stricter bound, and a 408 must get out first). It stays
// lifted while the handler works -- a call may run for its whole timeout, a
// `wait=true` deploy for a compile, and the connection is busy, not idle --
// and comes back when the response is ready (responseReady, from app.ts).

import type { Server } from "bun";
import { ThawError } from "../service/errors.ts";

export const REQUEST_ID_HEADER = "x-request-id";

/** The request's id, as app.ts set it for its response. */
export const requestIdOf = (set: { headers: Record<string, unknown> }): string => set.headers[REQUEST_ID_HEADER] as string;

export function errorResponse(e: ThawError, extraHeaders: Record<string, string> = {}): Response {
  const headers: Record<string, string> = { "content-type": "application/json", ...extraHeaders };
  if (e.retryAfterSeconds !== undefined) headers["retry-after"] = String(e.retryAfterSeconds);
  if (e.code === "unauthorized") headers["www-authenticate"] = 'Bearer realm="thaw"';
  // The rest of the body is still on the wire: the connection cannot carry another request.
  if (e.code === "request_timeout") headers.connection = "close";
  return new Response(JSON.stringify(e.toJSON()), { status: e.status, headers });
}

/** A boolean query parameter ('true' | 'false' | '1' | '0' in the schemas): absent is false. */
export const queryFlag = (value: string | undefined) => value === "true" || value === "1";

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

interface BodyDeadline {
  at: number;
  timeoutMs: number;
  server: Server<unknown>;
  /** The server's idle timeout, given back to the connection once the body is read. */
  idleSeconds: number;
}

const deadlines = new WeakMap<Request, BodyDeadline>();

/** Starts the clock for `request`'s body: called when its headers have arrived. */
export function startBodyDeadline(request: Request, server: Server<unknown>, timeoutMs: number, idleSeconds: number): void {
  deadlines.set(request, { at: Date.now() + timeoutMs, timeoutMs, server, idleSeconds });
}

const EMPTY = new Uint8Array(0);

/** HTTP/1.1: a request without Content-Length and Transfer-Encoding, or with Content-Length 0, has no body. */
export function hasNoBody(req: Request): boolean {
  const length = req.headers.get("content-length");
  return length === "0" || (length === null && !req.headers.has("transfer-encoding"));
}

const tooLarge = (limit: number) => new ThawError("payload_too_large", `request body is over the limit of ${limit} bytes`, { limit });

/**
 * The request body, refused with 413 before or while reading if over
 * `limit`, and with 408 if it is late; an absent body at once, without a
 * promise. `bodyless`: hasNoBody(req), when the caller asked already.
 */
export const readBody = (req: Request, limit: number, bodyless = hasNoBody(req)): Uint8Array | Promise<Uint8Array> =>
  withBody(req, limit, (body) => body, bodyless);

/**
 * `use` of the request body as readBody reads it, in the promise that
 * reads it: one promise for a call with a body rather than one per step
 * (the invoke route), and none for a request without one.
 */
export function withBody<T>(req: Request, limit: number, use: (body: Uint8Array) => T | Promise<T>, bodyless = hasNoBody(req)): T | Promise<T> {
  // Nothing to wait for, so no deadline timer; the idle timeout is lifted all the same.
  if (bodyless) {
    liftIdleTimeout(req);
    return use(EMPTY);
  }
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > limit) throw tooLarge(limit);
  return withinDeadline(req, req.arrayBuffer(), (buffer) => {
    if (buffer.byteLength > limit) throw tooLarge(limit);
    return use(new Uint8Array(buffer));
  });
}

/** A multipart/form-data body, under the same deadline; a malformed one is a 400. */
export function readForm(req: Request): ReturnType<Request["formData"]> {
  return withinDeadline(
    req,
    req.formData().catch(() => {
      throw new ThawError("invalid_request", "malformed multipart/form-data body (check its boundary)");
    }),
    (form) => form,
  );
}

/** `use` of what `read` reads, or 408 if that is not done by the request's body deadline. */
function withinDeadline<T, U>(req: Request, read: Promise<T>, use: (value: T) => U | Promise<U>): Promise<U> {
  const deadline = deadlines.get(req);
  if (!deadline) return read.then(use);
  deadline.server.timeout(req, 0);
  // One promise and a timer, not a race of two promises: this is on the path of every call with a body.
  // A late body fails once the connection is closed, settling a promise already settled: nobody waits for it.
  return new Promise<U>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new ThawError("request_timeout", `the request body did not arrive within ${deadline.timeoutMs} ms`)),
      Math.max(0, deadline.at - Date.now()),
    );
    read.then(
      (value) => {
        clearTimeout(timer);
        try {
          resolve(use(value));
        } catch (e) {
          reject(e);
        }
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

function liftIdleTimeout(req: Request): void {
  const deadline = deadlines.get(req);
  if (deadline) deadline.server.timeout(req, 0);
}

/** The response to `req` is ready: its connection gets the server's idle timeout back. */
export function responseReady(req: Request): void {
  const deadline = deadlines.get(req);
  if (deadline) deadline.server.timeout(req, deadline.idleSeconds);
}
