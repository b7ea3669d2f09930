// Warm-pool policy: how many warm instances each function should hold, and
// which functions lose theirs when the memory budget is short. This module
// decides only; it holds no instances and does no I/O. Time is always passed in
// (milliseconds, any monotonic origin), so tests drive it with a simulated
// clock and the server with real time. The manager applies a Plan by
// pre-warming / trimming each FunctionPool to `warm` and releasing the loaded
// module of functions whose plan says `unloadCode`.
//
// Three policies share one interface (WarmPolicy) so a trace benchmark can
// compare them under the same budget (paper Table III):
//
//   PoolPolicy       the predicted pool of paper §3.3 (eqs. 2-4)
//   FixedPolicy      a WebAssembly pool of one fixed size per active function
//   KeepAlivePolicy  container keep-alive: containers of a fixed size stay
//                    warm for a window after each call
//
// Shared vocabulary, identical for all three:
//
// - `warm` is the number of READY (idle) instances the function should hold
//   after the plan is applied. Instances running a call are not warm and are
//   not charged to the budget B: B is the memory set aside for warm instances
//   (paper §5.3 "memory set aside for warm instances"), in-flight instances
//   are the cost of serving.
// - `k` is the policy's wish before the budget; `trimmed = k - warm` >= 0.
// - Budget: plannedBytes = Σ_f warm_f · M_inst,f <= budgetBytes, always.
// - LRU: when the wishes do not fit, functions are trimmed in order of
//   `lastUsedMs` ascending (never-used first), ties broken by name in UTF-16
//   code-unit order (plain `<`, not locale-dependent): for equal times, "a" is
//   trimmed before "b". A function is trimmed only as much as needed; the
//   function after it in LRU order (and every later one) keeps its full k.
// - `lastUsedMs` is the latest of: an arrival (recordArrival), a completion
//   (recordDuration's nowMs) and touch(). Using the completion and not only
//   the arrival matters for long calls: a function whose 10-minute call just
//   ended was used just now, not 10 minutes ago. For calls much shorter than
//   the grace periods it is the same as "last arrival". `lastArrivalMs` is
//   reported too.
// - Events may come slightly out of order (several event sources, cluster
//   counts); every estimator here is order-independent or clamps, and times
//   are never required to be increasing.
//
// The policies assume nothing about how many instances currently exist
// (except KeepAlivePolicy, which by definition simulates its containers); the
// plan is a function of the recorded history and nowMs.

export const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------
// Pure helpers

/**
 * `value` decayed by exp(-elapsed/T). Non-positive elapsed time returns the
 * value unchanged (a reading "before" the last update is clamped to it).
 */
export function decay(value: number, elapsedMs: number, timeConstantMs: number): number {
  return elapsedMs <= 0 ? value : value * Math.exp(-elapsedMs / timeConstantMs);
}

/**
 * Arrival-rate estimator state: the decayed count `rate` (calls/s) as of
 * `atMs`, the time of the latest arrival folded in.
 *
 * The estimate at time t is the exponential-kernel sum
 *
 *     λ(t) = (1/T) · Σ_i exp(-(t - t_i)/T)      over arrivals t_i <= t
 *
 * kept incrementally: on an arrival, decay by exp(-(t - t_last)/T) and add
 * 1/T; a reading decays without adding. This is the continuous-time EWMA of
 * the arrival process: it needs no ticker and no buckets, so it is exact for
 * irregular arrivals (a fixed-interval EWMA of per-tick counts would depend on
 * the tick length and on where arrivals fall relative to ticks). T is a time
 * constant (mean memory of the estimate), not a half-life: the half-life is
 * T·ln 2 (≈ 6.9 s for T = 10 s).
 *
 * Properties the policy relies on:
 * - For Poisson arrivals at rate R the reading at an arbitrary time is
 *   unbiased once warmed up (E = R·(1 - e^(-t/T)) after t of traffic) with
 *   standard deviation sqrt(R / 2T) calls/s (≈ 2.2/s at R = 100/s, T = 10 s).
 * - For perfectly regular arrivals it saw-tooths between about R + 1/(2T)
 *   just after an arrival and R - 1/(2T) just before the next one; its time
 *   average is exactly R. See `target` for why this matters for the ceiling.
 * - It is a sum, so rates of the same function on several nodes add up (read
 *   at the same instant) to the cluster rate.
 * - Out-of-order arrivals (t < atMs) are folded in exactly: they contribute
 *   (1/T)·exp(-(atMs - t)/T) at atMs.
 */
export interface RateState {
  readonly rate: number;
  readonly atMs: number;
}

/** λ at nowMs in calls/s (0 for no arrivals). Decays, never adds. */
export function rateAt(state: RateState | null, nowMs: number, timeConstantMs: number): number {
  if (!state) return 0;
  return decay(state.rate, nowMs - state.atMs, timeConstantMs);
}

/** Fold one arrival at nowMs into the estimator. */
export function addArrival(state: RateState | null, nowMs: number, timeConstantMs: number): RateState {
  const unit = 1000 / timeConstantMs; // 1/T in calls/s
  if (!state) return { rate: unit, atMs: nowMs };
  const dt = nowMs - state.atMs;
  if (dt >= 0) return { rate: decay(state.rate, dt, timeConstantMs) + unit, atMs: nowMs };
  return { rate: state.rate + unit * Math.exp(dt / timeConstantMs), atMs: state.atMs };
}

/** EWMA with weight alpha on the new sample, seeded with the first sample. */
export function ewma(previous: number | null, sample: number, alpha: number): number {
  return previous === null ? sample : previous + alpha * (sample - previous);
}

export interface TargetOptions {
  /** h: warm instances on top of the expected concurrency. */
  headroom: number;
  /** Upper bound on the result (the function's concurrency limit). */
  maxConcurrency: number;
  /** See below; 0 gives the bare ceiling of eq. 3. */
  ceilSlack: number;
}

/**
 * Eq. 3 with a cap: k = min(maxConcurrency, ⌈λ·τ - slack⌉⁺ + h), λ in
 * calls/s, τ in ms (λ·τ/1000 is the expected number of calls in progress,
 * Little's law).
 *
 * `ceilSlack` (default 0.05): the bare ceiling is discontinuous at every
 * integer, and the rate estimate always carries a ripple (±1/(2T) for regular
 * traffic, ±sqrt(R/2T) for Poisson), so a function whose true λ·τ is 2 would
 * flap between ⌈1.999⌉ = 2 and ⌈2.001⌉ = 3 from one plan to the next. The
 * slack ignores an excess of less than 5 % of one instance's worth of
 * expected concurrency; the headroom h >= 1 absorbs that much. It also means
 * a function with a tiny residual rate (λ·τ < 0.05, e.g. one call a minute,
 * or a function whose burst has decayed) gets k = h rather than 1 + h: the
 * exponential decay never reaches 0 by itself, and without the slack a
 * function would only ever drop to h through the idle grace.
 */
export function target(lambda: number, tauMs: number, options: TargetOptions): number {
  const busy = (lambda * tauMs) / 1000;
  const base = Math.max(0, Math.ceil(busy - options.ceilSlack));
  return Math.min(options.maxConcurrency, base + options.headroom);
}

export interface MemoryFootprint {
  /** M_lin: measured private memory of one idle instance (bytes). */
  linBytes: number;
  /** M_code: native code size, shared by all instances of the function (bytes). */
  codeBytes: number;
}

/** Eq. 2: M_inst = M_lin + M_code / s, with s >= 1 instances sharing the code. */
export function instanceBytes(mem: MemoryFootprint, sharers: number): number {
  return mem.linBytes + mem.codeBytes / Math.max(1, sharers);
}

/**
 * Bytes charged for `warm` instances of one function: warm · M_inst with
 * s = warm, i.e. warm · M_lin + M_code when warm > 0 and 0 when warm = 0.
 * Exact in integers (no division), which is what the budget check uses.
 */
export function functionBytes(mem: MemoryFootprint, warm: number): number {
  return warm > 0 ? warm * mem.linBytes + mem.codeBytes : 0;
}

export interface BudgetItem {
  fn: string;
  /** null = never used: oldest of all. */
  lastUsedMs: number | null;
  /** Wish before the budget (integer >= 0). */
  k: number;
  linBytes: number;
  codeBytes: number;
  /** Predicted value of each of the k instances (instanceValues); only trimByValue reads it. */
  values?: readonly number[];
}

export interface BudgetResult {
  /** Budgeted warm count per function (every item present). */
  warm: Map<string, number>;
  plannedBytes: number;
}

/** Least recently used first; ties by name (code-unit order). */
export function lruCompare(a: { fn: string; lastUsedMs: number | null }, b: { fn: string; lastUsedMs: number | null }): number {
  const ta = a.lastUsedMs ?? -Infinity;
  const tb = b.lastUsedMs ?? -Infinity;
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.fn < b.fn ? -1 : a.fn > b.fn ? 1 : 0;
}

/** P(N >= m) for N ~ Poisson(mean). */
export function poissonTail(mean: number, m: number): number {
  if (m <= 0) return 1;
  if (mean <= 0) return 0;
  let term = Math.exp(-mean);
  let below = term;
  for (let i = 1; i < m; i++) {
    term *= mean / i;
    below += term;
  }
  return Math.max(0, 1 - below);
}

/**
 * Predicted value of each of a function's k warm instances, in cold starts
 * avoided per second (index j-1 for the j-th instance), for arrivals at
 * `lambda` calls/s of calls lasting `tauMs`, with the plan re-applied every
 * `intervalMs` (Δ):
 *
 *     v_j = (1 - exp(-λ·Δ·P(Poisson(λ·τ) >= j - 1))) / Δ
 *
 * Why: an instance a call had to restore stays idle after the call until the
 * next plan trims it, so a missing j-th instance costs at most one cold
 * start per interval -- the first arrival in it that finds j - 1 calls in
 * progress. Arrivals that do are a thinned Poisson stream (Poisson arrivals
 * see the M/G/∞ occupancy, Poisson with mean λ·τ), and the chance that one
 * comes within Δ is 1 - exp(-rate·Δ). So v_1 = (1 - e^(-λΔ))/Δ, about λ
 * for a rare function (each of its calls would be cold) and at most 1/Δ
 * for a busy one; v_j never increases with j.
 */
export function instanceValues(lambda: number, tauMs: number, k: number, intervalMs: number): number[] {
  const dt = intervalMs / 1000;
  const busy = (lambda * tauMs) / 1000;
  const values: number[] = [];
  for (let j = 1; j <= k; j++) {
    const rate = lambda * poissonTail(busy, j - 1);
    values.push(dt > 0 ? -Math.expm1(-rate * dt) / dt : rate);
  }
  return values;
}

/**
 * The rate to value a function by: λ, but no more than one call per idle
 * time so far. The estimate decays with T = 10 s whatever the traffic, so a
 * function whose burst ended 10 s ago still reads a third of the burst's
 * rate; having seen no call in 10 s is itself evidence of fewer than about
 * one call per 10 s now (bursty functions go quiet all at once). This brings
 * recency into the value as LRU has it, and keeps frequency for functions in
 * use (LRFU-like).
 */
export function recentRate(lambda: number, idleMs: number): number {
  return idleMs > 0 ? Math.min(lambda, 1000 / idleMs) : lambda;
}

/**
 * The smallest c with P(Poisson(mean) >= c) <= risk (0 for risk 0 or mean
 * 0): instances enough that an arrival finds them all busy with probability
 * at most `risk`, the concurrency of calls in progress being Poisson with
 * mean λ·τ (M/G/∞). Eq. 3's fixed h covers a mean concurrency of 0.1 well
 * (P(N >= 2) = 0.5 %) but one of 1.5 poorly (⌈1.5⌉ + 1 = 3 leaves P(N >= 3)
 * = 19 %); this sizes the headroom from the same λ·τ. Capped at 1000.
 */
export function concurrencyQuantile(mean: number, risk: number): number {
  if (risk <= 0 || mean <= 0) return 0;
  let c = 0;
  while (c < 1000 && poissonTail(mean, c) > risk) c++;
  return c;
}

/** Binary min-heap (tiny, for the value trim). */
class MinHeap<T> {
  private readonly a: T[] = [];
  constructor(private readonly less: (x: T, y: T) => boolean) {}
  get size(): number {
    return this.a.length;
  }
  push(x: T): void {
    const a = this.a;
    a.push(x);
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i]!, a[p]!)) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): T | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length && last !== undefined) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        let m = i;
        if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
        if (l + 1 < a.length && this.less(a[l + 1]!, a[m]!)) m = l + 1;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}

/** Every function at its wished k, and what that costs: where both trims start. */
function everyWish(items: readonly BudgetItem[]): BudgetResult {
  const warm = new Map<string, number>();
  let plannedBytes = 0;
  for (const it of items) {
    warm.set(it.fn, it.k);
    plannedBytes += functionBytes(it, it.k);
  }
  return { warm, plannedBytes };
}

/**
 * Eq. 4 trimmed by predicted value per byte: while the wishes exceed the
 * budget, take back the warm instance, over all functions, whose value
 * (item.values[j-1], see instanceValues; missing = 0) per byte it frees is
 * lowest, always a function's top instance (the j-th frees M_lin, the last
 * one M_lin + M_code). Ties: LRU, then name. So a rarely called function's
 * floor instance goes before a busy function's spare, and of two functions
 * of equal value the bigger goes first (GreedyDual-Size, as in FaaSCache).
 * plannedBytes <= budgetBytes always.
 */
export function trimByValue(items: readonly BudgetItem[], budgetBytes: number): BudgetResult {
  const { warm, plannedBytes } = everyWish(items);
  let planned = plannedBytes;
  if (planned <= budgetBytes) return { warm, plannedBytes: planned };
  type Top = { it: BudgetItem; j: number; density: number };
  const top = (it: BudgetItem, j: number): Top => {
    const freed = j === 1 ? it.linBytes + it.codeBytes : it.linBytes;
    const value = it.values?.[j - 1] ?? 0;
    return { it, j, density: freed > 0 ? value / freed : value > 0 ? Infinity : 0 };
  };
  const heap = new MinHeap<Top>((x, y) => (x.density !== y.density ? x.density < y.density : lruCompare(x.it, y.it) < 0));
  for (const it of items) if (it.k > 0) heap.push(top(it, it.k));
  while (planned > budgetBytes && heap.size) {
    const t = heap.pop()!;
    planned -= functionBytes(t.it, t.j) - functionBytes(t.it, t.j - 1);
    warm.set(t.it.fn, t.j - 1);
    if (t.j > 1) heap.push(top(t.it, t.j - 1));
  }
  return { warm, plannedBytes: planned };
}

/**
 * Eq. 4 with LRU trimming (the paper's rule). Charges each function
 * functionBytes(mem, warm) (eq. 2 with s = warm). If Σ over the wishes
 * exceeds the budget, walks the functions in LRU order and lowers each one's
 * warm count by the least amount that makes the total fit (a step of one
 * instance saves M_lin; the last instance also frees M_code), going to 0 and
 * on to the next function if needed. Result: in LRU order the warm counts
 * look like 0, ..., 0, partial, full, ..., full, and plannedBytes <=
 * budgetBytes always (in the worst case everything is 0). Requires integer
 * k >= 0 and non-negative byte sizes.
 */
export function trimToBudget(items: readonly BudgetItem[], budgetBytes: number): BudgetResult {
  const { warm, plannedBytes } = everyWish(items);
  let planned = plannedBytes;
  if (planned <= budgetBytes) return { warm, plannedBytes: planned };
  for (const it of [...items].sort(lruCompare)) {
    const over = planned - budgetBytes;
    if (over <= 0) break;
    if (it.k === 0) continue;
    // Keeping k - j >= 1 instances saves j · M_lin.
    const j = it.linBytes > 0 ? Math.ceil(over / it.linBytes) : Infinity;
    const keep = j < it.k ? it.k - j : 0;
    planned -= functionBytes(it, it.k) - functionBytes(it, keep);
    warm.set(it.fn, keep);
  }
  return { warm, plannedBytes: planned };
}

/**
 * Largest uniform K (0 <= K <= max cap) such that every item holding
 * min(K, cap) instances fits the budget: Σ functionBytes(mem, min(K, cap)) <= B.
 * The cost is monotone in K, so binary search.
 */
export function uniformTarget(
  items: readonly (MemoryFootprint & { maxConcurrency: number })[],
  budgetBytes: number,
): number {
  const cost = (K: number) => items.reduce((sum, it) => sum + functionBytes(it, Math.min(K, it.maxConcurrency)), 0);
  let lo = 0;
  let hi = items.reduce((m, it) => Math.max(m, it.maxConcurrency), 0);
  if (cost(hi) <= budgetBytes) return hi;
  // Invariant: cost(lo) <= B (cost(0) = 0 <= B) and cost(hi) > B.
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (cost(mid) <= budgetBytes) lo = mid;
    else hi = mid;
  }
  return lo;
}

// ---------------------------------------------------------------------------
// Plans and the shared interface

export type PolicyName = "predicted" | "fixed" | "keep-alive";

export interface FunctionPlan {
  /** λ at nowMs, calls/s (decayed-count estimate). */
  lambda: number;
  /** τ planned by, ms: the local EWMA of call duration, or the cluster's (tauOf); null before the first duration. */
  tau: number | null;
  /** The policy's target before the budget. */
  k: number;
  /** Warm (idle, ready) instances to hold after the budget. */
  warm: number;
  /** k - warm: instances lost to the budget. */
  trimmed: number;
  /** Bytes per warm instance: eq. 2 with s = max(1, warm) (KeepAlive: the container size). */
  mInst: number;
  /** Bytes this function's warm instances are charged (warm · mInst, exact). */
  bytes: number;
  /** Release the function's loaded module / native code. Implies warm = 0. */
  unloadCode: boolean;
  lastArrivalMs: number | null;
  lastUsedMs: number | null;
}

export interface Plan {
  policy: PolicyName;
  nowMs: number;
  /** Every known function, in name order. */
  functions: Map<string, FunctionPlan>;
  budgetBytes: number;
  /** Σ bytes; always <= budgetBytes. */
  plannedBytes: number;
}

export interface WarmPolicy {
  readonly name: PolicyName;
  readonly budgetBytes: number;
  /** A call of fn arrived at nowMs. */
  recordArrival(fn: string, nowMs: number): void;
  /** A call of fn that ran durationMs completed at nowMs. */
  recordDuration(fn: string, durationMs: number, nowMs: number): void;
  /** Mark fn used at nowMs without an arrival (deploy/activation starts its grace clocks). */
  touch(fn: string, nowMs: number): void;
  setMemory(fn: string, mem: MemoryFootprint): void;
  setMaxConcurrency(fn: string, maxConcurrency: number): void;
  setBudget(budgetBytes: number): void;
  /** Drop everything known about fn (deleted function). */
  forget(fn: string): void;
  /** Plan fn by this node's share of the cluster's rate (null: local rate). */
  setClusterRate(fn: string, rate: number | null, nowMs: number): void;
  /** The cluster's mean call duration of fn in ms (null: unknown, local τ only). */
  setClusterTau(fn: string, tauMs: number | null): void;
  plan(nowMs: number): Plan;
}

/** Settings common to all policies (the estimators are reported by all three). */
export interface CommonConfig {
  /** B, bytes for warm instances. */
  budgetBytes: number;
  /** T of the arrival-rate estimator (ms). Default 10 000. */
  rateTimeConstantMs?: number;
  /** α of the duration EWMA. Default 0.2. */
  durationAlpha?: number;
  /** Used until setMaxConcurrency (registry default: 64). */
  defaultMaxConcurrency?: number;
  /** Used until setMemory: 2 MiB linear memory, no code (paper: M_lin ≈ 1-2 MB). */
  defaultMemory?: MemoryFootprint;
}

interface FunctionState {
  rate: RateState | null;
  /** Same estimator with a short time constant (bursts). */
  burst: RateState | null;
  /** Returns from quiet (arrivals after an idle gap longer than PoolPolicy's grace): their rate, long time constant, and EWMA of those gaps (ms). */
  returns: RateState | null;
  quietGapMs: number | null;
  /** This node's share of the cluster's rate (calls/s), when a rate store reports one. */
  clusterRate: number | null;
  tau: number | null;
  /** Decayed count of this node's completions: how much its own τ is worth. */
  completions: RateState | null;
  /** The cluster's τ (ms), when a rate store reports one. */
  clusterTau: number | null;
  lastArrivalMs: number | null;
  lastUsedMs: number | null;
  mem: MemoryFootprint | null;
  maxConcurrency: number | null;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new RangeError(`invalid ${what}`);
}

const isTime = (t: number) => Number.isFinite(t);
const isBytes = (b: number) => Number.isFinite(b) && b >= 0;
const isCount = (n: number) => Number.isInteger(n) && n >= 0;
const later = (a: number | null, b: number) => (a === null ? b : Math.max(a, b));
/** T of the burst estimator: follows a burst within about a second. */
export const BURST_TIME_CONSTANT_MS = 1_000;
/** T of the returns estimator: remembers how often a function comes back from quiet, for about an hour. */
export const LONG_TIME_CONSTANT_MS = 3_600_000;
/** A cluster share at or above this (calls/s) keeps a function in use. */
const CLUSTER_ACTIVE_RATE = 0.01;
/** Completions within about T a node needs before it trusts its own τ over the cluster's. */
export const LOCAL_TAU_MIN_CALLS = 5;

/** Per-function history shared by all policies: λ, τ, last use, memory, cap. */
abstract class TrackingPolicy implements WarmPolicy {
  abstract readonly name: PolicyName;
  protected readonly fns = new Map<string, FunctionState>();
  private sorted: string[] | null = null;
  protected readonly timeConstantMs: number;
  protected readonly alpha: number;
  protected readonly defaultMaxConcurrency: number;
  protected readonly defaultMemory: MemoryFootprint;
  private budget: number;

  constructor(config: CommonConfig) {
    this.timeConstantMs = config.rateTimeConstantMs ?? 10_000;
    this.alpha = config.durationAlpha ?? 0.2;
    this.defaultMaxConcurrency = config.defaultMaxConcurrency ?? 64;
    this.defaultMemory = config.defaultMemory ?? { linBytes: 2 * MiB, codeBytes: 0 };
    check(Number.isFinite(this.timeConstantMs) && this.timeConstantMs > 0, "rateTimeConstantMs");
    check(this.alpha > 0 && this.alpha <= 1, "durationAlpha");
    check(Number.isInteger(this.defaultMaxConcurrency) && this.defaultMaxConcurrency >= 1, "defaultMaxConcurrency");
    check(isBytes(this.defaultMemory.linBytes) && isBytes(this.defaultMemory.codeBytes), "defaultMemory");
    check(isBytes(config.budgetBytes), "budgetBytes");
    this.budget = config.budgetBytes;
  }

  get budgetBytes(): number {
    return this.budget;
  }

  setBudget(budgetBytes: number): void {
    check(isBytes(budgetBytes), "budgetBytes");
    this.budget = budgetBytes;
  }

  protected state(fn: string): FunctionState {
    let s = this.fns.get(fn);
    if (!s) {
      s = {
        rate: null,
        burst: null,
        returns: null,
        quietGapMs: null,
        clusterRate: null,
        tau: null,
        completions: null,
        clusterTau: null,
        lastArrivalMs: null, lastUsedMs: null, mem: null, maxConcurrency: null };
      this.fns.set(fn, s);
      this.sorted = null;
    }
    return s;
  }

  recordArrival(fn: string, nowMs: number): void {
    check(isTime(nowMs), "nowMs");
    const s = this.state(fn);
    s.rate = addArrival(s.rate, nowMs, this.timeConstantMs);
    s.burst = addArrival(s.burst, nowMs, BURST_TIME_CONSTANT_MS);
    s.lastArrivalMs = later(s.lastArrivalMs, nowMs);
    s.lastUsedMs = later(s.lastUsedMs, nowMs);
  }

  recordDuration(fn: string, durationMs: number, nowMs: number): void {
    check(Number.isFinite(durationMs) && durationMs >= 0, "durationMs");
    check(isTime(nowMs), "nowMs");
    const s = this.state(fn);
    s.tau = ewma(s.tau, durationMs, this.alpha);
    s.completions = addArrival(s.completions, nowMs, this.timeConstantMs);
    s.lastUsedMs = later(s.lastUsedMs, nowMs);
  }

  touch(fn: string, nowMs: number): void {
    check(isTime(nowMs), "nowMs");
    const s = this.state(fn);
    s.lastUsedMs = later(s.lastUsedMs, nowMs);
  }

  setMemory(fn: string, mem: MemoryFootprint): void {
    check(isBytes(mem.linBytes) && isBytes(mem.codeBytes), "memory footprint");
    this.state(fn).mem = { linBytes: mem.linBytes, codeBytes: mem.codeBytes };
  }

  setMaxConcurrency(fn: string, maxConcurrency: number): void {
    check(Number.isInteger(maxConcurrency) && maxConcurrency >= 1, "maxConcurrency");
    this.state(fn).maxConcurrency = maxConcurrency;
  }

  forget(fn: string): void {
    if (this.fns.delete(fn)) this.sorted = null;
  }

  /** Size fn by this node's share of the cluster's rate instead of its own
   * arrivals (null: back to local). A busy cluster counts as use, so a node
   * keeps warm what the cluster is calling even when it has not been called. */
  setClusterRate(fn: string, rate: number | null, nowMs: number): void {
    const s = this.fns.get(fn);
    if (!s) return;
    s.clusterRate = rate;
    if (rate !== null && rate >= CLUSTER_ACTIVE_RATE) s.lastUsedMs = later(s.lastUsedMs, nowMs);
  }

  setClusterTau(fn: string, tauMs: number | null): void {
    const s = this.fns.get(fn);
    if (s) s.clusterTau = tauMs;
  }

  /** τ for planning. The node's own EWMA once it has run enough recent calls:
   * it follows a change within a few calls, where the cluster's decayed mean
   * lags by a flush and averages over T, and it measures this node's
   * hardware. Until then (a node that has never run fn, or only a call or
   * two, or long ago) the cluster's τ, which averages every node's calls;
   * without one, the local τ again. Not a blend: the cluster's mean already
   * contains this node's calls, weighted by their share. */
  protected tauOf(s: FunctionState, nowMs: number): number | null {
    const recent = (rateAt(s.completions, nowMs, this.timeConstantMs) * this.timeConstantMs) / 1000;
    return recent >= LOCAL_TAU_MIN_CALLS ? s.tau : (s.clusterTau ?? s.tau);
  }

  /** λ for planning: the cluster share when known, else the local estimate. */
  protected lambdaOf(s: FunctionState, nowMs: number): number {
    return s.clusterRate ?? rateAt(s.rate, nowMs, this.timeConstantMs);
  }

  /** Function names in code-unit order; cached, as plans run every tick and functions come and go rarely. */
  protected sortedNames(): readonly string[] {
    this.sorted ??= [...this.fns.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return this.sorted;
  }

  protected memOf(s: FunctionState): MemoryFootprint {
    return s.mem ?? this.defaultMemory;
  }

  protected capOf(s: FunctionState): number {
    return s.maxConcurrency ?? this.defaultMaxConcurrency;
  }

  /** Time since last use, clamped at 0; Infinity if never used. */
  protected idleFor(s: FunctionState, nowMs: number): number {
    return s.lastUsedMs === null ? Infinity : Math.max(0, nowMs - s.lastUsedMs);
  }

  /** Common part of a FunctionPlan for functions charged by eq. 2. */
  protected eq2Plan(s: FunctionState, nowMs: number, k: number, warm: number, unloadCode: boolean): FunctionPlan {
    const mem = this.memOf(s);
    return {
      lambda: this.lambdaOf(s, nowMs),
      tau: this.tauOf(s, nowMs),
      k,
      warm,
      trimmed: k - warm,
      mInst: instanceBytes(mem, warm),
      bytes: functionBytes(mem, warm),
      unloadCode,
      lastArrivalMs: s.lastArrivalMs,
      lastUsedMs: s.lastUsedMs,
    };
  }

  abstract plan(nowMs: number): Plan;
}

// ---------------------------------------------------------------------------
// The predicted pool (paper §3.3, with a warm floor, burst rate and value trim)

export interface PoolPolicyConfig extends CommonConfig {
  /** h of eq. 3. Default 1. */
  headroom?: number;
  /** See `target`. Default 0.05. */
  ceilSlack?: number;
  /** Eq. 3's k applies until a function has been idle this long (ms). Default 60 000. */
  idleGraceMs?: number;
  /** unloadCode once idle longer than this and than the floor window (ms). Default 300 000. */
  codeGraceMs?: number;
  /** Plan by max(λ, λ over BURST_TIME_CONSTANT_MS), so k follows a burst within a second. Default true. */
  burstAware?: boolean;
  /** Shortest floor window (ms): one instance stays warm this long after the last use. 0 = no floor. Default 600 000. */
  warmFloorMs?: number;
  /** The floor window stretches to gapFactor typical quiet gaps (see floorWindow). 0 = off. Default 2. */
  gapFactor?: number;
  /** Longest floor window (ms). Default 14 400 000 (4 h). */
  maxFloorMs?: number;
  /** "value" (trimByValue) or "lru" (the paper, trimToBudget). Default "value". */
  trimOrder?: "value" | "lru";
  /** Δ of instanceValues: how often the plan is applied (ms). Default 250, the manager's tick. */
  planIntervalMs?: number;
  /** k is at least the (1 - overflowRisk) quantile of the concurrency, see concurrencyQuantile. 0 = off. Default 0.02. */
  overflowRisk?: number;
}

/** The predicted pool exactly as the paper describes it (and as thaw did before the floor): for comparisons. */
export const PAPER_POOL = { burstAware: false, overflowRisk: 0, warmFloorMs: 0, gapFactor: 0, trimOrder: "lru" } as const;

/**
 * How long after its last use a function keeps its floor instance (ms):
 * warmFloorMs, stretched to gapFactor times the function's typical quiet
 * gap (EWMA of the idle gaps it came back from), at most maxFloorMs. A
 * function called every 30 minutes (the timer-triggered functions common in
 * the Azure trace) then stays warm across its gaps instead of starting cold
 * every time; one with no quiet gaps seen yet gets warmFloorMs.
 */
export function floorWindow(quietGapMs: number | null, warmFloorMs: number, gapFactor: number, maxFloorMs: number): number {
  if (warmFloorMs <= 0) return 0;
  if (quietGapMs === null || gapFactor <= 0) return warmFloorMs;
  return Math.max(warmFloorMs, Math.min(maxFloorMs, gapFactor * quietGapMs));
}

/**
 * The wish of a used, loaded function idle for idleMs: eq. 3's k while
 * idle <= idleGraceMs, and at least one instance (the floor) while idle <=
 * the floor window. The floor costs one M_lin + M_code per recently used
 * function -- a few KiB to a few hundred KiB in thaw -- and turns the first
 * call after a quiet spell from a cold start into a warm one; the budget
 * takes it back, cheapest value first, when memory is short.
 */
export function wish(eq3: number, idleMs: number, idleGraceMs: number, floorWindowMs: number, cap: number): number {
  const k = idleMs <= idleGraceMs ? eq3 : 0;
  return floorWindowMs > 0 && idleMs <= floorWindowMs ? Math.max(k, Math.min(1, cap)) : k;
}

/**
 * The predicted pool. Per function f, at plan time t:
 *
 * - λ_f: decayed-count arrival rate (see RateState), T = rateTimeConstantMs,
 *   or this node's share of the cluster's rate. With burstAware, the max of
 *   that and the same estimator with T = 1 s: at a burst's start the 10 s
 *   estimate needs seconds to see it (after 1 s of a jump to rate R it reads
 *   R·(1 - e^-0.1) ≈ 0.1 R), so the pool lags and the burst's first calls
 *   overflow it; the 1 s estimate reads 0.63 R. The max keeps the long
 *   estimate's memory on the way down (a lull of a second does not drop the
 *   pool), and the short one's noise (sd sqrt(R/2 s)) only ever adds.
 * - τ_f: EWMA of durations (α = durationAlpha, seeded with the first one),
 *   or the cluster's τ while this node has run fewer than
 *   LOCAL_TAU_MIN_CALLS recent calls (see tauOf); treated as 0 until a
 *   duration is known, so a new function gets k = h.
 * - idle_f = t - lastUsed_f; window_f = floorWindow (0 without a floor).
 * - unloadCode_f = idle_f > max(codeGraceMs, window_f) ("idle functions'
 *   native code unloaded after a grace period"). A function never used (no
 *   arrival, completion or touch) has no idle clock: k = 0 and unloadCode =
 *   false; the manager should touch() a function when it activates it.
 * - k_f = 0 if never used or unloadCode_f; otherwise wish(target(λ_f, τ_f),
 *   ...): eq. 3 (min(maxConcurrency_f, ⌈λ_f·τ_f - slack⌉⁺ + h)) within the
 *   idle grace, and a floor of one instance within window_f. Why a floor and
 *   not the paper's k = 0 after the grace: the exponential estimate decays
 *   to nothing in a minute of quiet, so every function with gaps longer
 *   than that started cold on each return, although its instance would have
 *   cost a few KiB of a budget that was nowhere near binding.
 * - M_inst,f = M_lin,f + M_code,f / s_f with s_f = max(1, warm_f), the
 *   budgeted number of warm instances. Why warm (and not the pre-budget k
 *   or the pool's current warm count): those are exactly the instances that
 *   will share the code once the plan is applied, so Σ warm·M_inst is
 *   exactly the memory the plan holds (warm·M_lin + M_code per function with
 *   any warm instance). Pricing with the pre-budget k would undercharge the
 *   code of a trimmed function; the current count would make the plan depend
 *   on the pool's transient state and break the purity of the policy.
 *   Code of a function with warm = 0 is not charged: it is still resident
 *   until unloadCode, but it is clean, file-backed memory the kernel can
 *   reclaim, and eq. 4 budgets warm instances only.
 * - Budget: trimByValue -- instance by instance, the fewest cold starts
 *   avoided per byte first: instanceValues(λ_f, τ_f, k_f, planIntervalMs)
 *   within the idle grace; past it, the floor is worth the rate at which f
 *   comes back from quiet (returns, T = 1 h), since it saves one cold start
 *   per return. Or, with trimOrder "lru", the paper's trimToBudget
 *   (LRU by lastUsed, whole functions). The value order takes back the
 *   floors of functions unlikely to be called soon before any busy
 *   function's instance, and a busy function's spares before another's only
 *   instance. LRU would instead take a function called every minute (and
 *   idle for 50 s) before one called once, 40 s ago, and empty a busy pool
 *   whose last call was a few ms older than a rare function's.
 */
export class PoolPolicy extends TrackingPolicy {
  readonly name = "predicted" as const;
  readonly headroom: number;
  readonly ceilSlack: number;
  readonly idleGraceMs: number;
  readonly codeGraceMs: number;
  readonly burstAware: boolean;
  readonly warmFloorMs: number;
  readonly gapFactor: number;
  readonly maxFloorMs: number;
  readonly trimOrder: "value" | "lru";
  readonly planIntervalMs: number;
  readonly overflowRisk: number;

  constructor(config: PoolPolicyConfig) {
    super(config);
    this.headroom = config.headroom ?? 1;
    this.ceilSlack = config.ceilSlack ?? 0.05;
    this.idleGraceMs = config.idleGraceMs ?? 60_000;
    this.codeGraceMs = config.codeGraceMs ?? 300_000;
    this.burstAware = config.burstAware ?? true;
    this.warmFloorMs = config.warmFloorMs ?? 600_000;
    this.gapFactor = config.gapFactor ?? 2;
    this.maxFloorMs = config.maxFloorMs ?? 4 * 3_600_000;
    this.trimOrder = config.trimOrder ?? "value";
    this.planIntervalMs = config.planIntervalMs ?? 250;
    this.overflowRisk = config.overflowRisk ?? 0.02;
    check(isCount(this.headroom), "headroom");
    check(this.ceilSlack >= 0 && this.ceilSlack < 1, "ceilSlack");
    check(this.idleGraceMs >= 0, "idleGraceMs");
    check(this.codeGraceMs >= 0, "codeGraceMs");
    check(this.warmFloorMs >= 0, "warmFloorMs");
    check(Number.isFinite(this.gapFactor) && this.gapFactor >= 0, "gapFactor");
    check(this.maxFloorMs >= 0, "maxFloorMs");
    check(this.trimOrder === "value" || this.trimOrder === "lru", "trimOrder");
    check(Number.isFinite(this.planIntervalMs) && this.planIntervalMs >= 0, "planIntervalMs");
    check(this.overflowRisk >= 0 && this.overflowRisk < 1, "overflowRisk");
  }

  /** An arrival after more than the idle grace of quiet is a return: it feeds the returns rate and the quiet gap. */
  override recordArrival(fn: string, nowMs: number): void {
    const s = this.state(fn);
    const idle = s.lastUsedMs === null ? null : nowMs - s.lastUsedMs;
    if (idle !== null && idle > this.idleGraceMs) {
      s.returns = addArrival(s.returns, nowMs, LONG_TIME_CONSTANT_MS);
      s.quietGapMs = ewma(s.quietGapMs, idle, 0.5);
    }
    super.recordArrival(fn, nowMs);
  }

  protected override lambdaOf(s: FunctionState, nowMs: number): number {
    const base = super.lambdaOf(s, nowMs);
    return this.burstAware ? Math.max(base, rateAt(s.burst, nowMs, BURST_TIME_CONSTANT_MS)) : base;
  }

  plan(nowMs: number): Plan {
    check(isTime(nowMs), "nowMs");
    const names = this.sortedNames();
    const wishes = new Map<string, { k: number; unloadCode: boolean }>();
    const items: BudgetItem[] = [];
    const valueOf: (() => number[])[] = [];
    let wanted = 0;
    for (const fn of names) {
      const s = this.fns.get(fn)!;
      const idle = this.idleFor(s, nowMs);
      const window = floorWindow(s.quietGapMs, this.warmFloorMs, this.gapFactor, this.maxFloorMs);
      const unloadCode = s.lastUsedMs !== null && idle > Math.max(this.codeGraceMs, window);
      const lambda = this.lambdaOf(s, nowMs);
      const cap = this.capOf(s);
      const tau = this.tauOf(s, nowMs) ?? 0;
      const eq3 = Math.max(
        target(lambda, tau, { headroom: this.headroom, maxConcurrency: cap, ceilSlack: this.ceilSlack }),
        Math.min(cap, concurrencyQuantile((lambda * tau) / 1000, this.overflowRisk)),
      );
      const k = s.lastUsedMs === null || unloadCode ? 0 : wish(eq3, idle, this.idleGraceMs, window, cap);
      // Past the idle grace only the floor is left; it saves one cold start per return from quiet.
      valueOf.push(() =>
        idle <= this.idleGraceMs
          ? instanceValues(recentRate(lambda, idle), tau, k, this.planIntervalMs)
          : [rateAt(s.returns, nowMs, LONG_TIME_CONSTANT_MS)].slice(0, k),
      );
      wishes.set(fn, { k, unloadCode });
      const item: BudgetItem = { fn, lastUsedMs: s.lastUsedMs, k, ...this.memOf(s) };
      wanted += functionBytes(item, k);
      items.push(item);
    }
    // Values only matter (and are only computed) when the wishes do not fit.
    if (this.trimOrder === "value" && wanted > this.budgetBytes) items.forEach((it, i) => (it.values = valueOf[i]!()));
    const budget = this.trimOrder === "value" ? trimByValue(items, this.budgetBytes) : trimToBudget(items, this.budgetBytes);
    const functions = new Map<string, FunctionPlan>();
    for (const fn of names) {
      const w = wishes.get(fn)!;
      functions.set(fn, this.eq2Plan(this.fns.get(fn)!, nowMs, w.k, budget.warm.get(fn) ?? 0, w.unloadCode));
    }
    return { policy: this.name, nowMs, functions, budgetBytes: this.budgetBytes, plannedBytes: budget.plannedBytes };
  }
}

// ---------------------------------------------------------------------------
// Baseline: fixed-size WebAssembly pool

export interface FixedPolicyConfig extends CommonConfig {
  /**
   * Fixed k per active function. Default: derived from the budget (the
   * largest uniform K that fits, see below).
   */
  perFunction?: number;
  /** A function is active if used within this window (ms). Default Infinity (ever used). */
  activeWindowMs?: number;
  /** An inactive function's code is unloaded once idle longer than this (ms). Default 300 000. */
  codeGraceMs?: number;
}

/**
 * Fixed-size pool ("WebAssembly fixed pool" of Table III): no prediction,
 * the same k for every function with traffic.
 *
 * - active_f = f was used (arrival, completion or touch) and
 *   t - lastUsed_f <= activeWindowMs. Inactive functions get k = 0.
 * - k_f = min(maxConcurrency_f, K) for active f, where K is `perFunction` if
 *   configured, else the largest K with Σ_active (min(K, cap_f)·M_lin,f +
 *   M_code,f) <= B: the budget split evenly in instances, with code shared
 *   over the instances of each function (eq. 2; for equal footprints and no
 *   code this is K = floor(B / (n · M_inst))). Capped functions leave their
 *   share to the others. If not even one instance each fits (derived K = 0),
 *   every active function wishes 1 and the budget decides.
 * - Budget: trimToBudget, as in PoolPolicy (LRU, ties by name, minimal).
 *   With derived K, trimming happens only in the K = 0 case; with a
 *   configured perFunction it happens whenever n·cost exceeds B.
 * - unloadCode_f = f inactive and idle longer than codeGraceMs (never with
 *   the default infinite window).
 * - M_inst as in PoolPolicy (s = max(1, warm)).
 */
export class FixedPolicy extends TrackingPolicy {
  readonly name = "fixed" as const;
  readonly perFunction: number | null;
  readonly activeWindowMs: number;
  readonly codeGraceMs: number;

  constructor(config: FixedPolicyConfig) {
    super(config);
    this.perFunction = config.perFunction ?? null;
    this.activeWindowMs = config.activeWindowMs ?? Infinity;
    this.codeGraceMs = config.codeGraceMs ?? 300_000;
    check(this.perFunction === null || isCount(this.perFunction), "perFunction");
    check(this.activeWindowMs >= 0, "activeWindowMs");
    check(this.codeGraceMs >= 0, "codeGraceMs");
  }

  plan(nowMs: number): Plan {
    check(isTime(nowMs), "nowMs");
    const names = this.sortedNames();
    const active = new Set(
      names.filter((fn) => {
        const s = this.fns.get(fn)!;
        return s.lastUsedMs !== null && this.idleFor(s, nowMs) <= this.activeWindowMs;
      }),
    );
    const K =
      this.perFunction ??
      Math.max(
        1,
        uniformTarget(
          [...active].map((fn) => {
            const s = this.fns.get(fn)!;
            return { ...this.memOf(s), maxConcurrency: this.capOf(s) };
          }),
          this.budgetBytes,
        ),
      );
    const items: BudgetItem[] = names.map((fn) => {
      const s = this.fns.get(fn)!;
      return { fn, lastUsedMs: s.lastUsedMs, k: active.has(fn) ? Math.min(K, this.capOf(s)) : 0, ...this.memOf(s) };
    });
    const budget = trimToBudget(items, this.budgetBytes);
    const functions = new Map<string, FunctionPlan>();
    for (const it of items) {
      const s = this.fns.get(it.fn)!;
      const unloadCode = !active.has(it.fn) && s.lastUsedMs !== null && this.idleFor(s, nowMs) > this.codeGraceMs;
      functions.set(it.fn, this.eq2Plan(s, nowMs, it.k, budget.warm.get(it.fn) ?? 0, unloadCode));
    }
    return { policy: this.name, nowMs, functions, budgetBytes: this.budgetBytes, plannedBytes: budget.plannedBytes };
  }
}

// ---------------------------------------------------------------------------
// Baseline: container keep-alive

export interface KeepAlivePolicyConfig extends CommonConfig {
  /** A container stays warm this long after the call it served ended (ms). Default 600 000. */
  keepAliveMs?: number;
  /** Memory of one container, idle or busy (bytes). Default 48 MiB (Table II). */
  containerBytes?: number;
}

interface Containers {
  /** Release times of idle containers, ascending (last = most recently used). */
  idle: number[];
  busy: number;
}

/**
 * Container keep-alive ("Container keep-alive" of Table III), simulated
 * container by container from the call events:
 *
 * - A container serves one call at a time. recordArrival(f, t): the call
 *   takes f's most recently released idle container if one is still alive
 *   (t - releasedAt <= keepAliveMs; MRU reuse, so surplus containers age out
 *   as on Lambda/OpenWhisk), else a new container is created (a cold start
 *   on a container platform). It returns whether a warm container was
 *   reused. recordDuration(f, ms, t) releases one busy container of f at t
 *   (t is the completion time); a completion with no busy container (its
 *   arrival was not recorded) only feeds τ. Calls must therefore be fed as
 *   arrival at start and duration at completion, in time order per function.
 * - There is no prediction and no pre-warming: k_f = the idle containers
 *   still alive at plan time t (released within keepAliveMs). Busy
 *   containers are not warm and not charged (same rule as the other
 *   policies).
 * - Every container costs containerBytes; setMemory is ignored (a container
 *   image does not shrink with the function) and maxConcurrency is not
 *   applied (containers = observed concurrency).
 * - Budget: trimToBudget with M_lin = containerBytes, M_code = 0; the LRU
 *   functions' containers are evicted first, a function's oldest-released
 *   containers first. Eviction destroys containers: unlike the other
 *   policies, plan() changes the state (an evicted container does not come
 *   back when memory frees up; the next call is cold). Expiry also happens
 *   in plan() and recordArrival.
 * - unloadCode_f = f holds no container at all (idle or busy): on a
 *   container platform the code lives and dies with its containers.
 * - mInst = containerBytes.
 */
export class KeepAlivePolicy extends TrackingPolicy {
  readonly name = "keep-alive" as const;
  readonly keepAliveMs: number;
  readonly containerBytes: number;
  private readonly containers = new Map<string, Containers>();

  constructor(config: KeepAlivePolicyConfig) {
    super(config);
    this.keepAliveMs = config.keepAliveMs ?? 600_000;
    this.containerBytes = config.containerBytes ?? 48 * MiB;
    check(this.keepAliveMs >= 0, "keepAliveMs");
    check(isBytes(this.containerBytes), "containerBytes");
  }

  private containersOf(fn: string): Containers {
    let c = this.containers.get(fn);
    if (!c) {
      c = { idle: [], busy: 0 };
      this.containers.set(fn, c);
    }
    return c;
  }

  private expire(c: Containers, nowMs: number): void {
    let dead = 0;
    while (dead < c.idle.length && nowMs - c.idle[dead]! > this.keepAliveMs) dead++;
    if (dead > 0) c.idle.splice(0, dead);
  }

  /** Returns true if the call reused a warm container, false if it needed a new one. */
  override recordArrival(fn: string, nowMs: number): boolean {
    super.recordArrival(fn, nowMs);
    const c = this.containersOf(fn);
    this.expire(c, nowMs);
    const reused = c.idle.pop() !== undefined;
    c.busy++;
    return reused;
  }

  override recordDuration(fn: string, durationMs: number, nowMs: number): void {
    super.recordDuration(fn, durationMs, nowMs);
    const c = this.containersOf(fn);
    if (c.busy === 0) return;
    c.busy--;
    let i = c.idle.length;
    while (i > 0 && c.idle[i - 1]! > nowMs) i--;
    c.idle.splice(i, 0, nowMs);
  }

  /** Containers of fn (for tests and the benchmark). */
  containerCount(fn: string): { idle: number; busy: number } {
    const c = this.containers.get(fn);
    return { idle: c?.idle.length ?? 0, busy: c?.busy ?? 0 };
  }

  override forget(fn: string): void {
    super.forget(fn);
    this.containers.delete(fn);
  }

  plan(nowMs: number): Plan {
    check(isTime(nowMs), "nowMs");
    const names = this.sortedNames();
    const items: BudgetItem[] = names.map((fn) => {
      const c = this.containersOf(fn);
      this.expire(c, nowMs);
      return { fn, lastUsedMs: this.fns.get(fn)!.lastUsedMs, k: c.idle.length, linBytes: this.containerBytes, codeBytes: 0 };
    });
    const budget = trimToBudget(items, this.budgetBytes);
    const functions = new Map<string, FunctionPlan>();
    for (const it of items) {
      const s = this.fns.get(it.fn)!;
      const c = this.containersOf(it.fn);
      const warm = budget.warm.get(it.fn) ?? 0;
      c.idle.splice(0, it.k - warm); // evict the oldest-released first
      functions.set(it.fn, {
        lambda: rateAt(s.rate, nowMs, this.timeConstantMs),
        tau: s.tau,
        k: it.k,
        warm,
        trimmed: it.k - warm,
        mInst: this.containerBytes,
        bytes: warm * this.containerBytes,
        unloadCode: c.idle.length === 0 && c.busy === 0,
        lastArrivalMs: s.lastArrivalMs,
        lastUsedMs: s.lastUsedMs,
      });
    }
    return { policy: this.name, nowMs, functions, budgetBytes: this.budgetBytes, plannedBytes: budget.plannedBytes };
  }
}
