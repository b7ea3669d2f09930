// Deploying, listing and deleting functions.
//
// A deploy is checked synchronously for what needs no tools (is it wasm,
// are its imports WASI), recorded as `compiling`, and built in a child
// process (compiler/subprocess.ts). When the build is done the new version
// is loaded and its pool swapped in; a build that fails leaves the previous
// version serving and the record `failed` with the error. Deploying the same
// bytes and config again changes nothing; the same bytes with a new config
// reuse the cached artifact.

import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { type Artifact, artifactPaths, CompileError, inspect } from "../compiler/compile.ts";
import { compileInSubprocess } from "../compiler/subprocess.ts";
import { DEFAULT_LIMITS, type Engine } from "../engine/engine.ts";
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

export class FunctionService {
  private readonly builds = new Map<string, Promise<FunctionRecord>>();

  constructor(
    private readonly registry: Registry,
    private readonly engine: Engine,
    private readonly pools: PoolManager,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly dataDir: string,
  ) {}

  /** Bring every deployed function back after a restart, without recompiling. */
  async boot(): Promise<void> {
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
      if (stale && existsSync(this.registry.modulePath(rec.moduleHash))) pending.push(this.startBuild(rec));
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

  deploy(tenant: string, name: string, bytes: Uint8Array, config: Partial<FunctionConfig>): DeployResult {
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
    const existing = this.registry.get(tenant, name);
    if (existing && existing.moduleHash === moduleHash && sameConfig(existing.config, full) && existing.status !== "failed") {
      const settled = this.builds.get(`${tenant}/${name}`) ?? Promise.resolve(existing);
      return { record: existing, changed: false, settled };
    }
    this.registry.storeModule(moduleHash, bytes);
    const now = new Date().toISOString();
    const record: FunctionRecord = {
      tenant,
      name,
      config: full,
      status: "compiling",
      moduleHash,
      active: existing?.active,
      version: (existing?.version ?? 0) + 1,
      sizes: { moduleBytes: bytes.length },
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    };
    this.registry.save(record);
    return { record, changed: true, settled: this.startBuild(record) };
  }

  /** The function's pool, loading its code again if the pool manager unloaded it. */
  ensureLoaded(tenant: string, name: string) {
    const loaded = this.pools.get(tenant, name);
    if (loaded) return loaded;
    const rec = this.registry.get(tenant, name);
    if (!rec?.active) return undefined;
    this.activate(rec, rec.active.artifactKey, rec.active.config, rec.active.version);
    return this.pools.get(tenant, name);
  }

  delete(tenant: string, name: string): void {
    this.get(tenant, name);
    this.registry.delete(tenant, name);
    this.pools.remove(tenant, name);
  }

  private startBuild(record: FunctionRecord): Promise<FunctionRecord> {
    const key = `${record.tenant}/${record.name}`;
    const build = this.build(record).finally(() => {
      if (this.builds.get(key) === build) this.builds.delete(key);
    });
    this.builds.set(key, build);
    return build;
  }

  private async build(record: FunctionRecord): Promise<FunctionRecord> {
    const started = performance.now();
    let artifact: Artifact | undefined;
    let error: FunctionRecord["error"];
    try {
      artifact = await compileInSubprocess(this.registry.modulePath(record.moduleHash), this.dataDir);
    } catch (e) {
      const ce = e instanceof CompileError ? e : new CompileError("compiler_failed", String(e));
      error = { code: ce.code, message: ce.message, log: ce.details.log };
    }
    this.metrics.compiles.inc({ result: error ? "failed" : "ok" });
    this.metrics.compileSeconds.observe((performance.now() - started) / 1000);
    const current = this.registry.get(record.tenant, record.name);
    if (!current || current.version !== record.version) return current ?? record;
    if (artifact) {
      try {
        this.activate(record, artifact.meta.key, record.config, record.version);
      } catch (e) {
        error = { code: "init_failed", message: (e as Error).message };
      }
    }
    const done: FunctionRecord = error
      ? { ...current, status: "failed", error, updatedAt: new Date().toISOString() }
      : {
          ...current,
          status: "ready",
          error: undefined,
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
    this.registry.save(done);
    this.log.info(error ? "deploy failed" : "deployed", {
      tenant: record.tenant, function: record.name, version: record.version, ...(error ? { error: error.code } : {}),
    });
    return done;
  }

  private activate(record: FunctionRecord, artifactKey: string, config: FunctionConfig, version: number): void {
    const paths = artifactPaths(this.dataDir, artifactKey);
    const module = this.engine.load(paths.soPath, paths.snapshotPath, limitsOf(config, this.pools.tenantId(record.tenant)));
    this.pools.activate(record.tenant, record.name, module, config, version);
  }
}
