// Three thaw nodes sharing one real redis-server: the shared registry and
// artifacts (deploy anywhere, callable everywhere within a second, built
// once), deletes seen everywhere, node membership, Redis going away and
// coming back empty, and a node restarted after a delete made elsewhere.

import { afterAll, beforeAll, expect, test } from "bun:test";
import Redis from "ioredis";
import { type RedisServer, startRedis } from "./redis.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";

let redis: RedisServer;
let one: ServerProcess;
let two: ServerProcess;
let three: ServerProcess;
const env = () => ({ THAW_REDIS_URL: redis.url });

beforeAll(async () => {
  redis = await startRedis();
  [one, two, three] = await Promise.all([startServer({ env: env() }), startServer({ env: env() }), startServer({ env: env() })]);
});

afterAll(async () => {
  await Promise.all([one, two, three].map((s) => s?.stop()));
  await redis?.stop();
});

// biome-ignore lint: response bodies are checked field by field below.
const body = (res: Response): Promise<any> => res.json();

const call = (s: ServerProcess, name: string, input = "") =>
  fetch(`${s.url}/v1/functions/${name}/invoke`, { method: "POST", body: input });

/** Polls until `check` holds; returns how long that took. */
async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > ms) throw new Error(`not within ${ms} ms`);
    await Bun.sleep(20);
  }
  return performance.now() - started;
}

/** Sum of a Prometheus counter's samples whose labels include `labels`. */
async function counter(s: ServerProcess, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith(`${name}{`) && line.includes(labels))
    .reduce((sum, line) => sum + Number(line.split(" ").pop()), 0);
}

test("a deploy on node 1 is callable on node 3 within a second, from node 1's artifact, compiled once", async () => {
  expect((await putModule(one, "hello", "hello")).status).toBe(201);
  const elapsed = await within(1000, async () => (await call(three, "hello")).status === 200);
  expect(elapsed).toBeLessThan(1000);
  await within(1000, async () => (await call(two, "hello")).status === 200);
  const res = await call(three, "hello");
  expect(await res.text()).toBe("Hello, world!\n");
  expect(res.headers.get("x-thaw-version")).toBe("1");

  expect(await counter(one, "thaw_compiles_total")).toBe(1);
  expect(await counter(one, "thaw_cluster_artifacts_total", 'direction="uploaded"')).toBe(1);
  for (const node of [two, three]) {
    expect(await counter(node, "thaw_compiles_total")).toBe(0);
    expect(await counter(node, "thaw_cluster_artifacts_total", 'direction="downloaded"')).toBe(1);
  }
  const view = await body(await fetch(`${three.url}/v1/functions/hello`));
  expect(view.status).toBe("ready");
  expect(view.version).toBe(1);
});

test("a redeploy with new bytes on node 2 is what node 1 runs next", async () => {
  expect((await putModule(one, "greeter", "hello")).status).toBe(201);
  await within(1000, async () => (await call(two, "greeter")).status === 200);
  expect((await putModule(two, "greeter", "echo")).status).toBe(201);
  await within(1000, async () => (await (await call(one, "greeter", "ping")).text()) === "ping");
  const res = await call(one, "greeter", "pong");
  expect(await res.text()).toBe("pong");
  expect(res.headers.get("x-thaw-version")).toBe("2");
  expect(await counter(one, "thaw_compiles_total")).toBe(2);
  expect(await counter(three, "thaw_compiles_total")).toBe(0);
});

test("a delete on node 1 is seen on nodes 2 and 3", async () => {
  await within(1000, async () => (await call(three, "greeter", "x")).status === 200);
  expect((await fetch(`${one.url}/v1/functions/greeter`, { method: "DELETE" })).status).toBe(204);
  await within(1000, async () => (await call(two, "greeter")).status === 404 && (await call(three, "greeter")).status === 404);
  expect((await fetch(`${three.url}/v1/functions/greeter`)).status).toBe(404);
  expect((await body(await fetch(`${two.url}/v1/functions`))).functions.map((f: { name: string }) => f.name)).toEqual(["hello"]);
});

test("the same deploy on two nodes at once is built once, and both answer when it is ready", async () => {
  const compiles = async () => (await counter(two, "thaw_compiles_total")) + (await counter(three, "thaw_compiles_total"));
  const before = await compiles();
  const answers = await Promise.all([putModule(two, "twice", "echo"), putModule(three, "twice", "echo")]);
  expect(answers.map((r) => r.status).sort()).toEqual([200, 201]);
  for (const res of answers) expect((await body(res)).status).toBe("ready");
  expect(await compiles()).toBe(before + 1);
  await within(1000, async () => (await (await call(one, "twice", "both")).text()) === "both");
});

test("GET /v1/nodes lists every live node and drops one killed with SIGKILL", async () => {
  const listed = async (s: ServerProcess) => (await body(await fetch(`${s.url}/v1/nodes`))).nodes as { url: string; pid: number }[];
  const view = await body(await fetch(`${two.url}/v1/nodes`));
  expect(view.mode).toBe("cluster");
  expect(view.nodes.map((n: { url: string }) => n.url).sort()).toEqual([one.url, two.url, three.url].sort());
  const self = view.nodes.find((n: { id: string }) => n.id === view.nodeId);
  expect(self.url).toBe(two.url);
  expect(self.pid).toBe(two.proc.pid);
  expect(self.functions).toBeGreaterThanOrEqual(1);

  const doomed = await startServer({ env: env() });
  await within(2000, async () => (await listed(one)).some((n) => n.url === doomed.url));
  doomed.proc.kill("SIGKILL");
  const gone = await within(8000, async () => !(await listed(one)).some((n) => n.url === doomed.url));
  expect(gone).toBeGreaterThan(2000);
  expect((await listed(three)).length).toBe(3);
});

test("Redis down: calls go on everywhere, deploys answer 503; Redis back empty: functions republished, deploys propagate", async () => {
  await redis.stop();
  for (const node of [one, two, three]) expect(await (await call(node, "hello")).text()).toBe("Hello, world!\n");
  const refused = await putModule(two, "later", "echo");
  expect(refused.status).toBe(503);
  expect((await body(refused)).error.code).toBe("cluster_unavailable");
  expect((await fetch(`${two.url}/v1/functions/hello`, { method: "DELETE" })).status).toBe(503);
  const alone = await body(await fetch(`${one.url}/v1/nodes`));
  expect(alone.mode).toBe("cluster_unavailable");
  expect(alone.nodes.length).toBe(1);

  await redis.start();
  let redeployed = refused;
  await within(10_000, async () => (redeployed = await putModule(two, "later", "echo")).status !== 503);
  expect(redeployed.status).toBe(201);
  await within(1000, async () => (await (await call(three, "later", "back")).text()) === "back");
  const direct = new Redis(redis.url);
  try {
    // Redis came back without data: the nodes put their functions back.
    await within(2000, async () => (await direct.hget("thaw:functions", "default/hello")) !== null);
  } finally {
    direct.disconnect();
  }
  for (const node of [one, two, three]) expect((await call(node, "hello")).status).toBe(200);
});

test("a node restarted after a delete made elsewhere drops the function instead of republishing it", async () => {
  await three.stop();
  expect((await fetch(`${one.url}/v1/functions/later`, { method: "DELETE" })).status).toBe(204);
  three = await startServer({ dataDir: three.dataDir, env: env() });
  await Bun.sleep(500);
  expect((await call(three, "later")).status).toBe(404);
  expect((await call(three, "hello")).status).toBe(200);
  expect((await call(one, "later")).status).toBe(404);
});
