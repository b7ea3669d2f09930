// A fuzzing campaign: `jobs` lanes, each taking the next module index,
// generating and wrapping it, running it through thaw and through the
// reference at the same time, and comparing. A lane owns one thaw worker
// (thaw-worker.ts), or with `isolate` runs `thaw run` per module
// (thaw-cli.ts). A mismatch NaNs may explain is run once more DeNaN'd
// (outcome.ts, equivalence 5). A module's work files live in a scratch
// directory removed afterwards; everything about a module that did not
// agree is copied to `out/<verdict>/<seed>-<index>/` first, with the
// commands that replay it.

import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deNaN, generate } from "./generate.ts";
import {
  type CrashCause, compare, describe, nanMayExplain, type Outcome, TRAP_CLASSES, type TrapClass, type Verdict,
} from "./outcome.ts";
import { referenceInChild } from "./reference.ts";
import { runThawCli, type ThawLimits } from "./thaw-cli.ts";
import { ThawWorker } from "./thaw-worker.ts";
import { wrap } from "./wrap.ts";

export interface CampaignOptions {
  seed: number;
  /** Stop after this many modules... */
  count?: number;
  /** ...or once this many minutes have passed (whichever comes first). */
  minutes?: number;
  jobs: number;
  out: string;
  /** A `thaw run` process per module instead of long-lived workers. */
  isolate: boolean;
  limits: ThawLimits;
  referenceTimeoutMs: number;
  /** The reference engine; the JSC child unless a test substitutes one. */
  reference?: (file: string) => Promise<Outcome>;
  /** Called as each module finishes (progress output). */
  onModule?: (record: ModuleRecord) => void;
}

export interface ModuleRecord {
  index: number;
  verdict: Verdict | "generator_error";
  thaw?: Outcome;
  reference?: Outcome;
  /** For a worker that died: what the real CLI did with the same module. */
  confirmation?: Outcome;
  detail?: string;
  savedTo?: string;
}

export interface Summary {
  seed: number;
  jobs: number;
  mode: "worker" | "isolate";
  elapsedS: number;
  generated: number;
  generatorErrors: number;
  refused: number;
  refusedByReason: Record<string, number>;
  compiled: number;
  agreed: number;
  exits: number;
  traps: Record<TrapClass, number>;
  mismatches: number;
  /** Mismatches that NaN nondeterminism explains (outcome.ts, equivalence 5). */
  nanDivergences: number;
  crashes: number;
  crashesByCause: Record<CrashCause, number>;
  crashesConfirmedByCli: number;
  hangs: number;
  modulesPerMinute: number;
  out: string;
  records: ModuleRecord[];
}

/** Modules that did not agree are kept; refusals only a few per reason, they repeat. */
const KEEP_REFUSED_PER_REASON = 3;

function save(dest: string, work: string, record: ModuleRecord, replay: string): void {
  mkdirSync(dest, { recursive: true });
  cpSync(work, dest, { recursive: true });
  for (const [name, o] of [["thaw", record.thaw], ["reference", record.reference], ["confirmation", record.confirmation]] as const) {
    if (!o) continue;
    writeFileSync(join(dest, `${name}.json`), `${JSON.stringify(o, null, 2)}\n`);
    if ("stdout" in o) writeFileSync(join(dest, `${name}.stdout`), Buffer.from(o.stdout, "latin1"));
  }
  writeFileSync(join(dest, "README.txt"), replay);
}

export async function runCampaign(opts: CampaignOptions): Promise<Summary> {
  const started = performance.now();
  const deadline = opts.minutes === undefined ? Infinity : started + opts.minutes * 60_000;
  const scratch = mkdtempSync(join(tmpdir(), "thaw-fuzz-"));
  const capPages = Math.floor((opts.limits.memoryMiB * 1024 * 1024) / 65536);
  const reference = opts.reference ?? ((file: string) => referenceInChild(file, opts.referenceTimeoutMs));
  const records: ModuleRecord[] = [];
  const keptRefusals = new Map<string, number>();
  let next = 0;

  const runOne = async (index: number, worker?: ThawWorker): Promise<ModuleRecord> => {
    const work = join(scratch, String(index));
    const dataDir = join(scratch, `${index}.data`);
    mkdirSync(work);
    const runBoth = (file: string, data: string) =>
      Promise.all([
        worker ? worker.run(file, data, opts.limits) : runThawCli(file, data, opts.limits),
        reference(file),
      ]);
    try {
      let fuzz: Uint8Array;
      try {
        const g = generate(opts.seed, index, work);
        writeFileSync(join(work, "input.bin"), g.input);
        wrap(g.wasm, work, capPages);
        fuzz = g.wasm;
      } catch (e) {
        // binaryen or wabt failing on their own output is not thaw's problem,
        // but it is kept and counted: it hides modules from the campaign.
        const record: ModuleRecord = { index, verdict: "generator_error", detail: String(e) };
        record.savedTo = join(opts.out, "generator_error", `${opts.seed}-${index}`);
        save(record.savedTo, work, record, `${record.detail}\n`);
        return record;
      }
      const file = join(work, "command.wasm");
      const [thaw, ref] = await runBoth(file, dataDir);
      const record: ModuleRecord = { index, verdict: compare(thaw, ref), thaw, reference: ref };
      if (record.verdict === "mismatch" && nanMayExplain(thaw, ref)) {
        const denan = join(work, "denan");
        mkdirSync(denan);
        wrap(deNaN(fuzz, denan), denan, capPages);
        const again = await runBoth(join(denan, "command.wasm"), `${dataDir}.denan`);
        rmSync(`${dataDir}.denan`, { recursive: true, force: true });
        if (compare(...again) === "agreed") record.verdict = "nan_divergence";
      }
      if (worker && thaw.kind === "crash" && thaw.cause === "died") {
        rmSync(dataDir, { recursive: true, force: true });
        record.confirmation = await runThawCli(file, dataDir, opts.limits);
      }
      let keep = record.verdict !== "agreed";
      if (thaw.kind === "refused") {
        const n = keptRefusals.get(thaw.code) ?? 0;
        keptRefusals.set(thaw.code, n + 1);
        keep = n < KEEP_REFUSED_PER_REASON;
      }
      if (keep) {
        record.savedTo = join(opts.out, record.verdict, `${opts.seed}-${index}`);
        const { timeoutMs, memoryMiB } = opts.limits;
        save(record.savedTo, work, record, [
          `seed ${opts.seed}, module ${index}: ${record.verdict}`,
          `thaw:      ${describe(thaw)}`,
          `reference: ${describe(ref)}`,
          ...(record.confirmation ? [`thaw run:  ${describe(record.confirmation)}`] : []),
          ...(record.verdict === "nan_divergence" ? ["Both engines agree on denan/command.wasm, the module DeNaN'd."] : []),
          "",
          "Files: input.bin (the bytes given to wasm-opt -ttf), fuzz.wasm/fuzz.wat (binaryen's module),",
          "command.wat/command.wasm (the WASI command both engines ran), *.json and *.stdout (outcomes).",
          "",
          "Replay (from the repository root):",
          `  bun src/cli.ts run --data /tmp/thaw-replay --timeout ${timeoutMs} --memory ${memoryMiB} ${record.savedTo}/command.wasm`,
          `  bun scripts/fuzz/reference.ts ${record.savedTo}/command.wasm`,
          `Shrink it: bun scripts/fuzz/reduce.ts ${record.savedTo}`,
          "",
        ].join("\n"));
      }
      return record;
    } finally {
      rmSync(work, { recursive: true, force: true });
      rmSync(dataDir, { recursive: true, force: true });
    }
  };

  const lane = async () => {
    const worker = opts.isolate ? undefined : new ThawWorker();
    try {
      while ((opts.count === undefined || next < opts.count) && performance.now() < deadline) {
        const record = await runOne(next++, worker);
        records.push(record);
        opts.onModule?.(record);
      }
    } finally {
      worker?.close();
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, opts.jobs) }, lane));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }

  records.sort((a, b) => a.index - b.index);
  const count = (v: ModuleRecord["verdict"]) => records.filter((r) => r.verdict === v).length;
  const refusedByReason: Record<string, number> = {};
  const traps = Object.fromEntries(TRAP_CLASSES.map((c) => [c, 0])) as Record<TrapClass, number>;
  const crashesByCause: Record<CrashCause, number> = { died: 0, compiler_failed: 0, error: 0 };
  let compiled = 0;
  let exits = 0;
  for (const r of records) {
    if (r.thaw?.kind === "crash") crashesByCause[r.thaw.cause]++;
    if (r.thaw?.kind === "refused") refusedByReason[r.thaw.code] = (refusedByReason[r.thaw.code] ?? 0) + 1;
    if (r.thaw?.kind === "trap") traps[r.thaw.trap]++;
    if (r.thaw?.kind === "exit") exits++;
    if (r.thaw?.kind === "exit" || r.thaw?.kind === "trap") compiled++;
  }
  const elapsedS = (performance.now() - started) / 1000;
  return {
    seed: opts.seed,
    jobs: opts.jobs,
    mode: opts.isolate ? "isolate" : "worker",
    elapsedS: Math.round(elapsedS * 10) / 10,
    generated: records.length,
    generatorErrors: count("generator_error"),
    refused: count("refused"),
    refusedByReason,
    compiled,
    agreed: count("agreed"),
    exits,
    traps,
    mismatches: count("mismatch"),
    nanDivergences: count("nan_divergence"),
    crashes: count("crash"),
    crashesByCause,
    crashesConfirmedByCli: records.filter((r) => r.confirmation?.kind === "crash").length,
    hangs: count("hang"),
    modulesPerMinute: Math.round((records.length / elapsedS) * 60 * 10) / 10,
    out: opts.out,
    records,
  };
}
