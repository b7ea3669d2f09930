// `thaw serve`: run a node. Settings by flag or THAW_* variable (config.ts).

import { parseServerConfig } from "../config.ts";
import { startServer } from "../server/server.ts";

export async function serveCommand(argv: string[]): Promise<number> {
  const config = parseServerConfig(argv);
  const server = await startServer(config);
  const done = new Promise<void>((resolve) => {
    const stop = () => void server.shutdown().then(resolve);
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
  await done;
  return 0;
}
