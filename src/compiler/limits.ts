// How big a module thaw agrees to compile.
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
