// Prometheus metrics for /metrics (prom-client). One registry per server so
// tests can run several servers in one process; gauges that describe the
// pools are computed when scraped, never maintained on the call path.

import { Counter, Gauge, Histogram, Registry } from "prom-client";

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface PoolGauge {
  tenant: string;
  function: string;
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
  budget(): { budgetBytes: number; plannedBytes: number };
}

export class Metrics {
  readonly registry = new Registry();
  readonly calls = new Counter({
    name: "thaw_calls_total",
    help: "Function calls by outcome (ok, or an error code)",
    labelNames: ["tenant", "function", "outcome"],
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: "thaw_call_errors_total",
    help: "Calls that ended in an error, by error code",
    labelNames: ["tenant", "function", "code"],
    registers: [this.registry],
  });
  readonly coldStarts = new Counter({
    name: "thaw_cold_starts_total",
    help: "Calls that found no warm instance and restored one",
    labelNames: ["tenant", "function"],
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: "thaw_call_duration_seconds",
    help: "Call latency inside thaw (acquire + run + reset)",
    labelNames: ["tenant", "function", "cold"],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly compiles = new Counter({
    name: "thaw_compiles_total",
    help: "Deploy builds by result",
    labelNames: ["result"],
    registers: [this.registry],
  });
  readonly compileSeconds = new Histogram({
    name: "thaw_compile_duration_seconds",
    help: "Time to compile and snapshot a module",
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });

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
    new Gauge({
      name: "thaw_engine_memory_bytes",
      help: "Memory held by loaded functions: native code plus instance state",
      registers: [this.registry],
      collect() {
        this.set(source.engineMemoryBytes());
      },
    });
  }
}
