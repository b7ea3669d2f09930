// Several thaw nodes sharing one real redis-server: cluster arrival rates.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { wasmPath } from "./helpers.ts";
import { type RedisServer, startRedis } from "./redis.ts";
import { type ServerProcess, startServer } from "./server.ts";

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

// biome-ignore lint: response bodies are checked field by field below.
const body = (res: Response): Promise<any> => res.json();

async function deploy(s: ServerProcess, name: string) {
  const res = await fetch(`${s.url}/v1/functions/${name}?wait=true`, {
    method: "PUT",
    body: readFileSync(wasmPath("hello")),
    headers: { "content-type": "application/wasm" },
  });
  expect(res.status).toBe(201);
}

async function poolOn(s: ServerProcess, name: string): Promise<{ lambda: number } | undefined> {
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
