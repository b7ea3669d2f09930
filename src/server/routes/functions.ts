// /v1/functions: deploy, list, inspect and delete functions.

import { type } from "arktype";
import { Elysia } from "elysia";
import { parseEnvPairs, type ServerConfig } from "../../config.ts";
import { OCI_REQUEST_LIMIT, parseOciDeploy, pullForDeploy } from "../../oci/deploy.ts";
import type { FunctionConfig, FunctionRecord } from "../../registry/registry.ts";
import { ThawError } from "../../service/errors.ts";
import type { AppContext } from "../context.ts";
import { json, queryFlag, readBody, readForm } from "../http.ts";
import { errorResponses } from "../openapi.ts";
import { DeployQuery, ErrorBody, FunctionConfigInput, FunctionList, FunctionName, FunctionView } from "../schemas.ts";

export function view(rec: FunctionRecord, ctx: AppContext) {
  const entry = ctx.pools.get(rec.tenant, rec.name);
  const pool = entry?.pool.stats();
  // The tier calls run on now: the loaded code's, else what the next call would load.
  const serving = entry?.pool.code;
  const build = ctx.functions.buildProgress(rec.tenant, rec.name);
  return {
    tenant: rec.tenant,
    name: rec.name,
    status: rec.status,
    version: rec.version,
    activeVersion: rec.active?.version ?? null,
    moduleHash: rec.moduleHash,
    config: rec.config,
    ...(rec.error ? { error: rec.error } : {}),
    sizes: rec.sizes,
    ...(rec.compileMs !== undefined ? { compileMs: rec.compileMs } : {}),
    ...(pool ? { pool } : {}),
    tier: serving?.tier ?? (rec.active ? (rec.active.tier ?? "optimized") : null),
    ...(build ? { build } : {}),
    createdAt: rec.createdAt,
    updatedAt: rec.updatedAt,
    url: `/v1/functions/${rec.name}`,
  };
}

function validated<T>(result: T | type.errors): T {
  if (result instanceof type.errors) throw new ThawError("invalid_request", result.summary);
  return result;
}

// Env and the content type reach a function's environment and every one of
// its responses' headers: a key with `=` or a NUL, or a content type with
// CR/LF, would corrupt one or make the other unsendable, so both are checked
// here at deploy rather than failing every call later.
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const ENV_LIMITS = { vars: 256, valueChars: 8192 };
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const MEDIA_TYPE = new RegExp(`^${TOKEN}/${TOKEN}([ \\t]*;[ \\t]*${TOKEN}=(${TOKEN}|"[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]*"))*$`);

function checkConfig(config: Partial<FunctionConfig>): Partial<FunctionConfig> {
  const env = Object.entries(config.env ?? {});
  if (env.length > ENV_LIMITS.vars) throw new ThawError("invalid_request", `at most ${ENV_LIMITS.vars} env variables`);
  for (const [key, value] of env) {
    if (!ENV_KEY.test(key))
      throw new ThawError("invalid_request", `env key ${JSON.stringify(key.slice(0, 64))} must match ${ENV_KEY.source}`);
    if (value.includes("\0") || value.length > ENV_LIMITS.valueChars)
      throw new ThawError("invalid_request", `env ${key} must be under ${ENV_LIMITS.valueChars} characters with no NUL`);
  }
  const contentType = config.contentType;
  if (contentType !== undefined && (contentType.length > 256 || !MEDIA_TYPE.test(contentType)))
    throw new ThawError("invalid_request", "contentType must be a media type such as `text/plain; charset=utf-8`");
  return config;
}

async function readDeploy(request: Request, query: Record<string, string | string[] | undefined>, serverConfig: ServerConfig) {
  const limit = serverConfig.maxModule;
  const contentType = request.headers.get("content-type") ?? "";
  if (/^application\/json\s*(;|$)/i.test(contentType)) {
    // A deploy from a registry (src/oci/deploy.ts): the server pulls the module.
    const req = parseOciDeploy(await readBody(request, OCI_REQUEST_LIMIT));
    const config = checkConfig(validated(FunctionConfigInput(req.config ?? {})) as Partial<FunctionConfig>);
    return { bytes: await pullForDeploy(req, serverConfig), config };
  }
  if (contentType.startsWith("multipart/form-data")) {
    const declared = Number(request.headers.get("content-length") ?? "0");
    if (declared > limit) throw new ThawError("payload_too_large", `module is over the limit of ${limit} bytes`, { limit });
    const form = await readForm(request);
    const module = form.get("module");
    if (!(module instanceof Blob)) throw new ThawError("invalid_request", "multipart deploy needs a `module` file part");
    if (module.size > limit) throw new ThawError("payload_too_large", `module is over the limit of ${limit} bytes`, { limit });
    const rawConfig = form.get("config");
    const configText = rawConfig === null ? "{}" : typeof rawConfig === "string" ? rawConfig : await rawConfig.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(configText);
    } catch {
      throw new ThawError("invalid_request", "the `config` part must be JSON");
    }
    const config = checkConfig(validated(FunctionConfigInput(parsed)) as Partial<FunctionConfig>);
    return { bytes: new Uint8Array(await module.arrayBuffer()), config };
  }
  if (contentType && !/^application\/(wasm|octet-stream)/.test(contentType))
    throw new ThawError(
      "invalid_request",
      "send the module as application/wasm, as multipart/form-data with a `module` part, or an OCI reference as application/json",
    );
  const q = validated(DeployQuery(query));
  const config: Partial<FunctionConfig> = {};
  if (q.memoryMiB !== undefined) config.memoryMiB = q.memoryMiB;
  if (q.timeoutMs !== undefined) config.timeoutMs = q.timeoutMs;
  if (q.maxConcurrency !== undefined) config.maxConcurrency = q.maxConcurrency;
  if (q.contentType !== undefined) config.contentType = q.contentType;
  if (q.env !== undefined)
    config.env = parseEnvPairs(
      Array.isArray(q.env) ? q.env : [q.env],
      (pair) => new ThawError("invalid_request", `env must be K=V, got "${pair}"`),
    );
  return { bytes: await readBody(request, limit), config: checkConfig(config) };
}

export const functionRoutes = (ctx: AppContext) =>
  new Elysia({ name: "functions" })
    .use(ctx.authn)
    .put(
      "/v1/functions/:name",
      async ({ request, params, query, principal: { tenant } }) => {
        const { bytes, config } = await readDeploy(request, query as Record<string, string>, ctx.config);
        const wait = queryFlag((query as { wait?: string }).wait);
        const { record, changed, settled } = await ctx.functions.deploy(tenant, params.name, bytes, config);
        const final = wait ? await settled : record;
        const location = { location: `/v1/functions/${params.name}` };
        if (final.status === "failed" && final.error)
          throw new ThawError(final.error.code as never, final.error.message, { function: view(final, ctx) });
        if (final.status === "compiling") return json(view(final, ctx), 202, location);
        return json(view(final, ctx), changed ? 201 : 200, location);
      },
      {
        parse: "none",
        params: FunctionName,
        detail: {
          summary: "Deploy a function",
          description:
            "Upload a WASI module as `application/wasm` (config from the query: memoryMiB, timeoutMs, env=K=V repeated, contentType, maxConcurrency) or as `multipart/form-data` with a `module` file and a `config` JSON part. Answers 202 while compiling (201 when ready with `wait=true`); the same bytes and config again are a no-op (200). In a cluster the function becomes callable on every node; while the cluster's Redis is down, deploys answer 503 `cluster_unavailable`.",
          requestBody: {
            content: {
              "application/wasm": { schema: { type: "string", format: "binary" } },
              "multipart/form-data": {
                schema: {
                  type: "object",
                  properties: { module: { type: "string", format: "binary" }, config: FunctionConfigInput.toJsonSchema() as never },
                  required: ["module"],
                },
              },
              "application/json": {
                schema: {
                  type: "object",
                  description:
                    "Deploy from an OCI registry (src/oci): the server pulls the Wasm artifact. A pull that fails answers 422 `oci_pull_failed` with a `reason` (address_refused, unreachable, timeout, unauthorized, not_found, registry_error, bad_manifest, not_wasm_artifact, digest_mismatch); a module over --max-module 413.",
                  properties: {
                    oci: { type: "string", example: "registry.example.com/fns/hello:v1" },
                    auth: { type: "string", description: '"Bearer TOKEN" or "Basic BASE64", for this pull only' },
                    config: FunctionConfigInput.toJsonSchema() as never,
                  },
                  required: ["oci"],
                  additionalProperties: false,
                },
              },
            },
          },
          parameters: [
            { name: "memoryMiB", in: "query", schema: { type: "integer" } },
            { name: "timeoutMs", in: "query", schema: { type: "integer" } },
            { name: "maxConcurrency", in: "query", schema: { type: "integer" } },
            { name: "contentType", in: "query", schema: { type: "string" } },
            { name: "env", in: "query", schema: { type: "array", items: { type: "string" } }, description: "K=V, repeated" },
            { name: "wait", in: "query", schema: { type: "boolean" }, description: "answer when the build is done" },
          ],
        } as never,
        response: { 200: FunctionView, 201: FunctionView, 202: FunctionView, 400: ErrorBody, 401: ErrorBody, 408: ErrorBody, 413: ErrorBody, 422: ErrorBody, 503: ErrorBody },
      },
    )
    .get(
      "/v1/functions",
      ({ principal: { tenant } }) => {
        return { functions: ctx.functions.list(tenant).map((r) => view(r, ctx)) };
      },
      { detail: { summary: "List the tenant's functions" }, response: { 200: FunctionList, 401: ErrorBody } },
    )
    .get(
      "/v1/functions/:name",
      ({ params, principal: { tenant } }) => {
        return view(ctx.functions.get(tenant, params.name), ctx);
      },
      {
        params: FunctionName,
        detail: { summary: "A function: status, config, sizes, pool and call stats" },
        response: { 200: FunctionView, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
      },
    )
    .delete(
      "/v1/functions/:name",
      async ({ params, principal: { tenant } }) => {
        await ctx.functions.delete(tenant, params.name);
        return new Response(null, { status: 204 });
      },
      {
        params: FunctionName,
        detail: {
          summary: "Delete a function (on every node of a cluster; 503 cluster_unavailable while its Redis is down)",
          responses: {
            204: { description: "deleted" },
            ...errorResponses({ 400: "invalid_request", 401: "unauthorized", 404: "function_not_found", 503: "cluster_unavailable" }),
          },
        } as never,
      },
    );
