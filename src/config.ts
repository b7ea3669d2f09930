// Settings shared by every command. Each has a flag and a THAW_* variable
// of the same name; flags win.

import { homedir } from "node:os";
import { join } from "node:path";

export function defaultDataDir(): string {
  return process.env.THAW_DATA_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "thaw");
}
