// `thaw deploy`: from a file, from ./thaw.toml (src/cli/manifest.ts), or
// from an OCI reference (`oci://HOST/REPO:TAG`, which the server pulls).
//
// The module is PUT without ?wait and the function is then polled about
// every 250 ms, so a long compile shows what it is doing: each build stage
// with its elapsed time (one rewritten line on a terminal, one line per stage
// otherwise), until the function is ready (exit 0) or failed (one line, exit
// 1). A server too old to report `build` still shows the status. Polling
// rather than holding one `?wait=true` request open also survives proxies and
// the server's idle timeout on long compiles.

import { readFileSync } from "node:fs";
import { isatty } from "node:tty";
import { parse, type Parsed } from "./commands.ts";
import { checkName, CliError, parseEnv, positiveInt, UsageError } from "./common.ts";
import { Server } from "./http.ts";
import { checkModule, type Manifest, readManifest, runBuild } from "./manifest.ts";

interface FunctionView {
  name: string;
  status: "compiling" | "ready" | "failed";
  version: number;
  tier?: string | null;
  build?: { stage: string; tier?: string; elapsedMs?: number } | null;
  error?: { code: string; message: string };
  sizes: { moduleBytes: number; codeBytes?: number };
  compileMs?: number;
}

type Config = Manifest["config"];

export async function deployCommand(argv: string[]): Promise<number> {
  const args = parse("deploy", argv);
  const [source, ...extra] = args.positionals;
  if (extra.length) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  if (source && (args.string("manifest") || args.flag("no-build"))) throw new UsageError("--manifest and --no-build are for deploys from thaw.toml, without FILE");
  if (args.string("registry-auth") && !source?.startsWith("oci://")) throw new UsageError("--registry-auth is for oci:// references");
  const flagName = args.string("name");
  if (flagName !== undefined) checkName(flagName);
  const server = new Server(args.string("url"));
  const { name, request } = source ? fromSource(source, flagName, args) : await fromManifest(flagName, args);

  const started = performance.now();
  const put = await server.ok(`/v1/functions/${name}`, { method: "PUT", ...request });
  let fn = (await put.json()) as FunctionView;
  if (args.flag("no-wait")) {
    console.log(describe(fn));
    return 0;
  }
  const progress = new Progress(name, started);
  while (fn.status === "compiling") {
    progress.show(fn);
    await Bun.sleep(250);
    const latest = await server.json<FunctionView>(`/v1/functions/${name}`);
    // A newer deploy of the same name took over; report on ours no further.
    if (latest.version > fn.version) {
      progress.done();
      throw new CliError(`${name}: version ${latest.version} was deployed while v${fn.version} compiled`);
    }
    fn = latest;
  }
  progress.done();
  if (fn.status === "failed") {
    const e = fn.error ?? { code: "failed", message: "deploy failed" };
    throw new CliError(`${e.code}: ${e.message.replace(/\s*\n\s*/g, " ")}`);
  }
  console.log(describe(fn));
  return 0;
}

/** The request for FILE.wasm or oci://REF: the name and config come from flags. */
function fromSource(source: string, name: string | undefined, args: Parsed): { name: string; request: RequestInit } {
  if (!name) throw new UsageError(`deploying ${source.startsWith("oci://") ? "oci://..." : "a FILE"} needs --name NAME`);
  if (!source.startsWith("oci://")) return { name, request: moduleRequest(readFileSync(source), source, flagConfig(args)) };
  const oci = source.slice("oci://".length);
  if (!oci) throw new UsageError("oci:// needs HOST/REPO:TAG");
  const auth = args.string("registry-auth");
  return { name, request: jsonRequest({ oci, ...(auth ? { auth } : {}), config: flagConfig(args) }) };
}

/** The request for thaw.toml's module, after its build; flags override its keys. */
async function fromManifest(flagName: string | undefined, args: Parsed): Promise<{ name: string; request: RequestInit }> {
  const manifest = readManifest(args.string("manifest") ?? "thaw.toml");
  const flags = flagConfig(args);
  const config: Config = { ...manifest.config, ...flags, env: { ...manifest.config.env, ...flags.env } };
  if (!args.flag("no-build")) await runBuild(manifest);
  const module = checkModule(manifest);
  return { name: flagName ?? manifest.name, request: moduleRequest(readFileSync(module), module, config) };
}

/** Config from flags; only the flags given, so they override a manifest key by key. */
function flagConfig(args: Parsed): Config {
  const config: Config = {};
  const memory = positiveInt("memory", args.string("memory"));
  const timeout = positiveInt("timeout", args.string("timeout"));
  const concurrency = positiveInt("max-concurrency", args.string("max-concurrency"));
  if (memory) config.memoryMiB = memory;
  if (timeout) config.timeoutMs = timeout;
  if (concurrency) config.maxConcurrency = concurrency;
  const contentType = args.string("content-type");
  if (contentType) config.contentType = contentType;
  const env = args.list("env");
  if (env.length) config.env = parseEnv(env);
  return config;
}

function moduleRequest(bytes: Uint8Array, filename: string, config: Config): RequestInit {
  const form = new FormData();
  form.set("module", new Blob([bytes], { type: "application/wasm" }), filename.split("/").pop());
  form.set("config", JSON.stringify(config));
  return { body: form };
}

const jsonRequest = (body: unknown): RequestInit => ({ body: JSON.stringify(body), headers: { "content-type": "application/json" } });

function describe(fn: FunctionView): string {
  const code = fn.sizes.codeBytes === undefined ? "" : `, ${fn.sizes.codeBytes} B native code`;
  const tier = fn.tier ? ` ${fn.tier}` : "";
  return `${fn.name} ${fn.status} v${fn.version}${tier} (${fn.sizes.moduleBytes} B module${code})`;
}

/** Build stages on stderr: a rewritten line on a terminal, else one line per new stage. */
class Progress {
  private last = "";
  private readonly tty = isatty(2);

  constructor(
    private readonly name: string,
    private readonly started: number,
  ) {}

  show(fn: FunctionView): void {
    const b = fn.build;
    const stage = b ? `${b.tier ? `${b.tier} build: ` : ""}${b.stage}` : fn.status;
    const elapsed = ((b?.elapsedMs ?? performance.now() - this.started) / 1000).toFixed(1);
    if (this.tty) process.stderr.write(`\r\x1b[Kthaw: ${this.name} v${fn.version}: ${stage} (${elapsed}s)`);
    else if (stage !== this.last) process.stderr.write(`thaw: ${this.name} v${fn.version}: ${stage} (${elapsed}s)\n`);
    this.last = stage;
  }

  done(): void {
    if (this.tty && this.last) process.stderr.write("\r\x1b[K");
  }
}
