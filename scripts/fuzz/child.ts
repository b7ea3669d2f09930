// Runs a child process with a deadline: the harness's own timeout, above
// any limit thaw or the reference enforce themselves, so a child that stops
// answering is killed and reported as a hang instead of stalling the run.

export interface ChildResult {
  exitCode: number | null;
  signal: string | null;
  stdout: Buffer;
  stderr: string;
  timedOut: boolean;
}

export async function runChild(cmd: string[], timeoutMs: number): Promise<ChildResult> {
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  const [stdout, stderr] = await Promise.all([
    new Response(proc.stdout).arrayBuffer(),
    new Response(proc.stderr).text(),
  ]);
  await proc.exited;
  clearTimeout(timer);
  return { exitCode: proc.exitCode, signal: proc.signalCode === null ? null : String(proc.signalCode), stdout: Buffer.from(stdout), stderr, timedOut };
}
