// A function's warm pool with the real engine under concurrent calls:
// concurrency cap, bounded wait queue, warm reuse, retirement.

import { expect, test } from "bun:test";
import { FunctionPool, OverloadedError, RetiredError, WaitTimeoutError } from "../src/pool/pool.ts";
import { loadFunction, sharedEngine, text } from "./helpers.ts";

test("concurrent calls share a capped pool; waiters run as slots free up", async () => {
  const pool = new FunctionPool(await loadFunction("hello"), { maxConcurrency: 4, maxWaiting: 100, maxIdle: 4 }, 1);
  pool.prewarm(2);
  const engine = sharedEngine();
  let peak = 0;
  const call = async (i: number) => {
    const lease = await pool.acquire();
    peak = Math.max(peak, pool.stats().busy);
    const r = await engine.call(lease.instance, { env: { QUERY_STRING: `name=c${i}` }, resetAfter: true });
    pool.release(lease, !r.instanceLost, r.instanceReset);
    return text(r.stdout);
  };
  const outputs = await Promise.all(Array.from({ length: 64 }, (_, i) => call(i)));
  outputs.forEach((o, i) => expect(o).toBe(`Hello, c${i}!\n`));
  expect(peak).toBeLessThanOrEqual(4);
  const s = pool.stats();
  expect(s.calls).toBe(64);
  expect(s.busy).toBe(0);
  expect(s.coldStarts).toBeLessThanOrEqual(2);
  expect(s.warm).toBe(4);
  pool.retire();
});

test("a full wait queue refuses with OverloadedError; retiring rejects waiters", async () => {
  const pool = new FunctionPool(await loadFunction("hello"), { maxConcurrency: 1, maxWaiting: 1, maxIdle: 1 }, 1);
  const first = await pool.acquire();
  const waiting = pool.acquire();
  expect(() => pool.acquire()).toThrow(OverloadedError);
  pool.retire();
  await expect(waiting).rejects.toBeInstanceOf(RetiredError);
  pool.release(first, true);
  expect(() => pool.acquire()).toThrow(RetiredError);
});

test("idle instances give their written pages back after the retention delay", async () => {
  const pool = new FunctionPool(await loadFunction("json"), { maxConcurrency: 2, maxWaiting: 0, maxIdle: 2 }, 1);
  const lease = await pool.acquire();
  const r = await sharedEngine().call(lease.instance, { stdin: new TextEncoder().encode('{"a":1}'), resetAfter: true });
  pool.release(lease, true, r.instanceReset);
  expect(pool.sampleIdleBytes()).toBeGreaterThan(0);
  expect(pool.releaseIdleMemory(Date.now() - 60_000)).toBe(0);
  expect(pool.releaseIdleMemory(Date.now() + 1)).toBe(1);
  expect(pool.sampleIdleBytes()).toBe(0);
  pool.retire();
});

test("a successor counts its predecessor's calls as they end: a call taken back there is not counted", async () => {
  const module = await loadFunction("hello");
  const options = { maxConcurrency: 1, maxWaiting: 4, maxIdle: 1 };
  const older = new FunctionPool(module, options, 1);
  const first = await older.acquire();
  const late = older.acquire({ deadline: performance.now() + 50 });
  const newer = new FunctionPool(module, options, 1);
  newer.inherit(older);
  expect(newer.stats().calls).toBe(2);
  await expect(late).rejects.toBeInstanceOf(WaitTimeoutError);
  expect(newer.stats().calls).toBe(1);
  older.release(first, true, false, false);
  expect(newer.stats().calls).toBe(0);
  older.retire();
  newer.retire();
});

test("waiters a retired pool turns away are counted once, where they run", async () => {
  const module = await loadFunction("hello");
  const options = { maxConcurrency: 1, maxWaiting: 4, maxIdle: 1 };
  const older = new FunctionPool(module, options, 1);
  const first = await older.acquire();
  const waiting = older.acquire();
  const newer = new FunctionPool(module, options, 1);
  newer.inherit(older);
  older.retire();
  await expect(waiting).rejects.toBeInstanceOf(RetiredError);
  // The caller moves to the new pool, as the invoke service does.
  const moved = await newer.acquire();
  expect(newer.stats().calls).toBe(2);
  older.release(first, true);
  newer.release(moved, true);
  expect(newer.stats().calls).toBe(2);
  newer.retire();
});
