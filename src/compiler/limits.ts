// How big a module thaw agrees to compile, and how big a native stack frame
// its compiled code may have.
//
// wasm-validate accepts anything the spec allows, and the spec allows
// modules that are cheap to send and ruinous to build: 2^32 declared types,
// a function with millions of locals, a 4 GiB initial memory. wasm2c and the
// C compiler then spend minutes and gigabytes on them, or the runtime does.
// So the compiler refuses such a module before running any tool, with the
// limit and the module's value in the message (CompileError `module_limit`).
// The values are far above what real functions need (the examples are
// under 50 KiB with a few hundred functions and a few dozen types) and bound
// the work each part of a module causes. They do not bound compile time on
// their own: a 300 KB function of straight-line loads keeps cc busy for
// minutes, and the compile timeout and the sandbox's limits stop that.
//
// Frames are different: no count in the module predicts the frame the C
// compiler gives a function, so they are measured after the build
// (-fstack-usage) and the artifact is refused if any frame is too big.

export const MODULE_LIMITS = {
  /** 16 MiB: wasm2c writes ~20x as much C, all of which cc then compiles. */
  moduleBytes: 16 * 2 ** 20,
  /** wasm2c registers every type with the runtime when the module is loaded. */
  types: 10_000,
  /** Per type. Each becomes a C parameter; past ~1,000 nothing real exists and cc slows down. */
  paramsPerType: 1_000,
  /** Per type. Multiple results become a C struct wasm2c defines per result list. */
  resultsPerType: 1_000,
  /** Imported and defined: one C function each, and cc's time grows with their number. */
  functions: 50_000,
  /** One function body: cc's optimizer is superlinear in function size. */
  functionBodyBytes: 2 ** 20,
  /** Declared locals per function (parameters are bounded per type): each is a C variable. */
  localsPerFunction: 10_000,
  /** Each is a field of the instance struct, copied on every snapshot restore. */
  globals: 10_000,
  /** Funcref and externref tables together; libthaw's descriptor holds 8 of each (THAW_MAX_TABLES). */
  tables: 8,
  /** Per table: allocated for every instance at instantiation. */
  tableInitialElements: 100_000,
  /** 1 GiB: the initial memory is in the snapshot every instance starts from; more can be grown within the function's memory limit. */
  memoryInitialPages: 16_384,
  /** Each is a C array and an initializer call. */
  dataSegments: 100_000,
  /** Each is a C array and an initializer call. */
  elementSegments: 100_000,
  /** Every export is read and checked, though only function exports survive sanitizing. */
  exports: 100_000,
} as const;

export type ModuleLimit = keyof typeof MODULE_LIMITS;

/**
 * The largest native stack frame one compiled function may have. libthaw's
 * stack check runs in a function's prologue, after the frame is allocated,
 * so the guard below the checked stack limit must hold one whole frame.
 * Must equal THAW_MAX_FRAME_BYTES in native/include/thaw_module.h (a test
 * compares them).
 */
export const THAW_MAX_FRAME_BYTES = 256 * 1024;

/** A module over one of MODULE_LIMITS; the message names the limit and the value. */
export class ModuleLimitError extends Error {
  constructor(
    readonly limit: ModuleLimit,
    message: string,
  ) {
    super(message);
  }
}

/** Throws unless `value` is within `limit`; `what` says what was counted, e.g. "module has N types". */
export function checkLimit(limit: ModuleLimit, value: number, what: (n: number) => string): void {
  const max = MODULE_LIMITS[limit];
  if (value > max) throw new ModuleLimitError(limit, `${what(value)}; the limit is ${max}`);
}

export interface StackFrame {
  /** The C function, without gcc's clone suffixes (.isra.0, .part.0, ...). */
  function: string;
  bytes: number;
  /** "static", "dynamic" (alloca/VLA of unknown size) or "dynamic,bounded". */
  kind: string;
}

/**
 * Parses the .su files of gcc and clang -fstack-usage:
 * `file:line[:col]:function<TAB>bytes<TAB>static|dynamic|dynamic,bounded`.
 * A line that does not parse is an error: an unreadable measurement must
 * not pass as a small frame.
 */
export function parseStackUsage(text: string): StackFrame[] {
  const frames: StackFrame[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const m = /^.*:([A-Za-z_][\w.]*)\t(\d+)\t(static|dynamic|dynamic,bounded)$/.exec(line);
    if (!m) throw new Error(`unreadable -fstack-usage line: ${JSON.stringify(line)}`);
    frames.push({ function: m[1]!.split(".")[0]!, bytes: Number(m[2]), kind: m[3]! });
  }
  return frames;
}

/**
 * The frames over THAW_MAX_FRAME_BYTES or of unbounded size, each described
 * by `describe(cFunction)` (which names the wasm function where it can).
 */
export function frameViolations(
  frames: StackFrame[],
  describe: (cFunction: string) => string,
  maxBytes: number = THAW_MAX_FRAME_BYTES,
): string[] {
  const bad: string[] = [];
  for (const f of frames) {
    if (f.kind === "dynamic") bad.push(`${describe(f.function)} has a native stack frame of unbounded size`);
    else if (f.bytes > maxBytes)
      bad.push(`${describe(f.function)} needs a ${f.bytes}-byte native stack frame; the limit is ${maxBytes} bytes`);
  }
  return bad;
}
