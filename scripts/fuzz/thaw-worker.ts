// thaw's pipeline in a long-lived worker process: compile (src/compiler)
// then one call on the engine (src/engine), the steps of `thaw run`
// (src/cli/run.ts) without the CLI's 0.45 s start-up per module. On 2 cores
// this runs 2.1 times the modules per minute of a `thaw run` process per
// module (figures in scripts/fuzz.ts), and a crash is still
// observed rather than suffered: the worker dies, the harness sees the
// signal, records the module it was running, confirms it with the real CLI
// (thaw-cli.ts) and starts a new worker.
//
// The worker is one process per fuzzing lane; the parent talks to it over
// Bun's IPC channel, one module at a time.

import { readFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { Subprocess } from "bun";
import { compile, CompileError } from "../../src/compiler/compile.ts";
import { DEFAULT_LIMITS, Engine } from "../../src/engine/engine.ts";
import { compileErrorOutcome, type Outcome, thawTrapClass } from "./outcome.ts";
import type { ThawLimits } from "./thaw-cli.ts";

interface Task {
  id: number;
  file: string;
  dataDir: string;
  timeoutMs: number;
  memoryMiB: number;
}

async function runTask(engine: Engine, task: Task): Promise<Outcome> {
  let artifact;
  try {
    artifact = await compile(readFileSync(task.file), { dataDir: task.dataDir, engine });
  } catch (e) {
    if (e instanceof CompileError) return compileErrorOutcome(e.code, e.message);
    throw e;
  }
  const limits = { ...DEFAULT_LIMITS, timeoutMs: task.timeoutMs, memoryMiB: task.memoryMiB };
  const mod = engine.load(artifact.soPath, artifact.snapshotPath, limits);
  const instance = mod.restore();
  const result = await engine.call(instance, { argv0: basename(task.file) });
  instance.free();
  mod.release();
  const stdout = Buffer.from(result.stdout).toString("latin1");
  if (result.status !== "ok") return { kind: "trap", trap: thawTrapClass(result.status), detail: result.status, stdout };
  return { kind: "exit", code: result.exitCode & 0xff, stdout };
}

if (import.meta.main) {
  const engine = new Engine(undefined, 1, 16);
  process.on("message", (task: Task) => {
    runTask(engine, task).then(
      (outcome) => process.send!({ id: task.id, outcome }),
      // An exception is thaw failing on a module it accepted, like a crash.
      (e: Error) => process.send!({ id: task.id, outcome: { kind: "crash", cause: "error", detail: `thaw threw: ${e.stack}`, stdout: "" } }),
    );
  });
}

const STDERR_TAIL = 4096;

/** The parent's side: one worker, restarted after it dies or hangs. */
export class ThawWorker {
  private proc?: Subprocess<"ignore", "ignore", "pipe">;
  private pending?: { id: number; resolve: (o: Outcome) => void };
  private nextId = 1;
  private stderrTail = "";

  private start(): Subprocess<"ignore", "ignore", "pipe"> {
    const proc = Bun.spawn([process.execPath, join(import.meta.dir, "thaw-worker.ts")], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
      ipc: (message: { id: number; outcome: Outcome }) => {
        if (this.pending?.id !== message.id) return;
        const { resolve } = this.pending;
        this.pending = undefined;
        resolve(message.outcome);
      },
    });
    this.stderrTail = "";
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of proc.stderr) this.stderrTail = (this.stderrTail + decoder.decode(chunk)).slice(-STDERR_TAIL);
    })();
    void proc.exited.then(() => {
      if (this.proc === proc) this.proc = undefined;
      const pending = this.pending;
      if (!pending) return;
      this.pending = undefined;
      const how = proc.signalCode ? `died by ${proc.signalCode}` : `exited with ${proc.exitCode}`;
      pending.resolve({ kind: "crash", cause: "died", detail: `thaw worker ${how}: ${this.stderrTail}`, stdout: "" });
    });
    return proc;
  }

  run(file: string, dataDir: string, limits: ThawLimits): Promise<Outcome> {
    const proc = (this.proc ??= this.start());
    const id = this.nextId++;
    return new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => {
        if (this.pending?.id !== id) return;
        this.pending = undefined;
        this.proc = undefined;
        proc.kill("SIGKILL");
        resolve({ kind: "hang", detail: `thaw worker gave no answer in ${limits.harnessTimeoutMs} ms` });
      }, limits.harnessTimeoutMs);
      this.pending = {
        id,
        resolve: (o) => {
          clearTimeout(timer);
          resolve(o);
        },
      };
      proc.send({ id, file, dataDir, timeoutMs: limits.timeoutMs, memoryMiB: limits.memoryMiB } satisfies Task);
    });
  }

  close(): void {
    this.proc?.kill();
    this.proc = undefined;
  }
}
