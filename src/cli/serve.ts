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
  // Everything thaw owns is closed by now; a client library's reconnect
  // timer or socket must not keep a stopped node alive.
  server.ctx.log.flush();
  process.exit(0);
}
