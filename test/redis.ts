// A real redis-server on a free loopback port for the tests that need one.
// Each test file starts from an empty server; with `persistent` it keeps an
// append-only file (fsync per write) so its data survives stop and start.

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import Redis from "ioredis";

export interface RedisServer {
  port: number;
  url: string;
  /** Stop the server (SIGTERM) and wait for it. */
  stop(): Promise<void>;
  /** Start it again on the same port. */
  start(): Promise<void>;
  /** The running server's process id (benchmarks read its CPU time). */
  readonly pid: number | undefined;
}

function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

export async function startRedis(opts: { persistent?: boolean } = {}): Promise<RedisServer> {
  const port = freePort();
  const dir = mkdtempSync(join(tmpdir(), "thaw-redis-"));
  let proc: Subprocess | undefined;
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return proc?.pid;
    },
    async start() {
      proc = Bun.spawn(
        [
          "redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir,
          ...(opts.persistent ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]),
        ],
        { stdout: "ignore", stderr: "inherit" },
      );
      const client = new Redis(port, "127.0.0.1", { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      client.on("error", () => {});
      for (let i = 0; i < 200; i++) {
        try {
          await client.connect();
          await client.ping();
          client.disconnect();
          return;
        } catch {
          client.disconnect();
          await Bun.sleep(25);
        }
      }
      throw new Error("redis-server did not start");
    },
    async stop() {
      proc?.kill("SIGTERM");
      await proc?.exited;
    },
  };
  await server.start();
  return server;
}
