#!/usr/bin/env bun
// thaw: the command line. Commands, flags and usage texts are one table
// (src/cli/commands.ts); this file only dispatches and turns errors into
// one-line messages and exit codes (0 ok, 1 failed, 2 usage).
//
// Start-up time is the point of its shape: a command's code is imported only
// when that command runs, so `thaw --help` and the client commands never load
// the compiler, the engine, the server or ioredis (about a second of imports).
// Errors are therefore recognised without importing their classes: commands
// turn what they can explain into CliError/UsageError (src/cli/common.ts),
// and system errors are told apart by their `code`.

import { version } from "../package.json" with { type: "json" };
import { command } from "./cli/commands.ts";
import { CliError, UsageError, visible } from "./cli/common.ts";
import { commandHelp, overview } from "./cli/help.ts";

const wantsHelp = (argv: string[]) => {
  const end = argv.indexOf("--");
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === "--help" || a === "-h");
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--version" || name === "-V" || name === "version") {
    process.stdout.write(`thaw ${version}\n`);
    return 0;
  }
  if (!name || name === "--help" || name === "-h" || (name === "help" && !rest[0])) {
    (name ? process.stdout : process.stderr).write(overview(version));
    return name ? 0 : 2;
  }
  if (name === "help") return main([rest[0]!, "--help"]);
  const cmd = command(name);
  if (!cmd) {
    process.stderr.write(`thaw: unknown command ${JSON.stringify(name)} (see thaw --help)\n`);
    return 2;
  }
  if (wantsHelp(rest)) {
    process.stdout.write(commandHelp(cmd));
    return 0;
  }
  try {
    return await (await cmd.load())(rest);
  } catch (e) {
    return report(name, e);
  }
}

/** Errors go to stderr through visible(): a message can carry names a module chose. */
function report(name: string, e: unknown): number {
  const say = (text: string) => process.stderr.write(visible(text.endsWith("\n") ? text : `${text}\n`));
  if (e instanceof UsageError) {
    say(`thaw ${name}: ${e.message}${e.message.includes("--help") ? "" : ` (see thaw ${name} --help)`}`);
    return 2;
  }
  if (e instanceof CliError) {
    say(`thaw: ${e.message}`);
    if (e.detail) say(e.detail);
    return e.exitCode;
  }
  const err = e as NodeJS.ErrnoException;
  if (err?.code === "ENOENT" || err?.code === "EACCES" || err?.code === "EISDIR" || err?.code === "ENOTDIR") {
    say(`thaw: cannot read ${err.path ?? "file"}: ${err.code}`);
    return 2;
  }
  // `new` and `push` parse their own arguments (src/cli/new.ts, src/oci/cli.ts).
  if (String(err?.code).startsWith("ERR_PARSE_ARGS")) {
    say(`thaw ${name}: ${err.message} (see thaw ${name} --help)`);
    return 2;
  }
  throw e;
}

process.exitCode = await main(process.argv.slice(2));
