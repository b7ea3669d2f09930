// Benchmark `invoke`: the HTTP path end to end. A real `thaw serve --examples`
// process answers POST /v1/functions/hello/invoke; wrk drives it and, with
// the same settings, a trivial Elysia app (scripts/bench/trivial-server.ts)
// whose one route returns a constant: the ceiling for any Bun + Elysia
// route on this machine, so invoke_vs_trivial is what thaw's call path
// (routing, auth, pool lease, engine round trip, reset, metrics) costs on
// top of plain HTTP.
//
//   loaded   wrk -t1 -c16 -d5s: requests/s and latency under load
//   warm     wrk -t1 -c1 -d3s: one connection, one call at a time; the
//            warm-call latency on loopback (wrk's own time included)
//   cold     bursts of concurrent fetches from this process against a
//            second deploy of hello, redeployed (new env, so a fresh pool
//            with one prewarmed instance) before every burst. Each call
//            is classed by the server's own X-Thaw-Cold header. The same
//            bursts against the trivial route are their peer: what a burst
//            costs this client and any Bun server. A redeploy of the same
//            code keeps its call profile, so hello's calls run inline and
//            one instance, free again as soon as each call returns, serves
//            the whole burst: there may be no cold call left to count.
//
// What "cold" means here: the pool had no idle instance, so the call
// restored one from the snapshot on the call path (map the image
// MAP_PRIVATE, copy the instance struct and tables: microseconds, see
// `bun run bench engine`). The module was already compiled, loaded and
// snapshotted at deploy time. That is not the cold start of the serverless
// literature (a new VM/container/runtime, hundreds of ms), which thaw has
// no equivalent of on the call path. Client-side latencies of a burst
// include queueing behind the rest of the burst, for cold and warm calls
// alike; the server-side means (from /metrics: acquire + run + reset inside
// thaw) leave HTTP out but still include waiting for an executor thread, so
// cold minus warm is an upper bound on what the restore adds.
//
// The CPU time each server process spends per request under load (every
// thread, from /proc) is the figure least disturbed by whatever else runs
// on the machine, which moves requests/s of both servers from run to run.
//
// Both servers and wrk share the machine (wrk gets one thread); the thaw
// server logs at warn so per-call log lines do not cost throughput. The
// server shares compiled artifacts with the tests (test-output/data) so it
// starts in seconds when they are cached.

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { benchScope, percentile as pct, ROOT, startThaw } from "./thaw-process.ts";

const DURATION = process.env.BENCH_DURATION ?? "5s";
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
// Each round redeploys (about a second: the build runs in a subprocess even
// when the artifact is cached), so rounds are what the cold phase costs.
const COLD_ROUNDS = Number(process.env.BENCH_COLD_ROUNDS ?? 16);
const BURST = Number(process.env.BENCH_BURST ?? 8);

const r1 = (x: number) => Math.round(x * 10) / 10;
const us = (x: number) => (Number.isFinite(x) ? `${x} µs` : "none");
const { procs, tmp, cleanup } = benchScope("invoke");

async function startTrivial(): Promise<{ url: string; pid: number }> {
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "trivial-server.ts")], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  procs.push(proc);
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`trivial server exited with ${await proc.exited}`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return { url: `http://127.0.0.1:${Number(text.trim())}/`, pid: proc.pid };
}

const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system, every thread) process `pid` has used so far. */
function cpuSeconds(pid: number): number {
  // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** wrk against `url`, with the CPU time per request the server `pid` spent meanwhile (µs). */
async function wrkWithCpu(url: string, pid: number, connections: number, duration: string) {
  const before = cpuSeconds(pid);
  const result = await wrk(url, connections, duration);
  return { ...result, cpuUsPerRequest: ((cpuSeconds(pid) - before) * 1e6) / result.requests };
}

interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  errors: string;
}

const LUA = join(tmp, "post.lua");

function toUs(v: string, unit: string): number {
  const n = Number(v);
  return unit === "us" ? n : unit === "ms" ? n * 1e3 : unit === "s" ? n * 1e6 : unit === "m" ? n * 6e7 : NaN;
}

async function wrk(url: string, connections: number, duration: string): Promise<WrkResult> {
  const p = Bun.spawn(["wrk", "-t1", `-c${connections}`, `-d${duration}`, "--latency", "-s", LUA, url], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`wrk failed (${code}): ${err}${out}`);
  const lat = (q: string) => {
    const m = new RegExp(`^\\s+${q}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(out);
    if (!m) throw new Error(`no ${q}% latency in wrk output:\n${out}`);
    return toUs(m[1]!, m[2]!);
  };
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const errors = [/Non-2xx or 3xx responses: \d+/.exec(out)?.[0], /Socket errors: .*/.exec(out)?.[0]].filter(Boolean).join("; ");
  if (/Non-2xx/.test(errors)) throw new Error(`wrk saw errors against ${url}: ${errors}\n${out}`);
  return { rps, p50: lat("50"), p99: lat("99"), requests, errors };
}

async function put(url: string, query: string, bytes: Uint8Array) {
  const r = await fetch(`${url}/v1/functions/hello-cold?wait=true&${query}`, {
    method: "PUT",
    headers: { "content-type": "application/wasm" },
    body: bytes,
  });
  if (!r.ok) throw new Error(`deploy hello-cold: ${r.status} ${await r.text()}`);
  await r.arrayBuffer();
}

/** Redeploy, then BURST concurrent calls; latencies split by X-Thaw-Cold. */
async function coldBursts(url: string, rounds: number) {
  const bytes = readFileSync(join(ROOT, "functions/build/hello.wasm"));
  const cold: number[] = [];
  const warm: number[] = [];
  const target = `${url}/v1/functions/hello-cold/invoke`;
  for (let i = 0; i < rounds; i++) {
    await put(url, `env=ROUND=${i}`, bytes);
    const calls = await Promise.all(
      Array.from({ length: BURST }, async () => {
        const s = Bun.nanoseconds();
        const r = await fetch(target, { method: "POST" });
        const body = await r.text();
        const t = (Bun.nanoseconds() - s) / 1e3;
        if (r.status !== 200 || !body.startsWith("Hello")) throw new Error(`hello-cold: ${r.status} ${body}`);
        return { t, cold: r.headers.get("x-thaw-cold") === "true" };
      }),
    );
    for (const c of calls) (c.cold ? cold : warm).push(c.t);
  }
  return { cold, warm };
}

/** The same bursts against the trivial route: what a burst of 8 costs any Bun server and this client. */
async function trivialBursts(url: string, rounds: number) {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    // About the pause a redeploy makes between the cold bursts.
    await Bun.sleep(3);
    const calls = await Promise.all(
      Array.from({ length: BURST }, async () => {
        const s = Bun.nanoseconds();
        const r = await fetch(url, { method: "POST" });
        await r.text();
        return (Bun.nanoseconds() - s) / 1e3;
      }),
    );
    times.push(...calls);
  }
  return times;
}

/** Sum and count of in-thaw latency of hello-cold calls by cold label, from /metrics. */
async function serverSums(url: string) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const get = (kind: "sum" | "count", cold: boolean) => {
    const re = new RegExp(`^thaw_call_duration_seconds_${kind}\\{[^}]*function="hello-cold"[^}]*cold="${cold}"[^}]*\\} ([\\d.e+-]+)$`, "m");
    return Number(re.exec(text)?.[1] ?? 0);
  };
  return { coldSum: get("sum", true), coldCount: get("count", true), warmSum: get("sum", false), warmCount: get("count", false) };
}

try {
  writeFileSync(LUA, 'wrk.method = "POST"\n');
  const [thaw, peerServer] = await Promise.all([startThaw(join(tmp, "data"), procs, { args: ["--examples"] }), startTrivial()]);
  const trivial = peerServer.url;
  const thawPid = procs.find((p) => p.pid !== peerServer.pid)!.pid;
  const invokeUrl = `${thaw}/v1/functions/hello/invoke`;
  const probe = await fetch(invokeUrl, { method: "POST" });
  const probeBody = await probe.text();
  if (probe.status !== 200 || !probeBody.startsWith("Hello")) throw new Error(`invoke probe: ${probe.status} ${probeBody}`);

  // Warm up both servers' JITs, then measure.
  await wrk(invokeUrl, CONNECTIONS, "1s");
  await wrk(trivial, CONNECTIONS, "1s");
  const loaded = await wrkWithCpu(invokeUrl, thawPid, CONNECTIONS, DURATION);
  const peer = await wrkWithCpu(trivial, peerServer.pid, CONNECTIONS, DURATION);
  const single = await wrk(invokeUrl, 1, "3s");
  const peerSingle = await wrk(trivial, 1, "3s");

  await put(thaw, "env=ROUND=warmup", readFileSync(join(ROOT, "functions/build/hello.wasm")));
  await coldBursts(thaw, 1);
  const before = await serverSums(thaw);
  const bursts = await coldBursts(thaw, COLD_ROUNDS);
  const after = await serverSums(thaw);
  await trivialBursts(trivial, 1);
  const peerBursts = await trivialBursts(trivial, COLD_ROUNDS);
  const serverMean = (cold: boolean) =>
    cold
      ? ((after.coldSum - before.coldSum) / (after.coldCount - before.coldCount)) * 1e6
      : ((after.warmSum - before.warmSum) / (after.warmCount - before.warmCount)) * 1e6;

  const figures = {
    function: "hello",
    wrk: `-t1 -c${CONNECTIONS} -d${DURATION}`,
    invoke_rps: Math.round(loaded.rps),
    trivial_rps: Math.round(peer.rps),
    invoke_vs_trivial: Math.round((loaded.rps / peer.rps) * 100) / 100,
    invoke_cpu_us_per_call: r1(loaded.cpuUsPerRequest),
    trivial_cpu_us_per_request: r1(peer.cpuUsPerRequest),
    loaded_us_p50: r1(loaded.p50),
    loaded_us_p99: r1(loaded.p99),
    trivial_loaded_us_p50: r1(peer.p50),
    trivial_loaded_us_p99: r1(peer.p99),
    warm_rps: Math.round(single.rps),
    warm_us_p50: r1(single.p50),
    warm_us_p99: r1(single.p99),
    trivial_warm_us_p50: r1(peerSingle.p50),
    trivial_warm_us_p99: r1(peerSingle.p99),
    burst: BURST,
    burst_us_p50: r1(pct([...bursts.cold, ...bursts.warm], 50)),
    burst_us_p99: r1(pct([...bursts.cold, ...bursts.warm], 99)),
    cold_calls: bursts.cold.length,
    warm_calls: bursts.warm.length,
    cold_us_p50: r1(pct(bursts.cold, 50)),
    cold_us_p99: r1(pct(bursts.cold, 99)),
    burst_warm_us_p50: r1(pct(bursts.warm, 50)),
    burst_warm_us_p99: r1(pct(bursts.warm, 99)),
    trivial_burst_us_p50: r1(pct(peerBursts, 50)),
    trivial_burst_us_p99: r1(pct(peerBursts, 99)),
    cold_server_us_mean: r1(serverMean(true)),
    warm_server_us_mean: r1(serverMean(false)),
    socket_errors: [loaded.errors, peer.errors, single.errors, peerSingle.errors].filter(Boolean).join(" | ") || null,
  };

  const rows: [string, string, string][] = [
    ["invoke hello, loaded", `${figures.invoke_rps} req/s`, `p50 ${figures.loaded_us_p50} µs, p99 ${figures.loaded_us_p99} µs`],
    ["trivial Elysia route, loaded", `${figures.trivial_rps} req/s`, `p50 ${figures.trivial_loaded_us_p50} µs, p99 ${figures.trivial_loaded_us_p99} µs`],
    ["invoke / trivial throughput", `${figures.invoke_vs_trivial}`, "target >= 0.5"],
    ["server CPU per request, loaded", `${figures.invoke_cpu_us_per_call} µs`, `trivial route ${figures.trivial_cpu_us_per_request} µs (user + system, all threads)`],
    ["warm call, one connection", `${figures.warm_us_p50} µs`, `p99 ${figures.warm_us_p99} µs, ${figures.warm_rps} req/s; target p50 <= 100 µs`],
    ["trivial route, one connection", `${figures.trivial_warm_us_p50} µs`, `p99 ${figures.trivial_warm_us_p99} µs`],
    [`calls in bursts of ${BURST} after a deploy`, `${figures.burst_us_p50} µs`, `p99 ${figures.burst_us_p99} µs (client side); target p50 <= 1 ms`],
    [`  of which cold`, us(figures.cold_us_p50), `p99 ${us(figures.cold_us_p99)}, ${figures.cold_calls} calls`],
    [`  of which warm`, `${figures.burst_warm_us_p50} µs`, `p99 ${figures.burst_warm_us_p99} µs, ${figures.warm_calls} calls`],
    [`trivial route, bursts of ${BURST}`, `${figures.trivial_burst_us_p50} µs`, `p99 ${figures.trivial_burst_us_p99} µs (client side)`],
    ["in-thaw mean, cold / warm", us(figures.cold_server_us_mean), `${figures.warm_server_us_mean} µs warm (acquire + run + reset)`],
  ];
  for (const [a, b, c] of rows) console.log(`${a.padEnd(34)} ${b.padStart(14)}  ${c}`);
  if (figures.socket_errors) console.log(`wrk socket errors: ${figures.socket_errors}`);
  console.log(JSON.stringify(figures));
} finally {
  await cleanup();
}
