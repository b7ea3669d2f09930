// Running one attempt of a job, and telling the job's owner how it ended.
//
// Both queues (embedded and Redis) hand their attempts to a JobRunner, so
// what counts as retriable and what a callback carries is decided once,
// here. An attempt is a normal synchronous call through InvokeService: the
// same pools, limits, metrics and logs as a call over HTTP.

import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { InvokeOutcome, InvokeService } from "../service/invoke.ts";
import { type ErrorCode, ThawError } from "../service/errors.ts";
import type { CallbackStatus, JobResult, JobSpec, JobState } from "./job.ts";
import { viewOf } from "./job.ts";

const STDERR_TAIL = 4096;

/** Platform failures another attempt (later, maybe on another node) can get past. */
const RETRIABLE = new Set<ErrorCode>(["overloaded", "memory_exhausted", "function_not_ready", "shutting_down", "internal"]);

export type AttemptOutcome =
  /** The function ran; its result is final. */
  | { kind: "finished"; status: "succeeded" | "failed"; result: JobResult }
  /** Try again if attempts remain, else the job is dead. */
  | { kind: "retry"; error: { code: string; message: string }; result?: JobResult }
  /** No attempt can succeed (no such function, a bad payload): dead now. */
  | { kind: "dead"; error: { code: string; message: string } };

export interface CallbackOptions {
  attempts: number;
  timeoutMs: number;
  backoffMs: number;
}

const CALLBACK_DEFAULTS: CallbackOptions = { attempts: 3, timeoutMs: 5000, backoffMs: 200 };

export class JobRunner {
  constructor(
    private readonly invoke: InvokeService,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly callbackOptions: CallbackOptions = CALLBACK_DEFAULTS,
  ) {}

  async attempt(spec: JobSpec): Promise<AttemptOutcome> {
    const outcome = await this.run(spec);
    this.metrics.jobAttempts.inc({ result: outcome.kind });
    return outcome;
  }

  private async run(spec: JobSpec): Promise<AttemptOutcome> {
    let o: InvokeOutcome;
    try {
      o = await this.invoke.invoke(spec.tenant, spec.function, { body: spec.body, env: spec.env });
    } catch (e) {
      const code: ErrorCode = e instanceof ThawError ? e.code : "internal";
      const error = { code, message: (e as Error).message };
      if (!(e instanceof ThawError)) this.log.error("job attempt failed", { function: spec.function, error: String(e) });
      return RETRIABLE.has(code) ? { kind: "retry", error } : { kind: "dead", error };
    }
    const result: JobResult = {
      outcome: o.outcome,
      exitCode: o.result.exitCode,
      body: o.result.stdout,
      contentType: o.config.contentType,
      stderr: new TextDecoder().decode(o.result.stderr.subarray(-STDERR_TAIL)),
      durationMs: o.result.durationNs / 1e6,
      cold: o.cold,
      version: o.version,
    };
    if (o.outcome === "ok") return { kind: "finished", status: "succeeded", result };
    if (spec.retryFunctionErrors)
      return { kind: "retry", error: { code: o.outcome, message: `the function failed: ${o.outcome}` }, result };
    return { kind: "finished", status: "failed", result };
  }

  /**
   * A job reached its final status: count it and POST it to its callback
   * URL, if it has one. The callback gets the job as GET /v1/jobs/{id}
   * shows it, plus the result body in base64; it is retried a few times
   * with backoff and any 2xx is delivery. Never throws: the outcome of the
   * delivery is returned for the queue to record.
   */
  async finish(state: JobState): Promise<CallbackStatus | undefined> {
    this.metrics.jobsFinished.inc({ status: state.status });
    if (state.startedAt !== undefined) this.metrics.jobQueueSeconds.observe(Math.max(0, state.startedAt - state.createdAt) / 1000);
    const url = state.spec.callbackUrl;
    if (!url) return undefined;
    const body = JSON.stringify({
      ...viewOf(state),
      callback: undefined,
      body: state.result ? Buffer.from(state.result.body).toString("base64") : undefined,
    });
    const status: CallbackStatus = { url, state: "failed", attempts: 0 };
    const { attempts, timeoutMs, backoffMs } = this.callbackOptions;
    for (let i = 0; i < attempts; i++) {
      if (i > 0) await Bun.sleep(backoffMs * 2 ** (i - 1));
      status.attempts++;
      try {
        const res = await fetch(url, {
          method: "POST",
          body,
          headers: { "content-type": "application/json", "x-thaw-job-id": state.id, "x-thaw-job-status": state.status },
          signal: AbortSignal.timeout(timeoutMs),
          redirect: "manual",
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          status.state = "delivered";
          status.lastError = undefined;
          return status;
        }
        status.lastError = `HTTP ${res.status}`;
      } catch (e) {
        status.lastError = (e as Error).message;
      }
    }
    this.log.warn("job callback not delivered", { job: state.id, url, error: status.lastError });
    return status;
  }
}

/** A callback URL a job may carry: absolute http(s). */
export function checkCallbackUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ThawError("invalid_request", `callback URL "${url}" is not a URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    throw new ThawError("invalid_request", `callback URL must be http or https, got ${parsed.protocol}`);
  return parsed.toString();
}
