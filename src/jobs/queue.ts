// The job queue as the rest of thaw sees it. Two implementations: an
// embedded one on SQLite in the data directory (local.ts), for a node with
// no Redis, and a stream with a consumer group on Redis (redis.ts), shared
// by every node of a cluster. Both persist a job before submit() returns, run it at least once
// (an attempt cut short by a crash is run again), keep finished jobs for
// `retentionMs`, and deliver a job's callback only once its final outcome
// is recorded -- one delivery per recorded outcome (callback.ts).

import type { CallbackDispatcher, CallbackSettings } from "./callback.ts";
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
  /** Callback delivery: where to, how many at once, how hard to try. */
  callbacks: CallbackSettings;
}

export interface JobQueue {
  readonly backend: "embedded" | "redis";
  /** Delivers this queue's callbacks once their outcome is recorded; checks callback URLs and signs. */
  readonly callbacks: CallbackDispatcher;
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
