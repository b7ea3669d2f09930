// wasm -> native artifact: check limits and imports, sanitize the names
// away (sanitize.ts), validate, wasm2c, generate the glue, build a shared
// object, check its stack frames, make the snapshot.
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
import { CFLAGS, VALIDATE_FLAGS, WASM2C_FLAGS } from "./flags.ts";
import { checkHeader, describeCFunction, generateGlue, GlueError, layoutOf, MODULE_NAME } from "./glue.ts";
import { frameViolations, ModuleLimitError, parseStackUsage } from "./limits.ts";
import { SANITIZER_VERSION, sanitize } from "./sanitize.ts";
import { COMPILER_LIMITS, compilerBox, runBoxed } from "./sandbox.ts";
import { ToolchainError, toolchain } from "./toolchain.ts";
import { unsupportedImports } from "./wasi.ts";
import { formatSignature, functionType, type ModuleInfo, readModule, WasmFormatError } from "./wasm-module.ts";

const INIT_LIMITS = { ...DEFAULT_LIMITS, memoryMiB: 4096, timeoutMs: 30_000 };
/** Wall clock for a whole compile (`--compile-timeout` in the server). */
export const DEFAULT_COMPILE_TIMEOUT_MS = 120_000;

// Debian's wasm2c 1.0.32 aborts on SIMD: v128 types are refused by inspect(),
// SIMD instructions (prefix 0xfd) by wasm-validate --disable-simd.
const SIMD_OPCODE = /unexpected opcode: 0xfd/;
const SIMD_MESSAGE = "WebAssembly SIMD (v128) is not supported yet; build without -msimd128 / +simd128";

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
    readonly details: { imports?: { import: string; reason: string }[]; log?: string } = {},
  ) {
    super(message);
  }
}

export interface ArtifactMeta {
  key: string;
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

export type Progress = (step: string) => void;

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
  const v128 =
    info.v128Locals || info.globals.includes("v128") || info.types.some((t) => [...t.params, ...t.results].includes("v128"));
  if (v128) unsupported(SIMD_MESSAGE);
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
  },
): Promise<Artifact> {
  const progress = opts.progress ?? (() => {});
  const info = inspect(bytes);
  // wasm-validate, wasm2c and the C compiler only ever see the sanitized
  // module, and the key is its hash: what was built is what was validated.
  const sanitized = sanitize(bytes, info);
  const tools = await toolchain().catch((e: Error) => {
    throw e instanceof ToolchainError ? new CompileError("toolchain_missing", e.message) : e;
  });
  const toolVersions = { wasm2c: tools.wasm2c.version, cc: tools.cc.version };
  const moduleHash = sha256(bytes);
  const key = sha256(
    [
      sha256(sanitized),
      `sanitizer ${SANITIZER_VERSION}`,
      toolVersions.wasm2c,
      toolVersions.cc,
      CFLAGS.join(" "),
      VALIDATE_FLAGS.join(" "),
      WASM2C_FLAGS.join(" "),
      sha256(wasmRtH + thawModuleH),
    ].join("\n"),
  ).slice(0, 32);
  const paths = artifactPaths(opts.dataDir, key);
  if (existsSync(paths.metaPath)) {
    const meta = JSON.parse(readFileSync(paths.metaPath, "utf8")) as ArtifactMeta;
    return { ...paths, meta, cached: true };
  }

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

    progress("translating to C (wasm2c)");
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

    progress("compiling native code");
    const built = await run([tools.cc.path, ...CFLAGS, "-I.", "-o", "fn.so", "fn.c", "glue.c"], tmp, deadline);
    logs.push(built.log);
    if (!built.ok) fail("compiler_failed", "C compiler failed");
    checkFrames(tmp, info, fail);

    progress("initializing and snapshotting");
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
    for (const f of ["fn.c", "fn.h", "glue.c", "wasm-rt.h", "thaw_module.h"]) rmSync(join(tmp, f), { force: true });
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
