// `thaw logs NAME [--follow] [--since SEQ] [--json]`: the stderr of a
// function's calls, from GET /v1/functions/{name}/logs (the server keeps a
// bounded number per function). Pages through what is there with
// since=next; --follow keeps polling about every 500 ms until SIGINT, which
// ends it with status 0 (it is how a user stops it, not a failure).
//
// Human form: one header line per call (time, call id, outcome, exit code),
// then its stderr indented, control characters shown as \xNN so a
// function's output cannot drive the terminal; --json prints each entry as
// one JSON line, bytes as they were.

import { parse } from "./commands.ts";
import { onlyName, UsageError, visible } from "./common.ts";
import { Server } from "./http.ts";

interface Entry {
  seq: number;
  time: string;
  callId: string;
  requestId?: string;
  outcome: string;
  exitCode?: number | null;
  stderr: string;
  truncated?: boolean;
}

const PAGE = 1000;
const POLL_MS = 500;

export async function logsCommand(argv: string[]): Promise<number> {
  const args = parse("logs", argv);
  const name = onlyName(args.positionals);
  const sinceFlag = args.string("since");
  if (sinceFlag !== undefined && !/^\d{1,15}$/.test(sinceFlag)) throw new UsageError(`--since takes a sequence number, got ${JSON.stringify(sinceFlag)}`);
  const server = new Server(args.string("url"));
  const print = args.flag("json") ? (e: Entry) => console.log(JSON.stringify(e)) : (e: Entry) => process.stdout.write(format(e));

  let since = Number(sinceFlag ?? 0);
  let stopped = false;
  if (args.flag("follow")) process.once("SIGINT", () => (stopped = true));
  while (!stopped) {
    const page = await server.json<{ entries: Entry[]; next: number }>(`/v1/functions/${name}/logs?since=${since}&limit=${PAGE}`);
    for (const e of page.entries) print(e);
    // The server's `next`, even when lower: a restarted node numbers from 1 again.
    since = page.next;
    if (page.entries.length === PAGE) continue;
    if (!args.flag("follow")) break;
    await Bun.sleep(POLL_MS);
  }
  return 0;
}

function format(e: Entry): string {
  const exit = e.exitCode === undefined || e.exitCode === null ? "" : ` exit=${e.exitCode}`;
  const head = `${e.time} ${e.callId} ${e.outcome}${exit}${e.truncated ? " (stderr truncated)" : ""}\n`;
  const body = e.stderr ? visible(e.stderr).replace(/\n$/, "").replace(/^/gm, "  ") + "\n" : "";
  return head + body;
}
