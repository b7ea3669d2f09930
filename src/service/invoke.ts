// Synchronous invocation: find the function's pool, lease an instance (warm,
// or restored on the spot: a cold start), run the call on the engine, give
// the instance back reset. Every call is counted, timed and logged once.

import { BusyError, type CallResult, type Engine } from "../engine/engine.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { PoolEntry, PoolManager } from "../pool/manager.ts";
import { type Lease, OverloadedError, RetiredError } from "../pool/pool.ts";
import type { FunctionConfig, Registry } from "../registry/registry.ts";
import { type ErrorCode, ThawError } from "./errors.ts";

/** The metrics label of calls to names that are not deployed (no function name starts with "_"). */
export const UNKNOWN_FUNCTION = "_unknown";

export interface InvokeRequest {
  body: Uint8Array;
  env?: Record<string, string>;
}

export interface InvokeOutcome {
  result: CallResult;
  cold: boolean;
  version: number;
  config: FunctionConfig;
  /** "ok", or the function error this result is. */
  outcome: "ok" | ErrorCode;
  latencyNs: number;
}

export function classify(r: CallResult): InvokeOutcome["outcome"] {
  if (r.status === "timeout") return "function_timeout";
  if (r.status === "memory_limit") return "function_memory_limit";
  if (r.status !== "ok") return "function_trap";
  return r.exitCode === 0 ? "ok" : "function_exit";
}

export class InvokeService {
  private draining = false;

  constructor(
    private readonly registry: Registry,
    private readonly pools: PoolManager,
    private readonly load: (tenant: string, name: string) => PoolEntry | undefined,
    private readonly engine: Engine,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** Refuse new calls; calls already accepted run to the end. */
  drain(): void {
    this.draining = true;
  }

  async invoke(tenant: string, name: string, req: InvokeRequest): Promise<InvokeOutcome> {
    const started = Bun.nanoseconds();
    if (this.draining) throw new ThawError("shutting_down", "the server is shutting down", {}, 1);
    try {
      const outcome = await this.run(tenant, name, req, started);
      this.record(tenant, name, outcome.outcome, outcome);
      return outcome;
    } catch (e) {
      // A name that does not exist is any string a client sends: one series
      // per tenant for all of them keeps /metrics bounded by what is deployed.
      if (e instanceof ThawError) this.record(tenant, e.code === "function_not_found" ? UNKNOWN_FUNCTION : name, e.code);
      throw e;
    }
  }

  private async run(tenant: string, name: string, req: InvokeRequest, started: number): Promise<InvokeOutcome> {
    let entry = this.entryFor(tenant, name);
    this.pools.arrived(tenant, name);
    for (;;) {
      let lease: Lease;
      try {
        lease = await entry.pool.acquire();
      } catch (e) {
        if (e instanceof RetiredError) {
          entry = this.entryFor(tenant, name);
          continue;
        }
        if (e instanceof OverloadedError)
          throw new ThawError("overloaded", e.message, {}, e.retryAfterSeconds);
        throw new ThawError(
          "memory_exhausted",
          "no memory for an instance: the tenant's memory limit or the node's memory arena is used up",
          {},
          1,
        );
      }
      let result: CallResult | undefined;
      try {
        result = await this.engine.call(lease.instance, {
          stdin: req.body,
          argv0: name,
          env: { ...entry.config.env, ...req.env },
          resetAfter: true,
        });
      } catch (e) {
        if (e instanceof BusyError) throw new ThawError("overloaded", "the node's call queue is full", {}, 1);
        throw e;
      } finally {
        entry.pool.release(lease, result !== undefined && !result.instanceLost, result?.instanceReset);
        if (result) this.pools.completed(tenant, name, result.durationNs / 1e6);
      }
      return {
        result,
        cold: lease.cold,
        version: entry.pool.version,
        config: entry.config,
        outcome: classify(result),
        latencyNs: Bun.nanoseconds() - started,
      };
    }
  }

  private entryFor(tenant: string, name: string): PoolEntry {
    const entry = this.pools.get(tenant, name) ?? this.load(tenant, name);
    if (entry) return entry;
    const rec = this.registry.get(tenant, name);
    if (!rec) throw new ThawError("function_not_found", `no function "${name}"`);
    if (rec.status === "failed")
      throw new ThawError("function_failed", `function "${name}" failed to deploy: ${rec.error?.message ?? "unknown error"}`, {
        deployError: rec.error?.code,
      });
    throw new ThawError("function_not_ready", `function "${name}" is still compiling`, {}, 1);
  }

  /** Metric children per function and outcome, so a call does not hash labels. */
  private readonly series = new Map<string, { calls: { inc(): void }; errors?: { inc(): void } }>();
  private readonly timing = new Map<string, { cold: { inc(): void }; warm: { observe(v: number): void }; coldLatency: { observe(v: number): void } }>();

  private record(tenant: string, name: string, outcome: string, o?: InvokeOutcome): void {
    const key = `${tenant}\0${name}\0${outcome}`;
    let s = this.series.get(key);
    if (!s) {
      const labels = { tenant, function: name };
      s = {
        calls: this.metrics.calls.labels({ ...labels, outcome }),
        errors: outcome === "ok" ? undefined : this.metrics.errors.labels({ ...labels, code: outcome }),
      };
      this.series.set(key, s);
    }
    s.calls.inc();
    s.errors?.inc();
    if (o) {
      const tkey = `${tenant}\0${name}`;
      let t = this.timing.get(tkey);
      if (!t) {
        const labels = { tenant, function: name };
        t = {
          cold: this.metrics.coldStarts.labels(labels),
          warm: this.metrics.latency.labels({ ...labels, cold: "false" }),
          coldLatency: this.metrics.latency.labels({ ...labels, cold: "true" }),
        };
        this.timing.set(tkey, t);
      }
      if (o.cold) {
        t.cold.inc();
        t.coldLatency.observe(o.latencyNs / 1e9);
      } else t.warm.observe(o.latencyNs / 1e9);
    }
    if (!this.log.enabled("info")) return;
    this.log.info("call", {
      tenant,
      function: name,
      version: o?.version,
      durationMs: o ? Math.round(o.latencyNs / 1e3) / 1e3 : undefined,
      cold: o?.cold,
      outcome,
      exitCode: o?.result.exitCode,
    });
  }
}
