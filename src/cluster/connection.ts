// The connection a node keeps to the cluster's Redis: registry, artifacts,
// membership, arrival rates and job submits share it (only the job queue's
// blocking worker has its own).
//
// Commands fail at once while Redis is unreachable -- no offline queue, no
// per-request retries, a command timeout for a Redis that hangs -- so a
// deploy answers 503 straight away instead of hanging, and the periodic
// loops simply try again on their next tick. Calls never touch this
// connection. ioredis reconnects on its own with a backoff capped at one
// second, so a node is back within about a second of Redis. Its 'error'
// events must have a listener (an unhandled one would crash the process);
// an outage is logged once when it starts and once when it ends, not per
// reconnection attempt.

import diagnostics from "node:diagnostics_channel";
import Redis from "ioredis";
import type { Logger } from "../log.ts";
import { ThawError } from "../service/errors.ts";

/**
 * Node's TracingChannel has `hasSubscribers`; Bun's (1.4) has not, and
 * ioredis takes its absence for a listener: every command then builds a
 * trace context, stringifying every argument -- a round's packed msgpack
 * too -- and wraps its promise in another. The getter as Node defines it,
 * so commands are traced only when someone subscribes. It is on the
 * prototype, so this holds for every ioredis client in the process.
 */
const tracing = Object.getPrototypeOf(diagnostics.tracingChannel("thaw:probe")) as object;
if (!("hasSubscribers" in tracing)) {
  Object.defineProperty(tracing, "hasSubscribers", {
    get(this: Record<"start" | "end" | "asyncStart" | "asyncEnd" | "error", diagnostics.Channel | undefined>) {
      return !!(this.start?.hasSubscribers || this.end?.hasSubscribers || this.asyncStart?.hasSubscribers || this.asyncEnd?.hasSubscribers || this.error?.hasSubscribers);
    },
  });
}

const COMMAND_TIMEOUT_MS = 10_000;

export function connectRedis(url: string, log: Logger): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    commandTimeout: COMMAND_TIMEOUT_MS,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
  });
  let down = false;
  redis.on("error", (e: Error) => {
    if (down) return;
    down = true;
    log.warn("redis unreachable: serving from the local registry", { error: e.message });
  });
  redis.on("ready", () => {
    if (down) log.info("redis reachable again");
    down = false;
  });
  return redis;
}

/** Resolves when the connection is ready, or false after timeoutMs. */
export function whenReady(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === "ready") return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      redis.off("ready", onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    redis.on("ready", onReady);
  });
}

/** Runs a cluster operation a client asked for; Redis failing is a 503 with a stable code. */
export async function needRedis<T>(what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (e) {
    if (e instanceof ThawError) throw e;
    throw new ThawError(
      "cluster_unavailable",
      `cannot ${what}: the cluster's Redis is unreachable (${(e as Error).message}); calls keep working, try again when it is back`,
      {},
      1,
    );
  }
}
