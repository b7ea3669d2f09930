// Fair execution and bounded queueing (native/src/executor.c, cpu.c;
// src/service/invoke.ts): through the engine, and through a real `thaw
// serve` with two tenants.
//
//  - a call sleeping in WASI poll_oneoff holds no CPU slot, so sleeping
//    calls, however many, do not delay other calls;
//  - another tenant's CPU-bound calls do not either (preemption), while a
//    tenant's own backlog waits for it;
//  - a queued call taken back (its client left, or its queue deadline
//    passed) never runs;
//  - over HTTP: Alice's 32 sleeping calls do not delay Bob's; a tenant over
//    --tenant-concurrency gets 429 with Retry-After; a call waiting past
//    --queue-timeout (for an instance or a CPU slot) gets 429 with
//    Retry-After; a disconnected client's queued call never runs.
//
// Bounds are generous (machines are noisy): the point is no second-long
// stalls, not milliseconds.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { CancelledError, QueueTimeoutError } from "../src/engine/engine.ts";
import { loadFunction, sharedEngine, text } from "./helpers.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";

const enc = (s: string) => new TextEncoder().encode(s);
// biome-ignore lint: response bodies are checked field by field below.
const body = (res: Response): Promise<any> => res.json();

/** Every CPU slot taken by a looping call of `tenant` until its `timeoutMs`; `done` waits for them to time out and frees them. */
async function fillSlots(tenant: number, timeoutMs: number) {
  const engine = sharedEngine();
  const loop = await loadFunction("loop_forever", { timeoutMs });
  const hogs = Array.from({ length: engine.threads }, () => loop.restore());
  const running = hogs.map((inst) => engine.call(inst, { tenant, function: 1 }));
  return {
    async done() {
      const results = await Promise.all(running);
      for (const h of hogs) h.free();
      loop.release();
      return results;
    },
  };
}

describe("engine: CPU slots", () => {
  test("calls asleep in poll_oneoff hold no CPU slot: more sleepers than slots, and a call still runs at once", async () => {
    const engine = sharedEngine();
    const sleepMod = await loadFunction("sleep");
    const hello = await loadFunction("hello");
    const n = engine.threads * 3;
    const sleepers = Array.from({ length: n }, () => sleepMod.restore());
    const blocksBefore = engine.executorStats().blocks;
    const t0 = performance.now();
    const sleeping = sleepers.map((inst) => engine.call(inst, { stdin: enc("700"), tenant: 21, function: 1 }));
    await Bun.sleep(150);
    const during = engine.executorStats();
    const inst = hello.restore();
    const t1 = performance.now();
    const r = await engine.call(inst, { tenant: 22, function: 1 });
    const helloMs = performance.now() - t1;
    expect(text(r.stdout)).toBe("Hello, world!\n");
    expect(helloMs).toBeLessThan(500); // the sleepers sleep 700 ms
    expect(during.blocked).toBe(n);
    expect(during.running).toBeLessThanOrEqual(engine.threads);
    const results = await Promise.all(sleeping);
    for (const s of results) expect(text(s.stdout)).toBe("slept 700\n");
    // All of them slept at once: three rounds of slots would take 2.1 s.
    expect(performance.now() - t0).toBeLessThan(1800);
    expect(engine.executorStats().blocks - blocksBefore).toBeGreaterThanOrEqual(n);
    for (const s of sleepers) s.free();
    inst.free();
    sleepMod.release();
    hello.release();
  });

  test("another tenant's CPU-bound calls are preempted; the tenant's own backlog is not", async () => {
    const engine = sharedEngine();
    const hello = await loadFunction("hello");
    const hogs = await fillSlots(23, 1500);
    await Bun.sleep(100);
    const other = hello.restore();
    const t0 = performance.now();
    await engine.call(other, { tenant: 24, function: 1 });
    const otherMs = performance.now() - t0;
    // The hogs' own tenant, another function: waits for a slot (no preemption within a tenant).
    const own = hello.restore();
    const t1 = performance.now();
    const ownCall = engine.call(own, { tenant: 23, function: 2 });
    const results = await hogs.done();
    await ownCall;
    const ownMs = performance.now() - t1;
    for (const r of results) expect(r.status).toBe("timeout");
    expect(otherMs).toBeLessThan(700); // the hogs run 1500 ms
    expect(ownMs).toBeGreaterThan(900);
    expect(engine.executorStats().preemptions).toBeGreaterThan(0);
    other.free();
    own.free();
    hello.release();
  });

  test("a queued call taken back by its signal or its queue deadline never runs", async () => {
    const engine = sharedEngine();
    const leak = await loadFunction("state_leak");
    const hogs = await fillSlots(25, 1000);
    await Bun.sleep(50);
    // Same tenant as the hogs: queued behind them, not preempting.
    const inst = leak.restore();
    const ac = new AbortController();
    const aborted = engine.call(inst, { tenant: 25, function: 2, signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    await expect(aborted).rejects.toBeInstanceOf(CancelledError);
    const t0 = performance.now();
    const late = engine.call(inst, { tenant: 25, function: 2, queueDeadline: performance.now() + 200 });
    await expect(late).rejects.toBeInstanceOf(QueueTimeoutError);
    const waited = performance.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(150);
    expect(waited).toBeLessThan(800);
    await hogs.done();
    // Neither ran: state_leak counts its calls in its memory, and the
    // instance was never reset.
    const r = await engine.call(inst, { tenant: 25, function: 2 });
    expect(text(r.stdout)).toBe("count=0 buf=\n");
    // An aborted signal before the call: rejected at once.
    const pre = new AbortController();
    pre.abort();
    await expect(engine.call(inst, { signal: pre.signal })).rejects.toBeInstanceOf(CancelledError);
    inst.free();
    leak.release();
  });
});

/** The nice value in a /proc/.../stat line (its 19th field). */
const niceOf = (stat: string) => Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);

describe("engine: priority", () => {
  test("workers run guest code at nice 19, below the event loop's thread and the watchdog", async () => {
    const engine = sharedEngine();
    const sleepMod = await loadFunction("sleep");
    const inst = sleepMod.restore();
    // A sleep never runs inline: this call is on a worker.
    await engine.call(inst, { stdin: enc("1") });
    inst.free();
    sleepMod.release();
    const tasks = readdirSync("/proc/self/task").map((t) => ({
      comm: readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim(),
      nice: niceOf(readFileSync(`/proc/self/task/${t}/stat`, "utf8")),
    }));
    const workers = tasks.filter((t) => t.comm === "thaw-worker");
    expect(workers.length).toBeGreaterThan(0);
    for (const w of workers) expect(w.nice).toBe(19);
    expect(niceOf(readFileSync("/proc/self/stat", "utf8"))).toBe(0);
    // The watchdog stops calls on time: it must not inherit the workers' priority.
    expect(tasks.filter((t) => t.comm === "thaw-watchdog").map((t) => t.nice)).toEqual([0]);
  });
});

describe("engine: queue deadlines", () => {
  // One timer serves every queued call's deadline (engine.ts): a deadline
  // earlier than those already waiting must still fire on time, each call
  // leaves at its own deadline, and none of them runs.
  test("deadlines given out of order each take their call back at its own time", async () => {
    const engine = sharedEngine();
    const leak = await loadFunction("state_leak");
    const hogs = await fillSlots(26, 1500);
    await Bun.sleep(50);
    const t0 = performance.now();
    const waits = [900, 300, 600];
    const insts = waits.map(() => leak.restore());
    const left = await Promise.all(
      insts.map((inst, i) =>
        engine
          .call(inst, { tenant: 26, function: 2, queueDeadline: t0 + waits[i]! })
          .then(() => "ran", (e: Error) => (e instanceof QueueTimeoutError ? performance.now() - t0 : String(e))),
      ),
    );
    left.forEach((at, i) => {
      expect(typeof at).toBe("number");
      expect(at as number).toBeGreaterThanOrEqual(waits[i]! - 5);
      expect(at as number).toBeLessThan(waits[i]! + 250);
    });
    await hogs.done();
    for (const inst of insts) {
      const r = await engine.call(inst, { tenant: 26, function: 2 });
      expect(text(r.stdout)).toBe("count=0 buf=\n");
      inst.free();
    }
    leak.release();
  });
});

const alice = { authorization: "Bearer alice-token" };
const bob = { authorization: "Bearer bob-token" };
const TOKENS = { THAW_TOKENS: "alice-token:alice,bob-token:bob" };

function invoke(s: ServerProcess, name: string, payload: string, headers: Record<string, string>, signal?: AbortSignal) {
  return fetch(`${s.url}/v1/functions/${name}/invoke`, { method: "POST", body: payload, headers, signal });
}

async function poolCalls(s: ServerProcess, name: string, headers: Record<string, string>): Promise<number> {
  return (await body(await fetch(`${s.url}/v1/functions/${name}`, { headers }))).pool.calls;
}

describe("one tenant does not stall another", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    s = await startServer({ env: TOKENS });
    expect((await putModule(s, "nap", "sleep", "wait=true&maxConcurrency=32", alice)).status).toBe(201);
    expect((await putModule(s, "hi", "hello", "wait=true", bob)).status).toBe(201);
  });
  afterAll(async () => {
    await s?.stop();
  });

  test("Alice's 32 sleeping calls do not delay Bob's call", async () => {
    const t0 = performance.now();
    const naps = Array.from({ length: 32 }, () => invoke(s, "nap", "2500", alice));
    await Bun.sleep(400);
    const t1 = performance.now();
    const res = await invoke(s, "hi", "", bob);
    const bobMs = performance.now() - t1;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("Hello, world!\n");
    expect(bobMs).toBeLessThan(1000);
    const done = await Promise.all(naps);
    for (const r of done) {
      expect(r.status).toBe(200);
      expect(await r.text()).toBe("slept 2500\n");
    }
    // All 32 slept at the same time, on a node with far fewer cores.
    expect(performance.now() - t0).toBeLessThan(8000);
  });
});

describe("per-tenant concurrency", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    s = await startServer({ env: TOKENS, args: ["--tenant-concurrency", "2"] });
    expect((await putModule(s, "nap", "sleep", "wait=true", alice)).status).toBe(201);
    expect((await putModule(s, "nap", "sleep", "wait=true", bob)).status).toBe(201);
  });
  afterAll(async () => {
    await s?.stop();
  });

  test("a tenant over its limit gets 429 overloaded with Retry-After; another tenant does not", async () => {
    const first = [invoke(s, "nap", "800", alice), invoke(s, "nap", "800", alice)];
    await Bun.sleep(200);
    const refused = await invoke(s, "nap", "1", alice);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("1");
    const err = (await body(refused)).error;
    expect(err.code).toBe("overloaded");
    expect(err.reason).toBe("tenant_concurrency");
    const bobs = await invoke(s, "nap", "1", bob);
    expect(bobs.status).toBe(200);
    for (const r of await Promise.all(first)) expect(r.status).toBe(200);
    expect((await invoke(s, "nap", "1", alice)).status).toBe(200);
  });
});

describe("bounded queueing", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    // One CPU slot, so one tenant's CPU-bound call fills the node for its own other calls.
    s = await startServer({ env: TOKENS, args: ["--queue-timeout", "300", "--threads", "1"] });
    expect((await putModule(s, "one", "sleep", "wait=true&maxConcurrency=1", alice)).status).toBe(201);
    expect((await putModule(s, "spin", "loop_forever", "wait=true&timeoutMs=1500", alice)).status).toBe(201);
    expect((await putModule(s, "hi", "hello", "wait=true", alice)).status).toBe(201);
  });
  afterAll(async () => {
    await s?.stop();
  });

  test("waiting for an instance past --queue-timeout: 429 with Retry-After, and it never runs", async () => {
    const start = await poolCalls(s, "one", alice);
    const first = invoke(s, "one", "1200", alice);
    await Bun.sleep(100);
    const t0 = performance.now();
    const late = await invoke(s, "one", "1", alice);
    const waited = performance.now() - t0;
    expect(late.status).toBe(429);
    expect(late.headers.get("retry-after")).toBe("1");
    const err = (await body(late)).error;
    expect(err).toMatchObject({ code: "overloaded", reason: "queue_timeout" });
    expect(err.message).toContain("an instance");
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(1100);
    expect((await first).status).toBe(200);
    expect(await poolCalls(s, "one", alice)).toBe(start + 1);
  });

  test("waiting for a CPU slot past --queue-timeout: 429 with Retry-After, and it never runs", async () => {
    const hog = invoke(s, "spin", "", alice);
    await Bun.sleep(150);
    const before = await poolCalls(s, "hi", alice);
    const late = await invoke(s, "hi", "", alice);
    expect(late.status).toBe(429);
    expect(late.headers.get("retry-after")).toBe("1");
    const err = (await body(late)).error;
    expect(err).toMatchObject({ code: "overloaded", reason: "queue_timeout" });
    expect(err.message).toContain("a CPU slot");
    expect((await hog).status).toBe(504);
    expect(await poolCalls(s, "hi", alice)).toBe(before);
    expect((await invoke(s, "hi", "", alice)).status).toBe(200);
  });

  test("a disconnected client's queued call never runs", async () => {
    const start = await poolCalls(s, "one", alice);
    const first = invoke(s, "one", "800", alice);
    await Bun.sleep(100);
    const ac = new AbortController();
    const gone = invoke(s, "one", "1", alice, ac.signal).catch((e: Error) => e.name);
    await Bun.sleep(100);
    ac.abort();
    expect(await gone).toBe("AbortError");
    expect((await first).status).toBe(200);
    await Bun.sleep(100);
    // The call that went away was counted when it queued and uncounted when it left.
    expect(await poolCalls(s, "one", alice)).toBe(start + 1);
    // Logged (and counted in thaw_calls_total) as client_closed.
    expect(s.logs.filter((l) => l.msg === "call" && l.function === "one" && l.outcome === "client_closed").length).toBe(1);
  });

  test("a disconnected client's call queued for a CPU slot never runs", async () => {
    const hog = invoke(s, "spin", "", alice);
    await Bun.sleep(150);
    const before = await poolCalls(s, "hi", alice);
    const ac = new AbortController();
    const gone = invoke(s, "hi", "", alice, ac.signal).catch((e: Error) => e.name);
    await Bun.sleep(100);
    ac.abort();
    expect(await gone).toBe("AbortError");
    expect((await hog).status).toBe(504);
    await Bun.sleep(100);
    expect(await poolCalls(s, "hi", alice)).toBe(before);
  });
});
