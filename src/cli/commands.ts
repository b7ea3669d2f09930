// The one table of thaw's commands and their flags. It drives the argument
// parser of the commands thaw's CLI owns, every `--help` text and the shell
// completion scripts, so the three cannot disagree. `new`, `push` and
// `serve` parse their own arguments (src/cli/new.ts, src/oci/cli.ts,
// src/config.ts); their rows here are for help and completion, and
// test/cli-start.test.ts checks that they accept every flag listed.
//
// Each command's code is loaded only when it runs (`load`): the table itself
// imports nothing, so `thaw --help` costs what parsing this file costs.

import { parseArgs } from "node:util";
import { NAME_RULE, UsageError } from "./common.ts";

export type Handler = (argv: string[]) => Promise<number>;

/** What a shell should offer for a value: files, directories, function names, or fixed words. */
export type Completion = "file" | "dir" | "function" | readonly string[];

export interface Flag {
  name: string;
  short?: string;
  /** Placeholder for the flag's value; a flag without one is a switch. */
  value?: string;
  multiple?: boolean;
  help: string;
  complete?: Completion;
  /** Parsed but not shown (flags one thaw process passes another). */
  hidden?: boolean;
}

export interface Command {
  name: string;
  /** Positional arguments as the synopsis shows them. */
  args: string;
  summary: string;
  /** Paragraphs shown by `thaw COMMAND --help` after the synopsis. */
  details?: string;
  flags: Flag[];
  /** What a shell should offer for the first positional argument. */
  complete?: Completion;
  load: () => Promise<Handler>;
}

const url: Flag = { name: "url", value: "URL", help: "server to talk to (default $THAW_URL, else http://127.0.0.1:8080)" };
const env: Flag = { name: "env", value: "K=V", multiple: true, help: "environment variable for the function (repeatable)" };

const CLIENT = `Talks to the server at --url or $THAW_URL (default http://127.0.0.1:8080),
with the bearer token in $THAW_TOKEN if set.`;

export const COMMANDS: Command[] = [
  {
    name: "run",
    args: "FILE.wasm [-- ARG...]",
    summary: "compile (cached) and run one call locally; exit status is the module's",
    details: `Piped stdin is the module's stdin unless --stdin names a file; a terminal
gives it none. Words after -- are its arguments. Exit status: the module's
exit code, or 100 + n for a trap (named on stderr): 101 out of bounds,
103 divide by zero, 105 unreachable, 108 stack exhaustion, 109 timeout,
110 memory limit.`,
    complete: "file",
    flags: [
      { name: "stdin", value: "FILE", help: "file to feed as stdin (default: piped stdin, if any)", complete: "file" },
      env,
      { name: "timeout", value: "MS", help: "wall-clock limit for the call (default 10000)" },
      { name: "memory", value: "MIB", help: "linear memory limit (default 64)" },
      { name: "data", value: "DIR", help: "where compiled artifacts are cached (default $THAW_DATA_DIR or ~/.cache/thaw)", complete: "dir" },
      { name: "quiet", short: "q", help: "no compile progress on stderr" },
    ],
    load: async () => (await import("./run.ts")).runCommand,
  },
  {
    name: "compile",
    args: "FILE.wasm",
    summary: "build the native artifact and snapshot; print its path and sizes",
    complete: "file",
    flags: [
      { name: "json", help: "print one JSON object" },
      { name: "timeout", value: "MS", help: "wall-clock limit for the compiler's tools (default 120000)" },
      { name: "data", value: "DIR", help: "where artifacts are kept (default $THAW_DATA_DIR or ~/.cache/thaw)", complete: "dir" },
      { name: "build-dir", value: "DIR", help: "build directory chosen by the server", hidden: true },
    ],
    load: async () => (await import("./compile.ts")).compileCommand,
  },
  {
    name: "serve",
    args: "",
    summary: "run the HTTP gateway",
    details: `Every flag is also a THAW_* variable of the same name (--max-body is
THAW_MAX_BODY; --data is THAW_DATA_DIR); a flag wins over the variable.`,
    flags: [
      { name: "host", value: "H", help: "address to listen on (default 127.0.0.1)" },
      { name: "port", value: "N", help: "port to listen on; 0 picks a free one (default 8080)" },
      { name: "data", value: "DIR", help: "data directory (default ~/.cache/thaw)", complete: "dir" },
      { name: "examples", help: "deploy the example functions at start" },
      { name: "examples-dir", value: "DIR", help: "deploy the .wasm files of DIR at start", complete: "dir" },
      { name: "insecure-open", help: "allow a non-loopback --host without any token" },
      { name: "admin-token", value: "T", help: "bearer token that acts for any tenant (X-Thaw-Tenant)" },
      { name: "tokens", value: "TOK:TENANT,...", help: "bearer tokens and the tenants they act for" },
      { name: "metrics-token", value: "T", help: "bearer token that opens /metrics only" },
      { name: "max-body", value: "BYTES", help: "largest invocation body (default 6 MiB)" },
      { name: "max-module", value: "BYTES", help: "largest module a deploy accepts (default 64 MiB)" },
      { name: "threads", value: "N", help: "CPU slots for calls (default: cores, at least 2)" },
      { name: "max-blocked", value: "N", help: "extra threads for calls blocked in host sleeps" },
      { name: "inline-us", value: "US", help: "budget of a short call run on the event loop before it moves to a worker (default 1000; 0: never)" },
      { name: "tenant-concurrency", value: "N", help: "calls of one tenant in flight on this node" },
      { name: "queue-timeout", value: "MS", help: "how long a call may wait for a slot before 429 (default 2000)" },
      { name: "max-waiting", value: "N", help: "calls that may wait per function at its concurrency (default 256)" },
      { name: "shutdown-timeout", value: "MS", help: "how long SIGTERM waits for requests in flight (default 30000)" },
      { name: "body-timeout", value: "MS", help: "how long a body may take after its headers (default 30000)" },
      { name: "idle-timeout", value: "S", help: "seconds an idle connection is kept (default 30, at most 255)" },
      { name: "warm-budget", value: "BYTES", help: "memory for warm instances across functions (default 256 MiB)" },
      { name: "headroom", value: "N", help: "warm instances kept above predicted concurrency (default 1)" },
      { name: "retention", value: "MS", help: "how long an idle instance keeps its pages (default 1000)" },
      { name: "tenant-memory", value: "TENANT:RESERVED:LIMIT,...", help: "per-tenant memory reservation and cap" },
      { name: "redis-url", value: "URL", help: "Redis shared by a cluster (default: none, embedded queue)" },
      { name: "job-concurrency", value: "N", help: "async jobs run at once (default 16)" },
      { name: "job-backoff", value: "MS", help: "backoff before a job's second attempt (default 1000)" },
      { name: "job-retention", value: "MS", help: "how long finished jobs are kept (default 1 day)" },
      { name: "compile-timeout", value: "MS", help: "wall-clock limit for one compile (default 120000)" },
      { name: "compile-concurrency", value: "N", help: "compiles at once (default: cores)" },
      { name: "compile-queue", value: "N", help: "deploys that may wait for a compile slot (default 64)" },
      { name: "callback-allow", value: "CIDR|HOST,...", help: "private destinations callbacks may reach" },
      { name: "callback-concurrency", value: "N", help: "callback deliveries in flight (default 8)" },
      { name: "callback-tenant-concurrency", value: "N", help: "callback deliveries in flight per tenant (default 2)" },
      { name: "callback-timeout", value: "MS", help: "one callback attempt (default 5000)" },
      { name: "callback-attempts", value: "N", help: "attempts per callback (default 3)" },
      { name: "callback-backoff", value: "MS", help: "backoff before a callback's second attempt (default 1000)" },
      { name: "callback-secret", value: "S", help: "secret callbacks are signed from (default: generated)" },
      { name: "registry-allow", value: "CIDR|HOST,...", help: "private registries OCI deploys may pull from" },
      { name: "registry-plain-http", value: "HOST[:PORT],...", help: "registries pulled over http instead of https" },
      { name: "registry-timeout", value: "MS", help: "one OCI pull, first connect to last byte (default 60000)" },
      { name: "cors-origins", value: "ORIGIN,...", help: "origins browsers may call from; * for any (default: no CORS)" },
      { name: "access-log", value: "MODE", help: "access-log lines: off, errors, sample:N or all (default errors)", complete: ["off", "errors", "all", "sample:"] },
      { name: "call-log-bytes", value: "BYTES", help: "memory for call logs (stderr) over all tenants; 0 keeps none (default 64 MiB)" },
    ],
    load: async () => (await import("./serve.ts")).serveCommand,
  },
  {
    name: "deploy",
    args: "[FILE.wasm | oci://HOST/REPO:TAG]",
    summary: "deploy a module (or ./thaw.toml) to the server and wait until it is ready",
    details: `With no FILE, reads ./thaw.toml (or --manifest), runs its build command
and deploys its module; flags override the manifest. Function names are
${NAME_RULE}.
Progress goes to stderr; the function's line to stdout.
${CLIENT}`,
    complete: "file",
    flags: [
      { name: "name", value: "NAME", help: "function name (default: the manifest's)", complete: "function" },
      { name: "manifest", value: "PATH", help: "manifest to read (default ./thaw.toml)", complete: "file" },
      { name: "no-build", help: "skip the manifest's build command" },
      { name: "no-wait", help: "return once the server has the module, before it is compiled" },
      { name: "memory", value: "MIB", help: "linear memory limit" },
      { name: "timeout", value: "MS", help: "wall-clock limit per call" },
      env,
      { name: "content-type", value: "TYPE", help: "response type; set for a WAGI (HTTP) function" },
      { name: "max-concurrency", value: "N", help: "calls of this function at once" },
      { name: "registry-auth", value: "AUTH", help: "for oci://: \"Bearer TOKEN\" or \"Basic BASE64\"" },
      url,
    ],
    load: async () => (await import("./deploy.ts")).deployCommand,
  },
  {
    name: "invoke",
    args: "NAME",
    summary: "call a function; its stdout is printed",
    details: `The body is --data, else piped stdin, else empty.
${CLIENT}`,
    complete: "function",
    flags: [
      { name: "data", short: "d", value: "TEXT|@FILE|@-", help: "request body: text, a file's bytes, or stdin (@-)" },
      { name: "async", help: "queue a job instead; print its id" },
      { name: "callback", value: "URL", help: "with --async: POST the result here" },
      { name: "attempts", value: "N", help: "with --async: attempts before the job is dead" },
      url,
    ],
    load: async () => (await import("./client.ts")).invokeCommand,
  },
  {
    name: "job",
    args: "ID",
    summary: "show an async job's state (JSON)",
    details: CLIENT,
    flags: [
      { name: "wait", help: "poll until the job has finished" },
      { name: "result", help: "print the job's output instead of its state" },
      url,
    ],
    load: async () => (await import("./client.ts")).jobCommand,
  },
  {
    name: "functions",
    args: "",
    summary: "list deployed functions",
    details: CLIENT,
    flags: [{ name: "json", help: "print a JSON array" }, url],
    load: async () => (await import("./client.ts")).functionsCommand,
  },
  {
    name: "logs",
    args: "NAME",
    summary: "print a function's call logs (the stderr of each call)",
    details: `Each entry: time, call id, outcome, then the call's stderr.
${CLIENT}`,
    complete: "function",
    flags: [
      { name: "follow", short: "f", help: "keep printing new entries until interrupted" },
      { name: "since", value: "SEQ", help: "only entries after sequence number SEQ" },
      { name: "json", help: "one JSON object per entry" },
      url,
    ],
    load: async () => (await import("./logs.ts")).logsCommand,
  },
  {
    name: "push",
    args: "FILE.wasm HOST/REPO:TAG",
    summary: "push a module to an OCI registry as a Wasm artifact",
    complete: "file",
    flags: [
      { name: "auth", value: "AUTH", help: "\"Bearer TOKEN\" or \"Basic BASE64\"" },
      { name: "plain-http", help: "talk HTTP, not HTTPS, to the registry" },
    ],
    load: async () => (await import("../oci/cli.ts")).pushCommand,
  },
  {
    name: "new",
    args: "NAME",
    summary: "create a function from a template (build script and thaw.toml included)",
    flags: [
      { name: "lang", value: "LANG", help: "c, rust, assemblyscript or cpp", complete: ["c", "rust", "assemblyscript", "cpp"] },
      { name: "http", help: "a WAGI (HTTP) function instead of stdin to stdout" },
      { name: "dir", value: "DIR", help: "where to create it (default ./NAME)", complete: "dir" },
    ],
    load: async () => (await import("./new.ts")).newCommand,
  },
  {
    name: "completion",
    args: "bash|zsh|fish",
    summary: "print a shell completion script",
    details: `bash: source <(thaw completion bash)
zsh:  source <(thaw completion zsh)
fish: thaw completion fish | source`,
    complete: ["bash", "zsh", "fish"],
    flags: [],
    load: async () => (await import("./completion.ts")).completionCommand,
  },
];

export const command = (name: string) => COMMANDS.find((c) => c.name === name);

export interface Parsed {
  positionals: string[];
  string(flag: string): string | undefined;
  flag(flag: string): boolean;
  list(flag: string): string[];
}

/** Parses argv against a command's row: its flags, strictly, and any positionals. */
export function parse(name: string, argv: string[]): Parsed {
  const cmd = command(name)!;
  const options = Object.fromEntries(
    cmd.flags.map((f) => [
      f.name,
      { type: f.value ? ("string" as const) : ("boolean" as const), ...(f.short ? { short: f.short } : {}), multiple: f.multiple === true },
    ]),
  );
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    // Node's messages go on to explain `--`; the first sentence is the point.
    if (String((e as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS")) throw new UsageError((e as Error).message.split(". ")[0]!);
    throw e;
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  // A flag the table does not list is a typo in thaw, not the user's mistake.
  const get = (flag: string) => {
    if (!(flag in options)) throw new Error(`thaw ${name} has no flag --${flag} in src/cli/commands.ts`);
    return values[flag];
  };
  return {
    positionals: parsed.positionals,
    string: (flag) => get(flag) as string | undefined,
    flag: (flag) => get(flag) === true,
    list: (flag) => (get(flag) as string[] | undefined) ?? [],
  };
}
