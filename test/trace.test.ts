// The Azure Functions 2019 trace reader (scripts/bench/trace-azure.ts) on a
// small fixture written here in the dataset's exact format, and `bun run
// bench trace --azure DIR` end to end on it (TRACE_DRY=1: the policies and
// the replay without the engine, so it runs in seconds; the engine path is
// the same code as the synthetic trace's).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { azureFiles, lines, loadAzureTrace, quantile } from "../scripts/bench/trace-azure.ts";

const ROOT = join(import.meta.dir, "..");
const MINUTES = Array.from({ length: 1440 }, (_, i) => String(i + 1));
const INV_HEAD = ["HashOwner", "HashApp", "HashFunction", "Trigger", ...MINUTES].join(",");
const DUR_HEAD =
  "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,percentile_Average_99,percentile_Average_100";

/** Per-minute counts for a day from a rule. */
const day = (count: (m: number) => number) => Array.from({ length: 1440 }, (_, m) => count(m));

// Five functions: a 30-minute timer, a bursty HTTP function, a rare queue
// function, one never called (not a candidate) and one without durations.
const FUNCTIONS = [
  { id: "timer", trigger: "timer", counts: day((m) => (m % 30 === 0 ? 1 : 0)), dur: [80, 90, 95, 100, 105, 150, 300] },
  { id: "http", trigger: "http", counts: day((m) => (m >= 60 && m < 75 ? 40 : m >= 200 && m < 203 ? 120 : 0)), dur: [2, 3, 8, 12, 20, 90, 400] },
  { id: "queue", trigger: "queue", counts: day((m) => (m % 97 === 5 ? 2 : 0)), dur: [500, 510, 700, 900, 1000, 2500, 3000] },
  { id: "idle", trigger: "http", counts: day(() => 0), dur: [1, 1, 1, 1, 1, 1, 1] },
  { id: "nodur", trigger: "event", counts: day((m) => (m === 10 || m === 11 ? 3 : 0)), dur: null },
];

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "thaw-azure-"));
  const files = azureFiles(dir, 3);
  const inv = [INV_HEAD, ...FUNCTIONS.map((f) => [`owner-${f.id}`, `app-${f.id}`, `fn-${f.id}`, f.trigger, ...f.counts].join(","))];
  writeFileSync(files.invocations, `${inv.join("\r\n")}\r\n`); // CRLF, as exported on Windows
  const dur = [DUR_HEAD];
  for (const f of FUNCTIONS) {
    if (!f.dur) continue;
    const avg = f.dur[3]!;
    dur.push([`owner-${f.id}`, `app-${f.id}`, `fn-${f.id}`, avg, 10, f.dur[0], f.dur[6], ...f.dur].join(","));
  }
  dur.push(["owner-other", "app-other", "fn-other", 5, 1, 5, 5, 5, 5, 5, 5, 5, 5, 5].join(","));
  writeFileSync(files.durations, dur.join("\n")); // no final newline
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const total = (minutes: number, ids: string[]) =>
  FUNCTIONS.filter((f) => ids.includes(f.id)).reduce((s, f) => s + f.counts.slice(0, minutes).reduce((a, b) => a + b, 0), 0);

describe("Azure trace reader", () => {
  test("lines: streamed, CRLF and a missing final newline handled", async () => {
    const path = join(dir, "lines.txt");
    writeFileSync(path, "a,b\r\n\r\nc" + "x".repeat(200_000) + "\nlast");
    const got: string[] = [];
    for await (const l of lines(path)) got.push(l);
    expect(got.length).toBe(4);
    expect(got[0]).toBe("a,b");
    expect(got[1]).toBe("");
    expect(got[2]!.length).toBe(200_001);
    expect(got[3]).toBe("last");
  });

  test("quantile: piecewise linear through the percentiles, monotone", () => {
    const p = [0, 10, 20, 30, 40, 50, 60];
    expect(quantile(p, 0)).toBe(0);
    expect(quantile(p, 0.005)).toBeCloseTo(5, 9);
    expect(quantile(p, 0.5)).toBe(30);
    expect(quantile(p, 0.625)).toBeCloseTo(35, 9);
    expect(quantile(p, 1)).toBe(60);
    // Crossing percentiles (rounded averages) are made non-decreasing.
    expect(quantile([5, 4, 3, 9, 9, 9, 9], 0.2)).toBe(5);
  });

  test("every call of every called function, spread inside its minute, durations within its percentiles", async () => {
    const t = await loadAzureTrace({ dir, day: 3, functions: 100, minutes: 1440, seed: 42 });
    expect(t.candidates).toBe(4); // "idle" has no call
    expect(t.functions).toBe(4);
    expect(t.withDurations).toBe(3); // "nodur" has no row
    expect(t.keys.map((k) => k.split("/")[2]).sort()).toEqual(["fn-http", "fn-nodur", "fn-queue", "fn-timer"]);
    const ids = ["timer", "http", "queue", "nodur"];
    expect(t.calls.length).toBe(total(1440, ids));
    for (let i = 1; i < t.calls.length; i++) expect(t.calls[i]!.t).toBeGreaterThanOrEqual(t.calls[i - 1]!.t);
    t.keys.forEach((key, fn) => {
      const f = FUNCTIONS.find((x) => key === `owner-${x.id}/app-${x.id}/fn-${x.id}`)!;
      const mine = t.calls.filter((c) => c.fn === fn);
      // Per minute, exactly the file's count, each inside its minute.
      const perMinute = new Array(1440).fill(0);
      for (const c of mine) perMinute[Math.floor(c.t / 60_000)]++;
      expect(perMinute).toEqual(f.counts);
      // Durations inside [p0, p100]; the one without a row gets the median of the others' medians (100).
      const [lo, hi] = f.dur ? [f.dur[0]!, f.dur[6]!] : [100, 100];
      for (const c of mine) {
        expect(c.durationMs).toBeGreaterThanOrEqual(lo);
        expect(c.durationMs).toBeLessThanOrEqual(hi);
      }
      expect(t.tau[fn]).toBe(f.dur ? f.dur[3]! : 100);
    });
    // Sub-minute times are spread, not all at the minute's start.
    const http = t.keys.findIndex((k) => k.endsWith("fn-http"));
    const offsets = new Set(t.calls.filter((c) => c.fn === http).map((c) => Math.floor((c.t % 60_000) / 6_000)));
    expect(offsets.size).toBe(10);
    // Deterministic: same files and seed, same trace.
    const again = await loadAzureTrace({ dir, day: 3, functions: 100, minutes: 1440, seed: 42 });
    expect(again.calls).toEqual(t.calls);
  });

  test("--functions samples that many of the called functions, reproducibly; --minutes cuts the day", async () => {
    const a = await loadAzureTrace({ dir, day: 3, functions: 2, minutes: 1440, seed: 7 });
    const b = await loadAzureTrace({ dir, day: 3, functions: 2, minutes: 1440, seed: 7 });
    expect(a.functions).toBe(2);
    expect(a.keys).toEqual(b.keys);
    expect(new Set(a.keys).size).toBe(2);
    const short = await loadAzureTrace({ dir, day: 3, functions: 100, minutes: 30, seed: 1 });
    expect(short.durationMs).toBe(30 * 60_000);
    expect(short.calls.length).toBe(total(30, ["timer", "http", "queue", "nodur"]));
    expect(short.functions).toBe(3); // timer (minute 1), queue (6) and nodur (11, 12) call in the first 30 minutes; http not before 61
  });

  test("a damaged or missing file is an error naming where, never a quiet wrong replay", async () => {
    const bad = mkdtempSync(join(tmpdir(), "thaw-azure-bad-"));
    try {
      const files = azureFiles(bad, 1);
      writeFileSync(files.invocations, `${INV_HEAD}\nO,A,F,http,${day((m) => (m === 7 ? -1 : 0)).join(",")}\n`);
      writeFileSync(files.durations, `${DUR_HEAD}\n`);
      await expect(loadAzureTrace({ dir: bad, day: 1, functions: 5, minutes: 1440, seed: 1 })).rejects.toThrow(/:2: minute 8: bad count "-1"/);
      writeFileSync(files.invocations, `HashOwner,HashApp,Trigger,${MINUTES.join(",")}\n`);
      await expect(loadAzureTrace({ dir: bad, day: 1, functions: 5, minutes: 1440, seed: 1 })).rejects.toThrow(/no column HashFunction/);
      await expect(loadAzureTrace({ dir: bad, day: 2, functions: 5, minutes: 1440, seed: 1 })).rejects.toThrow();
      await expect(loadAzureTrace({ dir: bad, day: 15, functions: 5, minutes: 1440, seed: 1 })).rejects.toThrow(/--day/);
      await expect(loadAzureTrace({ dir: bad, day: 1, functions: 0, minutes: 1440, seed: 1 })).rejects.toThrow(/--functions/);
    } finally {
      rmSync(bad, { recursive: true, force: true });
    }
  });
});

describe("bun run bench trace --azure", () => {
  test("replays the fixture and prints every figure in its JSON line", async () => {
    const proc = Bun.spawn(["bun", "scripts/bench.ts", "trace", "--azure", dir, "--day", "3", "--minutes", "240", "--warmup", "30"], {
      cwd: ROOT,
      env: { ...process.env, TRACE_DRY: "1" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toContain("trace Azure 2019 day 3: 4 functions sampled of 4 called (3 with durations)");
    const json = JSON.parse(out.trim().split("\n").at(-1)!);
    expect(json.source).toBe("azure");
    expect(json.functions).toBe(4);
    expect(json.calls).toBe(total(240, ["timer", "http", "queue", "nodur"]));
    expect(json.warmup_ms).toBe(30 * 60_000);
    expect(json.calls_measured).toBeGreaterThan(0);
    for (const key of ["keep-alive", "fixed", "predicted-paper", "predicted"]) {
      expect(json.policies[key].cold_pct).toHaveLength(4);
      for (const c of json.policies[key].cold_pct) expect(c).toBeGreaterThanOrEqual(0);
    }
    expect(json.byte_budgets.bytes).toHaveLength(4);
    expect(json.byte_budgets.policies.predicted.cold_pct).toHaveLength(4);
    // The 30-minute timer comes back after gaps longer than any grace: the
    // predicted pool's floor window stretches to two of its gaps and keeps it
    // warm, the paper's rules start it cold every time.
    expect(json.policies.predicted.cold_starts[2]).toBeLessThan(json.policies["predicted-paper"].cold_starts[2]);
    expect(json.errors).toBe(0);
  }, 120_000);

  test("bad arguments exit 2 with a usage line", async () => {
    for (const args of [["--azure"], ["--bogus", "1"], ["--azure", dir, "--day", "x"], ["--azure", join(dir, "nope")]]) {
      const proc = Bun.spawn(["bun", "scripts/bench.ts", "trace", ...args], { cwd: ROOT, env: { ...process.env, TRACE_DRY: "1" }, stdout: "pipe", stderr: "pipe" });
      const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
      expect(code).toBe(2);
      expect(err.length).toBeGreaterThan(0);
    }
  }, 60_000);
});
