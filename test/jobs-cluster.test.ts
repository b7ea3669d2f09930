// Thaw nodes working one job queue on a real redis-server: a node killed
// with jobs in hand loses none of them, a job whose last attempt died with
// its node ends dead instead of running again, and a node frozen past its
// claim cannot overwrite the outcome of the node that took the job over.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { type RedisServer, startRedis } from "./redis.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";

// biome-ignore lint: response bodies are checked field by field below.
type Json = any;

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

const FINISHED = ["succeeded", "failed", "dead"];

/** The job as `server` shows it once its status is one of `statuses`, or the last view after 15 s. */
async function jobUntil(server: ServerProcess, id: string, statuses: string[]): Promise<Json> {
  let view: Json;
  for (let i = 0; i < 300; i++) {
    view = await (await fetch(`${server.url}/v1/jobs/${id}`)).json();
    if (statuses.includes(view.status)) break;
    await Bun.sleep(50);
  }
  return view;
}

async function jobsOn(s: ServerProcess, ids: string[]): Promise<Json[]> {
  return Promise.all(ids.map(async (id) => (await fetch(`${s.url}/v1/jobs/${id}`)).json()));
}

test("a node killed with -9 while it runs jobs: another node finishes them", async () => {
  const env = { THAW_REDIS_URL: redis.url, THAW_JOB_CONCURRENCY: "2" };
  const nodes = await Promise.all([startServer({ env }), startServer({ env }), startServer({ env })]);
  const [one, two, three] = nodes as [ServerProcess, ServerProcess, ServerProcess];
  try {
    expect((await putModule(one, "sleep", "sleep")).status).toBe(201);
    for (const s of [two, three]) {
      let status = 0;
      for (let i = 0; i < 100 && status !== 200; i++) {
        status = (await fetch(`${s.url}/v1/functions/sleep/invoke`, { method: "POST", body: "1" })).status;
        if (status !== 200) await Bun.sleep(50);
      }
      expect(status).toBe(200);
    }

    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await fetch(`${one.url}/v1/functions/sleep/jobs`, { method: "POST", body: "1500" });
      expect(r.status).toBe(202);
      ids.push(((await r.json()) as Json).id);
    }
    const onThree = `:${three.proc.pid}:`;
    let held: Json[] = [];
    for (let i = 0; i < 200 && held.length === 0; i++) {
      held = (await jobsOn(one, ids)).filter((j) => j.status === "running" && j.node?.includes(onThree));
      if (held.length === 0) await Bun.sleep(25);
    }
    expect(held.length).toBeGreaterThan(0);
    three.proc.kill("SIGKILL");
    await three.proc.exited;

    let views: Json[] = [];
    for (let i = 0; i < 600; i++) {
      views = await jobsOn(two, ids);
      if (views.every((j) => FINISHED.includes(j.status))) break;
      await Bun.sleep(100);
    }
    expect(views.map((j) => j.status)).toEqual(Array(12).fill("succeeded"));
    for (const lost of held) {
      const now = views.find((j) => j.id === lost.id);
      expect(now.node).not.toContain(onThree);
      expect(now.attempts).toBeGreaterThanOrEqual(2);
    }
    expect(new Set(views.map((j) => j.node)).size).toBeGreaterThanOrEqual(2);
    // A node answers for the jobs it finished from memory, the other from Redis: the same record either way.
    expect(await jobsOn(one, ids)).toEqual(views);
  } finally {
    await Promise.all([one.stop(), two.stop()]);
  }
});

test("a job whose last attempt dies with its node ends dead (node_lost), and is not run again", async () => {
  const env = { THAW_REDIS_URL: redis.url };
  const one = await startServer({ env });
  let two: ServerProcess | undefined;
  try {
    expect((await putModule(one, "nap", "sleep")).status).toBe(201);
    const r = await fetch(`${one.url}/v1/functions/nap/jobs?attempts=1`, { method: "POST", body: "5000" });
    expect(r.status).toBe(202);
    const { id } = (await r.json()) as Json;
    let view = await jobUntil(one, id, ["running"]);
    expect(view.status).toBe("running");
    one.proc.kill("SIGKILL");
    await one.proc.exited;

    two = await startServer({ env });
    view = await jobUntil(two, id, FINISHED);
    expect(view).toMatchObject({ status: "dead", attempts: 1, maxAttempts: 1, error: { code: "node_lost" } });
    expect(view.node).toContain(`:${two.proc.pid}:`);
  } finally {
    await two?.stop();
  }
});

test("a node frozen past its claim: another node reruns the job, and the frozen one's late outcome is dropped", async () => {
  const env = { THAW_REDIS_URL: redis.url };
  const one = await startServer({ env });
  let two: ServerProcess | undefined;
  try {
    expect((await putModule(one, "doze", "sleep")).status).toBe(201);
    const r = await fetch(`${one.url}/v1/functions/doze/jobs`, { method: "POST", body: "1000" });
    const { id } = (await r.json()) as Json;
    let view = await jobUntil(one, id, ["running"]);
    expect(view.status).toBe("running");
    // Frozen (not dead): its claim runs out, and the second node takes the job over.
    one.proc.kill("SIGSTOP");
    two = await startServer({ env });
    view = await jobUntil(two, id, ["succeeded"]);
    expect(view).toMatchObject({ status: "succeeded", attempts: 2 });
    expect(view.node).toContain(`:${two.proc.pid}:`);
    one.proc.kill("SIGCONT");
    // The first node's attempt ends now; what it tries to record must not replace the second's.
    for (let i = 0; i < 100 && !one.logs.some((l) => String(l.msg).includes("claim was taken over")); i++) await Bun.sleep(50);
    expect(one.logs.some((l) => l.msg === "a job's claim was taken over; this attempt's outcome is dropped" && l.job === id)).toBe(true);
    expect(await (await fetch(`${one.url}/v1/jobs/${id}`)).json()).toEqual(view);
  } finally {
    one.proc.kill("SIGCONT");
    await Promise.all([one.stop(), two?.stop()]);
  }
});
