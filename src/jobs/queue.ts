// The job queue as the rest of thaw sees it. Two implementations: an
// embedded one on SQLite in the data directory (local.ts), for a node with
// no Redis, and BullMQ on Redis (redis.ts), shared by every node of a
// cluster. Both persist a job before submit() returns, run it at least once
// (an attempt cut short by a crash is run again), and keep finished jobs
// for `retentionMs`.

import type { JobSpec, JobState } from "./job.ts";

export interface QueueOptions {
  /** Recorded on every attempt, so a job shows which node ran it. */
  nodeId: string;
  /** Jobs this node runs at once. */
  concurrency: number;
  /** Backoff before the second attempt; it doubles for every attempt after. */
  backoffMs: number;
  /** How long a finished job (and its result) can be read. */
  retentionMs: number;
}

export interface JobQueue {
  readonly backend: "embedded" | "redis";
  /** Persist a job; it is accepted once this resolves. Throws queue_unavailable when it cannot be stored. */
  submit(spec: JobSpec, maxAttempts: number): Promise<JobState>;
  /** The job with its result, or undefined if there is none (or it expired). */
  get(id: string): Promise<JobState | undefined>;
  /** Put a dead job back in the queue with a fresh set of attempts. */
  retry(id: string): Promise<JobState | undefined>;
  /** Begin taking jobs. */
  start(): void;
  /** Stop taking jobs and wait for the running ones, at most until `deadline` (ms since epoch). */
  close(deadline: number): Promise<void>;
}
