// The embedded job queue: one SQLite database (bun:sqlite) in the data
// directory, for a node without Redis.
//
// Submits are group-committed: the jobs submitted while the event loop
// handles one round of requests are INSERTed in one transaction, committed
// with synchronous=FULL in WAL mode, and only then does each of them get
// its 202 -- so an accepted job survives a crash, a kill -9 and a power
// cut, as before, at one fsync per batch instead of one per job (an fsync
// of the WAL is ~0.15 ms here, which capped the queue below 1,000 jobs/s).
// The commit runs on the event loop: one short block per batch, where a
// writer thread would contend with this thread's own writes for SQLite's
// single write lock (whose busy handler sleeps whole milliseconds).
//
// State changes after that (claimed, finished) go through a second
// connection with synchronous=NORMAL: they survive a crash of the process
// but not of the machine, which at worst runs a job again -- the
// at-least-once promise holds -- and they skip an fsync each. The outcomes
// of the attempts that end in one round are group-committed too, and the
// slots they free are filled at the end of the round by one claim. Workers
// are this process: up to `concurrency` jobs run at once, claimed
// oldest-first by one UPDATE ... RETURNING for all free slots, so a job is
// claimed once. A job that was running when the process died goes back to the
// queue on the next start (its attempt counted), or to dead if that was its
// last attempt -- at least once, like the Redis queue's recovery of a dead node's claims.
//
// A job's final status, result and -- if it has a callback -- its pending
// delivery are one UPDATE; the delivery is handed to the dispatcher only
// after it, so the callback reports what GET /v1/jobs/{id} shows. A
// delivery still pending when the process stops is picked up at the next
// start.

import { Database, type SQLQueryBindings } from "bun:sqlite";
import { join } from "node:path";
import type { Logger } from "../log.ts";
import { ThawError } from "../service/errors.ts";
import {
  backoffMs, type CallbackStatus, decode, decodePayload, encode, encodePayload, type JobResult, type JobSpec,
  type JobState, type JobStatus, PayloadError,
} from "./job.ts";
import { callbackBody, CallbackDispatcher, type Delivery, deliveryKey, pendingStatus } from "./callback.ts";
import type { JobQueue, QueueOptions } from "./queue.ts";
import type { AttemptOutcome, JobRunner } from "./runner.ts";
import { GroupCommit } from "./group-commit.ts";
import { fileSecret } from "./secret.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  function TEXT NOT NULL,
  callback_url TEXT,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  payload BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  run_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  node TEXT,
  error TEXT,
  result BLOB,
  callback TEXT,
  retries INTEGER NOT NULL DEFAULT 0,
  request_id TEXT
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (status, run_at);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at);
`;

interface Row {
  id: string;
  tenant: string;
  function: string;
  callback_url: string | null;
  status: JobStatus;
  attempts: number;
  max_attempts: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  node: string | null;
  error: string | null;
  result: Uint8Array | null;
  callback: string | null;
  retries: number;
  request_id: string | null;
}

const COLUMNS =
  "id, tenant, function, callback_url, status, attempts, max_attempts, created_at, started_at, finished_at, node, error, result, callback, retries, request_id";
/** How often finished jobs past their retention are deleted. */
const SWEEP_MS = 60_000;
/** The longest the queue sleeps with nothing due, so a clock jump cannot strand a job. */
const MAX_IDLE_MS = 1000;

interface Claimed {
  id: string;
  payload: Uint8Array;
  attempts: number;
  max_attempts: number;
  created_at: number;
  retries: number;
  callback_url: string | null;
}

function stateOf(r: Row): JobState {
  return {
    id: r.id,
    spec: { tenant: r.tenant, function: r.function, callbackUrl: r.callback_url ?? undefined, requestId: r.request_id ?? undefined },
    status: r.status,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    createdAt: r.created_at,
    startedAt: r.started_at ?? undefined,
    finishedAt: r.finished_at ?? undefined,
    node: r.node ?? undefined,
    error: r.error ? JSON.parse(r.error) : undefined,
    result: r.result ? decode<JobResult>(r.result) : undefined,
    callback: r.callback ? (JSON.parse(r.callback) as CallbackStatus) : undefined,
  };
}

export class LocalJobQueue implements JobQueue {
  readonly backend = "embedded";
  readonly callbacks: CallbackDispatcher;
  /** State changes and reads: synchronous=NORMAL. */
  private readonly db: Database;
  /** Accepting jobs: synchronous=FULL. */
  private readonly durable: Database;
  private readonly active = new Set<Promise<void>>();
  private started = false;
  private closing = false;
  private closed = false;
  private wake?: ReturnType<typeof setTimeout>;
  /** Accepting jobs: one durable commit per round of the event loop. */
  private readonly inserts: GroupCommit;
  /** State changes of running jobs: one commit per round. */
  private readonly writes: GroupCommit;
  private pumpScheduled = false;
  private sweeper?: ReturnType<typeof setInterval>;

  constructor(
    dataDir: string,
    private readonly runner: JobRunner,
    private readonly options: QueueOptions,
    private readonly log: Logger,
  ) {
    const path = join(dataDir, "jobs.sqlite");
    this.db = new Database(path, { create: true, strict: true });
    this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;");
    this.db.exec(SCHEMA);
    // A database from before `retries` (the rounds of POST /retry, part of a callback's Idempotency-Key).
    const columns = this.db.query("SELECT name FROM pragma_table_info('jobs')").all() as { name: string }[];
    if (!columns.some((c) => c.name === "retries")) this.db.exec("ALTER TABLE jobs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0");
    // ... and from before `request_id` (the X-Request-Id of the submitting request).
    if (!columns.some((c) => c.name === "request_id")) this.db.exec("ALTER TABLE jobs ADD COLUMN request_id TEXT");
    this.durable = new Database(path, { strict: true });
    this.callbacks = new CallbackDispatcher(options.callbacks, fileSecret(dataDir), log);
    this.durable.exec("PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;");
    this.inserts = new GroupCommit(this.durable);
    this.writes = new GroupCommit(this.db);
    this.recoverInterrupted();
  }

  /** Attempts cut short by the last process's end: run again, or dead if that was the last one. */
  private recoverInterrupted(): void {
    const now = Date.now();
    const error = JSON.stringify({ code: "node_lost", message: "the node stopped while the job was running" });
    this.db
      .query("UPDATE jobs SET status = 'dead', finished_at = $now, error = $error WHERE status = 'running' AND attempts >= max_attempts")
      .run({ now, error });
    const requeued = this.db
      .query("UPDATE jobs SET status = 'queued', run_at = $now, error = $error WHERE status = 'running'")
      .run({ now, error });
    if (requeued.changes > 0) this.log.info("jobs requeued after restart", { jobs: requeued.changes });
  }

  async submit(spec: JobSpec, maxAttempts: number): Promise<JobState> {
    if (this.closing) throw new ThawError("shutting_down", "the server is shutting down", {}, 1);
    const now = Date.now();
    const id = crypto.randomUUID();
    const callback = spec.callbackUrl ?? null;
    const row = { id, tenant: spec.tenant, function: spec.function, callback, max: maxAttempts, payload: encodePayload(spec), now, requestId: spec.requestId ?? null };
    try {
      await this.inserts.add(() =>
        this.durable
          .query(
            `INSERT INTO jobs (id, tenant, function, callback_url, status, max_attempts, payload, created_at, run_at, request_id)
             VALUES ($id, $tenant, $function, $callback, 'queued', $max, $payload, $now, $now, $requestId)`,
          )
          .run(row),
      );
    } catch (e) {
      this.log.error("a job could not be stored", { error: String(e) });
      throw new ThawError("queue_unavailable", "the job queue could not store the job", {}, 1);
    }
    this.schedulePump();
    return {
      id, spec: { tenant: spec.tenant, function: spec.function, callbackUrl: spec.callbackUrl, requestId: spec.requestId }, status: "queued",
      attempts: 0, maxAttempts, createdAt: now,
    };
  }

  async get(id: string): Promise<JobState | undefined> {
    const state = this.load(id);
    if (state?.finishedAt !== undefined && state.finishedAt + this.options.retentionMs < Date.now()) return undefined;
    return state;
  }

  async retry(id: string): Promise<JobState | undefined> {
    const changed = this.db
      .query(
        `UPDATE jobs SET status = 'queued', attempts = 0, run_at = $now, finished_at = NULL, callback = NULL, retries = retries + 1
         WHERE id = $id AND status = 'dead'`,
      )
      .run({ id, now: Date.now() });
    if (changed.changes > 0) this.pump();
    return this.get(id);
  }

  start(): void {
    this.started = true;
    this.sweep();
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.resumeDeliveries();
    this.pump();
  }

  /** Callbacks recorded as pending by the last process, not delivered before it stopped. */
  private resumeDeliveries(): void {
    const ids = this.db
      .query("SELECT id FROM jobs WHERE finished_at IS NOT NULL AND json_extract(callback, '$.state') = 'pending'")
      .all() as { id: string }[];
    for (const { id } of ids) {
      const state = this.load(id);
      if (state) this.deliver(state);
    }
    if (ids.length > 0) this.log.info("callback deliveries resumed after restart", { deliveries: ids.length });
  }

  /** Hand a recorded final outcome's pending delivery to the dispatcher. */
  private deliver(state: JobState): void {
    const cb = state.callback;
    if (!cb?.key || cb.state !== "pending" || !state.spec.callbackUrl) return;
    const key = cb.key;
    const delivery: Delivery = { jobId: state.id, tenant: state.spec.tenant, url: state.spec.callbackUrl, key, status: state.status, body: callbackBody(state) };
    this.callbacks.enqueue(
      delivery,
      (status) => {
        this.update(state.id, "callback = $callback", { callback: JSON.stringify(status) }, "AND json_extract(callback, '$.key') = $key", { key });
      },
      () => true,
      cb,
    );
  }

  async close(deadline: number): Promise<void> {
    this.closing = true;
    // Submits already in a batch came before the close: store them.
    this.inserts.flush();
    clearTimeout(this.wake);
    clearInterval(this.sweeper);
    while (this.active.size > 0 && Date.now() < deadline)
      await Promise.race([Promise.all(this.active), Bun.sleep(Math.max(1, deadline - Date.now()))]);
    await this.callbacks.close(deadline);
    this.writes.flush();
    this.closed = true;
    this.durable.close(false);
    this.db.close(false);
  }

  private load(id: string): JobState | undefined {
    const row = this.db.query(`SELECT ${COLUMNS} FROM jobs WHERE id = $id`).get({ id }) as Row | null;
    return row ? stateOf(row) : undefined;
  }

  private sweep(): void {
    this.db.query("DELETE FROM jobs WHERE finished_at < $cutoff").run({ cutoff: Date.now() - this.options.retentionMs });
  }

  /** Pump once at the end of this round: the slots freed in it are claimed together. */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Start due jobs while there are free slots; otherwise sleep until the next one is due. */
  private pump(): void {
    if (!this.started || this.closing) return;
    clearTimeout(this.wake);
    const free = this.options.concurrency - this.active.size;
    if (free <= 0) return;
    for (const claimed of this.claim(free)) {
      const run = this.process(claimed)
        .catch((e) => this.log.error("job processing failed", { job: claimed.id, error: String(e) }))
        .finally(() => {
          this.active.delete(run);
          this.schedulePump();
        });
      this.active.add(run);
    }
    if (this.active.size >= this.options.concurrency) return;
    const next = this.db.query("SELECT MIN(run_at) AS at FROM jobs WHERE status = 'queued'").get() as { at: number | null };
    if (next.at !== null) this.wake = setTimeout(() => this.pump(), Math.min(MAX_IDLE_MS, Math.max(0, next.at - Date.now())));
  }

  /** Up to `n` due jobs, oldest first, claimed in one statement. */
  private claim(n: number): Claimed[] {
    const now = Date.now();
    return this.db
      .query(
        `UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = $now, node = $node
         WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND run_at <= $now ORDER BY run_at, rowid LIMIT $n)
         RETURNING id, payload, attempts, max_attempts, created_at, retries, callback_url`,
      )
      .all({ now, node: this.options.nodeId, n }) as Claimed[];
  }

  private async process(job: Claimed): Promise<void> {
    const { id, attempts, max_attempts: maxAttempts } = job;
    let outcome: AttemptOutcome;
    try {
      outcome = await this.runner.attempt(decodePayload(job.payload), job.created_at, job.id);
    } catch (e) {
      if (!(e instanceof PayloadError)) throw e;
      outcome = { kind: "dead", error: { code: "invalid_payload", message: e.message } };
    }
    const now = Date.now();
    if (outcome.kind === "wait") {
      // The function is still compiling: back in the queue, this attempt not counted.
      await this.record(() => this.update(id, "status = 'queued', attempts = attempts - 1, run_at = $runAt", { runAt: now + outcome.delayMs }));
      return;
    }
    const result = "result" in outcome && outcome.result ? encode(outcome.result) : null;
    const error = outcome.kind === "finished" ? null : JSON.stringify(outcome.error);
    if (outcome.kind === "retry" && attempts < maxAttempts) {
      await this.record(() =>
        this.update(id, "status = 'queued', run_at = $runAt, error = $error, result = $result", {
          runAt: now + backoffMs(attempts, this.options.backoffMs), error, result,
        }),
      );
      return;
    }
    const status: JobStatus = outcome.kind === "finished" ? outcome.status : "dead";
    // The outcome and its pending delivery in one commit; the delivery starts only after it.
    const callback = job.callback_url ? JSON.stringify(pendingStatus(job.callback_url, deliveryKey(id, attempts, job.retries))) : null;
    const recorded = await this.record(() =>
      this.update(id, "status = $status, finished_at = $now, error = $error, result = $result, callback = $callback", { status, now, error, result, callback }),
    );
    if (!recorded) return;
    const state = this.load(id)!;
    this.runner.finished(state);
    this.deliver(state);
  }

  /** A running job's state change, in this round's commit; false once closed (the job reruns on restart). */
  private record(write: () => boolean): Promise<boolean> {
    return this.closed ? Promise.resolve(false) : this.writes.add(write);
  }

  /** A write after close (a job outlived the shutdown deadline) is dropped: the job reruns on restart. */
  private update(id: string, assignments: string, values: Record<string, SQLQueryBindings>, where = "", extra: Record<string, SQLQueryBindings> = {}): boolean {
    if (this.closed) return false;
    return this.db.query(`UPDATE jobs SET ${assignments} WHERE id = $id ${where}`).run({ id, ...values, ...extra }).changes > 0;
  }
}
