// Compiling inside the server would block its event loop while a function's
// initializer runs (the snapshot is made synchronously) and would let a
// misbehaving toolchain take the server down. The server instead runs
// `thaw compile --json` as a child process; the artifact it leaves in the
// shared data directory is then loaded like any other.
//
// The child runs boxed too (sandbox.ts): no network (it runs the module's
// start code), killed with the server (pdeathsig), no core dump, a cleared
// environment but for what finding the tools needs (the server's tokens and
// Redis URL stay out of a process that runs tenant code), and a wall-clock
// timeout after which it is killed: `compile_timeout`. The child gets the
// same timeout for its tools, so a slow C compiler is usually reported by
// the child itself, naming the tool; the outer timeout catches the rest
// (a start function that never returns, a hung child).
//
// The tier, how many C compilers the child may run at once, and where it
// reports progress reach it in its environment (THAW_COMPILE_*, read by
// compile.ts), so `thaw compile` needs no flags for them. The child reports
// each stage of the build (validating, translating, ...) by rewriting a
// small file beside its build directory, which the server reads every
// 100 ms while the child runs: the function record's `build` field shows
// it. A file, not the child's stdout, because the sandbox hands back a
// command's output only when it has ended.
//
// The server names the child's build directory and removes it afterwards
// whatever happened, since a killed child cleans nothing up. What the child
// printed when it died without answering (Bun's crash banner: paths, kernel,
// CPU) goes to the server's log only; the deploy error says what happened
// in words that give nothing of the machine away.

import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log.ts";
import { newBuildDir, removeBuildDir } from "./builds.ts";
import {
  type Artifact, type ArtifactMeta, artifactPaths, COMPILE_ENV, CompileError, type CompileErrorCode, type Stage, STAGES, type Tier,
} from "./compile.ts";
import { runBoxed } from "./sandbox.ts";
import { ToolchainError } from "./toolchain.ts";

/** The executor's workers run guest code at nice 19 (native/src/executor.c), below the
 * event loop; a compile is background work of the same kind and shares the cores with them. */
const COMPILE_NICE = 19;

/** argv that starts this same thaw: the compiled binary, or bun + cli.ts. */
export function thawCommand(): string[] {
  const compiled = import.meta.path.startsWith("/$bunfs/") || import.meta.path.startsWith("B:/~BUN/");
  return compiled ? [process.execPath] : [process.execPath, join(import.meta.dir, "..", "cli.ts")];
}

/** What the child needs of the server's environment: where the tools are, which C
 * compilers, and what changes the flags (flags.ts), so both compute the same artifact keys. */
function childEnv(): Record<string, string | undefined> {
  const { PATH, HOME, TMPDIR, CC, THAW_FAST_CC, THAW_BOUNDS_CHECKS } = process.env;
  return { PATH, HOME, TMPDIR, CC, THAW_FAST_CC, THAW_BOUNDS_CHECKS };
}

interface ChildAnswer {
  error?: { code: CompileErrorCode; message: string } & CompileError["details"];
  key?: string;
}

export async function compileInSubprocess(
  modulePath: string,
  dataDir: string,
  opts: { timeoutMs: number; log: Logger; tier: Tier; jobs: number; onStage?: (stage: Stage) => void },
): Promise<Artifact> {
  const buildDir = newBuildDir(dataDir);
  const progressFile = `${buildDir}.progress`;
  const argv = [
    ...thawCommand(), "compile", "--json", "--data", dataDir,
    "--timeout", String(opts.timeoutMs), "--build-dir", buildDir, modulePath,
  ];
  const env = {
    ...childEnv(),
    [COMPILE_ENV.tier]: opts.tier,
    [COMPILE_ENV.jobs]: String(opts.jobs),
    [COMPILE_ENV.progress]: progressFile,
  };
  let last = "";
  const watch = setInterval(() => {
    let stage = "";
    try {
      stage = readFileSync(progressFile, "utf8").trim();
    } catch {
      return;
    }
    if (stage !== last && (STAGES as readonly string[]).includes(stage)) opts.onStage?.(stage as Stage);
    last = stage;
  }, 100);
  try {
    const r = await runBoxed(argv, {
      env,
      timeoutMs: opts.timeoutMs,
      pidNamespace: false,
      keepBytes: 1 << 20,
      nice: COMPILE_NICE,
    }).catch((e: Error) => {
      throw e instanceof ToolchainError ? new CompileError("toolchain_missing", e.message) : e;
    });
    if (r.timedOut)
      throw new CompileError("compile_timeout", `compiling took longer than the ${opts.timeoutMs / 1000} s compile timeout`);
    let answer: ChildAnswer | undefined;
    if (!r.signal) {
      try {
        answer = JSON.parse(r.stdout.trim().split("\n").pop() ?? "");
      } catch {
        // No answer: explained below from how the child ended.
      }
    }
    if (!answer?.error && !answer?.key) {
      opts.log.warn("compile child failed", { signal: r.signal, exitCode: r.exitCode, stderr: r.stderr.slice(-4000) });
      throw new CompileError(
        "compiler_failed",
        r.signal ? `the compiler process was killed (${r.signal})` : `the compiler process failed (exit status ${r.exitCode})`,
      );
    }
    if (answer.error) {
      const { code, message, ...details } = answer.error;
      throw new CompileError(code, message, details);
    }
    const paths = artifactPaths(dataDir, answer.key!);
    const meta = JSON.parse(readFileSync(paths.metaPath, "utf8")) as ArtifactMeta;
    return { ...paths, meta, cached: false };
  } finally {
    clearInterval(watch);
    rmSync(progressFile, { force: true });
    removeBuildDir(buildDir);
  }
}
