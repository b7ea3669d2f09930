// An OCI reference as thaw takes it: HOST[:PORT]/REPO[:TAG|@sha256:HEX],
// optionally prefixed with oci://. The host is always written out: there is
// no default registry (Docker Hub's "library/" shorthand would make
// `thaw deploy oci://alpine` pull from somewhere the user never named).
//
// Every part is checked against the distribution spec's grammar before it
// goes into a URL path, so a tenant's reference cannot add path segments,
// queries or another host: what reaches the network is /v2/<repo>/...
// with a repository and tag made of a handful of characters.

export interface Reference {
  /** host or host:port as written (IPv6 in brackets), lowercase. */
  registry: string;
  repository: string;
  /** A tag, or a digest "sha256:<64 hex>". */
  reference: string;
  /** Set when the reference names a digest: what the manifest's bytes must hash to. */
  digest?: string;
}

const HOST = /^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*)(:[0-9]{1,5})?$/;
const COMPONENT = "[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*";
const REPOSITORY = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
export const DIGEST = /^sha256:[a-f0-9]{64}$/;

export class ReferenceError extends Error {}

export function parseReference(input: string): Reference {
  const bad = (why: string) => new ReferenceError(`OCI reference ${JSON.stringify(input.slice(0, 300))} ${why}`);
  if (input.length > 600) throw bad("is too long");
  const text = input.startsWith("oci://") ? input.slice("oci://".length) : input;
  const slash = text.indexOf("/");
  if (slash <= 0) throw bad("must be HOST[:PORT]/REPOSITORY[:TAG|@sha256:DIGEST]");
  const registry = text.slice(0, slash).toLowerCase();
  if (!HOST.test(registry)) throw bad(`has an invalid registry host ${JSON.stringify(registry.slice(0, 100))}`);
  const port = /:([0-9]+)$/.exec(registry.replace(/^\[.*\]/, ""))?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw bad("has an invalid port");
  try {
    new URL(`https://${registry}/`);
  } catch {
    throw bad(`has an invalid registry host ${JSON.stringify(registry.slice(0, 100))}`);
  }
  let rest = text.slice(slash + 1);
  let reference = "latest";
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    if (!DIGEST.test(digest)) throw bad("has a digest that is not sha256:<64 lowercase hex digits>");
    reference = digest;
    rest = rest.slice(0, at);
    // A tag before the digest (repo:tag@sha256:...) is informative only: the digest decides.
    const colon = rest.lastIndexOf(":");
    if (colon > rest.lastIndexOf("/")) rest = rest.slice(0, colon);
  } else {
    const colon = rest.lastIndexOf(":");
    if (colon > rest.lastIndexOf("/")) {
      reference = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
      if (!TAG.test(reference)) throw bad("has an invalid tag (letters, digits, _ . -; at most 128)");
    }
  }
  if (rest.length > 255 || !REPOSITORY.test(rest))
    throw bad("has an invalid repository name (lowercase letters, digits and . _ - separators, / between components)");
  return { registry, repository: rest, reference, ...(digest ? { digest } : {}) };
}

export const formatReference = (r: Reference) =>
  `${r.registry}/${r.repository}${r.digest ? `@${r.digest}` : `:${r.reference}`}`;
