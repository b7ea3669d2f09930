// `thaw serve` as a separate process for the HTTP benchmarks (invoke, jobs).
// Each server gets its own data directory but shares the compiled artifacts
// of the test suite (test-output/data/artifacts), so it starts in seconds
// when they are cached. Servers log at warn so per-call log lines do not
// cost throughput.

import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

export const ROOT = join(import.meta.dir, "../..");
const ARTIFACTS = join(process.env.THAW_DATA_DIR ?? join(ROOT, "test-output", "data"), "artifacts");

export function freePort(): number {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = s.port!;
  s.stop(true);
  return port;
}

/**
 * Start a server with its data in `dataDir` (created here); its process is
 * added to `procs` at once, for the caller's cleanup. test/server.ts
 * waits for the "listening" log line, which is info level and so never
 * written at warn; readiness comes from /readyz here.
 */
export async function startThaw(dataDir: string, procs: Subprocess[], opts: { args?: string[]; env?: Record<string, string> } = {}): Promise<string> {
  mkdirSync(dataDir);
  mkdirSync(ARTIFACTS, { recursive: true });
  symlinkSync(ARTIFACTS, join(dataDir, "artifacts"));
  const port = freePort();
  const proc: Subprocess = Bun.spawn(
    [process.execPath, join(ROOT, "src/cli.ts"), "serve", "--port", String(port), "--data", dataDir, ...(opts.args ?? [])],
    { stdin: "ignore", stdout: "ignore", stderr: "pipe", env: { ...process.env, THAW_LOG_LEVEL: "warn", ...opts.env } },
  );
  procs.push(proc);
  const stderr = new Response(proc.stderr as ReadableStream).text();
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`thaw serve exited with ${proc.exitCode}: ${await stderr}`);
    if (Date.now() > deadline) throw new Error("thaw serve did not become ready in time");
    const ok = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ok) return url;
    await Bun.sleep(100);
  }
}

/** The p-th percentile of xs (nearest rank), NaN for none. */
export const percentile = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

/**
 * The processes and scratch directory of one benchmark run, and their
 * cleanup: SIGTERM, then SIGKILL if a server is still there after a few
 * seconds (thaw serve logs "stopped" at once but can stay up until its
 * --shutdown-timeout). Ctrl-C kills them at once.
 */
export function benchScope(name: string) {
  const procs: Subprocess[] = [];
  const tmp = mkdtempSync(join(tmpdir(), `thaw-bench-${name}-`));
  process.on("SIGINT", () => {
    for (const p of procs) p.kill("SIGKILL");
    rmSync(tmp, { recursive: true, force: true });
    process.exit(130);
  });
  async function cleanup() {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
    await Promise.all(
      procs.map((p) => {
        const t = setTimeout(() => p.kill("SIGKILL"), 3000);
        return p.exited.finally(() => clearTimeout(t));
      }),
    );
    rmSync(tmp, { recursive: true, force: true });
  }
  return { procs, tmp, cleanup };
}
