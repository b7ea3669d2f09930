// Benchmark `density`: how many idle warm instances fit in memory.
//
// For each example function, restore a batch of instances that are never
// called (an idle warm pool) and measure what they add to the process:
// private memory (smaps Private_*), page tables and VMAs (/proc/self/maps).
// Then the headline: 20,000 idle instances of `hello` in one process,
// a sample of them called to show they work, and instances per GiB from the
// measured private bytes. Also the same after one call each, since a used
// instance keeps its written pages (copy-back reset) until the pool gives
// them back to the OS.
//
// What bounds density here is not memory: an idle instance holds its struct
// and tables (a few hundred bytes), the memory pool's metadata for its
// region (16 bytes per 1 MiB of its memory cap), and maps the shared
// snapshot image. The bound is the kernel's vm.max_map_count: each instance
// costs two VMAs (the image mapping and the split of the pool's arena), so
// one process holds about max_map_count / 2 instances. Code built without
// bounds checks (the default on x86-64, native/src/guard.c) adds a tighter
// bound: 8 GiB of address space per instance, so the headline batch is cut
// to the guard slots the process has (THAW_BOUNDS_CHECKS=explicit lifts it).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { compile } from "../../src/compiler/compile.ts";
import { DEFAULT_LIMITS, Engine, type Instance } from "../../src/engine/engine.ts";

const ROOT = join(import.meta.dir, "../..");
const DATA = process.env.THAW_DATA_DIR ?? join(ROOT, "test-output", "data");
const GIB = 1 << 30;
const BATCH = Number(process.env.BENCH_BATCH ?? 2000);
const HEADLINE = Number(process.env.BENCH_INSTANCES ?? 20_000);
const FUNCTIONS = ["hello", "json", "wordcount", "thumbnail", "primes"];

function smaps(): { priv: number; pte: number } {
  const t = readFileSync("/proc/self/smaps_rollup", "utf8");
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(t)?.[1] ?? 0);
  const pte = Number(/VmPTE:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? 0);
  return { priv: (kb("Private_Clean") + kb("Private_Dirty")) * 1024, pte: pte * 1024 };
}
const vmas = () => readFileSync("/proc/self/maps", "utf8").split("\n").length - 1;
const maxMapCount = Number(readFileSync("/proc/sys/vm/max_map_count", "utf8").trim());

const engine = new Engine();
const modules = new Map<string, ReturnType<Engine["load"]>>();
for (const name of FUNCTIONS) {
  const a = await compile(readFileSync(join(ROOT, "functions/build", `${name}.wasm`)), { dataDir: DATA, engine });
  modules.set(name, engine.load(a.soPath, a.snapshotPath, { ...DEFAULT_LIMITS, memoryMiB: 64 }));
}

function measure(n: number, make: () => Instance) {
  Bun.gc(true);
  const before = smaps();
  const maps0 = vmas();
  const live: Instance[] = [];
  for (let i = 0; i < n; i++) live.push(make());
  Bun.gc(true);
  const after = smaps();
  return {
    live,
    privPer: (after.priv - before.priv) / n,
    ptePer: (after.pte - before.pte) / n,
    vmasPer: (vmas() - maps0) / n,
  };
}

const rows: string[] = [];
// Per function: the native heap an idle instance holds (exact, from
// libthaw) and its VMAs (measured). Process-wide private memory is measured
// once, on the headline batch: per-batch deltas are lost in allocator reuse.
const perFunction: Record<string, { instance_heap_bytes: number; snapshot_bytes: number; code_bytes: number; vmas: number }> = {};
for (const [name, mod] of modules) {
  const m = measure(BATCH, () => mod.restore());
  for (const i of m.live) i.free();
  const stats = mod.stats();
  perFunction[name] = {
    instance_heap_bytes: stats.instanceBytes,
    snapshot_bytes: stats.snapshotBytes,
    code_bytes: stats.codeBytes,
    vmas: Math.round(m.vmasPer * 100) / 100,
  };
  rows.push(
    `${name.padEnd(12)} ${String(stats.instanceBytes).padStart(6)} B heap per idle instance, ${m.vmasPer.toFixed(2)} VMAs; shared: ${(stats.snapshotBytes / 1024).toFixed(0)} KiB image, ${(stats.codeBytes / 1024).toFixed(0)} KiB code`,
  );
}

const hello = modules.get("hello")!;
const guarded = hello.stats().guarded;
const guardSlots = guarded ? engine.guardSlotsFree() : Infinity;
const instances = Math.min(HEADLINE, guardSlots);
const headline = measure(instances, () => hello.restore());
const sample = headline.live.filter((_, i) => i % Math.ceil(instances / 100) === 0);
const outputs = await Promise.all(sample.map((inst) => engine.call(inst, { resetAfter: true })));
const allOk = outputs.every((r) => new TextDecoder().decode(r.stdout) === "Hello, world!\n");
for (const i of headline.live) i.free();

const used = measure(1000, () => hello.restore());
await Promise.all(used.live.map((inst) => engine.call(inst, { resetAfter: true })));
Bun.gc(true);
const usedPriv = used.live.reduce((s, i) => s + i.privateBytes(), 0) / used.live.length;
for (const i of used.live) i.releaseMemory();
const releasedPriv = used.live.reduce((s, i) => s + i.privateBytes(), 0) / used.live.length;
for (const i of used.live) i.free();
engine.close();

const perGib = Math.floor(GIB / Math.max(1, headline.privPer + headline.ptePer));
const figures = {
  instances,
  bounds_checks: guarded ? "guard pages" : "explicit",
  instances_per_process_by_address_space: guarded ? guardSlots : null,
  instances_called_ok: allOk,
  idle_private_bytes: Math.round(headline.privPer),
  idle_page_table_bytes: Math.round(headline.ptePer),
  idle_vmas_per_instance: Math.round(headline.vmasPer * 100) / 100,
  idle_instances_per_gib: perGib,
  used_linear_private_bytes: Math.round(usedPriv),
  used_instances_per_gib: Math.floor(GIB / (headline.privPer + usedPriv)),
  released_linear_private_bytes: Math.round(releasedPriv),
  vm_max_map_count: maxMapCount,
  instances_per_process_by_vmas: Math.floor(maxMapCount / Math.max(1, headline.vmasPer)),
  paper_instances_per_gib: Math.round(7000 / 16),
  per_function: perFunction,
};

console.log(rows.join("\n"));
console.log(`\n${instances.toLocaleString()} idle hello instances: ${figures.idle_private_bytes} B private + ${figures.idle_page_table_bytes} B page tables each, ${figures.idle_vmas_per_instance} VMAs each; sample of ${sample.length} called: ${allOk ? "all correct" : "WRONG OUTPUT"}`);
console.log(`idle instances per GiB (memory)     ${perGib.toLocaleString()}   (target >= 20,000; paper: ~440)`);
console.log(`after one call: +${figures.used_linear_private_bytes} B written pages kept per instance -> ${figures.used_instances_per_gib.toLocaleString()} per GiB; ${figures.released_linear_private_bytes} B after release to the OS`);
console.log(`bound: vm.max_map_count ${maxMapCount} -> about ${figures.instances_per_process_by_vmas.toLocaleString()} instances per process`);
if (guarded) console.log(`bound: guard pages (8 GiB of address space each) -> ${guardSlots.toLocaleString()} instances per process; THAW_BOUNDS_CHECKS=explicit trades ~10 % compute speed for the VMA bound`);
console.log(JSON.stringify(figures));
