// The cluster's arrival rates and call durations in Redis.
//
//   thaw:rates   hash fn -> "rate|atMs": the decayed count summed over nodes
//   thaw:tau     hash fn -> "sum|count|atMs": decayed sums of call durations
//                (ms) and of calls over nodes; τ = sum / count (store.ts)
//   thaw:nodes   sorted set node id -> last publish (ms); live = seen within ttl
//
// A flush sends this node's batch -- per function the arrivals counted, and
// the calls completed with their total duration, since the last flush -- to
// one Lua script that decays each stored value to the server's clock and
// adds the batch, atomically, so concurrent nodes never lose each other's
// counts. The batch is folded in as if it all happened at flush time: with
// a flush every second and T = 10 s that skews a rate by under 5 % (and a
// mean, whose two sums skew alike, by less), and it keeps the script
// O(functions), not O(calls). Times come from Redis (TIME), so nodes' clocks
// need not agree.

import Redis from "ioredis";
import { MIN_TAU_WEIGHT, type RateStore } from "./store.ts";

// ARGV: T, node id, number of arrival pairs n, n × (fn, count), then
// (fn, calls, total ms) triples to the end.
const FLUSH = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local T = tonumber(ARGV[1])
local unit = 1000 / T
redis.call('ZADD', KEYS[2], now, ARGV[2])
local tau = 4 + 2 * tonumber(ARGV[3])
for i = 4, tau - 1, 2 do
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
for i = tau, #ARGV, 3 do
  local fn, count, sum = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local cur = redis.call('HGET', KEYS[3], fn)
  if cur then
    local s1 = string.find(cur, '|', 1, true)
    local s2 = string.find(cur, '|', s1 + 1, true)
    local d = math.exp(-math.max(0, now - tonumber(string.sub(cur, s2 + 1))) / T)
    sum = sum + tonumber(string.sub(cur, 1, s1 - 1)) * d
    count = count + tonumber(string.sub(cur, s1 + 1, s2 - 1)) * d
  end
  redis.call('HSET', KEYS[3], fn, tostring(sum) .. '|' .. tostring(count) .. '|' .. now)
end
return now
`;

// Returns { live nodes, { fn, rate, ... }, { fn, τ, ... } }; a τ whose
// weight has decayed below ARGV[3] is left out (no recent call anywhere).
const READ = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local T = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local minWeight = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
local rates = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local cur = all[i + 1]
  local sep = string.find(cur, '|', 1, true)
  local r, at = tonumber(string.sub(cur, 1, sep - 1)), tonumber(string.sub(cur, sep + 1))
  rates[#rates + 1] = all[i]
  rates[#rates + 1] = tostring(r * math.exp(-math.max(0, now - at) / T))
end
local taus = {}
all = redis.call('HGETALL', KEYS[3])
for i = 1, #all, 2 do
  local cur = all[i + 1]
  local s1 = string.find(cur, '|', 1, true)
  local s2 = string.find(cur, '|', s1 + 1, true)
  local count = tonumber(string.sub(cur, s1 + 1, s2 - 1))
  local d = math.exp(-math.max(0, now - tonumber(string.sub(cur, s2 + 1))) / T)
  if count * d >= minWeight then
    taus[#taus + 1] = all[i]
    taus[#taus + 1] = tostring(tonumber(string.sub(cur, 1, s1 - 1)) / count)
  end
end
return { tostring(redis.call('ZCARD', KEYS[2])), rates, taus }
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
  /** Per function: calls completed and their total duration (ms) since the last flush. */
  private pendingDurations = new Map<string, { count: number; sumMs: number }>();
  private readonly T: number;
  private readonly ttl: number;
  private readonly keys: [string, string, string];

  constructor(
    private readonly redis: Redis,
    private readonly options: RedisRateOptions,
  ) {
    this.T = options.timeConstantMs ?? 10_000;
    this.ttl = options.nodeTtlMs ?? 5_000;
    const prefix = options.prefix ?? "thaw";
    this.keys = [`${prefix}:rates`, `${prefix}:nodes`, `${prefix}:tau`];
    redis.defineCommand("thawRatesFlush", { numberOfKeys: 3, lua: FLUSH });
    redis.defineCommand("thawRatesRead", { numberOfKeys: 3, lua: READ });
  }

  arrive(fn: string): void {
    this.pending.set(fn, (this.pending.get(fn) ?? 0) + 1);
  }

  complete(fn: string, durationMs: number): void {
    this.addDurations(fn, 1, durationMs);
  }

  async flush(): Promise<boolean> {
    const batch = this.pending;
    const durations = this.pendingDurations;
    this.pending = new Map();
    this.pendingDurations = new Map();
    const args: (string | number)[] = [this.T, this.options.nodeId, batch.size];
    for (const [fn, count] of batch) args.push(fn, count);
    for (const [fn, d] of durations) args.push(fn, d.count, d.sumMs);
    try {
      await (this.redis as unknown as Commands).thawRatesFlush(...this.keys, ...args);
      return true;
    } catch {
      for (const [fn, count] of batch) this.pending.set(fn, (this.pending.get(fn) ?? 0) + count);
      for (const [fn, d] of durations) this.addDurations(fn, d.count, d.sumMs);
      return false;
    }
  }

  async read() {
    const [nodes, flatRates, flatTaus] = await (this.redis as unknown as Commands).thawRatesRead(
      ...this.keys,
      this.T,
      this.ttl,
      MIN_TAU_WEIGHT,
    );
    const rates = new Map<string, number>();
    for (let i = 0; i < flatRates.length; i += 2) rates.set(flatRates[i]!, Number(flatRates[i + 1]));
    const taus = new Map<string, number>();
    for (let i = 0; i < flatTaus.length; i += 2) taus.set(flatTaus[i]!, Number(flatTaus[i + 1]));
    return { rates, taus, nodes: Number(nodes) };
  }

  private addDurations(fn: string, count: number, sumMs: number): void {
    const d = this.pendingDurations.get(fn);
    if (d) {
      d.count += count;
      d.sumMs += sumMs;
    } else this.pendingDurations.set(fn, { count, sumMs });
  }
}

interface Commands {
  thawRatesFlush(...args: (string | number)[]): Promise<number>;
  thawRatesRead(...args: (string | number)[]): Promise<[string, string[], string[]]>;
}
