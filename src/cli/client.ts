// Client commands that call functions and read state: invoke, job,
// functions. (deploy is src/cli/deploy.ts, logs src/cli/logs.ts.)

import { readFileSync } from "node:fs";
import { parse } from "./commands.ts";
import { CliError, onlyName, positiveInt, readStdin, stdinIsPiped, UsageError } from "./common.ts";
import { Server } from "./http.ts";

/** A job id as the server accepts it (src/server/routes/jobs.ts). */
const JOB_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/**
 * The request body: --data TEXT, --data @FILE, --data @- (stdin); without
 * --data, piped stdin, and nothing when stdin is a terminal.
 */
async function requestBody(data: string | undefined): Promise<Uint8Array | string> {
  if (data === "@-") return readStdin();
  if (data?.startsWith("@")) return readFileSync(data.slice(1));
  if (data !== undefined) return data;
  return stdinIsPiped() ? readStdin() : "";
}

export async function invokeCommand(argv: string[]): Promise<number> {
  const args = parse("invoke", argv);
  const name = onlyName(args.positionals);
  const async = args.flag("async");
  if (!async && (args.string("callback") || args.string("attempts"))) throw new UsageError("--callback and --attempts need --async");
  const attempts = positiveInt("attempts", args.string("attempts"));
  const body = await requestBody(args.string("data"));
  const server = new Server(args.string("url"));
  if (!async) {
    const res = await server.ok(`/v1/functions/${name}/invoke`, { method: "POST", body });
    await Bun.write(Bun.stdout, await res.arrayBuffer());
    return 0;
  }
  const query = new URLSearchParams();
  const callback = args.string("callback");
  if (callback) query.set("callback", callback);
  if (attempts) query.set("attempts", String(attempts));
  const job = await server.json<{ id: string }>(`/v1/functions/${name}/jobs?${query}`, { method: "POST", body });
  console.log(job.id);
  process.stderr.write(`thaw: queued; see it with \`thaw job ${job.id}\`\n`);
  return 0;
}

const FINISHED = ["succeeded", "failed", "dead"];

/** A job's state as JSON; with --wait, poll until it is finished; with --result, print its stdout. */
export async function jobCommand(argv: string[]): Promise<number> {
  const args = parse("job", argv);
  const [id, ...extra] = args.positionals;
  if (!id) throw new UsageError("needs a job ID");
  if (extra.length) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  if (!JOB_ID.test(id)) throw new UsageError(`invalid job id ${JSON.stringify(id)}: 1 to 128 of A-Z, a-z, 0-9, _ . : and -`);
  const server = new Server(args.string("url"));
  let job: { status: string; result?: unknown; error?: { code?: string; message?: string } };
  for (let delay = 50; ; delay = Math.min(1000, delay * 2)) {
    job = await server.json<typeof job>(`/v1/jobs/${id}`);
    if (!args.flag("wait") || FINISHED.includes(job.status)) break;
    await Bun.sleep(delay);
  }
  if (args.flag("result")) {
    if (!job.result) throw new CliError(`job ${id} has no result (${job.status})`);
    const res = await server.ok(`/v1/jobs/${id}/result`);
    await Bun.write(Bun.stdout, await res.arrayBuffer());
  } else console.log(JSON.stringify(job, null, 2));
  return job.status === "succeeded" || !FINISHED.includes(job.status) ? 0 : 1;
}

interface FunctionRow {
  name: string;
  status: string;
  version: number;
  tier?: string | null;
  pool?: { warm: number; calls: number };
}

export async function functionsCommand(argv: string[]): Promise<number> {
  const args = parse("functions", argv);
  if (args.positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(args.positionals[0])}`);
  const { functions } = await new Server(args.string("url")).json<{ functions: FunctionRow[] }>("/v1/functions");
  if (args.flag("json")) {
    console.log(JSON.stringify(functions));
    return 0;
  }
  for (const f of functions)
    console.log(
      `${f.name.padEnd(24)} ${f.status.padEnd(10)} v${f.version}${f.tier ? ` ${f.tier}` : ""}  warm=${f.pool?.warm ?? 0} calls=${f.pool?.calls ?? 0}`,
    );
  return 0;
}
