// Errors with a stable code and an HTTP status. Platform errors are about
// the request or the node (unknown function, overload, limits); function
// errors are about what the function did (trap, exit code, timeout). Both
// reach clients as JSON: {"error": {"code", "message", ...}}.
//
// A 500 means a bug in thaw. A module the compiler cannot build (its tools
// failed or were killed, or it hit a compile limit or the compile timeout)
// is the deploy's problem and a 422, however hostile the module; a full
// compile queue is the node being busy, a 503 with Retry-After.

import type { CompileErrorCode } from "../compiler/compile.ts";

export type ErrorCode =
  | CompileErrorCode
  | "invalid_request"
  | "unauthorized"
  | "forbidden"
  | "function_not_found"
  | "function_not_ready"
  | "function_failed"
  | "payload_too_large"
  | "request_timeout"
  | "overloaded"
  | "client_closed"
  | "shutting_down"
  | "memory_exhausted"
  | "cluster_unavailable"
  | "queue_unavailable"
  | "compile_queue_full"
  | "job_not_found"
  | "oci_pull_failed"
  | "function_exit"
  | "function_trap"
  | "function_timeout"
  | "function_memory_limit"
  | "function_bad_response"
  | "internal";

export const STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  function_not_found: 404,
  function_not_ready: 503,
  function_failed: 409,
  payload_too_large: 413,
  request_timeout: 408,
  overloaded: 429,
  // nginx's 499: the client went away before its call started (logged and counted; nobody reads it).
  client_closed: 499,
  shutting_down: 503,
  memory_exhausted: 503,
  cluster_unavailable: 503,
  queue_unavailable: 503,
  compile_queue_full: 503,
  job_not_found: 404,
  // A deploy from a registry that could not be pulled: the reference's problem (`reason` says which).
  oci_pull_failed: 422,
  not_wasm: 422,
  invalid_module: 422,
  unsupported_imports: 422,
  unsupported_module: 422,
  toolchain_missing: 500,
  compiler_failed: 422,
  init_failed: 422,
  module_limit: 422,
  compile_timeout: 422,
  function_exit: 502,
  function_trap: 500,
  function_timeout: 504,
  function_memory_limit: 507,
  function_bad_response: 502,
  internal: 500,
};

export class ThawError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }

  get status(): number {
    return STATUS[this.code];
  }

  toJSON() {
    return { error: { code: this.code, message: this.message, ...this.details } };
  }
}
