// The node's compile queue: at most `concurrency` compiles run at once
// (each is a C compiler taking a core and up to gigabytes), the rest wait in
// FIFO order, and at most `capacity` may wait: past that a deploy is refused
// at once (503 compile_queue_full) rather than queued behind hours of work.
//
// A deploy takes its place in line before it is recorded (`enter`), so the
// bound is exact even though recording may wait on the cluster; it either
// runs with that place or gives it back (`cancel`). Builds the node owes
// anyway (rebuilds at boot, builds taken over from a dead cluster node,
// artifacts no node has) enter with `force`: they wait their turn like the
// rest but are never refused, since refusing them would lose work nobody
// retries.
//
// Retry-After is the time one place is expected to take to free up: the
// decayed mean compile time over the number of slots.

export interface Ticket {
  /** Waits for a slot, runs `fn` in it, and frees the place. */
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** Gives the place back without running. */
  cancel(): void;
}

export class CompileQueue {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  /** Decayed mean compile time; 10 s is a first guess until compiles are measured. */
  private meanMs = 10_000;

  constructor(
    readonly concurrency: number,
    readonly capacity: number,
  ) {}

  /** Seconds until a place is likely to free up. */
  retryAfterSeconds(): number {
    return Math.min(600, Math.max(1, Math.ceil(this.meanMs / 1000 / this.concurrency)));
  }

  /** A place in line, or undefined when `capacity` compiles already wait (never with `force`). */
  enter(force = false): Ticket | undefined {
    if (!force && this.running >= this.concurrency && this.waiting.length >= this.capacity) return undefined;
    let state: "waiting" | "running" | "done" = "waiting";
    let used = false;
    let wake!: () => void;
    const granted = new Promise<void>((resolve) => (wake = resolve));
    const grant = () => {
      state = "running";
      wake();
    };
    if (this.running < this.concurrency) {
      this.running++;
      grant();
    } else {
      this.waiting.push(grant);
    }
    const leave = () => {
      if (state === "waiting") this.waiting.splice(this.waiting.indexOf(grant), 1);
      if (state === "running") this.next();
      state = "done";
    };
    return {
      run: async <T>(fn: () => Promise<T>) => {
        if (used || state === "done") throw new Error("a compile ticket runs once");
        used = true;
        await granted;
        const started = performance.now();
        try {
          return await fn();
        } finally {
          this.meanMs = 0.8 * this.meanMs + 0.2 * (performance.now() - started);
          leave();
        }
      },
      cancel: leave,
    };
  }

  /** A slot came free: hand it to the next in line, or count it free. */
  private next(): void {
    const grant = this.waiting.shift();
    if (grant) grant();
    else this.running--;
  }
}
