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
// error of the last attempt -- is one msgpack value. A job that finished
// with no callback to make and a small outcome returns it to BullMQ (base64
// in the return value, { status, outcome }), which stores it with the
// job's completion under its own lock check: no write of thaw's own. Any
// other outcome goes next to the job in thaw:job-result:<id>, expiring with
// it.
//
// Throughput: Redis round trips, not Redis, are what a job costs here (in
// Bun every socket write is tens of microseconds of the event loop). The
// jobs submitted during one round of the event loop are added with one
// pipelined addBulk, and each submit returns -- its 202 goes out -- only
// after Redis has answered for its job: an accepted job is in Redis, as
// durable as Redis is configured to be (appendfsync), and survives the
// node's kill -9. What remains per job is BullMQ's own: its add script and
// the worker's move-to-finished (which also fetches the next job).
//
// Redis down: submits and reads fail at once with queue_unavailable (the
// producer connection has no offline queue), the worker's connection keeps
// retrying, and both reconnect by themselves.
//
// Callbacks: an attempt's outcome is written only while this worker still
// holds the job's BullMQ lock (one Lua script: a node whose lock expired
// during an outage cannot overwrite the outcome of the node that took the
// job over), and a final one is written together with its pending
// delivery in thaw:callbacks:pending. The delivery starts only after
// BullMQ has completed (or failed) the job -- its 'completed'/'failed'
// event -- so an outcome that could not be recorded, because Redis was
// down, is never called back: the job runs again, and the outcome
// recorded then is the one delivered. The pending entry's score is a
// lease: the node delivering renews it; should that node die, another
// takes the delivery over once the lease runs out (DELIVERY_LEASE_MS),
// after checking that the entry is still the job's recorded outcome.
// Delivery progress is kept in thaw:job-callback:<id>, one field per
// delivery (its Idempotency-Key).

import { DelayedError, type Job, type JobsOptions, Queue, UnrecoverableError, Worker } from "bullmq";
import type Redis from "ioredis";
import type { Logger } from "../log.ts";
import { ThawError } from "../service/errors.ts";
import { callbackBody, CallbackDispatcher, deliveryKey, pendingStatus } from "./callback.ts";
import {
  type CallbackStatus, decode, decodePayload, encode, encodePayload, type JobResult, type JobSpec, type JobState,
  type JobStatus, PayloadError,
} from "./job.ts";
import type { JobQueue, QueueOptions } from "./queue.ts";
import type { JobRunner } from "./runner.ts";
import { redisSecret } from "./secret.ts";

export const QUEUE_NAME = "jobs";
export const QUEUE_PREFIX = "thaw";
/** A dead node's jobs are taken back after about this long. */
const LOCK_MS = 5000;
const STALLED_CHECK_MS = 2500;
/** After its last attempt returns, how long a closing worker gets to record it in Redis. */
const RECORD_GRACE_MS = 500;
/** A pending delivery's owner renews its lease this often; past the lease another node takes it over. */
const DELIVERY_LEASE_MS = 30_000;
const LEASE_RENEW_MS = 10_000;
/** How often a node looks for deliveries whose owner is gone. */
const DELIVERY_SWEEP_MS = 5000;
const PENDING_KEY = "thaw:callbacks:pending";

interface JobData {
  payload: string;
  /** Rounds of POST /v1/jobs/{id}/retry: part of a callback's Idempotency-Key. */
  retries?: number;
  /** Starts that found the function still compiling: not attempts. */
  deferred?: number;
}

/** Kept next to the job: what BullMQ's job hash does not hold. */
interface Outcome {
  node: string;
  error?: { code: string; message: string };
  result?: JobResult;
  /** The attempt that produced it. */
  attempt?: number;
  /** A final outcome of a job with a callback: its delivery's Idempotency-Key. */
  callbackKey?: string;
}

/** What a completed job returns to BullMQ: its status and, if small, its outcome (base64 of msgpack). */
interface ReturnValue {
  status: JobStatus;
  outcome?: string;
}

/**
 * The largest outcome kept in BullMQ's return value rather than a key of
 * its own. BullMQ copies the return value into its event stream (up to
 * 10,000 events), so only small ones go there.
 */
const INLINE_OUTCOME_MAX = 2048;

/** Write an attempt's outcome (and a final one's pending delivery) only while holding the job's lock. */
const SAVE_OUTCOME = `
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
redis.call("SET", KEYS[2], ARGV[2], "PX", ARGV[3])
if ARGV[5] ~= "" then redis.call("ZADD", KEYS[3], ARGV[4], ARGV[5]) end
return 1`;

/** Move a pending delivery's lease from `expected` to `next`, if nobody moved it since. */
const MOVE_LEASE = `
local s = redis.call("ZSCORE", KEYS[1], ARGV[1])
if not s or tonumber(s) ~= tonumber(ARGV[2]) then return 0 end
redis.call("ZADD", KEYS[1], ARGV[3], ARGV[1])
return 1`;

/** What the queue knows of a final attempt until BullMQ has recorded it. */
interface Finishing {
  spec: JobSpec;
  outcome: Outcome;
  /** The pending delivery's member and lease, if the job has a callback. */
  pending?: { member: string; lease: number };
}

/** A submit waiting for its batch (addBatch). */
interface Submit {
  name: string;
  data: JobData;
  opts: JobsOptions;
  resolve: (job: Job<JobData>) => void;
  reject: (e: unknown) => void;
}

const unavailable = (e?: unknown) =>
  new ThawError("queue_unavailable", `the job queue (Redis) is unreachable${e ? `: ${(e as Error).message}` : ""}`, {}, 1);

export class RedisJobQueue implements JobQueue {
  readonly backend = "redis";
  readonly callbacks: CallbackDispatcher;
  private readonly queue: Queue<JobData>;
  /** Final attempts whose outcome is written, waiting for BullMQ to complete or fail the job. */
  private readonly finishing = new WeakMap<Job<JobData>, Finishing>();
  /** Pending deliveries this node owns: member -> the lease it last set. */
  private readonly owned = new Map<string, number>();
  private timers: ReturnType<typeof setInterval>[] = [];
  private closing = false;
  private worker?: Worker<JobData>;
  /** The worker's own connection: it blocks waiting for jobs, so it cannot be shared. */
  private workerConnection?: Redis;
  private readonly running = new Set<Promise<unknown>>();
  /** Submits of this round of the event loop, added to Redis together. */
  private submits: Submit[] = [];

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
    this.callbacks = new CallbackDispatcher(options.callbacks, redisSecret(client), log);
  }

  private get retentionSeconds() {
    return Math.ceil(this.options.retentionMs / 1000);
  }

  private outcomeKey(id: string) {
    return `${QUEUE_PREFIX}:job-result:${id}`;
  }

  private callbackKey(id: string) {
    return `${QUEUE_PREFIX}:job-callback:${id}`;
  }

  private get keepMs() {
    return this.options.retentionMs + LOCK_MS * 2;
  }

  async submit(spec: JobSpec, maxAttempts: number): Promise<JobState> {
    if (this.client.status !== "ready") throw unavailable();
    const id = crypto.randomUUID();
    const added = await new Promise<Job<JobData>>((resolve, reject) => {
      const submit: Submit = {
        name: `${spec.tenant}/${spec.function}`,
        data: { payload: Buffer.from(encodePayload(spec)).toString("base64") },
        opts: {
          jobId: id,
          attempts: maxAttempts,
          backoff: { type: "exponential", delay: this.options.backoffMs },
          removeOnComplete: { age: this.retentionSeconds },
          removeOnFail: { age: this.retentionSeconds },
        },
        resolve,
        reject,
      };
      if (this.submits.push(submit) === 1) setImmediate(() => void this.addBatch());
    });
    return this.stateOf(added, "waiting", undefined, spec);
  }

  /** Every job submitted in this round of the event loop, in one pipelined write; each is accepted once Redis has it. */
  private async addBatch(): Promise<void> {
    const batch = this.submits;
    this.submits = [];
    try {
      const jobs = await this.queue.addBulk(batch.map(({ name, data, opts }) => ({ name, data, opts })));
      batch.forEach((s, i) => s.resolve(jobs[i]!));
    } catch (e) {
      for (const s of batch) s.reject(unavailable(e));
    }
  }

  async get(id: string): Promise<JobState | undefined> {
    if (this.client.status !== "ready") throw unavailable();
    try {
      // State first, then the job: read the other way round, a job that
      // finishes in between would show as completed without its return value.
      const state = await this.queue.getJobState(id);
      const [job, outcome, deliveries] = await Promise.all([
        this.queue.getJob(id),
        this.client.getBuffer(this.outcomeKey(id)),
        this.client.hgetall(this.callbackKey(id)),
      ]);
      if (!job) return undefined;
      if (job.finishedOn && job.finishedOn + this.options.retentionMs < Date.now()) return undefined;
      return this.stateOf(job, state, inlineOutcome(job) ?? (outcome ? decode<Outcome>(outcome) : undefined), undefined, deliveries);
    } catch (e) {
      throw unavailable(e);
    }
  }

  async retry(id: string): Promise<JobState | undefined> {
    const job = await this.queue.getJob(id).catch((e) => {
      throw unavailable(e);
    });
    if (!job) return undefined;
    try {
      if ((await job.getState()) === "failed") {
        await job.updateData({ ...job.data, retries: (job.data.retries ?? 0) + 1, deferred: 0 });
        await job.retry("failed", { resetAttemptsMade: true, resetAttemptsStarted: true });
      }
    } catch (e) {
      throw unavailable(e);
    }
    return this.get(id);
  }

  start(): void {
    // BullMQ's blocking commands need a connection that waits and retries
    // forever: no per-request retry limit, no command timeout.
    this.workerConnection = this.client.duplicate({ maxRetriesPerRequest: null, enableOfflineQueue: true, commandTimeout: undefined });
    this.workerConnection.on("error", () => {});
    this.worker = new Worker<JobData>(QUEUE_NAME, (job, token) => this.track(job, token), {
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
    // Only now is a final outcome recorded: BullMQ emits these after it completed or failed the job.
    this.worker.on("completed", (job) => this.recorded(job, "completed"));
    this.worker.on("failed", (job) => job && this.recorded(job, "failed"));
    this.timers = [
      setInterval(() => void this.renewLeases(), LEASE_RENEW_MS),
      setInterval(() => void this.sweepDeliveries(), DELIVERY_SWEEP_MS),
    ];
  }

  async close(deadline: number): Promise<void> {
    this.closing = true;
    for (const t of this.timers) clearInterval(t);
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
    await this.callbacks.close(deadline);
    // Deliveries not done: let the other nodes take them now rather than when the lease runs out.
    const now = Date.now();
    await Promise.allSettled([...this.owned].map(([member, lease]) => this.moveLease(member, lease, now)));
    this.owned.clear();
  }

  /** One attempt, tracked so that close() knows when this node's attempts are over. */
  private track(job: Job<JobData>, token?: string): Promise<ReturnValue> {
    const attempt = this.process(job, token);
    this.running.add(attempt);
    return attempt.finally(() => this.running.delete(attempt));
  }

  /** One attempt. Returns for a finished call; throws to make BullMQ retry, delay or fail (dead) the job. */
  private async process(job: Job<JobData>, token?: string): Promise<ReturnValue> {
    let spec: JobSpec;
    try {
      spec = decodePayload(Buffer.from(job.data.payload ?? "", "base64"));
    } catch (e) {
      if (!(e instanceof PayloadError)) throw e;
      const error = { code: "invalid_payload", message: e.message };
      await this.saveOutcome(job, token, { node: this.options.nodeId, error });
      throw new UnrecoverableError(JSON.stringify(error));
    }
    const attempt = await this.runner.attempt(spec, job.timestamp, job.id);
    if (attempt.kind === "wait") {
      // The function is still compiling: later, without counting an attempt or holding a slot meanwhile.
      await job.updateData({ ...job.data, deferred: (job.data.deferred ?? 0) + 1 });
      await job.moveToDelayed(Date.now() + attempt.delayMs, token);
      throw new DelayedError();
    }
    const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    const outcome: Outcome = {
      node: this.options.nodeId,
      result: "result" in attempt ? attempt.result : undefined,
      attempt: attemptsOf(job),
    };
    if (attempt.kind !== "finished") outcome.error = attempt.error;
    const final = attempt.kind === "finished" || attempt.kind === "dead" || lastAttempt;
    const status: JobStatus = attempt.kind === "finished" ? attempt.status : final ? "dead" : "queued";
    let pending: Finishing["pending"];
    if (final && spec.callbackUrl) {
      outcome.callbackKey = deliveryKey(job.id!, outcome.attempt!, job.data.retries ?? 0);
      pending = { member: JSON.stringify([job.id, outcome.callbackKey]), lease: Date.now() + DELIVERY_LEASE_MS };
    }
    if (attempt.kind === "finished" && !pending) {
      // BullMQ stores the return value with the job's completion, under the same lock check: no write of our own.
      const inline = Buffer.from(encode(outcome)).toString("base64");
      if (inline.length <= INLINE_OUTCOME_MAX) {
        this.finishing.set(job, { spec, outcome });
        return { status, outcome: inline };
      }
    }
    await this.saveOutcome(job, token, outcome, pending);
    if (final) this.finishing.set(job, { spec, outcome, pending });
    if (attempt.kind === "finished") return { status };
    const reason = JSON.stringify(attempt.error);
    throw attempt.kind === "dead" ? new UnrecoverableError(reason) : new Error(reason);
  }

  /** The outcome of this worker's attempt, written only while it holds the job's lock; throws otherwise. */
  private async saveOutcome(job: Job<JobData>, token: string | undefined, outcome: Outcome, pending?: Finishing["pending"]): Promise<void> {
    const id = job.id!;
    const saved = await this.client.eval(
      SAVE_OUTCOME,
      3,
      `${QUEUE_PREFIX}:${QUEUE_NAME}:${id}:lock`,
      this.outcomeKey(id),
      PENDING_KEY,
      token ?? "",
      Buffer.from(encode(outcome)),
      String(this.keepMs),
      String(pending?.lease ?? 0),
      pending?.member ?? "",
    );
    if (saved !== 1) throw new Error(`job ${id}: this worker no longer holds its lock; the outcome is not recorded`);
  }

  /** BullMQ completed or failed a job: if that was a final attempt of ours, it is recorded now. */
  private recorded(job: Job<JobData>, bullState: "completed" | "failed"): void {
    const f = this.finishing.get(job);
    if (!f) return;
    this.finishing.delete(job);
    if (bullState === "failed" && !job.finishedOn) return;
    const state = this.stateOf(job, bullState, f.outcome, f.spec);
    this.runner.finished(state);
    if (f.pending) void this.takeDelivery(f.pending.member, f.pending.lease, state);
  }

  /** Deliver a pending callback if this node can take its lease from `lease`. */
  private async takeDelivery(member: string, lease: number, state: JobState, progress?: CallbackStatus): Promise<void> {
    const next = Date.now() + DELIVERY_LEASE_MS;
    if (this.closing || !(await this.moveLease(member, lease, next).catch(() => false))) return;
    this.owned.set(member, next);
    const key = state.callback?.key ?? (JSON.parse(member) as [string, string])[1];
    this.callbacks.enqueue(
      { jobId: state.id, tenant: state.spec.tenant, url: state.spec.callbackUrl!, key, status: state.status, body: callbackBody(state) },
      (status, final) => this.recordDelivery(state.id, member, status, final),
      () => this.owned.has(member),
      progress,
    );
  }

  private async recordDelivery(id: string, member: string, status: CallbackStatus, final: boolean): Promise<void> {
    try {
      await this.client
        .multi()
        .hset(this.callbackKey(id), status.key!, JSON.stringify(status))
        .pexpire(this.callbackKey(id), this.keepMs)
        .exec();
    } finally {
      // Done here either way; if its end was not recorded, the lease runs out and a sweep looks again.
      if (final) this.owned.delete(member);
    }
    if (final) await this.client.zrem(PENDING_KEY, member);
  }

  private async moveLease(member: string, expected: number, next: number): Promise<boolean> {
    return (await this.client.eval(MOVE_LEASE, 1, PENDING_KEY, member, String(expected), String(next))) === 1;
  }

  /** Keep the deliveries this node holds; one another node took over is dropped. */
  private async renewLeases(): Promise<void> {
    if (this.client.status !== "ready") return;
    for (const [member, lease] of this.owned) {
      const next = Date.now() + DELIVERY_LEASE_MS;
      try {
        if (await this.moveLease(member, lease, next)) {
          if (this.owned.has(member)) this.owned.set(member, next);
        } else this.owned.delete(member);
      } catch {
        return;
      }
    }
  }

  /** Deliveries whose lease ran out (their node stopped): take them over, or drop those no longer the job's outcome. */
  private async sweepDeliveries(): Promise<void> {
    if (this.closing || this.client.status !== "ready") return;
    await this.callbacks.secrets.sync();
    try {
      const due = await this.client.zrangebyscore(PENDING_KEY, "-inf", Date.now(), "WITHSCORES", "LIMIT", 0, 100);
      for (let i = 0; i < due.length; i += 2) {
        const member = due[i]!;
        const lease = Number(due[i + 1]);
        if (this.owned.has(member)) continue;
        const [id, key] = JSON.parse(member) as [string, string];
        const [job, bullState, raw, progress] = await Promise.all([
          this.queue.getJob(id),
          this.queue.getJobState(id),
          this.client.getBuffer(this.outcomeKey(id)),
          this.client.hget(this.callbackKey(id), key),
        ]);
        const outcome = raw ? decode<Outcome>(raw) : undefined;
        const done = progress ? (JSON.parse(progress) as CallbackStatus).state !== "pending" : false;
        // Gone, superseded by a later outcome (the attempt was run again), or already delivered.
        if (!job || outcome?.callbackKey !== key || done) {
          await this.client.zrem(PENDING_KEY, member);
          continue;
        }
        // Written, but BullMQ has not recorded it (yet): look again after another lease.
        if (bullState !== "completed" && bullState !== "failed") {
          await this.moveLease(member, lease, Date.now() + DELIVERY_LEASE_MS);
          continue;
        }
        const state = this.stateOf(job, bullState, outcome);
        this.log.info("taking over a callback delivery", { job: id });
        await this.takeDelivery(member, lease, state, progress ? (JSON.parse(progress) as CallbackStatus) : undefined);
      }
    } catch (e) {
      this.log.warn("callback delivery sweep failed", { error: String(e) });
    }
  }

  private stateOf(
    job: Job<JobData>,
    bullState: string,
    outcome: Outcome | undefined,
    spec?: JobSpec,
    deliveries: Record<string, string> = {},
  ): JobState {
    spec ??= this.specOf(job);
    const finished = bullState === "completed" || bullState === "failed";
    const key = outcome?.callbackKey;
    const delivery = key && deliveries[key];
    const callback = key && spec.callbackUrl ? (delivery ? (JSON.parse(delivery) as CallbackStatus) : pendingStatus(spec.callbackUrl, key)) : undefined;
    return {
      id: job.id!,
      spec: { tenant: spec.tenant, function: spec.function, callbackUrl: spec.callbackUrl, requestId: spec.requestId },
      status: statusOf(bullState, job),
      attempts: Math.max(job.attemptsMade, attemptsOf(job)),
      maxAttempts: job.opts.attempts ?? 1,
      createdAt: job.timestamp,
      startedAt: job.processedOn,
      finishedAt: finished ? job.finishedOn : undefined,
      node: outcome?.node ?? job.processedBy,
      error: outcome?.error ?? (bullState === "failed" ? parseReason(job.failedReason) : undefined),
      result: outcome?.result,
      callback,
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

/** Attempts started, less the starts that found the function still compiling. */
function attemptsOf(job: Job<JobData>): number {
  return Math.max(0, (job.attemptsStarted ?? 0) - (job.data.deferred ?? 0));
}

/** The outcome a completed job carries in its return value, if it was small enough (process()). */
function inlineOutcome(job: Job<JobData>): Outcome | undefined {
  const inline = (job.returnvalue as ReturnValue | null)?.outcome;
  return typeof inline === "string" ? decode<Outcome>(Buffer.from(inline, "base64")) : undefined;
}

function statusOf(bullState: string, job: Job<JobData>): JobStatus {
  if (bullState === "active") return "running";
  if (bullState === "failed") return "dead";
  if (bullState === "completed") return (job.returnvalue as ReturnValue | null)?.status ?? "succeeded";
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
