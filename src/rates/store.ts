// Arrival rates and call durations shared across nodes. One interface, two
// stores: in memory for a single node, and Redis for a cluster (redis.ts).
//
// Every store uses the estimator of the warm-pool policy (pool/policy.ts):
// a decayed count, rate(t) = (1/T) Σ exp(-(t - t_i)/T) calls/s, which can be
// summed across nodes and updated in one step per batch. Arrivals are
// counted locally with no I/O and published in batches (flush), so nothing
// sits on the call path; a batch that cannot be published is kept for the
// next flush, never dropped.
//
// The mean call duration τ is a decayed mean with the same kernel and T:
//
//     τ(t) = Σ w_i·d_i / Σ w_i,   w_i = exp(-(t - t_i)/T)
//
// kept as two decayed sums. Chosen over an EWMA because sums compose: the
// cluster's τ is the sums of all nodes added up, so each call weighs the
// same whichever node ran it, and a batch of 500 calls counts 500 times
// what a batch of one does. An EWMA fed one batch mean per flush would give
// a node's single slow call the weight of another node's thousand fast ones,
// and its memory would depend on how often nodes flush. Both sums decay at
// the same rate, so τ holds still while a function is idle instead of
// drifting towards 0.

import { addArrival, decay, type RateState, rateAt } from "../pool/policy.ts";

export interface RateStore {
  /** Count one arrival of fn on this node: no I/O. */
  arrive(fn: string): void;
  /** Count one completed call of fn that ran durationMs on this node: no I/O. */
  complete(fn: string, durationMs: number): void;
  /** Publish the arrivals and durations counted since the last flush; false if they are kept for later. */
  flush(): Promise<boolean>;
  /** Cluster-wide arrival rate (calls/s) and mean duration τ (ms) per function, and the live nodes sharing them. */
  read(): Promise<{ rates: Map<string, number>; taus: Map<string, number>; nodes: number }>;
}

/** The node's share of a cluster rate, the λ its own pools should be sized by. */
export const nodeShare = (clusterRate: number, nodes: number) => clusterRate / Math.max(1, nodes);

/** Below this decayed weight (about 20 T after the last call) a τ is no longer reported: 0/0 is near. */
export const MIN_TAU_WEIGHT = 1e-9;

/** Decayed-mean state: Σ w·d (ms) and Σ w as of atMs. */
export interface DurationState {
  readonly sum: number;
  readonly count: number;
  readonly atMs: number;
}

/** Fold count calls of total duration sumMs, all at nowMs, into the estimator. */
export function addDurations(
  state: DurationState | null,
  count: number,
  sumMs: number,
  nowMs: number,
  timeConstantMs: number,
): DurationState {
  if (!state) return { sum: sumMs, count, atMs: nowMs };
  const dt = nowMs - state.atMs;
  if (dt >= 0) {
    return {
      sum: decay(state.sum, dt, timeConstantMs) + sumMs,
      count: decay(state.count, dt, timeConstantMs) + count,
      atMs: nowMs,
    };
  }
  const w = Math.exp(dt / timeConstantMs);
  return { sum: state.sum + sumMs * w, count: state.count + count * w, atMs: state.atMs };
}

/** τ at nowMs in ms, or null when no call is left in the window. */
export function meanAt(state: DurationState | null, nowMs: number, timeConstantMs: number): number | null {
  if (!state) return null;
  const count = decay(state.count, nowMs - state.atMs, timeConstantMs);
  return count < MIN_TAU_WEIGHT ? null : decay(state.sum, nowMs - state.atMs, timeConstantMs) / count;
}

export class MemoryRateStore implements RateStore {
  private readonly states = new Map<string, RateState>();
  private readonly durations = new Map<string, DurationState>();

  constructor(
    private readonly timeConstantMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  arrive(fn: string): void {
    this.states.set(fn, addArrival(this.states.get(fn) ?? null, this.now(), this.timeConstantMs));
  }

  complete(fn: string, durationMs: number): void {
    this.durations.set(fn, addDurations(this.durations.get(fn) ?? null, 1, durationMs, this.now(), this.timeConstantMs));
  }

  async flush(): Promise<boolean> {
    return true;
  }

  async read() {
    const now = this.now();
    const rates = new Map<string, number>();
    for (const [fn, s] of this.states) rates.set(fn, rateAt(s, now, this.timeConstantMs));
    const taus = new Map<string, number>();
    for (const [fn, s] of this.durations) {
      const tau = meanAt(s, now, this.timeConstantMs);
      if (tau !== null) taus.set(fn, tau);
    }
    return { rates, taus, nodes: 1 };
  }
}
