// The engine: compiled functions loaded from their artifacts, instances
// restored from snapshots, and calls run on libthaw's worker threads.
//
// A call is submitted with one FFI call that only enqueues; libthaw's
// executor runs it and reports completion through a threadsafe callback, so
// Bun's event loop never waits on function code.
//
// Completions are batched (native/src/executor.c): the callback only says
// "some calls finished", and one drain takes every finished ticket, so a
// busy node pays one event-loop wake-up per batch instead of one per call.
// A lone short call that goes to a worker anyway (inline calls are off, or
// the call opted out) does not wait for the wake-up at all: when it is the
// only call in flight, it went to a worker that was awake (spinning, so it
// runs now), and its function's recent calls were short, this thread spins
// on the executor's completion counter for a few microseconds (at most
// `spinUs`) and drains as soon as it moves. The wake-up -- an eventfd
// write on the worker, an epoll return and a task on this thread -- costs
// more than such a call. The spin is bounded, happens only when nothing
// else is in flight (so it delays no other call's completion), is skipped
// for functions that run long or sleep, and backs off (doubling) after a
// miss: on a machine with more busy threads than cores the worker can lose
// its core while this thread spins, and then spinning only costs.
//
// Request and result structs belong to the instance (one call at a time
// per instance) and the call's input buffers are held by the pending entry
// until completion, so nothing is allocated natively per call and nothing
// is freed under a running call.
//
// Shorter calls still do not go to a worker at all: a call whose function's
// recent calls ran at most INLINE_EXPECTED_NS runs inline, on this thread,
// under a budget (`inlineUs`, 1 ms by default; thaw_call_inline in
// native/src/call.c). For such a call the hand-off -- submit, a worker's
// wake-up, the completion, the promise -- costs several times the call, and
// it was most of what an HTTP call cost this thread. The budget is what
// keeps the event loop safe from a function that changes its mind: a call
// still running at the budget, or that would sleep, or that needs more
// stack than this thread has, is stopped, its instance reset, and it runs
// again from the start on the executor as if it had gone there first (a
// call has no effect outside its instance until its result is read, so
// running it twice is invisible). Its function then runs on workers for
// the next 2, 4, ... 1024 calls, so a function that keeps overrunning
// costs this thread at most a budget per thousand of its calls. Inline
// calls take no CPU slot: like the HTTP work around them, they are the
// event loop's own work, and a tenant's short calls do not wait behind
// another tenant's long ones.
//
// The executor queues calls per tenant and function and shares its CPU
// slots fairly between them (native/src/executor.c); a call names its
// tenant and function for that. A queued call can be taken back before it
// starts -- its AbortSignal fired (the client left) or its queue deadline
// passed -- and then never runs; once started it runs to the end.

import type { JSCallback } from "bun:ffi";
import {
  addr, completionCounter, cstr, E_BUSY, ERRORS, errText, EXECUTOR_CONFIG, EXECUTOR_STATS, findLibrary, LIMITS,
  getI64, getU64, openLibrary, packStrings, POOL_STATS, readyCallback, REQUEST, REQUEST_FLAGS, RESULT, RESULT_FLAGS, setU64, STATS,
  NativeReader, STATUS_MOVED, TENANT_STATS, type Lib, type Pointer, words,
} from "./native.ts";

export interface Limits {
  /** Linear memory cap in MiB (rounded down to 64 KiB pages). */
  memoryMiB: number;
  timeoutMs: number;
  maxCallDepth: number;
  stdoutCap: number;
  stderrCap: number;
  /** Memory-pool tenant charged for this function's instances (0: none). */
  tenant?: number;
}

export const DEFAULT_LIMITS: Limits = {
  memoryMiB: 128,
  timeoutMs: 10_000,
  maxCallDepth: 20_000,
  stdoutCap: 8 << 20,
  stderrCap: 256 << 10,
};

export const TRAP_KINDS = [
  "ok", "out_of_bounds", "integer_overflow", "divide_by_zero", "invalid_conversion",
  "unreachable", "indirect_call", "uncaught_exception", "stack_exhaustion", "timeout",
  "memory_limit", "host_error",
] as const;
export type CallStatus = (typeof TRAP_KINDS)[number];

export interface CallRequest {
  stdin?: Uint8Array;
  /** argv[1..]; argv[0] is `argv0`. */
  args?: string[];
  argv0?: string;
  /** Not changed after it is passed: an instance packs an env object once and reuses it while the same object comes back. */
  env?: Record<string, string>;
  timeoutMs?: number;
  countPages?: boolean;
  /** false: run on a worker even if the call could run inline (benchmarks of the executor). */
  inline?: boolean;
  /** Reset the instance on the executor thread right after the call. */
  resetAfter?: boolean;
  /** Who the call is for, in the executor's fair queue (small integers; 0 by default). */
  tenant?: number;
  function?: number;
  /** Aborted before the call starts: it leaves the queue, never runs, and the call rejects with CancelledError. */
  signal?: AbortSignal;
  /** performance.now() by which the call must have started, else it leaves the queue and rejects with QueueTimeoutError. */
  queueDeadline?: number;
}

export interface CallResult {
  status: CallStatus;
  exitCode: number;
  durationNs: number;
  pagesTouched: number;
  memoryPages: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  growRefused: boolean;
  /** The instance timed out and must be freed, not reset. */
  instanceLost: boolean;
  /** The instance is back at its snapshot already (resetAfter). */
  instanceReset: boolean;
}

export interface ModuleStats {
  codeBytes: number;
  snapshotBytes: number;
  memoryPages: number;
  maxMemoryPages: number;
  instanceBytes: number;
  liveInstances: number;
  hasStart: boolean;
  hasInitialize: boolean;
  /** Built without bounds checks: out-of-bounds accesses fault in a guard region (native/src/guard.c). */
  guarded: boolean;
}

export interface MemoryPoolStats {
  arenaBytes: number;
  usedBytes: number;
  committedBytes: number;
  reservedBytes: number;
  liveBlocks: number;
  /** Internal fragmentation of live blocks: wasted / allocated. */
  fragmentation: number;
  hugeBlocks: number;
  osReturns: number;
  osReturnBytes: number;
  failLimit: number;
  failSpace: number;
  /** Allocation latency counts: bucket 0 < 64 ns, bucket i in [2^(i+5), 2^(i+6)) ns, the last >= 1 ms. */
  latencyBuckets: number[];
}

export interface TenantMemoryStats {
  reservedBytes: number;
  limitBytes: number;
  usedBytes: number;
  overflowBytes: number;
  liveBlocks: number;
}

export class EngineError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

export class BusyError extends EngineError {
  constructor() {
    super("executor queue full", E_BUSY);
  }
}

/** A queued call taken back because its signal was aborted; it never ran. */
export class CancelledError extends EngineError {
  constructor() {
    super("call cancelled before it started", -9);
  }
}

/** A queued call taken back at its queue deadline; it never ran. */
export class QueueTimeoutError extends EngineError {
  constructor() {
    super("call did not start before its queue deadline", -9);
  }
}

export interface ExecutorOptions {
  /** Worker threads beyond the CPU slots, for calls blocked in host sleeps (or waiting to get their slot back). */
  maxBlocked?: number;
  /** Calls of another tenant that is owed CPU time take the slot of a running call (default true). */
  preempt?: boolean;
  /** Longest the JS thread watches for a lone short call to finish instead of waiting for the wake-up, µs (0: never). */
  spinUs?: number;
  /** Budget of a short call run on the JS thread itself before it is moved to a worker, µs (0: never run calls inline). */
  inlineUs?: number;
}

export interface ExecutorStats {
  cpuSlots: number;
  freeSlots: number;
  threads: number;
  maxThreads: number;
  idleThreads: number;
  /** Calls waiting for their first slot. */
  queued: number;
  /** Calls holding a slot. */
  running: number;
  /** Started calls waiting to get a slot back (after a sleep or a preemption). */
  waiting: number;
  /** Started calls in a sleep, holding no slot. */
  blocked: number;
  tenants: number;
  preemptions: number;
  blocks: number;
}

const PAGE = 65536;

function limitsStruct(l: Limits): BigUint64Array {
  const s = new BigUint64Array(LIMITS.size);
  s[LIMITS.maxMemoryPages] = BigInt(Math.max(1, Math.floor((l.memoryMiB * 1024 * 1024) / PAGE)));
  s[LIMITS.timeoutMs] = BigInt(l.timeoutMs);
  s[LIMITS.maxCallDepth] = BigInt(l.maxCallDepth);
  s[LIMITS.stdoutCap] = BigInt(l.stdoutCap);
  s[LIMITS.stderrCap] = BigInt(l.stderrCap);
  s[LIMITS.tenant] = BigInt(l.tenant ?? 0);
  return s;
}

const FLAG = {
  stdoutTruncated: Number(RESULT_FLAGS.stdoutTruncated),
  stderrTruncated: Number(RESULT_FLAGS.stderrTruncated),
  growRefused: Number(RESULT_FLAGS.growRefused),
  instanceLost: Number(RESULT_FLAGS.instanceLost),
  reset: Number(RESULT_FLAGS.reset),
};

/** Where a result's stdout and stderr are copied from (an instance's own readers). */
interface OutputReaders {
  stdout: NativeReader;
  stderr: NativeReader;
}

/** A thaw_result, read through its 32-bit words (`words` in native.ts); without `out`, no output. */
function decodeResult(w: Uint32Array, out?: OutputReaders): CallResult {
  const flags = getU64(w, RESULT.flags);
  return {
    status: TRAP_KINDS[getU64(w, RESULT.status)] ?? "host_error",
    exitCode: getI64(w, RESULT.exitCode),
    durationNs: getU64(w, RESULT.durationNs),
    pagesTouched: getU64(w, RESULT.pagesTouched),
    memoryPages: getU64(w, RESULT.memoryPages),
    stdout: out ? out.stdout.copy(getU64(w, RESULT.stdoutPtr), getU64(w, RESULT.stdoutLen)) : new Uint8Array(0),
    stderr: out ? out.stderr.copy(getU64(w, RESULT.stderrPtr), getU64(w, RESULT.stderrLen)) : new Uint8Array(0),
    stdoutTruncated: (flags & FLAG.stdoutTruncated) !== 0,
    stderrTruncated: (flags & FLAG.stderrTruncated) !== 0,
    growRefused: (flags & FLAG.growRefused) !== 0,
    instanceLost: (flags & FLAG.instanceLost) !== 0,
    instanceReset: (flags & FLAG.reset) !== 0,
  };
}

interface Pending {
  instance: Instance;
  inputs: Uint8Array[];
  resolve: (r: CallResult) => void;
  /** Its queue deadline (performance.now()) and how it is taken back then. */
  deadline?: number;
  takeBack?: (error: EngineError) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** 4 threads per slot for blocked calls unless told otherwise. */
export const DEFAULT_BLOCKED_PER_SLOT = 4;
/** A lone call is waited for by spinning only if its function's recent calls ran this long at most. */
const SPIN_EXPECTED_NS = 20_000;
/** The spin allows for the hand-off on top of the expected run time. */
const SPIN_SLACK_NS = 20_000;
export const DEFAULT_SPIN_US = 50;
/** A call runs inline only if its function's recent calls ran this long at most. */
const INLINE_EXPECTED_NS = 50_000;
export const DEFAULT_INLINE_US = 1000;
/** An inline call that ran this long, though it finished, counts against its function like a move. */
const INLINE_LONG_NS = 200_000;
/** A function's moves are forgiven after this many short inline calls in a row. */
const INLINE_FORGIVE_AFTER = 64;
/** After this many moves, a function waits 2^10 calls between inline tries. */
const INLINE_MAX_MISSES = 10;

export class Engine {
  readonly lib: Lib;
  private readonly pending = new Map<number, Pending>();
  private nextTicket = 1;
  private callback?: JSCallback;
  /** The executor's completion counter, and room for the tickets one drain takes. */
  private seq: Uint32Array = new Uint32Array(3);
  private readonly taken = new BigUint64Array(256);
  /** Spins missed in a row, and calls left to wait without spinning after the last miss. */
  private spinMisses = 0;
  private spinSkips = 0;
  /** Calls with a queue deadline, and one timer for the earliest: a timer
   * per call cost more than the rest of a short call's bookkeeping. */
  private readonly deadlines = new Map<number, Pending>();
  private deadlineTimer?: ReturnType<typeof setTimeout>;
  private deadlineAt = Infinity;
  /** Referenced while calls are pending, so the process waits for them. */
  private readonly keepAlive = setInterval(() => {}, 1 << 30).unref();

  /** Worker threads beyond the CPU slots (`threads`), for calls blocked in host sleeps. */
  readonly maxBlocked: number;
  readonly preempt: boolean;
  readonly spinNs: number;
  readonly inlineNs: bigint;
  /** The call profiles of the modules loaded now, by profile key (load). */
  private readonly profiles = new Map<string, { profile: CallProfile; modules: number }>();
  /** Calls that ran inline, and inline calls moved to a worker, since start. */
  readonly inline = { calls: 0, moved: 0 };

  constructor(
    libPath = findLibrary(),
    /** CPU slots: calls running guest code at once. */
    readonly threads = Math.max(2, navigator.hardwareConcurrency),
    readonly queueCapacity = 4096,
    options: ExecutorOptions = {},
  ) {
    this.lib = openLibrary(libPath);
    this.maxBlocked = Math.max(1, options.maxBlocked ?? DEFAULT_BLOCKED_PER_SLOT * threads);
    this.preempt = options.preempt ?? true;
    this.spinNs = Math.max(0, options.spinUs ?? DEFAULT_SPIN_US) * 1000;
    this.inlineNs = BigInt(Math.max(0, Math.round((options.inlineUs ?? DEFAULT_INLINE_US) * 1000)));
  }

  private startExecutor(): void {
    if (this.callback) return;
    this.callback = readyCallback(() => this.drain());
    const cfg = new BigUint64Array(EXECUTOR_CONFIG.size);
    cfg[EXECUTOR_CONFIG.cpuSlots] = BigInt(this.threads);
    cfg[EXECUTOR_CONFIG.maxThreads] = BigInt(this.threads + this.maxBlocked);
    cfg[EXECUTOR_CONFIG.queueCap] = BigInt(this.queueCapacity);
    cfg[EXECUTOR_CONFIG.preempt] = this.preempt ? 1n : 0n;
    const rc = this.lib.thaw_executor_start_batched(cfg, this.callback.ptr);
    if (rc !== 0) {
      this.callback.close();
      this.callback = undefined;
      throw new EngineError(`cannot start executor: ${ERRORS[rc]}`, rc);
    }
    this.seq = completionCounter(this.lib);
  }

  /** Instantiate fresh, run `wizer.initialize` if exported, write the snapshot. */
  createSnapshot(soPath: string, snapshotPath: string, limits: Limits): CallResult {
    const res = new BigUint64Array(RESULT.size);
    const err = Buffer.alloc(1024);
    const l = limitsStruct(limits);
    const rc = this.lib.thaw_snapshot_create(
      cstr(soPath), cstr(snapshotPath), l, res, err, BigInt(err.length),
    );
    const result = decodeResult(words(res));
    if (rc !== 0) throw new SnapshotError(errText(err) || ERRORS[rc] || `error ${rc}`, rc, result);
    return result;
  }

  /** Load a compiled function. Loads with the same `profileKey` share one
   * CallProfile: by default the same code for the same tenant; a caller
   * that knows both tiers of a module are the same function passes a key
   * for that. Never across tenants: one tenant's calls would decide how
   * another's run. */
  load(soPath: string, snapshotPath: string, limits: Limits, profileKey = `${limits.tenant ?? 0}:${soPath}`): LoadedModule {
    const err = Buffer.alloc(1024);
    const handle = this.lib.thaw_module_load(
      cstr(soPath), cstr(snapshotPath), limitsStruct(limits), err, BigInt(err.length),
    );
    if (!handle) throw new EngineError(errText(err) || "cannot load module", -3);
    const shared = this.profiles.get(profileKey) ?? { profile: new CallProfile(), modules: 0 };
    this.profiles.set(profileKey, shared);
    shared.modules++;
    return new LoadedModule(this, handle as Pointer, shared.profile, () => {
      if (--shared.modules === 0) this.profiles.delete(profileKey);
    });
  }

  /** Run one call, inline or on an executor thread. The instance must be
   * idle; when the call rejects with CancelledError or QueueTimeoutError it
   * never ran and the instance is as it was. */
  call(instance: Instance, req: CallRequest): Promise<CallResult> {
    const r = this.callNow(instance, req);
    return r instanceof Promise ? r : Promise.resolve(r);
  }

  /** `call`, with the result itself, not a promise of it, when the call ran inline. */
  callNow(instance: Instance, req: CallRequest): CallResult | Promise<CallResult> {
    this.startExecutor();
    if (req.signal?.aborted) return Promise.reject(new CancelledError());
    const inputs = instance.prepare(req);
    if (this.inlineNs > 0n && req.inline !== false && instance.module.profile.mayRunInline()) {
      const result = this.callInline(instance);
      if (result) return result;
    }
    return this.submit(instance, req, inputs);
  }

  private submit(instance: Instance, req: CallRequest, inputs: Uint8Array[]): Promise<CallResult> {
    const ticket = this.nextTicket++;
    const seen = this.seq[0]!;
    // Say so before submitting, so the worker does not wake this thread for
    // a completion it is about to see; drain() always ends the polling.
    const polling = this.pending.size === 0 && this.maySpin(instance.module);
    if (polling) this.seq[1] = 1;
    return new Promise<CallResult>((resolve, reject) => {
      const p: Pending = { instance, inputs, resolve };
      this.pending.set(ticket, p);
      const rc = this.lib.thaw_submit(instance.handle, instance.request, instance.result, BigInt(ticket));
      if (rc !== 0) {
        this.pending.delete(ticket);
        if (polling) this.drain();
        reject(rc === E_BUSY ? new BusyError() : new EngineError(`submit failed: ${ERRORS[rc]}`, rc));
        return;
      }
      if (this.pending.size === 1) this.keepAlive.ref();
      const watched = req.signal !== undefined || req.queueDeadline !== undefined;
      if (!polling) {
        if (watched) this.watch(ticket, p, req, reject);
        return;
      }
      // Spin once the code running now and the microtasks queued before
      // this one are done: calls they submit (the continuations of a batch
      // of completions, say) make this one no longer alone, and then the
      // spin is skipped instead of holding them back. No timer or event
      // can fire before it; a call the spin saw finish needs no watching.
      queueMicrotask(() => {
        this.spin(ticket, instance.module, seen);
        if (watched && this.pending.get(ticket) === p) this.watch(ticket, p, req, reject);
      });
    });
  }

  /** The call run on this thread; undefined when it was moved (its
   * instance reset, its request as prepared) and must go to a worker. */
  private callInline(instance: Instance): CallResult | undefined {
    const w = instance.resultWords;
    this.lib.thaw_call_inline(instance.handle, instance.request, instance.result, this.inlineNs);
    if (getU64(w, RESULT.status) === STATUS_MOVED) {
      this.inline.moved++;
      instance.module.profile.ranInline(undefined);
      if ((getU64(w, RESULT.flags) & FLAG.reset) !== 0) return undefined;
      return decodeResult(w, instance);
    }
    this.inline.calls++;
    const result = decodeResult(w, instance);
    instance.module.profile.ranInline(result.durationNs);
    instance.module.profile.observe(result.durationNs);
    return result;
  }

  /** Take the queued call back when its signal aborts or its queue deadline passes. */
  private watch(ticket: number, p: Pending, req: CallRequest, reject: (e: Error) => void): void {
    // Taken back only while still queued; a started call completes as usual.
    const takeBack = (error: EngineError) => {
      if (!this.pending.has(ticket) || this.lib.thaw_cancel(BigInt(ticket)) !== 0) return;
      this.settle(ticket, p);
      reject(error);
    };
    if (req.queueDeadline !== undefined) {
      p.deadline = req.queueDeadline;
      p.takeBack = takeBack;
      this.deadlines.set(ticket, p);
      if (p.deadline < this.deadlineAt) this.armDeadlines(p.deadline);
    }
    if (req.signal) {
      p.signal = req.signal;
      p.onAbort = () => takeBack(new CancelledError());
      // Armed after a spin, the signal may have been aborted meanwhile.
      if (req.signal.aborted) p.onAbort();
      else req.signal.addEventListener("abort", p.onAbort, { once: true });
    }
  }

  private armDeadlines(at: number): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineAt = at;
    // Unreferenced: keepAlive holds the process while calls are pending.
    this.deadlineTimer = setTimeout(() => this.sweepDeadlines(), Math.max(0, at - performance.now()));
    this.deadlineTimer.unref();
  }

  /** Take back the calls past their deadline that have not started; calls
   * that have started are never taken back and leave the list. */
  private sweepDeadlines(): void {
    this.deadlineTimer = undefined;
    this.deadlineAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [ticket, p] of this.deadlines) {
      if (p.deadline! > now) next = Math.min(next, p.deadline!);
      else {
        p.takeBack!(new QueueTimeoutError());
        this.deadlines.delete(ticket);
      }
    }
    if (next < Infinity) this.armDeadlines(next);
  }

  /** Whether to wait for a lone call of this module by spinning on the
   * completion counter: its calls are expected to end within the budget,
   * and no recent miss is being backed off from. */
  private maySpin(module: LoadedModule): boolean {
    const expected = module.profile.expectedNs;
    if (expected === undefined || expected > SPIN_EXPECTED_NS || this.spinNs === 0) return false;
    if (this.spinSkips === 0) return true;
    this.spinSkips--;
    return false;
  }

  /** Spin only if the call is still the only one in flight and went to a
   * worker that was awake: it runs now. */
  private spin(ticket: number, module: LoadedModule, seen: number): void {
    if (this.pending.size === 1 && this.pending.has(ticket) && this.seq[2] === 1) {
      const hit = this.lib.thaw_completions_wait(seen, Math.min(this.spinNs, 2 * module.profile.expectedNs! + SPIN_SLACK_NS)) === 1;
      // A miss means the worker lost its core (a busy machine): back off, doubling.
      this.spinMisses = hit ? 0 : Math.min(this.spinMisses + 1, 10);
      this.spinSkips = hit ? 0 : 2 ** this.spinMisses;
    }
    this.drain();
  }

  private drain(): void {
    const t = this.taken;
    for (;;) {
      const n = this.lib.thaw_completions_take(t, t.length);
      for (let i = 0; i < n; i++) this.complete(Number(t[i]));
      if (n < t.length) return;
    }
  }

  private settle(ticket: number, p: Pending): void {
    this.pending.delete(ticket);
    if (this.pending.size === 0) this.keepAlive.unref();
    if (p.deadline !== undefined) this.deadlines.delete(ticket);
    if (p.onAbort) p.signal?.removeEventListener("abort", p.onAbort);
  }

  private complete(ticket: number): void {
    const p = this.pending.get(ticket);
    if (!p) return;
    this.settle(ticket, p);
    const result = decodeResult(p.instance.resultWords, p.instance);
    p.instance.module.profile.observe(result.durationNs);
    p.resolve(result);
  }

  /** The executor's slots, threads and queues right now. */
  executorStats(): ExecutorStats {
    this.startExecutor();
    const s = new BigUint64Array(EXECUTOR_STATS.size);
    this.lib.thaw_executor_stats_get(s);
    const n = (i: number) => Number(s[i]);
    return {
      cpuSlots: n(EXECUTOR_STATS.cpuSlots),
      freeSlots: n(EXECUTOR_STATS.freeSlots),
      threads: n(EXECUTOR_STATS.threads),
      maxThreads: n(EXECUTOR_STATS.maxThreads),
      idleThreads: n(EXECUTOR_STATS.idleThreads),
      queued: n(EXECUTOR_STATS.queued),
      running: n(EXECUTOR_STATS.running),
      waiting: n(EXECUTOR_STATS.waiting),
      blocked: n(EXECUTOR_STATS.blocked),
      tenants: n(EXECUTOR_STATS.tenants),
      preemptions: n(EXECUTOR_STATS.preemptions),
      blocks: n(EXECUTOR_STATS.blocks),
    };
  }

  /** Instances of guarded modules (ModuleStats.guarded) this process still has address space for. */
  guardSlotsFree(): number {
    return Number(this.lib.thaw_guard_slots_free());
  }

  /** The memory pool linear memories come from: usage, fragmentation, returns to the OS. */
  memoryStats(): MemoryPoolStats {
    const s = new BigUint64Array(POOL_STATS.size);
    this.lib.thaw_pool_stats_get(this.lib.thaw_memory_pool(), s);
    const n = (i: number) => Number(s[i]);
    const block = n(POOL_STATS.fragBlock);
    return {
      arenaBytes: n(POOL_STATS.arenaBytes),
      usedBytes: n(POOL_STATS.usedBytes),
      committedBytes: n(POOL_STATS.committedBytes),
      reservedBytes: n(POOL_STATS.reservedBytes),
      liveBlocks: n(POOL_STATS.liveBlocks),
      fragmentation: block ? n(POOL_STATS.fragWasted) / block : 0,
      hugeBlocks: n(POOL_STATS.hugeBlocks),
      osReturns: n(POOL_STATS.osReturns),
      osReturnBytes: n(POOL_STATS.osReturnBytes),
      failLimit: n(POOL_STATS.failLimit),
      failSpace: n(POOL_STATS.failSpace),
      latencyBuckets: Array.from({ length: POOL_STATS.latencyBuckets }, (_, i) => n(POOL_STATS.latency + i)),
    };
  }

  tenantMemoryStats(tenant: number): TenantMemoryStats | undefined {
    const s = new BigUint64Array(TENANT_STATS.size);
    if (this.lib.thaw_pool_tenant_stats_get(this.lib.thaw_memory_pool(), tenant, s) !== 0) return undefined;
    return {
      reservedBytes: Number(s[TENANT_STATS.reservedBytes]),
      limitBytes: Number(s[TENANT_STATS.limitBytes]),
      usedBytes: Number(s[TENANT_STATS.usedBytes]),
      overflowBytes: Number(s[TENANT_STATS.overflowBytes]),
      liveBlocks: Number(s[TENANT_STATS.liveBlocks]),
    };
  }

  /** Reserve `reservedBytes` of the pool for a tenant and cap it at `limitBytes` (undefined: no cap). */
  setTenantMemory(tenant: number, reservedBytes: number, limitBytes?: number): void {
    const limit = limitBytes === undefined ? 0xffff_ffff_ffff_ffffn : BigInt(limitBytes);
    const rc = this.lib.thaw_pool_tenant_set(this.lib.thaw_memory_pool(), tenant, BigInt(reservedBytes), limit);
    if (rc !== 0) throw new EngineError(`cannot set tenant memory: ${ERRORS[rc]}`, rc);
  }

  /** Let the pool return long-free memory to the OS (its retention policy). */
  maintainMemory(): void {
    this.lib.thaw_memory_maintain();
  }

  get inFlight(): number {
    return this.pending.size;
  }

  close(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    if (this.callback) {
      this.lib.thaw_executor_stop();
      this.callback.close();
      this.callback = undefined;
    }
    clearInterval(this.keepAlive);
  }
}

export class SnapshotError extends EngineError {
  constructor(
    message: string,
    code: number,
    readonly init: CallResult,
  ) {
    super(message, code);
  }
}

/**
 * How a compiled function's calls have run: the moving average of their
 * duration and the inline back-off (engine.ts header). Shared by the
 * loaded modules of one tenant's code (Engine.load) -- each deploy of a
 * function loads its own, and a redeploy of the same code (a new env, say)
 * or its optimized build would otherwise start from nothing: its first
 * calls sent to workers, and a function that was backed off from inline
 * forgiven by redeploying.
 */
export class CallProfile {
  /** Recent calls' run time, a moving average (ns); undefined before the first. */
  expectedNs?: number;
  /** Inline calls moved (or long), short inline calls since the last, and calls left to send to workers before the next try. */
  private inlineMisses = 0;
  private inlineStreak = 0;
  private inlineSkips = 0;

  /** Whether the next call may run inline: recent calls were short (a
   * function's first call runs on a worker, which is what its queue
   * deadline and cancellation promise), and no recent move is being backed
   * off from. */
  mayRunInline(): boolean {
    if (this.expectedNs === undefined || this.expectedNs > INLINE_EXPECTED_NS) return false;
    if (this.inlineSkips === 0) return true;
    this.inlineSkips--;
    return false;
  }

  /** An inline call ended after `ns`, or was moved (undefined). A move or a
   * long call sends the function's next 2, 4, ... 1024 calls to workers, and
   * only a run of short calls forgives them: a function cannot hold the
   * event loop with long calls spaced out by short ones, only with one
   * per INLINE_FORGIVE_AFTER calls at most. */
  ranInline(ns: number | undefined): void {
    if (ns !== undefined && ns <= INLINE_LONG_NS) {
      if (++this.inlineStreak >= INLINE_FORGIVE_AFTER) this.inlineMisses = 0;
      return;
    }
    this.inlineStreak = 0;
    this.inlineMisses = Math.min(this.inlineMisses + 1, INLINE_MAX_MISSES);
    this.inlineSkips = 2 ** this.inlineMisses;
  }

  observe(durationNs: number): void {
    this.expectedNs = this.expectedNs === undefined ? durationNs : 0.75 * this.expectedNs + 0.25 * durationNs;
  }
}

export class LoadedModule {
  private released = false;

  constructor(
    readonly engine: Engine,
    readonly handle: Pointer,
    readonly profile: CallProfile,
    private readonly onRelease: () => void,
  ) {}

  restore(): Instance {
    if (this.released) throw new EngineError("module released", -1);
    const h = this.engine.lib.thaw_instance_restore(this.handle);
    if (!h) throw new EngineError("cannot restore instance (out of memory or address space)", -6);
    return new Instance(this, h as Pointer);
  }

  stats(): ModuleStats {
    const s = new BigUint64Array(STATS.size);
    this.engine.lib.thaw_module_stats_get(this.handle, s);
    const n = (i: number) => Number(s[i]);
    return {
      codeBytes: n(STATS.codeBytes),
      snapshotBytes: n(STATS.snapshotBytes),
      memoryPages: n(STATS.memoryPages),
      maxMemoryPages: n(STATS.maxMemoryPages),
      instanceBytes: n(STATS.instanceBytes),
      liveInstances: n(STATS.liveInstances),
      hasStart: s[STATS.hasStart] !== 0n,
      hasInitialize: s[STATS.hasInitialize] !== 0n,
      guarded: s[STATS.guarded] !== 0n,
    };
  }

  /** Nanoseconds to instantiate from scratch, without the snapshot. */
  freshInstantiateNs(): number {
    const ns = Number(this.engine.lib.thaw_module_fresh_instantiate_ns(this.handle));
    if (ns < 0) throw new EngineError("fresh instantiation failed", ns);
    return ns;
  }

  /** The module's memory is freed once its last instance is freed too. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.engine.lib.thaw_module_release(this.handle);
    this.onRelease();
  }
}

/** A request's buffers may not be empty (their address is passed), so an empty stdin is one byte of length 0. */
const EMPTY_STDIN = new Uint8Array(1);

interface PackedEnv {
  of: Record<string, string> | undefined;
  bytes: Uint8Array;
  count: number;
}

export class Instance {
  readonly request = new BigUint64Array(REQUEST.size);
  readonly result = new BigUint64Array(RESULT.size);
  readonly requestWords = words(this.request);
  readonly resultWords = words(this.result);
  readonly stdout = new NativeReader();
  readonly stderr = new NativeReader();
  private freed = false;
  private lastEnv?: PackedEnv;
  private lastArgv0?: { of: string; bytes: Uint8Array };

  constructor(
    readonly module: LoadedModule,
    readonly handle: Pointer,
  ) {}

  /** Fill the request struct; returns the buffers that must outlive the call. */
  prepare(req: CallRequest): Uint8Array[] {
    const stdin = req.stdin && req.stdin.length ? req.stdin : EMPTY_STDIN;
    const args = req.args === undefined ? this.packedArgv0(req.argv0 ?? "main.wasm") : packStrings([req.argv0 ?? "main.wasm", ...req.args]);
    const env = this.packedEnv(req.env);
    const w = this.requestWords;
    setU64(w, REQUEST.stdinPtr, addr(stdin));
    setU64(w, REQUEST.stdinLen, req.stdin?.length ?? 0);
    setU64(w, REQUEST.argsPtr, addr(args));
    setU64(w, REQUEST.argsLen, args.length);
    setU64(w, REQUEST.argc, 1 + (req.args?.length ?? 0));
    setU64(w, REQUEST.envPtr, addr(env.bytes));
    setU64(w, REQUEST.envLen, env.count ? env.bytes.length : 0);
    setU64(w, REQUEST.envc, env.count);
    setU64(w, REQUEST.timeoutMs, req.timeoutMs ?? 0);
    setU64(w, REQUEST.flags, (req.countPages ? REQUEST_FLAGS.countPages : 0) | (req.resetAfter ? REQUEST_FLAGS.resetAfter : 0));
    setU64(w, REQUEST.tenant, req.tenant ?? 0);
    setU64(w, REQUEST.function, req.function ?? 0);
    return [stdin, args, env.bytes];
  }

  /** argv when it is only argv[0], which is the same for all of a function's calls: packed once. */
  private packedArgv0(argv0: string): Uint8Array {
    if (this.lastArgv0?.of !== argv0) this.lastArgv0 = { of: argv0, bytes: packStrings([argv0]) };
    return this.lastArgv0.bytes;
  }

  /** An environment packed as the request wants it. A function's calls
   * usually pass the same object (its configured env), packed once. */
  private packedEnv(env: Record<string, string> | undefined): PackedEnv {
    if (this.lastEnv && this.lastEnv.of === env) return this.lastEnv;
    const list = Object.entries(env ?? {}).map(([k, v]) => `${k}=${v}`);
    const packed = { of: env, bytes: packStrings(list.length ? list : [""]), count: list.length };
    this.lastEnv = packed;
    return packed;
  }

  /** Back to the snapshot state; false if the instance cannot be reused. */
  reset(): boolean {
    return !this.freed && this.module.engine.lib.thaw_instance_reset(this.handle) === 0;
  }

  /** Return the instance's private pages to the OS (it stays usable). */
  releaseMemory(): void {
    if (!this.freed) this.module.engine.lib.thaw_instance_release_memory(this.handle);
  }

  privateBytes(): number {
    return Number(this.module.engine.lib.thaw_instance_private_bytes(this.handle));
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    this.module.engine.lib.thaw_instance_free(this.handle);
  }
}
