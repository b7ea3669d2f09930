// Deploying, listing and deleting functions.
//
// A deploy is checked synchronously for what needs no tools (is it wasm,
// are its imports WASI), recorded as `compiling`, and built in a child
// process (compiler/subprocess.ts). When the build is done the new version
// is loaded and its pool swapped in; a build that fails leaves the previous
// version serving and the record `failed` with the error. Deploying the same
// bytes and config again changes nothing; the same bytes with a new config
// reuse the cached artifact.
//
// Compiles wait their turn in the node's compile queue (compiler/queue.ts):
// a deploy takes its place before it is recorded, is refused with 503
// compile_queue_full when the line is full, and stays `compiling` while it
// waits. Each compile is a boxed child with a wall-clock timeout
// (compiler/subprocess.ts). Build directories a crashed node left behind
// are removed when the service starts.
//
// With a cluster (src/cluster) the registry is shared: a deploy or delete
// is first published to the cluster (and refused while it is unreachable),
// a finished build shares its artifact and outcome, and the cluster's sync
// drives this service (LocalFunctions) to follow what other nodes did.

import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import type { Cluster } from "../cluster/cluster.ts";
import type { LocalFunctions } from "../cluster/sync.ts";
import { removeStaleBuilds } from "../compiler/builds.ts";
import { type Artifact, artifactPaths, CompileError, inspect } from "../compiler/compile.ts";
import { CompileQueue, type Ticket } from "../compiler/queue.ts";
import { sandbox } from "../compiler/sandbox.ts";
import { compileInSubprocess } from "../compiler/subprocess.ts";
import type { ServerConfig } from "../config.ts";
import { DEFAULT_LIMITS, type Engine, type LoadedModule } from "../engine/engine.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { PoolManager } from "../pool/manager.ts";
import {
  DEFAULT_CONFIG, type FunctionConfig, type FunctionRecord, NAME_PATTERN, type Registry,
} from "../registry/registry.ts";
import { ThawError } from "./errors.ts";

export interface DeployResult {
  record: FunctionRecord;
  changed: boolean;
  /** Settles with the record once the build is finished (ready or failed). */
  settled: Promise<FunctionRecord>;
}

const sameConfig = (a: FunctionConfig, b: FunctionConfig) => JSON.stringify(a) === JSON.stringify(b);

export function limitsOf(config: FunctionConfig, tenant = 0) {
  return { ...DEFAULT_LIMITS, memoryMiB: config.memoryMiB, timeoutMs: config.timeoutMs, tenant };
}

export type CompileSettings = Pick<ServerConfig, "dataDir" | "compileTimeout" | "compileConcurrency" | "compileQueue">;

export class FunctionService implements LocalFunctions {
  private readonly builds = new Map<string, Promise<FunctionRecord>>();
  private readonly dataDir: string;
  private readonly compiles: CompileQueue;

  constructor(
    private readonly registry: Registry,
    private readonly engine: Engine,
    private readonly pools: PoolManager,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly settings: CompileSettings,
    private readonly cluster?: Cluster,
  ) {
    this.dataDir = settings.dataDir;
    this.compiles = new CompileQueue(settings.compileConcurrency, settings.compileQueue);
    // Before this node starts any build of its own, so only a dead process's are removed.
    const stale = removeStaleBuilds(this.dataDir);
    if (stale) log.info("removed build directories left by a stopped process", { count: stale });
  }

  /** Bring every deployed function back after a restart, without recompiling. In a
   * cluster, what the local disk lacks is fetched or rebuilt by the sync instead. */
  async boot(): Promise<void> {
    try {
      const box = await sandbox();
      if (box.mode === "none")
        this.log.warn("compiler sandbox without namespaces: compilers run with rlimits and a timeout but keep network access and see other processes (allow unshare: run as root or enable unprivileged user namespaces)");
    } catch (e) {
      this.log.warn("compiler sandbox unavailable: every compile will fail", { error: (e as Error).message });
    }
    const pending: Promise<unknown>[] = [];
    for (const rec of this.registry.list()) {
      const artifactReady = rec.active && existsSync(artifactPaths(this.dataDir, rec.active.artifactKey).metaPath);
      if (rec.active && artifactReady) {
        try {
          this.activate(rec, rec.active.artifactKey, rec.active.config, rec.active.version);
        } catch (e) {
          this.log.error("cannot load function", { tenant: rec.tenant, function: rec.name, error: String(e) });
        }
      }
      const stale = rec.status === "compiling" || (rec.status === "ready" && !artifactReady);
      if (stale && !this.cluster && existsSync(this.registry.modulePath(rec.moduleHash))) pending.push(this.startBuild(rec));
    }
    await Promise.all(pending);
  }

  get(tenant: string, name: string): FunctionRecord {
    const rec = this.registry.get(tenant, name);
    if (!rec) throw new ThawError("function_not_found", `no function "${name}"`);
    return rec;
  }

  list(tenant?: string): FunctionRecord[] {
    return this.registry.list(tenant);
  }

  async deploy(tenant: string, name: string, bytes: Uint8Array, config: Partial<FunctionConfig>): Promise<DeployResult> {
    if (!NAME_PATTERN.test(name))
      throw new ThawError("invalid_request", "function names are 1-63 characters: a-z, 0-9, '-' and '_', starting with a letter or digit");
    try {
      inspect(bytes);
    } catch (e) {
      if (e instanceof CompileError) throw new ThawError(e.code, e.message, e.details);
      throw e;
    }
    const full: FunctionConfig = { ...DEFAULT_CONFIG, ...config, env: { ...(config.env ?? {}) } };
    const moduleHash = createHash("sha256").update(bytes).digest("hex");
    this.registry.storeModule(moduleHash, bytes);
    for (;;) {
      const existing = this.cluster ? await this.cluster.current(tenant, name) : this.registry.get(tenant, name);
      if (existing && existing.moduleHash === moduleHash && sameConfig(existing.config, full) && existing.status !== "failed") {
        return { record: existing, changed: false, settled: this.settled(existing) };
      }
      const record = this.nextRecord(existing, tenant, name, full, moduleHash, bytes.length);
      const ticket = this.compiles.enter();
      if (!ticket)
        throw new ThawError(
          "compile_queue_full",
          `this node has ${this.compiles.capacity} deploys waiting to compile: try again later`,
          {},
          this.compiles.retryAfterSeconds(),
        );
      let recorded = false;
      try {
        // A concurrent deploy of the same name on another node won: decide again against it.
        recorded = !this.cluster || (await this.cluster.announce(existing, record, bytes));
        if (recorded) this.registry.save(record);
      } finally {
        if (!recorded) ticket.cancel();
      }
      if (recorded) return { record, changed: true, settled: this.startBuild(record, ticket) };
    }
  }

  /** Settles when the build of `record` is over: this node's, or in a cluster any node's. */
  private settled(record: FunctionRecord): Promise<FunctionRecord> {
    const local = this.builds.get(`${record.tenant}/${record.name}`);
    if (local) return local;
    if (this.cluster && record.status === "compiling") return this.cluster.settled(record);
    return Promise.resolve(record);
  }

  private nextRecord(
    existing: FunctionRecord | undefined,
    tenant: string,
    name: string,
    config: FunctionConfig,
    moduleHash: string,
    moduleBytes: number,
  ): FunctionRecord {
    const now = new Date().toISOString();
    // The local copy counts too: after Redis lost its data, versions must not start again at 1.
    const version = Math.max(existing?.version ?? 0, this.registry.get(tenant, name)?.version ?? 0) + 1;
    return {
      tenant,
      name,
      config,
      status: "compiling",
      moduleHash,
      active: existing?.active,
      version,
      builder: this.cluster?.nodeId,
      sizes: { moduleBytes },
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    };
  }

  /** The function's pool, loading its code again if the pool manager unloaded it. */
  ensureLoaded(tenant: string, name: string) {
    const loaded = this.pools.get(tenant, name);
    if (loaded) return loaded;
    const rec = this.registry.get(tenant, name);
    // In a cluster the record can arrive before its artifact has been downloaded.
    if (!rec?.active || !existsSync(artifactPaths(this.dataDir, rec.active.artifactKey).metaPath)) return undefined;
    this.activate(rec, rec.active.artifactKey, rec.active.config, rec.active.version);
    return this.pools.get(tenant, name);
  }

  async delete(tenant: string, name: string): Promise<void> {
    const removed = this.cluster ? await this.cluster.remove(tenant, name) : false;
    if (!removed) this.get(tenant, name);
    this.drop(tenant, name);
  }

  drop(tenant: string, name: string): void {
    this.registry.delete(tenant, name);
    this.pools.remove(tenant, name);
    this.metrics.forgetFunction(tenant, name);
  }

  building(tenant: string, name: string): boolean {
    return this.builds.has(`${tenant}/${name}`);
  }

  servingVersion(tenant: string, name: string): number | undefined {
    return this.pools.get(tenant, name)?.pool.version;
  }

  serve(record: FunctionRecord, artifactKey: string): void {
    const current = this.registry.get(record.tenant, record.name);
    if (!record.active || current?.active?.version !== record.active.version) return;
    this.activate(record, artifactKey, record.active.config, record.active.version);
  }

  /** Build a record whose builder stopped (the cluster's sync took it over). */
  rebuild(record: FunctionRecord): Promise<FunctionRecord> {
    return this.startBuild(record);
  }

  /**
   * Compile module bytes kept under DATA/modules, in a child process, counted in the metrics.
   * Waits in the compile queue with `ticket` (a deploy's place), or else in a place it is never refused.
   */
  compileModule(moduleHash: string, ticket: Ticket = this.compiles.enter(true)!): Promise<Artifact> {
    return ticket.run(async () => {
      const started = performance.now();
      let result = "failed";
      try {
        const artifact = await compileInSubprocess(this.registry.modulePath(moduleHash), this.dataDir, {
          timeoutMs: this.settings.compileTimeout,
          log: this.log,
        });
        result = "ok";
        return artifact;
      } finally {
        this.metrics.compiles.inc({ result });
        this.metrics.compileSeconds.observe((performance.now() - started) / 1000);
      }
    });
  }

  private startBuild(record: FunctionRecord, ticket?: Ticket): Promise<FunctionRecord> {
    const key = `${record.tenant}/${record.name}`;
    const build = this.build(record, ticket).finally(() => {
      if (this.builds.get(key) === build) this.builds.delete(key);
    });
    this.builds.set(key, build);
    return build;
  }

  private async build(record: FunctionRecord, ticket?: Ticket): Promise<FunctionRecord> {
    let artifact: Artifact | undefined;
    let module: LoadedModule | undefined;
    let error: FunctionRecord["error"];
    try {
      artifact = await this.compileModule(record.moduleHash, ticket);
    } catch (e) {
      // Anything but a CompileError is thaw's fault: its details are for the log, not the tenant.
      if (!(e instanceof CompileError))
        this.log.error("compile failed unexpectedly", { tenant: record.tenant, function: record.name, error: String(e) });
      const ce = e instanceof CompileError ? e : new CompileError("compiler_failed", "the compiler failed unexpectedly");
      // No `log: undefined`: the record is answered as it is kept in memory,
      // and the response schema refuses an optional field that is present
      // but undefined (GET and the list answered 400 until a restart).
      error = { code: ce.code, message: ce.message, ...(ce.details.log ? { log: ce.details.log } : {}) };
    }
    const current = this.registry.get(record.tenant, record.name);
    if (!current || current.version !== record.version) return current ?? record;
    if (artifact) {
      try {
        module = this.load(record, artifact.meta.key, record.config);
      } catch (e) {
        error = { code: "init_failed", message: (e as Error).message };
      }
    }
    const done: FunctionRecord = error
      ? { ...current, status: "failed", error, builder: undefined, updatedAt: new Date().toISOString() }
      : {
          ...current,
          status: "ready",
          error: undefined,
          builder: undefined,
          active: { artifactKey: artifact!.meta.key, moduleHash: record.moduleHash, config: record.config, version: record.version },
          sizes: {
            moduleBytes: artifact!.meta.moduleBytes,
            codeBytes: artifact!.meta.codeBytes,
            objectBytes: artifact!.meta.objectBytes,
            snapshotBytes: artifact!.meta.snapshotBytes,
          },
          compileMs: artifact!.meta.compileMs,
          updatedAt: new Date().toISOString(),
        };
    if (this.cluster && (await this.cluster.publishBuild(record, done)) === "superseded") {
      module?.release();
      return this.registry.get(record.tenant, record.name) ?? record;
    }
    if (module) this.pools.activate(record.tenant, record.name, module, record.config, record.version);
    this.registry.save(done);
    this.log.info(error ? "deploy failed" : "deployed", {
      tenant: record.tenant, function: record.name, version: record.version, ...(error ? { error: error.code } : {}),
    });
    return done;
  }

  private activate(record: FunctionRecord, artifactKey: string, config: FunctionConfig, version: number): void {
    this.pools.activate(record.tenant, record.name, this.load(record, artifactKey, config), config, version);
  }

  private load(record: FunctionRecord, artifactKey: string, config: FunctionConfig): LoadedModule {
    const paths = artifactPaths(this.dataDir, artifactKey);
    return this.engine.load(paths.soPath, paths.snapshotPath, limitsOf(config, this.pools.tenantId(record.tenant)));
  }
}
