// The external tools the compiler runs, found once per process. Their
// versions are part of every artifact's key, so upgrading wabt or the C
// compiler recompiles functions instead of loading stale code.
//
// The fast tier's compiler is clang when it is installed: at -O0 it builds
// wasm2c's C 3-5x faster than gcc -O0 (the C++ benchmark module: 0.8 s vs
// 2.4 s; gcc -O1 12 s, clang -O1 9 s; tcc cannot parse wasm2c's runtime
// header). THAW_FAST_CC overrides it; without clang it is the optimized
// tier's compiler.

export interface Tool {
  path: string;
  version: string;
}

export interface Toolchain {
  wasm2c: Tool;
  wasmValidate: Tool;
  cc: Tool;
  /** The fast tier's C compiler. */
  fastCc: Tool;
}

export class ToolchainError extends Error {
  constructor(
    readonly tool: string,
    readonly debianPackage: string,
  ) {
    super(`${tool} not found: install it with \`apt-get install ${debianPackage}\``);
  }
}

async function probe(cmd: string, pkg: string, versionArg = "--version"): Promise<Tool> {
  const path = Bun.which(cmd);
  if (!path) throw new ToolchainError(cmd, pkg);
  const proc = Bun.spawn([path, versionArg], { stdout: "pipe", stderr: "pipe" });
  const out = (await new Response(proc.stdout).text()) + (await new Response(proc.stderr).text());
  await proc.exited;
  return { path, version: out.split("\n")[0]?.trim() ?? "" };
}

let cached: Promise<Toolchain> | undefined;

export function toolchain(): Promise<Toolchain> {
  cached ??= (async () => {
    const ccName = process.env.CC ?? (Bun.which("cc") ? "cc" : "gcc");
    const fastName = process.env.THAW_FAST_CC ?? (Bun.which("clang") ? "clang" : ccName);
    const [wasm2c, wasmValidate, cc, fastCc] = await Promise.all([
      probe("wasm2c", "wabt"),
      probe("wasm-validate", "wabt"),
      probe(ccName, "gcc"),
      probe(fastName, "clang"),
    ]);
    return { wasm2c, wasmValidate, cc, fastCc };
  })();
  cached.catch(() => (cached = undefined));
  return cached;
}
