// Both tiers' artifacts are shared through the cluster: a deploy on one
// node is callable on another from the fast artifact, and when the builder's
// optimized build swaps in, the other node downloads that artifact and swaps
// too, compiling nothing itself.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { type RedisServer, startRedis } from "./redis.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";

let redis: RedisServer;
let one: ServerProcess;
let two: ServerProcess;

beforeAll(async () => {
  redis = await startRedis();
  const env = { THAW_REDIS_URL: redis.url };
  [one, two] = await Promise.all([startServer({ env }), startServer({ env })]);
});

afterAll(async () => {
  await Promise.all([one, two].map((s) => s?.stop()));
  await redis?.stop();
});

const tierOn = async (s: ServerProcess, name: string) =>
  ((await (await fetch(`${s.url}/v1/functions/${name}`)).json()) as { tier: string | null }).tier;

async function counter(s: ServerProcess, name: string): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  return text
    .split("\n")
    .filter((l) => l.startsWith(`${name}{`))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
}

test("node 2 serves node 1's fast artifact, then its optimized one, and compiles neither", async () => {
  const res = await putModule(one, "words", "wordcount");
  expect(res.status).toBe(201);
  expect(((await res.json()) as { tier: string }).tier).toBe("fast");
  const deadline = Date.now() + 90_000;
  const seen = new Set<string | null>();
  for (;;) {
    const call = await fetch(`${two.url}/v1/functions/words/invoke`, { method: "POST", body: "x y x" });
    if (call.status === 200) {
      expect(await call.text()).toContain('"x"');
      seen.add(await tierOn(two, "words"));
    }
    if (seen.has("optimized") || Date.now() > deadline) break;
    await Bun.sleep(50);
  }
  expect(seen.has("optimized")).toBe(true);
  expect(await tierOn(one, "words")).toBe("optimized");
  expect(await counter(two, "thaw_compiles_total")).toBe(0);
  expect(await counter(two, "thaw_tier_upgrades_total")).toBe(0);
  expect(await counter(one, "thaw_tier_upgrades_total")).toBe(1);
  expect(await counter(two, "thaw_cluster_artifacts_total")).toBe(2);
}, 120_000);
