// What one run of a module ended in, on either engine, and when two runs
// agree. Every equivalence the fuzzer allows between thaw and the reference
// is written down here and nowhere else:
//
//   1. Traps compare by class, not by message. thaw's kinds (TRAP_KINDS in
//      src/engine/engine.ts) and JavaScriptCore's RuntimeError messages map
//      onto the classes below; JSC says "Out of bounds Trunc operation" both
//      for a NaN and for an out-of-range float-to-int conversion and
//      "Integer overflow" for INT_MIN / -1, where wasm2c says
//      invalid_conversion (NaN) or integer_overflow (both others), so those
//      four are one class, `integer_overflow`. An indirect call through a
//      null entry, past the table or with the wrong signature is one class
//      for both. Memory and table accesses out of bounds are one class.
//   2. Stack exhaustion and timeouts are one class, `exhausted`: where the
//      stack or the time runs out is the engine's choice, not the module's,
//      so two exhausted runs agree when one's stdout is a prefix of the
//      other's (the deeper run printed more before it stopped).
//   3. A trap while instantiating (thaw: init_failed, JSC: the Instance
//      constructor throws) is the class `instantiation`, whatever the cause.
//   4. NaNs print as `nan` (scripts/fuzz/wrap.ts), sign and payload
//      dropped: the spec lets an arithmetic NaN have either sign and, unless
//      its inputs were canonical, any payload, and engines (and C compilers
//      folding constants) differ.
//   5. That freedom also reaches integers, through reinterpretation or
//      memory (a stored NaN, then hashed or loaded as an integer), where no
//      printer can tell. A mismatch is `nan_divergence`, reported but not a
//      failure, when (a) both runs ended alike (same exit code or trap
//      class), (b) the first line that differs does not print a NaN on one
//      side and a number on the other (a NaN where there should be none is
//      a bug, whatever its bits), and (c) both engines agree on the same
//      module with every NaN turned into 0 at run time (binaryen's --denan,
//      as its own fuzzer does before comparing VMs). Seen about once in
//      3000 modules: JSC, V8 and thaw printed three different memory hashes
//      for one, and all agreed once it was DeNaN'd. Modules keep their NaNs
//      all the same: DeNaN at the source would stop testing NaN checks
//      such as the trap on truncating one.
// Nothing else is equivalent: exit codes, every stdout byte and the trap
// class must match. stderr is not compared: the wrapped module never writes
// to it, and thaw's own messages go there.

export const TRAP_CLASSES = [
  "out_of_bounds",
  "divide_by_zero",
  "integer_overflow",
  "unreachable",
  "indirect_call",
  "exhausted",
  "instantiation",
  "memory_limit",
  "other",
] as const;
export type TrapClass = (typeof TRAP_CLASSES)[number];

/**
 * How thaw crashed: its process died (a signal, or an exit nobody asked
 * for), the compile's tools failed on a module wasm-validate accepted, or
 * thaw threw or complained where the module cannot have caused it.
 */
export type CrashCause = "died" | "compiler_failed" | "error";

/**
 * How a run ended. `refused`, `crash` and `hang` only come from thaw: a
 * reference that cannot run a module is an error of the harness.
 */
export type Outcome =
  | { kind: "exit"; code: number; stdout: string }
  | { kind: "trap"; trap: TrapClass; detail: string; stdout: string }
  | { kind: "refused"; code: string; detail: string }
  | { kind: "crash"; cause: CrashCause; detail: string; stdout: string }
  | { kind: "hang"; detail: string };

/** thaw's trap kinds (TRAP_KINDS) by class; "ok" is not a trap. */
const THAW_TRAPS: Record<string, TrapClass> = {
  out_of_bounds: "out_of_bounds",
  integer_overflow: "integer_overflow",
  invalid_conversion: "integer_overflow",
  divide_by_zero: "divide_by_zero",
  unreachable: "unreachable",
  indirect_call: "indirect_call",
  stack_exhaustion: "exhausted",
  timeout: "exhausted",
  memory_limit: "memory_limit",
};

export const thawTrapClass = (kind: string): TrapClass => THAW_TRAPS[kind] ?? "other";

/**
 * A CompileError (src/compiler/compile.ts) as an outcome. init_failed is
 * the module trapping while it is instantiated; compiler_failed is wasm2c
 * or the C compiler failing on a module wasm-validate accepted, which is
 * thaw's failure, not the module's, so it counts as a crash. The rest are
 * refusals with a reason.
 */
export function compileErrorOutcome(code: string, message: string): Outcome {
  if (code === "init_failed") return { kind: "trap", trap: "instantiation", detail: message, stdout: "" };
  if (code === "compiler_failed") return { kind: "crash", cause: "compiler_failed", detail: message, stdout: "" };
  if (code === "toolchain_missing") throw new Error(`thaw cannot compile here: ${message}`);
  return { kind: "refused", code, detail: message };
}

/** JavaScriptCore's wasm RuntimeError / RangeError messages (Bun 1.4) by class. */
const JSC_TRAPS: [RegExp, TrapClass][] = [
  [/^Out of bounds memory access/, "out_of_bounds"],
  [/^Out of bounds table access/, "out_of_bounds"],
  [/^Division by zero/, "divide_by_zero"],
  [/^Integer overflow/, "integer_overflow"],
  [/^Out of bounds Trunc operation/, "integer_overflow"],
  [/^Unreachable code should not be executed/, "unreachable"],
  [/^call_indirect to a null table entry/, "indirect_call"],
  [/^Out of bounds call_indirect/, "indirect_call"],
  [/^call_indirect to a signature that does not match/, "indirect_call"],
  [/^Maximum call stack size exceeded/, "exhausted"],
];

export function jscTrapClass(message: string): TrapClass {
  return JSC_TRAPS.find(([re]) => re.test(message))?.[1] ?? "other";
}

export type Verdict = "agreed" | "mismatch" | "nan_divergence" | "refused" | "crash" | "hang";

const stdoutOf = (o: Outcome) => ("stdout" in o ? o.stdout : "");

/** The verdict for thaw's outcome against the reference's. */
export function compare(thaw: Outcome, reference: Outcome): Verdict {
  if (thaw.kind === "refused" || thaw.kind === "crash" || thaw.kind === "hang") return thaw.kind;
  if (thaw.kind === "exit" && reference.kind === "exit")
    return thaw.code === reference.code && thaw.stdout === reference.stdout ? "agreed" : "mismatch";
  if (thaw.kind === "trap" && reference.kind === "trap" && thaw.trap === reference.trap) {
    if (thaw.trap !== "exhausted") return thaw.stdout === reference.stdout ? "agreed" : "mismatch";
    const [a, b] = [stdoutOf(thaw), stdoutOf(reference)];
    return a.startsWith(b) || b.startsWith(a) ? "agreed" : "mismatch";
  }
  return "mismatch";
}

/** Conditions (a) and (b) of equivalence 5: worth re-running DeNaN'd. */
export function nanMayExplain(thaw: Outcome, reference: Outcome): boolean {
  const sameEnd =
    (thaw.kind === "exit" && reference.kind === "exit" && thaw.code === reference.code) ||
    (thaw.kind === "trap" && reference.kind === "trap" && thaw.trap === reference.trap);
  if (!sameEnd) return false;
  const [a, b] = [stdoutOf(thaw).split("\n"), stdoutOf(reference).split("\n")];
  const i = a.findIndex((line, k) => line !== b[k]);
  const isNan = (line: string | undefined) => line?.endsWith(" nan") ?? false;
  return i >= 0 && isNan(a[i]) === isNan(b[i]);
}

/** One line for tables and logs: `exit 0`, `trap unreachable`, ... */
export function describe(o: Outcome): string {
  switch (o.kind) {
    case "exit":
      return `exit ${o.code}`;
    case "trap":
      return `trap ${o.trap}${o.trap === "other" ? ` (${o.detail})` : ""}`;
    case "refused":
      return `refused ${o.code}`;
    case "crash":
      return `crash, ${o.cause} (${o.detail})`;
    default:
      return `${o.kind} (${o.detail})`;
  }
}
