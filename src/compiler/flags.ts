// The flags the compile pipeline hands to its tools. They are part of every
// artifact's key (compile.ts), so changing one recompiles instead of loading
// code built with the old flags.

// -O3: 10 % faster than -O2 on the compute kernel (scripts/bench/engine.ts);
// no -march=native, so an artifact runs on every node of a cluster.
// -fstack-usage: every function's frame size, for the frame check in compile.ts.
export const CFLAGS = ["-O3", "-fPIC", "-shared", "-fvisibility=hidden", "-w", "-fstack-usage"];
// The fast tier (compile.ts): no optimization, so a deploy is callable soon.
export const FAST_CFLAGS = ["-O0", "-fPIC", "-shared", "-fvisibility=hidden", "-w", "-fstack-usage"];

// Debian's wasm2c 1.0.32 aborts on SIMD, so the validator refuses it first.
export const VALIDATE_FLAGS = ["--disable-simd"];
export const WASM2C_FLAGS: string[] = [];
