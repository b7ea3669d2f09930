// Commands that talk to a running server: deploy, invoke, job, functions.
// The server is THAW_URL (default http://127.0.0.1:8080); a bearer token
// comes from THAW_TOKEN.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { UsageError } from "./common.ts";
import { parseEnv } from "./run.ts";

const serverUrl = (flag?: string) => (flag ?? process.env.THAW_URL ?? "http://127.0.0.1:8080").replace(/\/$/, "");

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const token = process.env.THAW_TOKEN;
  return { ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra };
}

async function failIfError(res: Response): Promise<boolean> {
  if (res.ok) return false;
  const text = await res.text();
  let message = text;
  try {
    const e = JSON.parse(text).error;
    message = `${e.code}: ${e.message}${e.stderr ? `\n${e.stderr}` : ""}`;
  } catch {}
  process.stderr.write(`thaw: ${res.status} ${message}\n`);
  return true;
}

export async function deployCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: "string" },
      memory: { type: "string" },
      timeout: { type: "string" },
      env: { type: "string", multiple: true },
      "content-type": { type: "string" },
      "max-concurrency": { type: "string" },
      url: { type: "string" },
    },
  });
  const file = positionals[0];
  if (!file || !values.name) throw new UsageError("thaw deploy FILE.wasm --name NAME");
  const config: Record<string, unknown> = { env: parseEnv(values.env ?? []) };
  if (values.memory) config.memoryMiB = Number(values.memory);
  if (values.timeout) config.timeoutMs = Number(values.timeout);
  if (values["content-type"]) config.contentType = values["content-type"];
  if (values["max-concurrency"]) config.maxConcurrency = Number(values["max-concurrency"]);
  const form = new FormData();
  form.set("module", new Blob([readFileSync(file)], { type: "application/wasm" }), file);
  form.set("config", JSON.stringify(config));
  process.stderr.write(`thaw: deploying ${values.name} (compiling)...\n`);
  const res = await fetch(`${serverUrl(values.url)}/v1/functions/${values.name}?wait=true`, {
    method: "PUT",
    body: form,
    headers: headers(),
  });
  if (await failIfError(res)) return 1;
  const fn = (await res.json()) as { name: string; status: string; version: number; sizes: { moduleBytes: number; codeBytes?: number } };
  console.log(`${fn.name} ${fn.status} v${fn.version} (${fn.sizes.moduleBytes} B module, ${fn.sizes.codeBytes ?? "?"} B native code)`);
  return 0;
}

export async function invokeCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      data: { type: "string", short: "d" },
      url: { type: "string" },
      async: { type: "boolean" },
      callback: { type: "string" },
      attempts: { type: "string" },
    },
  });
  const name = positionals[0];
  if (!name) throw new UsageError("thaw invoke NAME [--data @file | --data TEXT] [--async [--callback URL] [--attempts N]]");
  const data = values.data?.startsWith("@") ? readFileSync(values.data.slice(1)) : (values.data ?? "");
  const base = serverUrl(values.url);
  if (!values.async) {
    const res = await fetch(`${base}/v1/functions/${name}/invoke`, { method: "POST", body: data, headers: headers() });
    if (await failIfError(res)) return 1;
    process.stdout.write(new Uint8Array(await res.arrayBuffer()));
    return 0;
  }
  const query = new URLSearchParams();
  if (values.callback) query.set("callback", values.callback);
  if (values.attempts) query.set("attempts", values.attempts);
  const res = await fetch(`${base}/v1/functions/${name}/jobs?${query}`, { method: "POST", body: data, headers: headers() });
  if (await failIfError(res)) return 1;
  const job = (await res.json()) as { id: string };
  console.log(job.id);
  process.stderr.write(`thaw: queued; see it with \`thaw job ${job.id}\`\n`);
  return 0;
}

const FINISHED = ["succeeded", "failed", "dead"];

/** A job's state as JSON; with --wait, poll until it is finished; with --result, print its stdout. */
export async function jobCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { url: { type: "string" }, wait: { type: "boolean" }, result: { type: "boolean" } },
  });
  const id = positionals[0];
  if (!id) throw new UsageError("thaw job ID [--wait] [--result]");
  const base = serverUrl(values.url);
  let job: { status: string; result?: unknown };
  for (let delay = 50; ; delay = Math.min(1000, delay * 2)) {
    const res = await fetch(`${base}/v1/jobs/${encodeURIComponent(id)}`, { headers: headers() });
    if (await failIfError(res)) return 1;
    job = (await res.json()) as typeof job;
    if (!values.wait || FINISHED.includes(job.status)) break;
    await Bun.sleep(delay);
  }
  if (values.result && job.result) {
    const res = await fetch(`${base}/v1/jobs/${encodeURIComponent(id)}/result`, { headers: headers() });
    if (await failIfError(res)) return 1;
    process.stdout.write(new Uint8Array(await res.arrayBuffer()));
  } else console.log(JSON.stringify(job, null, 2));
  return job.status === "succeeded" || !FINISHED.includes(job.status) ? 0 : 1;
}

export async function functionsCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { url: { type: "string" }, json: { type: "boolean" } } });
  const res = await fetch(`${serverUrl(values.url)}/v1/functions`, { headers: headers() });
  if (await failIfError(res)) return 1;
  const { functions } = (await res.json()) as { functions: { name: string; status: string; version: number; pool?: { warm: number; calls: number } }[] };
  if (values.json) {
    console.log(JSON.stringify(functions));
    return 0;
  }
  for (const f of functions)
    console.log(`${f.name.padEnd(24)} ${f.status.padEnd(10)} v${f.version}  warm=${f.pool?.warm ?? 0} calls=${f.pool?.calls ?? 0}`);
  return 0;
}
