// Wiring a node together: engine, registry, pools, services, HTTP. Also the
// node's lifecycle: boot (reload deployed functions without recompiling),
// optional example deploys, and graceful shutdown. On shutdown the node
// first says it is draining (/readyz 503) and refuses new requests (503
// shutting_down with Retry-After) while its listener stays up, so a load
// balancer moves traffic away instead of meeting refused connections; the
// requests already accepted finish (up to --shutdown-timeout), and only
// then does the listener close.

import { randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { basename, join } from "node:path";
import { Cluster } from "../cluster/cluster.ts";
import { connectRedis } from "../cluster/connection.ts";
import { Membership, type NodeLoad } from "../cluster/membership.ts";
import type { ServerConfig } from "../config.ts";
import { Engine } from "../engine/engine.ts";
import { Logger } from "../log.ts";
import { Metrics } from "../metrics/metrics.ts";
import { PoolManager, poolKey } from "../pool/manager.ts";
import { PoolPolicy } from "../pool/policy.ts";
import { RedisRateStore } from "../rates/redis.ts";
import { Registry } from "../registry/registry.ts";
import { ThawError } from "../service/errors.ts";
import { FunctionService } from "../service/functions.ts";
import { InvokeService } from "../service/invoke.ts";
import { callbackSettings } from "../jobs/callback.ts";
import { LocalJobQueue } from "../jobs/local.ts";
import { RedisJobQueue } from "../jobs/redis.ts";
import { JobRunner } from "../jobs/runner.ts";
import { JobService } from "../jobs/service.ts";
import { createApp } from "./app.ts";
import { Auth } from "./auth.ts";
import { Cors } from "./cors.ts";
import { fastInvokeRoute } from "./fast-invoke.ts";
import { fastJobRoutes } from "./fast-jobs.ts";
import { type AppContext, authPlugin, type Readiness } from "./context.ts";
import { errorResponse, startBodyDeadline } from "./http.ts";
import { operational } from "./routes/system.ts";

export const EXAMPLES = ["hello", "json", "thumbnail", "wordcount", "primes"];
const EXAMPLE_CONTENT_TYPES: Record<string, string> = {
  json: "application/json",
  wordcount: "application/json",
  thumbnail: "image/x-portable-anymap",
};


export interface RunningServer {
  url: string;
  port: number;
  ctx: AppContext;
  shutdown(): Promise<void>;
}

export async function startServer(config: ServerConfig): Promise<RunningServer> {
  const log = new Logger();
  const engine = new Engine(undefined, config.threads, 8192, { maxBlocked: config.maxBlocked, inlineUs: config.inlineUs });
  const registry = new Registry(config.dataDir);
  const policy = new PoolPolicy({ budgetBytes: config.warmBudget, headroom: config.headroom });
  const nodeId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  // One connection for everything a node asks of Redis but the job queue's
  // blocking reads; the server opens it and closes it last.
  const redis = config.redisUrl ? connectRedis(config.redisUrl, log) : undefined;
  const rates = redis ? new RedisRateStore(redis, { nodeId }) : undefined;
  const pools = new PoolManager(
    policy,
    { maxWaiting: config.maxWaiting, retentionMs: config.retention, tickMs: 250 },
    () => engine.maintainMemory(),
    rates,
  );
  for (const [tenant, m] of Object.entries(config.tenantMemory))
    engine.setTenantMemory(pools.tenantId(tenant), m.reservedBytes, m.limitBytes);
  const metrics = new Metrics({
    pools: () => {
      const plan = pools.plan();
      return pools.all().map((e) => {
        const fp = plan.functions.get(poolKey(e.tenant, e.name));
        return {
          tenant: e.tenant,
          function: e.name,
          tier: e.pool.code?.tier ?? "optimized",
          ...e.pool.stats(),
          lambda: fp?.lambda ?? 0,
          tauSeconds: (fp?.tau ?? 0) / 1000,
          target: fp?.warm ?? 0,
          mInstBytes: fp?.mInst ?? 0,
        };
      });
    },
    engineMemoryBytes: () =>
      pools.all().reduce((sum, e) => {
        const s = e.pool.module.stats();
        return sum + s.codeBytes + s.liveInstances * s.instanceBytes;
      }, 0),
    inlineCalls: () => engine.inline,
    budget: () => pools.plan(),
    memory: () => memory(),
  });
  const membership = new Membership(nodeId, () => nodeLoad(url, pools), redis);
  const cluster = redis
    ? new Cluster(redis, membership, registry, {
        dataDir: config.dataDir,
        log,
        artifactTransferred: (direction) => metrics.clusterArtifacts.inc({ direction }),
      })
    : undefined;
  const functions = new FunctionService(registry, engine, pools, metrics, log, config, cluster);
  const invoke = new InvokeService(registry, pools, (t, n) => functions.ensureLoaded(t, n), engine, metrics, log, {
    tenantConcurrency: config.tenantConcurrency,
    queueTimeoutMs: config.queueTimeout,
    accessLog: config.accessLog,
    callLogBytes: config.callLogBytes,
  });
  const jobQueueOptions = {
    nodeId, concurrency: config.jobConcurrency, backoffMs: config.jobBackoff, retentionMs: config.jobRetention, callbacks: callbackSettings(config),
  };
  const runner = new JobRunner(invoke, metrics, log);
  const jobQueue = redis
    ? new RedisJobQueue(redis, runner, jobQueueOptions, log)
    : new LocalJobQueue(config.dataDir, runner, jobQueueOptions, log);
  const jobs = new JobService(jobQueue, registry);
  const auth = new Auth(config.tokens, config.adminToken, config.metricsToken);
  let phase: "starting" | "ready" | "draining" = "starting";
  // Calls need nothing from Redis; deploys, deletes and the job queue do.
  const readiness = (): Readiness => {
    if (phase !== "ready") return { status: phase };
    const redisCheck = !redis ? "not configured" : redis.status === "ready" ? "ok" : "unreachable";
    return { status: redisCheck === "unreachable" ? "degraded" : "ready", checks: { functions: "loaded", redis: redisCheck } };
  };
  const memory = () => ({
    pool: engine.memoryStats(),
    tenants: pools.tenants().map(([tenant, id]) => ({ tenant, ...engine.tenantMemoryStats(id) })),
  });
  const ctx: AppContext = {
    config, auth, authn: authPlugin(auth), functions, invoke, jobs, pools, metrics, log, readiness, memory,
    nodeId, nodes: membership,
  };
  if (auth.open) log.warn("no tokens configured: every request acts as tenant \"default\" (set THAW_ADMIN_TOKEN or THAW_TOKENS)");

  const cors = new Cors(config.corsOrigins);
  const fastOptions = { app: () => app, cors, draining: () => phase === "draining" };
  const fast = { ...fastInvokeRoute(ctx, fastOptions), ...fastJobRoutes(ctx, fastOptions) };
  const app = createApp(ctx, cors, fast)
    .onRequest(({ request, server }) => {
      if (phase === "draining" && !operational(new URL(request.url).pathname))
        return errorResponse(new ThawError("shutting_down", "the server is shutting down", {}, 1), { connection: "close" });
      if (server && request.method !== "GET" && request.method !== "HEAD")
        startBodyDeadline(request, server, config.bodyTimeout, config.idleTimeout);
    })
    .listen({
      hostname: config.host,
      port: config.port,
      maxRequestBodySize: Math.max(config.maxBody, config.maxModule) + (1 << 20),
      // A connection's idle timeout, lifted while a request is in progress
      // (http.ts): bodies are timed by --body-timeout, calls by their own.
      idleTimeout: config.idleTimeout,
    });
  const server = app.server!;
  const url = `http://${config.host}:${server.port}`;

  await functions.boot();
  await cluster?.start(functions);
  functions.upgradeFastTier();
  await membership.start();
  if (config.examples) await deployExamples(functions, config.examples, log);
  jobQueue.start();
  phase = "ready";
  log.info("listening", { url, nodeId, dataDir: config.dataDir, functions: registry.list().length, jobs: jobQueue.backend });

  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= (async () => {
      log.info("shutting down", { requests: server.pendingRequests, inFlight: engine.inFlight });
      phase = "draining";
      const deadline = Date.now() + config.shutdownTimeout;
      // The queue stops taking jobs before anything is refused, so no job attempt is spent on a refusal.
      const jobsClosed = jobQueue.close(deadline);
      while (server.pendingRequests > 0 && Date.now() < deadline) await Bun.sleep(10);
      // Whatever still reaches the engine (nothing should) is refused rather than started on an engine about to close.
      invoke.drain();
      functions.close();
      // Idle keep-alive connections, and requests still running at the deadline, end here.
      await server.stop(true);
      await jobsClosed;
      while (engine.inFlight > 0 && Date.now() < deadline) await Bun.sleep(10);
      pools.close();
      cluster?.close();
      await membership.close();
      redis?.disconnect();
      engine.close();
      log.info("stopped");
    })();
    return stopping;
  };
  return { url, port: server.port ?? config.port, ctx, shutdown };
}

/** The examples' .wasm paths: from `dir`, or, when it does not exist (the single binary), those built in. */
async function examplePaths(dir: string): Promise<Map<string, string>> {
  if (!existsSync(dir)) {
    const { EMBEDDED_EXAMPLES } = await import("./examples.ts");
    return new Map(Object.entries(EMBEDDED_EXAMPLES));
  }
  const files = new Set(readdirSync(dir));
  return new Map(EXAMPLES.filter((n) => files.has(`${n}.wasm`)).map((n) => [n, join(dir, `${n}.wasm`)]));
}

/** Deploys the examples, one log line as each starts compiling and one as it is ready. */
async function deployExamples(functions: FunctionService, dir: string, log: Logger): Promise<void> {
  const deploys = [...(await examplePaths(dir))].map(async ([name, path]) => {
    const contentType = EXAMPLE_CONTENT_TYPES[name];
    const started = performance.now();
    try {
      const d = await functions.deploy("default", basename(name), readFileSync(path), contentType ? { contentType } : {});
      if (d.record.status === "compiling") log.info("compiling example", { function: name });
      const done = await d.settled;
      const ms = Math.round(performance.now() - started);
      if (done.status === "ready") log.info("example ready", { function: name, tier: done.active?.tier ?? "optimized", ms });
      else log.warn("example failed", { function: name, error: done.error?.code });
      return `${name}:${done.status}`;
    } catch (e) {
      // A node may start while the cluster's Redis is down; it serves what it has.
      if (!(e instanceof ThawError && e.code === "cluster_unavailable")) throw e;
      return `${name}:not deployed (cluster unavailable)`;
    }
  });
  log.info("examples deployed", { functions: await Promise.all(deploys) });
}

function nodeLoad(url: string, pools: PoolManager): NodeLoad {
  const stats = pools.all().map((e) => e.pool.stats());
  return {
    url,
    functions: stats.length,
    warm: stats.reduce((sum, s) => sum + s.warm, 0),
    busy: stats.reduce((sum, s) => sum + s.busy, 0),
  };
}
