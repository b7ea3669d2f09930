// The per-job series of /metrics -- thaw_job_attempts_total,
// thaw_jobs_finished_total, thaw_job_queue_seconds -- in plain numbers
// (plain.ts): every job counts in all three, and prom-client's inc() and
// observe() validate and hash their labels each time.

import type { Registry } from "prom-client";
import { Counts, Latency, registerPlain } from "./plain.ts";

export class JobMetrics {
  private readonly attempts = new Counts();
  private readonly finished = new Counts();
  private readonly queue: Latency;

  constructor(registry: Registry, queueBounds: readonly number[]) {
    this.queue = new Latency(queueBounds);
    registerPlain(registry, "thaw_job_attempts_total", "Async job attempts run on this node, by how they ended (finished, retry, dead)", "counter", () =>
      [...this.attempts.entries()].map(([result, value]) => ({ value, labels: { result } })),
    );
    registerPlain(registry, "thaw_jobs_finished_total", "Async jobs that reached a final status on this node (succeeded, failed, dead)", "counter", () =>
      [...this.finished.entries()].map(([status, value]) => ({ value, labels: { status } })),
    );
    registerPlain(
      registry,
      "thaw_job_queue_seconds",
      "From a job's acceptance to the start of its last attempt, for jobs finished on this node",
      "histogram",
      () => this.queue.values("thaw_job_queue_seconds", {}),
    );
  }

  /** An attempt that ended as `result` (finished, retry, dead). */
  attempt(result: string): void {
    this.attempts.add(result);
  }

  /** A job that reached its final `status`, `queueSeconds` after it was accepted if it started. */
  finish(status: string, queueSeconds?: number): void {
    this.finished.add(status);
    if (queueSeconds !== undefined) this.queue.observe(queueSeconds);
  }
}
