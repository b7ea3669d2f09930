// Benchmark `deploy`: how long a new function takes to become callable, and
// to reach its optimized code, for three real-world modules it builds itself:
//
//   c      small C program (stdin -> stdout: uppercase, count words)
//   rust   Rust 1.63 std program (HashMap, sorting, formatting), Debian's
//          rustc + libstd-rust-dev-wasm32, `-O`
//   cpp    C++ with libc++ (iostream, map, sort, stringstream), Debian's
//          clang++ + libc++-dev-wasm32 libc++abi-14-dev-wasm32, -fno-exceptions
//
// Per module, on a fresh `thaw serve` with an empty data directory (nothing
// cached): `callable` is from the start of `PUT ?wait=true` to the first
// call that answers correctly (the fast tier); `optimized` is from the same
// start to GET showing `tier: optimized` (the background -O3 build swapped
// in). The peers, measured in the same run: `thaw compile` of each tier
// alone (a fresh data directory each, the same child the server runs), and
// one call's time inside thaw on each tier (x-thaw-duration-ms, 200 KB of
// words), which is what the fast tier costs while it serves.
//
// Targets (issue 12): callable in <= 1 s (c), 2 s (rust), 4 s (cpp).
// Prints a table and a final JSON line.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freePort, ROOT } from "./thaw-process.ts";

const SOURCES = {
  c: `#include <ctype.h>
#include <stdio.h>
int main(void) {
  int c, inword = 0;
  unsigned long bytes = 0, words = 0;
  while ((c = getchar()) != EOF) {
    bytes++;
    if (isspace(c)) inword = 0;
    else if (!inword) { inword = 1; words++; }
    putchar(toupper(c));
  }
  printf("\\n%lu bytes, %lu words\\n", bytes, words);
  return 0;
}
`,
  rust: `use std::collections::HashMap;
use std::io::{self, Read, Write};
fn main() {
    let mut input = String::new();
    io::stdin().read_to_string(&mut input).unwrap();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for w in input.split_whitespace() {
        *counts.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let out = io::stdout();
    let mut out = out.lock();
    for (w, n) in v.iter().take(3) {
        writeln!(out, "{:>6} {}", n, w).unwrap();
    }
    let avg = v.iter().map(|(w, _)| w.len()).sum::<usize>() as f64 / v.len().max(1) as f64;
    writeln!(out, "{} distinct words, {:.2} avg length", v.len(), avg).unwrap();
}
`,
  cpp: `#include <algorithm>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>
int main() {
  std::map<std::string, int> counts;
  std::string word;
  while (std::cin >> word) ++counts[word];
  std::vector<std::pair<std::string, int>> v(counts.begin(), counts.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::ostringstream out;
  for (size_t i = 0; i < v.size() && i < 3; ++i) out << v[i].second << " " << v[i].first << "\\n";
  std::cout << out.str() << v.size() << " distinct words" << std::endl;
  return 0;
}
`,
} as const;

type Module = keyof typeof SOURCES;
const TARGET_MS: Record<Module, number> = { c: 1000, rust: 2000, cpp: 4000 };
/** What a correct answer to "the cat the dog" contains, per module. */
const EXPECT: Record<Module, string> = { c: "THE CAT THE DOG", rust: "2 the", cpp: "2 the" };

const tmp = mkdtempSync(join(tmpdir(), "thaw-bench-deploy-"));
const procs: Subprocess[] = [];

/** The command that builds module `m` from src into out, and the Debian packages it needs. */
function buildCommand(m: Module, src: string, out: string): { cmd: string[]; packages: string } {
  const sysroot = ["--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-Wl,--strip-debug", "-o", out, src];
  if (m === "c") return { cmd: ["clang", ...sysroot], packages: "clang lld wasi-libc" };
  if (m === "cpp") return { cmd: ["clang++", "-fno-exceptions", ...sysroot], packages: "clang lld libc++-dev-wasm32 libc++abi-14-dev-wasm32" };
  // Debian's rustc, not a rustup one that may lack the wasm32-wasi target.
  const rustc = Bun.which("rustc", { PATH: "/usr/bin" }) ?? "rustc";
  return { cmd: [rustc, "--target", "wasm32-wasi", "-O", "-C", "strip=debuginfo", "-o", out, src], packages: "rustc libstd-rust-dev-wasm32" };
}

function build(m: Module): string | undefined {
  const ext = { c: "c", rust: "rs", cpp: "cpp" }[m];
  const src = join(tmp, `${m}.${ext}`);
  const out = join(tmp, `${m}.wasm`);
  writeFileSync(src, SOURCES[m]);
  const { cmd, packages } = buildCommand(m, src, out);
  const r = Bun.spawnSync(cmd, { stderr: "pipe" });
  if (r.exitCode === 0) return out;
  console.error(`deploy bench: cannot build the ${m} module (apt-get install ${packages}): ${r.stderr.toString().split("\n")[0]}`);
  return undefined;
}

function words(bytes: number): string {
  const vocabulary = "the cat dog sat on a mat with some words and more of them".split(" ");
  const parts: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const w = vocabulary[(i * 7 + (i >> 3)) % vocabulary.length]!;
    parts.push(w);
    n += w.length + 1;
  }
  return parts.join(" ");
}

async function startServer(dataDir: string): Promise<{ url: string; proc: Subprocess }> {
  const port = freePort();
  const proc = Bun.spawn([process.execPath, join(ROOT, "src/cli.ts"), "serve", "--port", String(port), "--data", dataDir], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "ignore",
    env: { ...process.env, THAW_LOG_LEVEL: "warn" },
  });
  procs.push(proc);
  const url = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await Bun.sleep(50))
    if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) return { url, proc };
  throw new Error("thaw serve did not become ready");
}

async function callMs(url: string, body: string): Promise<number> {
  const r = await fetch(`${url}/v1/functions/bench/invoke`, { method: "POST", body });
  await r.arrayBuffer();
  return Number(r.headers.get("x-thaw-duration-ms"));
}

interface Row {
  module: Module;
  wasmBytes: number;
  callableMs: number;
  optimizedMs: number;
  compileFastMs: number;
  compileOptimizedMs: number;
  units: number;
  callFastMs: number;
  callOptimizedMs: number;
  targetMs: number;
}

/** `thaw compile` of one tier into a fresh data directory: wall time and C units. */
function compileAlone(wasm: string, tier: "fast" | "optimized"): { ms: number; units: number } {
  const data = join(tmp, `compile-${tier}-${Math.random().toString(36).slice(2)}`);
  const started = performance.now();
  const r = Bun.spawnSync([process.execPath, join(ROOT, "src/cli.ts"), "compile", "--json", "--data", data, wasm], {
    env: { ...process.env, THAW_COMPILE_TIER: tier, THAW_COMPILE_JOBS: String(navigator.hardwareConcurrency) },
  });
  const ms = performance.now() - started;
  if (r.exitCode !== 0) throw new Error(`thaw compile --tier ${tier} failed: ${r.stdout}${r.stderr}`);
  const meta = JSON.parse(r.stdout.toString().trim().split("\n").pop()!);
  rmSync(data, { recursive: true, force: true });
  return { ms, units: meta.units ?? 1 };
}

async function measure(m: Module, wasm: string): Promise<Row> {
  const dataDir = join(tmp, `data-${m}`);
  mkdirSync(dataDir);
  const { url, proc } = await startServer(dataDir);
  const bytes = readFileSync(wasm);
  const input = words(200_000);
  const started = performance.now();
  const put = await fetch(`${url}/v1/functions/bench?wait=true`, {
    method: "PUT",
    headers: { "content-type": "application/wasm" },
    body: bytes,
  });
  if (put.status !== 201) throw new Error(`deploy of ${m} answered ${put.status}: ${await put.text()}`);
  for (;;) {
    const r = await fetch(`${url}/v1/functions/bench/invoke`, { method: "POST", body: "the cat the dog" });
    if (r.status === 200 && (await r.text()).includes(EXPECT[m])) break;
    await Bun.sleep(5);
  }
  const callableMs = performance.now() - started;
  const callFastMs = await callMs(url, input);
  let optimizedMs = Number.NaN;
  for (const deadline = Date.now() + 300_000; Date.now() < deadline; await Bun.sleep(50)) {
    const view = (await (await fetch(`${url}/v1/functions/bench`)).json()) as { tier: string };
    if (view.tier === "optimized") {
      optimizedMs = performance.now() - started;
      break;
    }
  }
  await callMs(url, input);
  const callOptimizedMs = await callMs(url, input);
  proc.kill("SIGTERM");
  await proc.exited;
  const fast = compileAlone(wasm, "fast");
  const optimized = compileAlone(wasm, "optimized");
  return {
    module: m,
    wasmBytes: bytes.length,
    callableMs,
    optimizedMs,
    compileFastMs: fast.ms,
    compileOptimizedMs: optimized.ms,
    units: fast.units,
    callFastMs,
    callOptimizedMs,
    targetMs: TARGET_MS[m],
  };
}

const rows: Row[] = [];
try {
  for (const m of Object.keys(SOURCES) as Module[]) {
    const wasm = build(m);
    if (wasm) rows.push(await measure(m, wasm));
  }
} finally {
  for (const p of procs) p.kill("SIGKILL");
  rmSync(tmp, { recursive: true, force: true });
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const kb = (b: number) => `${Math.round(b / 1024)} KB`;
console.log(
  `\ndeploy to callable, fresh data directory, ${navigator.hardwareConcurrency} cores (thaw compile = the compile child alone; call = 200 KB of words inside thaw)\n`,
);
console.log("| module | wasm | callable (fast tier) | target | optimized swapped in | thaw compile fast | thaw compile optimized | C units | call fast | call optimized |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows)
  console.log(
    `| ${r.module} | ${kb(r.wasmBytes)} | ${s(r.callableMs)} ${r.callableMs <= r.targetMs ? "ok" : "OVER"} | ${s(r.targetMs)} | ${s(r.optimizedMs)} | ${s(r.compileFastMs)} | ${s(r.compileOptimizedMs)} | ${r.units} | ${r.callFastMs.toFixed(1)} ms | ${r.callOptimizedMs.toFixed(1)} ms |`,
  );
const round = (r: Row) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === "number" ? Math.round(v * 10) / 10 : v]));
console.log(JSON.stringify({ bench: "deploy", cores: navigator.hardwareConcurrency, modules: rows.map(round) }));
