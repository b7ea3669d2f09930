// The warm pools of every ready function on this node, keyed by tenant and
// name. Activating a new version swaps the pool atomically: new calls go to
// the new pool, calls in flight finish on the old one, which then frees
// itself (FunctionPool.retire).

import type { LoadedModule } from "../engine/engine.ts";
import type { FunctionConfig } from "../registry/registry.ts";
import { FunctionPool } from "./pool.ts";

export interface PoolEntry {
  tenant: string;
  name: string;
  config: FunctionConfig;
  pool: FunctionPool;
}

export class PoolManager {
  private readonly entries = new Map<string, PoolEntry>();

  constructor(private readonly maxWaiting: number) {}

  activate(tenant: string, name: string, module: LoadedModule, config: FunctionConfig, version: number): PoolEntry {
    const pool = new FunctionPool(
      module,
      { maxConcurrency: config.maxConcurrency, maxWaiting: this.maxWaiting, maxIdle: config.maxConcurrency },
      version,
    );
    pool.prewarm(1);
    const entry = { tenant, name, config, pool };
    const old = this.entries.get(`${tenant}/${name}`);
    this.entries.set(`${tenant}/${name}`, entry);
    old?.pool.retire();
    return entry;
  }

  get(tenant: string, name: string): PoolEntry | undefined {
    return this.entries.get(`${tenant}/${name}`);
  }

  remove(tenant: string, name: string): void {
    const key = `${tenant}/${name}`;
    this.entries.get(key)?.pool.retire();
    this.entries.delete(key);
  }

  all(): PoolEntry[] {
    return [...this.entries.values()];
  }

  retireAll(): void {
    for (const e of this.entries.values()) e.pool.retire();
    this.entries.clear();
  }
}
