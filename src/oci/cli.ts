// `thaw push FILE.wasm HOST/REPO:TAG [--auth AUTH] [--plain-http]`: upload a
// module to an OCI registry as a Wasm artifact (artifact.ts), so that
// `thaw deploy oci://HOST/REPO:TAG` -- or wasm-to-oci, spin, oras -- can
// pull it. Prints the pushed digest reference on stdout (for scripts: it
// names exactly these bytes), and a line about it on stderr.
//
// The user picks the registry, so there is no address policy here (a push
// to a registry on localhost is normal); https unless --plain-http.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { CliError, UsageError } from "../cli/common.ts";
import { push } from "./client.ts";
import { OciError } from "./errors.ts";
import { formatReference, parseReference, ReferenceError } from "./reference.ts";

const PUSH_TIMEOUT_MS = 300_000;
const AUTH = /^(Bearer|Basic) [\x21-\x7e]{1,8192}$/;

export async function pushCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { auth: { type: "string" }, "plain-http": { type: "boolean" } },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 2) throw new UsageError("usage: thaw push FILE.wasm HOST/REPO:TAG [--auth AUTH] [--plain-http]");
  const [file, target] = positionals as [string, string];
  if (values.auth !== undefined && !AUTH.test(values.auth)) throw new UsageError('--auth must be "Bearer TOKEN" or "Basic BASE64"');
  let ref;
  try {
    ref = parseReference(target);
  } catch (e) {
    if (e instanceof ReferenceError) throw new UsageError(e.message);
    throw e;
  }
  if (ref.digest) throw new UsageError("push to a tag (HOST/REPO:TAG), not a digest");
  let module: Uint8Array;
  try {
    module = readFileSync(file);
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (module.length < 8 || module[0] !== 0 || module[1] !== 0x61 || module[2] !== 0x73 || module[3] !== 0x6d)
    throw new CliError(`${file} is not a WebAssembly module (no \\0asm header)`);
  const plain = values["plain-http"] === true;
  try {
    const { digest, size } = await push(ref, module, {
      dial: async () => undefined,
      plainHttp: () => plain,
      auth: values.auth,
      timeoutMs: PUSH_TIMEOUT_MS,
    });
    process.stderr.write(`thaw: pushed ${formatReference(ref)} (${size} bytes)\n`);
    process.stdout.write(`${ref.registry}/${ref.repository}@${digest}\n`);
    return 0;
  } catch (e) {
    if (e instanceof OciError) {
      const hint = e.reason === "unreachable" && !plain ? " (a registry without TLS needs --plain-http)" : "";
      throw new CliError(`push to ${formatReference(ref)} failed: ${e.message}${hint}`);
    }
    throw e;
  }
}
