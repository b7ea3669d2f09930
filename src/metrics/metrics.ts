// Prometheus metrics for /metrics (prom-client). One registry per server so
// tests can run several servers in one process; gauges that describe the
// pools are computed when scraped, never maintained on the call path.
// Per-function series live as long as their function: a deleted function's
// are removed, so a scrape lists only what exists (calls to names that do
// not exist share one `_unknown` series per tenant, service/invoke.ts).

import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { MemoryPoolStats, TenantMemoryStats } from "../engine/engine.ts";
import { CallMetrics } from "./calls.ts";
import { JobMetrics } from "./jobs.ts";

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface PoolGauge {
  tenant: string;
  function: string;
  /** The compiler tier of the code the pool runs (fast, optimized). */
  tier: string;
  warm: number;
  busy: number;
  waiting: number;
  lambda: number;
  tauSeconds: number;
  target: number;
  mInstBytes: number;
}

export interface PoolGaugeSource {
  pools(): PoolGauge[];
  engineMemoryBytes(): number;
  /** Calls run inline on the event loop, and inline calls moved to a worker (engine.ts). */
  inlineCalls(): { calls: number; moved: number };
  budget(): { budgetBytes: number; plannedBytes: number };
  memory(): { pool: MemoryPoolStats; tenants: ({ tenant: string } & Partial<TenantMemoryStats>)[] };
}

export class Metrics {
  readonly registry = new Registry();
  /** thaw_calls_total, thaw_call_errors_total, thaw_cold_starts_total, thaw_call_duration_seconds (calls.ts). */
  readonly calls = new CallMetrics(this.registry, LATENCY_BUCKETS);
  readonly compiles = new Counter({
    name: "thaw_compiles_total",
    help: "Deploy builds by result",
    labelNames: ["result"],
    registers: [this.registry],
  });
  readonly compileSeconds = new Histogram({
    name: "thaw_compile_duration_seconds",
    help: "Time to compile and snapshot a module (either tier)",
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  /** thaw_compiles_total counts the builds that make deploys callable; these replace fast code later. */
  readonly tierUpgrades = new Counter({
    name: "thaw_tier_upgrades_total",
    help: "Background optimized builds of functions serving fast-tier code, by result",
    labelNames: ["result"],
    registers: [this.registry],
  });
  readonly clusterArtifacts = new Counter({
    name: "thaw_cluster_artifacts_total",
    help: "Compiled artifacts shared through the cluster's Redis, by direction (uploaded, downloaded)",
    labelNames: ["direction"],
    registers: [this.registry],
  });

  /** thaw_job_attempts_total, thaw_jobs_finished_total, thaw_job_queue_seconds (jobs.ts). */
  readonly jobs = new JobMetrics(this.registry, [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]);

  constructor(source: PoolGaugeSource) {
    const perPool = (name: string, help: string, pick: (p: ReturnType<PoolGaugeSource["pools"]>[number]) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ["tenant", "function"],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const p of source.pools()) this.set({ tenant: p.tenant, function: p.function }, pick(p));
        },
      });
    new Gauge({
      name: "thaw_function_tier",
      help: "1 for the compiler tier (fast, optimized) of the code each loaded function runs",
      labelNames: ["tenant", "function", "tier"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const p of source.pools()) this.set({ tenant: p.tenant, function: p.function, tier: p.tier }, 1);
      },
    });
    perPool("thaw_warm_instances", "Idle instances ready for a call", (p) => p.warm);
    perPool("thaw_busy_instances", "Instances running a call", (p) => p.busy);
    perPool("thaw_waiting_calls", "Calls waiting for a concurrency slot", (p) => p.waiting);
    perPool("thaw_pool_arrival_rate", "λ: smoothed arrivals per second", (p) => p.lambda);
    perPool("thaw_pool_call_seconds", "τ: smoothed call duration", (p) => p.tauSeconds);
    perPool("thaw_pool_target_instances", "Warm instances the policy holds after the budget", (p) => p.target);
    perPool("thaw_pool_instance_bytes", "M_inst: memory per warm instance (eq. 2)", (p) => p.mInstBytes);
    new Gauge({
      name: "thaw_pool_budget_bytes",
      help: "B: bytes for warm instances, and the part the plan uses",
      labelNames: ["kind"],
      registers: [this.registry],
      collect() {
        const b = source.budget();
        this.set({ kind: "budget" }, b.budgetBytes);
        this.set({ kind: "planned" }, b.plannedBytes);
      },
    });
    const pool = (name: string, help: string, labelNames: string[], fill: (g: Gauge, m: ReturnType<PoolGaugeSource["memory"]>) => void) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect() {
          this.reset();
          fill(this, source.memory());
        },
      });
    pool("thaw_memory_pool_bytes", "Linear-memory pool: arena, used, committed (touched, not returned), reserved for tenants", ["kind"], (g, m) => {
      g.set({ kind: "arena" }, m.pool.arenaBytes);
      g.set({ kind: "used" }, m.pool.usedBytes);
      g.set({ kind: "committed" }, m.pool.committedBytes);
      g.set({ kind: "reserved" }, m.pool.reservedBytes);
    });
    pool("thaw_memory_pool_fragmentation_ratio", "Wasted / allocated bytes of live blocks (power-of-two rounding)", [], (g, m) =>
      g.set(m.pool.fragmentation),
    );
    pool("thaw_memory_pool_events", "Pool events since start: huge-page blocks, returns to the OS, refusals", ["event"], (g, m) => {
      g.set({ event: "huge_page_blocks" }, m.pool.hugeBlocks);
      g.set({ event: "os_returns" }, m.pool.osReturns);
      g.set({ event: "os_return_bytes" }, m.pool.osReturnBytes);
      g.set({ event: "failed_tenant_limit" }, m.pool.failLimit);
      g.set({ event: "failed_no_space" }, m.pool.failSpace);
    });
    pool("thaw_memory_pool_alloc_latency", "Allocation count by latency bucket (upper bound in seconds; +Inf: 1 ms or more)", ["le"], (g, m) => {
      let cumulative = 0;
      m.pool.latencyBuckets.forEach((count, i) => {
        cumulative += count;
        const le = i === m.pool.latencyBuckets.length - 1 ? "+Inf" : String(2 ** (i + 6) / 1e9);
        g.set({ le }, cumulative);
      });
    });
    pool("thaw_memory_tenant_bytes", "Per tenant: pool bytes used, reserved, and its limit", ["tenant", "kind"], (g, m) => {
      for (const t of m.tenants) {
        g.set({ tenant: t.tenant, kind: "used" }, t.usedBytes ?? 0);
        g.set({ tenant: t.tenant, kind: "reserved" }, t.reservedBytes ?? 0);
        if (t.limitBytes !== undefined && t.limitBytes < Number.MAX_SAFE_INTEGER) g.set({ tenant: t.tenant, kind: "limit" }, t.limitBytes);
      }
    });
    new Counter({
      name: "thaw_inline_calls_total",
      help: "Calls run on the event loop's thread (outcome ran), and those moved to a worker after starting there (outcome moved: over budget, a sleep, or deep recursion)",
      labelNames: ["outcome"],
      registers: [this.registry],
      collect() {
        const n = source.inlineCalls();
        this.reset();
        this.inc({ outcome: "ran" }, n.calls);
        this.inc({ outcome: "moved" }, n.moved);
      },
    });
    new Gauge({
      name: "thaw_engine_memory_bytes",
      help: "Memory held by loaded functions: native code plus instance state",
      registers: [this.registry],
      collect() {
        this.set(source.engineMemoryBytes());
      },
    });
  }

  /** Removes every series of a deleted function (the pool gauges follow by themselves: they list live pools). */
  forgetFunction(tenant: string, name: string): void {
    this.calls.forget(tenant, name);
  }
}
