// Splitting wasm2c's one C file into several translation units, so the C
// compiler can build a large module on several cores at once (Debian's
// wasm2c 1.0.32 has no --num-outputs).
//
// wasm2c 1.0.32 writes, in order: a prelude (includes, macros, static
// helpers), the module's tables of function types, its function
// prototypes, data and element segments and init functions, then every
// function body, then the exported entry points. Every unit gets the whole
// text before the first body (so each sees every helper, type, prototype
// and segment), a share of the bodies, and unit 0 also gets the tail. Two
// rewrites make that link:
//  - the module's functions lose `static`: each is defined in one unit and
//    called from others (still hidden: the build uses -fvisibility=hidden);
//  - `func_types`, the one mutable static the bodies read (call_indirect
//    checks against it), is defined in unit 0 and `extern` elsewhere.
// The other statics the prelude defines are constant (segments, which
// memory.init may read from any unit: each unit's copy holds the same
// bytes) or used only by unit 0's init code.
//
// The split is refused (one unit, as before) whenever the file does not
// have exactly that shape, so a wabt release that writes something else
// builds slower, never wrong. The number of units depends only on the C
// source, never on the machine: it changes the code the optimizer sees
// (no inlining across units), and an artifact's key must fix its code.
// SPLIT_VERSION is part of that key.

export const SPLIT_VERSION = 1;
/** C source per unit: ~1 MB is about a second of clang -O0 (the C++ benchmark module is 2.7 MB). */
const UNIT_BYTES = 1 << 20;
const MAX_UNITS = 8;

// A declaration of one of the module's functions; wasm2c wraps long ones,
// so it may go on over the next lines, to `);` (prototype) or `) {` (body).
const DECLARATION = /^static ([^;=(]*\bw2c_\w+\()/;
const FUNC_TYPES = /^static (u32 func_types\[\d+\];)$/;

/** How many units C source of this size is split into. */
export function unitCount(cBytes: number): number {
  return Math.min(MAX_UNITS, Math.max(1, Math.ceil(cBytes / UNIT_BYTES)));
}

/** unitCount() guessed from the module's size, before wasm2c ran (its C is 10-14x the wasm). */
export function estimateUnits(wasmBytes: number): number {
  return unitCount(wasmBytes * 14);
}

/** The C source of each unit, or undefined if it cannot be split safely (build it whole). */
export function splitUnits(source: string, units: number): string[] | undefined {
  if (units <= 1) return undefined;
  const lines = source.split("\n");
  const isBody = (i: number) => {
    if (!DECLARATION.test(lines[i]!)) return false;
    while (i < lines.length && !/[;{]$/.test(lines[i]!)) i++;
    return lines[i]?.endsWith(") {") === true;
  };
  const first = lines.findIndex((_, i) => isBody(i));
  if (first < 0) return undefined;
  // The bodies: each starts with a declaration ending in `) {` and ends at the next `}` in
  // column 0; only blank lines may separate them.
  const bodies: { start: number; end: number }[] = [];
  let i = first;
  while (i < lines.length) {
    if (lines[i] === "") {
      i++;
      continue;
    }
    if (!isBody(i)) break;
    const end = lines.indexOf("}", i + 1);
    if (end < 0) return undefined;
    bodies.push({ start: i, end });
    i = end + 1;
  }
  const tail = lines.slice(i);
  // Anything static after the bodies is unit 0's own; a body after the tail began would be missed.
  if (bodies.length < units || tail.some((l) => DECLARATION.test(l))) return undefined;
  const head = lines.slice(0, first);
  if (head.filter((l) => FUNC_TYPES.test(l)).length > 1) return undefined;
  const exported = (l: string) => l.replace(DECLARATION, "$1");
  const shared = head.map(exported);
  const definedHere = shared.map((l) => l.replace(FUNC_TYPES, "$1"));
  const declaredHere = shared.map((l) => l.replace(FUNC_TYPES, "extern $1"));

  const text = (b: { start: number; end: number }) =>
    lines.slice(b.start, b.end + 1).join("\n").replace(/^static /, "");
  const total = bodies.reduce((sum, b) => sum + b.end - b.start, 0);
  const chunks: string[][] = Array.from({ length: units }, () => []);
  let done = 0;
  for (const b of bodies) {
    // Balanced by lines: contiguous runs keep related functions together.
    const unit = Math.min(units - 1, Math.floor((done * units) / total));
    chunks[unit]!.push(text(b));
    done += b.end - b.start;
  }
  if (chunks.some((c) => !c.length)) return undefined;
  return chunks.map((chunk, u) =>
    [...(u === 0 ? definedHere : declaredHere), chunk.join("\n\n"), ...(u === 0 ? tail : [])].join("\n") + "\n",
  );
}
