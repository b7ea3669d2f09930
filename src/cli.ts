#!/usr/bin/env bun
// thaw: the command line. Each command lives in src/cli/; this file only
// dispatches and turns errors into messages and exit codes.

import { CompileError } from "./compiler/compile.ts";
import { ConfigError } from "./config.ts";
import { EngineError } from "./engine/engine.ts";
import { compileCommand } from "./cli/compile.ts";
import { UsageError } from "./cli/common.ts";
import { deployCommand, functionsCommand, invokeCommand, jobCommand } from "./cli/client.ts";
import { runCommand } from "./cli/run.ts";
import { serveCommand } from "./cli/serve.ts";

const USAGE = `usage: thaw <command> [options]

  run FILE.wasm [--stdin FILE] [--env K=V]... [--timeout MS] [--memory MIB] [-- ARG...]
      compile (cached) and run one call; exit status is the module's
  compile FILE.wasm [--json] [--timeout MS]
      build the native artifact and snapshot; print its path and sizes
  serve [--port N] [--host H] [--data DIR] [--examples] [--admin-token T] [--tokens tok:tenant,...]
        [--max-body BYTES] [--max-module BYTES] [--threads N] [--max-waiting N] [--shutdown-timeout MS]
        [--max-blocked N] [--tenant-concurrency N] [--queue-timeout MS]
        [--redis-url URL] [--job-concurrency N] [--job-backoff MS] [--job-retention MS]
        [--compile-timeout MS] [--compile-concurrency N] [--compile-queue N]
        [--callback-allow CIDR|host,...] [--callback-concurrency N] [--callback-tenant-concurrency N]
        [--callback-timeout MS] [--callback-attempts N] [--callback-backoff MS] [--callback-secret S]
        [--metrics-token T] [--body-timeout MS] [--idle-timeout S]
      run the HTTP gateway (each flag also as THAW_<FLAG>, e.g. THAW_MAX_BODY)
  deploy FILE.wasm --name NAME [--memory MIB] [--timeout MS] [--env K=V]... [--content-type T]
  invoke NAME [--data @FILE | --data TEXT] [--async [--callback URL] [--attempts N]]
  job ID [--wait] [--result]
  functions [--json]
      talk to a server at THAW_URL (default http://127.0.0.1:8080) with THAW_TOKEN

  Common: --data DIR (or THAW_DATA_DIR) where artifacts are kept.
`;

const commands: Record<string, (argv: string[]) => Promise<number>> = {
  run: runCommand,
  compile: compileCommand,
  serve: serveCommand,
  deploy: deployCommand,
  invoke: invokeCommand,
  job: jobCommand,
  functions: functionsCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(USAGE);
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`thaw: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  try {
    return await command(rest);
  } catch (e) {
    if (e instanceof CompileError) {
      process.stderr.write(`thaw: ${e.code}: ${e.message}\n`);
      if (e.details.log) process.stderr.write(`thaw: build log (tail):\n${e.details.log}\n`);
      return 1;
    }
    const errno = e as NodeJS.ErrnoException;
    if (errno.code === "ENOENT" || errno.code === "EACCES" || errno.code === "EISDIR") {
      process.stderr.write(`thaw: cannot read ${errno.path ?? "file"}: ${errno.code}\n`);
      return 2;
    }
    if (e instanceof EngineError) {
      process.stderr.write(`thaw: engine: ${e.message}\n`);
      return 1;
    }
    const code = (e as { code?: unknown }).code;
    if (e instanceof UsageError || e instanceof ConfigError || (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS"))) {
      process.stderr.write(`thaw: ${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
}

process.exitCode = await main(process.argv.slice(2));
