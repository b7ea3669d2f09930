// The end of a campaign as the project's benchmarks end: a table to read,
// then one line of JSON with every figure, for scripts to pick up.

import { describe } from "./outcome.ts";
import type { ModuleRecord, Summary } from "./campaign.ts";

/** A campaign fails on anything that is thaw's fault; refusals are reported, not failed. */
export const failed = (s: Summary) => s.mismatches + s.crashes + s.hangs > 0;

export function progressLine(r: ModuleRecord): string | undefined {
  if (r.verdict === "agreed" || r.verdict === "refused") return undefined;
  const both = r.thaw && r.reference ? `thaw ${describe(r.thaw)}, reference ${describe(r.reference)}` : r.detail;
  return `fuzz: module ${r.index}: ${r.verdict}: ${both}${r.savedTo ? ` -> ${r.savedTo}` : ""}`;
}

export function printReport(s: Summary): void {
  const row = (label: string, value: number | string, note = "") =>
    console.log(`  ${label.padEnd(28)}${String(value).padStart(8)}${note ? `  ${note}` : ""}`);
  console.log(`\nthaw fuzz: seed ${s.seed}, ${s.jobs} job(s), ${s.mode} mode, ${s.elapsedS} s`);
  row("modules generated", s.generated, `${s.modulesPerMinute}/min`);
  row("generator errors", s.generatorErrors);
  row("refused by thaw", s.refused);
  for (const [reason, n] of Object.entries(s.refusedByReason)) row(`  ${reason}`, n);
  row("compiled and run", s.compiled);
  row("  clean exit", s.exits);
  for (const [trap, n] of Object.entries(s.traps)) if (n) row(`  trap ${trap}`, n);
  row("agreed with reference", s.agreed);
  row("mismatches", s.mismatches);
  row("NaN divergences (allowed)", s.nanDivergences);
  row("thaw crashes", s.crashes);
  row("  process died", s.crashesByCause.died, `confirmed by thaw run: ${s.crashesConfirmedByCli}`);
  row("  compiler failed", s.crashesByCause.compiler_failed);
  row("  thaw error", s.crashesByCause.error);
  row("hangs", s.hangs);
  const notAgreed = s.records.filter((r) => r.verdict !== "agreed" && r.verdict !== "refused");
  if (notAgreed.length) {
    console.log("\nnot agreed:");
    for (const r of notAgreed) console.log(`  ${progressLine(r)}`);
  }
  const { records, ...figures } = s;
  console.log(JSON.stringify({ ...figures, notAgreed: notAgreed.map((r) => ({ index: r.index, verdict: r.verdict, savedTo: r.savedTo })) }));
}
