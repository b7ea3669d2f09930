// Starts `thaw serve` as a real process on a free loopback port for the
// HTTP tests, and collects its JSON log lines.

import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { ROOT, wasmPath } from "./helpers.ts";

export interface ServerProcess {
  url: string;
  dataDir: string;
  proc: Subprocess<"ignore", "pipe", "pipe">;
  logs: Record<string, unknown>[];
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(): Promise<number>;
}

export interface ServerOptions {
  dataDir?: string;
  args?: string[];
  env?: Record<string, string>;
  /** The thaw command; defaults to bun + src/cli.ts. */
  command?: string[];
}

export async function startServer(opts: ServerOptions = {}): Promise<ServerProcess> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "thaw-test-"));
  const command = opts.command ?? [process.execPath, join(ROOT, "src/cli.ts")];
  const proc = Bun.spawn([...command, "serve", "--port", "0", "--data", dataDir, ...(opts.args ?? [])], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, THAW_LOG_LEVEL: "info", ...opts.env },
  });
  const logs: Record<string, unknown>[] = [];
  let resolveUrl: (url: string) => void = () => {};
  const urlPromise = new Promise<string>((r) => (resolveUrl = r));
  (async () => {
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of proc.stdout) {
      buf += decoder.decode(chunk);
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const entry = JSON.parse(line);
          logs.push(entry);
          if (entry.msg === "listening") resolveUrl(entry.url);
        } catch {}
      }
    }
  })();
  const stderr = new Response(proc.stderr).text();
  const url = await Promise.race([
    urlPromise,
    proc.exited.then(async (code) => {
      throw new Error(`server exited with ${code}: ${await stderr}`);
    }),
    Bun.sleep(120_000).then(() => {
      throw new Error("server did not start in time");
    }),
  ]);
  return {
    url,
    dataDir,
    proc,
    logs,
    async stop() {
      proc.kill("SIGTERM");
      return proc.exited;
    },
  };
}

/** PUT functions/build/<module>.wasm as function `name`; the response is the caller's to check. */
export function putModule(s: ServerProcess, name: string, module: string, query = "wait=true", headers: Record<string, string> = {}) {
  return fetch(`${s.url}/v1/functions/${name}?${query}`, {
    method: "PUT",
    body: readFileSync(wasmPath(module)),
    headers: { "content-type": "application/wasm", ...headers },
  });
}
