// The warm-pool policy on a simulated clock: the estimators, eq. 2-4, LRU
// trimming, the grace periods, the two baselines, and the predicted pool's
// defaults beyond the paper (warm floor, burst rate, Poisson headroom, value
// trimming), each shown against PAPER_POOL on the same calls. No engine, no I/O.

import { describe, expect, test } from "bun:test";
import {
  type BudgetItem,
  FixedPolicy,
  KeepAlivePolicy,
  LOCAL_TAU_MIN_CALLS,
  MiB,
  PAPER_POOL,
  PoolPolicy,
  type RateState,
  addArrival,
  concurrencyQuantile,
  decay,
  ewma,
  floorWindow,
  functionBytes,
  instanceBytes,
  instanceValues,
  lruCompare,
  poissonTail,
  rateAt,
  recentRate,
  target,
  trimByValue,
  trimToBudget,
  uniformTarget,
  wish,
} from "../src/pool/policy.ts";
import { mulberry32 as rng } from "../scripts/bench/trace-gen.ts";

const T = 10_000; // default time constant
const BIG = 1e15; // a budget that never binds

/** The estimator's definition, summed directly: (1/T) Σ exp(-(t - t_i)/T). */
function directRate(arrivals: number[], nowMs: number, tMs = T): number {
  let sum = 0;
  for (const a of arrivals) if (a <= nowMs) sum += (1000 / tMs) * Math.exp(-(nowMs - a) / tMs);
  return sum;
}

function fp(plan: { functions: Map<string, import("../src/pool/policy.ts").FunctionPlan> }, fn: string) {
  const f = plan.functions.get(fn);
  if (!f) throw new Error(`no plan for ${fn}`);
  return f;
}

/** A call of fn at t that runs d ms: arrival at t, completion at t + d. */
function call(p: { recordArrival(fn: string, t: number): unknown; recordDuration(fn: string, d: number, t: number): void }, fn: string, t: number, d: number) {
  p.recordArrival(fn, t);
  p.recordDuration(fn, d, t + d);
}

describe("helpers", () => {
  test("decay", () => {
    expect(decay(8, T * Math.LN2, T)).toBeCloseTo(4, 12);
    expect(decay(8, 0, T)).toBe(8);
    expect(decay(8, -5, T)).toBe(8);
    expect(decay(8, T, T)).toBe(8 * Math.exp(-1));
  });

  test("rate estimator: first arrival is 1/T, reading decays without adding", () => {
    const s = addArrival(null, 1_000, T);
    expect(s).toEqual({ rate: 0.1, atMs: 1_000 });
    expect(rateAt(s, 1_000, T)).toBe(0.1);
    expect(rateAt(s, 11_000, T)).toBeCloseTo(0.1 * Math.exp(-1), 15);
    expect(rateAt(s, 500, T)).toBe(0.1); // before the last event: clamped
    expect(rateAt(null, 5, T)).toBe(0);
    // reading does not change the state
    expect(rateAt(s, 11_000, T)).toBe(rateAt(s, 11_000, T));
  });

  test("rate estimator equals the kernel sum for irregular arrivals, in any order", () => {
    const r = rng(7);
    const arrivals: number[] = [];
    let t = 0;
    for (let i = 0; i < 2_000; i++) {
      t += r() < 0.1 ? r() * 30_000 : r() * 20; // bursts and long gaps
      arrivals.push(t);
    }
    let s: RateState | null = null;
    for (const a of arrivals) s = addArrival(s, a, T);
    for (const now of [t, t + 1, t + 5_000, t + 60_000]) {
      const want = directRate(arrivals, now);
      expect(Math.abs(rateAt(s, now, T) - want)).toBeLessThan(1e-9 * Math.max(1, want));
    }
    // Shuffled (out-of-order) arrivals give the same estimate.
    const shuffled = [...arrivals];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    let u: RateState | null = null;
    for (const a of shuffled) u = addArrival(u, a, T);
    expect(u!.atMs).toBe(t);
    expect(Math.abs(rateAt(u, t + 1, T) - rateAt(s, t + 1, T))).toBeLessThan(1e-9 * rateAt(s, t + 1, T));
  });

  test("ewma: seeded with the first sample, alpha on the new one", () => {
    expect(ewma(null, 50, 0.2)).toBe(50);
    expect(ewma(50, 100, 0.2)).toBe(60);
    expect(ewma(60, 10, 0.2)).toBe(50);
    expect(ewma(60, 10, 1)).toBe(10);
  });

  test("target: eq. 3 with slack, headroom and cap", () => {
    const o = { headroom: 1, maxConcurrency: 64, ceilSlack: 0.05 };
    expect(target(100, 20, o)).toBe(3); // λτ = 2
    expect(target(100.05, 20, o)).toBe(3); // 2.001: ripple above an integer is ignored
    expect(target(99.95, 20, o)).toBe(3); // 1.999
    expect(target(103, 20, o)).toBe(4); // 2.06
    expect(target(0, 20, o)).toBe(1); // only h
    expect(target(1, 40, o)).toBe(1); // 0.04 < slack
    expect(target(1, 60, o)).toBe(2); // 0.06
    expect(target(100, 20, { ...o, ceilSlack: 0 })).toBe(3);
    expect(target(100.05, 20, { ...o, ceilSlack: 0 })).toBe(4); // the bare ceiling flaps
    expect(target(10_000, 100, o)).toBe(64); // 1000 + 1, capped
    expect(target(100, 20, { ...o, headroom: 0 })).toBe(2);
    expect(target(100, 20, { ...o, maxConcurrency: 2 })).toBe(2);
  });

  test("eq. 2: code shared over s instances", () => {
    const mem = { linBytes: 1 * MiB, codeBytes: 8 * MiB };
    expect(instanceBytes(mem, 1)).toBe(9 * MiB);
    expect(instanceBytes(mem, 2)).toBe(5 * MiB);
    expect(instanceBytes(mem, 4)).toBe(3 * MiB);
    expect(instanceBytes(mem, 8)).toBe(2 * MiB);
    expect(instanceBytes(mem, 0)).toBe(9 * MiB); // s = max(1, ·)
    for (let s = 1; s < 64; s++) {
      expect(instanceBytes(mem, s + 1)).toBeLessThan(instanceBytes(mem, s));
      expect(functionBytes(mem, s)).toBe(s * MiB + 8 * MiB);
      expect(s * instanceBytes(mem, s)).toBeCloseTo(functionBytes(mem, s), 3);
    }
    expect(functionBytes(mem, 0)).toBe(0);
  });

  test("uniformTarget: largest K that fits, caps leave their share", () => {
    const m = { linBytes: 1000, codeBytes: 500, maxConcurrency: 64 };
    expect(uniformTarget([m, m, m], 10_000)).toBe(2); // 3·(2000+500) = 7500; K=3: 10500
    expect(uniformTarget([{ ...m, maxConcurrency: 1 }, m, m], 10_000)).toBe(3); // 1500 + 2·3500 = 8500
    expect(uniformTarget([m, m, m], 4_499)).toBe(0);
    expect(uniformTarget([m, m, m], 4_500)).toBe(1);
    expect(uniformTarget([m], BIG)).toBe(64);
    expect(uniformTarget([], 0)).toBe(0);
  });
});

describe("trimToBudget", () => {
  const item = (fn: string, lastUsedMs: number | null, k: number, linBytes = 10, codeBytes = 5): BudgetItem => ({
    fn,
    lastUsedMs,
    k,
    linBytes,
    codeBytes,
  });

  test("fits: nothing trimmed", () => {
    const r = trimToBudget([item("a", 1, 3), item("b", 2, 3)], 70);
    expect([...r.warm]).toEqual([
      ["a", 3],
      ["b", 3],
    ]);
    expect(r.plannedBytes).toBe(70);
  });

  test("over: LRU first, minimal trim, most recent keep their k", () => {
    // each function: 3·10 + 5 = 35; total 140; budget 100 → 40 over.
    const items = [item("d", 4000, 3), item("b", 2000, 3), item("c", 3000, 3), item("a", 1000, 3)];
    const r = trimToBudget(items, 100);
    // a (oldest): keeping even 1 saves only 20 < 40 → 0, saves 35; 5 still over.
    // b: one instance saves 10 ≥ 5 → 2.
    expect(r.warm.get("a")).toBe(0);
    expect(r.warm.get("b")).toBe(2);
    expect(r.warm.get("c")).toBe(3);
    expect(r.warm.get("d")).toBe(3);
    expect(r.plannedBytes).toBe(95);
    // One byte less and b loses a second instance.
    expect(trimToBudget(items, 94).warm.get("b")).toBe(1);
    expect(trimToBudget(items, 94).plannedBytes).toBe(85);
    // The last instance also frees the code: budget 70 → a 0, b 0, c, d full.
    const r70 = trimToBudget(items, 70);
    expect([r70.warm.get("a"), r70.warm.get("b"), r70.warm.get("c"), r70.warm.get("d")]).toEqual([0, 0, 3, 3]);
    expect(r70.plannedBytes).toBe(70);
    expect(trimToBudget(items, 0).plannedBytes).toBe(0);
  });

  test("LRU order precisely: never used first, then by time, ties by name", () => {
    const items = [item("x", 5, 1, 10, 0), item("a", 5, 1, 10, 0), item("m", 3, 1, 10, 0), item("z", null, 1, 10, 0), item("B", 5, 1, 10, 0)];
    expect([...items].sort(lruCompare).map((i) => i.fn)).toEqual(["z", "m", "B", "a", "x"]);
    const keep = (budget: number) =>
      [...trimToBudget(items, budget).warm].filter(([, w]) => w > 0).map(([fn]) => fn).sort();
    expect(keep(50)).toEqual(["B", "a", "m", "x", "z"]);
    expect(keep(49)).toEqual(["B", "a", "m", "x"]);
    expect(keep(30)).toEqual(["B", "a", "x"]);
    expect(keep(20)).toEqual(["a", "x"]);
    expect(keep(19)).toEqual(["x"]);
    expect(keep(9)).toEqual([]);
  });

  test("property: 1,000 random plans stay within budget, LRU-shaped and minimal", () => {
    const r = rng(42);
    const int = (n: number) => Math.floor(r() * n);
    for (let round = 0; round < 1_000; round++) {
      const n = int(30);
      const items: BudgetItem[] = [];
      for (let i = 0; i < n; i++)
        items.push({
          fn: `f${int(1000)}-${i}`,
          lastUsedMs: r() < 0.1 ? null : int(20), // many ties
          k: int(11),
          linBytes: r() < 0.05 ? 0 : int(2 * MiB),
          codeBytes: r() < 0.3 ? 0 : int(8 * MiB),
        });
      const total = items.reduce((s, it) => s + functionBytes(it, it.k), 0);
      const budget = r() < 0.05 ? 0 : Math.floor(r() * total * 1.2);
      const res = trimToBudget(items, budget);
      expect(res.plannedBytes).toBeLessThanOrEqual(budget);
      let sum = 0;
      for (const it of items) {
        const w = res.warm.get(it.fn)!;
        expect(Number.isInteger(w) && w >= 0 && w <= it.k).toBe(true);
        sum += functionBytes(it, w);
      }
      expect(res.plannedBytes).toBe(sum);
      if (total <= budget) {
        expect(res.plannedBytes).toBe(total);
        continue;
      }
      // Shape in LRU order: zeros, at most one partial, then full.
      const order = [...items].sort(lruCompare).filter((it) => it.k > 0);
      const firstFull = order.findIndex((it) => res.warm.get(it.fn) === it.k);
      const boundary = firstFull === -1 ? order.length : firstFull;
      for (let i = boundary; i < order.length; i++) expect(res.warm.get(order[i]!.fn)).toBe(order[i]!.k);
      for (let i = 0; i < boundary - 1; i++) expect(res.warm.get(order[i]!.fn)).toBe(0);
      // Minimal: one more instance on the last trimmed function would not fit.
      const last = order[boundary - 1];
      if (last) {
        const w = res.warm.get(last.fn)!;
        expect(w).toBeLessThan(last.k);
        expect(sum - functionBytes(last, w) + functionBytes(last, w + 1)).toBeGreaterThan(budget);
      }
    }
  });
});

describe("PoolPolicy with PAPER_POOL (the paper's rules: eq. 3, k = 0 after the idle grace, LRU)", () => {
  test("steady 100/s regular arrivals, τ = 20 ms → λ ≈ 100, k = ⌈2⌉ + 1 = 3", () => {
    const p = new PoolPolicy({ ...PAPER_POOL, budgetBytes: BIG });
    let t = 0;
    const n = 12_000; // 120 s (the estimator is within e^-12 of steady state)
    for (let i = 0; i < n; i++, t += 10) call(p, "f", t, 20);
    const last = t - 10;
    // Closed form of the kernel sum for n regular arrivals, read at the last one.
    const q = Math.exp(-10 / T);
    const exact = (0.1 * (1 - q ** n)) / (1 - q);
    const plan = p.plan(last);
    expect(fp(plan, "f").lambda).toBeCloseTo(exact, 9);
    expect(Math.abs(fp(plan, "f").lambda - 100)).toBeLessThan(0.1);
    expect(fp(plan, "f").tau).toBe(20);
    expect(fp(plan, "f").k).toBe(3);
    expect(fp(plan, "f").warm).toBe(3);
    // Anywhere in the saw-tooth (just after an arrival .. just before the next) k stays 3.
    for (const dt of [0, 1, 5, 9.99]) expect(fp(p.plan(last + dt), "f").k).toBe(3);
  });

  test("steady 100/s Poisson arrivals → λ near 100, k in {3, 4}", () => {
    const r = rng(1);
    const p = new PoolPolicy({ ...PAPER_POOL, budgetBytes: BIG });
    let t = 0;
    const reads: number[] = [];
    let nextRead = 60_000; // after 6 T: within e^-6 of steady state
    while (t < 120_000) {
      t += -Math.log(1 - r()) * 10; // exponential gaps, mean 10 ms
      while (nextRead < t) {
        reads.push(fp(p.plan(nextRead), "f").lambda);
        const k = fp(p.plan(nextRead), "f").k;
        expect(k === 3 || k === 4).toBe(true);
        nextRead += 1_000;
      }
      call(p, "f", t, 20);
    }
    // sd of one reading is sqrt(R/2T) ≈ 2.2/s
    for (const l of reads) expect(Math.abs(l - 100)).toBeLessThan(10);
    const mean = reads.reduce((a, b) => a + b, 0) / reads.length;
    expect(Math.abs(mean - 100)).toBeLessThan(3);
  });

  test("bursty: k rises with the burst, falls back to h, then 0 after the idle grace; code unloaded after the code grace", () => {
    const p = new PoolPolicy({ ...PAPER_POOL, budgetBytes: BIG, idleGraceMs: 60_000, codeGraceMs: 300_000 });
    const arrivals: number[] = [];
    const go = (t: number) => {
      arrivals.push(t);
      call(p, "f", t, 50);
    };
    go(0);
    expect(fp(p.plan(1_000), "f").k).toBe(1); // λτ = 0.005: just h
    // Burst: 1000/s for 2 s from t = 10 s.
    const start = 10_000;
    for (let i = 0; i < 2_000; i++) go(start + i);
    const end = start + 1_999;
    const kAt = (t: number) => fp(p.plan(t), "f").k;
    const expectK = (t: number) =>
      target(directRate(arrivals, t), 50, { headroom: 1, maxConcurrency: 64, ceilSlack: 0.05 });
    // After 1 s of burst λ ≈ 1000·(1 - e^-0.1) ≈ 95 → λτ ≈ 4.8 → k = 6 (the plan
    // could not have seen it then, so check the estimator via a fresh replay).
    const replay = new PoolPolicy({ ...PAPER_POOL, budgetBytes: BIG });
    for (const a of arrivals.filter((a) => a <= start + 999)) call(replay, "f", a, 50);
    expect(fp(replay.plan(start + 999), "f").k).toBe(6);
    // At the end of the burst: λ ≈ 181 → λτ ≈ 9.07 → k = 11.
    expect(fp(p.plan(end), "f").lambda).toBeCloseTo(directRate(arrivals, end), 6);
    expect(kAt(end)).toBe(11);
    expect(kAt(end)).toBe(expectK(end));
    // Decay: 30 s later λ ≈ 9.0 → λτ ≈ 0.45 → 2; 55 s later λ ≈ 0.74 → h.
    expect(kAt(end + 30_000)).toBe(2);
    expect(kAt(end + 30_000)).toBe(expectK(end + 30_000));
    expect(kAt(end + 55_000)).toBe(1);
    // Idle is measured from the last use: the last completion at end + 50.
    const lastUsed = end + 50;
    expect(fp(p.plan(end), "f").lastUsedMs).toBe(lastUsed);
    expect(fp(p.plan(end), "f").lastArrivalMs).toBe(end);
    expect(kAt(lastUsed + 60_000)).toBe(1);
    expect(kAt(lastUsed + 60_001)).toBe(0);
    expect(fp(p.plan(lastUsed + 60_001), "f").unloadCode).toBe(false);
    expect(fp(p.plan(lastUsed + 300_000), "f").unloadCode).toBe(false);
    const gone = fp(p.plan(lastUsed + 300_001), "f");
    expect(gone.unloadCode).toBe(true);
    expect(gone.warm).toBe(0);
    // A new call brings it back at h (λ has decayed to almost nothing).
    go(lastUsed + 400_000);
    const back = fp(p.plan(lastUsed + 400_000), "f");
    expect([back.k, back.unloadCode]).toEqual([1, false]);
  });

  test("many rare functions: 1,000 functions, one call each per minute → k = h each, all within budget", () => {
    const mem = { linBytes: Math.round(1.8 * MiB), codeBytes: 1 * MiB };
    const p = new PoolPolicy({ ...PAPER_POOL, budgetBytes: 4096 * MiB });
    const name = (i: number) => `fn${String(i).padStart(4, "0")}`;
    for (let i = 0; i < 1_000; i++) p.setMemory(name(i), mem);
    // One hour; function i is called at i·60 ms into every minute, running 10 ms.
    for (let m = 0; m < 60; m++) for (let i = 0; i < 1_000; i++) call(p, name(i), m * 60_000 + i * 60, 10);
    const now = 59 * 60_000 + 59_990; // every function used within the last 60 s
    const plan = p.plan(now);
    expect(plan.functions.size).toBe(1_000);
    for (const f of plan.functions.values()) {
      expect(f.lambda).toBeLessThan(0.11); // ≤ (1/T)/(1 - e^-6) ≈ 0.1002
      expect(f.k).toBe(1);
      expect(f.warm).toBe(1);
      expect(f.mInst).toBe(mem.linBytes + mem.codeBytes);
    }
    expect(plan.plannedBytes).toBe(1_000 * (mem.linBytes + mem.codeBytes));
    expect(plan.plannedBytes).toBeLessThanOrEqual(plan.budgetBytes);

    // A budget for 600 of them: the 400 least recently used (fn0000..fn0399,
    // called earliest in the last minute) lose their instance.
    p.setBudget(600 * (mem.linBytes + mem.codeBytes));
    const tight = p.plan(now);
    for (let i = 0; i < 1_000; i++) expect(fp(tight, name(i)).warm).toBe(i < 400 ? 0 : 1);
    expect(tight.plannedBytes).toBe(p.budgetBytes);
  });

  test("budget pressure through the policy: LRU trimmed first, most recent keep their full k", () => {
    const mem = { linBytes: 2 * MiB, codeBytes: 4 * MiB };
    const p = new PoolPolicy({ ...PAPER_POOL, budgetBytes: 30 * MiB });
    // a, b, c, d each at 100/s with τ = 20 ms (k = 3, 3·2 + 4 = 10 MiB each) for 10 s;
    // their last calls are staggered a < b < c < d.
    const fns = ["a", "b", "c", "d"];
    for (const fn of fns) p.setMemory(fn, mem);
    for (let t = 0; t < 60_000; t += 10) for (const [i, fn] of fns.entries()) call(p, fn, t + i, 20);
    const now = 60_000;
    const plan = p.plan(now);
    for (const fn of fns) expect(fp(plan, fn).k).toBe(3);
    // 40 MiB wanted, 30 MiB budget: a (oldest) gives up all 10 MiB.
    expect(fns.map((fn) => fp(plan, fn).warm)).toEqual([0, 3, 3, 3]);
    expect(fns.map((fn) => fp(plan, fn).trimmed)).toEqual([3, 0, 0, 0]);
    expect(plan.plannedBytes).toBe(30 * MiB);
    // 29 MiB: a to 0, b loses one (saves 2 MiB) → 28 MiB.
    p.setBudget(29 * MiB);
    const p29 = p.plan(now);
    expect(fns.map((fn) => fp(p29, fn).warm)).toEqual([0, 2, 3, 3]);
    expect(p29.plannedBytes).toBe(28 * MiB);
    // A new call of a makes it the most recently used: now b is trimmed first.
    call(p, "a", now, 20);
    const after = p.plan(now + 20);
    expect(fns.map((fn) => fp(after, fn).warm)).toEqual([3, 0, 2, 3]);
    expect(after.plannedBytes).toBeLessThanOrEqual(29 * MiB);
  });

  test("property: 1,000 random policy plans stay within budget and satisfy eq. 4 with eq. 2", () => {
    const r = rng(2024);
    const int = (n: number) => Math.floor(r() * n);
    for (let round = 0; round < 1_000; round++) {
      const p = new PoolPolicy({ ...PAPER_POOL, budgetBytes: int(200) * MiB, headroom: int(3), idleGraceMs: 60_000, codeGraceMs: 120_000 });
      const nf = 1 + int(12);
      let t = 0;
      for (let i = 0; i < nf; i++) {
        const fn = `f${i}`;
        if (r() < 0.8) p.setMemory(fn, { linBytes: int(4 * MiB), codeBytes: int(16 * MiB) });
        if (r() < 0.3) p.setMaxConcurrency(fn, 1 + int(5));
        const calls = int(300);
        const rate = 1 + int(500);
        const tau = r() * 200;
        t = int(100_000);
        for (let c = 0; c < calls; c++) {
          t += -Math.log(1 - r()) * (1000 / rate);
          call(p, fn, t, tau * (0.5 + r()));
        }
      }
      const plan = p.plan(int(200_000));
      let sum = 0;
      let exact = 0;
      for (const f of plan.functions.values()) {
        expect(f.warm).toBeLessThanOrEqual(f.k);
        expect(f.trimmed).toBe(f.k - f.warm);
        if (f.unloadCode) expect(f.warm).toBe(0);
        sum += f.warm * f.mInst;
        exact += f.bytes;
      }
      expect(plan.plannedBytes).toBe(exact);
      expect(Math.abs(sum - exact)).toBeLessThan(1e-3);
      expect(plan.plannedBytes).toBeLessThanOrEqual(plan.budgetBytes);
    }
  });

  test("eq. 2 in the plan: big code gets cheaper per instance as more instances share it", () => {
    const p = new PoolPolicy({ ...PAPER_POOL, budgetBytes: BIG });
    const mem = { linBytes: 1 * MiB, codeBytes: 12 * MiB };
    p.setMemory("busy", mem);
    p.setMemory("quiet", mem);
    for (let t = 0; t < 30_000; t += 10) call(p, "busy", t, 50); // λτ ≈ 5 → k = 6
    call(p, "quiet", 29_000, 5); // k = 1
    const plan = p.plan(30_000);
    expect(fp(plan, "busy").k).toBe(6);
    expect(fp(plan, "busy").mInst).toBe(1 * MiB + 2 * MiB); // 12 MiB / 6
    expect(fp(plan, "busy").bytes).toBe(6 * MiB + 12 * MiB);
    expect(fp(plan, "quiet").k).toBe(1);
    expect(fp(plan, "quiet").mInst).toBe(13 * MiB);
    expect(plan.plannedBytes).toBe(18 * MiB + 13 * MiB);
    // When the budget trims busy (now the LRU one) to 2 instances, each
    // carries half the code.
    const p2 = new PoolPolicy({ ...PAPER_POOL, budgetBytes: 13 * MiB + 14 * MiB });
    p2.setMemory("busy", mem);
    p2.setMemory("quiet", mem);
    for (let t = 0; t < 30_000; t += 10) call(p2, "busy", t, 50); // last used 30 040
    call(p2, "quiet", 30_100, 5); // last used 30 105
    const tight = p2.plan(30_200);
    expect(fp(tight, "busy").k).toBe(6);
    expect(fp(tight, "busy").warm).toBe(2);
    expect(fp(tight, "busy").mInst).toBe(1 * MiB + 6 * MiB);
    expect(fp(tight, "quiet").warm).toBe(1);
    expect(tight.plannedBytes).toBe(27 * MiB);
  });

  test("concurrency cap, unknown τ, never-used and forgotten functions, touch", () => {
    const p = new PoolPolicy({ ...PAPER_POOL, budgetBytes: BIG });
    p.setMaxConcurrency("f", 4);
    for (let t = 0; t < 20_000; t += 1) call(p, "f", t, 100); // λτ ≈ 86 → capped
    expect(fp(p.plan(20_000), "f").k).toBe(4);
    p.recordArrival("g", 0); // no duration yet: τ = 0 → k = h
    expect(fp(p.plan(0), "g").tau).toBeNull();
    expect(fp(p.plan(0), "g").k).toBe(1);
    p.setMemory("h", { linBytes: 1, codeBytes: 1 }); // known, never used
    const h = fp(p.plan(0), "h");
    expect([h.k, h.warm, h.unloadCode, h.lastUsedMs]).toEqual([0, 0, false, null]);
    p.touch("h", 0); // activation: h warm for the idle grace
    expect(fp(p.plan(60_000), "h").k).toBe(1);
    expect(fp(p.plan(60_001), "h").k).toBe(0);
    expect(fp(p.plan(300_001), "h").unloadCode).toBe(true);
    p.forget("f");
    expect(p.plan(0).functions.has("f")).toBe(false);
    expect([...p.plan(0).functions.keys()]).toEqual(["g", "h"]);
    expect(() => p.setMemory("x", { linBytes: -1, codeBytes: 0 })).toThrow(RangeError);
    expect(() => p.setMaxConcurrency("x", 0)).toThrow(RangeError);
    expect(() => new PoolPolicy({ ...PAPER_POOL, budgetBytes: 1, durationAlpha: 0 })).toThrow(RangeError);
  });
});

describe("FixedPolicy", () => {
  const mem = { linBytes: 1000, codeBytes: 500 };

  test("uniform K from the budget for every function with traffic", () => {
    const p = new FixedPolicy({ budgetBytes: 10_000 });
    for (const fn of ["a", "b", "c"]) {
      p.setMemory(fn, mem);
      call(p, fn, 0, 5);
    }
    p.setMemory("idle", mem); // deployed, never called
    const plan = p.plan(1_000);
    expect(["a", "b", "c", "idle"].map((fn) => fp(plan, fn).warm)).toEqual([2, 2, 2, 0]);
    expect(plan.plannedBytes).toBe(3 * 2500);
    // Traffic does not matter: a busy function gets the same K.
    for (let t = 0; t < 10_000; t += 1) call(p, "a", t, 100);
    expect(fp(p.plan(10_000), "a").k).toBe(2);
    // A capped function leaves its share to the others.
    p.setMaxConcurrency("a", 1);
    const capped = p.plan(10_000);
    expect(["a", "b", "c"].map((fn) => fp(capped, fn).warm)).toEqual([1, 3, 3]);
    expect(capped.plannedBytes).toBe(1500 + 2 * 3500);
  });

  test("not even one each fits: one each wished, LRU trimmed", () => {
    const p = new FixedPolicy({ budgetBytes: 6 * 1500 + 1499 });
    const name = (i: number) => `f${String(i).padStart(2, "0")}`;
    for (let i = 0; i < 20; i++) {
      p.setMemory(name(i), mem);
      call(p, name(i), i * 100, 5);
    }
    const plan = p.plan(5_000);
    for (let i = 0; i < 20; i++) {
      expect(fp(plan, name(i)).k).toBe(1);
      expect(fp(plan, name(i)).warm).toBe(i >= 14 ? 1 : 0);
    }
    expect(plan.plannedBytes).toBe(6 * 1500);
  });

  test("configured perFunction and the active window", () => {
    const p = new FixedPolicy({ budgetBytes: 8_000, perFunction: 3, activeWindowMs: 60_000, codeGraceMs: 120_000 });
    for (const [fn, t] of [["a", 0], ["b", 10_000], ["c", 20_000]] as const) {
      p.setMemory(fn, mem);
      call(p, fn, t, 5);
    }
    // Each wants 3·1000 + 500 = 3500: 10 500 > 8 000 → a (LRU) to 0 (7000 fits).
    const plan = p.plan(30_000);
    expect(["a", "b", "c"].map((fn) => fp(plan, fn).warm)).toEqual([0, 3, 3]);
    // a leaves the active window after 60 s; its code goes after 120 s.
    const later = p.plan(60_006);
    expect(fp(later, "a").k).toBe(0);
    expect(fp(later, "a").unloadCode).toBe(false);
    expect(fp(later, "b").k).toBe(3);
    expect(fp(p.plan(120_006), "a").unloadCode).toBe(true);
    expect(fp(p.plan(120_006), "c").unloadCode).toBe(false);
  });
});

describe("KeepAlivePolicy", () => {
  const W = 600_000;

  test("one container kept for the window after each call", () => {
    const p = new KeepAlivePolicy({ budgetBytes: BIG });
    expect(p.recordArrival("f", 0)).toBe(false); // cold: first container
    p.recordDuration("f", 100, 100);
    let f = fp(p.plan(100), "f");
    expect([f.k, f.warm, f.mInst, f.bytes, f.unloadCode]).toEqual([1, 1, 48 * MiB, 48 * MiB, false]);
    expect(fp(p.plan(100 + W), "f").warm).toBe(1);
    expect(p.recordArrival("f", 100 + W)).toBe(true); // reused at the last moment
    p.recordDuration("f", 10, 110 + W);
    expect(fp(p.plan(110 + 2 * W), "f").warm).toBe(1);
    f = fp(p.plan(111 + 2 * W), "f");
    expect([f.k, f.warm, f.unloadCode]).toEqual([0, 0, true]);
    expect(p.recordArrival("f", 200 + 2 * W)).toBe(false);
    // setMemory does not change a container's size.
    p.setMemory("f", { linBytes: 1, codeBytes: 1 });
    p.recordDuration("f", 5, 205 + 2 * W);
    expect(fp(p.plan(205 + 2 * W), "f").mInst).toBe(48 * MiB);
  });

  test("concurrency creates containers; MRU reuse lets surplus ones expire", () => {
    const p = new KeepAlivePolicy({ budgetBytes: BIG });
    expect([p.recordArrival("f", 0), p.recordArrival("f", 1), p.recordArrival("f", 2)]).toEqual([false, false, false]);
    expect(p.containerCount("f")).toEqual({ idle: 0, busy: 3 });
    expect(fp(p.plan(50), "f").warm).toBe(0); // busy containers are not warm
    expect(fp(p.plan(50), "f").unloadCode).toBe(false);
    p.recordDuration("f", 100, 100);
    p.recordDuration("f", 100, 101);
    p.recordDuration("f", 100, 102);
    expect(fp(p.plan(200), "f").warm).toBe(3);
    expect(p.recordArrival("f", 300)).toBe(true); // takes the one released at 102
    p.recordDuration("f", 100, 400);
    expect(fp(p.plan(101 + W), "f").warm).toBe(2); // released at 100 expired
    expect(fp(p.plan(102 + W), "f").warm).toBe(1); // released at 101 expired
    expect(fp(p.plan(400 + W), "f").warm).toBe(1);
    expect(fp(p.plan(401 + W), "f").warm).toBe(0);
  });

  test("budget: LRU functions' containers evicted first, and eviction is final", () => {
    const p = new KeepAlivePolicy({ budgetBytes: 3 * 48 * MiB });
    // Events in time order: a runs two calls at once, b one, c two in a row.
    p.recordArrival("a", 0);
    p.recordArrival("a", 1);
    p.recordDuration("a", 10, 10);
    p.recordDuration("a", 10, 11);
    p.recordArrival("b", 20);
    p.recordDuration("b", 10, 30);
    p.recordArrival("c", 30);
    p.recordDuration("c", 10, 40);
    expect(p.recordArrival("c", 41)).toBe(true); // reuses c's container
    p.recordDuration("c", 10, 51);
    expect(p.containerCount("a")).toEqual({ idle: 2, busy: 0 });
    expect(p.containerCount("c")).toEqual({ idle: 1, busy: 0 });
    const plan = p.plan(100);
    expect(["a", "b", "c"].map((fn) => fp(plan, fn).k)).toEqual([2, 1, 1]);
    expect(["a", "b", "c"].map((fn) => fp(plan, fn).warm)).toEqual([1, 1, 1]);
    expect(plan.plannedBytes).toBe(3 * 48 * MiB);
    // The evicted container is gone even when memory frees up.
    p.setBudget(BIG);
    expect(fp(p.plan(200), "a").warm).toBe(1);
    expect(p.recordArrival("a", 300)).toBe(true);
    expect(p.recordArrival("a", 301)).toBe(false);
    p.forget("a");
    expect(p.containerCount("a")).toEqual({ idle: 0, busy: 0 });
  });

  test("Table II/III scale: a 4 GiB budget holds 85 containers", () => {
    const p = new KeepAlivePolicy({ budgetBytes: 4096 * MiB });
    for (let i = 0; i < 200; i++) call(p, `f${String(i).padStart(3, "0")}`, i, 10);
    const plan = p.plan(1_000);
    const warm = [...plan.functions.values()].reduce((s, f) => s + f.warm, 0);
    expect(warm).toBe(85); // floor(4096 / 48)
    expect(fp(plan, "f199").warm).toBe(1);
    expect(fp(plan, "f114").warm).toBe(0);
    expect(fp(plan, "f115").warm).toBe(1);
    expect(plan.plannedBytes).toBeLessThanOrEqual(plan.budgetBytes);
  });
});

describe("cluster τ (PAPER_POOL: eq. 3 alone, so k shows which τ was used)", () => {
  test("a function this node never ran plans by the cluster's τ; without it, by its own", () => {
    const p = new PoolPolicy({ ...PAPER_POOL, budgetBytes: BIG });
    p.touch("f", 0);
    p.setClusterRate("f", 10, 0);
    p.setClusterTau("f", 500);
    // λ·τ = 10/s · 0.5 s = 5 calls in progress: k = ⌈5⌉ + h.
    expect(fp(p.plan(0), "f").tau).toBe(500);
    expect(fp(p.plan(0), "f").k).toBe(5 + 1);
    p.setClusterTau("f", null);
    expect(fp(p.plan(0), "f").tau).toBeNull();
    expect(fp(p.plan(0), "f").k).toBe(1);
    // The store unreadable: local λ and τ, here a single 200 ms call.
    p.setClusterRate("f", null, 0);
    call(p, "f", 0, 200);
    expect(fp(p.plan(200), "f").tau).toBe(200);
  });

  test("enough recent local calls outweigh the cluster's τ, until they age", () => {
    const p = new PoolPolicy({ ...PAPER_POOL, budgetBytes: BIG });
    p.touch("f", 0);
    p.setClusterRate("f", 10, 0);
    p.setClusterTau("f", 500);
    for (let i = 0; i < LOCAL_TAU_MIN_CALLS - 1; i++) call(p, "f", i * 100, 50);
    // A few calls are too few to trust: still the cluster's τ.
    expect(fp(p.plan(1_000), "f").tau).toBe(500);
    for (let i = 0; i < 2; i++) call(p, "f", 1_000 + i * 100, 50);
    expect(fp(p.plan(1_500), "f").tau).toBe(50);
    expect(fp(p.plan(1_500), "f").k).toBe(1 + 1);
    // A minute later those calls weigh e^-6 each: the cluster knows better.
    p.setClusterRate("f", 10, 60_000);
    expect(fp(p.plan(60_000), "f").tau).toBe(500);
  });
});

describe("beyond the paper: helpers", () => {
  test("poissonTail and concurrencyQuantile", () => {
    expect(poissonTail(1, 0)).toBe(1);
    expect(poissonTail(0, 1)).toBe(0);
    expect(poissonTail(1, 1)).toBeCloseTo(1 - Math.exp(-1), 12);
    expect(poissonTail(2, 3)).toBeCloseTo(1 - 5 * Math.exp(-2), 12);
    // μ = 1: P(N >= 3) = 8 %, P(N >= 4) = 1.9 % -> 4 instances for a 2 % risk.
    expect(concurrencyQuantile(1, 0.02)).toBe(4);
    expect(concurrencyQuantile(0.01, 0.02)).toBe(1);
    expect(concurrencyQuantile(0, 0.02)).toBe(0);
    expect(concurrencyQuantile(5, 0)).toBe(0);
    expect(concurrencyQuantile(1e9, 0.02)).toBe(1000);
  });

  test("instanceValues: λ for a rare function, at most 1/Δ, never increasing with j", () => {
    const rare = instanceValues(0.01, 10, 1, 250);
    expect(rare[0]).toBeCloseTo((1 - Math.exp(-0.0025)) / 0.25, 12);
    expect(Math.abs(rare[0]! - 0.01)).toBeLessThan(1e-4);
    const busy = instanceValues(100, 10, 6, 250);
    expect(busy).toHaveLength(6);
    for (const v of busy) expect(v).toBeLessThanOrEqual(4 + 1e-12);
    for (let j = 1; j < busy.length; j++) expect(busy[j]!).toBeLessThanOrEqual(busy[j - 1]!);
    // The 4th instance serves arrivals that find 3 calls in progress: P = 8 % of 100/s.
    expect(busy[3]).toBeCloseTo((1 - Math.exp(-100 * poissonTail(1, 3) * 0.25)) / 0.25, 12);
    expect(instanceValues(5, 10, 0, 250)).toEqual([]);
  });

  test("recentRate, floorWindow and wish", () => {
    expect(recentRate(5, 100)).toBe(5);
    expect(recentRate(5, 10_000)).toBe(0.1);
    expect(recentRate(5, 0)).toBe(5);
    expect(floorWindow(null, 600_000, 2, 14_400_000)).toBe(600_000);
    expect(floorWindow(1_800_000, 600_000, 2, 14_400_000)).toBe(3_600_000);
    expect(floorWindow(100_000, 600_000, 2, 14_400_000)).toBe(600_000);
    expect(floorWindow(86_400_000, 600_000, 2, 14_400_000)).toBe(14_400_000);
    expect(floorWindow(1_800_000, 600_000, 0, 14_400_000)).toBe(600_000);
    expect(floorWindow(1_800_000, 0, 2, 14_400_000)).toBe(0);
    // eq. 3 within the grace, the floor of one past it, nothing past the window.
    expect(wish(3, 30_000, 60_000, 600_000, 64)).toBe(3);
    expect(wish(3, 100_000, 60_000, 600_000, 64)).toBe(1);
    expect(wish(0, 30_000, 60_000, 600_000, 64)).toBe(1);
    expect(wish(3, 700_000, 60_000, 600_000, 64)).toBe(0);
    expect(wish(3, 0, 60_000, 0, 64)).toBe(3);
    expect(wish(0, 0, 60_000, 0, 64)).toBe(0);
  });
});

describe("trimByValue", () => {
  const MB = MiB;
  test("fits: nothing trimmed; over: the fewest cold starts avoided per byte go first, instance by instance", () => {
    const items: BudgetItem[] = [
      { fn: "busy", lastUsedMs: 100, k: 3, linBytes: MB, codeBytes: MB, values: [4, 3, 0.4] },
      { fn: "rare", lastUsedMs: 200, k: 1, linBytes: MB, codeBytes: MB, values: [0.01] },
      { fn: "mid", lastUsedMs: 50, k: 2, linBytes: MB, codeBytes: MB, values: [1, 0.2] },
    ];
    expect(trimByValue(items, 9 * MB).plannedBytes).toBe(9 * MB);
    // 8 MiB: rare's floor (0.01 per 2 MiB) goes first, although rare is the most recently used.
    const r8 = trimByValue(items, 8 * MB);
    expect([...r8.warm]).toEqual([["busy", 3], ["rare", 0], ["mid", 2]]);
    expect(r8.plannedBytes).toBe(7 * MB);
    // LRU on the same wishes takes mid (oldest) first and keeps rare.
    const lru = trimToBudget(items, 8 * MB);
    expect([...lru.warm]).toEqual([["busy", 3], ["rare", 1], ["mid", 1]]);
    // 6 MiB: then mid's spare (0.2/MiB); 5 MiB: then busy's third (0.4/MiB, below mid's first: 1 per 2 MiB).
    const r6 = trimByValue(items, 6 * MB);
    expect([...r6.warm]).toEqual([["busy", 3], ["rare", 0], ["mid", 1]]);
    expect(r6.plannedBytes).toBe(6 * MB);
    expect([...trimByValue(items, 5 * MB).warm]).toEqual([["busy", 2], ["rare", 0], ["mid", 1]]);
    // Equal density: LRU, then name.
    const tie: BudgetItem[] = [
      { fn: "b", lastUsedMs: 10, k: 1, linBytes: MB, codeBytes: 0, values: [1] },
      { fn: "a", lastUsedMs: 10, k: 1, linBytes: MB, codeBytes: 0, values: [1] },
      { fn: "c", lastUsedMs: 5, k: 1, linBytes: MB, codeBytes: 0, values: [1] },
    ];
    expect([...trimByValue(tie, 1 * MB).warm]).toEqual([["b", 1], ["a", 0], ["c", 0]]);
  });

  test("property: 1,000 random trims stay within budget, trim only when over, and never more than one step too much", () => {
    const r = rng(77);
    const int = (n: number) => Math.floor(r() * n);
    for (let round = 0; round < 1_000; round++) {
      const items: BudgetItem[] = Array.from({ length: 1 + int(10) }, (_, i) => {
        const k = int(6);
        return {
          fn: `f${i}`,
          lastUsedMs: r() < 0.1 ? null : int(1000),
          k,
          linBytes: int(4 * MiB),
          codeBytes: int(8 * MiB),
          values: Array.from({ length: k }, () => r() * 4).sort((a, b) => b - a),
        };
      });
      const wanted = items.reduce((s, it) => s + functionBytes(it, it.k), 0);
      const budget = int(wanted + MiB);
      const res = trimByValue(items, budget);
      expect(res.plannedBytes).toBeLessThanOrEqual(budget);
      let exact = 0;
      let biggestStep = 0;
      for (const it of items) {
        const w = res.warm.get(it.fn)!;
        expect(w).toBeGreaterThanOrEqual(0);
        expect(w).toBeLessThanOrEqual(it.k);
        exact += functionBytes(it, w);
        if (w < it.k) biggestStep = Math.max(biggestStep, functionBytes(it, w + 1) - functionBytes(it, w));
      }
      expect(res.plannedBytes).toBe(exact);
      if (wanted <= budget) expect(res.plannedBytes).toBe(wanted);
      else expect(res.plannedBytes).toBeGreaterThan(budget - biggestStep);
    }
  });
});

describe("PoolPolicy defaults: warm floor, burst rate, Poisson headroom, value trimming", () => {
  test("the first call after a quiet minute is warm: one instance stays for 10 min (paper: none after 60 s)", () => {
    const p = new PoolPolicy({ budgetBytes: BIG });
    const paper = new PoolPolicy({ ...PAPER_POOL, budgetBytes: BIG });
    for (const q of [p, paper]) call(q, "f", 0, 10); // last used at 10
    expect(fp(p.plan(10 + 60_001), "f").warm).toBe(1);
    expect(fp(paper.plan(10 + 60_001), "f").warm).toBe(0);
    expect(fp(p.plan(10 + 600_000), "f").k).toBe(1);
    expect(fp(p.plan(10 + 300_001), "f").unloadCode).toBe(false); // code stays while the floor does
    const gone = fp(p.plan(10 + 600_001), "f");
    expect([gone.k, gone.warm, gone.unloadCode]).toEqual([0, 0, true]);
    expect(fp(paper.plan(10 + 300_001), "f").unloadCode).toBe(true);
  });

  test("a function called every 30 min stays warm across its gaps; a one-off does not", () => {
    const p = new PoolPolicy({ budgetBytes: BIG });
    const period = 1_800_000;
    for (let i = 0; i < 8; i++) call(p, "timer", i * period, 10);
    call(p, "once", 7 * period, 10);
    const last = 7 * period + 10;
    // Typical quiet gap 30 min -> window 60 min.
    expect(fp(p.plan(last + period - 20), "timer").warm).toBe(1);
    expect(fp(p.plan(last + 61 * 60_000), "timer").warm).toBe(0);
    expect(fp(p.plan(last + 11 * 60_000), "once").warm).toBe(0);
    // Without the stretch (gapFactor 0) the timer is cold at every call.
    const plain = new PoolPolicy({ budgetBytes: BIG, gapFactor: 0 });
    for (let i = 0; i < 8; i++) call(plain, "timer", i * period, 10);
    expect(fp(plain.plan(last + period - 20), "timer").warm).toBe(0);
  });

  test("a burst is followed within a second: 200/s for 0.5 s gives k = 6 (paper: 2)", () => {
    const p = new PoolPolicy({ budgetBytes: BIG });
    const paper = new PoolPolicy({ ...PAPER_POOL, budgetBytes: BIG });
    const arrivals: number[] = [];
    for (let t = 0; t < 500; t += 5) {
      arrivals.push(t);
      for (const q of [p, paper]) call(q, "f", t, 20);
    }
    const burst = directRate(arrivals, 500, 1_000); // ≈ 78.5/s, where T = 10 s reads 9.75/s
    const f = fp(p.plan(500), "f");
    expect(f.lambda).toBeCloseTo(Math.max(burst, directRate(arrivals, 500)), 6);
    expect(f.k).toBe(Math.max(target(burst, 20, { headroom: 1, maxConcurrency: 64, ceilSlack: 0.05 }), concurrencyQuantile((burst * 20) / 1000, 0.02)));
    expect(f.k).toBe(6);
    expect(fp(paper.plan(500), "f").k).toBe(2);
    // Going down the 10 s estimate keeps its memory: 5 s after the burst λ is the long one.
    expect(fp(p.plan(5_500), "f").lambda).toBeCloseTo(directRate(arrivals, 5_500), 9);
  });

  test("headroom from the Poisson tail: steady 100/s of 10 ms calls holds 4 (paper: 2, overflowing 26 % of arrivals)", () => {
    const p = new PoolPolicy({ budgetBytes: BIG });
    const paper = new PoolPolicy({ ...PAPER_POOL, budgetBytes: BIG });
    for (let t = 0; t < 60_000; t += 10) for (const q of [p, paper]) call(q, "f", t, 10);
    const f = fp(p.plan(60_000), "f");
    expect(f.k).toBe(4);
    expect(poissonTail((f.lambda * 10) / 1000, f.k)).toBeLessThanOrEqual(0.02);
    const k0 = fp(paper.plan(60_000), "f").k;
    expect(k0).toBe(2);
    expect(poissonTail(1, k0)).toBeGreaterThan(0.25);
  });

  test("when the budget binds, a busy pool outranks a rarer function's floor (LRU would empty the busy pool)", () => {
    const mem = { linBytes: 1 * MiB, codeBytes: 1 * MiB };
    const run = (opts: object) => {
      const p = new PoolPolicy({ budgetBytes: 5 * MiB, ...opts });
      for (const fn of ["busy", "rare"]) p.setMemory(fn, mem);
      for (let t = 0; t < 30_000; t += 10) call(p, "busy", t, 10); // last used 30 000
      call(p, "rare", 30_001, 10); // more recent than busy
      return p.plan(30_020);
    };
    const plan = run({});
    expect([fp(plan, "busy").k, fp(plan, "rare").k]).toEqual([4, 1]);
    expect([fp(plan, "busy").warm, fp(plan, "rare").warm]).toEqual([4, 0]);
    expect(plan.plannedBytes).toBe(5 * MiB);
    // Same wishes, LRU: busy is the older one and loses two instances.
    const lru = run({ trimOrder: "lru" });
    expect([fp(lru, "busy").warm, fp(lru, "rare").warm]).toEqual([2, 1]);
  });

  test("floors past the grace go by how often the function comes back, not by recency", () => {
    const mem = { linBytes: 1 * MiB, codeBytes: 0 };
    const p = new PoolPolicy({ budgetBytes: 1 * MiB });
    for (const fn of ["back", "once"]) p.setMemory(fn, mem);
    for (let i = 0; i < 20; i++) call(p, "back", i * 90_000, 10); // returns every 90 s
    const lastBack = 19 * 90_000 + 10;
    call(p, "once", lastBack + 5_000, 10); // newer, but has never come back from quiet
    const plan = p.plan(lastBack + 80_000); // both idle past the 60 s grace: floors only
    expect([fp(plan, "back").k, fp(plan, "once").k]).toEqual([1, 1]);
    expect([fp(plan, "back").warm, fp(plan, "once").warm]).toEqual([1, 0]);
    // LRU keeps the newer one instead.
    const lru = new PoolPolicy({ budgetBytes: 1 * MiB, trimOrder: "lru" });
    for (const fn of ["back", "once"]) lru.setMemory(fn, mem);
    for (let i = 0; i < 20; i++) call(lru, "back", i * 90_000, 10);
    call(lru, "once", lastBack + 5_000, 10);
    const l = lru.plan(lastBack + 80_000);
    expect([fp(l, "back").warm, fp(l, "once").warm]).toEqual([0, 1]);
  });

  test("property: 500 random plans with the defaults stay within budget", () => {
    const r = rng(99);
    const int = (n: number) => Math.floor(r() * n);
    for (let round = 0; round < 500; round++) {
      const p = new PoolPolicy({ budgetBytes: int(64) * MiB, headroom: int(3) });
      let t = 0;
      for (let i = 0; i < 1 + int(10); i++) {
        const fn = `f${i}`;
        p.setMemory(fn, { linBytes: int(2 * MiB), codeBytes: int(4 * MiB) });
        if (r() < 0.3) p.setMaxConcurrency(fn, 1 + int(5));
        const rate = 1 + int(300);
        t = int(1_000_000);
        for (let c = 0; c < int(200); c++) {
          t += -Math.log(1 - r()) * (1000 / rate);
          call(p, fn, t, r() * 100);
        }
      }
      const plan = p.plan(int(2_000_000));
      let exact = 0;
      for (const f of plan.functions.values()) {
        expect(f.warm).toBeLessThanOrEqual(f.k);
        if (f.unloadCode) expect(f.warm).toBe(0);
        exact += f.bytes;
      }
      expect(plan.plannedBytes).toBe(exact);
      expect(plan.plannedBytes).toBeLessThanOrEqual(plan.budgetBytes);
    }
  });

  test("bad settings are refused", () => {
    for (const bad of [{ overflowRisk: 1 }, { overflowRisk: -0.1 }, { gapFactor: -1 }, { warmFloorMs: -1 }, { maxFloorMs: -1 }, { planIntervalMs: Number.NaN }, { trimOrder: "mru" }]) {
      expect(() => new PoolPolicy({ budgetBytes: 1, ...(bad as object) })).toThrow(RangeError);
    }
  });
});
