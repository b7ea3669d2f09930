// The Wasm OCI artifact: what a manifest must say for thaw to deploy it,
// and the manifest `thaw push` writes.
//
// Pushed: an OCI image manifest whose config is
// application/vnd.wasm.config.v0+json ({created, architecture: "wasm",
// os: "wasip1", layerDigests}) and whose one layer is the module as
// application/vnd.wasm.content.layer.v1+wasm -- the layout of the CNCF
// Wasm OCI artifact spec with the layer type wasm-to-oci and spin use.
//
// Pulled: an OCI or Docker v2 image manifest with exactly one layer of a
// Wasm media type (the one above, or application/wasm as the CNCF spec and
// oci-wasm push it). The config's media type is not checked (oras pushes
// application/vnd.oci.empty.v1+json or its own; spin a spin config) and the
// config blob is never fetched: thaw takes no settings from it. An image
// index, a manifest with no Wasm layer or with several (a multi-component
// Spin app) is refused with the layer types it has, so the user sees why.

import { DIGEST } from "./reference.ts";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const INDEXES = ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];
export const WASM_CONFIG = "application/vnd.wasm.config.v0+json";
export const WASM_LAYER = "application/vnd.wasm.content.layer.v1+wasm";
const WASM_LAYERS = [WASM_LAYER, "application/wasm"];

/** What the manifest GET accepts: the two manifest types, and indexes only to name them in the error. */
export const MANIFEST_ACCEPT = [OCI_MANIFEST, DOCKER_MANIFEST, ...INDEXES].join(", ");

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** The manifest does not describe a single Wasm module thaw can deploy. */
export class NotWasmArtifact extends Error {}

/** The manifest is not a valid image manifest (not JSON, missing fields, bad digests). */
export class BadManifest extends Error {}

const printable = (s: string) => JSON.stringify(s.replace(/[^\x20-\x7e]/g, "?").slice(0, 100));

function descriptor(value: unknown, where: string): Descriptor {
  const d = value as Partial<Descriptor> | null;
  if (typeof d !== "object" || d === null) throw new BadManifest(`${where} is not an object`);
  if (typeof d.mediaType !== "string") throw new BadManifest(`${where} has no mediaType`);
  if (typeof d.digest !== "string" || !DIGEST.test(d.digest))
    throw new BadManifest(`${where} digest must be sha256:<64 hex> (other algorithms are not supported)`);
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) throw new BadManifest(`${where} has no valid size`);
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/** The Wasm layer of a manifest's bytes; `contentType` is the response's, for manifests without mediaType. */
export function wasmLayer(bytes: Uint8Array, contentType: string): Descriptor {
  let manifest: { schemaVersion?: unknown; mediaType?: unknown; layers?: unknown; manifests?: unknown };
  try {
    manifest = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new BadManifest("the manifest is not JSON");
  }
  if (typeof manifest !== "object" || manifest === null || Array.isArray(manifest)) throw new BadManifest("the manifest is not a JSON object");
  const mediaType = typeof manifest.mediaType === "string" ? manifest.mediaType : contentType.split(";")[0]!.trim();
  if (INDEXES.includes(mediaType) || Array.isArray(manifest.manifests))
    throw new NotWasmArtifact("the reference names an image index (several manifests): reference one Wasm manifest by its digest");
  if (manifest.schemaVersion !== 2) throw new BadManifest("the manifest's schemaVersion is not 2");
  if (mediaType && mediaType !== OCI_MANIFEST && mediaType !== DOCKER_MANIFEST)
    throw new NotWasmArtifact(`the manifest's media type ${printable(mediaType)} is not an image manifest`);
  if (!Array.isArray(manifest.layers)) throw new BadManifest("the manifest has no layers array");
  if (manifest.layers.length > 1000) throw new BadManifest("the manifest has over 1000 layers");
  const layers = manifest.layers.map((l, i) => descriptor(l, `layer ${i}`));
  const wasm = layers.filter((l) => WASM_LAYERS.includes(l.mediaType));
  if (wasm.length === 1) return wasm[0]!;
  const types = [...new Set(layers.map((l) => l.mediaType))].slice(0, 5).map(printable).join(", ") || "none";
  if (wasm.length === 0)
    throw new NotWasmArtifact(`not a Wasm artifact: no layer of type ${WASM_LAYERS.join(" or ")} (layer types: ${types})`);
  throw new NotWasmArtifact(`the artifact has ${wasm.length} Wasm layers; thaw deploys one module`);
}

export const sha256 = (bytes: Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;

/** The config blob and manifest `thaw push` uploads for `module`. */
export function buildArtifact(module: Uint8Array, created = new Date()) {
  const layer: Descriptor = { mediaType: WASM_LAYER, digest: sha256(module), size: module.length };
  const config = new TextEncoder().encode(
    JSON.stringify({ created: created.toISOString(), architecture: "wasm", os: "wasip1", layerDigests: [layer.digest] }),
  );
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: WASM_CONFIG, digest: sha256(config), size: config.length },
      layers: [layer],
    }),
  );
  return { config, layer, manifest };
}
