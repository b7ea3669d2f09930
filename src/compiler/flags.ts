// The flags the compile pipeline hands to its tools. They are part of every
// artifact's key (compile.ts), so changing one recompiles instead of loading
// code built with the old flags.

// Out-of-bounds accesses: by default the code does no bounds checks and
// relies on guard pages (native/src/guard.c; x86-64 Linux), which keeps the
// compute kernel within 10 % of native code. Each live instance then takes
// 8 GiB of address space, so a process holds at most ~8k of them;
// THAW_BOUNDS_CHECKS=explicit compiles a compare into every access instead
// (~10 % slower) for deployments that need more instances per process.
const BOUNDS = process.env.THAW_BOUNDS_CHECKS === "explicit" ? ["-DTHAW_EXPLICIT_BOUNDS_CHECKS=1"] : [];

// -O3: 10 % faster than -O2 on the compute kernel (scripts/bench/engine.ts);
// no -march=native, so an artifact runs on every node of a cluster.
// -fstack-usage: every function's frame size, for the frame check in compile.ts.
export const CFLAGS = ["-O3", "-fPIC", "-shared", "-fvisibility=hidden", "-w", "-fstack-usage", ...BOUNDS];
// The fast tier (compile.ts): clang -O0, so a deploy is callable soon. Its
// runtime's memory accessors are `static inline`, which -O0 never inlines:
// making them always_inline costs no measurable build time and makes -O0
// code 1.2-1.7x faster (scripts/bench/deploy.ts modules).
export const FAST_CFLAGS = [
  "-O0", "-Dinline=inline __attribute__((always_inline))",
  "-fPIC", "-shared", "-fvisibility=hidden", "-w", "-fstack-usage", ...BOUNDS,
];

// Debian's wasm2c 1.0.32 aborts on SIMD, so the validator refuses it first.
export const VALIDATE_FLAGS = ["--disable-simd"];
export const WASM2C_FLAGS: string[] = [];
