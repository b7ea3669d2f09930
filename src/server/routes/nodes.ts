// GET /v1/nodes: the live nodes of the cluster, as their heartbeats describe
// them (cluster/membership.ts). Any authenticated principal may read it:
// it names nodes and counts instances, nothing about any tenant's functions.

import { Elysia } from "elysia";
import type { AppContext } from "../context.ts";
import { ErrorBody, NodesView } from "../schemas.ts";

export const nodeRoutes = (ctx: AppContext) =>
  new Elysia({ name: "nodes" })
    .use(ctx.authn)
    .get("/v1/nodes", () => ctx.nodes.list(), {
      detail: {
        summary: "Live nodes: id, URL, host, pid, start, last heartbeat, functions loaded, warm and busy instances",
        description:
          "With Redis (`THAW_REDIS_URL`) every node heartbeats each second and is listed until its heartbeat is 5 s old; without Redis, or while it is unreachable (`mode: cluster_unavailable`), the list is this node alone.",
        tags: ["cluster"],
      },
      response: { 200: NodesView, 401: ErrorBody },
    });
