// Why a registry operation failed, as a short stable reason plus a message
// for people. The server turns these into 422 oci_pull_failed (413 for
// too_large); `thaw push` prints them.
//
// Connection failures are coarse on purpose (unreachable: DNS, refused,
// reset, TLS all alike), as for callbacks: a tenant who picks the URL must
// not learn the shape of the network from the errors. A timeout is named,
// since the time it took tells the same anyway.

export type OciReason =
  | "address_refused"
  | "unreachable"
  | "timeout"
  | "unauthorized"
  | "not_found"
  | "registry_error"
  | "bad_manifest"
  | "not_wasm_artifact"
  | "digest_mismatch"
  | "too_large";

export class OciError extends Error {
  constructor(
    readonly reason: OciReason,
    message: string,
  ) {
    super(message);
  }
}
