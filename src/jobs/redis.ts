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
// loop, whatever its size), so a node sends what it has in batches: the
// submits and outcomes of one round of the event loop, and the claim for
// the slots free at its end, are one script call (ROUND), with their
// arguments packed in one msgpack string (ioredis also pays per argument),
// and while one such call is in flight the next gathers; a status read is
// one script call with no arguments -- or none at all for a job this node
// finished and that can no longer change (`recent`). The worker's own
// connection only waits for jobs when the stream is empty, and takes over
// stale claims.
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
  backoffMs, type CallbackStatus, decode, decodePayload, encodePayload, type JobResult, type JobSpec, type JobState,
  type JobStatus, PayloadError,
} from "./job.ts";
import type { JobQueue, QueueOptions } from "./queue.ts";
import type { AttemptOutcome, JobRunner } from "./runner.ts";
import { packResult } from "./payload.ts";
import { RecentJobs } from "./recent.ts";
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
/** Script calls of rounds (`Round`) awaiting their reply at once. */
const ROUNDS_IN_FLIGHT = 2;

/**
 * Lua shared by the scripts that start jobs: `start(stream, prefix, group,
 * me, now, entries, out, fresh)` starts the jobs of stream entries and
 * appends, per job started: id, "entry attempts max created retries lost
 * started", payload -- lost: its last attempt was cut short, end it dead,
 * do not run it. The attempt's token is "me/attempts/entry", which the node
 * builds from these (two strings per job to read back rather than four).
 *
 * \`fresh\` (ROUND only) holds the jobs submitted in the same script call,
 * whose records are not written yet (\`submitted\` gives their fields): one
 * of them starting is written once, already running, with nothing to read
 * back -- a read and a write less per job, most of Redis's work for a job
 * that starts as soon as it is submitted. The caller writes the others.
 */
const START = `
local function submitted(a, i, now)
  local f = { "tenant", a[i+1], "function", a[i+2], "max", a[i+5], "payload", a[i+6], "created", now, "status", "queued", "attempts", "0" }
  if a[i+3] ~= "" then f[#f + 1] = "callback"; f[#f + 1] = a[i+3] end
  if a[i+4] ~= "" then f[#f + 1] = "rid"; f[#f + 1] = a[i+4] end
  return f
end

local function start(stream, prefix, group, me, now, entries, out, fresh)
  for _, e in ipairs(entries) do
    local eid, f, id = e[1], e[2], nil
    if f then for j = 1, #f, 2 do if f[j] == "id" then id = f[j+1] end end end
    local new = id and fresh and fresh.at[id]
    if new then
      fresh.at[id] = nil
      local token = me .. "/1/" .. eid
      local r = submitted(fresh.a, new, now)
      r[12] = "running"
      r[14] = "1"
      r[#r + 1] = "started"; r[#r + 1] = now; r[#r + 1] = "node"; r[#r + 1] = me; r[#r + 1] = "owner"; r[#r + 1] = token
      redis.call("HSET", prefix .. id, unpack(r))
      out[#out + 1] = id
      out[#out + 1] = eid .. " 1 " .. fresh.a[new + 5] .. " " .. now .. " 0 0 " .. now
      out[#out + 1] = fresh.a[new + 6]
    else
      local key = id and (prefix .. id)
      local h = key and redis.call("HMGET", key, "status", "attempts", "max", "created", "retries", "payload")
      local status = h and h[1]
      if not status and h and h[6] then status = "queued" end
      if status ~= "queued" and status ~= "running" then
        redis.call("XACK", stream, group, eid)
        redis.call("XDEL", stream, eid)
      else
        local attempts = tonumber(h[2]) or 0
        local max = tonumber(h[3]) or ${DEFAULT_MAX_ATTEMPTS}
        local created = h[4] or now
        local lost = 0
        if status == "running" and attempts >= max then
          lost = 1
        else
          attempts = attempts + 1
        end
        local token = me .. "/" .. attempts .. "/" .. eid
        if h[4] then
          redis.call("HSET", key, "status", "running", "attempts", attempts, "started", now, "node", me, "owner", token)
        else
          redis.call("HSET", key, "status", "running", "attempts", attempts, "started", now, "node", me, "owner", token, "created", now, "max", max)
        end
        out[#out + 1] = id
        out[#out + 1] = eid .. " " .. attempts .. " " .. max .. " " .. created .. " " .. (h[5] or "0") .. " " .. lost .. " " .. now
        out[#out + 1] = h[6] or ""
      end
    end
  end
end
`;

/**
 * Everything this node has for Redis in one round of its event loop, in one
 * script call (see `Round`): the outcomes of the attempts that ended, the
 * jobs submitted, and -- when the worker asks (n > 0) -- new jobs for its
 * free slots, in that order, so a job submitted in the round can start in
 * it. Submits and outcomes each come as one msgpack array (ioredis pays per
 * argument), per submit: id, tenant, function, callback, request id, max
 * attempts, payload; per outcome: id, token, entry, kind (final/retry/wait),
 * status, node, error, result, cbkey, pending member, lease, and when it
 * finished (final) or is to run again (retry, wait). An outcome is written
 * only while its token still owns the job. Returns a string of "1"s and
 * "0"s (written or not, per outcome), then the started jobs as START
 * appends them.
 *
 * A missing consumer group fails neither the outcomes nor the submits (the
 * worker's own read recreates it): the stream commands that need it are
 * pcalls.
 */
const ROUND = `${START}
local prefix, group, keep, me, now, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local written, done = {}, {}
if ARGV[8] ~= "" then
  local a = cmsgpack.unpack(ARGV[8])
  for i = 1, #a, 12 do
    local id, token, eid, kind = a[i], a[i+1], a[i+2], a[i+3]
    local key = prefix .. id
    local h = redis.call("HMGET", key, "owner", "error", "result")
    if h[1] ~= token then
      written[#written + 1] = "0"
    else
      -- An emptied owner matches no token, as a deleted one would, for one command less.
      if kind == "wait" then
        redis.call("HSET", key, "status", "queued", "owner", "")
        redis.call("HINCRBY", key, "attempts", -1)
      else
        local set, del = { "status", a[i+4], "node", a[i+5], "owner", "" }, {}
        if a[i+6] ~= "" then set[#set + 1] = "error"; set[#set + 1] = a[i+6] elseif h[2] then del[#del + 1] = "error" end
        if a[i+7] ~= "" then set[#set + 1] = "result"; set[#set + 1] = a[i+7] elseif h[3] then del[#del + 1] = "result" end
        if kind == "final" then
          -- No cb or cbkey yet: only a final outcome sets them, and only /retry puts a final job back (clearing them).
          set[#set + 1] = "finished"; set[#set + 1] = a[i+11]
          if a[i+8] ~= "" then set[#set + 1] = "cbkey"; set[#set + 1] = a[i+8] end
        end
        redis.call("HSET", key, unpack(set))
        if #del > 0 then redis.call("HDEL", key, unpack(del)) end
      end
      if kind == "final" then
        if a[i+9] ~= "" then redis.call("ZADD", KEYS[3], a[i+10], a[i+9]) end
        redis.call("PEXPIRE", key, keep)
      else
        redis.call("ZADD", KEYS[2], a[i+11], id)
      end
      done[#done + 1] = eid
      written[#written + 1] = "1"
    end
  end
end
-- The round's finished entries leave the stream together: one XACK and one XDEL, not one each per job.
for i = 1, #done, 1000 do
  local ids = { unpack(done, i, math.min(i + 999, #done)) }
  redis.pcall("XACK", KEYS[1], group, unpack(ids))
  redis.call("XDEL", KEYS[1], unpack(ids))
end
-- Submits go into the stream now; their records are written below, by start for those it starts.
local fresh = nil
if ARGV[7] ~= "" then
  fresh = { a = cmsgpack.unpack(ARGV[7]), at = {} }
  for i = 1, #fresh.a, 7 do
    fresh.at[fresh.a[i]] = i
    redis.call("XADD", KEYS[1], "*", "id", fresh.a[i])
  end
end
local out = { table.concat(written) }
if n > 0 then
  local r = redis.pcall("XREADGROUP", "GROUP", group, me, "COUNT", n, "STREAMS", KEYS[1], ">")
  if type(r) == "table" and r[1] then start(KEYS[1], prefix, group, me, now, r[1][2], out, fresh) end
end
if fresh then
  for i = 1, #fresh.a, 7 do
    if fresh.at[fresh.a[i]] then redis.call("HSET", prefix .. fresh.a[i], unpack(submitted(fresh.a, i, now))) end
  end
end
return out`;

/**
 * The worker's own starts: take over entries idle too long ("stale"), or
 * start those a blocking read just delivered ("given"). Returns the
 * started jobs as START appends them.
 */
const CLAIM = `${START}
local prefix, group, me, mode, n, now, minIdle = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local entries = {}
if mode == "stale" then
  entries = redis.call("XAUTOCLAIM", KEYS[1], group, me, minIdle, "0-0", "COUNT", n)[2]
else
  for i = 8, #ARGV, 2 do entries[#entries + 1] = { ARGV[i], { "id", ARGV[i+1] } } end
end
local out = {}
start(KEYS[1], prefix, group, me, now, entries, out)
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
  thawRoundBuffer(stream: string, delayed: string, pending: string, ...args: (string | Buffer | number)[]): Promise<Buffer[]>;
  thawReadBuffer(key: string): Promise<(Buffer | null)[]>;
  thawClaimBuffer(stream: string, ...args: (string | number)[]): Promise<Buffer[]>;
  thawRenew(stream: string, ...args: (string | number)[]): Promise<number>;
  thawPromote(delayed: string, stream: string, ...args: (string | number)[]): Promise<number | string>;
  thawRetry(stream: string, ...args: string[]): Promise<number>;
  thawSaveDelivery(key: string, ...args: string[]): Promise<number>;
  thawMoveLease(pending: string, ...args: (string | number)[]): Promise<number>;
}

type Client = Redis & Scripts;

function defineScripts(r: Redis): Client {
  const scripts: [string, number, string][] = [
    ["thawRound", 3, ROUND], ["thawClaim", 1, CLAIM], ["thawRenew", 1, RENEW], ["thawPromote", 2, PROMOTE],
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

/**
 * What this node sends Redis in one script call (ROUND): the submits and
 * outcomes of a round of the event loop, and the worker's claim. At most
 * ROUNDS_IN_FLIGHT rounds are in flight; what comes meanwhile gathers in
 * the next, so under load a call carries more (and there are fewer of
 * them, each a socket write and a reply to parse), while a lone submit goes
 * at the end of its round as before. Two, not one: with one, Redis sat idle
 * while the node ran the jobs a reply started and answered its submits, and
 * the node waited while Redis ran the next round; two overlap them. Rounds
 * are independent (a job's outcome can only follow the reply that started
 * it, and only the worker's claim, one at a time, takes slots), and Redis
 * runs them in the order sent. Everyone in a round awaits its one reply.
 */
interface Round {
  /** Per submit, its seven fields (ROUND). */
  submits: (string | Uint8Array)[];
  /** Per outcome, its twelve fields; strings and bytes only (cmsgpack would turn a large integer into a float). */
  outcomes: (string | Uint8Array)[];
  outcomeCount: number;
  /** The worker waits for this round's claim. */
  claim: boolean;
  /** When the round was sent: the submits' creation time, the claimed jobs' start. */
  now: number;
  reply: Promise<Buffer[]>;
  resolve: (reply: Buffer[]) => void;
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
  /** The round being gathered, and how many are in flight (`Round`). */
  private next?: Round;
  private inFlight = 0;
  /** Jobs this node finished whose record no longer changes, for status reads. */
  private readonly recent = new RecentJobs();

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
    const { tenant, function: fn, callbackUrl, requestId } = spec;
    const round = this.round();
    round.submits.push(id, tenant, fn, callbackUrl ?? "", requestId ?? "", String(maxAttempts), encodePayload(spec));
    try {
      await round.reply;
    } catch (e) {
      throw unavailable(e);
    }
    return { id, spec: { tenant, function: fn, callbackUrl, requestId }, status: "queued", attempts: 0, maxAttempts, createdAt: round.now };
  }

  /** The round being gathered; the first to join it schedules its send. */
  private round(): Round {
    if (this.next) return this.next;
    const { promise, resolve, reject } = Promise.withResolvers<Buffer[]>();
    this.next = { submits: [], outcomes: [], outcomeCount: 0, claim: false, now: 0, reply: promise, resolve, reject };
    if (this.inFlight < ROUNDS_IN_FLIGHT) setImmediate(() => this.send());
    return this.next;
  }

  private send(): void {
    const round = this.next;
    if (!round || this.inFlight >= ROUNDS_IN_FLIGHT) return;
    this.next = undefined;
    this.inFlight++;
    round.now = Date.now();
    const n = round.claim && !this.closing ? Math.max(0, this.options.concurrency - this.claims.size) : 0;
    this.client
      .thawRoundBuffer(
        STREAM_KEY, DELAYED_KEY, PENDING_KEY, JOB_PREFIX, GROUP, this.keepMs, this.options.nodeId, round.now, n,
        round.submits.length > 0 ? packStrings(round.submits) : "", round.outcomeCount > 0 ? packStrings(round.outcomes) : "",
      )
      .then(round.resolve, round.reject)
      .finally(() => {
        this.inFlight--;
        // What gathered meanwhile goes at the end of this round.
        if (this.next) setImmediate(() => this.send());
      });
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

  /**
   * Take jobs while there are free slots: all free slots in one claim,
   * made in this node's next round while jobs are coming (the last claim
   * filled every slot, or this node is submitting), else by a blocking read.
   */
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
        continue;
      }
      try {
        let rows: Buffer[] = [];
        let from = 0;
        if (Date.now() >= nextStaleCheck) {
          nextStaleCheck = Date.now() + STALLED_CHECK_MS;
          rows = await w.thawClaimBuffer(STREAM_KEY, JOB_PREFIX, GROUP, this.options.nodeId, "stale", free, Date.now(), LOCK_MS);
        } else if ((backlog || this.inFlight || this.next) && this.client.status === "ready") {
          // The round's other writes go first: the slots their attempts freed are in its claim too.
          const round = this.round();
          round.claim = true;
          rows = await round.reply;
          from = 1;
        }
        if (rows.length <= from) {
          rows = await this.blockingClaim(w, free);
          from = 0;
        }
        reported = false;
        for (let i = from; i + 2 < rows.length; i += 3) this.begin(rows, i);
        backlog = this.claims.size >= this.options.concurrency;
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
  private async blockingClaim(w: Client, free: number): Promise<Buffer[]> {
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

  /** The claimed job at `rows[i]` (as START gives it): run it, write its outcome, free its slot. */
  private begin(rows: Buffer[], i: number): void {
    const [entry, attempts, max, created, retries, lost, started] = rows[i + 1]!.toString().split(" ") as string[];
    const claim: Claim = {
      id: rows[i]!.toString(), entry: entry!, token: `${this.options.nodeId}/${attempts}/${entry}`, attempts: Number(attempts), max: Number(max),
      created: Number(created), retries: Number(retries), started: Number(started),
    };
    this.claims.set(claim.id, claim);
    const run = this.process(claim, rows[i + 2]!, lost === "1")
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
    const { id, token, entry } = claim;
    if (outcome.kind === "wait") {
      await this.finish([id, token, entry, "wait", "", "", "", "", "", "", "0", String(now + outcome.delayMs)], now + outcome.delayMs);
      return;
    }
    const result = "result" in outcome && outcome.result ? outcome.result : undefined;
    const error = outcome.kind === "finished" ? undefined : outcome.error;
    const resultBytes = result ? packResult(result) : "";
    const errorJson = error ? JSON.stringify(error) : "";
    if (outcome.kind === "retry" && claim.attempts < claim.max) {
      const runAt = now + backoffMs(claim.attempts, this.options.backoffMs);
      await this.finish([id, token, entry, "retry", "queued", node, errorJson, resultBytes, "", "", "0", String(runAt)], runAt);
      return;
    }
    const status: JobStatus = outcome.kind === "finished" ? outcome.status : "dead";
    const cbkey = spec.callbackUrl ? deliveryKey(claim.id, claim.attempts, claim.retries) : "";
    const member = cbkey ? JSON.stringify([claim.id, cbkey]) : "";
    const lease = now + DELIVERY_LEASE_MS;
    const written = await this.finish([id, token, entry, "final", status, node, errorJson, resultBytes, cbkey, member, String(lease), String(now)]);
    if (!written) return;
    const state: JobState = {
      id: claim.id,
      spec: { tenant: spec.tenant, function: spec.function, callbackUrl: spec.callbackUrl, requestId: spec.requestId },
      status, attempts: claim.attempts, maxAttempts: claim.max, createdAt: claim.created, startedAt: claim.started, finishedAt: now,
      node, error, result, callback: cbkey && spec.callbackUrl ? pendingStatus(spec.callbackUrl, cbkey) : undefined,
    };
    this.runner.finished(state);
    if (member) void this.takeDelivery(member, lease, state);
    else this.recent.add(state);
  }

  /**
   * Write an outcome with this round's others. False (logged) if it could
   * not be written: the claim was taken over, or Redis is down -- then the
   * claim runs out and the job runs again.
   */
  private async finish(args: (string | Uint8Array)[], runAt?: number): Promise<boolean> {
    const round = this.round();
    const index = round.outcomeCount++;
    for (const a of args) round.outcomes.push(a);
    let written: boolean;
    try {
      written = (await round.reply)[0]![index] === 0x31; // "1"
    } catch (e) {
      this.log.warn("a job's outcome could not be recorded; it will run again", { job: args[0], error: String(e) });
      return false;
    }
    if (!written) this.log.warn("a job's claim was taken over; this attempt's outcome is dropped", { job: args[0] });
    else if (runAt !== undefined) this.schedulePromote(runAt - Date.now());
    return written;
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
 * Strings are written in place -- short ASCII ones by hand, which costs
 * less than a native call (a round packs a dozen per job).
 */
export function packStrings(items: (string | Uint8Array)[]): Buffer {
  let size = 5;
  for (const x of items) size += 5 + (typeof x === "string" ? x.length * 3 : x.length);
  const out = Buffer.allocUnsafe(size);
  out[0] = 0xdd;
  out.writeUInt32BE(items.length, 1);
  let at = 5;
  for (const x of items) {
    let n = x.length;
    if (typeof x !== "string") out.set(x, at + 5);
    else if (n > 64 || !writeAscii(x, out, at + 5)) n = out.write(x, at + 5, "utf8");
    out[at] = 0xdb;
    out.writeUInt32BE(n, at + 1);
    at += 5 + n;
  }
  return out.subarray(0, at);
}

/** Write `s` at `at` if it is all ASCII; false (and `out` scribbled on) if it is not. */
function writeAscii(s: string, out: Buffer, at: number): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return false;
    out[at + i] = c;
  }
  return true;
}

/** The job's payload; one a producer got wrong shows as an unnamed job. */
function specOf(payload: Buffer | null): JobSpec {
  try {
    return decodePayload(payload ?? Buffer.alloc(0));
  } catch {
    return { tenant: "", function: "", body: new Uint8Array() };
  }
}
