// The public Azure Functions 2019 trace (Shahrad et al., "Serverless in the
// Wild", ATC '20) as a trace for the `trace` benchmark: `bun run bench trace
// --azure DIR [--day NN] [--functions N] [--minutes M]`.
//
// Files read from DIR (the dataset's own names and columns):
//   invocations_per_function_md.anon.dNN.csv
//     HashOwner,HashApp,HashFunction,Trigger,1,2,...,1440   (calls per minute)
//   function_durations_percentiles.anon.dNN.csv
//     HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,
//     percentile_Average_0,percentile_Average_1,percentile_Average_25,
//     percentile_Average_50,percentile_Average_75,percentile_Average_99,
//     percentile_Average_100                                  (milliseconds)
// Columns are found by header name, so their order does not matter.
//
// Both files are streamed line by line (a day's invocation file is ~150 MB):
// memory is O(N functions kept), never O(file).
//
// - Which functions: a seeded reservoir sample (Algorithm R, mulberry32) of
//   N rows among those with at least one call in the replayed minutes. Not
//   the N busiest: the point of the trace is its mix, where most functions
//   are called rarely and a few very often, and a uniform sample keeps that
//   mix. Same files, seed and N -> same functions.
// - Arrivals: a minute with c calls gets c arrival times drawn uniformly in
//   [minute, minute + 60 s) and sorted. Given its count, a Poisson process's
//   arrivals are uniform order statistics, so this is the least-assuming
//   spread (it neither invents sub-minute bursts nor smooths them away). The
//   PRNG is one mulberry32 stream per kept function, seeded with
//   (seed, the function's index in the sample), consumed minute by minute.
// - Durations: each call draws u ~ U(0,1) from the same stream and reads the
//   function's duration quantile function, piecewise linear through the
//   percentiles (0, 1, 25, 50, 75, 99, 100) of its row. A kept function
//   without a durations row gets the median over the kept functions that
//   have one (100 ms if none has). τ_f, reported per function, is its
//   Average column (or that fallback).
// - Rows with a malformed count (not a non-negative integer) are rejected
//   with the file, line and column in the error: a replay of a damaged file
//   must not quietly measure something else.

import { join } from "node:path";
import { mulberry32, type TraceCall } from "./trace-gen.ts";

export interface AzureOptions {
  dir: string;
  /** Day of the dataset, 1-14. */
  day: number;
  /** How many functions to sample. */
  functions: number;
  /** Replay the first `minutes` minutes of the day (1-1440). */
  minutes: number;
  seed: number;
}

export interface AzureTrace {
  functions: number;
  /** Replayed span, ms of trace time. */
  durationMs: number;
  /** τ_f per function (ms) and long-run mean rate (calls/s). */
  tau: number[];
  rate: number[];
  /** All calls, sorted by arrival time. */
  calls: TraceCall[];
  /** Function keys (HashOwner/HashApp/HashFunction) in index order, and their triggers. */
  keys: string[];
  triggers: string[];
  /** Rows seen with at least one call in the replayed minutes. */
  candidates: number;
  /** Kept functions with a durations row. */
  withDurations: number;
}

const PERCENTILES = [0, 1, 25, 50, 75, 99, 100] as const;
/** More calls than this in the sample is an error (about 1 GB of call records): ask for fewer functions or minutes. */
export const MAX_CALLS = 20_000_000;

export function azureFiles(dir: string, day: number): { invocations: string; durations: string } {
  const dd = String(day).padStart(2, "0");
  return {
    invocations: join(dir, `invocations_per_function_md.anon.d${dd}.csv`),
    durations: join(dir, `function_durations_percentiles.anon.d${dd}.csv`),
  };
}

/** Lines of a file, streamed (no whole-file read); a final line without newline included. */
export async function* lines(path: string): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of Bun.file(path).stream()) {
    rest += decoder.decode(chunk, { stream: true });
    let nl = rest.indexOf("\n");
    let from = 0;
    while (nl !== -1) {
      yield rest.slice(from, nl).replace(/\r$/, "");
      from = nl + 1;
      nl = rest.indexOf("\n", from);
    }
    rest = rest.slice(from);
  }
  rest += decoder.decode();
  if (rest.length) yield rest.replace(/\r$/, "");
}

function column(header: string[], name: string, path: string): number {
  const i = header.indexOf(name);
  if (i < 0) throw new Error(`${path}: no column ${name}`);
  return i;
}

/**
 * Piecewise-linear quantile function through (p/100, value) points, p
 * ascending; values are made non-decreasing (a row's percentiles are
 * rounded averages and can cross).
 */
export function quantile(points: readonly number[], u: number): number {
  const ps = PERCENTILES;
  const q = u * 100;
  let lo = points[0]!;
  for (let i = 1; i < ps.length; i++) {
    const hi = Math.max(lo, points[i]!);
    if (q <= ps[i]!) return lo + ((hi - lo) * (q - ps[i - 1]!)) / (ps[i]! - ps[i - 1]!);
    lo = hi;
  }
  return lo;
}

interface Kept {
  key: string;
  trigger: string;
  counts: Uint32Array;
}

export async function loadAzureTrace(opts: AzureOptions): Promise<AzureTrace> {
  if (!Number.isInteger(opts.day) || opts.day < 1 || opts.day > 14) throw new Error(`--day must be 1-14, got ${opts.day}`);
  if (!Number.isInteger(opts.functions) || opts.functions < 1) throw new Error(`--functions must be a positive integer`);
  if (!Number.isInteger(opts.minutes) || opts.minutes < 1 || opts.minutes > 1440) throw new Error(`--minutes must be 1-1440`);
  const files = azureFiles(opts.dir, opts.day);
  const pick = mulberry32(opts.seed);
  const kept: Kept[] = [];
  let candidates = 0;
  let header: string[] | null = null;
  let minuteCol = 0;
  let lineNo = 0;
  let cols = { owner: 0, app: 0, fn: 0, trigger: 0 };
  for await (const line of lines(files.invocations)) {
    lineNo++;
    if (!line) continue;
    const f = line.split(",");
    if (!header) {
      header = f;
      cols = {
        owner: column(f, "HashOwner", files.invocations),
        app: column(f, "HashApp", files.invocations),
        fn: column(f, "HashFunction", files.invocations),
        trigger: column(f, "Trigger", files.invocations),
      };
      minuteCol = column(f, "1", files.invocations);
      if (f[minuteCol + opts.minutes - 1] !== String(opts.minutes)) throw new Error(`${files.invocations}: minute columns 1..${opts.minutes} expected in order`);
      continue;
    }
    const counts = new Uint32Array(opts.minutes);
    let total = 0;
    for (let m = 0; m < opts.minutes; m++) {
      const cell = f[minuteCol + m] ?? "";
      const c = cell === "" ? 0 : Number(cell);
      if (!Number.isInteger(c) || c < 0 || c > 0xffffffff) throw new Error(`${files.invocations}:${lineNo}: minute ${m + 1}: bad count ${JSON.stringify(cell.slice(0, 20))}`);
      counts[m] = c;
      total += c;
    }
    if (total === 0) continue;
    candidates++;
    const row = { key: `${f[cols.owner]}/${f[cols.app]}/${f[cols.fn]}`, trigger: f[cols.trigger] ?? "", counts };
    if (kept.length < opts.functions) kept.push(row);
    else {
      const j = Math.floor(pick() * candidates);
      if (j < opts.functions) kept[j] = row;
    }
  }
  if (!header) throw new Error(`${files.invocations}: empty file`);

  // Durations of the kept functions only.
  const index = new Map(kept.map((k, i) => [k.key, i]));
  const pcts: (number[] | null)[] = kept.map(() => null);
  const avg: (number | null)[] = kept.map(() => null);
  let dHeader: string[] | null = null;
  let dCols: { owner: number; app: number; fn: number; avg: number; p: number[] } | null = null;
  for await (const line of lines(files.durations)) {
    if (!line) continue;
    const f = line.split(",");
    if (!dHeader) {
      dHeader = f;
      const p = files.durations;
      dCols = {
        owner: column(f, "HashOwner", p),
        app: column(f, "HashApp", p),
        fn: column(f, "HashFunction", p),
        avg: column(f, "Average", p),
        p: PERCENTILES.map((q) => column(f, `percentile_Average_${q}`, p)),
      };
      continue;
    }
    const i = index.get(`${f[dCols!.owner]}/${f[dCols!.app]}/${f[dCols!.fn]}`);
    if (i === undefined) continue;
    const values = dCols!.p.map((c) => Number(f[c]));
    const a = Number(f[dCols!.avg]);
    if (values.every((v) => Number.isFinite(v) && v >= 0) && Number.isFinite(a) && a >= 0) {
      pcts[i] = values;
      avg[i] = a;
    }
  }
  const medians = pcts.filter((p): p is number[] => p !== null).map((p) => p[3]!).sort((a, b) => a - b);
  const fallback = medians.length ? medians[Math.floor(medians.length / 2)]! : 100;

  const sampled = kept.reduce((sum, k) => sum + k.counts.reduce((a, b) => a + b, 0), 0);
  if (sampled > MAX_CALLS) throw new Error(`the sample holds ${sampled} calls (more than ${MAX_CALLS}): use fewer --functions or --minutes, or another --seed`);
  const calls: TraceCall[] = [];
  const rate: number[] = [];
  const tau: number[] = [];
  kept.forEach((k, fn) => {
    const rnd = mulberry32((opts.seed * 0x9e3779b1 + fn + 1) >>> 0);
    const points = pcts[fn] ?? PERCENTILES.map(() => fallback);
    let total = 0;
    for (let m = 0; m < opts.minutes; m++) {
      const c = k.counts[m]!;
      total += c;
      const ts: number[] = [];
      for (let j = 0; j < c; j++) ts.push(m * 60_000 + rnd() * 60_000);
      ts.sort((a, b) => a - b);
      for (const t of ts) calls.push({ t, fn, durationMs: quantile(points, rnd()) });
    }
    rate.push(total / (opts.minutes * 60));
    tau.push(avg[fn] ?? fallback);
  });
  calls.sort((a, b) => a.t - b.t || a.fn - b.fn);
  return {
    functions: kept.length,
    durationMs: opts.minutes * 60_000,
    tau,
    rate,
    calls,
    keys: kept.map((k) => k.key),
    triggers: kept.map((k) => k.trigger),
    candidates,
    withDurations: pcts.filter((p) => p !== null).length,
  };
}
