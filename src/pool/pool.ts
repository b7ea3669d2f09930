// A function's warm pool: the idle instances of one deployed version, the
// calls running on it, and the calls waiting for a slot.
//
// Concurrency is capped per function (maxConcurrency); beyond the cap calls
// wait in a bounded queue, and beyond that they are refused with
// OverloadedError (429 upstream) -- back-pressure instead of unbounded
// memory. A wait is bounded in time too: a call still waiting at its
// deadline leaves the queue (WaitTimeoutError), and one whose signal is
// aborted (its client left) leaves at once (WaitAbortedError); neither
// counts as a call. An instance leaves the pool for exactly one call and
// comes back reset to the snapshot, or is freed if it cannot be reused
// (timeout).
//
// A pool is retired when a new version replaces it, the optimized build of
// the same version replaces its fast-tier code, or the function is deleted:
// calls in flight finish on it, nothing new starts, and the module is
// released when the last call returns.

import type { Tier } from "../compiler/compile.ts";
import type { Instance, LoadedModule } from "../engine/engine.ts";

export interface PoolOptions {
  maxConcurrency: number;
  maxWaiting: number;
  /** Idle instances kept after calls return; more are freed. */
  maxIdle: number;
}

/** Which build of the version a pool runs. */
export interface PoolCode {
  artifactKey: string;
  tier: Tier;
}

export interface Lease {
  instance: Instance;
  cold: boolean;
}

export class OverloadedError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super("function is at its concurrency limit and its wait queue is full");
  }
}

export class RetiredError extends Error {}

/** The call waited for an instance until its deadline. */
export class WaitTimeoutError extends Error {
  constructor(readonly waitedMs: number) {
    super("no instance of the function became free in time");
  }
}

/** The call's signal was aborted while it waited for an instance. */
export class WaitAbortedError extends Error {}

export interface AcquireOptions {
  /** Aborted: stop waiting (WaitAbortedError). */
  signal?: AbortSignal;
  /** performance.now() after which a call still waiting gives up (WaitTimeoutError). */
  deadline?: number;
}

interface Waiter {
  resolve: (lease: Lease) => void;
  reject: (e: Error) => void;
  timer?: ReturnType<typeof setTimeout>;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export interface PoolStats {
  warm: number;
  busy: number;
  waiting: number;
  calls: number;
  coldStarts: number;
}

interface IdleInstance {
  instance: Instance;
  /** When it was last given back (ms); its written pages stay until released. */
  sinceMs: number;
  released: boolean;
}

export class FunctionPool {
  /** Oldest first: calls take the newest (warmest pages), trims drop the oldest. */
  private readonly idle: IdleInstance[] = [];
  private readonly waiters: Waiter[] = [];
  private busy = 0;
  private retired = false;
  private calls = 0;
  private predecessor?: FunctionPool;
  private coldStarts = 0;

  constructor(
    readonly module: LoadedModule,
    private options: PoolOptions,
    readonly version: number,
    readonly code?: PoolCode,
  ) {}

  acquire(opts: AcquireOptions = {}): Promise<Lease> | Lease {
    if (this.retired) throw new RetiredError("pool retired");
    if (opts.signal?.aborted) throw new WaitAbortedError("the call was cancelled");
    this.calls++;
    if (this.busy < this.options.maxConcurrency) return this.take();
    if (this.waiters.length >= this.options.maxWaiting) {
      this.calls--;
      throw new OverloadedError(1);
    }
    if (opts.deadline !== undefined && opts.deadline <= performance.now()) {
      this.calls--;
      throw new WaitTimeoutError(0);
    }
    const since = performance.now();
    return new Promise<Lease>((resolve, reject) => {
      const w: Waiter = { resolve, reject };
      const leave = (e: Error) => {
        const i = this.waiters.indexOf(w);
        if (i < 0) return;
        this.waiters.splice(i, 1);
        this.calls--;
        unwatch(w);
        reject(e);
      };
      if (opts.deadline !== undefined)
        w.timer = setTimeout(() => leave(new WaitTimeoutError(performance.now() - since)), opts.deadline - since);
      if (opts.signal) {
        w.signal = opts.signal;
        w.onAbort = () => leave(new WaitAbortedError("the call was cancelled"));
        opts.signal.addEventListener("abort", w.onAbort, { once: true });
      }
      this.waiters.push(w);
    });
  }

  private take(): Lease {
    const warm = this.idle.pop();
    const instance = warm?.instance ?? this.module.restore();
    this.busy++;
    if (!warm) this.coldStarts++;
    return { instance, cold: !warm };
  }

  /** `reset`: the executor already put the instance back to its snapshot.
   * `ran`: false when the call was taken back before it started (the
   * instance is untouched, and the call is not counted). */
  release(lease: Lease, reusable: boolean, reset = false, ran = true): void {
    this.busy--;
    if (!ran) this.calls--;
    const keep =
      reusable && !this.retired && this.idle.length < this.options.maxIdle && (reset || lease.instance.reset());
    if (keep) this.idle.push({ instance: lease.instance, sinceMs: Date.now(), released: false });
    else lease.instance.free();
    const next = this.waiters.shift();
    if (next) {
      unwatch(next);
      try {
        next.resolve(this.take());
      } catch (e) {
        next.reject(e as Error);
      }
    }
    if (this.retired && this.busy === 0) this.module.release();
  }

  /** Restore instances until `count` are idle (pre-warming off the call path).
   * Stops quietly when memory runs out: a call will then restore, or report it. */
  prewarm(count: number): void {
    while (!this.retired && this.idle.length < Math.min(count, this.options.maxIdle)) {
      let instance: Instance;
      try {
        instance = this.module.restore();
      } catch {
        return;
      }
      this.idle.unshift({ instance, sinceMs: Date.now(), released: true });
    }
  }

  /** Free the oldest idle instances down to `count`. */
  trim(count: number): void {
    while (this.idle.length > count) this.idle.shift()!.instance.free();
  }

  /** Give the written pages of instances idle since before `cutoffMs` back to the OS. */
  releaseIdleMemory(cutoffMs: number): number {
    let released = 0;
    for (const entry of this.idle) {
      if (entry.released || entry.sinceMs > cutoffMs) continue;
      entry.instance.releaseMemory();
      entry.released = true;
      released++;
    }
    return released;
  }

  /** Private linear memory of the newest idle instance (its working set), if any. */
  sampleIdleBytes(): number | undefined {
    return this.idle.at(-1)?.instance.privateBytes();
  }

  get idleCount(): number {
    return this.idle.length;
  }

  get inFlight(): number {
    return this.busy;
  }

  /**
   * Count `older`'s calls as this pool's: it ran the same version, on the
   * other tier's code. Read live, not copied: calls still queued or running
   * on it when it is replaced may yet be taken back there, uncounted.
   */
  inherit(older: FunctionPool): void {
    this.predecessor = older;
  }

  retire(): void {
    if (this.retired) return;
    this.retired = true;
    this.trim(0);
    for (const w of this.waiters.splice(0)) {
      unwatch(w);
      // Not run here: the caller takes it to the pool that replaced this one.
      this.calls--;
      w.reject(new RetiredError("pool retired"));
    }
    if (this.busy === 0) this.module.release();
  }

  stats(): PoolStats {
    const before = this.predecessor?.stats();
    return {
      warm: this.idle.length,
      busy: this.busy,
      waiting: this.waiters.length,
      calls: this.calls + (before?.calls ?? 0),
      coldStarts: this.coldStarts + (before?.coldStarts ?? 0),
    };
  }
}

function unwatch(w: Waiter): void {
  if (w.timer) clearTimeout(w.timer);
  if (w.onAbort) w.signal?.removeEventListener("abort", w.onAbort);
}
