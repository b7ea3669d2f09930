// Request and response shapes of the REST API (arktype), used for
// validation and for the OpenAPI document.

import { type } from "arktype";

export const FunctionName = type({
  name: type("/^[a-z0-9][a-z0-9_-]{0,62}$/").describe("1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit"),
});

const memoryMiB = "1 <= number.integer <= 4096" as const;
const timeoutMs = "1 <= number.integer <= 900000" as const;
const maxConcurrency = "1 <= number.integer <= 100000" as const;

/** Config as JSON (the `config` part of a multipart deploy). */
export const FunctionConfigInput = type({
  "memoryMiB?": memoryMiB,
  "timeoutMs?": timeoutMs,
  "env?": "Record<string, string>",
  "contentType?": "string",
  "maxConcurrency?": maxConcurrency,
  "+": "reject",
});

const queryInt = type("string.integer.parse");

/** Config as query parameters (raw application/wasm deploys); env is repeated env=K=V. */
export const DeployQuery = type({
  "memoryMiB?": queryInt.to(memoryMiB),
  "timeoutMs?": queryInt.to(timeoutMs),
  "env?": "string | string[]",
  "contentType?": "string",
  "maxConcurrency?": queryInt.to(maxConcurrency),
  "wait?": "'true' | 'false' | '1' | '0'",
});

export const ErrorBody = type({
  error: { code: "string", message: "string", "[string]": "unknown" },
});

const Config = type({
  memoryMiB: "number",
  timeoutMs: "number",
  env: "Record<string, string>",
  contentType: "string",
  maxConcurrency: "number",
});

export const FunctionView = type({
  tenant: "string",
  name: "string",
  status: "'compiling' | 'ready' | 'failed'",
  version: "number",
  activeVersion: "number | null",
  moduleHash: "string",
  config: Config,
  "error?": { code: "string", message: "string", "log?": "string" },
  sizes: { moduleBytes: "number", "codeBytes?": "number", "objectBytes?": "number", "snapshotBytes?": "number" },
  "compileMs?": "number",
  "pool?": { warm: "number", busy: "number", waiting: "number", calls: "number", coldStarts: "number" },
  /** The compiler tier of the code calls run on now (null before the first build). */
  tier: "'fast' | 'optimized' | null",
  /** While a compile runs: its stage (queued, validating, translating, compiling, snapshotting), tier and time so far. */
  "build?": { stage: "string", tier: "'fast' | 'optimized'", elapsedMs: "number" },
  createdAt: "string",
  updatedAt: "string",
  url: "string",
});

export const FunctionList = type({ functions: FunctionView.array() });

export const PoolsView = type({
  memory: {
    arenaBytes: "number",
    usedBytes: "number",
    committedBytes: "number",
    fragmentation: "number",
    tenants: type({ tenant: "string", usedBytes: "number", reservedBytes: "number" }).array(),
  },
  policy: "string",
  budgetBytes: "number",
  plannedBytes: "number",
  codeUnloads: "number",
  functions: type({
    tenant: "string",
    name: "string",
    lambda: "number",
    tauMs: "number | null",
    k: "number",
    target: "number",
    trimmed: "number",
    warm: "number",
    busy: "number",
    waiting: "number",
    mInstBytes: "number",
    calls: "number",
    coldStarts: "number",
  }).array(),
});

/** Options of an async submit, as query parameters; the request body is the call's stdin. */
export const JobQuery = type({
  "callback?": "string",
  "attempts?": queryInt.to("1 <= number.integer <= 20"),
  "retryFunctionErrors?": "'true' | 'false' | '1' | '0'",
});

export const JobId = type({ id: type("/^[A-Za-z0-9_.:-]{1,128}$/").describe("a job id: 1 to 128 of A-Z, a-z, 0-9, _ . : and -") });

export const JobView = type({
  id: "string",
  tenant: "string",
  function: "string",
  status: "'queued' | 'running' | 'succeeded' | 'failed' | 'dead'",
  attempts: "number",
  maxAttempts: "number",
  "requestId?": type("string").describe("the X-Request-Id of the request that submitted the job; also the request id of its attempts' call logs"),
  createdAt: "string",
  "startedAt?": "string",
  "finishedAt?": "string",
  "queueMs?": "number",
  "runMs?": "number",
  "node?": "string",
  "error?": { code: "string", message: "string" },
  "result?": {
    outcome: "string",
    exitCode: "number",
    contentType: "string",
    bytes: "number",
    stderr: "string",
    durationMs: "number",
    url: "string",
  },
  "callback?": { url: "string", state: "'pending' | 'delivered' | 'failed'", attempts: "number", "lastError?": "string" },
});

export const NodesView = type({
  nodeId: "string",
  mode: "'single' | 'cluster' | 'cluster_unavailable'",
  nodes: type({
    id: "string",
    url: "string",
    hostname: "string",
    pid: "number",
    startedAt: "string",
    lastSeen: "string",
    functions: "number",
    warm: "number",
    busy: "number",
  }).array(),
});
