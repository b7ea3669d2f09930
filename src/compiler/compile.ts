// wasm -> native artifact: check limits and imports, sanitize the names
// away (sanitize.ts), validate, wasm2c, generate the glue, build a shared
// object, check its stack frames, make the snapshot.
//
// Two tiers: `fast` (clang -O0, FAST_CFLAGS) makes a deploy callable in
// about a second; `optimized` (CFLAGS) is what runs for good. The server
// builds the fast tier first and the optimized one in the background
// (service/functions.ts). Each tier's artifact is complete on its own, with
// its own snapshot from its own run of the module's initializer: artifacts
// stay self-contained and content-addressed, and the initializer being
// deterministic is something thaw already assumes of every snapshot. C
// source over a megabyte is built as several units in parallel (split.ts),
// `jobs` compiler processes at a time.
//
// Artifacts are content-addressed: the key hashes the sanitized module, the
// tool versions, the C flags and thaw's runtime headers, so a module is
// compiled once per node and a toolchain upgrade recompiles instead of
// loading stale code. A build happens in a private temporary directory that
// is renamed into place when complete; a crash never leaves a half-built
// artifact that looks valid, and two concurrent builds of one module both
// end with the same artifact.
//
// The tools run boxed (sandbox.ts: no network, own PID namespace, rlimits,
// cleared environment, a deadline shared by the whole compile). A build that
// fails leaves nothing on disk: its directory goes, and the build log
// travels in the error's details instead.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import thawModuleH from "../../native/include/thaw_module.h" with { type: "text" };
import wasmRtH from "../../native/include/wasm-rt.h" with { type: "text" };
import { DEFAULT_LIMITS, type Engine, SnapshotError } from "../engine/engine.ts";
import { newBuildDir, removeBuildDir } from "./builds.ts";
import { CFLAGS, FAST_CFLAGS, VALIDATE_FLAGS, WASM2C_FLAGS } from "./flags.ts";
import { checkHeader, describeCFunction, generateGlue, GlueError, layoutOf, MODULE_NAME } from "./glue.ts";
import { frameViolations, ModuleLimitError, parseStackUsage } from "./limits.ts";
import { SANITIZER_VERSION, sanitize } from "./sanitize.ts";
import { SimdError } from "./simd.ts";
import { COMPILER_LIMITS, compilerBox, runBoxed } from "./sandbox.ts";
import { SPLIT_VERSION, splitUnits, unitCount } from "./split.ts";
import { type Tool, ToolchainError, type Toolchain, toolchain } from "./toolchain.ts";
import { unsupportedImports } from "./wasi.ts";
import { formatSignature, functionType, type ModuleInfo, readModule, WasmFormatError } from "./wasm-module.ts";

const INIT_LIMITS = { ...DEFAULT_LIMITS, memoryMiB: 4096, timeoutMs: 30_000 };
/** Wall clock for a whole compile (`--compile-timeout` in the server). */
export const DEFAULT_COMPILE_TIMEOUT_MS = 120_000;

// Debian's wasm2c 1.0.32 aborts on SIMD, so sanitize() lowers it (simd.ts);
// what reaches the validator with SIMD left (a module that declares no v128
// and could not be lowered) is refused by name.
const SIMD_OPCODE = /unexpected opcode: 0xfd/;
const SIMD_MESSAGE = "this module's WebAssembly SIMD could not be lowered for translation; build without -msimd128 / +simd128";

export type CompileErrorCode =
  | "not_wasm"
  | "invalid_module"
  | "unsupported_imports"
  | "unsupported_module"
  | "toolchain_missing"
  | "compiler_failed"
  | "init_failed"
  | "module_limit"
  | "compile_timeout";

export class CompileError extends Error {
  constructor(
    readonly code: CompileErrorCode,
    message: string,
    readonly details: {
      imports?: { import: string; reason: string }[];
      log?: string;
      /** Set when the C compiler (or the frame check of its output) refused the build. */
      stage?: "compiling";
    } = {},
  ) {
    super(message);
  }
}

export type Tier = "fast" | "optimized";

/** `auto`: the optimized artifact if it is cached, else the fast one (`thaw run`). */
export type TierChoice = Tier | "auto";

export function parseTier(value: string): TierChoice {
  if (value === "fast" || value === "optimized" || value === "auto") return value;
  throw new Error(`tier must be fast, optimized or auto, not ${JSON.stringify(value.slice(0, 32))}`);
}

/**
 * The server's compile child (subprocess.ts) gets its tier, parallelism and
 * progress file in these variables; they are compile()'s defaults when its
 * caller does not say.
 */
export const COMPILE_ENV = { tier: "THAW_COMPILE_TIER", jobs: "THAW_COMPILE_JOBS", progress: "THAW_COMPILE_PROGRESS" } as const;

function fromEnvironment(): { tier?: TierChoice; jobs?: number; progress?: Progress } {
  const env = process.env;
  const tier = env[COMPILE_ENV.tier];
  const jobs = Number(env[COMPILE_ENV.jobs]);
  const file = env[COMPILE_ENV.progress];
  return {
    tier: tier ? parseTier(tier) : undefined,
    jobs: Number.isInteger(jobs) && jobs > 0 ? jobs : undefined,
    progress: file
      ? (stage) => {
          try {
            writeFileSync(file, stage);
          } catch {
            // Progress is a courtesy: a build never fails for it.
          }
        }
      : undefined,
  };
}

export interface ArtifactMeta {
  key: string;
  /** Absent in artifacts built before tiers: those were optimized. */
  tier?: Tier;
  /** C units compiled (1 unless the C source was split). */
  units?: number;
  moduleHash: string;
  moduleBytes: number;
  codeBytes: number;
  snapshotBytes: number;
  objectBytes: number;
  hasInitialize: boolean;
  compileMs: number;
  toolchain: Record<string, string>;
  createdAt: string;
}

export interface Artifact {
  dir: string;
  soPath: string;
  snapshotPath: string;
  meta: ArtifactMeta;
  cached: boolean;
}

/** The build's stages, in order: what `progress` is called with. */
export const STAGES = ["validating", "translating", "compiling", "snapshotting"] as const;
export type Stage = (typeof STAGES)[number];
export type Progress = (stage: Stage) => void;

const sha256 = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");

/**
 * Runs one tool boxed, with what is left of the compile's deadline. A tool
 * stopped by a limit or the deadline is a CompileError saying which; a tool
 * that merely failed is the caller's to explain.
 */
async function run(cmd: string[], cwd: string, deadline: number): Promise<{ ok: boolean; log: string }> {
  const r = await runBoxed(cmd, compilerBox(cwd, deadline - Date.now())).catch((e: Error) => {
    throw e instanceof ToolchainError ? new CompileError("toolchain_missing", e.message) : e;
  });
  const log = `$ ${cmd.join(" ")}\n${r.stdout}${r.stderr}`;
  const name = basename(cmd[0]!);
  const tool = name === "wasm2c" || name === "wasm-validate" ? name : "the C compiler";
  const output = r.stdout + r.stderr;
  // cc reports what stopped cc1 or as on stderr (LANG=C keeps it in English).
  const stopped = (signal: string, text: string) => r.signal === signal || output.includes(text);
  if (r.timedOut) throw new CompileError("compile_timeout", `${tool} ran past the compile timeout`, { log });
  if (stopped("SIGXCPU", "CPU time limit exceeded"))
    throw new CompileError("compile_timeout", `${tool} exceeded its CPU time limit`, { log });
  if (stopped("SIGXFSZ", "File size limit exceeded") || /File too large/.test(output))
    throw new CompileError("module_limit", `${tool} exceeded its output size limit of ${COMPILER_LIMITS.fileSizeBytes >> 20} MiB`, { log });
  if (r.exitCode !== 0 && /out of memory|memory exhausted|bad_alloc|Cannot allocate memory/.test(output))
    throw new CompileError("module_limit", `${tool} exceeded its memory limit of ${COMPILER_LIMITS.addressSpaceBytes / 2 ** 30} GiB`, { log });
  const killed = r.signal ?? /(\w[\w ]*) signal terminated program/.exec(output)?.[1];
  if (killed) throw new CompileError("compiler_failed", `${tool} was killed (${killed})`, { log });
  return { ok: r.exitCode === 0, log };
}

export function artifactPaths(dataDir: string, key: string) {
  const dir = join(dataDir, "artifacts", key);
  return { dir, soPath: join(dir, "fn.so"), snapshotPath: join(dir, "fn.snap"), metaPath: join(dir, "artifact.json") };
}

/** Checks that need no tools: is it wasm, within MODULE_LIMITS, and can thaw link and run it? */
export function inspect(bytes: Uint8Array): ModuleInfo {
  let info: ModuleInfo;
  try {
    info = readModule(bytes);
  } catch (e) {
    if (e instanceof ModuleLimitError) throw new CompileError("module_limit", e.message);
    if (!(e instanceof WasmFormatError)) throw e;
    const code = bytes.length >= 4 && bytes[0] === 0 && bytes[1] === 0x61 ? "invalid_module" : "not_wasm";
    throw new CompileError(code, e.message);
  }
  const unsupported = (message: string): never => {
    throw new CompileError("unsupported_module", message);
  };
  // libthaw gives each instance its own memory, tables and globals; it links nothing else.
  const owned = info.imports.find((i) => i.kind !== "func");
  if (owned)
    unsupported(`module imports a ${owned.kind} (${owned.module}.${owned.name}); a function must define its own memory, tables and globals`);
  const bad = unsupportedImports(info.imports);
  if (bad.length)
    throw new CompileError(
      "unsupported_imports",
      `module imports what thaw does not provide: ${bad.map((b) => `${b.import} (${b.reason})`).join(", ")}`,
      { imports: bad },
    );
  if (info.memoryCount !== 1)
    unsupported(`a function must define exactly one linear memory, this module defines ${info.memoryCount}`);
  if (info.memory!.memory64) unsupported("64-bit memories (memory64) are not supported");
  if (info.memory!.shared) unsupported("shared memories (threads) are not supported");
  // libthaw relocates the function references in tables when it restores a
  // snapshot, not those in globals: one set before the snapshot would call
  // into the instance that made the snapshot.
  const funcrefGlobal = info.globals.indexOf("funcref");
  if (funcrefGlobal >= 0)
    unsupported(`global ${funcrefGlobal} holds a funcref; thaw cannot restore function references in globals from a snapshot`);
  if (info.importInTable)
    unsupported(
      `element segment ${info.importInTable.segment} puts imported function ${info.importInTable.func} (a WASI import) in a table; call it through a function of the module instead`,
    );
  if (!info.exports.some((e) => e.name === "_start" && e.kind === "func"))
    unsupported("module does not export _start (a WASI command is expected)");
  // libthaw calls the entry points as void f(instance).
  for (const e of info.exports) {
    if (e.kind !== "func" || (e.name !== "_start" && e.name !== "wizer.initialize")) continue;
    const type = functionType(info, e.index)!;
    if (type.params.length || type.results.length)
      unsupported(`${e.name} must take no parameters and return nothing; it is ${formatSignature(type)}`);
  }
  return info;
}

/**
 * Refuses the build if any compiled function's frame is over
 * THAW_MAX_FRAME_BYTES or of unbounded size, from the C compiler's
 * -fstack-usage reports (gcc writes fn.so-fn.su, clang fn.su), which it
 * then removes. No report at all is a failure: frames are measured, never
 * assumed.
 */
function checkFrames(dir: string, info: ModuleInfo, fail: (code: CompileErrorCode, message: string) => never): void {
  const reports = readdirSync(dir).filter((f) => f.endsWith(".su"));
  if (!reports.length) fail("compiler_failed", "the C compiler wrote no -fstack-usage report");
  let violations: string[] = [];
  try {
    const frames = reports.flatMap((f) => parseStackUsage(readFileSync(join(dir, f), "utf8")));
    violations = frameViolations(frames, (c) => describeCFunction(c, info));
  } catch (e) {
    fail("compiler_failed", (e as Error).message);
  }
  for (const f of reports) rmSync(join(dir, f));
  if (violations.length)
    fail("module_limit", violations.slice(0, 3).join("; ") + (violations.length > 3 ? ` (and ${violations.length - 3} more)` : ""));
}

/** The C compiler and flags of a tier. */
function tierTools(tools: Toolchain, tier: Tier): { cc: Tool; flags: readonly string[] } {
  return tier === "fast" ? { cc: tools.fastCc, flags: FAST_CFLAGS } : { cc: tools.cc, flags: CFLAGS };
}

/** An artifact's key: everything its files depend on. */
function keyOf(sanitizedHash: string, tools: Toolchain, tier: Tier): string {
  const { cc, flags } = tierTools(tools, tier);
  return sha256(
    [
      sanitizedHash,
      `sanitizer ${SANITIZER_VERSION}`,
      tools.wasm2c.version,
      cc.version,
      flags.join(" "),
      VALIDATE_FLAGS.join(" "),
      WASM2C_FLAGS.join(" "),
      sha256(wasmRtH + thawModuleH),
      `tier ${tier}`,
      `split ${SPLIT_VERSION}`,
    ].join("\n"),
  ).slice(0, 32);
}

function cached(dataDir: string, key: string): Artifact | undefined {
  const paths = artifactPaths(dataDir, key);
  if (!existsSync(paths.metaPath)) return undefined;
  const meta = JSON.parse(readFileSync(paths.metaPath, "utf8")) as ArtifactMeta;
  return { ...paths, meta, cached: true };
}

/** sanitize(), with a module whose SIMD thaw cannot lower (simd.ts) refused by name. */
function sanitizeModule(bytes: Uint8Array, info: ModuleInfo): Uint8Array {
  try {
    return sanitize(bytes, info);
  } catch (e) {
    if (e instanceof SimdError) throw new CompileError(e.code, e.message);
    throw e;
  }
}

/** The key the module's artifact of `tier` has, and whether it is on disk; no tool runs. */
export async function findArtifact(bytes: Uint8Array, dataDir: string, tier: Tier): Promise<{ key: string; artifact?: Artifact }> {
  const info = inspect(bytes);
  const tools = await toolchain().catch((e: Error) => {
    throw e instanceof ToolchainError ? new CompileError("toolchain_missing", e.message) : e;
  });
  const key = keyOf(sha256(sanitizeModule(bytes, info)), tools, tier);
  return { key, artifact: cached(dataDir, key) };
}

/**
 * fn.c and glue.c -> fn.so: in one compiler call, or, for C source over a
 * unit's size, as split.ts's units compiled `jobs` at a time and linked.
 * Returns the number of units.
 */
async function buildObject(
  cc: string,
  flags: readonly string[],
  dir: string,
  deadline: number,
  jobs: number,
  logs: string[],
  fail: (code: CompileErrorCode, message: string) => never,
): Promise<number> {
  const source = readFileSync(join(dir, "fn.c"), "utf8");
  const units = splitUnits(source, unitCount(source.length));
  const check = (r: { ok: boolean; log: string }) => {
    logs.push(r.log);
    if (!r.ok) fail("compiler_failed", "C compiler failed");
  };
  if (!units) {
    check(await run([cc, ...flags, "-I.", "-o", "fn.so", "fn.c", "glue.c"], dir, deadline));
    return 1;
  }
  const sources = ["glue.c"];
  units.forEach((text, i) => {
    writeFileSync(join(dir, `unit${i}.c`), text);
    sources.push(`unit${i}.c`);
  });
  const objectFlags = flags.filter((f) => f !== "-shared");
  const queue = [...sources];
  const worker = async () => {
    for (let src = queue.shift(); src; src = queue.shift())
      check(await run([cc, ...objectFlags, "-I.", "-c", "-o", src.replace(/\.c$/, ".o"), src], dir, deadline));
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, sources.length)) }, worker));
  check(await run([cc, ...flags, "-o", "fn.so", ...sources.map((f) => f.replace(/\.c$/, ".o"))], dir, deadline));
  return units.length;
}

export async function compile(
  bytes: Uint8Array,
  opts: {
    dataDir: string;
    engine: Engine;
    progress?: Progress;
    /** Wall clock for the tools, from the start of the compile. */
    timeoutMs?: number;
    /** Where to build (the server names it, so it can remove it if it has to kill this compile). */
    buildDir?: string;
    /** Default `optimized`. */
    tier?: TierChoice;
    /** C compiler processes run at once for a split module (default 1). */
    jobs?: number;
  },
): Promise<Artifact> {
  const env = fromEnvironment();
  const progress = opts.progress ?? env.progress ?? (() => {});
  const info = inspect(bytes);
  // wasm-validate, wasm2c and the C compiler only ever see the sanitized
  // module, and the key is its hash: what was built is what was validated.
  const sanitized = sanitizeModule(bytes, info);
  const tools = await toolchain().catch((e: Error) => {
    throw e instanceof ToolchainError ? new CompileError("toolchain_missing", e.message) : e;
  });
  const sanitizedHash = sha256(sanitized);
  const choice = opts.tier ?? env.tier ?? "optimized";
  if (choice === "auto") {
    const optimized = cached(opts.dataDir, keyOf(sanitizedHash, tools, "optimized"));
    if (optimized) return optimized;
  }
  const tier: Tier = choice === "auto" ? "fast" : choice;
  const { cc, flags } = tierTools(tools, tier);
  const toolVersions = { wasm2c: tools.wasm2c.version, cc: cc.version };
  const moduleHash = sha256(bytes);
  const key = keyOf(sanitizedHash, tools, tier);
  const found = cached(opts.dataDir, key);
  if (found) return found;
  const paths = artifactPaths(opts.dataDir, key);

  const started = performance.now();
  const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_COMPILE_TIMEOUT_MS);
  const tmp = opts.buildDir ?? newBuildDir(opts.dataDir);
  mkdirSync(tmp, { recursive: true });
  const logs: string[] = [];
  const fail = (code: CompileErrorCode, message: string): never => {
    throw new CompileError(code, message, { log: logs.join("\n").slice(-4000) });
  };
  try {
    writeFileSync(join(tmp, "module.wasm"), sanitized);
    writeFileSync(join(tmp, "wasm-rt.h"), wasmRtH);
    writeFileSync(join(tmp, "thaw_module.h"), thawModuleH);

    progress("validating");
    const validated = await run([tools.wasmValidate.path, ...VALIDATE_FLAGS, "module.wasm"], tmp, deadline);
    logs.push(validated.log);
    if (!validated.ok && SIMD_OPCODE.test(validated.log)) fail("unsupported_module", SIMD_MESSAGE);
    if (!validated.ok) fail("invalid_module", `invalid module: ${validated.log.split("\n").slice(1).join(" ").trim()}`);

    progress("translating");
    const translated = await run([tools.wasm2c.path, ...WASM2C_FLAGS, "-n", MODULE_NAME, "module.wasm", "-o", "fn.c"], tmp, deadline);
    logs.push(translated.log);
    if (!translated.ok) fail("compiler_failed", "wasm2c failed");

    const layout = layoutOf(info);
    try {
      checkHeader(readFileSync(join(tmp, "fn.h"), "utf8"), layout);
    } catch (e) {
      if (e instanceof GlueError) fail("compiler_failed", e.message);
      throw e;
    }
    writeFileSync(join(tmp, "glue.c"), generateGlue(layout, "fn.h"));

    progress("compiling");
    let units: number;
    try {
      units = await buildObject(cc.path, flags, tmp, deadline, opts.jobs ?? env.jobs ?? 1, logs, fail);
      checkFrames(tmp, info, fail);
    } catch (e) {
      // The server may try the other tier's compiler and flags after these.
      if (e instanceof CompileError) throw new CompileError(e.code, e.message, { ...e.details, stage: "compiling" });
      throw e;
    }

    progress("snapshotting");
    try {
      opts.engine.createSnapshot(join(tmp, "fn.so"), join(tmp, "fn.snap"), INIT_LIMITS);
    } catch (e) {
      if (e instanceof SnapshotError) {
        logs.push(`initialization: ${e.message}`);
        fail("init_failed", e.message);
      }
      throw e;
    }

    const loaded = opts.engine.load(join(tmp, "fn.so"), join(tmp, "fn.snap"), INIT_LIMITS);
    const stats = loaded.stats();
    loaded.release();
    const meta: ArtifactMeta = {
      key,
      tier,
      units,
      moduleHash,
      moduleBytes: bytes.length,
      codeBytes: stats.codeBytes,
      snapshotBytes: stats.snapshotBytes,
      objectBytes: statSync(join(tmp, "fn.so")).size,
      hasInitialize: stats.hasInitialize,
      compileMs: Math.round(performance.now() - started),
      toolchain: toolVersions,
      createdAt: new Date().toISOString(),
    };
    for (const f of readdirSync(tmp)) if (/\.[cho]$/.test(f)) rmSync(join(tmp, f), { force: true });
    writeFileSync(join(tmp, "build.log"), logs.join("\n"));
    writeFileSync(join(tmp, "artifact.json"), JSON.stringify(meta, null, 2));
    try {
      renameSync(tmp, paths.dir);
    } catch {
      removeBuildDir(tmp);
      if (!existsSync(paths.metaPath)) throw new Error(`cannot store artifact in ${paths.dir}`);
    }
    return { ...paths, meta, cached: false };
  } catch (e) {
    removeBuildDir(tmp);
    throw e;
  }
}
