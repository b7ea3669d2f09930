// The external tools the compiler runs, found once per process. Their
// versions are part of every artifact's key, so upgrading wabt or the C
// compiler recompiles functions instead of loading stale code.

export interface Tool {
  path: string;
  version: string;
}

export interface Toolchain {
  wasm2c: Tool;
  wasmValidate: Tool;
  cc: Tool;
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
    const [wasm2c, wasmValidate, cc] = await Promise.all([
      probe("wasm2c", "wabt"),
      probe("wasm-validate", "wabt"),
      probe(ccName, "gcc"),
    ]);
    return { wasm2c, wasmValidate, cc };
  })();
  cached.catch(() => (cached = undefined));
  return cached;
}
