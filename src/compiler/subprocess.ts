// Compiling inside the server would block its event loop while a function's
// initializer runs (the snapshot is made synchronously) and would let a
// misbehaving toolchain take the server down. The server instead runs
// `thaw compile --json` as a child process; the artifact it leaves in the
// shared data directory is then loaded like any other.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type Artifact, type ArtifactMeta, artifactPaths, CompileError, type CompileErrorCode } from "./compile.ts";

/** argv that starts this same thaw: the compiled binary, or bun + cli.ts. */
export function thawCommand(): string[] {
  const compiled = import.meta.path.startsWith("/$bunfs/") || import.meta.path.startsWith("B:/~BUN/");
  return compiled ? [process.execPath] : [process.execPath, join(import.meta.dir, "..", "cli.ts")];
}

export async function compileInSubprocess(modulePath: string, dataDir: string): Promise<Artifact> {
  const proc = Bun.spawn([...thawCommand(), "compile", "--json", "--data", dataDir, modulePath], {
    stdout: "pipe",
    stderr: "pipe",
    env: process.env,
  });
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  const line = out.trim().split("\n").pop() ?? "";
  let parsed: { error?: { code: CompileErrorCode; message: string; log?: string; imports?: { import: string; reason: string }[] }; key?: string };
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new CompileError("compiler_failed", `compiler process failed: ${(err || out).trim().slice(-2000)}`);
  }
  if (parsed.error) {
    const { code, message, ...details } = parsed.error;
    throw new CompileError(code, message, details);
  }
  const paths = artifactPaths(dataDir, parsed.key!);
  const meta = JSON.parse(readFileSync(paths.metaPath, "utf8")) as ArtifactMeta;
  return { ...paths, meta, cached: false };
}
