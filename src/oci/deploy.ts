// A deploy from a registry, server side: the JSON body of
// PUT /v1/functions/{name} (`{"oci": REF, "auth"?: "Bearer T"|"Basic B",
// "config"?: {...}}`) read and checked, and the module pulled under the
// registry policy (policy.ts) and the module size limit. The route then
// deploys the bytes exactly as if they had been uploaded.
//
// Errors: a malformed body, reference or auth value is a 400
// invalid_request; a module over --max-module a 413 payload_too_large;
// every other failure of the pull a 422 oci_pull_failed whose `reason`
// is one of OciReason (address_refused, unreachable, timeout,
// unauthorized, not_found, registry_error, bad_manifest,
// not_wasm_artifact, digest_mismatch). The credentials are used for this
// pull only: they are neither stored nor logged.

import type { ServerConfig } from "../config.ts";
import { ThawError } from "../service/errors.ts";
import { pull } from "./client.ts";
import { OciError } from "./errors.ts";
import { RegistryPolicy } from "./policy.ts";
import { parseReference, ReferenceError } from "./reference.ts";

/** The JSON body is a reference and a small config: nothing near a module's size. */
export const OCI_REQUEST_LIMIT = 64 << 10;

const AUTH = /^(Bearer|Basic) [\x21-\x7e]{1,8192}$/;

export interface OciDeploy {
  oci: string;
  auth?: string;
  /** Unchecked: the route validates it as any deploy's config. */
  config?: unknown;
}

/** The body's fields, or a 400 that says what is wrong. */
export function parseOciDeploy(body: Uint8Array): OciDeploy {
  const bad = (why: string) => new ThawError("invalid_request", why);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    throw bad('a JSON deploy body must be JSON: {"oci": "HOST/REPO:TAG", "auth"?: "...", "config"?: {...}}');
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw bad("a JSON deploy body must be an object");
  const fields = value as Record<string, unknown>;
  const unknown = Object.keys(fields).find((k) => k !== "oci" && k !== "auth" && k !== "config");
  if (unknown !== undefined) throw bad(`unknown field ${JSON.stringify(unknown.slice(0, 64))} (expected oci, auth, config)`);
  if (typeof fields.oci !== "string") throw bad('"oci" must be a reference string, HOST[:PORT]/REPO[:TAG|@sha256:HEX]');
  if (fields.auth !== undefined && (typeof fields.auth !== "string" || !AUTH.test(fields.auth)))
    throw bad('"auth" must be "Bearer TOKEN" or "Basic BASE64"');
  if (fields.config !== undefined && (typeof fields.config !== "object" || fields.config === null || Array.isArray(fields.config)))
    throw bad('"config" must be an object');
  return { oci: fields.oci, auth: fields.auth as string | undefined, config: fields.config };
}

const policies = new WeakMap<ServerConfig, RegistryPolicy>();

function policyFor(config: ServerConfig): RegistryPolicy {
  let p = policies.get(config);
  if (!p) {
    p = new RegistryPolicy({ allow: config.registryAllow, plainHttp: config.registryPlainHttp, timeoutMs: config.registryTimeout });
    policies.set(config, p);
  }
  return p;
}

/** The module the request names, pulled under `config`'s registry policy and module limit. */
export async function pullForDeploy(req: OciDeploy, config: ServerConfig): Promise<Uint8Array> {
  let ref;
  try {
    ref = parseReference(req.oci);
  } catch (e) {
    if (e instanceof ReferenceError) throw new ThawError("invalid_request", e.message);
    throw e;
  }
  const policy = policyFor(config);
  try {
    const { module } = await pull(ref, config.maxModule, {
      dial: policy.dial,
      plainHttp: policy.plainHttp,
      auth: req.auth,
      timeoutMs: policy.settings.timeoutMs,
    });
    return module;
  } catch (e) {
    if (!(e instanceof OciError)) throw e;
    if (e.reason === "too_large")
      throw new ThawError("payload_too_large", `${e.message} (--max-module)`, { limit: config.maxModule, reason: e.reason });
    throw new ThawError("oci_pull_failed", `could not pull ${ref.registry}/${ref.repository}: ${e.message}`, { reason: e.reason });
  }
}
