// Running one attempt of a job, and counting how jobs end.
//
// Both queues (embedded and Redis) hand their attempts to a JobRunner, so
// what counts as retriable is decided once, here. An attempt is a normal
// synchronous call through InvokeService: the same pools, limits, metrics
// and logs as a call over HTTP. Callbacks are not sent from here: a queue
// hands them to its CallbackDispatcher (callback.ts) once the outcome is
// recorded.
//
// A job for a function that is still compiling (or whose build has not
// reached this node yet) waits for it: the attempt does not count, and the
// job goes back to the queue for a moment, without holding a slot, until
// the build is over -- then it runs, or ends dead with the build's error
// (function_failed). The wait is bounded by MAX_COMPILE_WAIT_MS from the
// job's submission, past which not-ready counts as an ordinary retriable
// failure.
//
// In a cluster a job can reach a node before the function's record does
// (the submitting node saw it; this one syncs every 250 ms): a function
// this node does not know yet is waited for the same way, for at most
// MAX_SYNC_WAIT_MS from submission. Past that it is gone (deleted after the
// submit), and the job ends dead with function_not_found.

import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { InvokeOutcome, InvokeService } from "../service/invoke.ts";
import { type ErrorCode, ThawError } from "../service/errors.ts";
import type { JobResult, JobSpec, JobState } from "./job.ts";

const STDERR_TAIL = 4096;
const utf8 = new TextDecoder();

/** Platform failures another attempt (later, maybe on another node) can get past. */
const RETRIABLE = new Set<ErrorCode>(["overloaded", "memory_exhausted", "function_not_ready", "shutting_down", "internal"]);

/** How long after its submission a job still waits for its function's build. */
export const MAX_COMPILE_WAIT_MS = 30 * 60_000;

/** How long after its submission a job waits for its function to reach this node's registry. */
export const MAX_SYNC_WAIT_MS = 30_000;

export type AttemptOutcome =
  /** The function ran; its result is final. */
  | { kind: "finished"; status: "succeeded" | "failed"; result: JobResult }
  /** Try again if attempts remain, else the job is dead. */
  | { kind: "retry"; error: { code: string; message: string }; result?: JobResult }
  /** No attempt can succeed (no such function, its build failed, a bad payload): dead now. */
  | { kind: "dead"; error: { code: string; message: string } }
  /** The function is still being built: queue the job again after `delayMs`, this attempt not counted. */
  | { kind: "wait"; delayMs: number };

/** How long from its submission a job with this outcome may wait for its function instead (0: it may not). */
function waitLimit(outcome: AttemptOutcome): number {
  if (outcome.kind === "retry" && outcome.error.code === "function_not_ready") return MAX_COMPILE_WAIT_MS;
  if (outcome.kind === "dead" && outcome.error.code === "function_not_found") return MAX_SYNC_WAIT_MS;
  return 0;
}

export class JobRunner {
  constructor(
    private readonly invoke: InvokeService,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** One attempt of job `jobId`, submitted at `createdAt` (ms since epoch). */
  async attempt(spec: JobSpec, createdAt = Date.now(), jobId?: string): Promise<AttemptOutcome> {
    const outcome = await this.run(spec, jobId);
    const waited = Date.now() - createdAt;
    // Polls more slowly the longer it waits: 100 ms at first, at most every 2 s,
    // so a tenant's jobs for a function it deleted cost a few dozen polls each.
    if (waited < waitLimit(outcome)) return { kind: "wait", delayMs: Math.min(2000, Math.max(100, waited / 4)) };
    this.metrics.jobs.attempt(outcome.kind);
    return outcome;
  }

  private async run(spec: JobSpec, jobId?: string): Promise<AttemptOutcome> {
    let o: InvokeOutcome;
    try {
      // The job's id is the call id of its attempts' logs, the submitter's request id their request id.
      o = await this.invoke.invoke(spec.tenant, spec.function, { body: spec.body, env: spec.env, requestId: spec.requestId, callId: jobId });
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
      stderr: o.result.stderr.length === 0 ? "" : utf8.decode(o.result.stderr.subarray(-STDERR_TAIL)),
      durationMs: o.result.durationNs / 1e6,
      cold: o.cold,
      version: o.version,
    };
    if (o.outcome === "ok") return { kind: "finished", status: "succeeded", result };
    if (spec.retryFunctionErrors)
      return { kind: "retry", error: { code: o.outcome, message: `the function failed: ${o.outcome}` }, result };
    return { kind: "finished", status: "failed", result };
  }

  /** A job reached its final status and it is recorded: count it. */
  finished(state: JobState): void {
    this.metrics.jobs.finish(state.status, state.startedAt === undefined ? undefined : Math.max(0, state.startedAt - state.createdAt) / 1000);
  }
}
