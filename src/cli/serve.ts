// `thaw serve`: run a node. Settings by flag or THAW_* variable (config.ts).

import { ConfigError, parseServerConfig } from "../config.ts";
import { startServer } from "../server/server.ts";
import { UsageError } from "./common.ts";

function config(argv: string[]) {
  try {
    return parseServerConfig(argv);
  } catch (e) {
    if (e instanceof ConfigError || String((e as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS")) throw new UsageError((e as Error).message);
    throw e;
  }
}

export async function serveCommand(argv: string[]): Promise<number> {
  const server = await startServer(config(argv));
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
