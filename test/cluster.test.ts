// Several thaw nodes sharing one real redis-server: cluster arrival rates
// and call durations.

import { afterAll, beforeAll, expect, test } from "bun:test";
import diagnostics from "node:diagnostics_channel";
import { connectRedis } from "../src/cluster/connection.ts";
import { Logger } from "../src/log.ts";
import { type RedisServer, startRedis } from "./redis.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

// biome-ignore lint: response bodies are checked field by field below.
const body = (res: Response): Promise<any> => res.json();

async function deploy(s: ServerProcess, name: string, wasm = "hello") {
  expect((await putModule(s, name, wasm)).status).toBe(201);
}

interface PoolView {
  lambda: number;
  tauMs: number | null;
  target: number;
  calls: number;
}

async function poolOn(s: ServerProcess, name: string): Promise<PoolView | undefined> {
  const pools = await body(await fetch(`${s.url}/v1/pools`));
  return pools.functions.find((f: { name: string }) => f.name === name);
}

const lambdaOn = async (s: ServerProcess, name: string) => (await poolOn(s, name))?.lambda ?? 0;

test("traffic on one node raises the arrival rate another node plans by; Redis down, calls go on", async () => {
  const env = { THAW_REDIS_URL: redis.url };
  const [one, two] = await Promise.all([startServer({ env }), startServer({ env })]);
  try {
    await deploy(one, "hello");
    // The shared registry loads it on node two too, without a call there.
    for (let i = 0; i < 50 && !(await poolOn(two, "hello")); i++) await Bun.sleep(100);
    for (let i = 0; i < 200; i++) expect((await fetch(`${one.url}/v1/functions/hello/invoke`, { method: "POST" })).status).toBe(200);
    let seen = 0;
    for (let i = 0; i < 50 && seen < 1; i++) {
      await Bun.sleep(100);
      seen = await lambdaOn(two, "hello");
    }
    // 200 arrivals at T = 10 s is ~20 calls/s for the cluster, ~10 per node;
    // node two has had no call at all.
    expect(seen).toBeGreaterThan(5);
    expect(seen).toBeLessThan(12);

    await redis.stop();
    const res = await fetch(`${one.url}/v1/functions/hello/invoke`, { method: "POST" });
    expect(await res.text()).toBe("Hello, world!\n");
    await Bun.sleep(1500);
    expect((await fetch(`${two.url}/v1/functions/hello/invoke`, { method: "POST" })).status).toBe(200);
    await redis.start();
  } finally {
    await Promise.all([one.stop(), two.stop()]);
  }
});

test("long calls on one node raise the τ and the target of a node that never ran the function", async () => {
  const env = { THAW_REDIS_URL: redis.url };
  // A sleeping call holds a worker thread: enough of them for 20 at once.
  const [one, two] = await Promise.all([startServer({ env, args: ["--threads", "20"] }), startServer({ env })]);
  try {
    await deploy(one, "slow", "sleep");
    for (let i = 0; i < 50 && !(await poolOn(two, "slow")); i++) await Bun.sleep(100);
    expect((await poolOn(two, "slow"))?.tauMs).toBeNull();
    // 20 clients calling back to back for 2.5 s: ~100 calls/s of 200 ms.
    const until = Date.now() + 2500;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (Date.now() < until) {
          const res = await fetch(`${one.url}/v1/functions/slow/invoke`, { method: "POST", body: "200" });
          expect(res.status).toBe(200);
          await res.arrayBuffer();
        }
      }),
    );
    // Node two's share, ~10 calls/s of 0.2 s: 2 in progress on top of h = 1;
    // with no τ of its own it would plan h alone, whatever its λ.
    let seen: PoolView | undefined;
    for (let i = 0; i < 30 && !(seen && seen.target > 2); i++) {
      await Bun.sleep(100);
      seen = await poolOn(two, "slow");
    }
    expect(seen!.calls).toBe(0);
    expect(seen!.tauMs!).toBeGreaterThan(180);
    expect(seen!.tauMs!).toBeLessThan(300);
    expect(seen!.target).toBeGreaterThan(2);
  } finally {
    await Promise.all([one.stop(), two.stop()]);
  }
});

test("ioredis traces commands only while someone listens (Bun's TracingChannel gets Node's hasSubscribers)", async () => {
  const channel = diagnostics.tracingChannel("thaw:test");
  expect(channel.hasSubscribers).toBe(false);
  const start = () => {};
  channel.start.subscribe(start);
  expect(channel.hasSubscribers).toBe(true);
  channel.start.unsubscribe(start);
  expect(channel.hasSubscribers).toBe(false);
  // A client made through the cluster connection works with it.
  const client = connectRedis(redis.url, new Logger("error"));
  try {
    await new Promise((ready) => client.once("ready", ready));
    expect(await client.ping()).toBe("PONG");
  } finally {
    client.disconnect();
  }
});
