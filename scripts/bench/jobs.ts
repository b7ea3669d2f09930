// Benchmark `jobs`: async calls end to end, against the same calls made
// synchronously in the same run, on three setups:
//
//   embedded   one node, no Redis: the SQLite queue in the data directory
//   redis-1    one node, the Redis queue (redis.ts) on a local redis-server
//   redis-3    three nodes sharing a redis-server; the function is
//              deployed on the first and fetched by the others
//
// BENCH_JOBS_SETUPS=embedded,redis-1 runs only those. Two phases per setup:
//
//   burst      BENCH_JOBS jobs of `hello` submitted by 32 concurrent
//              clients spread over the nodes; throughput is jobs / (last
//              finish - first accept), from the jobs' own timestamps, and
//              the accept rate (202s per second) is what the clients saw.
//              The sync peer: the same number of POST .../invoke with the
//              same concurrency, calls/s. Both run after a warm-up of
//              WARMUP jobs and calls (BENCH_JOBS_WARMUP, 10,000), so neither
//              is measured with a cold JIT: after 500 the JIT's threads still
//              took 30-40 µs of CPU per job (a sync call's path is shorter and
//              warm sooner), about 5 µs after 20,000.
//   latency    one job at a time: submit, poll until finished. Queue latency
//              is the server's accept-to-start (queueMs); completion is what
//              the client saw, submit to seeing it finished (polling every
//              2 ms). The sync peer: one call at a time.
//
// The burst also reports the nodes' CPU time (all threads, from /proc)
// per job -- submit, queue, run, record, one status read -- and per sync
// call: a ratio that holds when other work on the machine makes the
// rates noisy. Beside them the main thread's share (the event loop; the
// rest is mostly the JIT compiling, which a short burst still pays for)
// and Redis's own CPU per job.
//
// All processes share this machine's cores; on a 2-core machine three nodes
// compete with each other, Redis and this client, so redis-3 shows what the
// cluster costs more than what it scales to.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { type RedisServer, startRedis } from "../../test/redis.ts";
import { ROOT, startThaw } from "./thaw-process.ts";

const JOBS = Number(process.env.BENCH_JOBS ?? 2000);
const LATENCY_JOBS = Number(process.env.BENCH_LATENCY_JOBS ?? 200);
const CLIENTS = 32;
const WARMUP = Number(process.env.BENCH_JOBS_WARMUP ?? 10_000);

const procs: Subprocess[] = [];
const tmp = mkdtempSync(join(tmpdir(), "thaw-bench-jobs-"));

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const r1 = (x: number) => Math.round(x * 10) / 10;

async function waitUntil(what: string, ok: () => Promise<boolean>, timeoutMs = 180_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what} not ready in time`);
    await Bun.sleep(50);
  }
}

async function deploy(url: string) {
  const res = await fetch(`${url}/v1/functions/hello?wait=true`, {
    method: "PUT",
    headers: { "content-type": "application/wasm" },
    body: readFileSync(join(ROOT, "functions/build/hello.wasm")),
  });
  if (!res.ok) throw new Error(`deploy: ${res.status} ${await res.text()}`);
}

interface JobView {
  id: string;
  status: string;
  createdAt: string;
  finishedAt?: string;
  queueMs?: number;
}

const FINISHED = new Set(["succeeded", "failed", "dead"]);

async function getJob(url: string, id: string): Promise<JobView> {
  return (await (await fetch(`${url}/v1/jobs/${id}`)).json()) as JobView;
}

async function submit(url: string): Promise<JobView> {
  const res = await fetch(`${url}/v1/functions/hello/jobs`, { method: "POST" });
  if (res.status !== 202) throw new Error(`submit: ${res.status} ${await res.text()}`);
  return (await res.json()) as JobView;
}

/** Run `total` tasks with CLIENTS workers; task i goes to nodes[i % n]. */
async function fanOut<T>(total: number, nodes: string[], task: (url: string) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      for (let i = next++; i < total; i = next++) out[i] = await task(nodes[i % nodes.length]!);
    }),
  );
  return out;
}

/**
 * CPU time (ms) process `pid` has used so far, and the part of it its main
 * thread used (the event loop; the rest is the JIT's and the GC's threads
 * and the engine's workers). From each thread's schedstat, in nanoseconds:
 * /proc's stat counts in 10 ms ticks, too coarse for a sync call's few
 * tens of ms over a burst. A thread that ended during the burst is missed:
 * thaw's threads live as long as the process.
 */
function cpuMs(pid: number): { all: number; main: number } {
  let all = 0;
  let main = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let ns: number;
    try {
      ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      continue; // ended meanwhile
    }
    all += ns / 1e6;
    if (tid === String(pid)) main += ns / 1e6;
  }
  return { all, main };
}

/** CPU time (ms) the node processes have used so far: all their threads, and their main threads. */
const nodesCpuMs = () =>
  procs.reduce(
    (ms, p) => {
      const c = cpuMs(p.pid);
      return { all: ms.all + c.all, main: ms.main + c.main };
    },
    { all: 0, main: 0 },
  );
/** ... and the Redis they share, if any. */
const redisCpuMs = () => (redis?.pid ? cpuMs(redis.pid).all : 0);

/** Wait until every job is finished (succeeded, or the benchmark fails). */
async function finishedAll(nodes: string[], accepted: JobView[]): Promise<JobView[]> {
  const finished: JobView[] = [];
  for (const [i, job] of accepted.entries()) {
    const url = nodes[i % nodes.length]!;
    let view = await getJob(url, job.id);
    while (!FINISHED.has(view.status)) {
      await Bun.sleep(20);
      view = await getJob(url, job.id);
    }
    if (view.status !== "succeeded") throw new Error(`job ${job.id} ${view.status}`);
    finished.push(view);
  }
  return finished;
}

const invoke = async (url: string) => {
  const res = await fetch(`${url}/v1/functions/hello/invoke`, { method: "POST" });
  if (!res.ok) throw new Error(`invoke: ${res.status}`);
  await res.arrayBuffer();
};

async function burst(nodes: string[]) {
  await finishedAll(nodes, await fanOut(WARMUP, nodes, submit));
  await fanOut(WARMUP, nodes, invoke);

  const cpuBefore = nodesCpuMs();
  const redisBefore = redisCpuMs();
  const submitted = performance.now();
  const accepted = await fanOut(JOBS, nodes, submit);
  const acceptRate = JOBS / ((performance.now() - submitted) / 1000);
  const finished = await finishedAll(nodes, accepted);
  const cpuAfter = nodesCpuMs();
  const jobCpuUs = ((cpuAfter.all - cpuBefore.all) * 1000) / JOBS;
  const jobMainUs = ((cpuAfter.main - cpuBefore.main) * 1000) / JOBS;
  const redisCpuUs = ((redisCpuMs() - redisBefore) * 1000) / JOBS;
  const first = Math.min(...finished.map((j) => Date.parse(j.createdAt)));
  const last = Math.max(...finished.map((j) => Date.parse(j.finishedAt!)));
  const asyncRate = JOBS / ((last - first) / 1000);

  const syncCpuBefore = nodesCpuMs();
  const started = performance.now();
  await fanOut(JOBS, nodes, invoke);
  const syncRate = JOBS / ((performance.now() - started) / 1000);
  const syncCpuAfter = nodesCpuMs();
  const syncCpuUs = ((syncCpuAfter.all - syncCpuBefore.all) * 1000) / JOBS;
  const syncMainUs = ((syncCpuAfter.main - syncCpuBefore.main) * 1000) / JOBS;
  return {
    asyncJobsPerSec: Math.round(asyncRate), acceptsPerSec: Math.round(acceptRate), syncCallsPerSec: Math.round(syncRate),
    cpuUsPerJob: Math.round(jobCpuUs), cpuUsPerSyncCall: Math.round(syncCpuUs), redisCpuUsPerJob: Math.round(redisCpuUs),
    mainCpuUsPerJob: Math.round(jobMainUs), mainCpuUsPerSyncCall: Math.round(syncMainUs),
  };
}

async function latency(nodes: string[]) {
  const queueMs: number[] = [];
  const completionMs: number[] = [];
  const syncMs: number[] = [];
  for (let i = 0; i < LATENCY_JOBS; i++) {
    const url = nodes[i % nodes.length]!;
    const t0 = performance.now();
    const job = await submit(url);
    let view = job;
    while (!FINISHED.has(view.status)) {
      await Bun.sleep(2);
      view = await getJob(url, job.id);
    }
    completionMs.push(performance.now() - t0);
    queueMs.push(view.queueMs ?? NaN);
    const s0 = performance.now();
    await (await fetch(`${url}/v1/functions/hello/invoke`, { method: "POST" })).arrayBuffer();
    syncMs.push(performance.now() - s0);
  }
  return {
    queueP50Ms: pct(queueMs, 50),
    queueP99Ms: pct(queueMs, 99),
    completionP50Ms: r1(pct(completionMs, 50)),
    completionP99Ms: r1(pct(completionMs, 99)),
    syncP50Ms: r1(pct(syncMs, 50)),
    syncP99Ms: r1(pct(syncMs, 99)),
  };
}

async function setup(name: string, nodes: number, redisUrl?: string): Promise<string[]> {
  const env: Record<string, string> = redisUrl ? { THAW_REDIS_URL: redisUrl } : {};
  const urls: string[] = [];
  for (let i = 0; i < nodes; i++) urls.push(await startThaw(join(tmp, `${name}-${i}`), procs, { env }));
  await deploy(urls[0]!);
  // Other nodes learn the function from the shared registry.
  for (const url of urls) await waitUntil(`hello on ${url}`, async () => (await fetch(`${url}/v1/functions/hello/invoke`, { method: "POST" })).ok);
  return urls;
}

let redis: RedisServer | undefined;

/** The nodes first, then the Redis they share. */
async function stopAll() {
  for (const p of procs.splice(0)) {
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 5000);
    await p.exited;
    clearTimeout(t);
  }
  await redis?.stop();
  redis = undefined;
}

const results: Record<string, unknown> = {};
try {
  const only = process.env.BENCH_JOBS_SETUPS?.split(",");
  for (const [name, nodes, withRedis] of [["embedded", 1, false], ["redis-1", 1, true], ["redis-3", 3, true]] as const) {
    if (only && !only.includes(name)) continue;
    redis = withRedis ? await startRedis() : undefined;
    const urls = await setup(name, nodes, redis?.url);
    const b = await burst(urls);
    const l = await latency(urls);
    results[name] = {
      nodes, ...b, ...l,
      asyncVsSync: Math.round((b.asyncJobsPerSec / b.syncCallsPerSec) * 100) / 100,
      cpuSyncVsJob: Math.round((b.cpuUsPerSyncCall / b.cpuUsPerJob) * 100) / 100,
    };
    await stopAll();
  }
  console.log(`jobs benchmark: ${JOBS} jobs of hello in the burst (after ${WARMUP} to warm up), ${LATENCY_JOBS} one at a time\n`);
  console.log(
    "setup      nodes  async jobs/s  accepts/s  sync calls/s  ratio  cpu µs/job  cpu µs/call  cpu ratio  main µs/job,call  redis µs/job  queue p50/p99 ms  job done p50/p99 ms  sync p50/p99 ms",
  );
  for (const [name, r] of Object.entries(results) as [string, Record<string, number>][]) {
    console.log(
      `${name.padEnd(10)} ${String(r.nodes).padStart(5)}  ${String(r.asyncJobsPerSec).padStart(12)}  ${String(r.acceptsPerSec).padStart(9)}  ${String(r.syncCallsPerSec).padStart(12)}  ${String(r.asyncVsSync).padStart(5)}  ${String(r.cpuUsPerJob).padStart(10)}  ${String(r.cpuUsPerSyncCall).padStart(11)}  ${String(r.cpuSyncVsJob).padStart(9)}  ${`${r.mainCpuUsPerJob},${r.mainCpuUsPerSyncCall}`.padStart(16)}  ${String(r.redisCpuUsPerJob).padStart(12)}  ${`${r.queueP50Ms}/${r.queueP99Ms}`.padStart(16)}  ${`${r.completionP50Ms}/${r.completionP99Ms}`.padStart(19)}  ${`${r.syncP50Ms}/${r.syncP99Ms}`.padStart(15)}`,
    );
  }
  console.log(JSON.stringify(results));
} finally {
  await stopAll();
  rmSync(tmp, { recursive: true, force: true });
}
