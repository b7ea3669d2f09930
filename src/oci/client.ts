// Pull a Wasm module from an OCI registry, or push one, over the
// distribution API (/v2/...): the two operations thaw needs, in plain
// fetch. Written here rather than taken from npm: the packages found
// (@snyk/docker-registry-v2-client and the cloud vendors' SDKs) pull
// container images with their own HTTP stack, which leaves no place for
// the address check and pinned connect a server-side pull needs.
//
// Pull: GET the manifest (by tag or digest), check its sha256 against the
// digest asked for and the registry's Docker-Content-Digest, find its one
// Wasm layer (artifact.ts), refuse it before downloading if its declared
// size is over the limit, then GET the blob, reading no more than the
// declared size and checking size and sha256. At most `limit` bytes of the
// module are ever held.
//
// Push: each blob is skipped if the registry has it (HEAD), else uploaded
// monolithically (POST an upload session, PUT the bytes with ?digest=);
// then the manifest is PUT under the tag.

import { BadManifest, buildArtifact, type Descriptor, MANIFEST_ACCEPT, NotWasmArtifact, OCI_MANIFEST, sha256, wasmLayer } from "./artifact.ts";
import { OciError } from "./errors.ts";
import type { Reference } from "./reference.ts";
import { type Dialer, Transport } from "./transport.ts";

/** Manifests are small; the distribution spec lets registries refuse ones over 4 MiB. */
const MANIFEST_LIMIT = 4 << 20;

export interface ClientOptions {
  dial: Dialer;
  plainHttp: (host: string) => boolean;
  auth?: string;
  /** The whole operation, from the first connect to the last byte (ms). */
  timeoutMs: number;
}

/** A response that is not the success expected, as the reason a person can act on. */
async function unexpected(res: Response, what: string): Promise<OciError> {
  await res.body?.cancel().catch(() => undefined);
  if (res.status === 401 || res.status === 403)
    return new OciError("unauthorized", `the registry refused access to ${what} (HTTP ${res.status}): check the credentials`);
  if (res.status === 404) return new OciError("not_found", `${what} not found in the registry`);
  return new OciError("registry_error", `the registry answered HTTP ${res.status} for ${what}`);
}

function transport(ref: Reference, o: ClientOptions): Transport {
  return new Transport({ registry: ref.registry, dial: o.dial, plainHttp: o.plainHttp, auth: o.auth, signal: AbortSignal.timeout(o.timeoutMs) });
}

/** The module `ref` names, at most `limit` bytes, its digest checked. */
export async function pull(ref: Reference, limit: number, o: ClientOptions): Promise<{ module: Uint8Array; digest: string }> {
  const t = transport(ref, o);
  const repo = `/v2/${ref.repository}`;
  const res = await t.request("GET", `${repo}/manifests/${ref.reference}`, { headers: { accept: MANIFEST_ACCEPT } });
  if (!res.ok) throw await unexpected(res, `manifest ${ref.repository}:${ref.reference}`);
  const manifest = await t.read(res, MANIFEST_LIMIT, () => new OciError("bad_manifest", `the manifest is over ${MANIFEST_LIMIT} bytes`));
  const digest = sha256(manifest);
  const claimed = res.headers.get("docker-content-digest");
  if (ref.digest && digest !== ref.digest) throw new OciError("digest_mismatch", `the manifest's sha256 is ${digest}, not ${ref.digest}`);
  if (claimed?.startsWith("sha256:") && claimed !== digest)
    throw new OciError("digest_mismatch", `the manifest's sha256 is ${digest}, the registry says ${claimed.slice(0, 80)}`);
  let layer: Descriptor;
  try {
    layer = wasmLayer(manifest, res.headers.get("content-type") ?? "");
  } catch (e) {
    if (e instanceof NotWasmArtifact) throw new OciError("not_wasm_artifact", e.message);
    if (e instanceof BadManifest) throw new OciError("bad_manifest", e.message);
    throw e;
  }
  if (layer.size > limit) throw new OciError("too_large", `the module layer is ${layer.size} bytes, over the limit of ${limit}`);
  const blob = await t.request("GET", `${repo}/blobs/${layer.digest}`);
  if (!blob.ok) throw await unexpected(blob, `blob ${layer.digest}`);
  const mismatch = () => new OciError("digest_mismatch", `the blob is larger than the ${layer.size} bytes its manifest declares`);
  const module = await t.read(blob, layer.size, mismatch);
  if (module.length !== layer.size) throw new OciError("digest_mismatch", `the blob is ${module.length} bytes, its manifest declares ${layer.size}`);
  const got = sha256(module);
  if (got !== layer.digest) throw new OciError("digest_mismatch", `the blob's sha256 is ${got}, its manifest declares ${layer.digest}`);
  return { module, digest };
}

/** Uploads `module` as a Wasm artifact under `ref`'s tag; the manifest's digest. */
export async function push(ref: Reference, module: Uint8Array, o: ClientOptions): Promise<{ digest: string; size: number }> {
  if (ref.digest) throw new OciError("registry_error", "push to a tag (HOST/REPO:TAG), not a digest");
  const t = transport(ref, o);
  const repo = `/v2/${ref.repository}`;
  const { config, layer, manifest } = buildArtifact(module);
  for (const [bytes, digest] of [
    [config, sha256(config)],
    [module, layer.digest],
  ] as const) {
    const head = await t.request("HEAD", `${repo}/blobs/${digest}`);
    await head.body?.cancel().catch(() => undefined);
    if (head.ok) continue;
    const start = await t.request("POST", `${repo}/blobs/uploads/`, { headers: { "content-length": "0" } });
    const location = start.headers.get("location");
    if (start.status !== 202 || !location) throw await unexpected(start, `an upload to ${ref.repository}`);
    await start.body?.cancel().catch(() => undefined);
    const target = new URL(location, t.base);
    target.searchParams.set("digest", digest);
    const put = await t.request("PUT", target, { headers: { "content-type": "application/octet-stream" }, body: bytes });
    if (put.status !== 201) throw await unexpected(put, `blob ${digest}`);
    await put.body?.cancel().catch(() => undefined);
  }
  const put = await t.request("PUT", `${repo}/manifests/${ref.reference}`, { headers: { "content-type": OCI_MANIFEST }, body: manifest });
  if (put.status !== 201) throw await unexpected(put, `manifest ${ref.repository}:${ref.reference}`);
  await put.body?.cancel().catch(() => undefined);
  return { digest: sha256(manifest), size: module.length };
}
