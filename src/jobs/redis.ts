// The cluster's job queue on Redis: a stream with a consumer group for the
// queue, a hash per job for its record, a sorted set for backoff. Every
// node submits to it and every node works it, so a job runs wherever there
// is room.
//
//   thaw:q:job:<id>   hash: tenant, function, payload (job.ts), max,
//                     created, status, attempts, started, finished, node,
//                     error (JSON), result (msgpack), cbkey, cb (JSON: the
//                     callback's progress), owner (the running attempt's token)
//   thaw:q:stream     one entry { id } per job waiting or running; group "workers"
//   thaw:q:delayed    jobs waiting out a backoff, scored by when they are due
//
// Other services can enqueue straight into Redis (in one MULTI):
//
//   HSET thaw:q:job:<id> tenant <t> function <f> payload <msgpack> [max <attempts>]
//   XADD thaw:q:stream * id <id>
//
// Needs Redis 6.2 or later (XAUTOCLAIM). Jobs left in the BullMQ queue of
// thaw before this one (keys thaw:jobs:*) are not taken over: drain it
// before upgrading.
//
// Why not BullMQ (which this replaced): a BullMQ job costs a script per
// add, a move-to-active, a move-to-finished with its lock and event-stream
// writes, and three reads per status -- about 320 µs of the node's CPU per
// job against 50 µs for a sync call (bench jobs). What a job costs here is
// mostly socket writes (in Bun an ioredis write is 10-30 µs of the event
// loop, whatever its size), so every step handles a batch in one write:
// the submits of one round of the event loop are one script call, with
// their arguments packed in one msgpack string (ioredis also pays per
// argument); a claim is one script call for all free slots; the outcomes
// of one round are one script call; a status read is one script call with
// no arguments -- or none at all for a job this node finished and that can
// no longer change (`recent`).
//
// Guarantees:
// - An accepted job is in Redis: submit() resolves -- its 202 goes out --
//   only after the script that wrote its hash and stream entry returned, so
//   it is as durable as Redis is configured to be (appendfsync) and
//   survives the node's kill -9.
// - At least once: a claimed entry stays in the group's pending list (PEL)
//   until its outcome is recorded. The node running it resets the entry's
//   idle time every LEASE_RENEW_MS; an entry idle for LOCK_MS (its node died
//   or lost Redis) is claimed by another node's XAUTOCLAIM and run again --
//   its lost attempt counted, or the job ends dead (node_lost) if that was
//   its last.
// - One recorded outcome per attempt: each start writes a fresh token to
//   the job's `owner`; an outcome is written only while the token is still
//   the writer's, so a node that lost its claim during an outage cannot
//   overwrite the attempt that replaced it.
// - Retries: a retriable failure puts the job in thaw:q:delayed with
//   exponential backoff; every node moves due jobs back to the stream.
// - Retention: a finished job's hash expires retentionMs (plus margin)
//   after it finished; reads hide it from retentionMs on.
//
// Redis down: submits and reads fail at once with queue_unavailable (the
// node's connection has no offline queue); the worker's own connection
// keeps retrying, and both reconnect by themselves. An outcome that could
// not be written is not called back: the claim runs out and the job runs
// again.
//
// Callbacks: a final outcome is written together with its pending delivery
// in thaw:callbacks:pending, and the delivery starts only after that write.
// The pending entry's score is a lease: the node delivering renews it;
// should that node die, another takes the delivery over once the lease
// runs out (DELIVERY_LEASE_MS), after checking that the entry is still the
// job's recorded outcome. Delivery progress is the job's `cb` field.

import type Redis from "ioredis";
import type { Logger } from "../log.ts";
import { ThawError } from "../service/errors.ts";
import { callbackBody, CallbackDispatcher, deliveryKey, pendingStatus } from "./callback.ts";
import {
  backoffMs, type CallbackStatus, decode, decodePayload, encode, encodePayload, type JobResult, type JobSpec, type JobState,
  type JobStatus, PayloadError,
} from "./job.ts";
import type { JobQueue, QueueOptions } from "./queue.ts";
import type { AttemptOutcome, JobRunner } from "./runner.ts";
import { redisSecret } from "./secret.ts";

export const JOB_PREFIX = "thaw:q:job:";
export const STREAM_KEY = "thaw:q:stream";
const DELAYED_KEY = "thaw:q:delayed";
const GROUP = "workers";
const PENDING_KEY = "thaw:callbacks:pending";
/** A claim not renewed for this long is taken over by another node. */
const LOCK_MS = 5000;
const LEASE_RENEW_MS = 2000;
/** How often a node looks for claims whose node is gone. */
const STALLED_CHECK_MS = 2500;
/** How often a node forgets consumers (nodes) gone for CONSUMER_IDLE_MS with nothing pending. */
const CONSUMER_SWEEP_MS = 60_000;
const CONSUMER_IDLE_MS = 10 * 60_000;
/** How long a worker's blocking read waits before it looks around again. */
const BLOCK_MS = 2000;
/** The longest a node waits before moving due delayed jobs, when it knows of none due sooner. */
const PROMOTE_MAX_MS = 250;
/** A pending delivery's owner renews its lease this often; past the lease another node takes it over. */
const DELIVERY_LEASE_MS = 30_000;
const DELIVERY_RENEW_MS = 10_000;
/** How often a node looks for deliveries whose owner is gone. */
const DELIVERY_SWEEP_MS = 5000;
const DEFAULT_MAX_ATTEMPTS = 3;
/** What this node remembers of the jobs it finished, for status reads (see `recent`): bytes of results, at most. */
const RECENT_BYTES = 8 << 20;
/** What a remembered job costs besides its result body and stderr. */
const RECENT_OVERHEAD = 512;

/**
 * A round's submits, as one msgpack array (per job: id, tenant, function,
 * callback, request id, max attempts, payload). One argument rather than
 * seven per job: ioredis spends about a microsecond per argument.
 */
const SUBMIT = `
local now = ARGV[2]
local a = cmsgpack.unpack(ARGV[3])
for i = 1, #a, 7 do
  local key = ARGV[1] .. a[i]
  redis.call("HSET", key, "tenant", a[i+1], "function", a[i+2], "max", a[i+5], "payload", a[i+6],
    "created", now, "status", "queued", "attempts", 0)
  if a[i+3] ~= "" then redis.call("HSET", key, "callback", a[i+3]) end
  if a[i+4] ~= "" then redis.call("HSET", key, "rid", a[i+4]) end
  redis.call("XADD", KEYS[1], "*", "id", a[i])
end
return 1`;

/**
 * Start the jobs of stream entries: read new ones for this consumer
 * ("new"), take over ones idle too long ("stale"), or those a blocking read
 * just delivered ("given"). Per job started: id, entry, token, payload,
 * attempts, max, created, retries, lost (its last attempt was cut short:
 * end it dead, do not run it), started.
 */
const CLAIM = `
local prefix, group, me, mode, n, now, minIdle = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local entries = {}
if mode == "new" then
  local r = redis.call("XREADGROUP", "GROUP", group, me, "COUNT", n, "STREAMS", KEYS[1], ">")
  if r then entries = r[1][2] end
elseif mode == "stale" then
  entries = redis.call("XAUTOCLAIM", KEYS[1], group, me, minIdle, "0-0", "COUNT", n)[2]
else
  for i = 8, #ARGV, 2 do entries[#entries + 1] = { ARGV[i], { "id", ARGV[i+1] } } end
end
local out = {}
for _, e in ipairs(entries) do
  local eid, f, id = e[1], e[2], nil
  if f then for j = 1, #f, 2 do if f[j] == "id" then id = f[j+1] end end end
  local key = id and (prefix .. id)
  local h = key and redis.call("HMGET", key, "status", "attempts", "max", "created", "retries", "payload")
  local status = h and h[1]
  if not status and h and h[6] then status = "queued" end
  if status ~= "queued" and status ~= "running" then
    redis.call("XACK", KEYS[1], group, eid)
    redis.call("XDEL", KEYS[1], eid)
  else
    local attempts = tonumber(h[2]) or 0
    local max = tonumber(h[3]) or ${DEFAULT_MAX_ATTEMPTS}
    local created = h[4] or now
    if not h[4] then redis.call("HSET", key, "created", now, "max", max) end
    local lost = 0
    if status == "running" and attempts >= max then
      lost = 1
    else
      attempts = attempts + 1
    end
    local token = me .. "/" .. attempts .. "/" .. eid
    redis.call("HSET", key, "status", "running", "attempts", attempts, "started", now, "node", me, "owner", token)
    out[#out + 1] = { id, eid, token, h[6] or "", attempts, max, created, h[5] or "0", lost, now }
  end
end
return out`;

/**
 * A round's outcomes, each written only if its token still owns the job.
 * One msgpack array, per job: id, token, entry, kind (final/retry/wait),
 * status, node, error, result, cbkey, pending member, lease, and when it
 * finished (final) or is to run again (retry, wait). Returns 1 or 0 per job.
 */
const FINISH = `
local prefix, group, keep = ARGV[1], ARGV[2], ARGV[3]
local a = cmsgpack.unpack(ARGV[4])
local out = {}
for i = 1, #a, 12 do
  local id, token, eid, kind = a[i], a[i+1], a[i+2], a[i+3]
  local key = prefix .. id
  if redis.call("HGET", key, "owner") ~= token then
    out[#out + 1] = 0
  else
    redis.call("HDEL", key, "owner")
    if kind == "wait" then
      redis.call("HSET", key, "status", "queued")
      redis.call("HINCRBY", key, "attempts", -1)
    else
      redis.call("HSET", key, "status", a[i+4], "node", a[i+5])
      if a[i+6] ~= "" then redis.call("HSET", key, "error", a[i+6]) else redis.call("HDEL", key, "error") end
      if a[i+7] ~= "" then redis.call("HSET", key, "result", a[i+7]) else redis.call("HDEL", key, "result") end
    end
    if kind == "final" then
      -- No cb or cbkey yet: only a final outcome sets them, and only /retry puts a final job back (clearing them).
      if a[i+8] ~= "" then redis.call("HSET", key, "finished", a[i+11], "cbkey", a[i+8]) else redis.call("HSET", key, "finished", a[i+11]) end
      if a[i+9] ~= "" then redis.call("ZADD", KEYS[3], a[i+10], a[i+9]) end
      redis.call("PEXPIRE", key, keep)
    else
      redis.call("ZADD", KEYS[2], a[i+11], id)
    end
    redis.call("XACK", KEYS[1], group, eid)
    redis.call("XDEL", KEYS[1], eid)
    out[#out + 1] = 1
  end
end
return out`;

/** A status read: one key, no arguments (cheaper in ioredis than HMGET's fifteen). */
const READ = `return redis.call("HMGET", KEYS[1], "tenant", "function", "callback", "rid", "status", "attempts", "max", "created",
  "started", "finished", "node", "error", "result", "cbkey", "cb")`;

/** Keep this node's claims: reset the idle time of the entries whose job it still owns. */
const RENEW = `
local prefix, group, me = ARGV[1], ARGV[2], ARGV[3]
for i = 4, #ARGV, 3 do
  if redis.call("HGET", prefix .. ARGV[i], "owner") == ARGV[i+1] then
    redis.call("XCLAIM", KEYS[1], group, me, 0, ARGV[i+2], "JUSTID")
  end
end
return 1`;

/** Jobs whose backoff is over go back to the stream; returns when the next one is due (-1: none). */
const PROMOTE = `
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[2], "LIMIT", 0, 100)
for _, id in ipairs(due) do
  redis.call("ZREM", KEYS[1], id)
  if redis.call("HGET", ARGV[1] .. id, "status") == "queued" then redis.call("XADD", KEYS[2], "*", "id", id) end
end
local next = redis.call("ZRANGE", KEYS[1], 0, 0, "WITHSCORES")
if #due == 100 then return 0 end
return next[2] or -1`;

/** Put a dead job back with a fresh set of attempts. */
const RETRY = `
local key = ARGV[1] .. ARGV[2]
if redis.call("HGET", key, "status") ~= "dead" then return 0 end
redis.call("HSET", key, "status", "queued", "attempts", 0)
redis.call("HINCRBY", key, "retries", 1)
redis.call("HDEL", key, "finished", "cb", "cbkey", "owner")
redis.call("PERSIST", key)
redis.call("XADD", KEYS[1], "*", "id", ARGV[2])
return 1`;

/** A delivery's progress, kept only while it is still the job's current one (and the job is kept). */
const SAVE_DELIVERY = `
if redis.call("HGET", KEYS[1], "cbkey") ~= ARGV[1] then return 0 end
redis.call("HSET", KEYS[1], "cb", ARGV[2])
return 1`;

/** Move a pending delivery's lease from `expected` to `next`, if nobody moved it since. */
const MOVE_LEASE = `
local s = redis.call("ZSCORE", KEYS[1], ARGV[1])
if not s or tonumber(s) ~= tonumber(ARGV[2]) then return 0 end
redis.call("ZADD", KEYS[1], ARGV[3], ARGV[1])
return 1`;

interface Scripts {
  thawSubmit(stream: string, ...args: (string | Buffer | number)[]): Promise<number>;
  thawReadBuffer(key: string): Promise<(Buffer | null)[]>;
  thawClaimBuffer(stream: string, ...args: (string | number)[]): Promise<Buffer[][]>;
  thawFinish(stream: string, delayed: string, pending: string, ...args: (string | Buffer | number)[]): Promise<number[]>;
  thawRenew(stream: string, ...args: (string | number)[]): Promise<number>;
  thawPromote(delayed: string, stream: string, ...args: (string | number)[]): Promise<number | string>;
  thawRetry(stream: string, ...args: string[]): Promise<number>;
  thawSaveDelivery(key: string, ...args: string[]): Promise<number>;
  thawMoveLease(pending: string, ...args: (string | number)[]): Promise<number>;
}

type Client = Redis & Scripts;

function defineScripts(r: Redis): Client {
  const scripts: [string, number, string][] = [
    ["thawSubmit", 1, SUBMIT], ["thawClaim", 1, CLAIM], ["thawFinish", 3, FINISH], ["thawRenew", 1, RENEW], ["thawPromote", 2, PROMOTE],
    ["thawRetry", 1, RETRY], ["thawRead", 1, READ], ["thawSaveDelivery", 1, SAVE_DELIVERY], ["thawMoveLease", 1, MOVE_LEASE],
  ];
  for (const [name, numberOfKeys, lua] of scripts) r.defineCommand(name, { numberOfKeys, lua });
  return r as Client;
}

/** A job this node is running. */
interface Claim {
  id: string;
  entry: string;
  token: string;
  attempts: number;
  max: number;
  created: number;
  retries: number;
  started: number;
}

/** An outcome waiting for its round's write (finishBatch). */
interface Finish {
  /** Strings and bytes only: cmsgpack would turn a large integer into a float. */
  args: (string | Uint8Array)[];
  resolve: (written: boolean) => void;
  reject: (e: unknown) => void;
}

interface Submit {
  args: (string | Uint8Array)[];
  /** With the creation time the batch stored. */
  resolve: (createdAt: number) => void;
  reject: (e: unknown) => void;
}

const unavailable = (e?: unknown) =>
  new ThawError("queue_unavailable", `the job queue (Redis) is unreachable${e ? `: ${(e as Error).message}` : ""}`, {}, 1);

const str = (b: Buffer | null | undefined) => (b == null ? undefined : b.toString());
const num = (b: Buffer | null | undefined) => (b == null ? undefined : Number(b.toString()));

export class RedisJobQueue implements JobQueue {
  readonly backend = "redis";
  readonly callbacks: CallbackDispatcher;
  private readonly client: Client;
  /** The worker's own connection: it blocks waiting for jobs, so it cannot be shared. */
  private worker?: Client;
  private workerId?: number;
  /** Jobs this node is running, by id. */
  private readonly claims = new Map<string, Claim>();
  /** Attempts and their outcome writes, so close() knows when they are over. */
  private readonly running = new Set<Promise<unknown>>();
  private slotFreed?: () => void;
  /** Pending deliveries this node owns: member -> the lease it last set. */
  private readonly owned = new Map<string, number>();
  private timers: ReturnType<typeof setInterval>[] = [];
  private promoteTimer?: ReturnType<typeof setTimeout>;
  private promoteAt = Infinity;
  private closing = false;
  private loopDone: Promise<void> = Promise.resolve();
  private submits: Submit[] = [];
  private finishes: Finish[] = [];
  /**
   * Jobs this node finished as succeeded or failed with no callback: their
   * record no longer changes (only dead jobs can be retried, and there is
   * no delivery to record) until it expires, so a status read -- usually
   * soon after, from the node it was submitted to -- needs no round trip to
   * Redis. Oldest first out, within RECENT_BYTES.
   */
  private readonly recent = new Map<string, JobState>();
  private recentBytes = 0;

  /**
   * `client` is the node's connection to the cluster's Redis (cluster/connection.ts):
   * no offline queue, so a submit fails at once while Redis is down. The
   * caller owns it; the queue only adds a worker connection of its own.
   */
  constructor(
    client: Redis,
    private readonly runner: JobRunner,
    private readonly options: QueueOptions,
    private readonly log: Logger,
  ) {
    this.client = defineScripts(client);
    this.callbacks = new CallbackDispatcher(options.callbacks, redisSecret(client), log);
  }

  private get keepMs() {
    return this.options.retentionMs + LOCK_MS * 2;
  }

  async submit(spec: JobSpec, maxAttempts: number): Promise<JobState> {
    if (this.client.status !== "ready") throw unavailable();
    const id = crypto.randomUUID();
    const args = [id, spec.tenant, spec.function, spec.callbackUrl ?? "", spec.requestId ?? "", String(maxAttempts), encodePayload(spec)];
    const createdAt = await new Promise<number>((resolve, reject) => {
      if (this.submits.push({ args, resolve, reject }) === 1) setImmediate(() => void this.submitBatch());
    });
    const { tenant, function: fn, callbackUrl, requestId } = spec;
    return { id, spec: { tenant, function: fn, callbackUrl, requestId }, status: "queued", attempts: 0, maxAttempts, createdAt };
  }

  /** Every job submitted in this round of the event loop, in one script call; each is accepted once Redis has it. */
  private async submitBatch(): Promise<void> {
    const batch = this.submits;
    this.submits = [];
    const now = Date.now();
    try {
      await this.client.thawSubmit(STREAM_KEY, JOB_PREFIX, now, packStrings(batch.flatMap((s) => s.args)));
      for (const s of batch) s.resolve(now);
    } catch (e) {
      for (const s of batch) s.reject(unavailable(e));
    }
  }

  async get(id: string): Promise<JobState | undefined> {
    if (this.client.status !== "ready") throw unavailable();
    try {
      const state = this.recent.get(id) ?? (await this.read(id));
      if (state?.finishedAt !== undefined && state.finishedAt + this.options.retentionMs < Date.now()) return undefined;
      return state;
    } catch (e) {
      throw unavailable(e);
    }
  }

  private async read(id: string): Promise<JobState | undefined> {
    const key = JOB_PREFIX + id;
    const h = await this.client.thawReadBuffer(key);
    const [tenantB, fnB, callbackB, ridB, statusB, attemptsB, maxB, createdB, startedB, finishedB, nodeB, errorB, resultB, cbkeyB, cbB] = h;
    if (!statusB && !tenantB) return undefined;
    let tenant = str(tenantB);
    let fn = str(fnB);
    if (tenant === undefined || fn === undefined) {
      // A producer outside thaw that wrote no tenant: the payload says.
      const spec = specOf(await this.client.hgetBuffer(key, "payload"));
      tenant = spec.tenant;
      fn = spec.function;
    }
    const callbackUrl = str(callbackB);
    const cbkey = str(cbkeyB);
    const progress = cbB ? (JSON.parse(cbB.toString()) as CallbackStatus) : undefined;
    const callback = cbkey && callbackUrl ? (progress?.key === cbkey ? progress : pendingStatus(callbackUrl, cbkey)) : undefined;
    return {
      id,
      spec: { tenant, function: fn, callbackUrl, requestId: str(ridB) },
      status: (str(statusB) ?? "queued") as JobStatus,
      attempts: num(attemptsB) ?? 0,
      maxAttempts: num(maxB) ?? DEFAULT_MAX_ATTEMPTS,
      createdAt: num(createdB) ?? Date.now(),
      startedAt: num(startedB),
      finishedAt: num(finishedB),
      node: str(nodeB),
      error: errorB ? JSON.parse(errorB.toString()) : undefined,
      result: resultB ? decode<JobResult>(resultB) : undefined,
      callback,
    };
  }

  async retry(id: string): Promise<JobState | undefined> {
    try {
      await this.client.thawRetry(STREAM_KEY, JOB_PREFIX, id);
    } catch (e) {
      throw unavailable(e);
    }
    return this.get(id);
  }

  start(): void {
    // The worker's blocking reads need a connection that waits and retries
    // forever: no per-request retry limit, no command timeout.
    this.worker = defineScripts(this.client.duplicate({ maxRetriesPerRequest: null, enableOfflineQueue: true, commandTimeout: undefined }));
    this.worker.on("error", () => {});
    this.worker.on("ready", () => {
      this.worker!.client("ID").then((id) => (this.workerId = Number(id)), () => {});
    });
    this.loopDone = this.loop();
    this.schedulePromote(0);
    this.timers = [
      setInterval(() => void this.renewClaims(), LEASE_RENEW_MS),
      setInterval(() => void this.renewLeases(), DELIVERY_RENEW_MS),
      setInterval(() => void this.sweepDeliveries(), DELIVERY_SWEEP_MS),
      setInterval(() => void this.sweepConsumers(), CONSUMER_SWEEP_MS),
    ];
  }

  async close(deadline: number): Promise<void> {
    this.closing = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.promoteTimer);
    this.slotFreed?.();
    // Wake the worker's blocking read, so it stops taking jobs now.
    if (this.workerId !== undefined) await this.client.client("UNBLOCK", this.workerId).catch(() => undefined);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))));
    // Attempts still running at the deadline are abandoned with their claim;
    // another node (or this one, restarted) takes the job back.
    const attemptsDone = (async () => {
      await this.loopDone;
      while (this.running.size > 0) await Promise.allSettled([...this.running]);
    })();
    await Promise.race([attemptsDone, timeUp]);
    clearTimeout(timer);
    this.worker?.disconnect();
    await this.callbacks.close(deadline);
    // Deliveries not done: let the other nodes take them now rather than when the lease runs out.
    const now = Date.now();
    await Promise.allSettled([...this.owned].map(([member, lease]) => this.moveLease(member, lease, now)));
    this.owned.clear();
  }

  /** Take jobs while there are free slots: all free slots in one claim, a blocking read when the stream is empty. */
  private async loop(): Promise<void> {
    const w = this.worker!;
    let nextStaleCheck = Date.now() + STALLED_CHECK_MS;
    let reported = false;
    let backlog = true;
    await this.ensureGroup(w);
    while (!this.closing) {
      const free = this.options.concurrency - this.claims.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        // Let the other attempts that end in this round free their slots too: one claim for all.
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      try {
        let started: Buffer[][] = [];
        if (Date.now() >= nextStaleCheck) {
          nextStaleCheck = Date.now() + STALLED_CHECK_MS;
          started = await w.thawClaimBuffer(STREAM_KEY, JOB_PREFIX, GROUP, this.options.nodeId, "stale", free, Date.now(), LOCK_MS);
        } else if (backlog) {
          // The last claim filled every slot, so more are likely waiting: claim them in one round trip.
          started = await w.thawClaimBuffer(STREAM_KEY, JOB_PREFIX, GROUP, this.options.nodeId, "new", free, Date.now(), 0);
        }
        if (started.length === 0) started = await this.blockingClaim(w, free);
        backlog = started.length >= free;
        reported = false;
        for (const row of started) this.begin(row);
      } catch (e) {
        if (this.closing) break;
        if (String(e).includes("NOGROUP")) await this.ensureGroup(w);
        else {
          if (!reported) this.log.warn("job queue error; retrying", { error: (e as Error).message });
          reported = true;
          await Bun.sleep(200);
        }
      }
    }
  }

  /** Wait for new entries, then start them (the wait cannot be inside a script). */
  private async blockingClaim(w: Client, free: number): Promise<Buffer[][]> {
    const r = (await w.xreadgroup("GROUP", GROUP, this.options.nodeId, "COUNT", free, "BLOCK", BLOCK_MS, "STREAMS", STREAM_KEY, ">")) as
      | [string, [string, string[]][]][]
      | null;
    const entries = r?.[0]?.[1] ?? [];
    if (entries.length === 0) return [];
    const given = entries.flatMap(([eid, fields]) => [eid, fields[fields.indexOf("id") + 1] ?? ""]);
    return w.thawClaimBuffer(STREAM_KEY, JOB_PREFIX, GROUP, this.options.nodeId, "given", entries.length, Date.now(), 0, ...given);
  }

  private async ensureGroup(w: Redis): Promise<void> {
    for (;;) {
      try {
        await w.xgroup("CREATE", STREAM_KEY, GROUP, "0", "MKSTREAM");
        return;
      } catch (e) {
        if (String(e).includes("BUSYGROUP") || this.closing) return;
        await Bun.sleep(200);
      }
    }
  }

  /** One claimed job: run it, write its outcome, free its slot. */
  private begin(row: Buffer[]): void {
    const [id, entry, token, payload, attempts, max, created, retries, lost, started] = row;
    const claim: Claim = {
      id: id!.toString(), entry: entry!.toString(), token: token!.toString(), attempts: Number(attempts), max: Number(max),
      created: Number(created), retries: Number(retries), started: Number(started),
    };
    this.claims.set(claim.id, claim);
    const run = this.process(claim, payload!, lost!.toString() === "1")
      .catch((e) => this.log.error("job processing failed", { job: claim.id, error: String(e) }))
      .finally(() => this.running.delete(run));
    this.running.add(run);
  }

  private release(claim: Claim): void {
    if (this.claims.get(claim.id) === claim) this.claims.delete(claim.id);
    this.slotFreed?.();
    this.slotFreed = undefined;
  }

  /** One attempt and its outcome. */
  private async process(claim: Claim, payload: Buffer, lost: boolean): Promise<void> {
    let spec: JobSpec | undefined;
    let outcome: AttemptOutcome;
    try {
      if (lost) outcome = { kind: "dead", error: { code: "node_lost", message: "the node stopped while the job was running" } };
      else {
        spec = decodePayload(payload);
        outcome = await this.runner.attempt(spec, claim.created, claim.id);
      }
    } catch (e) {
      if (!(e instanceof PayloadError)) {
        this.release(claim);
        throw e;
      }
      outcome = { kind: "dead", error: { code: "invalid_payload", message: e.message } };
    }
    // The slot is free once the call returned; the write is tracked by close().
    this.release(claim);
    spec ??= specOf(payload);
    const now = Date.now();
    const node = this.options.nodeId;
    const base = [claim.id, claim.token, claim.entry];
    if (outcome.kind === "wait") {
      await this.finish([...base, "wait", "", "", "", "", "", "", "0", String(now + outcome.delayMs)], now + outcome.delayMs);
      return;
    }
    const result = "result" in outcome && outcome.result ? outcome.result : undefined;
    const error = outcome.kind === "finished" ? undefined : outcome.error;
    const resultBytes = result ? encode(result) : "";
    const errorJson = error ? JSON.stringify(error) : "";
    if (outcome.kind === "retry" && claim.attempts < claim.max) {
      const runAt = now + backoffMs(claim.attempts, this.options.backoffMs);
      await this.finish([...base, "retry", "queued", node, errorJson, resultBytes, "", "", "0", String(runAt)], runAt);
      return;
    }
    const status: JobStatus = outcome.kind === "finished" ? outcome.status : "dead";
    const cbkey = spec.callbackUrl ? deliveryKey(claim.id, claim.attempts, claim.retries) : "";
    const member = cbkey ? JSON.stringify([claim.id, cbkey]) : "";
    const lease = now + DELIVERY_LEASE_MS;
    const written = await this.finish([...base, "final", status, node, errorJson, resultBytes, cbkey, member, String(lease), String(now)]);
    if (!written) return;
    const state: JobState = {
      id: claim.id,
      spec: { tenant: spec.tenant, function: spec.function, callbackUrl: spec.callbackUrl, requestId: spec.requestId },
      status, attempts: claim.attempts, maxAttempts: claim.max, createdAt: claim.created, startedAt: claim.started, finishedAt: now,
      node, error, result, callback: cbkey && spec.callbackUrl ? pendingStatus(spec.callbackUrl, cbkey) : undefined,
    };
    this.runner.finished(state);
    if (member) void this.takeDelivery(member, lease, state);
    else if (status !== "dead") this.remember(state);
  }

  private remember(state: JobState): void {
    this.recent.set(state.id, state);
    this.recentBytes += recentSize(state);
    for (const [id, old] of this.recent) {
      if (this.recentBytes <= RECENT_BYTES) break;
      this.recent.delete(id);
      this.recentBytes -= recentSize(old);
    }
  }

  /**
   * Write an outcome with this round's others. False (logged) if it could
   * not be written: the claim was taken over, or Redis is down -- then the
   * claim runs out and the job runs again.
   */
  private async finish(args: (string | Uint8Array)[], runAt?: number): Promise<boolean> {
    let written: boolean;
    try {
      written = await new Promise<boolean>((resolve, reject) => {
        if (this.finishes.push({ args, resolve, reject }) === 1) setImmediate(() => void this.finishBatch());
      });
    } catch (e) {
      this.log.warn("a job's outcome could not be recorded; it will run again", { job: args[0], error: String(e) });
      return false;
    }
    if (!written) this.log.warn("a job's claim was taken over; this attempt's outcome is dropped", { job: args[0] });
    else if (runAt !== undefined) this.schedulePromote(runAt - Date.now());
    return written;
  }

  private async finishBatch(): Promise<void> {
    const batch = this.finishes;
    this.finishes = [];
    try {
      const args = packStrings(batch.flatMap((f) => f.args));
      const written = await this.client.thawFinish(STREAM_KEY, DELAYED_KEY, PENDING_KEY, JOB_PREFIX, GROUP, this.keepMs, args);
      batch.forEach((f, i) => f.resolve(written[i] === 1));
    } catch (e) {
      for (const f of batch) f.reject(e);
    }
  }

  /** Move due delayed jobs to the stream now (or in `inMs`), then again when the next is due, at least every PROMOTE_MAX_MS. */
  private schedulePromote(inMs: number): void {
    if (this.closing) return;
    const at = Date.now() + Math.max(0, inMs);
    if (at >= this.promoteAt) return;
    clearTimeout(this.promoteTimer);
    this.promoteAt = at;
    this.promoteTimer = setTimeout(() => void this.promote(), Math.max(0, inMs));
  }

  private async promote(): Promise<void> {
    this.promoteAt = Infinity;
    let next = PROMOTE_MAX_MS;
    if (this.client.status === "ready") {
      try {
        const due = Number(await this.client.thawPromote(DELAYED_KEY, STREAM_KEY, JOB_PREFIX, Date.now()));
        if (due >= 0) next = Math.min(next, due - Date.now());
      } catch {}
    }
    this.schedulePromote(next);
  }

  /** Keep this node's claims from being taken over while their calls run. */
  private async renewClaims(): Promise<void> {
    if (this.claims.size === 0 || this.client.status !== "ready") return;
    const args = [...this.claims.values()].flatMap((c) => [c.id, c.token, c.entry]);
    await this.client.thawRenew(STREAM_KEY, JOB_PREFIX, GROUP, this.options.nodeId, ...args).catch(() => undefined);
  }

  /**
   * Every node that ever ran is a consumer of the group; forget those gone
   * long enough with nothing pending (a live one reads every BLOCK_MS, and
   * would only be created again by its next read).
   */
  private async sweepConsumers(): Promise<void> {
    if (this.client.status !== "ready") return;
    try {
      const consumers = (await this.client.xinfo("CONSUMERS", STREAM_KEY, GROUP)) as (string | number)[][];
      for (const c of consumers) {
        const info = new Map<string, string | number>();
        for (let i = 0; i + 1 < c.length; i += 2) info.set(String(c[i]), c[i + 1]!);
        if (Number(info.get("pending")) === 0 && Number(info.get("idle")) > CONSUMER_IDLE_MS)
          await this.client.xgroup("DELCONSUMER", STREAM_KEY, GROUP, String(info.get("name")));
      }
    } catch {}
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
      await this.client.thawSaveDelivery(JOB_PREFIX + id, status.key!, JSON.stringify(status));
    } finally {
      // Done here either way; if its end was not recorded, the lease runs out and a sweep looks again.
      if (final) this.owned.delete(member);
    }
    if (final) await this.client.zrem(PENDING_KEY, member);
  }

  private async moveLease(member: string, expected: number, next: number): Promise<boolean> {
    return (await this.client.thawMoveLease(PENDING_KEY, member, expected, next)) === 1;
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
        const state = await this.read(id);
        const progress = state?.callback;
        // Gone, superseded by a later outcome (the job was run again), or already delivered.
        if (!state || progress?.key !== key || progress.state !== "pending") {
          await this.client.zrem(PENDING_KEY, member);
          continue;
        }
        this.log.info("taking over a callback delivery", { job: id });
        await this.takeDelivery(member, lease, state, progress.attempts > 0 ? progress : undefined);
      }
    } catch (e) {
      this.log.warn("callback delivery sweep failed", { error: String(e) });
    }
  }
}

/**
 * A msgpack array of byte strings, as Redis's Lua (cmsgpack) reads it:
 * every item a str 32, bytes as they are (cmsgpack knows no bin type).
 */
export function packStrings(items: (string | Uint8Array)[]): Buffer {
  const bytes = items.map((x) => (typeof x === "string" ? Buffer.from(x) : x));
  const out = Buffer.allocUnsafe(5 + bytes.reduce((n, b) => n + 5 + b.length, 0));
  out[0] = 0xdd;
  out.writeUInt32BE(items.length, 1);
  let at = 5;
  for (const b of bytes) {
    out[at] = 0xdb;
    out.writeUInt32BE(b.length, at + 1);
    out.set(b, at + 5);
    at += 5 + b.length;
  }
  return out;
}

const recentSize = (s: JobState) => RECENT_OVERHEAD + (s.result ? s.result.body.length + s.result.stderr.length : 0);

/** The job's payload; one a producer got wrong shows as an unnamed job. */
function specOf(payload: Buffer | null): JobSpec {
  try {
    return decodePayload(payload ?? Buffer.alloc(0));
  } catch {
    return { tenant: "", function: "", body: new Uint8Array() };
  }
}
