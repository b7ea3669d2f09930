// Request ids: every HTTP response carries X-Request-Id, which ties it to
// the call's log entry, the server's error lines and the job it submitted.
//
// A client may send its own (a proxy's, a trace's) so its ids line up with
// thaw's; it is hostile input that lands in headers, JSON and log lines, so
// only a short plain token is taken as is -- anything else is replaced by a
// new id, never echoed, trimmed or escaped into something "close".

import { randomUUID } from "node:crypto";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export const validRequestId = (id: string): boolean => REQUEST_ID.test(id);

/** The client's id when it is a valid one, else a new one. */
export function requestIdFrom(header: string | null): string {
  return header !== null && REQUEST_ID.test(header) ? header : randomUUID();
}
