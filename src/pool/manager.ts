// The warm pools of every loaded function on this node, driven by the warm
// policy (policy.ts): each call feeds λ and τ, and a periodic tick applies
// the plan -- pre-restore instances up to each function's budgeted target
// (so calls find one ready), free idle ones when the budget binds or the
// function went quiet (idleToKeep), give idle instances' written pages back
// to the OS after a retention delay, and unload the code of functions idle
// past the code grace period.
//
// Activating a new version, or the optimized code of the same version,
// swaps the pool atomically: new calls go to the new pool, calls in flight
// finish on the old one, which then frees itself (FunctionPool.retire). An unloaded function is loaded again by the next
// call (FunctionService.ensureLoaded), which is then a cold start.

import type { LoadedModule } from "../engine/engine.ts";
import { nodeShare, type RateStore } from "../rates/store.ts";
import type { FunctionConfig } from "../registry/registry.ts";
import type { FunctionPlan, Plan, WarmPolicy } from "./policy.ts";
import { FunctionPool, type PoolCode } from "./pool.ts";

export interface PoolEntry {
  tenant: string;
  name: string;
  /** poolKey(tenant, name), built once: calls feed the policy under it. */
  key: string;
  config: FunctionConfig;
  pool: FunctionPool;
  /** The executor's ids for the fair queue (libthaw numbers tenants and functions). */
  tenantId: number;
  functionId: number;
}

export interface ManagerOptions {
  maxWaiting: number;
  /** How long an idle instance keeps its written pages (ms). */
  retentionMs: number;
  tickMs: number;
}

export const poolKey = (tenant: string, name: string) => `${tenant}/${name}`;

/** Idle instances a function keeps after a plan tick (plan.warm is what is
 * pre-restored). Instances past it that real demand created stay while the
 * budget does not bind -- the paper trims "when the sum would exceed the
 * budget" -- and go when the policy trimmed this function, wants none of it
 * (idle past its grace), or the node's idle instances exceed the budget. */
export function idleToKeep(fp: FunctionPlan | undefined, idle: number, overBudget: boolean): number {
  if (!fp) return 0;
  if (fp.k === 0 || fp.trimmed > 0 || overBudget) return fp.warm;
  return Math.max(idle, fp.warm);
}

/** Whether the idle instances held now, priced by the plan, exceed its budget. */
export function idleOverBudget(plan: Plan, idleOf: (fn: string) => number): boolean {
  let bytes = 0;
  for (const [fn, fp] of plan.functions) bytes += idleOf(fn) * fp.mInst;
  return bytes > plan.budgetBytes;
}

export class PoolManager {
  private readonly entries = new Map<string, PoolEntry>();
  /** The same entries by tenant, then name: a call finds its pool without building its key. */
  private readonly byTenant = new Map<string, Map<string, PoolEntry>>();
  /** Memory-pool tenant ids (libthaw's partitions are numbered); 0 is the node's own. */
  private readonly tenantIds = new Map<string, number>();
  /** Function ids for the executor's fair queue, per tenant/name, kept across versions. */
  private readonly functionIds = new Map<string, number>();
  private nextFunctionId = 1;
  private lastPlan?: Plan;
  private codeUnloads = 0;
  private readonly timer: ReturnType<typeof setInterval>;
  private rateTimer?: ReturnType<typeof setInterval>;

  constructor(
    readonly policy: WarmPolicy,
    private readonly options: ManagerOptions,
    /** Called every tick: the memory pool's return-to-OS policy. */
    private readonly maintainMemory: () => void = () => {},
    /** The cluster's arrival rates and call durations (Redis), synced every second. */
    private readonly rates?: RateStore,
  ) {
    this.timer = setInterval(() => this.tick(), options.tickMs).unref();
    if (rates) this.rateTimer = setInterval(() => void this.syncRates(), 1000).unref();
  }

  activate(tenant: string, name: string, module: LoadedModule, config: FunctionConfig, version: number, code?: PoolCode): PoolEntry {
    const key = poolKey(tenant, name);
    const pool = new FunctionPool(
      module,
      { maxConcurrency: config.maxConcurrency, maxWaiting: this.options.maxWaiting, maxIdle: config.maxConcurrency },
      version,
      code,
    );
    const stats = module.stats();
    this.policy.setMaxConcurrency(key, config.maxConcurrency);
    this.policy.setMemory(key, { linBytes: stats.instanceBytes, codeBytes: stats.codeBytes });
    this.policy.touch(key, Date.now());
    let functionId = this.functionIds.get(key);
    if (functionId === undefined) {
      functionId = this.nextFunctionId++;
      this.functionIds.set(key, functionId);
    }
    const entry = { tenant, name, key, config, pool, tenantId: this.tenantId(tenant), functionId };
    const old = this.entries.get(key);
    if (old?.pool.version === version) pool.inherit(old.pool);
    this.put(entry);
    old?.pool.retire();
    this.apply(entry, this.policy.plan(Date.now()), false);
    return entry;
  }

  tenantId(tenant: string): number {
    let id = this.tenantIds.get(tenant);
    if (id === undefined) {
      id = this.tenantIds.size + 1;
      this.tenantIds.set(tenant, id);
    }
    return id;
  }

  tenants(): [string, number][] {
    return [...this.tenantIds];
  }

  get(tenant: string, name: string): PoolEntry | undefined {
    return this.byTenant.get(tenant)?.get(name);
  }

  private put(entry: PoolEntry): void {
    this.entries.set(entry.key, entry);
    let names = this.byTenant.get(entry.tenant);
    if (!names) {
      names = new Map();
      this.byTenant.set(entry.tenant, names);
    }
    names.set(entry.name, entry);
  }

  private drop(entry: PoolEntry): void {
    this.entries.delete(entry.key);
    const names = this.byTenant.get(entry.tenant);
    names?.delete(entry.name);
    if (names?.size === 0) this.byTenant.delete(entry.tenant);
  }

  /** A call of `key` (poolKey) arrived: feeds λ, here and (batched) in the cluster's rate store. */
  arrived(key: string, nowMs = Date.now()): void {
    this.policy.recordArrival(key, nowMs);
    this.rates?.arrive(key);
  }

  /** Publish this node's arrivals and durations, and plan by its share of
   * the cluster's rates and by the cluster's τ; when the store cannot be
   * read, plan by local rates and τ again. */
  async syncRates(): Promise<void> {
    if (!this.rates) return;
    await this.rates.flush();
    let read: Awaited<ReturnType<RateStore["read"]>> | undefined;
    try {
      read = await this.rates.read();
    } catch {
      read = undefined;
    }
    const now = Date.now();
    for (const key of this.entries.keys()) {
      const rate = read?.rates.get(key);
      this.policy.setClusterRate(key, read ? nodeShare(rate ?? 0, read.nodes) : null, now);
      this.policy.setClusterTau(key, read?.taus.get(key) ?? null);
    }
  }

  /** A call of `key` (poolKey) finished after durationMs: feeds τ, here and (batched) in the cluster's store. */
  completed(key: string, durationMs: number, nowMs = Date.now()): void {
    this.policy.recordDuration(key, durationMs, nowMs);
    this.rates?.complete(key, durationMs);
  }

  remove(tenant: string, name: string): void {
    const key = poolKey(tenant, name);
    const entry = this.entries.get(key);
    if (entry) {
      entry.pool.retire();
      this.drop(entry);
    }
    this.functionIds.delete(key);
    this.policy.forget(key);
  }

  all(): PoolEntry[] {
    return [...this.entries.values()];
  }

  plan(): Plan {
    this.lastPlan ??= this.policy.plan(Date.now());
    return this.lastPlan;
  }

  get unloads(): number {
    return this.codeUnloads;
  }

  /** Apply the current plan to every pool. */
  tick(): void {
    const now = Date.now();
    const plan = this.policy.plan(now);
    this.lastPlan = plan;
    const overBudget = idleOverBudget(plan, (key) => this.entries.get(key)?.pool.idleCount ?? 0);
    this.maintainMemory();
    for (const [key, entry] of this.entries) {
      const fp = plan.functions.get(key);
      if (fp?.unloadCode && entry.pool.inFlight === 0) {
        entry.pool.retire();
        this.drop(entry);
        this.codeUnloads++;
        continue;
      }
      this.apply(entry, plan, overBudget);
      entry.pool.releaseIdleMemory(now - this.options.retentionMs);
      this.measure(key, entry);
    }
  }

  private apply(entry: PoolEntry, plan: Plan, overBudget: boolean): void {
    const fp = plan.functions.get(poolKey(entry.tenant, entry.name));
    entry.pool.trim(idleToKeep(fp, entry.pool.idleCount, overBudget));
    entry.pool.prewarm(fp?.warm ?? 0);
  }

  /** M_lin from the engine: an idle instance's heap plus its kept working set. */
  private measure(key: string, entry: PoolEntry): void {
    const sampled = entry.pool.sampleIdleBytes();
    if (sampled === undefined) return;
    const stats = entry.pool.module.stats();
    this.policy.setMemory(key, { linBytes: stats.instanceBytes + sampled, codeBytes: stats.codeBytes });
  }

  close(): void {
    clearInterval(this.timer);
    clearInterval(this.rateTimer);
    for (const e of this.entries.values()) e.pool.retire();
    this.entries.clear();
    this.byTenant.clear();
  }
}
