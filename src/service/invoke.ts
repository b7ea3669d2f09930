// Synchronous invocation: find the function's pool, lease an instance (warm,
// or restored on the spot: a cold start), run the call on the engine, give
// the instance back reset. Every call is counted and timed; its stderr goes
// to the function's call log (src/logs/store.ts) and, as --access-log says,
// a line to the access log (src/logs/access.ts), both with the request id.
//
// Admission, in order:
//  - a tenant has at most `tenantConcurrency` calls in flight on this node
//    (waiting or running); past that a call is refused at once with 429
//    overloaded and Retry-After, so no tenant can take every thread,
//    instance and queue place of the node;
//  - a call waits at most `queueTimeoutMs` from its arrival for an instance
//    (the function at maxConcurrency) and then for a CPU slot (the
//    executor's fair queue); past that it leaves the queue without running:
//    429 overloaded with Retry-After;
//  - a call whose client disconnected (the request's AbortSignal) leaves
//    whichever queue it is in and never runs (499 client_closed, logged
//    and counted; nobody reads the answer). A call that has started runs
//    to its end.

import { randomUUID } from "node:crypto";
import type { Tier } from "../compiler/compile.ts";
import { BusyError, type CallResult, CancelledError, type Engine, QueueTimeoutError } from "../engine/engine.ts";
import type { Logger } from "../log.ts";
import { type AccessLog, AccessLogPolicy } from "../logs/access.ts";
import { CallLogs, type CallOutcome, logLimits } from "../logs/store.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { PoolEntry, PoolManager } from "../pool/manager.ts";
import { type Lease, OverloadedError, RetiredError, WaitAbortedError, WaitTimeoutError } from "../pool/pool.ts";
import type { FunctionConfig, Registry } from "../registry/registry.ts";
import { type ErrorCode, ThawError } from "./errors.ts";

/** The metrics label of calls to names that are not deployed (no function name starts with "_"). */
export const UNKNOWN_FUNCTION = "_unknown";

export interface InvokeRequest {
  body: Uint8Array;
  env?: Record<string, string>;
  /** Aborted when the client goes away: a call that has not started never does. */
  signal?: AbortSignal;
  /** The X-Request-Id of the request behind the call (the submitter's, for a job). */
  requestId?: string;
  /** The call's id in its log entry: the job's id for a job; new when absent. */
  callId?: string;
}

export interface InvokeOptions {
  /** Calls of one tenant in flight on this node at once (waiting or running). */
  tenantConcurrency: number;
  /** How long a call may wait for an instance and a CPU slot before it is refused (ms). */
  queueTimeoutMs: number;
  /** Which calls get an access-log line. */
  accessLog: AccessLog;
  /** Bytes of stderr kept in call logs on this node (0: none). */
  callLogBytes: number;
}

export const DEFAULT_QUEUE_TIMEOUT_MS = 2000;
export const DEFAULT_CALL_LOG_BYTES = 64 << 20;
/** How often the call logs of deleted functions are dropped. */
const LOG_SWEEP_MS = 60_000;

/** How a call that ran ended, in its call log. */
const LOG_OUTCOMES: Partial<Record<InvokeOutcome["outcome"], CallOutcome>> = {
  ok: "ok",
  function_exit: "exit",
  function_trap: "trap",
  function_timeout: "timeout",
  function_memory_limit: "memory_limit",
};

/** 64, or 4 calls per CPU slot on a node with more than 16. */
export const defaultTenantConcurrency = (threads: number) => Math.max(64, 4 * threads);

export interface InvokeOutcome {
  result: CallResult;
  cold: boolean;
  version: number;
  /** The code the call ran on: fast until the optimized build swaps in. */
  tier: Tier;
  config: FunctionConfig;
  /** "ok", or the function error this result is. */
  outcome: "ok" | ErrorCode;
  latencyNs: number;
}

const clientClosed = () => new ThawError("client_closed", "the client closed the connection before the call started");

export function classify(r: CallResult): InvokeOutcome["outcome"] {
  if (r.status === "timeout") return "function_timeout";
  if (r.status === "memory_limit") return "function_memory_limit";
  if (r.status !== "ok") return "function_trap";
  return r.exitCode === 0 ? "ok" : "function_exit";
}

export class InvokeService {
  private draining = false;
  /** Calls in flight per tenant (admitted, not yet answered). */
  private readonly inFlight = new Map<string, number>();
  private readonly options: InvokeOptions;
  private readonly accessLog: AccessLogPolicy;
  /** Each function's recent stderr (GET /v1/functions/{name}/logs). */
  readonly logs: CallLogs;

  constructor(
    private readonly registry: Registry,
    private readonly pools: PoolManager,
    private readonly load: (tenant: string, name: string) => PoolEntry | undefined,
    private readonly engine: Engine,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    options: Partial<InvokeOptions> = {},
  ) {
    this.options = {
      tenantConcurrency: options.tenantConcurrency ?? defaultTenantConcurrency(engine.threads),
      queueTimeoutMs: options.queueTimeoutMs ?? DEFAULT_QUEUE_TIMEOUT_MS,
      accessLog: options.accessLog ?? { mode: "errors" },
      callLogBytes: options.callLogBytes ?? DEFAULT_CALL_LOG_BYTES,
    };
    this.accessLog = new AccessLogPolicy(this.options.accessLog);
    this.logs = new CallLogs(logLimits(this.options.callLogBytes), (t, n) => registry.get(t, n)?.createdAt);
    setInterval(() => this.logs.sweep(), LOG_SWEEP_MS).unref();
  }

  /** Calls of `tenant` in flight on this node now. */
  tenantInFlight(tenant: string): number {
    return this.inFlight.get(tenant) ?? 0;
  }

  /** Refuse new calls; calls already accepted run to the end. */
  drain(): void {
    this.draining = true;
  }

  async invoke(tenant: string, name: string, req: InvokeRequest): Promise<InvokeOutcome> {
    return this.start(tenant, name, req);
  }

  /**
   * `invoke`, without a promise when none is needed: the outcome itself
   * when the call got an instance at once and the engine finished it
   * before returning (a short call it ran inline), else a promise of it.
   * A call refused before it runs throws. For the HTTP route, where every
   * promise hop is a turn of the event loop per call.
   */
  start(tenant: string, name: string, req: InvokeRequest): InvokeOutcome | Promise<InvokeOutcome> {
    // performance.now(), not Bun.nanoseconds(): the queue deadline is on that clock anyway, and it costs a native call less.
    const started = performance.now();
    if (this.draining) throw new ThawError("shutting_down", "the server is shutting down", {}, 1);
    let entry: PoolEntry;
    try {
      entry = this.entryFor(tenant, name);
      this.admit(tenant);
    } catch (e) {
      throw this.failed(tenant, name, req, e);
    }
    let o: InvokeOutcome | Promise<InvokeOutcome>;
    try {
      this.pools.arrived(entry.key);
      o = this.take(tenant, name, entry, req, started, started + this.options.queueTimeoutMs);
    } catch (e) {
      throw this.refused(tenant, name, req, e);
    }
    if (!(o instanceof Promise)) return this.answered(tenant, name, req, o);
    return o.then(
      (o) => this.answered(tenant, name, req, o),
      (e) => {
        throw this.refused(tenant, name, req, e);
      },
    );
  }

  /** Counts the call in its tenant's calls in flight, or refuses it when they are at the limit. */
  private admit(tenant: string): void {
    const inFlight = this.inFlight.get(tenant) ?? 0;
    if (inFlight >= this.options.tenantConcurrency)
      throw new ThawError(
        "overloaded",
        `tenant has ${inFlight} calls in flight on this node, its limit (--tenant-concurrency)`,
        { reason: "tenant_concurrency", limit: this.options.tenantConcurrency },
        1,
      );
    this.inFlight.set(tenant, inFlight + 1);
  }

  private leave(tenant: string): void {
    const n = (this.inFlight.get(tenant) ?? 1) - 1;
    if (n > 0) this.inFlight.set(tenant, n);
    else this.inFlight.delete(tenant);
  }

  /** An admitted call that ran: counted, timed, its stderr kept. */
  private answered(tenant: string, name: string, req: InvokeRequest, o: InvokeOutcome): InvokeOutcome {
    this.leave(tenant);
    this.record(tenant, name, o.outcome, req, o);
    if (o.outcome !== "ok" || o.result.stderr.length > 0) this.keepLog(tenant, name, req, o);
    return o;
  }

  /** An admitted call that did not get to run (or the engine failed it): `e`, counted. */
  private refused(tenant: string, name: string, req: InvokeRequest, e: unknown): unknown {
    this.leave(tenant);
    return this.failed(tenant, name, req, e);
  }

  private failed(tenant: string, name: string, req: InvokeRequest, e: unknown): unknown {
    // A name that does not exist is any string a client sends: one series
    // per tenant for all of them keeps /metrics bounded by what is deployed.
    if (e instanceof ThawError) this.record(tenant, e.code === "function_not_found" ? UNKNOWN_FUNCTION : name, e.code, req);
    return e;
  }

  private keepLog(tenant: string, name: string, req: InvokeRequest, o: InvokeOutcome): void {
    this.logs.append(tenant, name, {
      callId: req.callId ?? randomUUID(),
      requestId: req.requestId,
      outcome: LOG_OUTCOMES[o.outcome] ?? "trap",
      exitCode: o.result.exitCode,
      trap: o.outcome === "function_trap" ? o.result.status : undefined,
      stderr: o.result.stderr,
      stderrTruncated: o.result.stderrTruncated,
      version: o.version,
      durationMs: o.result.durationNs / 1e6,
    });
  }

  private queueTimeout(waitedFor: "an instance" | "a CPU slot"): ThawError {
    const ms = this.options.queueTimeoutMs;
    return new ThawError(
      "overloaded",
      `the call waited ${ms} ms for ${waitedFor} without starting (--queue-timeout)`,
      { reason: "queue_timeout", queueTimeoutMs: ms },
      Math.max(1, Math.ceil(ms / 1000)),
    );
  }

  /** An instance of the function's current pool, then the call on it; a promise only where one of them has to wait. */
  private take(
    tenant: string,
    name: string,
    entry: PoolEntry,
    req: InvokeRequest,
    started: number,
    deadline: number,
  ): InvokeOutcome | Promise<InvokeOutcome> {
    for (;;) {
      let lease: Lease | Promise<Lease>;
      try {
        lease = entry.pool.acquire({ signal: req.signal, deadline });
      } catch (e) {
        if (!(e instanceof RetiredError)) throw this.acquireError(e);
        entry = this.entryFor(tenant, name);
        continue;
      }
      if (lease instanceof Promise) return this.waited(tenant, name, entry, lease, req, started, deadline);
      return this.run(name, entry, lease, req, started, deadline);
    }
  }

  /** The call, once the pool has an instance for it; a pool replaced meanwhile sends it to its successor. */
  private async waited(
    tenant: string,
    name: string,
    entry: PoolEntry,
    waiting: Promise<Lease>,
    req: InvokeRequest,
    started: number,
    deadline: number,
  ): Promise<InvokeOutcome> {
    let lease: Lease;
    try {
      lease = await waiting;
    } catch (e) {
      if (!(e instanceof RetiredError)) throw this.acquireError(e);
      return this.take(tenant, name, this.entryFor(tenant, name), req, started, deadline);
    }
    return this.run(name, entry, lease, req, started, deadline);
  }

  private acquireError(e: unknown): ThawError {
    if (e instanceof OverloadedError) return new ThawError("overloaded", e.message, { reason: "queue_full" }, e.retryAfterSeconds);
    if (e instanceof WaitTimeoutError) return this.queueTimeout("an instance");
    if (e instanceof WaitAbortedError) return clientClosed();
    return new ThawError(
      "memory_exhausted",
      "no memory for an instance: the tenant's memory limit or the node's memory arena is used up",
      {},
      1,
    );
  }

  private run(
    name: string,
    entry: PoolEntry,
    lease: Lease,
    req: InvokeRequest,
    started: number,
    deadline: number,
  ): InvokeOutcome | Promise<InvokeOutcome> {
    let call: CallResult | Promise<CallResult>;
    try {
      call = this.engine.callNow(lease.instance, {
        stdin: req.body,
        argv0: name,
        // The config's own object when the call adds nothing: no copy per call.
        env: req.env ? { ...entry.config.env, ...req.env } : entry.config.env,
        resetAfter: true,
        tenant: entry.tenantId,
        function: entry.functionId,
        signal: req.signal,
        queueDeadline: deadline,
      });
    } catch (e) {
      throw this.notRun(entry, lease, e);
    }
    // A call the engine ran inline has its result already: its outcome now, not a turn of the event loop later.
    if (!(call instanceof Promise)) return this.ran(entry, lease, call, started);
    return call.then(
      (result) => this.ran(entry, lease, result, started),
      (e) => {
        throw this.notRun(entry, lease, e);
      },
    );
  }

  private ran(entry: PoolEntry, lease: Lease, result: CallResult, started: number): InvokeOutcome {
    entry.pool.release(lease, !result.instanceLost, result.instanceReset);
    this.pools.completed(entry.key, result.durationNs / 1e6);
    return {
      result,
      cold: lease.cold,
      version: entry.pool.version,
      tier: entry.pool.code?.tier ?? "optimized",
      config: entry.config,
      outcome: classify(result),
      latencyNs: Math.round((performance.now() - started) * 1e6),
    };
  }

  /** The instance back after a call that failed (`e`), and what the caller is told. */
  private notRun(entry: PoolEntry, lease: Lease, e: unknown): unknown {
    // Taken back before it started: the instance is as the pool gave it.
    if (e instanceof QueueTimeoutError || e instanceof CancelledError || e instanceof BusyError) entry.pool.release(lease, true, true, false);
    else entry.pool.release(lease, false, undefined);
    if (e instanceof BusyError) return new ThawError("overloaded", "the node's call queue is full", { reason: "queue_full" }, 1);
    if (e instanceof QueueTimeoutError) return this.queueTimeout("a CPU slot");
    if (e instanceof CancelledError) return clientClosed();
    return e;
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

  private record(tenant: string, name: string, outcome: string, req: InvokeRequest, o?: InvokeOutcome): void {
    const calls = this.metrics.calls.of(tenant, name);
    calls.count(outcome);
    if (o) calls.observe(o.cold, o.latencyNs / 1e9);
    const ok = outcome === "ok";
    if (!this.accessLog.wants(ok) || !this.log.enabled(ok ? "info" : "warn")) return;
    this.log[ok ? "info" : "warn"]("call", {
      tenant,
      function: name,
      version: o?.version,
      durationMs: o ? Math.round(o.latencyNs / 1e3) / 1e3 : undefined,
      cold: o?.cold,
      outcome,
      exitCode: o?.result.exitCode,
      requestId: req.requestId,
      callId: req.callId,
    });
  }
}
