// Build directories: where one compile writes its module copy, the C code,
// the shared object and the snapshot (up to the function's memory: a GiB)
// before the finished artifact is renamed into DATA/artifacts/<key>.
//
// A build directory is DATA/artifacts/.build-<pid>-<random>: in the data
// directory so the final rename stays on one file system, with the pid of
// the process that owns it (the server for its compile children, which it
// names; `thaw run` / `thaw compile` for their own). Every failure path
// removes it; what a crash or SIGKILL leaves behind is removed when a server
// next starts, unless its owner is still alive (a `thaw run` sharing the
// data directory). A pid reused by an unrelated process keeps a stale
// directory until a later start; the server's own pid (pid 1 in every
// container start) is always stale at start.

import { randomBytes } from "node:crypto";
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const PREFIX = ".build-";

/** A fresh build directory path for this process (not created). */
export function newBuildDir(dataDir: string): string {
  return join(dataDir, "artifacts", `${PREFIX}${process.pid}-${randomBytes(6).toString("hex")}`);
}

/** rm -rf that tolerates a tool still writing for a moment after its box was killed. */
export function removeBuildDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
}

/** Removes the build directories of processes that are gone; returns how many. */
export function removeStaleBuilds(dataDir: string): number {
  const dir = join(dataDir, "artifacts");
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of entries) {
    if (!name.startsWith(PREFIX)) continue;
    // Names without a pid come from older versions: nothing can own them now.
    const pid = Number(/^\.build-(\d+)-/.exec(name)?.[1] ?? Number.NaN);
    if (pid !== process.pid && Number.isInteger(pid) && alive(pid)) continue;
    removeBuildDir(join(dir, name));
    removed++;
  }
  return removed;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
