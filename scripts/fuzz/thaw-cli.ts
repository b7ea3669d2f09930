// thaw's real command line as the system under test: one `bun src/cli.ts
// run` process per module, exactly what a user runs, read back through its
// documented interface (exit status 100 + trap number with `thaw: trap:
// KIND` on stderr, `thaw: CODE: message` for a module it will not compile).
// A process of its own per module means a host crash is observed, never
// suffered, and nothing one module did can leak into the next; it costs
// the CLI's start-up (about 0.45 s: it loads the whole gateway) per module,
// which is why campaigns use the long-lived workers of thaw-worker.ts and
// come here with `--isolate`, or to confirm a worker's crash.

import { join } from "node:path";
import { runChild } from "./child.ts";
import { compileErrorOutcome, type Outcome, thawTrapClass } from "./outcome.ts";

const CLI = join(import.meta.dir, "../../src/cli.ts");

/** `thaw: CODE: message`: a CompileError (src/cli.ts), or `engine` for an EngineError. */
const CLI_ERROR = /^thaw: ([a-z_]+): (.*)$/m;

export interface ThawLimits {
  /** thaw's own watchdog (`--timeout`). */
  timeoutMs: number;
  memoryMiB: number;
  /** The harness's deadline for compile + run; past it thaw is hung. */
  harnessTimeoutMs: number;
}

export async function runThawCli(file: string, dataDir: string, limits: ThawLimits): Promise<Outcome> {
  const r = await runChild(
    [process.execPath, CLI, "run", "--quiet", "--data", dataDir,
      "--timeout", String(limits.timeoutMs), "--memory", String(limits.memoryMiB), file],
    limits.harnessTimeoutMs,
  );
  const stdout = r.stdout.toString("latin1");
  if (r.timedOut) return { kind: "hang", detail: `thaw run gave no answer in ${limits.harnessTimeoutMs} ms` };
  if (r.signal) return { kind: "crash", cause: "died", detail: `thaw run died by ${r.signal}: ${r.stderr.slice(-2000)}`, stdout };
  const trap = /^thaw: trap: (\w+)$/m.exec(r.stderr);
  if (trap) return { kind: "trap", trap: thawTrapClass(trap[1]!), detail: trap[1]!, stdout };
  const error = CLI_ERROR.exec(r.stderr);
  if (error && error[1] !== "engine") return compileErrorOutcome(error[1]!, error[2]!);
  // Anything else thaw wrote to stderr is its own failure (an engine error,
  // an uncaught exception): the wrapped module never writes there.
  if (r.stderr.trim()) return { kind: "crash", cause: "error", detail: `thaw run failed: ${r.stderr.slice(-2000)}`, stdout };
  return { kind: "exit", code: r.exitCode ?? -1, stdout };
}
