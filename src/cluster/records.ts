// Function records shared through Redis.
//
//   thaw:functions       hash "tenant/name" -> the record (registry.ts) as JSON
//   thaw:functions:rev   counter INCRed with every change of that hash
//   thaw:epoch           random id, set by the first node that finds it missing
//
// Every write is a compare-and-set on the record's exact JSON (one Lua
// script: HGET, compare, HSET or HDEL, INCR), so two nodes deploying one
// name at once, or a build that finishes after a redeploy or a delete,
// never overwrite a newer record: the loser gets false and re-reads.
// Records are only ever written by JSON.stringify, so the JSON of a record
// read back is byte for byte the string stored; no version field or
// cjson re-encoding is needed to compare.
//
// Nodes poll (epoch, rev) -- a few bytes -- rather than subscribe: pub/sub
// drops what is published while a node is disconnected, a counter does not,
// and one GET per node every 250 ms is nothing for Redis. The hash is read
// whole only when rev moved; it holds metadata only (kilobytes per
// function), the blobs live in artifacts.ts.
//
// The epoch tells "Redis lost its data" (restart without persistence,
// FLUSHALL) apart from "every function was deleted": an empty hash under the
// epoch a node knows means deleted; under a new epoch it means lost, and the
// node publishes what it has (sync.ts). The snapshot reads epoch, rev and
// hash in one MULTI, so a Redis that restarts between a poll and a read can
// never pass for a cluster with no functions.

import { randomUUID } from "node:crypto";
import type Redis from "ioredis";
import type { FunctionRecord } from "../registry/registry.ts";

export const recordField = (tenant: string, name: string) => `${tenant}/${name}`;

const KEYS = { records: "thaw:functions", rev: "thaw:functions:rev", epoch: "thaw:epoch" };

const POLL = `
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
return { epoch, redis.call('GET', KEYS[2]) or '0' }
`;

const REPLACE = `
local cur = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if cur ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
redis.call('INCR', KEYS[2])
return 1
`;

const PUBLISH_IF_NEWER = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cjson.decode(cur).version >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
return 1
`;

export interface RecordsSnapshot {
  epoch: string | null;
  rev: string;
  /** Field -> the record's JSON as stored. */
  records: Map<string, string>;
}

interface Commands {
  thawPoll(...args: string[]): Promise<[string, string]>;
  thawReplace(...args: string[]): Promise<number>;
  thawPublishIfNewer(...args: (string | number)[]): Promise<number>;
}

export class SharedRecords {
  private readonly commands: Commands;
  /** Fields this node wrote (or deleted) on the Redis it is connected to now. */
  private readonly written = new Set<string>();

  constructor(private readonly redis: Redis) {
    // A new connection may be to a Redis that lost everything: nothing is known to be there.
    redis.on("ready", () => this.written.clear());
    redis.defineCommand("thawPoll", { numberOfKeys: 2, lua: POLL });
    redis.defineCommand("thawReplace", { numberOfKeys: 2, lua: REPLACE });
    redis.defineCommand("thawPublishIfNewer", { numberOfKeys: 2, lua: PUBLISH_IF_NEWER });
    this.commands = redis as unknown as Commands;
  }

  /** The cluster's epoch (created if Redis has none) and the records' revision. */
  async poll(): Promise<{ epoch: string; rev: string }> {
    const [epoch, rev] = await this.commands.thawPoll(KEYS.epoch, KEYS.rev, randomUUID());
    return { epoch, rev };
  }

  async snapshot(): Promise<RecordsSnapshot> {
    const results = await this.redis.multi().get(KEYS.epoch).get(KEYS.rev).hgetall(KEYS.records).exec();
    if (!results) throw new Error("snapshot transaction aborted");
    const [epoch, rev, all] = results.map(([error, value]) => {
      if (error) throw error;
      return value;
    }) as [string | null, string | null, Record<string, string>];
    return { epoch, rev: rev ?? "0", records: new Map(Object.entries(all)) };
  }

  async get(tenant: string, name: string): Promise<FunctionRecord | undefined> {
    const json = await this.redis.hget(KEYS.records, recordField(tenant, name));
    return json ? (JSON.parse(json) as FunctionRecord) : undefined;
  }

  /** Write `next` (undefined: delete) if the cluster's record is still `expected`. */
  async replace(tenant: string, name: string, expected: FunctionRecord | undefined, next: FunctionRecord | undefined): Promise<boolean> {
    const field = recordField(tenant, name);
    const done = await this.commands.thawReplace(
      KEYS.records,
      KEYS.rev,
      field,
      expected ? JSON.stringify(expected) : "",
      next ? JSON.stringify(next) : "",
    );
    if (done === 1) this.written.add(field);
    return done === 1;
  }

  /** Whether this node wrote the function's record on the Redis it is connected to now: then
   * that Redis has it, or another node changed or deleted it since, and either way publishing
   * the local copy again (after an epoch change) would be wrong. */
  writtenHere(tenant: string, name: string): boolean {
    return this.written.has(recordField(tenant, name));
  }

  /** Delete whatever the cluster holds for the function; false if it held nothing. */
  async remove(tenant: string, name: string): Promise<boolean> {
    const results = await this.redis.multi().hdel(KEYS.records, recordField(tenant, name)).incr(KEYS.rev).exec();
    this.written.add(recordField(tenant, name));
    return results?.[0]?.[1] === 1;
  }

  /** Publish a node's own record after Redis lost its data, unless a node already put back a version as new. */
  async publishIfNewer(record: FunctionRecord): Promise<boolean> {
    const field = recordField(record.tenant, record.name);
    return (await this.commands.thawPublishIfNewer(KEYS.records, KEYS.rev, field, record.version, JSON.stringify(record))) === 1;
  }
}
