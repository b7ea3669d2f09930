// Benchmark `trace`: paper Table III and Figure 2 (cold-start rate at an
// equal warm-memory budget, and as the budget grows) reproduced with thaw
// itself: a synthetic bursty trace (or the Azure Functions 2019 trace)
// replayed against the real engine under the policies of src/pool/policy.ts.
//
// Trace (scripts/bench/trace-gen.ts, seeded, mulberry32): 200 functions,
// Zipf s = 1.0 popularity, 150 calls/s on average over all functions, 240 s
// of trace time. Each function alternates ON/OFF periods (exponential, means
// 20 s / 60 s); during ON it receives Poisson arrivals at its Zipf share / duty
// cycle, so the most popular function runs at ~100 calls/s in a burst and the
// least popular at ~0.5 calls/s. Per function τ_f is lognormal (median 15 ms,
// σ 0.8, clamped 2-200 ms) and each call's duration lognormal around τ_f
// (σ 0.3). About 41 k calls; the first 60 s are warm-up (every policy starts
// empty and a first call is cold everywhere; the paper's 6-hour run amortises
// that, a 4-minute one does not), the rest (~29 k calls) is measured.
//
// Replay: trace time is virtual (arrivals, completions and plan ticks
// processed in time order from a priority queue), but every call is real.
// Each trace function has its own LoadedModule (function i runs example
// module i mod 5: hello, json, wordcount, thumbnail, primes) and its own list
// of idle, real Instances. An arrival takes the newest idle instance (warm)
// or restores one on the spot (cold: module.restore() on the call path), then
// runs engine.call(..., {resetAfter: true}) on it, awaited (calls run one
// after another; overlap exists only in virtual time, where an instance
// stays busy until arrival + simulated duration, so bursts need several
// instances). Latency of a call = simulated duration + the real measured
// acquire (restore if cold) + call round trip. Completion gives the instance
// back to the idle list (as FunctionPool does) and feeds recordDuration.
//
// Policies, same budget B for warm (idle) instances:
//   keep-alive  KeepAlivePolicy, 48 MiB containers, 10 min keep-alive. The
//               policy simulates its containers; the real idle list mirrors
//               them: recordArrival() === true -> reuse an idle instance,
//               false -> restore (cold); containers it expires or evicts in
//               plan() are freed for real.
//   fixed       FixedPolicy, K derived from the budget, capped to fit 3/4 of
//               the engine's guard-page slots (fixedK).
//   predicted-paper  PoolPolicy with PAPER_POOL: eq. 3 only, k = 0 after the
//               60 s idle grace, LRU trimming (thaw's policy before the
//               warm floor; kept as the "before" row of every run).
//   predicted   PoolPolicy with its defaults: warm floor of one instance
//               for 10 min (longer for functions with long regular gaps),
//               burst-aware λ, headroom from the Poisson tail, trimming by
//               predicted value per byte (planIntervalMs = the tick).
// For fixed / predicted M_inst is measured: per example module,
// stats().instanceBytes + Instance.privateBytes() of an instance after one
// call (written pages a copy-back reset keeps), and M_code = stats().codeBytes,
// as src/pool/manager.ts measures it. Every 250 ms of trace time plan() is
// applied as the manager does (src/pool/manager.ts idleToKeep): trim idle
// lists when the budget binds or the policy wants them gone (free the
// oldest), then pre-restore up to plan.warm (off the call path: not cold).
// Code unloading is not simulated (modules stay loaded).
//
// Scaling: 1 budget unit stands for the paper's 1 GB; budgets 1, 2, 4, 8
// units as in Figure 2. 1 unit = 512 MiB: the paper ran more functions than
// these 200 (its 4 GB held ~85 containers), so the budget is halved with
// them; 4 units = 2 GiB hold 42 containers of 48 MiB (~1/5 of the
// functions). This is the one knob chosen to put the container baseline
// near the paper (12.4 % at 4 GB); with 128 MiB units it would be ~34 %,
// with 1 GiB units ~3 %. The wasm policies do not depend on it here: a thaw
// instance costs 12-45 KiB (measured, vs the paper's 1.8 MB), so even 1 unit
// holds every instance either wasm policy asks for and the budget never
// binds for them. The generator's burst shape was tried at ON/OFF means of
// 20/60, 60/60, 60/180, 120/120 and 30/30 s (TRACE_DRY=1) when the trace
// was written; the predicted pool's rate moved little between them, so
// 20/60 s was kept.
// "p95 modeled": the same calls with each cold start costing the paper's
// cold start for its platform (container: 450 ms, Table II); for the thaw
// policies that is the measured restore, so modeled = measured.
//
// Cold starts are split by cause: "overflow" = the function had calls in
// flight (in trace time) at the arrival, i.e. the pool was too small for the
// concurrency; "empty" = nothing in flight and nothing warm. A call whose
// restore the engine refuses (no memory or guard-page slot left) counts as
// cold and as an error (restore_failures).
//
// Budgets that bind for thaw's real sizes: the paper-scale units above never
// bind for the wasm policies here (see above), so a second table sweeps
// budgets in bytes relative to ONE = Σ_f (M_lin,f + M_code,f), what one
// warm instance of every trace function costs with the measured sizes:
// ONE/8, ONE/4, ONE/2, ONE (printed in MiB). There the order in which the
// budget trims decides the cold rate (keep-alive is left out: not one 48 MiB
// container fits).
//
// A run whose budget never bound is reused for the larger budgets of the
// same policy (marked * and "reused" in the JSON; not for fixed, whose K
// follows the budget): the decisions would be the same.
//
// Azure replay: `--azure DIR [--day NN] [--functions N] [--minutes M]
// [--warmup MIN]` replays the public Azure Functions 2019 trace instead of the
// synthetic one (parsing, sampling and spreading: scripts/bench/trace-azure.ts;
// defaults: day 1, 200 functions, 1440 minutes, warm-up 60 minutes or a
// quarter of the span if shorter). Plan ticks are then every 1 s of trace
// time (250 ms over a day is 345,600 plans per run). Function i runs
// example module i mod 5, as for the synthetic trace.
//
// Environment: TRACE_SEED (42), TRACE_UNIT_MIB (512), TRACE_ON_MS (20000),
// TRACE_OFF_MS (60000), TRACE_PREDICTED (JSON of PoolPolicy options for the
// "predicted" rows, e.g. '{"overflowRisk":0.05}'); TRACE_DRY=1 replays
// without the engine (restore and call cost 0, M_inst fixed at 24 KiB +
// 48 KiB code, about the measured example modules' 12-45 KiB + 31-70 KiB):
// fast, for checking the trace and the policies; only the cold rates mean
// anything then.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { compile } from "../../src/compiler/compile.ts";
import { type CallRequest, DEFAULT_LIMITS, Engine, EngineError, type Instance, type LoadedModule } from "../../src/engine/engine.ts";
import { FixedPolicy, functionBytes, KeepAlivePolicy, MiB, PAPER_POOL, PoolPolicy, type PoolPolicyConfig, uniformTarget, type WarmPolicy } from "../../src/pool/policy.ts";
import { idleOverBudget, idleToKeep } from "../../src/pool/manager.ts";
import { type AzureTrace, loadAzureTrace } from "./trace-azure.ts";
import { generateTrace, type TraceCall, type TraceConfig } from "./trace-gen.ts";

const ROOT = join(import.meta.dir, "../..");
const DATA = process.env.THAW_DATA_DIR ?? join(ROOT, "test-output", "data");
const SVG_PATH = join(ROOT, "test-output", "trace-coldstart.svg");
const DRY = process.env.TRACE_DRY === "1";

const TRACE: TraceConfig = {
  seed: Number(process.env.TRACE_SEED ?? 42),
  functions: 200,
  zipfS: 1.0,
  totalRate: 150,
  durationMs: 240_000,
  onMeanMs: Number(process.env.TRACE_ON_MS ?? 20_000),
  offMeanMs: Number(process.env.TRACE_OFF_MS ?? 60_000),
  tauMedianMs: 15,
  tauSigma: 0.8,
  callSigma: 0.3,
  tauMinMs: 2,
  tauMaxMs: 200,
};
/** TRACE_PREDICTED: JSON of PoolPolicy options for the "predicted" rows, to try variants. */
const PREDICTED_OPTIONS = JSON.parse(process.env.TRACE_PREDICTED ?? "{}") as Partial<PoolPolicyConfig>;
const UNIT_BYTES = Number(process.env.TRACE_UNIT_MIB ?? 512) * MiB;
const BUDGETS = [1, 2, 4, 8];
const BYTE_FRACTIONS = [1 / 8, 1 / 4, 1 / 2, 1];
const CONTAINER_BYTES = 48 * MiB;
const CONTAINER_COLD_MS = 450; // paper Table II
const KINDS = ["hello", "json", "wordcount", "thumbnail", "primes"] as const;
const POLICIES = ["keep-alive", "fixed", "predicted-paper", "predicted"] as const;
const BYTE_POLICIES = ["fixed", "predicted-paper", "predicted"] as const;
type PolicyKey = (typeof POLICIES)[number];
const PAPER: Record<PolicyKey, { cold: number; p95: number; held: string }> = {
  "keep-alive": { cold: 12.4, p95: 220, held: "~85" },
  fixed: { cold: 3.1, p95: 9, held: "~2,200" },
  "predicted-paper": { cold: 1.2, p95: 6, held: "adaptive" },
  predicted: { cold: 1.2, p95: 6, held: "adaptive" },
};

// ---------------------------------------------------------------------------
// Arguments: the trace source.

function args(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const known = ["--azure", "--day", "--functions", "--minutes", "--warmup"];
    if (!known.includes(a) || argv[i + 1] === undefined) {
      console.error(`usage: bun run bench trace [--azure DIR [--day NN] [--functions N] [--minutes M] [--warmup MIN]]  (unknown or incomplete: ${a})`);
      process.exit(2);
    }
    out[a.slice(2)] = argv[++i]!;
  }
  return out;
}
const ARGS = args(process.argv.slice(3));
const intArg = (k: string, dflt: number) => {
  const v = ARGS[k] === undefined ? dflt : Number(ARGS[k]);
  if (!Number.isInteger(v) || v < 0) {
    console.error(`--${k} must be a non-negative integer, got ${ARGS[k]}`);
    process.exit(2);
  }
  return v;
};

interface Source {
  kind: "synthetic" | "azure";
  functions: number;
  durationMs: number;
  calls: TraceCall[];
  warmupMs: number;
  tickMs: number;
  azure?: AzureTrace;
}

async function source(): Promise<Source> {
  if (ARGS.azure === undefined) {
    const t = generateTrace(TRACE);
    return { kind: "synthetic", functions: TRACE.functions, durationMs: TRACE.durationMs, calls: t.calls, warmupMs: 60_000, tickMs: 250 };
  }
  const minutes = intArg("minutes", 1440);
  const azure = await loadAzureTrace({
    dir: ARGS.azure,
    day: intArg("day", 1),
    functions: intArg("functions", 200),
    minutes,
    seed: TRACE.seed,
  });
  const warmupMin = intArg("warmup", Math.min(60, Math.floor(minutes / 4)));
  return { kind: "azure", functions: azure.functions, durationMs: azure.durationMs, calls: azure.calls, warmupMs: warmupMin * 60_000, tickMs: 1000, azure };
}
const SRC = await source().catch((e: Error) => {
  console.error(`trace: ${e.message}`);
  process.exit(2);
});
const FUNCTIONS = SRC.functions;
const WARMUP_MS = SRC.warmupMs;
const TICK_MS = SRC.tickMs;

// ---------------------------------------------------------------------------
// Engine side: one LoadedModule per trace function, a request per kind.

function ppm(w: number, h: number): Uint8Array {
  const head = new TextEncoder().encode(`P6\n${w} ${h}\n255\n`);
  const out = new Uint8Array(head.length + w * h * 3);
  out.set(head);
  for (let i = 0; i < w * h * 3; i++) out[head.length + i] = (i * 37) & 255;
  return out;
}
const enc = new TextEncoder();
const REQUESTS: Record<(typeof KINDS)[number], CallRequest> = {
  hello: { env: { QUERY_STRING: "name=trace" }, resetAfter: true },
  json: { stdin: enc.encode('{"b":[1,2,{"c":"x"}],"a":"hello"}'), resetAfter: true },
  wordcount: { stdin: enc.encode("the cat and the hat\nthe end of the trace\n"), resetAfter: true },
  thumbnail: { stdin: ppm(64, 64), env: { QUERY_STRING: "w=16&h=16" }, resetAfter: true },
  primes: { stdin: enc.encode("97\n1000\n"), resetAfter: true },
};

interface Backend {
  /** null when the engine has no room left (memory, or guard-page address-space slots). */
  restore(fn: number): Instance | null;
  /** Runs one call; false if it failed. */
  call(fn: number, inst: Instance): Promise<boolean>;
}

const engine = DRY ? null : new Engine();
const modules: LoadedModule[] = [];
const memory: { linBytes: number; codeBytes: number }[] = []; // per kind
let guarded = false;
if (engine) {
  const artifacts = [];
  for (const kind of KINDS) {
    const a = await compile(readFileSync(join(ROOT, "functions/build", `${kind}.wasm`)), { dataDir: DATA, engine });
    artifacts.push(a);
    const mod = engine.load(a.soPath, a.snapshotPath, DEFAULT_LIMITS);
    const inst = mod.restore();
    const r = await engine.call(inst, REQUESTS[kind]);
    if (r.status !== "ok" || r.exitCode !== 0) throw new Error(`${kind}: ${r.status} exit ${r.exitCode}`);
    if (!r.instanceReset) inst.reset();
    const stats = mod.stats();
    guarded ||= stats.guarded;
    memory.push({ linBytes: stats.instanceBytes + inst.privateBytes(), codeBytes: stats.codeBytes });
    inst.free();
    mod.release();
  }
  for (let fn = 0; fn < FUNCTIONS; fn++) {
    const a = artifacts[fn % KINDS.length]!;
    modules.push(engine.load(a.soPath, a.snapshotPath, DEFAULT_LIMITS));
  }
} else {
  for (const _ of KINDS) memory.push({ linBytes: 24 * 1024, codeBytes: 48 * 1024 });
}

/** Guard-page slots left after loading (null without the engine or without guarded modules). */
const GUARD_SLOTS = engine && guarded ? engine.guardSlotsFree() : null;

const fake = {} as Instance;
const backend: Backend = engine
  ? {
      restore: (fn) => {
        try {
          return modules[fn]!.restore();
        } catch (e) {
          if (e instanceof EngineError) return null;
          throw e;
        }
      },
      call: async (fn, inst) => {
        const r = await engine.call(inst, REQUESTS[KINDS[fn % KINDS.length]!]);
        if (!r.instanceReset && !r.instanceLost) inst.reset();
        return r.status === "ok" && r.exitCode === 0;
      },
    }
  : { restore: () => ({ ...fake, free() {} }) as Instance, call: async () => true };

// ---------------------------------------------------------------------------
// Replay

const calls = SRC.calls;

interface Completion {
  t: number;
  fn: number;
  durationMs: number;
  inst: Instance;
}

/** Binary min-heap on t. */
class Heap {
  private a: Completion[] = [];
  get size() {
    return this.a.length;
  }
  peek() {
    return this.a[0];
  }
  push(x: Completion) {
    const a = this.a;
    a.push(x);
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (a[p]!.t <= a[i]!.t) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): Completion {
    const a = this.a;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]!.t < a[m]!.t) m = l;
        if (r < a.length && a[r]!.t < a[m]!.t) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}

const pct = (xs: number[], p: number) => {
  if (!xs.length) return 0;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const r2 = (x: number) => Math.round(x * 100) / 100;

interface RunResult {
  calls: number;
  cold: number;
  coldPct: number;
  p50: number;
  p95: number;
  p99: number;
  p95Modeled: number;
  restoreP50Ms: number;
  prewarms: number;
  warmHeldAvg: number;
  warmHeldMax: number;
  errors: number;
  mismatches: number;
  overflow: number;
  /** Whether the budget ever trimmed a wish or found the idle instances over it. */
  bound: boolean;
  /** Copied from the run at a smaller budget that never bound (see runAll). */
  reused: boolean;
  /** Restores the engine refused (no memory or guard slots left): pre-warms cut short, calls failed. */
  restoreFailures: number;
}

function makePolicy(key: PolicyKey, budgetBytes: number): WarmPolicy {
  if (key === "keep-alive") return new KeepAlivePolicy({ budgetBytes, containerBytes: CONTAINER_BYTES });
  const p =
    key === "fixed"
      ? new FixedPolicy({ budgetBytes, perFunction: fixedK(budgetBytes) })
      : new PoolPolicy({ budgetBytes, headroom: 1, planIntervalMs: TICK_MS, ...(key === "predicted-paper" ? PAPER_POOL : PREDICTED_OPTIONS) });
  for (let fn = 0; fn < FUNCTIONS; fn++) p.setMemory(name(fn), memory[fn % KINDS.length]!);
  return p;
}
/**
 * The fixed pool's K: derived from the budget (FixedPolicy's own rule), but
 * with guarded modules no more than fits in three quarters of the engine's
 * guard-page slots (8 GiB of address space per instance; the rest is for
 * calls in flight). Without the cap the paper-scale budgets ask for ~12,000
 * instances and the process runs out of slots: every cold call fails.
 */
function fixedK(budgetBytes: number): number | undefined {
  if (GUARD_SLOTS === null || GUARD_SLOTS === 0) return undefined;
  const derived = Math.max(
    1,
    uniformTarget(
      Array.from({ length: FUNCTIONS }, (_, fn) => ({ ...memory[fn % KINDS.length]!, maxConcurrency: 64 })),
      budgetBytes,
    ),
  );
  return Math.max(1, Math.min(derived, Math.floor((0.75 * GUARD_SLOTS) / FUNCTIONS)));
}
/** ONE: one warm instance of every trace function, with the measured sizes. */
const ONE_EACH_BYTES = Array.from({ length: FUNCTIONS }, (_, fn) => functionBytes(memory[fn % KINDS.length]!, 1)).reduce((a, b) => a + b, 0);
const BYTE_BUDGETS = BYTE_FRACTIONS.map((f) => Math.round(f * ONE_EACH_BYTES));
const NAMES = Array.from({ length: FUNCTIONS }, (_, fn) => `f${String(fn).padStart(5, "0")}`);
const INDEX = new Map(NAMES.map((n, fn) => [n, fn]));
const name = (fn: number) => NAMES[fn]!;

async function replay(key: PolicyKey, budgetBytes: number): Promise<RunResult> {
  const policy = makePolicy(key, budgetBytes);
  const keepAlive = policy instanceof KeepAlivePolicy ? policy : null;
  const idle: Instance[][] = Array.from({ length: FUNCTIONS }, () => []);
  const trimTo = (fn: number, n: number) => {
    const list = idle[fn]!;
    while (list.length > n) list.shift()!.free();
  };
  const done = new Heap();
  const latency: number[] = [];
  const modeled: number[] = [];
  const restoreMs: number[] = [];
  let cold = 0;
  let prewarms = 0;
  let errors = 0;
  let mismatches = 0;
  let overflow = 0;
  let bound = false;
  let restoreFailures = 0;
  let measured = 0;
  const busy = new Array<number>(FUNCTIONS).fill(0);
  let heldSum = 0;
  let heldMax = 0;
  let ticks = 0;
  let nextTick = TICK_MS;
  let i = 0;

  const complete = (c: Completion) => {
    policy.recordDuration(name(c.fn), c.durationMs, c.t);
    busy[c.fn]!--;
    idle[c.fn]!.push(c.inst);
    if (keepAlive) trimTo(c.fn, keepAlive.containerCount(name(c.fn)).idle);
  };
  const tick = (t: number) => {
    const plan = policy.plan(t);
    const overBudget = idleOverBudget(plan, (f) => idle[INDEX.get(f) ?? -1]?.length ?? 0);
    if (overBudget) bound = true;
    let held = 0;
    let full = false;
    for (let fn = 0; fn < FUNCTIONS; fn++) {
      const fp = plan.functions.get(name(fn));
      if (fp && fp.trimmed > 0) bound = true;
      if (keepAlive) trimTo(fn, keepAlive.containerCount(name(fn)).idle);
      else {
        const warm = fp?.warm ?? 0;
        trimTo(fn, idleToKeep(fp, idle[fn]!.length, overBudget));
        while (idle[fn]!.length < warm && !full) {
          const inst = backend.restore(fn);
          if (!inst) {
            full = true; // no room left: pre-warm nothing more this tick
            restoreFailures++;
            break;
          }
          idle[fn]!.unshift(inst);
          if (t >= WARMUP_MS) prewarms++;
        }
      }
      held += idle[fn]!.length;
    }
    if (t >= WARMUP_MS) {
      heldSum += held;
      heldMax = Math.max(heldMax, held);
      ticks++;
    }
  };

  while (i < calls.length || done.size) {
    const ta = i < calls.length ? calls[i]!.t : Infinity;
    const tc = done.size ? done.peek()!.t : Infinity;
    if (tc <= ta && tc <= nextTick) {
      complete(done.pop());
      continue;
    }
    if (nextTick <= ta) {
      tick(nextTick);
      nextTick += TICK_MS;
      continue;
    }
    const call = calls[i++]!;
    const fn = call.fn;
    const list = idle[fn]!;
    let warm: boolean;
    if (keepAlive) {
      const reused = keepAlive.recordArrival(name(fn), call.t);
      trimTo(fn, keepAlive.containerCount(name(fn)).idle + (reused ? 1 : 0));
      if (reused && list.length === 0) mismatches++;
      warm = reused && list.length > 0;
    } else {
      policy.recordArrival(name(fn), call.t);
      warm = list.length > 0;
    }
    const t0 = Bun.nanoseconds();
    const inst = warm ? list.pop()! : backend.restore(fn);
    const t1 = Bun.nanoseconds();
    if (!inst) {
      // The engine had no room for the call's instance: a failed call, and a cold one.
      restoreFailures++;
      errors++;
      if (call.t >= WARMUP_MS) {
        measured++;
        cold++;
      }
      continue;
    }
    if (!(await backend.call(fn, inst))) errors++;
    const overheadMs = (Bun.nanoseconds() - t0) / 1e6;
    done.push({ t: call.t + call.durationMs, fn, durationMs: call.durationMs, inst });
    busy[fn]!++;
    if (call.t < WARMUP_MS) continue;
    measured++;
    if (!warm) {
      cold++;
      if (busy[fn]! > 1) overflow++;
      restoreMs.push((t1 - t0) / 1e6);
    }
    latency.push(call.durationMs + overheadMs);
    modeled.push(call.durationMs + (!warm && keepAlive ? CONTAINER_COLD_MS + (overheadMs - (t1 - t0) / 1e6) : overheadMs));
  }
  for (const list of idle) for (const inst of list.splice(0)) inst.free();
  return {
    calls: measured,
    cold,
    coldPct: measured ? (100 * cold) / measured : 0,
    p50: pct(latency, 50),
    p95: pct(latency, 95),
    p99: pct(latency, 99),
    p95Modeled: pct(modeled, 95),
    restoreP50Ms: pct(restoreMs, 50),
    prewarms,
    warmHeldAvg: ticks ? heldSum / ticks : 0,
    warmHeldMax: heldMax,
    errors,
    mismatches,
    overflow,
    bound,
    reused: false,
    restoreFailures,
  };
}

const t0 = performance.now();
/**
 * One policy at ascending budgets. A run whose budget never bound made every
 * decision as if the budget were infinite, so at any larger budget the
 * policy would decide the same (its plans depend on the budget only through
 * trimming) and the run is reused instead of replayed -- except for the
 * fixed pool, whose K is derived from the budget. Replaying a whole Azure
 * day at four paper-scale budgets that never bind would otherwise take most
 * of the wall time.
 */
async function runAll(key: PolicyKey, budgets: number[]): Promise<RunResult[]> {
  const out: RunResult[] = [];
  for (const b of budgets) {
    const prev = out.at(-1);
    out.push(prev && !prev.bound && key !== "fixed" ? { ...prev, reused: true } : await replay(key, b));
  }
  return out;
}
const results = {} as Record<PolicyKey, RunResult[]>;
for (const key of POLICIES) results[key] = await runAll(key, BUDGETS.map((u) => u * UNIT_BYTES));
const byteResults = {} as Record<(typeof BYTE_POLICIES)[number], RunResult[]>;
for (const key of BYTE_POLICIES) byteResults[key] = await runAll(key, BYTE_BUDGETS);
const elapsedS = (performance.now() - t0) / 1000;
for (const m of modules) m.release();
engine?.close();

// ---------------------------------------------------------------------------
// Figure 2: cold-start rate vs budget, log y, hand-written SVG.

function svg(): string {
  const W = 640;
  const H = 420;
  const L = 70;
  const R = 170;
  const T = 40;
  const B = 60;
  const yMin = 0.01;
  const yMax = 100;
  const x = (u: number) => L + ((Math.log2(u) - 0) / Math.log2(8)) * (W - L - R);
  const y = (p: number) => T + ((Math.log10(yMax) - Math.log10(Math.max(yMin, p))) / (Math.log10(yMax) - Math.log10(yMin))) * (H - T - B);
  const colors: Record<PolicyKey, string> = { "keep-alive": "#d62728", fixed: "#1f77b4", "predicted-paper": "#9467bd", predicted: "#2ca02c" };
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${(L + W - R) / 2}" y="22" text-anchor="middle" font-size="14">Cold-start rate vs warm budget (thaw, ${SRC.kind}, ${FUNCTIONS} functions, seed ${TRACE.seed})</text>`);
  for (let d = -2; d <= 2; d++) {
    const p = 10 ** d;
    out.push(`<line x1="${L}" x2="${W - R}" y1="${y(p)}" y2="${y(p)}" stroke="#ddd"/>`);
    out.push(`<text x="${L - 8}" y="${y(p) + 4}" text-anchor="end">${p}%</text>`);
  }
  for (const u of BUDGETS) {
    out.push(`<line x1="${x(u)}" x2="${x(u)}" y1="${T}" y2="${H - B}" stroke="#eee"/>`);
    out.push(`<text x="${x(u)}" y="${H - B + 18}" text-anchor="middle">${u}</text>`);
  }
  out.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 18}" text-anchor="middle">warm budget (units of ${UNIT_BYTES / MiB} MiB ≈ paper GB)</text>`);
  out.push(`<text x="18" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 18 ${(T + H - B) / 2})">cold-start rate (%, log)</text>`);
  POLICIES.forEach((key, k) => {
    const pts = results[key].map((r, j) => `${x(BUDGETS[j]!)},${y(r.coldPct)}`);
    out.push(`<polyline points="${pts.join(" ")}" fill="none" stroke="${colors[key]}" stroke-width="2"/>`);
    for (const p of pts) {
      const [px, py] = p.split(",");
      out.push(`<circle cx="${px}" cy="${py}" r="3.5" fill="${colors[key]}"/>`);
    }
    // The paper's point at 4 GB (Table III), hollow.
    if (key !== "predicted-paper") out.push(`<circle cx="${x(4)}" cy="${y(PAPER[key].cold)}" r="6" fill="none" stroke="${colors[key]}" stroke-width="1.5" stroke-dasharray="2 2"/>`);
    const ly = T + 10 + k * 20;
    out.push(`<line x1="${W - R + 12}" x2="${W - R + 36}" y1="${ly}" y2="${ly}" stroke="${colors[key]}" stroke-width="2"/>`);
    out.push(`<text x="${W - R + 42}" y="${ly + 4}">${key}</text>`);
  });
  out.push(`<circle cx="${W - R + 24}" cy="${T + 92}" r="6" fill="none" stroke="#333" stroke-dasharray="2 2"/>`);
  out.push(`<text x="${W - R + 42}" y="${T + 96}">paper, 4 GB</text>`);
  out.push(`</svg>`);
  return out.join("\n");
}
mkdirSync(join(ROOT, "test-output"), { recursive: true });
writeFileSync(SVG_PATH, svg());

// ---------------------------------------------------------------------------
// Output

const measuredFrom = calls.filter((c) => c.t >= WARMUP_MS).length;
const what =
  SRC.kind === "synthetic"
    ? `synthetic: ${FUNCTIONS} functions, Zipf s=${TRACE.zipfS}`
    : `Azure 2019 day ${intArg("day", 1)}: ${FUNCTIONS} functions sampled of ${SRC.azure!.candidates} called (${SRC.azure!.withDurations} with durations)`;
console.log(
  `trace ${what}, ${calls.length} calls in ${SRC.durationMs / 1000} s of trace time (${measuredFrom} measured after ${WARMUP_MS / 1000} s warm-up), plan every ${TICK_MS} ms, seed ${TRACE.seed}${DRY ? "  [DRY: no engine]" : ""}`,
);
console.log(`budget unit ${UNIT_BYTES / MiB} MiB (≈ paper 1 GB); container ${CONTAINER_BYTES / MiB} MiB; M_inst measured per module: ${KINDS.map((k, j) => `${k} ${(memory[j]!.linBytes / 1024).toFixed(0)} KiB + ${(memory[j]!.codeBytes / 1024).toFixed(0)} KiB code`).join(", ")}`);
const mib = (b: number) => (b / MiB).toFixed(2);
const header = (budget: string) =>
  `${"policy".padEnd(15)} ${budget.padStart(9)} ${"held avg".padStart(9)} ${"cold %".padStart(7)} ${"p50 ms".padStart(7)} ${"p95 ms".padStart(7)} ${"p99 ms".padStart(7)} ${"p95 modeled".padStart(11)} ${"restore p50".padStart(11)} ${"prewarms".padStart(8)} ${"cold: overflow/empty".padStart(20)}`;
const row = (key: string, budget: string, r: RunResult) =>
  `${key.padEnd(15)} ${budget.padStart(9)} ${r.warmHeldAvg.toFixed(0).padStart(9)} ${r.coldPct.toFixed(2).padStart(7)} ${r.p50.toFixed(2).padStart(7)} ${r.p95.toFixed(2).padStart(7)} ${r.p99.toFixed(2).padStart(7)} ${r.p95Modeled.toFixed(2).padStart(11)} ${(r.restoreP50Ms * 1000).toFixed(0).padStart(8)} µs ${String(r.prewarms).padStart(8)} ${`${r.overflow}/${r.cold - r.overflow}`.padStart(20)}`;
console.log("");
console.log(header("units"));
const label = (budget: string, r: RunResult) => (r.reused ? `${budget}*` : budget);
for (const key of POLICIES) results[key].forEach((r, j) => console.log(row(key, label(String(BUDGETS[j]), r), r)));
console.log("");
console.log(`budgets that bind for thaw's sizes (ONE = one warm instance of every function = ${mib(ONE_EACH_BYTES)} MiB):`);
console.log(header("MiB"));
for (const key of BYTE_POLICIES) byteResults[key].forEach((r, j) => console.log(row(key, label(mib(BYTE_BUDGETS[j]!), r), r)));
console.log("* the run at the budget above never bound: same decisions, so reused (runAll)");
const at4 = BUDGETS.indexOf(4);
console.log("");
console.log("Table III (equal budget, 4 units)   this run: held / cold % / p95 ms / p95 modeled   paper: held / cold % / p95 ms");
for (const key of POLICIES) {
  const r = results[key][at4]!;
  console.log(`  ${key.padEnd(15)} ${r.warmHeldAvg.toFixed(0).padStart(6)} / ${r.coldPct.toFixed(2).padStart(6)} / ${r.p95.toFixed(1).padStart(6)} / ${r.p95Modeled.toFixed(1).padStart(6)}      ${PAPER[key].held.padStart(8)} / ${PAPER[key].cold} / ${PAPER[key].p95}`);
}
const pred4 = results.predicted[at4]!;
const paper4 = results["predicted-paper"][at4]!;
const ka4 = results["keep-alive"][at4]!.coldPct;
const heldRatio = paper4.warmHeldAvg > 0 ? pred4.warmHeldAvg / paper4.warmHeldAvg : 0;
if (SRC.kind === "synthetic") {
  console.log(`target: predicted cold rate <= 0.3 % at 4 units: ${pred4.coldPct.toFixed(2)} % (paper's policy ${paper4.coldPct.toFixed(2)} %) -> ${pred4.coldPct <= 0.3 ? "met" : "NOT met"}`);
  console.log(`target: holding <= 2x the paper policy's instances: ${heldRatio.toFixed(2)}x -> ${heldRatio <= 2 ? "met" : "NOT met"}`);
  console.log(`target: keep-alive cold rate near 12.4 % at 4 units: ${ka4.toFixed(2)} %`);
} else {
  console.log(`at 4 units: predicted ${pred4.coldPct.toFixed(2)} % cold holding ${pred4.warmHeldAvg.toFixed(0)}, the paper's rules ${paper4.coldPct.toFixed(2)} % holding ${paper4.warmHeldAvg.toFixed(0)} (the targets are set on the synthetic trace)`);
}
const allRuns = [...POLICIES.flatMap((k) => results[k]), ...BYTE_POLICIES.flatMap((k) => byteResults[k])];
const errors = allRuns.reduce((a, r) => a + r.errors + r.mismatches, 0);
const restoreFailures = allRuns.reduce((a, r) => a + (r.reused ? 0 : r.restoreFailures), 0);
console.log(`calls failed or keep-alive/instance mismatches: ${errors}; replay wall time ${elapsedS.toFixed(1)} s`);
if (restoreFailures) console.log(`restores the engine refused (out of memory or guard-page slots; ${GUARD_SLOTS} free at start): ${restoreFailures}, per run in restore_failures`);
console.log(`figure: ${SVG_PATH}`);

const series = (rs: RunResult[]) => ({
  cold_pct: rs.map((r) => r2(r.coldPct)),
  cold_starts: rs.map((r) => r.cold),
  p50_ms: rs.map((r) => r2(r.p50)),
  p95_ms: rs.map((r) => r2(r.p95)),
  p99_ms: rs.map((r) => r2(r.p99)),
  p95_modeled_ms: rs.map((r) => r2(r.p95Modeled)),
  restore_p50_us: rs.map((r) => Math.round(r.restoreP50Ms * 1000)),
  warm_held_avg: rs.map((r) => Math.round(r.warmHeldAvg)),
  warm_held_max: rs.map((r) => r.warmHeldMax),
  prewarms: rs.map((r) => r.prewarms),
  cold_overflow: rs.map((r) => r.overflow),
  budget_bound: rs.map((r) => r.bound),
  reused: rs.map((r) => r.reused),
  restore_failures: rs.map((r) => r.restoreFailures),
});
const figures = {
  source: SRC.kind,
  budgets_units: BUDGETS,
  unit_bytes: UNIT_BYTES,
  container_bytes: CONTAINER_BYTES,
  container_cold_ms_modeled: CONTAINER_COLD_MS,
  m_inst_bytes: Object.fromEntries(KINDS.map((k, j) => [k, memory[j]])),
  policies: Object.fromEntries(POLICIES.map((key) => [key, series(results[key])])),
  byte_budgets: {
    one_each_bytes: ONE_EACH_BYTES,
    fractions: BYTE_FRACTIONS,
    bytes: BYTE_BUDGETS,
    policies: Object.fromEntries(BYTE_POLICIES.map((key) => [key, series(byteResults[key])])),
  },
  paper_at_4: PAPER,
  targets: {
    predicted_cold_le_0_3_at_4: pred4.coldPct <= 0.3,
    predicted_cold_pct_at_4: r2(pred4.coldPct),
    predicted_paper_cold_pct_at_4: r2(paper4.coldPct),
    held_ratio_vs_paper_at_4: r2(heldRatio),
    held_le_2x_paper: heldRatio <= 2,
    keep_alive_at_4: r2(ka4),
  },
  calls: calls.length,
  calls_measured: measuredFrom,
  warmup_ms: WARMUP_MS,
  tick_ms: TICK_MS,
  functions: FUNCTIONS,
  seed: TRACE.seed,
  trace: SRC.kind === "synthetic" ? TRACE : { day: intArg("day", 1), minutes: SRC.durationMs / 60_000, candidates: SRC.azure!.candidates, with_durations: SRC.azure!.withDurations },
  errors,
  restore_failures: restoreFailures,
  guard_slots_free_at_start: GUARD_SLOTS,
  dry: DRY,
  svg: SVG_PATH,
  wall_s: r2(elapsedS),
};
console.log(JSON.stringify(figures));
