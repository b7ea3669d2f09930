// thaw.toml: what `thaw deploy` with no FILE deploys (format in
// /tmp/thaw/CONTRACTS.md and README):
//
//   name = "hello"                 module = "build/hello.wasm"
//   build = "sh build.sh"          memory_mib / timeout_ms / max_concurrency
//   content_type = "text/plain"    [env] K = "V"
//
// Checked strictly, naming the key at fault: an unknown key is a typo that
// would otherwise be silently ignored, and a wrong type would reach the
// server as a less helpful 400. The module must be a relative path that stays
// inside the manifest's directory (symlinks resolved), so a manifest copied
// from elsewhere cannot make `thaw deploy` upload an arbitrary file.

import { existsSync, readFileSync, realpathSync, statSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";
import { CliError, NAME_PATTERN, NAME_RULE } from "./common.ts";

export interface Manifest {
  /** Absolute path of the manifest file. */
  path: string;
  dir: string;
  name: string;
  /** Absolute path of the module (it may not exist until build has run). */
  module: string;
  build?: string;
  config: {
    memoryMiB?: number;
    timeoutMs?: number;
    maxConcurrency?: number;
    contentType?: string;
    env?: Record<string, string>;
  };
}

const INTEGER_KEYS = { memory_mib: "memoryMiB", timeout_ms: "timeoutMs", max_concurrency: "maxConcurrency" } as const;
const KEYS = new Set(["name", "module", "build", "content_type", "env", ...Object.keys(INTEGER_KEYS)]);

const fail = (path: string, message: string) => new CliError(`${path}: ${message}`, 2);

export function readManifest(path: string): Manifest {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new CliError(`no FILE given and no ${path} here (write one, or run \`thaw new\`)`, 2);
    throw fail(file, `cannot read: ${code ?? e}`);
  }
  let doc: Record<string, unknown>;
  try {
    doc = Bun.TOML.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw fail(file, `not valid TOML: ${oneLine((e as Error).message)}`);
  }
  return checkManifest(doc, file);
}

/** Validates a parsed manifest; errors name the key. */
function checkManifest(doc: Record<string, unknown>, file: string): Manifest {
  for (const key of Object.keys(doc)) if (!KEYS.has(key)) throw fail(file, `unknown key "${key}" (known: ${[...KEYS].join(", ")})`);
  const str = (key: string, required: boolean): string | undefined => {
    const v = doc[key];
    if (v === undefined) {
      if (required) throw fail(file, `"${key}" is required`);
      return undefined;
    }
    if (typeof v !== "string" || v === "") throw fail(file, `"${key}" must be a non-empty string`);
    return v;
  };
  const name = str("name", true)!;
  if (!NAME_PATTERN.test(name)) throw fail(file, `"name" ${JSON.stringify(name)} is not a function name: ${NAME_RULE}`);
  const dir = dirname(file);
  const config: Manifest["config"] = {};
  for (const [key, field] of Object.entries(INTEGER_KEYS)) {
    const v = doc[key];
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) throw fail(file, `"${key}" must be a positive integer`);
    config[field] = v;
  }
  const contentType = str("content_type", false);
  if (contentType !== undefined) config.contentType = contentType;
  if (doc.env !== undefined) config.env = checkEnv(doc.env, file);
  return { path: file, dir, name, module: modulePath(str("module", true)!, dir, file), build: str("build", false), config };
}

function checkEnv(env: unknown, file: string): Record<string, string> {
  if (typeof env !== "object" || env === null || Array.isArray(env)) throw fail(file, `"env" must be a table of strings`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (typeof v !== "string") throw fail(file, `"env.${k}" must be a string`);
    if (k === "" || k.includes("=")) throw fail(file, `"env.${k}" is not a variable name`);
    out[k] = v;
  }
  return out;
}

const inside = (dir: string, path: string) => {
  const rel = relative(dir, path);
  return rel !== "" && rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
};

/** The module's absolute path; a path leaving the manifest's directory is refused. */
function modulePath(module: string, dir: string, file: string): string {
  if (isAbsolute(module) || module.includes("\0")) throw fail(file, `"module" must be a path relative to the manifest's directory`);
  const path = resolve(dir, module);
  if (!inside(dir, path)) throw fail(file, `"module" ${JSON.stringify(module)} leaves the manifest's directory`);
  return path;
}

/** After build: the module exists, is a file, and (symlinks resolved) is still inside the directory. */
export function checkModule(m: Manifest): string {
  if (!existsSync(m.module)) throw new CliError(`${m.path}: module ${relative(m.dir, m.module)} not found${m.build ? " (did the build write it?)" : ""}`);
  const real = realpathSync(m.module);
  if (!inside(realpathSync(m.dir), real)) throw fail(m.path, `"module" resolves outside the manifest's directory (${real})`);
  if (!statSync(real).isFile()) throw fail(m.path, `"module" ${relative(m.dir, m.module)} is not a file`);
  return real;
}

/** Runs the manifest's build command in its directory; its output goes to stderr. */
export async function runBuild(m: Manifest): Promise<void> {
  if (!m.build) return;
  process.stderr.write(`thaw: build: ${m.build}\n`);
  const proc = Bun.spawn(["sh", "-c", m.build], { cwd: m.dir, stdin: "ignore", stdout: 2, stderr: "inherit" });
  const code = await proc.exited;
  if (code !== 0) throw new CliError(`build failed (exit ${code}): ${m.build}`);
}

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, " ").trim();
