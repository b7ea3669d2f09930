// Settings. Every server setting has a flag and a THAW_* variable of the
// same name (--max-body / THAW_MAX_BODY); a flag wins over the variable,
// the variable over the default.

import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_COMPILE_TIMEOUT_MS } from "./compiler/compile.ts";
import { ACCESS_LOG_HELP, type AccessLog, parseAccessLog } from "./logs/access.ts";
import { registrySettingsError } from "./oci/policy.ts";
import { TENANT_PATTERN, TENANT_RULE } from "./server/auth.ts";
import { CorsConfigError, parseCorsOrigins } from "./server/cors.ts";

export function defaultDataDir(): string {
  return process.env.THAW_DATA_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "thaw");
}

export interface ServerConfig {
  host: string;
  port: number;
  dataDir: string;
  /** Largest invocation body accepted, bytes. */
  maxBody: number;
  /** Largest module accepted by a deploy, bytes. */
  maxModule: number;
  adminToken?: string;
  /** Bearer token -> tenant. */
  tokens: Record<string, string>;
  /** A bearer token that opens /metrics and nothing else (a Prometheus scraper's). */
  metricsToken?: string;
  threads: number;
  /** Worker threads beyond --threads for calls blocked in host sleeps (they hold no CPU slot). */
  maxBlocked: number;
  /** Budget of a short call run on the event loop's thread before it moves to a worker (µs; 0: never inline). */
  inlineUs: number;
  /** Calls of one tenant in flight on this node (waiting or running); past it, 429. */
  tenantConcurrency: number;
  /** How long a call may wait for an instance and a CPU slot before a 429 (ms). */
  queueTimeout: number;
  /** Calls that may wait per function once it is at maxConcurrency. */
  maxWaiting: number;
  shutdownTimeout: number;
  /** How long a request's body may take to arrive after its headers; past it, 408 (ms). */
  bodyTimeout: number;
  /** Seconds a connection may sit idle (no request in progress) before it is closed; Bun allows 1-255. */
  idleTimeout: number;
  examples?: string;
  /** B: bytes for warm instances across all functions. */
  warmBudget: number;
  /** h: warm instances kept above predicted concurrency. */
  headroom: number;
  /** How long an idle instance keeps its written pages before they go back to the OS (ms). */
  retention: number;
  /** Per tenant: bytes of the memory pool reserved for it, and its cap. */
  tenantMemory: Record<string, { reservedBytes: number; limitBytes: number }>;
  /** Redis shared by the cluster; without it everything stays in process. */
  redisUrl?: string;
  /** Async jobs this node runs at once. */
  jobConcurrency: number;
  /** Backoff before a job's second attempt (ms); it doubles after every attempt. */
  jobBackoff: number;
  /** How long finished jobs and their results are kept (ms). */
  jobRetention: number;
  /** Where callbacks may go besides public addresses: CIDR ranges, addresses and host names. */
  callbackAllow: string[];
  /** Callback deliveries in flight on this node, and per tenant. */
  callbackConcurrency: number;
  callbackTenantConcurrency: number;
  /** One callback delivery attempt (ms). */
  callbackTimeout: number;
  /** Attempts per callback delivery. */
  callbackAttempts: number;
  /** Backoff before a callback's second attempt (ms); it doubles after every attempt. */
  callbackBackoff: number;
  /** The node-wide secret callbacks are signed from; generated and kept if unset. */
  callbackSecret?: string;
  /** Wall clock for one compile; past it the compile child is killed (ms). */
  compileTimeout: number;
  /** Compiles this node runs at once. */
  compileConcurrency: number;
  /** Deploys that may wait for a compile slot; past that a deploy gets 503 compile_queue_full. */
  compileQueue: number;
  /** Which calls get an access-log line (src/logs/access.ts). */
  accessLog: AccessLog;
  /** Bytes of call logs (stderr) this node keeps in memory, over all tenants; 0 keeps none. */
  callLogBytes: number;
  /** Origins browsers may call from (CORS); `*` for any; empty for no CORS headers. */
  corsOrigins: string[];
  /** Serve on a non-loopback address with no token (every request the admin of tenant "default"). */
  insecureOpen: boolean;
  /** Where OCI deploys may pull from besides public addresses: CIDR ranges, addresses and host names. */
  registryAllow: string[];
  /** Registries (host or host:port) pulled over plain http instead of https. */
  registryPlainHttp: string[];
  /** One OCI pull, first connect to last byte (ms). */
  registryTimeout: number;
}

const SPEC = {
  host: { default: "127.0.0.1" },
  port: { default: "8080", number: true },
  data: { env: "THAW_DATA_DIR" },
  "max-body": { default: String(6 << 20), number: true },
  "max-module": { default: String(64 << 20), number: true },
  "admin-token": {},
  tokens: { default: "" },
  "metrics-token": {},
  threads: { default: String(Math.max(2, navigator.hardwareConcurrency)), number: true },
  // Defaults derived from --threads in parseServerConfig: 4 x tenant-concurrency, max(64, 4 x threads).
  "max-blocked": {},
  "inline-us": { default: "1000", number: true },
  "tenant-concurrency": {},
  "queue-timeout": { default: "2000", number: true },
  "max-waiting": { default: "256", number: true },
  "shutdown-timeout": { default: "30000", number: true },
  "body-timeout": { default: "30000", number: true },
  "idle-timeout": { default: "30", number: true },
  "warm-budget": { default: String(256 << 20), number: true },
  headroom: { default: "1", number: true },
  retention: { default: "1000", number: true },
  "tenant-memory": { default: "" },
  "redis-url": {},
  "job-concurrency": { default: "16", number: true },
  "job-backoff": { default: "1000", number: true },
  "job-retention": { default: String(24 * 3600 * 1000), number: true },
  "callback-allow": { default: "" },
  "callback-concurrency": { default: "8", number: true },
  "callback-tenant-concurrency": { default: "2", number: true },
  "callback-timeout": { default: "5000", number: true },
  "callback-attempts": { default: "3", number: true },
  "callback-backoff": { default: "1000", number: true },
  "callback-secret": {},
  "compile-timeout": { default: String(DEFAULT_COMPILE_TIMEOUT_MS), number: true },
  // cc is single-threaded: one compile per core keeps a burst of deploys from starving calls.
  "compile-concurrency": { default: String(navigator.hardwareConcurrency), number: true },
  "compile-queue": { default: "64", number: true },
  "access-log": { default: "errors" },
  "call-log-bytes": { default: String(64 << 20), number: true },
  "cors-origins": { default: "" },
  "registry-allow": { default: "" },
  "registry-plain-http": { default: "" },
  "registry-timeout": { default: "60000", number: true },
} as const satisfies Record<string, { default?: string; env?: string; number?: boolean }>;

const envName = (flag: string) => `THAW_${flag.toUpperCase().replaceAll("-", "_")}`;

export class ConfigError extends Error {}

/** 127.0.0.0/8, ::1 and localhost: addresses only this machine reaches. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return true;
  if (!h.includes(":")) return false;
  try {
    return new URL(`http://[${h}]/`).hostname === "[::1]";
  } catch {
    return false;
  }
}

/**
 * A node with no token makes every request the admin of tenant "default":
 * fine on loopback, an open door anywhere else, so it takes an explicit flag.
 */
function checkExposure(host: string, open: boolean, insecureOpen: boolean): void {
  if (!open || insecureOpen || isLoopbackHost(host)) return;
  throw new ConfigError(
    `refusing to serve on ${host} (not a loopback address) without tokens: anyone who reaches it could deploy and run code. Set --admin-token or --tokens (THAW_ADMIN_TOKEN, THAW_TOKENS), or pass --insecure-open (THAW_INSECURE_OPEN=1) to serve it open anyway`,
  );
}

/** Tenant names become directories under the data directory: one that is not a plain name stops the server. */
function checkTenant(flag: string, tenant: string): string {
  if (!TENANT_PATTERN.test(tenant)) throw new ConfigError(`${flag}: invalid tenant name ${JSON.stringify(tenant)} (${TENANT_RULE})`);
  return tenant;
}

/** K=V strings as an environment; a string without a key is refused with onBad's error. */
export function parseEnvPairs(pairs: string[], onBad: (pair: string) => Error): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw onBad(pair);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

/** tenant:reservedBytes:limitBytes triples separated by commas. */
export function parseTenantMemory(spec: string): ServerConfig["tenantMemory"] {
  const out: ServerConfig["tenantMemory"] = {};
  for (const item of spec.split(",").map((s) => s.trim()).filter(Boolean)) {
    const [tenant, reserved, limit] = item.split(":");
    const r = Number(reserved);
    const l = Number(limit);
    if (!tenant || !Number.isFinite(r) || !Number.isFinite(l) || r < 0 || l < r)
      throw new ConfigError(`tenant-memory: expected tenant:reservedBytes:limitBytes with limit >= reserved, got "${item}"`);
    out[checkTenant("tenant-memory", tenant)] = { reservedBytes: r, limitBytes: l };
  }
  return out;
}

/** token:tenant pairs separated by commas. */
export function parseTokens(spec: string): Record<string, string> {
  const tokens: Record<string, string> = {};
  for (const pair of spec.split(",").map((s) => s.trim()).filter(Boolean)) {
    const i = pair.lastIndexOf(":");
    if (i <= 0 || i === pair.length - 1) throw new ConfigError(`tokens: expected token:tenant, got "${pair}"`);
    tokens[pair.slice(0, i)] = checkTenant("tokens", pair.slice(i + 1));
  }
  return tokens;
}

/** Tenant concurrency max(64, 4 per CPU slot); threads for blocked calls 4 x that, so that at
 * least four tenants must each fill their limit with sleeping calls before threads run out. */
function scheduling(threads: number, flag: (f: "tenant-concurrency" | "max-blocked" | "queue-timeout") => number | undefined) {
  const tenantConcurrency = flag("tenant-concurrency") ?? Math.max(64, 4 * threads);
  return { tenantConcurrency, maxBlocked: flag("max-blocked") ?? 4 * tenantConcurrency, queueTimeout: flag("queue-timeout")! };
}

/** An inline call holds the event loop, every tenant's, for up to its budget (and a watchdog tick). */
const INLINE_US_MAX = 100_000;
function inlineBudget(us: number): number {
  if (us > INLINE_US_MAX) throw new ConfigError(`--inline-us (THAW_INLINE_US) must be at most ${INLINE_US_MAX}: an inline call holds the event loop that long`);
  return us;
}

const list = (value: string | undefined) => (value ?? "").split(",").map((s) => s.trim()).filter(Boolean);

function registry(registryAllow: string[], registryPlainHttp: string[], registryTimeout: number) {
  const error = registrySettingsError({ allow: registryAllow, plainHttp: registryPlainHttp });
  if (error) throw new ConfigError(error);
  return { registryAllow, registryPlainHttp, registryTimeout };
}

function corsOrigins(spec: string): string[] {
  try {
    return parseCorsOrigins(spec);
  } catch (e) {
    if (e instanceof CorsConfigError) throw new ConfigError(e.message);
    throw e;
  }
}

export function parseServerConfig(argv: string[], env: Record<string, string | undefined> = process.env): ServerConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...Object.fromEntries(Object.keys(SPEC).map((k) => [k, { type: "string" as const }])),
      examples: { type: "boolean" },
      "insecure-open": { type: "boolean" },
      "examples-dir": { type: "string" },
    },
  });
  const get = (flag: keyof typeof SPEC): string | undefined => {
    const spec: { default?: string; env?: string } = SPEC[flag];
    return (values as Record<string, string | undefined>)[flag] ?? env[spec.env ?? envName(flag)] ?? spec.default;
  };
  const num = (flag: keyof typeof SPEC): number => {
    const n = Number(get(flag));
    if (!Number.isFinite(n) || n < 0) throw new ConfigError(`--${flag} (${envName(flag)}) must be a non-negative number`);
    return n;
  };
  const accessLog = parseAccessLog(get("access-log")!);
  if (!accessLog) throw new ConfigError(`--access-log (THAW_ACCESS_LOG) must be ${ACCESS_LOG_HELP}`);
  const host = get("host")!;
  const adminToken = get("admin-token") || undefined;
  const tokens = parseTokens(get("tokens") ?? "");
  const insecureOpen = values["insecure-open"] === true || /^(1|true|yes)$/i.test(env.THAW_INSECURE_OPEN ?? "");
  checkExposure(host, !adminToken && Object.keys(tokens).length === 0, insecureOpen);
  const examplesDir = (values["examples-dir"] as string | undefined) ?? join(import.meta.dir, "..", "functions", "build");
  // The single binary carries its examples (server/examples.ts) and has no directory of them.
  const embedded = import.meta.path.startsWith("/$bunfs/");
  if ((values["examples-dir"] || (values.examples && !embedded)) && !existsSync(examplesDir))
    throw new ConfigError(`examples directory ${examplesDir} not found: build it with \`make -C functions\` or pass --examples-dir DIR`);
  return {
    host,
    port: num("port"),
    dataDir: get("data") ?? defaultDataDir(),
    maxBody: num("max-body"),
    maxModule: num("max-module"),
    adminToken,
    tokens,
    metricsToken: get("metrics-token") || undefined,
    threads: Math.max(1, num("threads")),
    ...scheduling(Math.max(1, num("threads")), (f) => (get(f) === undefined ? undefined : Math.max(1, num(f)))),
    inlineUs: inlineBudget(num("inline-us")),
    maxWaiting: num("max-waiting"),
    shutdownTimeout: num("shutdown-timeout"),
    bodyTimeout: Math.max(1, num("body-timeout")),
    idleTimeout: Math.min(255, Math.max(1, num("idle-timeout"))),
    examples: values.examples || values["examples-dir"] ? examplesDir : undefined,
    warmBudget: num("warm-budget"),
    headroom: num("headroom"),
    retention: num("retention"),
    tenantMemory: parseTenantMemory(get("tenant-memory") ?? ""),
    redisUrl: get("redis-url") || undefined,
    jobConcurrency: Math.max(1, num("job-concurrency")),
    jobBackoff: num("job-backoff"),
    jobRetention: num("job-retention"),
    callbackAllow: (get("callback-allow") ?? "").split(",").map((s) => s.trim()).filter(Boolean),
    callbackConcurrency: Math.max(1, num("callback-concurrency")),
    callbackTenantConcurrency: Math.max(1, num("callback-tenant-concurrency")),
    callbackTimeout: Math.max(1, num("callback-timeout")),
    callbackAttempts: Math.max(1, num("callback-attempts")),
    callbackBackoff: num("callback-backoff"),
    callbackSecret: get("callback-secret") || undefined,
    compileTimeout: Math.max(1, num("compile-timeout")),
    compileConcurrency: Math.max(1, num("compile-concurrency")),
    compileQueue: num("compile-queue"),
    accessLog,
    callLogBytes: num("call-log-bytes"),
    corsOrigins: corsOrigins(get("cors-origins") ?? ""),
    insecureOpen,
    ...registry(list(get("registry-allow")), list(get("registry-plain-http")), Math.max(1, num("registry-timeout"))),
  };
}
