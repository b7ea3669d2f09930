// Keeping this node's registry in step with the cluster's (records.ts).
//
// Every 250 ms the node polls (epoch, rev). When rev moved it reads the
// hash and marks every function whose local record differs, or whose active
// artifact is not on disk here. Each marked function is then reconciled on
// its own, concurrently with the others and with the next polls, so a slow
// download or compile of one never delays the rest:
//
//  - gone from the cluster: deleted here too, its pools unloaded;
//  - the cluster says compiling but this node has that version's outcome (it
//    built it while Redis was unreachable): the outcome is published now;
//  - compiling on another node: watched every second; once that node has
//    not heartbeated for 5 s (a restarted Redis briefly forgets every
//    heartbeat, hence the grace) the build is taken over, by the one node
//    whose compare-and-set on the record wins;
//  - otherwise the record is stored locally and, when its active version is
//    not what this node serves (another version, or the same version's
//    optimized code replacing its fast tier), the artifact is made local -- already on
//    disk, downloaded, or, when no node has it, compiled from the shared
//    module bytes by the one node that claims it -- and loaded.
//
// A reconcile that cannot finish (the artifact is being compiled elsewhere,
// Redis went away mid-way) keeps its mark and is retried with a backoff; a
// new change of the record resets it. Functions this node is building are
// left alone: the build publishes its own outcome.
//
// The local registry stays the node's source of truth while Redis is away:
// calls and boot never wait for Redis. The last epoch the node synced with
// is kept in DATA/cluster-epoch: under the same epoch the cluster's hash is
// authoritative, so a node restarted after functions were deleted elsewhere
// drops them; under a new one (Redis lost its data) the node publishes its
// records, module bytes and artifacts, and the highest version any node
// had wins -- but for the records the node itself wrote since it
// reconnected: those are in the new Redis already, or were deleted there
// since (a deploy can land before the node notices the new epoch, and a
// delete right after it must stick). Deletions leave no tombstone, so the one thing this cannot
// undo is a function deleted while a node was stopped, followed by Redis
// losing its data before that node came back: it comes back too.

import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Artifact, artifactPaths, type Tier } from "../compiler/compile.ts";
import type { Logger } from "../log.ts";
import type { FunctionRecord, Registry } from "../registry/registry.ts";
import type { SharedArtifacts } from "./artifacts.ts";
import type { Membership } from "./membership.ts";
import { recordField, type SharedRecords } from "./records.ts";

const POLL_MS = 250;
const MAX_RETRY_MS = 30_000;
const WATCH_MS = 1000;
/** How long a builder must stay without a heartbeat before its build is taken over. */
const ORPHAN_AFTER_MS = 5000;
/** Longer than a compile takes; a node that dies compiling frees the claim after it. */
const COMPILE_CLAIM_MS = 120_000;
const EPOCH_FILE = "cluster-epoch";

/** What the sync needs from the node's function service. */
export interface LocalFunctions {
  building(tenant: string, name: string): boolean;
  /** Artifact of the pool serving the function here, if its code is loaded. */
  servingArtifact(tenant: string, name: string): string | undefined;
  /** Load artifact `artifactKey` as the record's active version, if the record is still the local one. */
  serve(record: FunctionRecord, artifactKey: string): void;
  drop(tenant: string, name: string): void;
  rebuild(record: FunctionRecord): Promise<FunctionRecord>;
  compileModule(moduleHash: string, tier: Tier): Promise<Artifact | undefined>;
}

interface Mark {
  generation: number;
  failures: number;
  retryAt: number;
}

/** done: in line with the cluster; retry: could not finish, back off; watch: look again in a second. */
type Reconciled = "done" | "retry" | "watch";

function splitField(field: string): [string, string] {
  const slash = field.lastIndexOf("/");
  return [field.slice(0, slash), field.slice(slash + 1)];
}

export class RegistrySync {
  private epoch: string | undefined;
  private rev: string | undefined;
  /** The last snapshot of the cluster's hash read under `epoch`. */
  private remote = new Map<string, string>();
  private readonly marked = new Map<string, Mark>();
  private readonly reconciling = new Set<string>();
  /** Builders found without a heartbeat, and since when. */
  private readonly missingSince = new Map<string, number>();
  private generation = 0;
  private pulling = false;
  private timer?: ReturnType<typeof setInterval>;

  constructor(
    private readonly records: SharedRecords,
    private readonly artifacts: SharedArtifacts,
    private readonly membership: Membership,
    private readonly registry: Registry,
    private readonly local: LocalFunctions,
    private readonly dataDir: string,
    private readonly log: Logger,
  ) {
    const path = join(dataDir, EPOCH_FILE);
    this.epoch = existsSync(path) ? readFileSync(path, "utf8").trim() : undefined;
  }

  /** The first pull is awaited, so a node that starts with Redis up knows the cluster's functions. */
  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => void this.tick(), POLL_MS).unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.pulling) return;
    this.pulling = true;
    try {
      await this.pull();
    } catch {
      // Redis unreachable: the node goes on from its local registry; the next tick tries again.
    } finally {
      this.pulling = false;
    }
    const now = Date.now();
    for (const [field, mark] of this.marked) if (mark.retryAt <= now) this.reconcileInBackground(field, mark);
  }

  private async pull(): Promise<void> {
    const { epoch, rev } = await this.records.poll();
    if (epoch !== this.epoch) await this.joinEpoch(epoch);
    if (rev === this.rev) return;
    const snapshot = await this.records.snapshot();
    if (snapshot.epoch !== this.epoch) return;
    this.remote = snapshot.records;
    this.rev = snapshot.rev;
    const fields = new Set([...snapshot.records.keys(), ...this.registry.list().map((r) => recordField(r.tenant, r.name))]);
    for (const field of fields) if (this.differs(field)) this.marked.set(field, { generation: ++this.generation, failures: 0, retryAt: 0 });
  }

  private differs(field: string): boolean {
    const raw = this.remote.get(field);
    const local = this.registry.get(...splitField(field));
    if (!raw || !local) return raw !== undefined || local !== undefined;
    const active = local.active;
    return JSON.stringify(local) !== raw || (active !== undefined && !this.hasArtifact(active.artifactKey));
  }

  /** Redis has an epoch this node has not synced with: put back what it has, then sync from scratch. */
  private async joinEpoch(epoch: string): Promise<void> {
    // What this node deployed or built since it reconnected is in the new Redis already (or was
    // deleted there since, which a republish would undo).
    const mine = this.registry.list().filter((r) => !this.records.writtenHere(r.tenant, r.name));
    for (const record of mine) await this.republish(record);
    if (mine.length) this.log.info("cluster epoch changed: republished local functions", { epoch, functions: mine.length });
    const path = join(this.dataDir, EPOCH_FILE);
    writeFileSync(`${path}.tmp-${process.pid}`, epoch);
    renameSync(`${path}.tmp-${process.pid}`, path);
    this.epoch = epoch;
    this.rev = undefined;
  }

  private async republish(record: FunctionRecord): Promise<void> {
    const modulePath = this.registry.modulePath(record.moduleHash);
    if (existsSync(modulePath)) await this.artifacts.uploadModule(record.moduleHash, readFileSync(modulePath));
    if (record.active) await this.artifacts.upload(record.active.artifactKey);
    // The uploads take a while: a function deleted or redeployed meanwhile must not come back.
    const current = this.registry.get(record.tenant, record.name);
    if (current && !this.records.writtenHere(record.tenant, record.name)) await this.records.publishIfNewer(current);
  }

  private reconcileInBackground(field: string, mark: Mark): void {
    const [tenant, name] = splitField(field);
    if (this.reconciling.has(field) || this.local.building(tenant, name)) return;
    this.reconciling.add(field);
    this.reconcile(tenant, name, field)
      .catch((e: Error): Reconciled => {
        this.log.debug("cluster sync: will retry", { tenant, function: name, error: e.message });
        return "retry";
      })
      .then((outcome) => {
        if (this.marked.get(field) !== mark) return;
        if (outcome === "done") this.marked.delete(field);
        else if (outcome === "watch") mark.retryAt = Date.now() + WATCH_MS;
        else mark.retryAt = Date.now() + Math.min(POLL_MS * 2 ** mark.failures++, MAX_RETRY_MS);
      })
      .finally(() => this.reconciling.delete(field));
  }

  /** Bring one function in line with the snapshot. */
  private async reconcile(tenant: string, name: string, field: string): Promise<Reconciled> {
    const raw = this.remote.get(field);
    const local = this.registry.get(tenant, name);
    if (raw === undefined) {
      if (local) this.local.drop(tenant, name);
      if (local) this.log.info("deleted in the cluster", { tenant, function: name });
      return "done";
    }
    const remote = JSON.parse(raw) as FunctionRecord;
    if (local && remote.status === "compiling" && local.status !== "compiling" && local.version === remote.version)
      return this.publishOutcome(local, remote);
    if (remote.status === "compiling" && (await this.orphaned(remote))) return this.takeOver(remote);
    if (JSON.stringify(local) !== raw) this.registry.save(remote);
    const loaded = !remote.active || !this.needsLoading(remote) || (await this.loadActive(remote));
    if (!loaded) return "retry";
    return remote.status === "compiling" && remote.builder !== this.membership.nodeId ? "watch" : "done";
  }

  private async loadActive(record: FunctionRecord): Promise<boolean> {
    const artifactKey = await this.provision(record);
    if (artifactKey) this.local.serve(record, artifactKey);
    return artifactKey !== undefined;
  }

  private needsLoading(record: FunctionRecord): boolean {
    const active = record.active!;
    return !this.hasArtifact(active.artifactKey) || this.local.servingArtifact(record.tenant, record.name) !== active.artifactKey;
  }

  private hasArtifact(key: string): boolean {
    return existsSync(artifactPaths(this.dataDir, key).metaPath);
  }

  /** A build this node finished while Redis was unreachable. */
  private async publishOutcome(local: FunctionRecord, remote: FunctionRecord): Promise<Reconciled> {
    if (local.active) await this.artifacts.upload(local.active.artifactKey);
    // Lost race: the next snapshot shows who won, and marks the function again.
    await this.records.replace(local.tenant, local.name, remote, local);
    return "done";
  }

  /** A node never takes over its own builds: its restarts get a new id. */
  private async orphaned(record: FunctionRecord): Promise<boolean> {
    const builder = record.builder;
    if (builder === this.membership.nodeId) return false;
    if (!builder) return true;
    if (await this.membership.isAlive(builder)) {
      this.missingSince.delete(builder);
      return false;
    }
    const since = this.missingSince.get(builder) ?? Date.now();
    this.missingSince.set(builder, since);
    return Date.now() - since >= ORPHAN_AFTER_MS;
  }

  private async takeOver(orphan: FunctionRecord): Promise<Reconciled> {
    if (!(await this.ensureModule(orphan.moduleHash))) {
      this.log.warn("cannot take over a build: no node has the module", { tenant: orphan.tenant, function: orphan.name });
      return "done";
    }
    const mine: FunctionRecord = { ...orphan, builder: this.membership.nodeId, updatedAt: new Date().toISOString() };
    if (!(await this.records.replace(orphan.tenant, orphan.name, orphan, mine))) return "done";
    this.log.warn("taking over the build of a node that stopped", {
      tenant: orphan.tenant, function: orphan.name, version: orphan.version, builder: orphan.builder,
    });
    this.registry.save(mine);
    void this.local.rebuild(mine);
    return "done";
  }

  /** The record's active artifact on disk here: the key to load, or undefined to retry later. */
  private async provision(record: FunctionRecord): Promise<string | undefined> {
    const { artifactKey, moduleHash } = record.active!;
    if (this.hasArtifact(artifactKey)) return artifactKey;
    if (await this.artifacts.download(artifactKey)) {
      this.log.info("artifact downloaded", { tenant: record.tenant, function: record.name, artifact: artifactKey });
      return artifactKey;
    }
    if (!(await this.artifacts.claimCompile(artifactKey, this.membership.nodeId, COMPILE_CLAIM_MS))) return undefined;
    try {
      return await this.compileMissing(record, artifactKey, moduleHash);
    } finally {
      await this.artifacts.releaseCompile(artifactKey).catch(() => {});
    }
  }

  /** No node has the artifact (lost with Redis, or its upload failed): build it from the module. */
  private async compileMissing(record: FunctionRecord, artifactKey: string, moduleHash: string): Promise<string | undefined> {
    if (!(await this.ensureModule(moduleHash))) return undefined;
    this.log.info("no node has the artifact: compiling it", { tenant: record.tenant, function: record.name, artifact: artifactKey });
    const built = await this.local.compileModule(moduleHash, record.active!.tier ?? "optimized");
    if (!built) return undefined;
    await this.artifacts.upload(built.meta.key);
    if (built.meta.key !== artifactKey) {
      // Another toolchain makes another key: point the record at what now exists.
      const active = { ...record.active!, artifactKey: built.meta.key };
      await this.records.replace(record.tenant, record.name, record, { ...record, active });
    }
    return built.meta.key;
  }

  private async ensureModule(moduleHash: string): Promise<boolean> {
    if (existsSync(this.registry.modulePath(moduleHash))) return true;
    const bytes = await this.artifacts.downloadModule(moduleHash);
    if (bytes) this.registry.storeModule(moduleHash, bytes);
    return bytes !== undefined;
  }
}
