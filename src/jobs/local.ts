// The embedded job queue: one SQLite database (bun:sqlite) in the data
// directory, for a node without Redis.
//
// Every write is group-committed (group-commit.ts): the jobs submitted,
// the outcomes of the attempts that ended, and the claim for the slots free
// at its end, of one round of the event loop, are one transaction. A round
// with a submit commits with synchronous=FULL in WAL mode, and only then
// does each job get its 202 -- so an accepted job survives a crash, a kill
// -9 and a power cut, at one fsync per batch instead of one per job (an
// fsync of the WAL is ~0.15 ms here, which capped the queue below 1,000
// jobs/s). A round of state changes only (claimed, finished) commits with
// synchronous=NORMAL: it survives a crash of the process but not of the
// machine, which at worst runs a job again -- the at-least-once promise
// holds. The commit runs on the event loop: one short block per batch,
// where a writer thread would contend with this thread's own writes for
// SQLite's single write lock (whose busy handler sleeps whole
// milliseconds). One connection does it all: a second one would empty
// this one's page cache with every commit.
//
// Workers are this process: up to `concurrency` jobs run at once, claimed
// oldest-first by one UPDATE ... RETURNING for all free slots, so a job is
// claimed once; a slot is free once its call returned, so the outcome and
// the claim that refills its slot are in the same round. A job that was
// running when the process died goes back to the queue on the next start
// (its attempt counted), or to dead if that was its last attempt -- at
// least once, like the Redis queue's recovery of a dead node's claims.
//
// Status reads of a job this process finished, and that can no longer
// change, need no query (recent.ts).
//
// A job's final status, result and -- if it has a callback -- its pending
// delivery are one UPDATE; the delivery is handed to the dispatcher only
// after it, so the callback reports what GET /v1/jobs/{id} shows. A
// delivery still pending when the process stops is picked up at the next
// start.

import { Database } from "bun:sqlite";
import { join } from "node:path";
import type { Logger } from "../log.ts";
import { ThawError } from "../service/errors.ts";
import {
  backoffMs, type CallbackStatus, decode, decodePayload, encodePayload, type JobResult, type JobSpec,
  type JobState, type JobStatus, PayloadError,
} from "./job.ts";
import { callbackBody, CallbackDispatcher, type Delivery, deliveryKey, pendingStatus } from "./callback.ts";
import type { JobQueue, QueueOptions } from "./queue.ts";
import type { AttemptOutcome, JobRunner } from "./runner.ts";
import { GroupCommit } from "./group-commit.ts";
import { packResult } from "./payload.ts";
import { RecentJobs } from "./recent.ts";
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
-- Partial indexes: a job is in jobs_queued only while it waits and in jobs_done
-- once it finished, so each index is written twice in a job's life, not at
-- every change of status (jobs_ready and jobs_finished, their predecessors).
DROP INDEX IF EXISTS jobs_ready;
DROP INDEX IF EXISTS jobs_finished;
CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (run_at) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS jobs_done ON jobs (finished_at) WHERE finished_at IS NOT NULL;
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
  tenant: string;
  function: string;
  request_id: string | null;
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
  private readonly db: Database;
  /** Attempts and their outcome writes, so close() knows when they are over. */
  private readonly active = new Set<Promise<void>>();
  /** Attempts whose call has not returned yet: the slots in use. */
  private busy = 0;
  private started = false;
  private closing = false;
  private closed = false;
  private wake?: ReturnType<typeof setTimeout>;
  /** Every write: one commit per round of the event loop. */
  private readonly writes: GroupCommit;
  /** A claim is in this round's writes. */
  private claimPending = false;
  private sweeper?: ReturnType<typeof setInterval>;
  /** Jobs this process finished whose record no longer changes, for status reads. */
  private readonly recent = new RecentJobs();
  private readonly sql: ReturnType<LocalJobQueue["statements"]>;

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
    this.callbacks = new CallbackDispatcher(options.callbacks, fileSecret(dataDir), log);
    this.writes = new GroupCommit(this.db);
    this.sql = this.statements();
    this.recoverInterrupted();
  }

  /** The statements of the per-job path, prepared once. */
  private statements() {
    const q = (sql: string) => this.db.query(sql);
    return {
      insert: q(
        `INSERT INTO jobs (id, tenant, function, callback_url, status, max_attempts, payload, created_at, run_at, request_id)
         VALUES ($id, $tenant, $function, $callback, 'queued', $max, $payload, $now, $now, $requestId)`,
      ),
      load: q(`SELECT ${COLUMNS} FROM jobs WHERE id = $id`),
      claim: q(
        `UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = $now, node = $node
         WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND run_at <= $now ORDER BY run_at, rowid LIMIT $n)
         RETURNING id, tenant, function, request_id, payload, attempts, max_attempts, created_at, retries, callback_url`,
      ),
      nextDue: q("SELECT MIN(run_at) AS at FROM jobs WHERE status = 'queued'"),
      wait: q("UPDATE jobs SET status = 'queued', attempts = attempts - 1, run_at = $runAt WHERE id = $id"),
      retry: q("UPDATE jobs SET status = 'queued', run_at = $runAt, error = $error, result = $result WHERE id = $id"),
      final: q("UPDATE jobs SET status = $status, finished_at = $now, error = $error, result = $result, callback = $callback WHERE id = $id"),
      delivery: q("UPDATE jobs SET callback = $callback WHERE id = $id AND json_extract(callback, '$.key') = $key"),
    };
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
    // Time-ordered, so a round's inserts land in the same pages of the id index, not one page each.
    const id = Bun.randomUUIDv7("hex", now);
    const callback = spec.callbackUrl ?? null;
    const row = { id, tenant: spec.tenant, function: spec.function, callback, max: maxAttempts, payload: encodePayload(spec), now, requestId: spec.requestId ?? null };
    const stored = this.writes.add(() => this.sql.insert.run(row), { durable: true });
    // Claimed in the same commit, after it, if a slot is free.
    this.claim();
    try {
      await stored;
    } catch (e) {
      this.log.error("a job could not be stored", { error: String(e) });
      throw new ThawError("queue_unavailable", "the job queue could not store the job", {}, 1);
    }
    return {
      id, spec: { tenant: spec.tenant, function: spec.function, callbackUrl: spec.callbackUrl, requestId: spec.requestId }, status: "queued",
      attempts: 0, maxAttempts, createdAt: now,
    };
  }

  async get(id: string): Promise<JobState | undefined> {
    const state = this.recent.get(id) ?? this.load(id);
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
    if (changed.changes > 0) this.claim();
    return this.get(id);
  }

  start(): void {
    this.started = true;
    this.sweep();
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.resumeDeliveries();
    this.claim();
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
        // A write after close (a delivery outlived the shutdown deadline) is dropped: it resumes on restart.
        if (!this.closed) this.sql.delivery.run({ id: state.id, callback: JSON.stringify(status), key });
      },
      () => true,
      cb,
    );
  }

  async close(deadline: number): Promise<void> {
    this.closing = true;
    // Submits already in a round came before the close: store them.
    this.writes.flush();
    clearTimeout(this.wake);
    clearInterval(this.sweeper);
    while (this.active.size > 0 && Date.now() < deadline)
      await Promise.race([Promise.all(this.active), Bun.sleep(Math.max(1, deadline - Date.now()))]);
    await this.callbacks.close(deadline);
    this.writes.flush();
    this.closed = true;
    this.db.close(false);
  }

  private load(id: string): JobState | undefined {
    const row = this.sql.load.get({ id }) as Row | null;
    return row ? stateOf(row) : undefined;
  }

  private sweep(): void {
    this.db.query("DELETE FROM jobs WHERE finished_at < $cutoff").run({ cutoff: Date.now() - this.options.retentionMs });
  }

  /**
   * Fill the free slots with due jobs, oldest first, at the end of this
   * round's writes (one claim per round); with slots still free, sleep
   * until the next job is due.
   */
  private claim(): void {
    if (!this.started || this.closing || this.claimPending || this.busy >= this.options.concurrency) return;
    this.claimPending = true;
    clearTimeout(this.wake);
    this.writes
      .add(
        () => {
          this.claimPending = false;
          const n = this.options.concurrency - this.busy;
          if (this.closed || this.closing || n <= 0) return { claimed: [] as Claimed[], now: 0, next: null };
          const now = Date.now();
          const claimed = this.sql.claim.all({ now, node: this.options.nodeId, n }) as Claimed[];
          const next = claimed.length < n ? (this.sql.nextDue.get() as { at: number | null }).at : null;
          return { claimed, now, next };
        },
        { last: true },
      )
      .then(
        ({ claimed, now, next }) => {
          for (const job of claimed) this.begin(job, now);
          if (next !== null && this.busy < this.options.concurrency && !this.closing) {
            clearTimeout(this.wake);
            this.wake = setTimeout(() => this.claim(), Math.min(MAX_IDLE_MS, Math.max(0, next - Date.now())));
          }
        },
        (e) => {
          this.claimPending = false;
          this.log.error("claiming jobs failed", { error: String(e) });
          this.wake = setTimeout(() => this.claim(), MAX_IDLE_MS);
        },
      );
  }

  private begin(job: Claimed, startedAt: number): void {
    this.busy++;
    const run = this.process(job, startedAt)
      .catch((e) => this.log.error("job processing failed", { job: job.id, error: String(e) }))
      .finally(() => this.active.delete(run));
    this.active.add(run);
  }

  /** The attempt's call returned: its slot is free, and claimed again in the round its outcome is written in. */
  private release(): void {
    this.busy--;
    this.claim();
  }

  private async process(job: Claimed, startedAt: number): Promise<void> {
    const { id, attempts, max_attempts: maxAttempts } = job;
    let outcome: AttemptOutcome;
    try {
      outcome = await this.runner.attempt(decodePayload(job.payload), job.created_at, job.id);
    } catch (e) {
      if (!(e instanceof PayloadError)) {
        this.release();
        throw e;
      }
      outcome = { kind: "dead", error: { code: "invalid_payload", message: e.message } };
    }
    this.release();
    const now = Date.now();
    if (outcome.kind === "wait") {
      // The function is still compiling: back in the queue, this attempt not counted.
      await this.record(() => this.sql.wait.run({ id, runAt: now + outcome.delayMs }).changes > 0);
      return;
    }
    const result = "result" in outcome && outcome.result ? outcome.result : undefined;
    const resultBytes = result ? packResult(result) : null;
    const error = outcome.kind === "finished" ? undefined : outcome.error;
    const errorJson = error ? JSON.stringify(error) : null;
    if (outcome.kind === "retry" && attempts < maxAttempts) {
      const runAt = now + backoffMs(attempts, this.options.backoffMs);
      await this.record(() => this.sql.retry.run({ id, runAt, error: errorJson, result: resultBytes }).changes > 0);
      return;
    }
    const status: JobStatus = outcome.kind === "finished" ? outcome.status : "dead";
    // The outcome and its pending delivery in one commit; the delivery starts only after it.
    const callbackUrl = job.callback_url ?? undefined;
    const callback = callbackUrl ? pendingStatus(callbackUrl, deliveryKey(id, attempts, job.retries)) : undefined;
    const recorded = await this.record(
      () => this.sql.final.run({ id, status, now, error: errorJson, result: resultBytes, callback: callback ? JSON.stringify(callback) : null }).changes > 0,
    );
    if (!recorded) return;
    const state: JobState = {
      id,
      spec: { tenant: job.tenant, function: job.function, callbackUrl, requestId: job.request_id ?? undefined },
      status, attempts, maxAttempts, createdAt: job.created_at, startedAt, finishedAt: now, node: this.options.nodeId, error, result, callback,
    };
    this.runner.finished(state);
    this.recent.add(state);
    this.deliver(state);
  }

  /** A running job's state change, in this round's commit; false once closed (the job reruns on restart). */
  private record(write: () => boolean): Promise<boolean> {
    return this.closed ? Promise.resolve(false) : this.writes.add(() => !this.closed && write());
  }
}
