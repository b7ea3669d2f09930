// Which nodes are alive, for GET /v1/nodes and for taking over the build of
// a node that died (sync.ts).
//
//   thaw:node:{id}   the node's description as JSON, PX 5 s, rewritten every second
//   thaw:nodes       sorted set id -> last heartbeat (Redis time); shared with
//                    the rate store (rates/redis.ts), which prunes it
//
// Liveness is the key's expiry, not a timestamp the readers compare: Redis
// drops the key of a node that stopped (kill -9, crash, partition) five
// seconds after its last heartbeat, whatever the nodes' clocks say. The
// sorted set only lists the candidates, so a listing costs one ZRANGE and
// one MGET instead of a SCAN over the keyspace. Without Redis, or while it
// is unreachable, the list is this node alone, and says so (`mode`).

import { hostname } from "node:os";
import type Redis from "ioredis";

const HEARTBEAT_MS = 1000;
const EXPIRY_MS = 5000;
const NODES = "thaw:nodes";
const nodeKey = (id: string) => `thaw:node:${id}`;

const HEARTBEAT = `
local t = redis.call('TIME')
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[3])
`;

/** What a node reports about itself at each heartbeat. */
export interface NodeLoad {
  url: string;
  /** Functions with code loaded on this node. */
  functions: number;
  warm: number;
  busy: number;
}

export interface NodeInfo extends NodeLoad {
  id: string;
  hostname: string;
  pid: number;
  startedAt: string;
  lastSeen: string;
}

export interface NodeList {
  nodeId: string;
  /** single: no Redis configured; cluster_unavailable: Redis configured but unreachable. */
  mode: "single" | "cluster" | "cluster_unavailable";
  nodes: NodeInfo[];
}

export class Membership {
  private readonly startedAt = new Date().toISOString();
  private timer?: ReturnType<typeof setInterval>;

  constructor(
    readonly nodeId: string,
    private readonly load: () => NodeLoad,
    private readonly redis?: Redis,
  ) {
    redis?.defineCommand("thawHeartbeat", { numberOfKeys: 2, lua: HEARTBEAT });
  }

  self(): NodeInfo {
    return {
      id: this.nodeId,
      hostname: hostname(),
      pid: process.pid,
      startedAt: this.startedAt,
      lastSeen: new Date().toISOString(),
      ...this.load(),
    };
  }

  /** Call once Redis is reachable: the first heartbeat is awaited, so a node is listed before it takes deploys. */
  async start(): Promise<void> {
    if (!this.redis) return;
    await this.heartbeat();
    this.timer = setInterval(() => void this.heartbeat(), HEARTBEAT_MS).unref();
  }

  /** Failures are skipped: the next beat, a second later, tries again. */
  private async heartbeat(): Promise<void> {
    const redis = this.redis as unknown as { thawHeartbeat(...args: (string | number)[]): Promise<unknown> };
    await redis.thawHeartbeat(nodeKey(this.nodeId), NODES, JSON.stringify(this.self()), EXPIRY_MS, this.nodeId).catch(() => {});
  }

  async list(): Promise<NodeList> {
    if (!this.redis) return { nodeId: this.nodeId, mode: "single", nodes: [this.self()] };
    try {
      const ids = await this.redis.zrange(NODES, 0, -1);
      const described = ids.length ? await this.redis.mget(ids.map(nodeKey)) : [];
      const nodes = described.filter((json): json is string => json !== null).map((json) => JSON.parse(json) as NodeInfo);
      return { nodeId: this.nodeId, mode: "cluster", nodes: nodes.sort((a, b) => a.startedAt.localeCompare(b.startedAt)) };
    } catch {
      return { nodeId: this.nodeId, mode: "cluster_unavailable", nodes: [this.self()] };
    }
  }

  /** Whether a node is heartbeating; throws when Redis cannot say. */
  async isAlive(id: string): Promise<boolean> {
    if (id === this.nodeId) return true;
    if (!this.redis) return false;
    return (await this.redis.exists(nodeKey(id))) === 1;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.redis?.del(nodeKey(this.nodeId)).catch(() => {});
  }
}
