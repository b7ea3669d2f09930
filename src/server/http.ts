// Small HTTP helpers shared by the routes: JSON errors, bounded bodies.

import { ThawError } from "../service/errors.ts";

export function errorResponse(e: ThawError, extraHeaders: Record<string, string> = {}): Response {
  const headers: Record<string, string> = { "content-type": "application/json", ...extraHeaders };
  if (e.retryAfterSeconds !== undefined) headers["retry-after"] = String(e.retryAfterSeconds);
  if (e.code === "unauthorized") headers["www-authenticate"] = 'Bearer realm="thaw"';
  return new Response(JSON.stringify(e.toJSON()), { status: e.status, headers });
}

/** A boolean query parameter ('true' | 'false' | '1' | '0' in the schemas): absent is false. */
export const queryFlag = (value: string | undefined) => value === "true" || value === "1";

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

/** The request body, refused with 413 before or while reading if over `limit`. */
export async function readBody(req: Request, limit: number): Promise<Uint8Array> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  const tooLarge = () => new ThawError("payload_too_large", `request body is over the limit of ${limit} bytes`, { limit });
  if (declared > limit) throw tooLarge();
  const body = new Uint8Array(await req.arrayBuffer());
  if (body.length > limit) throw tooLarge();
  return body;
}
