// The node's compile queue: at most `concurrency` compiler processes run at
// once (each is a C compiler taking a core and up to gigabytes), the rest
// wait, and at most `capacity` deploys may wait: past that a deploy is
// refused at once (503 compile_queue_full) rather than queued behind hours
// of work.
//
// A compile weighs as many slots as the compiler processes it runs at once
// (a large module is built as several C units in parallel, compile.ts),
// capped at `concurrency` so it can always run.
//
// Two priorities: `deploy` (the fast-tier build that makes a deploy
// callable, rebuilds the node owes) and `background` (the optimized builds
// that replace fast code later). A waiting deploy always goes before every
// waiting background build; within a priority the order is FIFO, and the
// head of the line waits for enough slots rather than being overtaken (no
// starvation of heavy compiles). Background builds never count against
// `capacity` and are never refused: they are work the node owes itself.
// Since a running compile is never interrupted, background builds leave one
// slot free when there is more than one: a deploy arriving during a long
// -O3 build starts at once instead of waiting for it.
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
  /** Compiler processes this compile may run at once (its weight, at most `concurrency`). */
  readonly slots: number;
  /** Waits for its slots, runs `fn` in them, and frees the place. */
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** Gives the place back without running. */
  cancel(): void;
}

export type CompilePriority = "deploy" | "background";

export interface EnterOptions {
  /** Never refused (still waits its turn). */
  force?: boolean;
  priority?: CompilePriority;
  /** Compiler processes the compile would like to run at once. */
  weight?: number;
}

interface Waiter {
  slots: number;
  priority: CompilePriority;
  grant: () => void;
}

export class CompileQueue {
  private used = 0;
  private readonly waiting: Waiter[] = [];
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

  /** Deploy-priority compiles waiting for slots. */
  private get waitingDeploys(): number {
    return this.waiting.filter((w) => w.priority === "deploy").length;
  }

  /** A place in line, or undefined when `capacity` deploys already wait (never with `force` or in the background). */
  enter(opts: EnterOptions = {}): Ticket | undefined {
    const priority = opts.priority ?? "deploy";
    const slots = Math.max(1, Math.min(this.limit(priority), Math.floor(opts.weight ?? 1)));
    const refusable = !opts.force && priority === "deploy";
    if (refusable && this.used >= this.concurrency && this.waitingDeploys >= this.capacity) return undefined;
    let state: "waiting" | "running" | "done" = "waiting";
    let used = false;
    let wake!: () => void;
    const granted = new Promise<void>((resolve) => (wake = resolve));
    const waiter: Waiter = {
      slots,
      priority,
      grant: () => {
        state = "running";
        wake();
      },
    };
    // Deploys go after the deploys already waiting, before any background build.
    const at = priority === "deploy" ? this.waiting.findIndex((w) => w.priority === "background") : -1;
    if (at < 0) this.waiting.push(waiter);
    else this.waiting.splice(at, 0, waiter);
    this.next();
    const leave = () => {
      if (state === "waiting") this.waiting.splice(this.waiting.indexOf(waiter), 1);
      if (state === "running") this.used -= slots;
      state = "done";
      this.next();
    };
    return {
      slots,
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

  /** Slots the compiles of a priority may hold together. */
  private limit(priority: CompilePriority): number {
    return priority === "background" && this.concurrency > 1 ? this.concurrency - 1 : this.concurrency;
  }

  /** Start whoever is at the head of the line while their slots are free. */
  private next(): void {
    while (this.waiting.length && this.used + this.waiting[0]!.slots <= this.limit(this.waiting[0]!.priority)) {
      const w = this.waiting.shift()!;
      this.used += w.slots;
      w.grant();
    }
  }
}
