// Shrinks a failing module the fuzzer saved, with binaryen's wasm-reduce:
//
//   bun scripts/fuzz/reduce.ts test-output/fuzz/mismatch/7-42
//     -> DIR/reduced.wasm (binaryen's module, smaller), reduced.wat, and
//        reduced-command.wat (what thaw and the reference ran)
//
// wasm-reduce keeps a smaller module when a command prints the same as it
// did for the original; the command is this file with --check, which wraps
// the candidate like the fuzzer does, runs it through `thaw run` and the
// reference, and prints the failure's signature: the verdict and thaw's
// outcome class (and the reference's, for a mismatch), without stdout
// (which shrinks with the module) and with numbers in messages blanked
// (names of segments and functions change).

import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { compare, type Outcome } from "./outcome.ts";
import { referenceInChild } from "./reference.ts";
import { runThawCli } from "./thaw-cli.ts";
import { wrap } from "./wrap.ts";

const LIMITS = { timeoutMs: 1000, memoryMiB: 16, harnessTimeoutMs: 120_000 };
const CAP_PAGES = (LIMITS.memoryMiB * 1024 * 1024) / 65536;

function signature(o: Outcome): string {
  switch (o.kind) {
    case "exit":
      return `exit ${o.code}`;
    case "trap":
      return `trap ${o.trap}`;
    case "refused":
      return `refused ${o.code}`;
    case "crash":
      return `crash ${o.cause} ${o.detail.replace(/\d+/g, "N").slice(0, 120)}`;
    case "hang":
      return "hang";
  }
}

async function check(file: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "thaw-reduce-"));
  try {
    let command: string;
    try {
      wrap(readFileSync(file), dir, CAP_PAGES);
      command = join(dir, "command.wasm");
    } catch {
      console.log("not wrappable");
      return;
    }
    const [thaw, ref] = await Promise.all([
      runThawCli(command, join(dir, "data"), LIMITS),
      referenceInChild(command, 10_000),
    ]);
    // What the reference did matters to a mismatch only.
    const verdict = compare(thaw, ref);
    console.log(`${verdict}: thaw ${signature(thaw)}${verdict === "mismatch" ? ` / reference ${signature(ref)}` : ""}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function reduce(dir: string): void {
  const work = mkdtempSync(join(tmpdir(), "thaw-reduce-"));
  try {
    const r = spawnSync(
      "wasm-reduce",
      [join(dir, "fuzz.wasm"), `--command=${process.execPath} ${import.meta.path} --check ${join(work, "t.wasm")}`,
        "-t", join(work, "t.wasm"), "-w", join(work, "w.wasm"), "--timeout", "120",
        // Where wasm-reduce finds wasm-opt, which it runs for every attempt.
        "--binaries", `${dirname(Bun.which("wasm-opt") ?? "/usr/bin/wasm-opt")}/`],
      { stdio: ["ignore", "inherit", "inherit"] },
    );
    if (r.status !== 0) throw new Error(`wasm-reduce failed (${r.status ?? r.signal})`);
    copyFileSync(join(work, "w.wasm"), join(dir, "reduced.wasm"));
    spawnSync("wasm2wat", [join(dir, "reduced.wasm"), "-o", join(dir, "reduced.wat")]);
    wrap(readFileSync(join(dir, "reduced.wasm")), work, CAP_PAGES);
    copyFileSync(join(work, "command.wat"), join(dir, "reduced-command.wat"));
    console.log(`reduced: ${join(dir, "reduced.wasm")}, ${join(dir, "reduced-command.wat")}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const [first, second] = process.argv.slice(2);
if (first === "--check" && second) await check(second);
else if (first) reduce(first);
else throw new Error("usage: bun scripts/fuzz/reduce.ts SAVED_DIR");
