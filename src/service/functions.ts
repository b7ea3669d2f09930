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
// Tiers (compiler/compile.ts): a deploy is built on the fast tier first and
// is `ready` as soon as that code is loaded; the optimized build then runs
// in the background, at the queue's background priority, and its code is
// swapped in like a new version (calls in flight finish on the fast code,
// new calls get the optimized code) without changing the version. A deploy
// whose optimized artifact already exists, here or on another node of the
// cluster, goes straight to it. The swap happens only if the record still
// names the same fast build when the optimized one is done: a redeploy or
// delete meanwhile wins, and its code is never replaced by the old one's.
// A fast build the C compiler refuses (a frame over the limit at -O0, say)
// falls back to the optimized build. While a compile runs, its stage is
// kept here (buildProgress) for GET /v1/functions/{name}.
//
// With a cluster (src/cluster) the registry is shared: a deploy or delete
// is first published to the cluster (and refused while it is unreachable),
// a finished build shares its artifact and outcome, and the cluster's sync
// drives this service (LocalFunctions) to follow what other nodes did.

import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import type { Cluster } from "../cluster/cluster.ts";
import type { LocalFunctions } from "../cluster/sync.ts";
import { removeStaleBuilds } from "../compiler/builds.ts";
import {
  type Artifact, artifactPaths, CompileError, findArtifact, inspect, type Stage, type Tier,
} from "../compiler/compile.ts";
import { type CompilePriority, CompileQueue, type Ticket } from "../compiler/queue.ts";
import { estimateUnits } from "../compiler/split.ts";
import { toolchain } from "../compiler/toolchain.ts";
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

/** A compile in progress, as GET /v1/functions/{name} shows it. */
export interface BuildProgress {
  stage: Stage | "queued";
  tier: Tier;
  elapsedMs: number;
}

/** Fast-tier failures the optimized build may not have: the C compiler's refusals
 * (an error, a frame over the limit at -O0), not the module's or a timeout. */
const fastTierRefused = (e: unknown) =>
  e instanceof CompileError && e.details.stage === "compiling" && (e.code === "compiler_failed" || e.code === "module_limit");

export class FunctionService implements LocalFunctions {
  private readonly builds = new Map<string, Promise<FunctionRecord>>();
  private readonly progress = new Map<string, { stage: BuildProgress["stage"]; tier: Tier; since: number }>();
  private closed = false;
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
    // The first deploy looks its optimized artifact up by key, which needs the tools' versions.
    toolchain().catch(() => {});
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
          this.activate(rec);
        } catch (e) {
          this.log.error("cannot load function", { tenant: rec.tenant, function: rec.name, error: String(e) });
        }
      }
      const stale = rec.status === "compiling" || (rec.status === "ready" && !artifactReady);
      if (stale && !this.cluster && existsSync(this.registry.modulePath(rec.moduleHash))) pending.push(this.startBuild(rec));
    }
    await Promise.all(pending);
  }

  /**
   * Start the optimized builds a stopped node left undone: every ready function still on
   * fast code. Called once the node is up (in a cluster, after its first sync, so records
   * another node upgraded or deleted meanwhile are not built again); in a cluster every
   * node restarted with such a record may try, and the record's compare-and-set lets one swap.
   */
  upgradeFastTier(): void {
    for (const rec of this.registry.list()) if (rec.status === "ready" && rec.active?.tier === "fast") this.upgrade(rec);
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
      const ticket = this.compiles.enter({ weight: this.weightOf(bytes.length) });
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
    this.activate(rec);
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

  servingArtifact(tenant: string, name: string): string | undefined {
    return this.pools.get(tenant, name)?.pool.code?.artifactKey;
  }

  /** The compile running for the function (its deploy's, or the background optimized build), if any. */
  buildProgress(tenant: string, name: string): BuildProgress | undefined {
    const p = this.progress.get(`${tenant}/${name}`);
    return p && { stage: p.stage, tier: p.tier, elapsedMs: Math.round(performance.now() - p.since) };
  }

  /** Stop swapping in background builds: the engine is about to close. */
  close(): void {
    this.closed = true;
  }

  serve(record: FunctionRecord, artifactKey: string): void {
    const current = this.registry.get(record.tenant, record.name);
    if (!record.active || current?.active?.version !== record.active.version) return;
    this.activate({ ...record, active: { ...record.active, artifactKey } });
  }

  /** Build a record whose builder stopped (the cluster's sync took it over). */
  rebuild(record: FunctionRecord): Promise<FunctionRecord> {
    return this.startBuild(record);
  }

  /** Slots a compile of a module this size asks for: the C units it will likely be split into. */
  private weightOf(moduleBytes: number): number {
    return estimateUnits(moduleBytes);
  }

  /** A place in line that is never refused. */
  private forced(moduleHash: string, priority: CompilePriority = "deploy"): Ticket {
    const path = this.registry.modulePath(moduleHash);
    const size = existsSync(path) ? readFileSync(path).length : 0;
    return this.compiles.enter({ force: true, priority, weight: this.weightOf(size) })!;
  }

  /**
   * Compile module bytes kept under DATA/modules, in a child process, counted in the metrics.
   * Waits in the compile queue with `ticket` (a deploy's place), or else in a place it is never refused.
   * `progressOf` names the function whose `build` shows the compile's stages; `upgrade` marks
   * a background optimized build (counted apart from the builds that make deploys callable).
   */
  compileModule(
    moduleHash: string,
    tier: Tier,
    ticket: Ticket = this.forced(moduleHash),
    progressOf?: { tenant: string; name: string; skip?: () => boolean; upgrade?: boolean },
  ): Promise<Artifact | undefined> {
    const key = progressOf && `${progressOf.tenant}/${progressOf.name}`;
    const mine = key ? { stage: "queued" as BuildProgress["stage"], tier, since: performance.now() } : undefined;
    if (key && mine) this.progress.set(key, mine);
    return ticket
      .run(async () => {
        if (progressOf?.skip?.()) return undefined;
        const started = performance.now();
        let result = "failed";
        try {
          const artifact = await compileInSubprocess(this.registry.modulePath(moduleHash), this.dataDir, {
            timeoutMs: this.settings.compileTimeout,
            log: this.log,
            tier,
            jobs: ticket.slots,
            onStage: (stage) => {
              if (mine) mine.stage = stage;
            },
          });
          result = "ok";
          return artifact;
        } finally {
          if (progressOf?.upgrade) this.metrics.tierUpgrades.inc({ result });
          else this.metrics.compiles.inc({ result });
          this.metrics.compileSeconds.observe((performance.now() - started) / 1000);
        }
      })
      .finally(() => {
        if (key && this.progress.get(key) === mine) this.progress.delete(key);
      });
  }

  /** The module's optimized artifact if this node or, in a cluster, another one already built it. */
  private async existingOptimized(moduleHash: string): Promise<Artifact | undefined> {
    const { key, artifact } = await findArtifact(readFileSync(this.registry.modulePath(moduleHash)), this.dataDir, "optimized");
    if (artifact || !this.cluster || !(await this.cluster.fetchArtifact(key))) return artifact;
    return (await findArtifact(readFileSync(this.registry.modulePath(moduleHash)), this.dataDir, "optimized")).artifact;
  }

  /** The first code of a deploy: its optimized artifact if one exists, else a fast build (or an optimized one if that fails). */
  private async firstBuild(record: FunctionRecord, ticket?: Ticket): Promise<Artifact> {
    const who = { tenant: record.tenant, name: record.name };
    let existing: Artifact | undefined;
    try {
      existing = await this.existingOptimized(record.moduleHash);
    } catch (e) {
      ticket?.cancel();
      throw e;
    }
    if (existing) {
      ticket?.cancel();
      return existing;
    }
    try {
      return (await this.compileModule(record.moduleHash, "fast", ticket, who))!;
    } catch (e) {
      if (!fastTierRefused(e)) throw e;
      this.log.warn("fast tier failed: building the optimized tier", { tenant: record.tenant, function: record.name, error: (e as Error).message });
      return (await this.compileModule(record.moduleHash, "optimized", undefined, who))!;
    }
  }

  private startBuild(record: FunctionRecord, ticket?: Ticket): Promise<FunctionRecord> {
    const key = `${record.tenant}/${record.name}`;
    // Shown until the compile itself reports (or an existing artifact is found).
    const queued = { stage: "queued" as const, tier: "fast" as const, since: performance.now() };
    this.progress.set(key, queued);
    const build = this.build(record, ticket).finally(() => {
      if (this.builds.get(key) === build) this.builds.delete(key);
      if (this.progress.get(key) === queued) this.progress.delete(key);
    });
    this.builds.set(key, build);
    return build;
  }

  private async build(record: FunctionRecord, ticket?: Ticket): Promise<FunctionRecord> {
    let artifact: Artifact | undefined;
    let module: LoadedModule | undefined;
    let error: FunctionRecord["error"];
    try {
      artifact = await this.firstBuild(record, ticket);
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
    const tier: Tier = artifact?.meta.tier ?? "optimized";
    if (artifact) {
      try {
        module = this.load(record.tenant, record.moduleHash, artifact.meta.key, record.config);
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
          active: { artifactKey: artifact!.meta.key, moduleHash: record.moduleHash, config: record.config, version: record.version, tier },
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
    if (module) this.pools.activate(record.tenant, record.name, module, record.config, record.version, { artifactKey: artifact!.meta.key, tier });
    this.registry.save(done);
    this.log.info(error ? "deploy failed" : "deployed", {
      tenant: record.tenant, function: record.name, version: record.version, ...(error ? { error: error.code } : { tier }),
    });
    if (done.active?.tier === "fast" && done.status === "ready") this.upgrade(done);
    return done;
  }

  /**
   * Build the optimized tier of `fast` (a ready record on fast code) in the
   * background and swap it in, unless the record changed meanwhile. Never
   * throws: a failed optimized build leaves the fast code serving.
   */
  private upgrade(fast: FunctionRecord): void {
    const { tenant, name } = fast;
    const fastKey = fast.active!.artifactKey;
    // Still serving that fast build, and no newer deploy is compiling (its record carries the
    // old `active` until it is built: swapping under it would overwrite what it publishes).
    const current = () => {
      const rec = this.registry.get(tenant, name);
      const same =
        !this.closed && rec?.status !== "compiling" && rec?.active?.artifactKey === fastKey && rec.active.version === fast.active!.version;
      return same ? rec : undefined;
    };
    const skip = () => current() === undefined;
    void this.compileModule(fast.moduleHash, "optimized", this.forced(fast.moduleHash, "background"), { tenant, name, skip, upgrade: true })
      .then(async (artifact) => {
        const rec = artifact && current();
        if (!artifact || !rec?.active) return;
        const module = this.load(tenant, fast.moduleHash, artifact.meta.key, rec.active.config);
        const next: FunctionRecord = {
          ...rec,
          active: { ...rec.active, artifactKey: artifact.meta.key, tier: "optimized" },
          sizes: { ...rec.sizes, codeBytes: artifact.meta.codeBytes, objectBytes: artifact.meta.objectBytes, snapshotBytes: artifact.meta.snapshotBytes },
          updatedAt: new Date().toISOString(),
        };
        const published = this.cluster ? await this.cluster.publishBuild(rec, next) : "published";
        if (published === "superseded" || current() !== rec) {
          module.release();
          return;
        }
        this.pools.activate(tenant, name, module, rec.active.config, rec.active.version, { artifactKey: artifact.meta.key, tier: "optimized" });
        this.registry.save(next);
        this.log.info("optimized code swapped in", { tenant, function: name, version: rec.version });
      })
      .catch((e: Error) => {
        this.log.warn("optimized build failed: the fast tier keeps serving", {
          tenant, function: name, version: fast.version, error: e instanceof CompileError ? e.code : e.message,
        });
      });
  }

  private activate(record: FunctionRecord): void {
    const active = record.active!;
    const module = this.load(record.tenant, active.moduleHash, active.artifactKey, active.config);
    this.pools.activate(record.tenant, record.name, module, active.config, active.version, {
      artifactKey: active.artifactKey,
      tier: active.tier ?? "optimized",
    });
  }

  /** A build of the tenant's module; its fast and optimized builds share one call profile. */
  private load(tenant: string, moduleHash: string, artifactKey: string, config: FunctionConfig): LoadedModule {
    const paths = artifactPaths(this.dataDir, artifactKey);
    const tenantId = this.pools.tenantId(tenant);
    return this.engine.load(paths.soPath, paths.snapshotPath, limitsOf(config, tenantId), `${tenantId}:${moduleHash}`);
  }
}
