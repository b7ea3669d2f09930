// Commands that talk to a running server: deploy, invoke, functions.
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
    options: { data: { type: "string", short: "d" }, url: { type: "string" } },
  });
  const name = positionals[0];
  if (!name) throw new UsageError("thaw invoke NAME [--data @file | --data TEXT]");
  const data = values.data?.startsWith("@") ? readFileSync(values.data.slice(1)) : (values.data ?? "");
  const res = await fetch(`${serverUrl(values.url)}/v1/functions/${name}/invoke`, { method: "POST", body: data, headers: headers() });
  if (await failIfError(res)) return 1;
  process.stdout.write(new Uint8Array(await res.arrayBuffer()));
  return 0;
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
