// `bun run fuzz [--minutes N | --count N] [--seed S] [--out DIR] [--jobs J]
//               [--isolate] [--timeout MS] [--memory MIB]`
//
// Differential fuzzing of thaw against Bun's own WebAssembly (JSC): random
// modules from binaryen (scripts/fuzz/generate.ts), wrapped into WASI
// commands that call every export and print every value (wrap.ts), run
// through thaw's compiler and engine (thaw-worker.ts, or the `thaw run`
// CLI per module with --isolate: thaw-cli.ts) and through JSC
// (reference.ts), compared under the equivalences listed in outcome.ts.
// Failing modules are saved under --out with both outputs and the commands
// that replay them; scripts/fuzz/reduce.ts shrinks one. Prints a table and
// one line of JSON with every figure; exits 1 if thaw crashed, hung or
// disagreed with the reference (a NaN divergence, outcome.ts, does not).
//
// Modules per minute on 2 cores (seed 7, the same 120 modules each time,
// run back to back on a machine other builds were loading): workers 124
// and 65, a `thaw run` process per module (--isolate) 58 and 32, so workers
// are the default at 2.1 times the rate; the CLI's start-up (0.45 s per
// module) is the difference. A third job did not help (89 and 69).

import { join } from "node:path";
import { parseArgs } from "node:util";
import { runCampaign } from "./fuzz/campaign.ts";
import { failed, printReport, progressLine } from "./fuzz/report.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string" },
    count: { type: "string" },
    seed: { type: "string" },
    out: { type: "string" },
    jobs: { type: "string" },
    isolate: { type: "boolean" },
    timeout: { type: "string" },
    memory: { type: "string" },
  },
});
const num = (v: string | undefined, fallback: number) => {
  const n = v === undefined ? fallback : Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`not a number: ${v}`);
  return n;
};

const count = values.count === undefined ? undefined : num(values.count, 0);
// Without either bound, a five-minute campaign.
const minutes = values.minutes !== undefined ? num(values.minutes, 5) : count === undefined ? 5 : undefined;
const summary = await runCampaign({
  seed: num(values.seed, Date.now() % 1_000_000),
  count,
  minutes,
  jobs: num(values.jobs, navigator.hardwareConcurrency),
  out: values.out ?? join(import.meta.dir, "..", "test-output", "fuzz"),
  isolate: values.isolate ?? false,
  limits: {
    timeoutMs: num(values.timeout, 1000),
    memoryMiB: num(values.memory, 16),
    // Compiling the largest generated modules takes a few seconds.
    harnessTimeoutMs: 120_000,
  },
  referenceTimeoutMs: 10_000,
  onModule: (r) => {
    const line = progressLine(r);
    if (line) console.error(line);
  },
});
printReport(summary);
process.exitCode = failed(summary) ? 1 : 0;
