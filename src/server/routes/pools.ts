// GET /v1/pools: the warm-pool plan as the node applies it -- per function
// λ, τ, the target k, the budgeted warm count, what is warm and busy now,
// M_inst and cold starts -- and the budget in use.

import { Elysia } from "elysia";
import { poolKey } from "../../pool/manager.ts";
import type { AppContext } from "../context.ts";
import { ErrorBody, PoolsView } from "../schemas.ts";

export function poolsView(ctx: AppContext, tenant?: string) {
  const plan = ctx.pools.plan();
  const functions = ctx.pools
    .all()
    .filter((e) => tenant === undefined || e.tenant === tenant)
    .map((e) => {
      const fp = plan.functions.get(poolKey(e.tenant, e.name));
      const s = e.pool.stats();
      return {
        tenant: e.tenant,
        name: e.name,
        lambda: fp?.lambda ?? 0,
        tauMs: fp?.tau ?? null,
        k: fp?.k ?? 0,
        target: fp?.warm ?? 0,
        trimmed: fp?.trimmed ?? 0,
        warm: s.warm,
        busy: s.busy,
        waiting: s.waiting,
        mInstBytes: Math.round(fp?.mInst ?? 0),
        calls: s.calls,
        coldStarts: s.coldStarts,
      };
    });
  const memory = ctx.memory();
  return {
    memory: {
      arenaBytes: memory.pool.arenaBytes,
      usedBytes: memory.pool.usedBytes,
      committedBytes: memory.pool.committedBytes,
      fragmentation: memory.pool.fragmentation,
      tenants: memory.tenants
        .filter((t) => tenant === undefined || t.tenant === tenant)
        .map((t) => ({ tenant: t.tenant, usedBytes: t.usedBytes ?? 0, reservedBytes: t.reservedBytes ?? 0 })),
    },
    policy: plan.policy,
    budgetBytes: plan.budgetBytes,
    plannedBytes: Math.round(plan.plannedBytes),
    codeUnloads: ctx.pools.unloads,
    functions,
  };
}

export const poolRoutes = (ctx: AppContext) =>
  new Elysia({ name: "pools" })
    .use(ctx.authn)
    .get("/v1/pools", ({ principal }) => poolsView(ctx, principal.admin ? undefined : principal.tenant), {
      detail: {
        summary: "Warm pools: λ, τ, k, warm/busy instances, M_inst, cold starts, and the budget in use",
        tags: ["pools"],
      },
      response: { 200: PoolsView, 401: ErrorBody },
    });
