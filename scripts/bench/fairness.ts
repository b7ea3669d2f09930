// Benchmark `fairness`: does one tenant's load delay another tenant's calls?
// A real `thaw serve` with two tenants: "light" calls hello (a trivial
// call, one at a time, from this process) and "heavy" loads the node from
// a second process (so its client work does not sit in the light client's
// event loop). Three phases, one run:
//
//   alone     light's calls with nothing else on the node
//   sleeping  heavy keeps BENCH_SLEEPERS calls of `sleep` (functions/tests/
//             sleep.c: nanosleep, i.e. WASI poll_oneoff on a clock) in
//             flight, each sleeping BENCH_SLEEP_MS: far more sleeping
//             calls than the node has cores
//   cpu       heavy keeps BENCH_CPU_CLIENTS calls of `kernel` (CPU-bound,
//             BENCH_KERNEL_N) in flight: every core busy with its backlog
//
// For each phase: light's p50/p99 latency (client side: HTTP, queueing and
// the call) and how many calls heavy completed meanwhile (so a "fair" result
// that starved heavy would show). The target: light's p99 under load within
// 2x of its p99 alone. Light's calls are sequential (one in flight), heavy
// stays under its tenant's concurrency limit (default 64), so nothing here
// is refused; any error fails the run.
//
// The server shares compiled artifacts with the tests (test-output/data).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { benchScope, percentile as pct, ROOT, startThaw } from "./thaw-process.ts";

const LOAD_ENV = "THAW_FAIRNESS_LOAD";

interface LoadSpec {
  url: string;
  token: string;
  fn: string;
  body: string;
  clients: number;
  durationMs: number;
}

interface LoadResult {
  calls: number;
  errors: Record<string, number>;
  meanMs: number;
}

/** The heavy tenant's client, in its own process: `clients` closed loops for `durationMs`. */
async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const until = performance.now() + spec.durationMs;
  let calls = 0;
  let total = 0;
  const errors: Record<string, number> = {};
  const target = `${spec.url}/v1/functions/${spec.fn}/invoke`;
  await Promise.all(
    Array.from({ length: spec.clients }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        const r = await fetch(target, { method: "POST", body: spec.body, headers: { authorization: `Bearer ${spec.token}` } });
        await r.arrayBuffer();
        if (r.status === 200) {
          calls++;
          total += performance.now() - t0;
        } else errors[r.status] = (errors[r.status] ?? 0) + 1;
      }
    }),
  );
  return { calls, errors, meanMs: calls ? total / calls : 0 };
}

if (process.env[LOAD_ENV]) {
  console.log(JSON.stringify(await runLoad(JSON.parse(process.env[LOAD_ENV]!) as LoadSpec)));
  process.exit(0);
}

const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 4000);
const WARMUP_MS = 1000;
const SLEEPERS = Number(process.env.BENCH_SLEEPERS ?? 48);
const SLEEP_MS = Number(process.env.BENCH_SLEEP_MS ?? 200);
const THREADS = Math.max(2, navigator.hardwareConcurrency);
const CPU_CLIENTS = Number(process.env.BENCH_CPU_CLIENTS ?? 4 * THREADS);
const KERNEL_N = process.env.BENCH_KERNEL_N ?? "400000";

const r2 = (x: number) => Math.round(x * 100) / 100;
const { procs, tmp, cleanup } = benchScope("fairness");

const LIGHT = "light-token";
const HEAVY = "heavy-token";

async function deploy(url: string, token: string, name: string, module: string, query: string) {
  const r = await fetch(`${url}/v1/functions/${name}?wait=true&${query}`, {
    method: "PUT",
    headers: { "content-type": "application/wasm", authorization: `Bearer ${token}` },
    body: readFileSync(join(ROOT, "functions/build", `${module}.wasm`)),
  });
  if (!r.ok) throw new Error(`deploy ${name}: ${r.status} ${await r.text()}`);
  await r.arrayBuffer();
}

async function lightCall(url: string): Promise<{ ms: number; serverMs: number }> {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/functions/hello/invoke`, { method: "POST", headers: { authorization: `Bearer ${LIGHT}` } });
  const body = await r.text();
  const ms = performance.now() - t0;
  if (r.status !== 200 || !body.startsWith("Hello")) throw new Error(`light call: ${r.status} ${body}`);
  return { ms, serverMs: Number(r.headers.get("x-thaw-duration-ms")) };
}

/** Light's sequential calls for `durationMs`: client latencies (ms). */
async function measureLight(url: string, durationMs: number): Promise<number[]> {
  const out: number[] = [];
  const until = performance.now() + durationMs;
  while (performance.now() < until) out.push((await lightCall(url)).ms);
  return out;
}

function startLoad(spec: LoadSpec): Promise<LoadResult> {
  const proc = Bun.spawn([process.execPath, import.meta.path], {
    env: { ...process.env, [LOAD_ENV]: JSON.stringify(spec) },
    stdout: "pipe",
    stderr: "inherit",
  });
  procs.push(proc);
  return (async () => {
    const out = await new Response(proc.stdout).text();
    const code = await proc.exited;
    if (code !== 0) throw new Error(`load generator exited with ${code}`);
    return JSON.parse(out.trim().split("\n").at(-1)!) as LoadResult;
  })();
}

interface Phase {
  name: string;
  latencies: number[];
  heavy?: LoadResult;
  heavyFn?: string;
}

async function loaded(url: string, name: string, fn: string, body: string, clients: number): Promise<Phase> {
  const load = startLoad({ url, token: HEAVY, fn, body, clients, durationMs: WARMUP_MS + DURATION_MS + 500 });
  await Bun.sleep(WARMUP_MS);
  const latencies = await measureLight(url, DURATION_MS);
  const heavy = await load;
  const errors = Object.entries(heavy.errors);
  if (errors.length) throw new Error(`heavy tenant's calls failed in phase ${name}: ${JSON.stringify(heavy.errors)}`);
  return { name, latencies, heavy, heavyFn: fn };
}

try {
  const url = await startThaw(join(tmp, "data"), procs, {
    env: { THAW_TOKENS: `${LIGHT}:light,${HEAVY}:heavy`, THAW_THREADS: String(THREADS) },
  });
  await deploy(url, LIGHT, "hello", "hello", "");
  await deploy(url, HEAVY, "sleeper", "sleep", `maxConcurrency=${SLEEPERS}&timeoutMs=30000`);
  await deploy(url, HEAVY, "crunch", "kernel", `maxConcurrency=${CPU_CLIENTS}&timeoutMs=30000`);
  // JIT and pools warm: a few calls of each.
  await measureLight(url, 500);
  const warmKernel = await startLoad({ url, token: HEAVY, fn: "crunch", body: KERNEL_N, clients: 1, durationMs: 300 });

  const phases: Phase[] = [];
  phases.push({ name: "alone", latencies: await measureLight(url, DURATION_MS) });
  phases.push(await loaded(url, "sleeping", "sleeper", String(SLEEP_MS), SLEEPERS));
  phases.push(await loaded(url, "cpu", "crunch", KERNEL_N, CPU_CLIENTS));

  const alone = phases[0]!;
  const aloneP99 = pct(alone.latencies, 99);
  const figures: Record<string, unknown> = {
    threads: THREADS,
    sleepers: SLEEPERS,
    sleep_ms: SLEEP_MS,
    cpu_clients: CPU_CLIENTS,
    kernel_n: Number(KERNEL_N),
    kernel_call_ms: r2(warmKernel.meanMs),
    duration_ms: DURATION_MS,
  };
  console.log(`light tenant: sequential hello calls; heavy tenant: ${SLEEPERS} x sleep(${SLEEP_MS} ms), then ${CPU_CLIENTS} x kernel(${KERNEL_N}) (~${r2(warmKernel.meanMs)} ms alone); ${THREADS} CPU slots`);
  console.log(`${"phase".padEnd(10)} ${"calls".padStart(6)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"max ms".padStart(8)} ${"p99/alone".padStart(10)}  heavy tenant meanwhile`);
  for (const p of phases) {
    const p50 = pct(p.latencies, 50);
    const p99 = pct(p.latencies, 99);
    const max = Math.max(...p.latencies);
    const ratio = p99 / aloneP99;
    const heavy = p.heavy ? `${p.heavy.calls} ${p.heavyFn} calls (${r2(p.heavy.calls / ((WARMUP_MS + DURATION_MS + 500) / 1000))}/s, mean ${r2(p.heavy.meanMs)} ms)` : "-";
    console.log(
      `${p.name.padEnd(10)} ${String(p.latencies.length).padStart(6)} ${r2(p50).toFixed(2).padStart(8)} ${r2(p99).toFixed(2).padStart(8)} ${r2(max).toFixed(2).padStart(8)} ${r2(ratio).toFixed(2).padStart(10)}  ${heavy}`,
    );
    figures[`${p.name}_calls`] = p.latencies.length;
    figures[`${p.name}_p50_ms`] = r2(p50);
    figures[`${p.name}_p99_ms`] = r2(p99);
    figures[`${p.name}_max_ms`] = r2(max);
    if (p.heavy) {
      figures[`${p.name}_p99_vs_alone`] = r2(ratio);
      figures[`${p.name}_heavy_calls`] = p.heavy.calls;
      figures[`${p.name}_heavy_mean_ms`] = r2(p.heavy.meanMs);
    }
  }
  const worst = Math.max(figures.sleeping_p99_vs_alone as number, figures.cpu_p99_vs_alone as number);
  figures.target_met = worst <= 2;
  console.log(`target: p99 under load within 2x of alone: ${worst <= 2 ? "met" : "NOT met"} (worst ${r2(worst)}x)`);
  console.log(JSON.stringify(figures));
} finally {
  await cleanup();
}
