// Arrival rates shared across nodes. One interface, two stores: in memory
// for a single node, and Redis for a cluster (redis.ts).
//
// Every store uses the estimator of the warm-pool policy (pool/policy.ts):
// a decayed count, rate(t) = (1/T) Σ exp(-(t - t_i)/T) calls/s, which can be
// summed across nodes and updated in one step per batch. Arrivals are
// counted locally with no I/O and published in batches (flush), so nothing
// sits on the call path; a batch that cannot be published is kept for the
// next flush, never dropped.

import { addArrival, type RateState, rateAt } from "../pool/policy.ts";

export interface RateStore {
  /** Count one arrival of fn on this node: no I/O. */
  arrive(fn: string): void;
  /** Publish the arrivals counted since the last flush; false if they are kept for later. */
  flush(): Promise<boolean>;
  /** Cluster-wide arrival rate per function (calls/s) and the live nodes sharing them. */
  read(): Promise<{ rates: Map<string, number>; nodes: number }>;
  close(): Promise<void>;
}

/** The node's share of a cluster rate, the λ its own pools should be sized by. */
export const nodeShare = (clusterRate: number, nodes: number) => clusterRate / Math.max(1, nodes);

export class MemoryRateStore implements RateStore {
  private readonly states = new Map<string, RateState>();

  constructor(
    private readonly timeConstantMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  arrive(fn: string): void {
    this.states.set(fn, addArrival(this.states.get(fn) ?? null, this.now(), this.timeConstantMs));
  }

  async flush(): Promise<boolean> {
    return true;
  }

  async read() {
    const now = this.now();
    const rates = new Map<string, number>();
    for (const [fn, s] of this.states) rates.set(fn, rateAt(s, now, this.timeConstantMs));
    return { rates, nodes: 1 };
  }

  async close(): Promise<void> {}
}
