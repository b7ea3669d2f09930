// The cluster as FunctionService sees it (THAW_REDIS_URL): where deploys
// and deletes are published, and where finished builds share their
// artifact. Without Redis there is no Cluster and FunctionService works on
// its local registry alone.
//
// A deploy needs Redis -- a record only this node knew would be silently
// dropped by the other nodes' next sync -- so the operations a client asks
// for answer 503 cluster_unavailable while it is unreachable. A build
// that finishes then is not lost: it is saved locally and published by the
// sync once Redis is back (sync.ts).
//
// Order matters for "callable everywhere once ready": module bytes go up
// before the record that names them, and the artifact before the record
// that says ready, so a node that sees a record always finds its blobs.

import type Redis from "ioredis";
import type { Logger } from "../log.ts";
import type { FunctionRecord, Registry } from "../registry/registry.ts";
import { SharedArtifacts } from "./artifacts.ts";
import { needRedis, whenReady } from "./connection.ts";
import type { Membership } from "./membership.ts";
import { SharedRecords } from "./records.ts";
import { type LocalFunctions, RegistrySync } from "./sync.ts";

/** How long a starting node waits for Redis before serving from its local registry. */
const CONNECT_WAIT_MS = 2000;
const SETTLE_POLL_MS = 250;

export type BuildPublication = "published" | "superseded" | "unavailable";

export class Cluster {
  private readonly records: SharedRecords;
  private readonly artifacts: SharedArtifacts;
  private sync?: RegistrySync;

  constructor(
    private readonly redis: Redis,
    private readonly membership: Membership,
    private readonly registry: Registry,
    private readonly options: { dataDir: string; log: Logger; artifactTransferred?: (direction: "uploaded" | "downloaded") => void },
  ) {
    this.records = new SharedRecords(redis);
    this.artifacts = new SharedArtifacts(redis, options.dataDir, options.artifactTransferred);
  }

  get nodeId(): string {
    return this.membership.nodeId;
  }

  /** Sync the local registry with the cluster's from now on. */
  async start(local: LocalFunctions): Promise<void> {
    this.sync = new RegistrySync(this.records, this.artifacts, this.membership, this.registry, local, this.options.dataDir, this.options.log);
    await whenReady(this.redis, CONNECT_WAIT_MS);
    await this.sync.start();
  }

  /** The cluster's record, read fresh: what a deploy replaces. */
  current(tenant: string, name: string): Promise<FunctionRecord | undefined> {
    return needRedis("deploy", () => this.records.get(tenant, name));
  }

  /** Publish a new deploy, if the cluster's record is still `previous`; false if another deploy got there first. */
  announce(previous: FunctionRecord | undefined, record: FunctionRecord, bytes: Uint8Array): Promise<boolean> {
    return needRedis("deploy", async () => {
      await this.artifacts.uploadModule(record.moduleHash, bytes);
      return this.records.replace(record.tenant, record.name, previous, record);
    });
  }

  /** The cluster's record once the build of `building` is over, wherever it runs; `building`
   * itself if the function was deleted or Redis went away meanwhile. */
  async settled(building: FunctionRecord): Promise<FunctionRecord> {
    let current: FunctionRecord | undefined = building;
    while (current && current.version === building.version && current.status === "compiling") {
      await Bun.sleep(SETTLE_POLL_MS);
      current = await this.records.get(building.tenant, building.name).catch(() => undefined);
    }
    return current ?? building;
  }

  /** Download artifact `key` if some node shared it; false if none did or Redis is away. */
  fetchArtifact(key: string): Promise<boolean> {
    return this.artifacts.download(key).catch(() => false);
  }

  /** Delete the function everywhere; false if the cluster did not have it. */
  remove(tenant: string, name: string): Promise<boolean> {
    return needRedis("delete", () => this.records.remove(tenant, name));
  }

  /** Publish a build's outcome in place of the `building` record it started from. */
  async publishBuild(building: FunctionRecord, done: FunctionRecord): Promise<BuildPublication> {
    try {
      if (done.status === "ready" && done.active) await this.artifacts.upload(done.active.artifactKey);
      return (await this.records.replace(done.tenant, done.name, building, done)) ? "published" : "superseded";
    } catch (e) {
      this.options.log.warn("build outcome kept locally until Redis is back", {
        tenant: done.tenant, function: done.name, version: done.version, error: (e as Error).message,
      });
      return "unavailable";
    }
  }

  close(): void {
    this.sync?.close();
  }
}
