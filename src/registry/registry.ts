// The function registry: every deployed function, namespaced by tenant,
// with its configuration, the module it runs, its build status and sizes.
//
// Each record is one JSON file under DATA/registry/<tenant>/<name>.json,
// written to a temporary name and renamed, so a crash leaves either the old
// record or the new one. Module bytes are kept by content hash under
// DATA/modules so a function can be rebuilt (toolchain upgrade) or shared.
// With a cluster (src/cluster) this is the node's cache of the shared
// registry in Redis, which it keeps serving from while Redis is away.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Tier } from "../compiler/compile.ts";

export interface FunctionConfig {
  memoryMiB: number;
  timeoutMs: number;
  env: Record<string, string>;
  contentType: string;
  maxConcurrency: number;
}

export type FunctionStatus = "compiling" | "ready" | "failed";

export interface DeployError {
  code: string;
  message: string;
  log?: string;
}

export interface FunctionSizes {
  moduleBytes: number;
  codeBytes?: number;
  objectBytes?: number;
  snapshotBytes?: number;
}

export interface FunctionRecord {
  tenant: string;
  name: string;
  config: FunctionConfig;
  /** Status of the latest deploy. A failed redeploy leaves `active` serving. */
  status: FunctionStatus;
  error?: DeployError;
  moduleHash: string;
  /** Artifact of the latest successful deploy: the version calls run on, and
   * which tier of it (absent in records from before tiers: optimized). */
  active?: { artifactKey: string; moduleHash: string; config: FunctionConfig; version: number; tier?: Tier };
  version: number;
  /** Cluster mode, while compiling: the node building this version (another takes over if it dies). */
  builder?: string;
  sizes: FunctionSizes;
  compileMs?: number;
  createdAt: string;
  updatedAt: string;
}

export const DEFAULT_CONFIG: FunctionConfig = {
  memoryMiB: 64,
  timeoutMs: 10_000,
  env: {},
  contentType: "text/plain; charset=utf-8",
  maxConcurrency: 64,
};

export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export class Registry {
  private readonly records = new Map<string, FunctionRecord>();
  private readonly dir: string;
  readonly modulesDir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, "registry");
    this.modulesDir = join(dataDir, "modules");
    mkdirSync(this.dir, { recursive: true });
    mkdirSync(this.modulesDir, { recursive: true });
    this.loadAll();
  }

  private static key(tenant: string, name: string): string {
    return `${tenant}/${name}`;
  }

  private loadAll(): void {
    for (const tenant of readdirSync(this.dir)) {
      for (const file of readdirSync(join(this.dir, tenant))) {
        if (!file.endsWith(".json")) continue;
        const rec = JSON.parse(readFileSync(join(this.dir, tenant, file), "utf8")) as FunctionRecord;
        this.records.set(Registry.key(rec.tenant, rec.name), rec);
      }
    }
  }

  get(tenant: string, name: string): FunctionRecord | undefined {
    return this.records.get(Registry.key(tenant, name));
  }

  list(tenant?: string): FunctionRecord[] {
    return [...this.records.values()]
      .filter((r) => tenant === undefined || r.tenant === tenant)
      .sort((a, b) => (a.tenant + a.name).localeCompare(b.tenant + b.name));
  }

  save(rec: FunctionRecord): void {
    const dir = join(this.dir, rec.tenant);
    mkdirSync(dir, { recursive: true });
    const path = join(dir, `${rec.name}.json`);
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(rec, null, 2));
    renameSync(tmp, path);
    this.records.set(Registry.key(rec.tenant, rec.name), rec);
  }

  delete(tenant: string, name: string): boolean {
    const existed = this.records.delete(Registry.key(tenant, name));
    rmSync(join(this.dir, tenant, `${name}.json`), { force: true });
    return existed;
  }

  modulePath(hash: string): string {
    return join(this.modulesDir, `${hash}.wasm`);
  }

  storeModule(hash: string, bytes: Uint8Array): string {
    const path = this.modulePath(hash);
    if (!existsSync(path)) {
      const tmp = `${path}.tmp-${process.pid}`;
      writeFileSync(tmp, bytes);
      renameSync(tmp, path);
    }
    return path;
  }
}
