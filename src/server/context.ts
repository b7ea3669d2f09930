// Everything a route needs, built once per server (server.ts).

import { Elysia } from "elysia";
import type { Membership } from "../cluster/membership.ts";
import type { ServerConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import type { JobService } from "../jobs/service.ts";
import type { Metrics, PoolGaugeSource } from "../metrics/metrics.ts";
import type { PoolManager } from "../pool/manager.ts";
import type { FunctionService } from "../service/functions.ts";
import type { InvokeService } from "../service/invoke.ts";
import type { Auth } from "./auth.ts";

export const authPlugin = (auth: Auth) =>
  new Elysia({ name: "auth" }).resolve({ as: "scoped" }, ({ request }) => ({
    principal: auth.authenticate(request.headers),
  }));

/**
 * Whether the node takes traffic (/readyz). `degraded`: calls work, but
 * deploys and async jobs do not while the cluster's Redis is unreachable.
 */
export type Readiness =
  | { status: "starting" | "draining" }
  | { status: "ready" | "degraded"; checks: { functions: "loaded"; redis: "ok" | "unreachable" | "not configured" } };

export interface AppContext {
  config: ServerConfig;
  auth: Auth;
  authn: ReturnType<typeof authPlugin>;
  functions: FunctionService;
  invoke: InvokeService;
  jobs: JobService;
  pools: PoolManager;
  metrics: Metrics;
  log: Logger;
  readiness(): Readiness;
  /** This node's id in the cluster (also without one): rate store, membership, jobs. */
  nodeId: string;
  /** The live nodes of the cluster (this one alone without Redis). */
  nodes: Membership;
  /** The linear-memory pool and its tenants (libthaw). */
  memory(): ReturnType<PoolGaugeSource["memory"]>;
}
