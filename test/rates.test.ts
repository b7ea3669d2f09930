// Arrival-rate and duration stores: the in-memory one against the policy's
// estimator and the decayed mean, and the Redis one with several nodes
// sharing a real redis-server.

import { afterAll, beforeAll, expect, test } from "bun:test";
import Redis, { type RedisOptions } from "ioredis";
import { addArrival, type RateState, rateAt } from "../src/pool/policy.ts";
import { RedisRateStore } from "../src/rates/redis.ts";
import { MemoryRateStore, nodeShare } from "../src/rates/store.ts";
import { type RedisServer, startRedis } from "./redis.ts";

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
// The stores use connections they do not own: the test opens and closes them.
const clients: Redis[] = [];
function connect(options: RedisOptions = {}): Redis {
  const client = new Redis(redis.url, options);
  client.on("error", () => {});
  clients.push(client);
  return client;
}
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await redis.stop();
});

const node = (id: string, prefix: string, T = 10_000) =>
  new RedisRateStore(connect({ maxRetriesPerRequest: 1 }), {
    nodeId: id,
    timeConstantMs: T,
    prefix,
  });

test("the memory store is the policy's estimator", async () => {
  let now = 0;
  const store = new MemoryRateStore(10_000, () => now);
  let state: RateState | null = null;
  for (let i = 0; i < 500; i++) {
    now = i * 10;
    store.arrive("f");
    state = addArrival(state, now, 10_000);
  }
  now = 6000;
  const { rates, nodes } = await store.read();
  expect(rates.get("f")).toBeCloseTo(rateAt(state, now, 10_000), 9);
  expect(nodes).toBe(1);
});

test("the memory store's τ is the decayed mean of durations", async () => {
  let now = 0;
  const store = new MemoryRateStore(10_000, () => now);
  expect((await store.read()).taus.has("f")).toBe(false);
  const calls: [number, number][] = [];
  for (let i = 0; i < 200; i++) calls.push([i * 50, i < 100 ? 100 : 300]);
  for (const [t, d] of calls) {
    now = t;
    store.complete("f", d);
  }
  now = 12_000;
  let sum = 0;
  let weight = 0;
  for (const [t, d] of calls) {
    const w = Math.exp(-(now - t) / 10_000);
    sum += w * d;
    weight += w;
  }
  const tau = (await store.read()).taus.get("f")!;
  expect(tau).toBeCloseTo(sum / weight, 9);
  // The later, slower calls weigh more, but not all: between 200 and 300.
  expect(tau).toBeGreaterThan(200);
  expect(tau).toBeLessThan(300);
  // Idle, τ holds still (both sums decay alike) until nothing is left of it.
  now = 60_000;
  expect((await store.read()).taus.get("f")!).toBeCloseTo(sum / weight, 6);
  now = 1_000_000;
  expect((await store.read()).taus.has("f")).toBe(false);
});

test("nodes' durations combine into one decayed mean, every call weighing the same", async () => {
  const a = node("a", "t5");
  const b = node("b", "t5");
  const mem = new MemoryRateStore();
  for (let i = 0; i < 300; i++) {
    a.complete("f", 100);
    mem.complete("f", 100);
  }
  b.complete("f", 500);
  b.complete("f", 700);
  mem.complete("f", 500);
  mem.complete("f", 700);
  b.complete("g", 40);
  expect(await a.flush()).toBe(true);
  expect(await b.flush()).toBe(true);
  const { taus } = await a.read();
  // (300·100 + 500 + 700) / 302, not the mean of the two nodes' means (350).
  expect(taus.get("f")!).toBeCloseTo(31_200 / 302, 0);
  expect(taus.get("f")!).toBeCloseTo((await mem.read()).taus.get("f")!, 0);
  expect(taus.get("g")!).toBeCloseTo(40, 6);
  // A later batch moves the mean by its weight against the decayed old one.
  for (let i = 0; i < 302; i++) b.complete("f", 300);
  expect(await b.flush()).toBe(true);
  const after = (await b.read()).taus.get("f")!;
  expect(after).toBeGreaterThan(200);
  expect(after).toBeLessThan(202);
});

test("nodes' arrivals add up in Redis; each node sizes by its share", async () => {
  const a = node("a", "t1");
  const b = node("b", "t1");
  const c = node("c", "t1");
  for (let i = 0; i < 300; i++) a.arrive("hot");
  for (let i = 0; i < 100; i++) b.arrive("hot");
  b.arrive("rare");
  expect(await a.flush()).toBe(true);
  expect(await b.flush()).toBe(true);
  expect(await c.flush()).toBe(true);
  const { rates, nodes } = await c.read();
  expect(nodes).toBe(3);
  // 400 arrivals folded in at T = 10 s: 400 / 10 = 40 calls/s, barely decayed.
  expect(rates.get("hot")!).toBeGreaterThan(39);
  expect(rates.get("hot")!).toBeLessThanOrEqual(40);
  expect(rates.get("rare")!).toBeCloseTo(0.1, 2);
  // c never saw a call of "hot" but sizes its pool for its share of it.
  expect(nodeShare(rates.get("hot")!, nodes)).toBeGreaterThan(13);
});

test("rates decay with time on the server's clock", async () => {
  const a = node("a", "t2", 200);
  for (let i = 0; i < 100; i++) a.arrive("f");
  await a.flush();
  const first = (await a.read()).rates.get("f")!;
  await Bun.sleep(200);
  const later = (await a.read()).rates.get("f")!;
  expect(later / first).toBeGreaterThan(0.2);
  expect(later / first).toBeLessThan(0.5);
});

test("a node that stops publishing leaves the live count", async () => {
  const a = new RedisRateStore(connect(), { nodeId: "a", prefix: "t3", nodeTtlMs: 150 });
  const b = new RedisRateStore(connect(), { nodeId: "b", prefix: "t3", nodeTtlMs: 150 });
  await a.flush();
  await b.flush();
  expect((await a.read()).nodes).toBe(2);
  await Bun.sleep(200);
  await a.flush();
  expect((await a.read()).nodes).toBe(1);
});

test("with Redis down a flush keeps its batch and publishes it when Redis is back", async () => {
  // Without an offline queue a command fails at once while Redis is down.
  const client = connect({ maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 50 });
  await new Promise((resolve) => client.once("ready", resolve));
  const a = new RedisRateStore(client, { nodeId: "a", prefix: "t4" });
  expect(await a.flush()).toBe(true);
  await redis.stop();
  for (let i = 0; i < 50; i++) a.arrive("f");
  for (let i = 0; i < 10; i++) a.complete("f", 250);
  expect(await a.flush()).toBe(false);
  a.complete("f", 360);
  await redis.start();
  let published = false;
  for (let i = 0; i < 100 && !published; i++) {
    published = await a.flush();
    if (!published) await Bun.sleep(50);
  }
  expect(published).toBe(true);
  expect((await a.read()).rates.get("f")!).toBeCloseTo(5, 1);
  // The failed batch's durations were kept and published with the next.
  expect((await a.read()).taus.get("f")!).toBeCloseTo((10 * 250 + 360) / 11, 6);
});
