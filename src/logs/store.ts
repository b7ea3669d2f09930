// Call logs: the stderr of calls, kept per function in memory on the node
// that ran them, for GET /v1/functions/{name}/logs.
//
// What is kept: every call that ran and failed (exit, trap, timeout, memory
// limit) -- with or without stderr, so a user sees traps and timeouts --
// and every successful call that wrote to stderr. A successful call with
// an empty stderr has nothing to show (the metrics count it) and costs
// nothing here. Calls refused before they ran (429, 503, 404) have no
// stderr and are not call logs; they are in the access log (log.ts).
//
// Bounds, so that logs are memory a tenant cannot grow or take from others:
//  - an entry keeps at most `entryBytes` of stderr (its head, like the
//    engine's cap; `truncated` says so);
//  - a function keeps at most `functionEntries` entries and `functionBytes`;
//  - a tenant at most `tenantBytes` over all its functions: past it, its own
//    largest function gives way;
//  - the node at most `nodeBytes`: past it, the largest tenant's largest
//    function gives way (max-min fairness). A tenant that spams stderr is
//    the largest and evicts its own logs; a tenant holding less than the
//    others loses nothing to it.
// Eviction drops the oldest entries. Stderr is kept as bytes and decoded at
// read time, so the call path only copies a reference.
//
// Sequence numbers are per function and per process, from 1; `since` is
// exclusive. A `since` past the newest number means the node restarted (or
// the function was deleted and deployed again): reading starts over from
// the oldest entry. A function's logs live as long as the function: a
// generation (its record's createdAt) tells a redeploy after a delete from
// the same function, and a sweep drops the logs of deleted functions.
// In memory, per node: a restart loses them, and in a cluster each node
// serves the calls it ran.

export interface LogLimits {
  entryBytes: number;
  functionEntries: number;
  functionBytes: number;
  tenantBytes: number;
  nodeBytes: number;
}

export const MAX_READ = 1000;
export const DEFAULT_READ = 100;

/** The bounds for a node that keeps `nodeBytes` of call logs. */
export function logLimits(nodeBytes: number): LogLimits {
  const functionBytes = Math.min(1 << 20, nodeBytes);
  return {
    entryBytes: Math.min(64 << 10, Math.floor(functionBytes / 4)),
    functionEntries: MAX_READ,
    functionBytes,
    tenantBytes: Math.min(8 << 20, nodeBytes),
    nodeBytes,
  };
}

/** How a call that ran ended: its function error without the "function_". */
export type CallOutcome = "ok" | "exit" | "trap" | "timeout" | "memory_limit";

/** What a call left for its log. */
export interface CallRecord {
  callId: string;
  requestId?: string;
  outcome: CallOutcome;
  exitCode: number;
  /** The trap, for outcome "trap". */
  trap?: string;
  stderr: Uint8Array;
  /** The engine cut stderr at its cap. */
  stderrTruncated: boolean;
  version: number;
  durationMs: number;
}

interface Entry extends CallRecord {
  seq: number;
  time: number;
  truncated: boolean;
  bytes: number;
}

/** A log entry as the API shows it. */
export interface LogEntryView {
  seq: number;
  time: string;
  callId: string;
  requestId: string | null;
  outcome: CallOutcome;
  exitCode: number;
  trap?: string;
  stderr: string;
  truncated: boolean;
  version: number;
  durationMs: number;
}

/** Bookkeeping per entry besides its stderr: ids, numbers, the object itself. */
const ENTRY_OVERHEAD = 256;

class Ring {
  readonly entries: Entry[] = [];
  bytes = 0;
  seq = 0;
  constructor(
    readonly tenant: string,
    readonly name: string,
    readonly generation: string,
  ) {}
}

interface TenantLogs {
  bytes: number;
  rings: Set<Ring>;
}

const key = (tenant: string, name: string) => `${tenant}\0${name}`;
const decoder = new TextDecoder();

export class CallLogs {
  private readonly rings = new Map<string, Ring>();
  private readonly tenants = new Map<string, TenantLogs>();
  private bytes = 0;

  /**
   * `generation` gives a function's current generation, or undefined when it
   * does not exist: logs of another generation are a deleted function's.
   */
  constructor(
    private readonly limits: LogLimits,
    private readonly generation: (tenant: string, name: string) => string | undefined,
  ) {}

  get enabled(): boolean {
    return this.limits.nodeBytes > 0;
  }

  /** Bytes held now, in all. */
  get size(): number {
    return this.bytes;
  }

  append(tenant: string, name: string, call: CallRecord): void {
    if (!this.enabled) return;
    const ring = this.ring(tenant, name);
    if (!ring) return;
    const cut = call.stderr.length > this.limits.entryBytes;
    const stderr = cut ? call.stderr.slice(0, this.limits.entryBytes) : call.stderr;
    const bytes = ENTRY_OVERHEAD + stderr.byteLength + call.callId.length + (call.requestId?.length ?? 0);
    const entry: Entry = { ...call, stderr, seq: ++ring.seq, time: Date.now(), truncated: cut || call.stderrTruncated, bytes };
    ring.entries.push(entry);
    this.account(ring, bytes);
    while (ring.entries.length > this.limits.functionEntries || ring.bytes > this.limits.functionBytes) this.evictOldest(ring);
    const own = this.tenants.get(tenant)!;
    while (own.bytes > this.limits.tenantBytes) this.evictOldest(largest(own.rings));
    while (this.bytes > this.limits.nodeBytes) this.evictOldest(largest(this.largestTenant().rings));
  }

  /** Entries after `since` (oldest first), at most `limit`; undefined when the function does not exist. */
  read(tenant: string, name: string, since: number, limit: number): { entries: LogEntryView[]; next: number } | undefined {
    const generation = this.generation(tenant, name);
    if (generation === undefined) {
      this.forget(tenant, name);
      return undefined;
    }
    const ring = this.rings.get(key(tenant, name));
    if (!ring || ring.generation !== generation) return { entries: [], next: 0 };
    const from = since > ring.seq ? 0 : since;
    const start = ring.entries.findIndex((e) => e.seq > from);
    const picked = start < 0 ? [] : ring.entries.slice(start, start + Math.min(limit, MAX_READ));
    return { entries: picked.map(view), next: picked.length ? picked[picked.length - 1]!.seq : from };
  }

  forget(tenant: string, name: string): void {
    const ring = this.rings.get(key(tenant, name));
    if (!ring) return;
    while (ring.entries.length) this.evictOldest(ring);
    this.rings.delete(key(tenant, name));
    const own = this.tenants.get(tenant);
    own?.rings.delete(ring);
    if (own && own.rings.size === 0) this.tenants.delete(tenant);
  }

  /** Drops the logs of functions that no longer exist (or exist again, deployed anew). */
  sweep(): void {
    for (const ring of [...this.rings.values()])
      if (this.generation(ring.tenant, ring.name) !== ring.generation) this.forget(ring.tenant, ring.name);
  }

  /** The function's ring, a new one when it has none or one of a deleted generation; undefined when it does not exist. */
  private ring(tenant: string, name: string): Ring | undefined {
    const k = key(tenant, name);
    const ring = this.rings.get(k);
    const generation = this.generation(tenant, name);
    if (ring && ring.generation === generation) return ring;
    if (ring) this.forget(tenant, name);
    if (generation === undefined) return undefined;
    const fresh = new Ring(tenant, name, generation);
    this.rings.set(k, fresh);
    let own = this.tenants.get(tenant);
    if (!own) this.tenants.set(tenant, (own = { bytes: 0, rings: new Set() }));
    own.rings.add(fresh);
    return fresh;
  }

  private account(ring: Ring, bytes: number): void {
    ring.bytes += bytes;
    this.tenants.get(ring.tenant)!.bytes += bytes;
    this.bytes += bytes;
  }

  private evictOldest(ring: Ring): void {
    const gone = ring.entries.shift();
    if (gone) this.account(ring, -gone.bytes);
  }

  private largestTenant(): TenantLogs {
    let max: TenantLogs | undefined;
    for (const t of this.tenants.values()) if (!max || t.bytes > max.bytes) max = t;
    return max!;
  }
}

function largest(rings: Set<Ring>): Ring {
  let max: Ring | undefined;
  for (const r of rings) if (!max || r.bytes > max.bytes) max = r;
  return max!;
}

function view(e: Entry): LogEntryView {
  return {
    seq: e.seq,
    time: new Date(e.time).toISOString(),
    callId: e.callId,
    requestId: e.requestId ?? null,
    outcome: e.outcome,
    exitCode: e.exitCode,
    ...(e.trap ? { trap: e.trap } : {}),
    // Lossy: bytes that are not UTF-8 become U+FFFD, so any stderr is valid JSON text.
    stderr: decoder.decode(e.stderr),
    truncated: e.truncated,
    version: e.version,
    durationMs: e.durationMs,
  };
}
