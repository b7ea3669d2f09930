// Group commit for the embedded queue's SQLite writes (local.ts).
//
// Writes asked for during one round of the event loop run together, in one
// transaction, at the end of the round (setImmediate); each caller's
// promise settles only once that transaction has committed. A commit costs
// the same whether it carries one write or fifty -- with synchronous=FULL
// it is an fsync of the WAL, ~0.15 ms here, and every commit rewrites the
// pages it touched -- so under load the cost per write falls with the
// batch, while a lone write waits for no more than the rest of the current
// round.
//
// A write is durable (an accepted job) or not (a running job's state
// change, which a crash at worst makes run again). A round with a durable
// write commits with synchronous=FULL, one without with NORMAL: the
// connection's level is switched between transactions, only when it
// changes. Writes marked `last` run after the round's others (the queue's
// claim, which should see the jobs submitted and the slots freed in its
// round).
//
// The trade-off: a failing write rolls back its whole batch, and every
// caller in it sees the error. The queue's writes do not fail on their own
// (no constraints a caller can break), so that is a full disk or a broken
// database, where the batch fails either way.

import type { Database } from "bun:sqlite";

interface Pending {
  write: () => unknown;
  settle: (value: unknown, error?: unknown) => void;
}

export class GroupCommit {
  private pending: Pending[] = [];
  private pendingLast: Pending[] = [];
  private durable = false;
  /** The connection's synchronous level is FULL (it starts at NORMAL). */
  private full = false;
  private scheduled = false;

  constructor(private readonly db: Database) {}

  /** Run `write` in this round's transaction; resolves with its value after the commit. */
  add<T>(write: () => T, opts: { durable?: boolean; last?: boolean } = {}): Promise<T> {
    if (opts.durable) this.durable = true;
    return new Promise<T>((resolve, reject) => {
      const settle = (value: unknown, error?: unknown) => (error === undefined ? resolve(value as T) : reject(error));
      (opts.last ? this.pendingLast : this.pending).push({ write, settle });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commit what is pending now (also at close, so nothing accepted is left behind). */
  flush(): void {
    this.scheduled = false;
    const batch = this.pendingLast.length === 0 ? this.pending : this.pending.concat(this.pendingLast);
    if (batch.length === 0) return;
    this.pending = [];
    this.pendingLast = [];
    const durable = this.durable;
    this.durable = false;
    let values: unknown[];
    try {
      if (durable !== this.full) {
        this.db.exec(`PRAGMA synchronous = ${durable ? "FULL" : "NORMAL"}`);
        this.full = durable;
      }
      values = this.db.transaction(() => batch.map((p) => p.write()))();
    } catch (e) {
      for (const p of batch) p.settle(undefined, e ?? new Error("the transaction failed"));
      return;
    }
    for (let i = 0; i < batch.length; i++) batch[i]!.settle(values[i]);
  }
}
