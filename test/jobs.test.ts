// Async jobs through a real server, on both queues: the embedded one
// (SQLite in the data directory) and the Redis queue on a real redis-server.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import Redis from "ioredis";
import { pack } from "msgpackr";
import { MAX_SYNC_WAIT_MS } from "../src/jobs/runner.ts";
import { type RedisServer, startRedis } from "./redis.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";

// biome-ignore lint: response bodies are checked field by field below.
type Json = any;

type Headers = Record<string, string>;
const ALPHA: Headers = { authorization: "Bearer alpha-token" };
const BETA: Headers = { authorization: "Bearer beta-token" };
/** beta may use 1 MiB of linear memory, and its function wants 4: every call is refused for memory. */
const SERVER_ENV = {
  THAW_TOKENS: "alpha-token:alpha,beta-token:beta",
  THAW_TENANT_MEMORY: `beta:0:${1 << 20}`,
  THAW_JOB_BACKOFF: "20",
  // The tests' receivers listen on loopback, which callbacks may not reach unless the operator allows it.
  THAW_CALLBACK_ALLOW: "127.0.0.1",
  THAW_CALLBACK_BACKOFF: "20",
  THAW_METRICS_TOKEN: "scrape-token",
};

async function deploy(s: ServerProcess, name: string, module: string, headers: Headers, query = "") {
  expect((await putModule(s, name, module, `wait=true${query}`, headers)).status).toBe(201);
}

async function submit(s: ServerProcess, name: string, body: string, headers = ALPHA, query = ""): Promise<Json> {
  const res = await fetch(`${s.url}/v1/functions/${name}/jobs${query ? `?${query}` : ""}`, { method: "POST", body, headers });
  const job: Json = await res.json();
  expect(res.status).toBe(202);
  expect(res.headers.get("location")).toBe(`/v1/jobs/${job.id}`);
  return job;
}

const getJob = async (s: ServerProcess, id: string, headers = ALPHA): Promise<Json> =>
  (await fetch(`${s.url}/v1/jobs/${id}`, { headers })).json();

/** Poll until the job reaches one of `statuses`. */
export async function waitForJob(s: ServerProcess, id: string, statuses: string[], timeoutMs = 20_000, headers = ALPHA) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await getJob(s, id, headers);
    if (statuses.includes(job.status)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} is still ${job.status} (${JSON.stringify(job)})`);
    await Bun.sleep(25);
  }
}

const backends: [string, () => Promise<{ env: Record<string, string>; stop(): Promise<void> }>][] = [
  ["embedded", async () => ({ env: {}, stop: async () => {} })],
  [
    "redis",
    async () => {
      const redis = await startRedis();
      return { env: { THAW_REDIS_URL: redis.url }, stop: () => redis.stop() };
    },
  ],
];

describe.each(backends)("%s queue", (_backend, setup) => {
  let s: ServerProcess;
  let backend: Awaited<ReturnType<typeof setup>>;
  beforeAll(async () => {
    backend = await setup();
    s = await startServer({ env: { ...SERVER_ENV, ...backend.env } });
    await Promise.all([
      deploy(s, "wordcount", "wordcount", ALPHA),
      deploy(s, "exit", "exit_code", ALPHA),
      deploy(s, "hello", "hello", BETA, "&memoryMiB=4"),
    ]);
  });
  afterAll(async () => {
    await s.stop();
    await backend.stop();
  });

  test("a job runs: 202 with a Location, then succeeded with its result, timings and node", async () => {
    const job = await submit(s, "wordcount", "to be or not to be");
    expect(job).toMatchObject({ function: "wordcount", tenant: "alpha", status: "queued", attempts: 0, maxAttempts: 3 });
    const done = await waitForJob(s, job.id, ["succeeded", "failed", "dead"]);
    expect(done).toMatchObject({ status: "succeeded", attempts: 1, result: { outcome: "ok", exitCode: 0, contentType: "text/plain; charset=utf-8" } });
    expect(done.node).toMatch(/:\d+:/);
    expect(done.queueMs).toBeGreaterThanOrEqual(0);
    expect(done.runMs).toBeGreaterThanOrEqual(0);
    expect(Date.parse(done.finishedAt)).toBeGreaterThanOrEqual(Date.parse(done.startedAt));
    const res = await fetch(`${s.url}${done.result.url}`, { headers: ALPHA });
    expect(res.headers.get("x-thaw-exit-code")).toBe("0");
    expect(JSON.parse(await res.text())).toMatchObject({ words: 6, top: [["be", 2], ["to", 2], expect.anything(), expect.anything()] });
    const metrics = await (await fetch(`${s.url}/metrics`, { headers: { authorization: "Bearer scrape-token" } })).text();
    expect(metrics).toMatch(/thaw_jobs_finished_total\{status="succeeded"\} [1-9]/);
    expect(metrics).toMatch(/thaw_job_attempts_total\{result="finished"\} [1-9]/);
    expect(metrics).toMatch(/thaw_job_queue_seconds_count [1-9]/);
  });

  test("a function error is the job's result and is not retried; with retryFunctionErrors it is, to dead", async () => {
    const failed = await waitForJob(s, (await submit(s, "exit", "7")).id, ["succeeded", "failed", "dead"]);
    expect(failed).toMatchObject({ status: "failed", attempts: 1, result: { outcome: "function_exit", exitCode: 7, stderr: "err\n" } });
    expect(failed.error).toBeUndefined();
    expect(await (await fetch(`${s.url}${failed.result.url}`, { headers: ALPHA })).text()).toBe("bye\n");

    const retried = await submit(s, "exit", "3", ALPHA, "attempts=2&retryFunctionErrors=true");
    const dead = await waitForJob(s, retried.id, ["succeeded", "failed", "dead"]);
    expect(dead).toMatchObject({ status: "dead", attempts: 2, error: { code: "function_exit" }, result: { exitCode: 3 } });
  });

  test("platform failures are retried with backoff and end dead; a dead job can be put back", async () => {
    const job = await submit(s, "hello", "", BETA, "attempts=3");
    const dead = await waitForJob(s, job.id, ["succeeded", "failed", "dead"], 20_000, BETA);
    expect(dead).toMatchObject({ status: "dead", attempts: 3, error: { code: "memory_exhausted" } });
    expect(dead.result).toBeUndefined();
    // Two backoffs of 20 and 40 ms lie between the first attempt and the end.
    expect(Date.parse(dead.finishedAt) - Date.parse(dead.createdAt)).toBeGreaterThanOrEqual(60);

    const res = await fetch(`${s.url}/v1/jobs/${job.id}/retry`, { method: "POST", headers: BETA });
    expect(res.status).toBe(202);
    const again = await waitForJob(s, job.id, ["dead"], 20_000, BETA);
    expect(again).toMatchObject({ status: "dead", attempts: 3, error: { code: "memory_exhausted" } });
    const notDead = await fetch(`${s.url}/v1/jobs/${(await submit(s, "wordcount", "x")).id}/retry`, { method: "POST", headers: ALPHA });
    expect(notDead.status).toBe(400);
  });

  test("a job belongs to its tenant; bad submits are refused before anything is queued", async () => {
    const job = await submit(s, "wordcount", "x");
    const other = await fetch(`${s.url}/v1/jobs/${job.id}`, { headers: BETA });
    expect(other.status).toBe(404);
    expect(((await other.json()) as Json).error.code).toBe("job_not_found");
    const bad = async (path: string, code: string, status: number, body = "") => {
      const res = await fetch(`${s.url}${path}`, { method: "POST", headers: ALPHA, body });
      expect(res.status).toBe(status);
      expect(((await res.json()) as Json).error.code).toBe(code);
    };
    await bad("/v1/functions/nope/jobs", "function_not_found", 404);
    await bad("/v1/functions/wordcount/jobs?attempts=0", "invalid_request", 400);
    await bad("/v1/functions/wordcount/jobs?callback=ftp://x", "invalid_request", 400);
    await bad("/v1/functions/wordcount/jobs", "payload_too_large", 413, "x".repeat((6 << 20) + 1));
    expect((await fetch(`${s.url}/v1/jobs/${job.id}`)).status).toBe(401);
  });

  test("job ids: a well-formed unknown one is 404 job_not_found, a malformed one a 400 that says what an id is", async () => {
    const answer = async (path: string, method = "GET") => {
      const res = await fetch(`${s.url}${path}`, { method, headers: ALPHA });
      expect(res.headers.get("content-type")).toContain("application/json");
      return { status: res.status, error: ((await res.json()) as Json).error };
    };
    for (const path of ["/v1/jobs/does-not-exist", `/v1/jobs/${crypto.randomUUID()}`, `/v1/jobs/${crypto.randomUUID()}/result`]) {
      const a = await answer(path);
      expect(a.status).toBe(404);
      expect(a.error.code).toBe("job_not_found");
      expect(a.error.message).toMatch(/no job/);
    }
    expect((await answer(`/v1/jobs/${crypto.randomUUID()}/retry`, "POST")).error.code).toBe("job_not_found");
    for (const [path, method] of [
      ["/v1/jobs/%7B", "GET"],
      ["/v1/jobs/a%20b", "GET"],
      ["/v1/jobs/%22%3E%3Cscript%3E", "GET"],
      [`/v1/jobs/${"x".repeat(129)}`, "GET"],
      ["/v1/jobs/%7B/result", "GET"],
      ["/v1/jobs/%7B%7D/retry", "POST"],
    ]) {
      const a = await answer(path!, method);
      expect(a.status).toBe(400);
      expect(a.error.code).toBe("invalid_request");
      expect(a.error.message).toMatch(/must be a job id: 1 to 128 of A-Z, a-z, 0-9/);
    }
  });

  test("a job submitted while its function compiles waits for the build and runs once", async () => {
    const deploy = await putModule(s, "wc-late", "wordcount", "", ALPHA);
    expect(deploy.status).toBe(202);
    const job = await submit(s, "wc-late", "one two");
    const done = await waitForJob(s, job.id, ["succeeded", "failed", "dead"], 60_000);
    expect(done).toMatchObject({ status: "succeeded", attempts: 1, result: { exitCode: 0 } });
  });

  test("the finished job is POSTed to its callback; a failing receiver is retried and recorded", async () => {
    const received: Json[] = [];
    let failures = 0;
    const receiver = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        if (new URL(req.url).pathname === "/broken") {
          failures++;
          return new Response("no", { status: 500 });
        }
        received.push({ job: (await req.json()) as Json, id: req.headers.get("x-thaw-job-id") });
        return new Response("ok");
      },
    });
    try {
      const callback = encodeURIComponent(`http://127.0.0.1:${receiver.port}/hook`);
      const job = await submit(s, "wordcount", "a b a", ALPHA, `callback=${callback}`);
      const done = await waitForJob(s, job.id, ["succeeded", "failed", "dead"]);
      for (let i = 0; i < 100 && (await getJob(s, job.id)).callback?.state !== "delivered"; i++) await Bun.sleep(20);
      expect((await getJob(s, job.id)).callback).toMatchObject({ state: "delivered", attempts: 1 });
      expect(received).toHaveLength(1);
      expect(received[0].id).toBe(job.id);
      expect(received[0].job).toMatchObject({ id: job.id, status: "succeeded", function: "wordcount", result: { exitCode: 0 } });
      expect(JSON.parse(Buffer.from(received[0].job.body, "base64").toString())).toMatchObject({ words: 3 });
      expect(done.status).toBe("succeeded");

      const broken = encodeURIComponent(`http://127.0.0.1:${receiver.port}/broken`);
      const job2 = await submit(s, "wordcount", "a", ALPHA, `callback=${broken}`);
      let view: Json;
      for (let i = 0; i < 200; i++) {
        view = await getJob(s, job2.id);
        if (view.callback?.state === "failed") break;
        await Bun.sleep(20);
      }
      expect(view.status).toBe("succeeded");
      expect(view.callback).toMatchObject({ state: "failed", attempts: 3, lastError: "callback delivery failed: HTTP 500" });
      expect(failures).toBe(3);
    } finally {
      receiver.stop(true);
    }
  });
});

test("embedded queue: jobs accepted before a kill -9 all finish after the restart", async () => {
  const env = { THAW_JOB_CONCURRENCY: "1" };
  const s = await startServer({ env });
  await deploy(s, "sleep", "sleep", {});
  const jobs: Json[] = [];
  for (let i = 0; i < 6; i++) jobs.push(await submit(s, "sleep", "300", {}));
  await waitForJob(s, jobs[0].id, ["running"], 10_000, {});
  s.proc.kill("SIGKILL");
  await s.proc.exited;

  const again = await startServer({ env, dataDir: s.dataDir });
  try {
    const done = await Promise.all(jobs.map((j) => waitForJob(again, j.id, ["succeeded", "failed", "dead"], 30_000, {})));
    expect(done.map((j) => j.status)).toEqual(Array(6).fill("succeeded"));
    // The one cut short ran again: two attempts.
    expect(done[0].attempts).toBe(2);
    expect(done.slice(1).every((j) => j.attempts === 1)).toBe(true);
    expect(again.logs.some((l) => l.msg === "jobs requeued after restart")).toBe(true);
  } finally {
    await again.stop();
  }
});

/** Submit `n` jobs of `name` at once; each 202 with the time the client saw it. */
async function submitMany(s: ServerProcess, name: string, n: number): Promise<{ id: string; at: number }[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const res = await fetch(`${s.url}/v1/functions/${name}/jobs`, { method: "POST", body: "one two" });
      expect(res.status).toBe(202);
      return { id: ((await res.json()) as Json).id as string, at: Date.now() };
    }),
  );
}

test("embedded queue: a 202 goes out only after its job is committed, and every accepted job survives a kill -9", async () => {
  const s = await startServer();
  await deploy(s, "wordcount", "wordcount", {});
  // Hold SQLite's write lock: no submit can be committed until it is released.
  const db = new Database(join(s.dataDir, "jobs.sqlite"));
  db.exec("BEGIN IMMEDIATE");
  const accepted = submitMany(s, "wordcount", 40);
  await Bun.sleep(500);
  const released = Date.now();
  db.exec("COMMIT");
  db.close();
  const jobs = await accepted;
  expect(jobs.every((j) => j.at >= released)).toBe(true);
  s.proc.kill("SIGKILL");
  await s.proc.exited;

  const again = await startServer({ dataDir: s.dataDir });
  try {
    const done = await Promise.all(jobs.map((j) => waitForJob(again, j.id, ["succeeded", "failed", "dead"], 30_000, {})));
    expect(done.map((j) => j.status)).toEqual(Array(40).fill("succeeded"));
  } finally {
    await again.stop();
  }
});

test("a job submitted while its function compiles ends dead with the build's error when the build fails", async () => {
  // Every compile on this server runs out of time.
  const s = await startServer({ env: { THAW_COMPILE_TIMEOUT: "1" } });
  try {
    expect((await putModule(s, "doomed", "wordcount", "")).status).toBe(202);
    const job = await submit(s, "doomed", "x", {});
    const dead = await waitForJob(s, job.id, ["succeeded", "failed", "dead"], 60_000, {});
    expect(dead).toMatchObject({ status: "dead", attempts: 1, error: { code: "function_failed" } });
    expect(dead.error.message).toMatch(/failed to deploy/);
  } finally {
    await s.stop();
  }
});

test("a job whose function is deleted before it runs ends dead with function_not_found once the sync window is over", async () => {
  const s = await startServer({ env: { THAW_JOB_CONCURRENCY: "1" } });
  try {
    expect((await putModule(s, "nap", "sleep", "wait=true")).status).toBe(201);
    expect((await putModule(s, "gone", "wordcount", "wait=true")).status).toBe(201);
    // The one slot is busy, so the second job is still queued when its function goes.
    const blocker = await submit(s, "nap", "1500", {});
    const job = await submit(s, "gone", "x", {});
    expect((await fetch(`${s.url}/v1/functions/gone`, { method: "DELETE" })).status).toBe(204);
    const dead = await waitForJob(s, job.id, ["succeeded", "failed", "dead"], MAX_SYNC_WAIT_MS + 15_000, {});
    expect(dead).toMatchObject({ status: "dead", error: { code: "function_not_found" } });
    expect(Date.parse(dead.finishedAt) - Date.parse(dead.createdAt)).toBeGreaterThanOrEqual(MAX_SYNC_WAIT_MS);
    expect((await getJob(s, blocker.id, {})).status).toBe("succeeded");
  } finally {
    await s.stop();
  }
}, MAX_SYNC_WAIT_MS + 60_000);

describe("redis queue", () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis({ persistent: true });
  });
  afterAll(async () => {
    await redis.stop();
  });

  test("a job another service puts in Redis (HSET + XADD, as redis.ts documents) is run; a malformed one ends dead", async () => {
    const s = await startServer({ env: { THAW_REDIS_URL: redis.url } });
    const producer = new Redis(redis.url);
    /** What a producer outside thaw does: the job's hash, then its stream entry, in one MULTI. */
    const enqueue = async (payload: Uint8Array, attempts: number) => {
      const id = crypto.randomUUID();
      await producer
        .multi()
        .hset(`thaw:q:job:${id}`, "tenant", "default", "function", "wordcount", "payload", Buffer.from(payload), "max", attempts)
        .xadd("thaw:q:stream", "*", "id", id)
        .exec();
      return id;
    };
    try {
      await deploy(s, "wordcount", "wordcount", {});
      const id = await enqueue(pack({ v: 1, tenant: "default", function: "wordcount", body: Buffer.from("one two two") }), 2);
      const done = await waitForJob(s, id, ["succeeded", "failed", "dead"], 20_000, {});
      expect(done).toMatchObject({ status: "succeeded", function: "wordcount", attempts: 1, maxAttempts: 2, result: { exitCode: 0 } });
      expect(JSON.parse(await (await fetch(`${s.url}${done.result.url}`)).text())).toMatchObject({ words: 3 });

      const bad = await enqueue(pack({ v: 9 }), 3);
      const dead = await waitForJob(s, bad, ["dead"], 20_000, {});
      expect(dead).toMatchObject({ status: "dead", attempts: 1, maxAttempts: 3, error: { code: "invalid_payload" } });
    } finally {
      producer.disconnect();
      await s.stop();
    }
  });

  test("a job that reaches a node before its function does waits for it instead of ending dead", async () => {
    // In a cluster the submitting node has the function and the claiming one may not have synced
    // it yet; a producer enqueueing straight into Redis just before the deploy is the same race, made certain.
    const s = await startServer({ env: { THAW_REDIS_URL: redis.url } });
    const producer = new Redis(redis.url);
    try {
      const id = crypto.randomUUID();
      const payload = pack({ v: 1, tenant: "default", function: "latecomer", body: Buffer.from("x y") });
      await producer
        .multi()
        .hset(`thaw:q:job:${id}`, "tenant", "default", "function", "latecomer", "payload", payload, "max", 1)
        .xadd("thaw:q:stream", "*", "id", id)
        .exec();
      await Bun.sleep(1500);
      expect((await getJob(s, id, {})).status).not.toBe("dead");
      await deploy(s, "latecomer", "wordcount", {});
      const done = await waitForJob(s, id, ["succeeded", "failed", "dead"], 20_000, {});
      expect(done).toMatchObject({ status: "succeeded", attempts: 1 });
    } finally {
      producer.disconnect();
      await s.stop();
    }
  });

  test("a server stopped with jobs queued: its successor on the same Redis runs them all", async () => {
    const env = { THAW_REDIS_URL: redis.url, THAW_JOB_CONCURRENCY: "1" };
    // Its own function name: the registry in this Redis outlives each test's servers.
    const s = await startServer({ env });
    await deploy(s, "slow", "sleep", {});
    const jobs: Json[] = [];
    for (let i = 0; i < 6; i++) jobs.push(await submit(s, "slow", "200", {}));
    await waitForJob(s, jobs[0].id, ["running", "succeeded"], 10_000, {});
    expect(await s.stop()).toBe(0);
    const again = await startServer({ env, dataDir: s.dataDir });
    try {
      const done = await Promise.all(jobs.map((j) => waitForJob(again, j.id, ["succeeded", "failed", "dead"], 30_000, {})));
      expect(done.map((j) => j.status)).toEqual(Array(6).fill("succeeded"));
      // The job running at the stop finished before the old node exited: one attempt each.
      expect(done.every((j) => j.attempts === 1)).toBe(true);
      expect(done.some((j) => j.node.includes(`:${again.proc.pid}:`))).toBe(true);
    } finally {
      await again.stop();
    }
  });

  test("a 202 goes out only once Redis has the job, and every accepted job survives the node's kill -9", async () => {
    const env = { THAW_REDIS_URL: redis.url };
    const s = await startServer({ env });
    const admin = new Redis(redis.url);
    let jobs: { id: string; at: number }[];
    try {
      await deploy(s, "count", "wordcount", {});
      // Redis holds every write for a while: no job can be stored before it lets go.
      const pausedUntil = Date.now() + 500;
      await admin.call("CLIENT", "PAUSE", "500", "WRITE");
      jobs = await submitMany(s, "count", 40);
      expect(jobs.every((j) => j.at >= pausedUntil)).toBe(true);
      s.proc.kill("SIGKILL");
      await s.proc.exited;
      expect(await Promise.all(jobs.map((j) => admin.exists(`thaw:q:job:${j.id}`)))).toEqual(Array(40).fill(1));
    } finally {
      admin.disconnect();
    }
    const again = await startServer({ env });
    try {
      const done = await Promise.all(jobs.map((j) => waitForJob(again, j.id, ["succeeded", "failed", "dead"], 30_000, {})));
      expect(done.map((j) => j.status)).toEqual(Array(40).fill("succeeded"));
    } finally {
      await again.stop();
    }
  });

  test("retention: a finished job is gone after THAW_JOB_RETENTION on every node, and Redis lets go of its record", async () => {
    const env = { THAW_REDIS_URL: redis.url, THAW_JOB_RETENTION: "500" };
    const [one, two] = await Promise.all([startServer({ env }), startServer({ env })]);
    const admin = new Redis(redis.url);
    try {
      await deploy(one, "kept", "wordcount", {});
      const job = await submit(one, "kept", "a b", {});
      const done = await waitForJob(one, job.id, ["succeeded", "failed", "dead"], 20_000, {});
      expect(done.status).toBe("succeeded");
      // Both the node that may remember it and one that reads Redis show it until it expires ...
      expect((await getJob(two, job.id, {})).status).toBe("succeeded");
      const ttl = await admin.pttl(`thaw:q:job:${job.id}`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(500 + 10_000);
      await Bun.sleep(Date.parse(done.finishedAt) + 600 - Date.now());
      // ... and neither after.
      for (const s of [one, two]) {
        const res = await fetch(`${s.url}/v1/jobs/${job.id}`);
        expect(res.status).toBe(404);
        expect(((await res.json()) as Json).error.code).toBe("job_not_found");
      }
    } finally {
      admin.disconnect();
      await Promise.all([one.stop(), two.stop()]);
    }
  });

  test("Redis down: async submits answer 503 queue_unavailable, sync calls go on; accepted jobs run once it is back", async () => {
    const env = { THAW_REDIS_URL: redis.url, THAW_JOB_CONCURRENCY: "1" };
    const s = await startServer({ env });
    try {
      await deploy(s, "sleep", "sleep", {});
      const accepted: Json[] = [];
      for (let i = 0; i < 5; i++) accepted.push(await submit(s, "sleep", "200", {}));
      await redis.stop();
      const refused = await fetch(`${s.url}/v1/functions/sleep/jobs`, { method: "POST", body: "1" });
      expect(refused.status).toBe(503);
      expect(refused.headers.get("retry-after")).toBe("1");
      expect(((await refused.json()) as Json).error.code).toBe("queue_unavailable");
      expect(await (await fetch(`${s.url}/v1/functions/sleep/invoke`, { method: "POST", body: "1" })).text()).toBe("slept 1\n");
      await redis.start();
      let late: Json;
      for (let i = 0; i < 100 && !late; i++) {
        const res = await fetch(`${s.url}/v1/functions/sleep/jobs`, { method: "POST", body: "1" });
        if (res.status === 202) late = await res.json();
        else await Bun.sleep(50);
      }
      const all = await Promise.all([...accepted, late].map((j) => waitForJob(s, j.id, ["succeeded", "failed", "dead"], 30_000, {})));
      expect(all.map((j) => j.status)).toEqual(Array(6).fill("succeeded"));
    } finally {
      await s.stop();
    }
  });
});
