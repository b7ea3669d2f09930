// How the client commands talk to a server: the base URL (--url, THAW_URL,
// default http://127.0.0.1:8080), the bearer token (THAW_TOKEN), and errors
// as one line. A server that cannot be reached is
// `thaw: cannot reach URL: connection refused`; an HTTP error is
// `thaw: CODE: MESSAGE` with the server's error code, so scripts can match
// on the code rather than the status.

import { CliError } from "./common.ts";

const DEFAULT_URL = "http://127.0.0.1:8080";

export class Server {
  readonly base: string;

  constructor(flag?: string) {
    const base = (flag ?? process.env.THAW_URL ?? DEFAULT_URL).replace(/\/+$/, "");
    if (!/^https?:\/\/[^/]/.test(base)) throw new CliError(`server URL must start with http:// or https://, got ${JSON.stringify(base)}`, 2);
    this.base = base;
  }

  /** fetch(base + path) with the token; a network failure becomes one line. */
  async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const token = process.env.THAW_TOKEN;
    const headers = new Headers(init.headers);
    if (token && !headers.has("authorization")) headers.set("authorization", `Bearer ${token}`);
    try {
      return await fetch(this.base + path, { ...init, headers });
    } catch (e) {
      throw new CliError(`cannot reach ${this.base}: ${networkReason(e)}`);
    }
  }

  /** Like fetch, but a non-2xx answer throws its error as one line. */
  async ok(path: string, init: RequestInit = {}): Promise<Response> {
    const res = await this.fetch(path, init);
    if (!res.ok) throw await httpError(res);
    return res;
  }

  async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    return (await (await this.ok(path, init)).json()) as T;
  }
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ConnectionRefused: "connection refused",
  ENOTFOUND: "host not found",
  ECONNRESET: "connection reset",
  ConnectionClosed: "connection closed",
  ETIMEDOUT: "timed out",
  TimeoutError: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  CERT_HAS_EXPIRED: "certificate has expired",
  DEPTH_ZERO_SELF_SIGNED_CERT: "self-signed certificate",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "certificate not trusted",
};

function networkReason(e: unknown): string {
  const { code, name, message } = (e ?? {}) as { code?: string; name?: string; message?: string };
  return REASONS[code ?? ""] ?? REASONS[name ?? ""] ?? code ?? message ?? String(e);
}

/** The server's {"error":{"code","message"}} as one line; the function's stderr, if any, after it. */
async function httpError(res: Response): Promise<CliError> {
  const text = await res.text();
  try {
    const e = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown; stderr?: unknown } }).error;
    if (e && typeof e.code === "string") {
      const stderr = typeof e.stderr === "string" && e.stderr ? e.stderr : undefined;
      return new CliError(`${e.code}: ${oneLine(String(e.message ?? ""))}`, 1, stderr);
    }
  } catch {}
  return new CliError(`HTTP ${res.status}${text ? `: ${oneLine(text).slice(0, 200)}` : ""}`);
}

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, " ").trim();
