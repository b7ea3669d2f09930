// The cluster's job queue: BullMQ on Redis. Every node submits to it and
// every node works it, so a job runs wherever there is room.
//
// For other services enqueuing straight into Redis:
//
//   queue   "jobs" with prefix "thaw" (keys thaw:jobs:*), BullMQ >= 5
//   name    "<tenant>/<function>" (informational)
//   data    { "payload": "<base64 of the msgpack payload in job.ts>" }
//   opts    attempts and backoff as BullMQ has them; thaw sets
//           { attempts: 3, backoff: { type: "exponential", delay: 1000 } }
//
// BullMQ keeps the queue state (waiting, active, delayed, completed, failed)
// and its guarantees: a job is claimed by one worker under a lock the
// worker renews while the call runs; if the node dies the lock expires
// after LOCK_MS and another node's stalled-job check puts the job back
// (at least once). BullMQ's `failed` is thaw's `dead`. What BullMQ does not
// keep in binary form -- the result body, the callback's fate, the node and
// error of the last attempt -- goes next to the job in one msgpack value,
// thaw:job-result:<id>, that expires with the job.
//
// Redis down: submits and reads fail at once with queue_unavailable (the
// producer connection has no offline queue), the worker's connection keeps
// retrying, and both reconnect by themselves.

import { type Job, Queue, UnrecoverableError, Worker } from "bullmq";
import type Redis from "ioredis";
import type { Logger } from "../log.ts";
import { ThawError } from "../service/errors.ts";
import {
  type CallbackStatus, decode, decodePayload, encode, encodePayload, type JobResult, type JobSpec, type JobState,
  type JobStatus, PayloadError,
} from "./job.ts";
import type { JobQueue, QueueOptions } from "./queue.ts";
import type { JobRunner } from "./runner.ts";

export const QUEUE_NAME = "jobs";
export const QUEUE_PREFIX = "thaw";
/** A dead node's jobs are taken back after about this long. */
const LOCK_MS = 5000;
const STALLED_CHECK_MS = 2500;
/** After its last attempt returns, how long a closing worker gets to record it in Redis. */
const RECORD_GRACE_MS = 500;

interface JobData {
  payload: string;
}

/** Kept next to the job: what BullMQ's job hash does not hold. */
interface Outcome {
  node: string;
  error?: { code: string; message: string };
  result?: JobResult;
  callback?: CallbackStatus;
}

const unavailable = (e?: unknown) =>
  new ThawError("queue_unavailable", `the job queue (Redis) is unreachable${e ? `: ${(e as Error).message}` : ""}`, {}, 1);

export class RedisJobQueue implements JobQueue {
  readonly backend = "redis";
  private readonly queue: Queue<JobData>;
  private worker?: Worker<JobData>;
  /** The worker's own connection: it blocks waiting for jobs, so it cannot be shared. */
  private workerConnection?: Redis;
  private readonly running = new Set<Promise<unknown>>();

  /**
   * `client` is the node's connection to the cluster's Redis (cluster/connection.ts):
   * no offline queue, so a submit fails at once while Redis is down. The
   * caller owns it; the queue only adds a worker connection of its own.
   */
  constructor(
    private readonly client: Redis,
    private readonly runner: JobRunner,
    private readonly options: QueueOptions,
    private readonly log: Logger,
  ) {
    this.queue = new Queue<JobData>(QUEUE_NAME, { connection: this.client, prefix: QUEUE_PREFIX });
    this.queue.on("error", () => {});
  }

  private get retentionSeconds() {
    return Math.ceil(this.options.retentionMs / 1000);
  }

  private outcomeKey(id: string) {
    return `${QUEUE_PREFIX}:job-result:${id}`;
  }

  async submit(spec: JobSpec, maxAttempts: number): Promise<JobState> {
    if (this.client.status !== "ready") throw unavailable();
    const id = crypto.randomUUID();
    try {
      const job = await this.queue.add(
        `${spec.tenant}/${spec.function}`,
        { payload: Buffer.from(encodePayload(spec)).toString("base64") },
        {
          jobId: id,
          attempts: maxAttempts,
          backoff: { type: "exponential", delay: this.options.backoffMs },
          removeOnComplete: { age: this.retentionSeconds },
          removeOnFail: { age: this.retentionSeconds },
        },
      );
      return this.stateOf(job, "waiting", undefined);
    } catch (e) {
      throw unavailable(e);
    }
  }

  async get(id: string): Promise<JobState | undefined> {
    if (this.client.status !== "ready") throw unavailable();
    try {
      // State first, then the job: read the other way round, a job that
      // finishes in between would show as completed without its return value.
      const state = await this.queue.getJobState(id);
      const [job, outcome] = await Promise.all([this.queue.getJob(id), this.client.getBuffer(this.outcomeKey(id))]);
      if (!job) return undefined;
      if (job.finishedOn && job.finishedOn + this.options.retentionMs < Date.now()) return undefined;
      return this.stateOf(job, state, outcome ? decode<Outcome>(outcome) : undefined);
    } catch (e) {
      throw unavailable(e);
    }
  }

  async retry(id: string): Promise<JobState | undefined> {
    const job = await this.queue.getJob(id).catch((e) => {
      throw unavailable(e);
    });
    if (!job) return undefined;
    if ((await job.getState()) === "failed") await job.retry("failed", { resetAttemptsMade: true, resetAttemptsStarted: true });
    return this.get(id);
  }

  start(): void {
    // BullMQ's blocking commands need a connection that waits and retries
    // forever: no per-request retry limit, no command timeout.
    this.workerConnection = this.client.duplicate({ maxRetriesPerRequest: null, enableOfflineQueue: true, commandTimeout: undefined });
    this.workerConnection.on("error", () => {});
    this.worker = new Worker<JobData>(QUEUE_NAME, (job) => this.track(job), {
      connection: this.workerConnection,
      prefix: QUEUE_PREFIX,
      name: this.options.nodeId,
      concurrency: this.options.concurrency,
      lockDuration: LOCK_MS,
      stalledInterval: STALLED_CHECK_MS,
      removeOnComplete: { age: this.retentionSeconds },
      removeOnFail: { age: this.retentionSeconds },
    });
    let reported = false;
    this.worker.on("error", (e) => {
      if (!reported) this.log.warn("job queue error; retrying", { error: e.message });
      reported = true;
    });
    this.worker.on("ready", () => (reported = false));
  }

  async close(deadline: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))));
    // worker.close() stops taking jobs and waits for the running ones. After
    // Redis has restarted under it, it can wait on its blocking connection
    // for good, so it is also over once this node's attempts have returned
    // and BullMQ has had a moment to record them. An attempt still running
    // at the deadline is abandoned with its lock; another node (or this one,
    // restarted) takes the job back.
    const attemptsDone = (async () => {
      while (this.running.size > 0) await Promise.allSettled([...this.running]);
      await Bun.sleep(RECORD_GRACE_MS);
    })();
    await Promise.race([this.worker?.close().then(() => this.queue.close()), attemptsDone, timeUp]).catch(() => undefined);
    clearTimeout(timer);
    this.workerConnection?.disconnect();
  }

  /** One attempt, tracked so that close() knows when this node's attempts are over. */
  private track(job: Job<JobData>): Promise<{ status: JobStatus }> {
    const attempt = this.process(job);
    this.running.add(attempt);
    return attempt.finally(() => this.running.delete(attempt));
  }

  /** One attempt. Returns for a finished call; throws to make BullMQ retry or fail (dead) the job. */
  private async process(job: Job<JobData>): Promise<{ status: JobStatus }> {
    let spec: JobSpec;
    try {
      spec = decodePayload(Buffer.from(job.data.payload ?? "", "base64"));
    } catch (e) {
      if (!(e instanceof PayloadError)) throw e;
      const error = { code: "invalid_payload", message: e.message };
      await this.saveOutcome(job.id!, { node: this.options.nodeId, error });
      throw new UnrecoverableError(JSON.stringify(error));
    }
    const attempt = await this.runner.attempt(spec);
    const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    const outcome: Outcome = { node: this.options.nodeId, result: "result" in attempt ? attempt.result : undefined };
    if (attempt.kind !== "finished") outcome.error = attempt.error;
    const final = attempt.kind === "finished" || attempt.kind === "dead" || lastAttempt;
    const status: JobStatus = attempt.kind === "finished" ? attempt.status : final ? "dead" : "queued";
    if (final) {
      const state = this.stateOf(job, status === "dead" ? "failed" : "completed", outcome, spec);
      state.finishedAt = Date.now();
      outcome.callback = await this.runner.finish(state);
    }
    await this.saveOutcome(job.id!, outcome);
    if (attempt.kind === "finished") return { status };
    const reason = JSON.stringify(attempt.error);
    throw attempt.kind === "dead" ? new UnrecoverableError(reason) : new Error(reason);
  }

  private async saveOutcome(id: string, outcome: Outcome): Promise<void> {
    await this.client.set(this.outcomeKey(id), Buffer.from(encode(outcome)), "PX", this.options.retentionMs + LOCK_MS * 2);
  }

  private stateOf(job: Job<JobData>, bullState: string, outcome: Outcome | undefined, spec?: JobSpec): JobState {
    spec ??= this.specOf(job);
    const finished = bullState === "completed" || bullState === "failed";
    return {
      id: job.id!,
      spec: { tenant: spec.tenant, function: spec.function, callbackUrl: spec.callbackUrl },
      status: statusOf(bullState, job),
      attempts: Math.max(job.attemptsMade, job.attemptsStarted ?? 0),
      maxAttempts: job.opts.attempts ?? 1,
      createdAt: job.timestamp,
      startedAt: job.processedOn,
      finishedAt: finished ? job.finishedOn : undefined,
      node: outcome?.node ?? job.processedBy,
      error: outcome?.error ?? (bullState === "failed" ? parseReason(job.failedReason) : undefined),
      result: outcome?.result,
      callback: outcome?.callback,
    };
  }

  /** The job's payload; a job a producer got wrong is shown under its name and fails as invalid_payload. */
  private specOf(job: Job<JobData>): JobSpec {
    try {
      return decodePayload(Buffer.from(job.data.payload ?? "", "base64"));
    } catch {
      const [tenant = "", fn = job.name] = job.name.includes("/") ? job.name.split("/", 2) : ["", job.name];
      return { tenant, function: fn, body: new Uint8Array() };
    }
  }
}

function statusOf(bullState: string, job: Job<JobData>): JobStatus {
  if (bullState === "active") return "running";
  if (bullState === "failed") return "dead";
  if (bullState === "completed") return (job.returnvalue as { status?: JobStatus } | null)?.status ?? "succeeded";
  return "queued";
}

function parseReason(reason: string | undefined): JobState["error"] {
  if (!reason) return undefined;
  try {
    const e = JSON.parse(reason);
    if (typeof e?.code === "string") return e;
  } catch {}
  return { code: reason.includes("stalled") ? "node_lost" : "internal", message: reason };
}
