// Compiled artifacts and module bytes shared through Redis, so a node that
// has never seen a function downloads its native code instead of compiling.
//
//   thaw:artifact:{key}     hash so, snap, meta: fn.so, fn.snap, artifact.json
//   thaw:module:{hash}      the module's wasm bytes (sha256)
//   thaw:compiling:{key}    held (SET NX PX) by the one node compiling an
//                           artifact that no node has
//
// Both are content-addressed, so they are written once and never change:
// an upload first asks whether the key exists and sends nothing if it does,
// and the three files of an artifact go in one HSET, so a reader sees all of
// them or none. A download is written to a private temporary directory and
// renamed into place, as compile.ts does, so a node that dies mid-download
// never leaves an artifact that looks complete. Blobs live in Redis memory
// (tens to hundreds of kilobytes per artifact here); nothing deletes them,
// since any record, on any node, may still point at one.

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type Redis from "ioredis";
import { artifactPaths } from "../compiler/compile.ts";

const artifactKey = (key: string) => `thaw:artifact:${key}`;
const moduleKey = (hash: string) => `thaw:module:${hash}`;
const compilingKey = (key: string) => `thaw:compiling:${key}`;

export class SharedArtifacts {
  constructor(
    private readonly redis: Redis,
    private readonly dataDir: string,
    /** Counts each artifact that actually crossed the network. */
    private readonly transferred: (direction: "uploaded" | "downloaded") => void = () => {},
  ) {}

  /** Share the local artifact `key`; false if this node does not have it. */
  async upload(key: string): Promise<boolean> {
    const paths = artifactPaths(this.dataDir, key);
    if (!existsSync(paths.metaPath)) return false;
    if (await this.redis.exists(artifactKey(key))) return true;
    await this.redis.hset(artifactKey(key), {
      so: readFileSync(paths.soPath),
      snap: readFileSync(paths.snapshotPath),
      meta: readFileSync(paths.metaPath),
    });
    this.transferred("uploaded");
    return true;
  }

  /** Download artifact `key` into the data directory; false if no node shared it. */
  async download(key: string): Promise<boolean> {
    const [so, snap, meta] = await this.redis.hmgetBuffer(artifactKey(key), "so", "snap", "meta");
    if (!so || !snap || !meta) return false;
    const paths = artifactPaths(this.dataDir, key);
    const tmp = join(this.dataDir, "artifacts", `.fetch-${key}-${process.pid}-${Date.now()}`);
    mkdirSync(tmp, { recursive: true });
    writeFileSync(join(tmp, "fn.so"), so, { mode: 0o755 });
    writeFileSync(join(tmp, "fn.snap"), snap);
    writeFileSync(join(tmp, "artifact.json"), meta);
    try {
      renameSync(tmp, paths.dir);
    } catch {
      // Another download or build of the same key got there first.
      rmSync(tmp, { recursive: true, force: true });
    }
    this.transferred("downloaded");
    return existsSync(paths.metaPath);
  }

  async uploadModule(hash: string, bytes: Uint8Array): Promise<void> {
    if (await this.redis.exists(moduleKey(hash))) return;
    await this.redis.set(moduleKey(hash), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }

  async downloadModule(hash: string): Promise<Uint8Array | undefined> {
    return (await this.redis.getBuffer(moduleKey(hash))) ?? undefined;
  }

  /** Claim the compile of an artifact no node has. The claim lapses after ttlMs, so a
   * node that dies compiling does not block the others for ever. */
  async claimCompile(key: string, nodeId: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(compilingKey(key), nodeId, "PX", ttlMs, "NX")) === "OK";
  }

  async releaseCompile(key: string): Promise<void> {
    await this.redis.del(compilingKey(key));
  }
}
