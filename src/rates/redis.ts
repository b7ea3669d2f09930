// The cluster's arrival rates in Redis.
//
//   thaw:rates   hash fn -> "rate|atMs": the decayed count summed over nodes
//   thaw:nodes   sorted set node id -> last publish (ms); live = seen within ttl
//
// A flush sends this node's batch -- per function the arrivals counted and
// the time they were counted over -- to one Lua script that decays each
// stored rate to the server's clock and adds the batch, atomically, so
// concurrent nodes never lose each other's counts. The batch's arrivals are
// folded in as if they all arrived at flush time: with a flush every second
// and T = 10 s that skews the estimate by under 5 %, and it keeps the script
// O(functions), not O(calls). Times come from Redis (TIME), so nodes'
// clocks need not agree.

import Redis from "ioredis";
import type { RateStore } from "./store.ts";

const FLUSH = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local T = tonumber(ARGV[1])
local unit = 1000 / T
redis.call('ZADD', KEYS[2], now, ARGV[2])
for i = 3, #ARGV, 2 do
  local fn, count = ARGV[i], tonumber(ARGV[i + 1])
  local rate = 0
  local cur = redis.call('HGET', KEYS[1], fn)
  if cur then
    local sep = string.find(cur, '|', 1, true)
    local r, at = tonumber(string.sub(cur, 1, sep - 1)), tonumber(string.sub(cur, sep + 1))
    rate = r * math.exp(-math.max(0, now - at) / T)
  end
  redis.call('HSET', KEYS[1], fn, tostring(rate + count * unit) .. '|' .. now)
end
return now
`;

const READ = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local T = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
local out = { tostring(redis.call('ZCARD', KEYS[2])) }
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local cur = all[i + 1]
  local sep = string.find(cur, '|', 1, true)
  local r, at = tonumber(string.sub(cur, 1, sep - 1)), tonumber(string.sub(cur, sep + 1))
  out[#out + 1] = all[i]
  out[#out + 1] = tostring(r * math.exp(-math.max(0, now - at) / T))
end
return out
`;

export interface RedisRateOptions {
  nodeId: string;
  timeConstantMs?: number;
  /** A node that has not published for this long is no longer live. */
  nodeTtlMs?: number;
  prefix?: string;
}

export class RedisRateStore implements RateStore {
  private pending = new Map<string, number>();
  private readonly T: number;
  private readonly ttl: number;
  private readonly keys: [string, string];

  constructor(
    private readonly redis: Redis,
    private readonly options: RedisRateOptions,
  ) {
    this.T = options.timeConstantMs ?? 10_000;
    this.ttl = options.nodeTtlMs ?? 5_000;
    const prefix = options.prefix ?? "thaw";
    this.keys = [`${prefix}:rates`, `${prefix}:nodes`];
    // Connection errors surface as failed flushes and reads; ioredis keeps
    // reconnecting on its own.
    redis.on("error", () => {});
    redis.defineCommand("thawRatesFlush", { numberOfKeys: 2, lua: FLUSH });
    redis.defineCommand("thawRatesRead", { numberOfKeys: 2, lua: READ });
  }

  arrive(fn: string): void {
    this.pending.set(fn, (this.pending.get(fn) ?? 0) + 1);
  }

  async flush(): Promise<boolean> {
    const batch = this.pending;
    this.pending = new Map();
    const args: (string | number)[] = [this.T, this.options.nodeId];
    for (const [fn, count] of batch) args.push(fn, count);
    try {
      await (this.redis as unknown as Commands).thawRatesFlush(...this.keys, ...args);
      return true;
    } catch {
      for (const [fn, count] of batch) this.pending.set(fn, (this.pending.get(fn) ?? 0) + count);
      return false;
    }
  }

  async read() {
    const out = await (this.redis as unknown as Commands).thawRatesRead(...this.keys, this.T, this.ttl);
    const rates = new Map<string, number>();
    for (let i = 1; i < out.length; i += 2) rates.set(out[i]!, Number(out[i + 1]));
    return { rates, nodes: Number(out[0]) };
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}

interface Commands {
  thawRatesFlush(...args: (string | number)[]): Promise<number>;
  thawRatesRead(...args: (string | number)[]): Promise<string[]>;
}
