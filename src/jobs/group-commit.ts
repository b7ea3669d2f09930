// Group commit for the embedded queue's SQLite writes (local.ts).
//
// Writes asked for during one round of the event loop run together, in one
// transaction, at the end of the round (setImmediate); each caller's
// promise settles only once that transaction has committed. A commit costs
// the same whether it carries one write or fifty -- with synchronous=FULL
// it is an fsync of the WAL, ~0.15 ms here -- so under load the cost per
// write falls with the batch, while a lone write waits for no more than the
// rest of the current round.
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

  constructor(private readonly db: Database) {}

  /** Run `write` in this round's transaction; resolves with its value after the commit. */
  add<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const settle = (value: unknown, error?: unknown) => (error === undefined ? resolve(value as T) : reject(error));
      if (this.pending.push({ write, settle }) === 1) setImmediate(() => this.flush());
    });
  }

  /** Commit what is pending now (also at close, so nothing accepted is left behind). */
  flush(): void {
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    let values: unknown[];
    try {
      values = this.db.transaction(() => batch.map((p) => p.write()))();
    } catch (e) {
      for (const p of batch) p.settle(undefined, e ?? new Error("the transaction failed"));
      return;
    }
    batch.forEach((p, i) => p.settle(values[i]));
  }
}
