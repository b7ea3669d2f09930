// `thaw new NAME --lang c|rust|assemblyscript|cpp [--http] [--dir DIR]`:
// creates a function's directory from a template (templates/): its source
// (stdin→stdout, or a WAGI handler with --http), a build script that makes
// build/NAME.wasm, a thaw.toml that `thaw deploy` reads, a README and a
// .gitignore.
//
// NAME becomes a file name, a path in build.sh, a TOML string and an npm
// package name, so it must match the server's function-name rule before it
// touches anything; that rule admits no path separator, quote, space or
// shell metacharacter, so nothing the templates do with it can escape. The
// directory must be new or empty, and every file is created exclusively
// (`wx`): `thaw new` never overwrites anything.

import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { parseArgs } from "node:util";
import { COMMON, LANGUAGES, type Language } from "../../templates/index.ts";
import { checkName, CliError, UsageError } from "./common.ts";

const LANGS = [...LANGUAGES.keys()].join(", ");

export async function newCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseNewArgs(argv);
  if (positionals.length !== 1) throw new UsageError("thaw new takes one NAME (see thaw new --help)");
  const name = checkName(positionals[0]!);
  const langName = values.lang;
  if (!langName) throw new UsageError(`thaw new needs --lang (${LANGS})`);
  const lang = LANGUAGES.get(langName);
  if (!lang) throw new UsageError(`unknown --lang ${JSON.stringify(langName)}: one of ${LANGS}`);
  const http = values.http ?? false;
  const dir = values.dir ?? name;

  prepareDirectory(dir);
  const files = templateFiles(name, langName, lang, http);
  for (const [path, text] of Object.entries(files)) {
    const file = join(dir, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text, { flag: "wx", mode: path.endsWith(".sh") ? 0o755 : 0o644 });
  }
  const where = relative(process.cwd(), dir) || ".";
  const cd = shellWord(where);
  process.stdout.write(
    `created ${where}/ (${lang.title}${http ? ", HTTP" : ""}): ${Object.keys(files).sort().join(", ")}\n\n` +
      `  cd ${cd}\n  sh build.sh\n` +
      (http
        ? `  thaw run build/${name}.wasm --env REQUEST_METHOD=GET --env QUERY_STRING=name=Ada\n` +
          `  thaw deploy && curl 'http://127.0.0.1:8080/fn/${name}/?name=Ada'\n`
        : `  echo Ada | thaw run build/${name}.wasm\n  thaw deploy && echo Ada | thaw invoke ${name}\n`),
  );
  return 0;
}

function parseNewArgs(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: { lang: { type: "string" }, http: { type: "boolean" }, dir: { type: "string" } },
    });
  } catch (e) {
    if (String((e as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS")) throw new UsageError((e as Error).message);
    throw e;
  }
}

/** The new function's files, by path relative to its directory. */
export function templateFiles(name: string, langName: string, lang: Language, http: boolean): Record<string, string> {
  const fields: Record<string, string> = { name, lang: langName, language: lang.title, source: lang.source };
  const fill = (text: string) => text.replace(/\{\{(\w+)\}\}/g, (whole, key: string) => (Object.hasOwn(fields, key) ? fields[key]! : whole));
  const files: Record<string, string> = {
    [lang.source]: fill(http ? lang.http : lang.stdio),
    "thaw.toml": manifest(name, http),
    "README.md": fill(http ? COMMON.readmeHttp : COMMON.readmeStdio),
    ".gitignore": COMMON.gitignore,
  };
  for (const [path, text] of Object.entries(lang.files)) files[path] = fill(text);
  return files;
}

/** thaw.toml (the manifest `thaw deploy` reads); content_type only for HTTP functions. */
function manifest(name: string, http: boolean): string {
  // A checked name needs no escaping, but JSON's quoting is also TOML's.
  const str = JSON.stringify;
  return [
    "# Read by `thaw deploy` in this directory: it runs `build`, then deploys `module` as `name`.",
    `name = ${str(name)}`,
    `module = ${str(`build/${name}.wasm`)}`,
    `build = "sh build.sh"`,
    ...(http ? [`content_type = "text/plain; charset=utf-8"   # for responses that set no Content-Type`] : []),
    "# The server's defaults:",
    "# memory_mib = 64        # linear memory limit (MiB)",
    "# timeout_ms = 10000     # wall-clock limit per call",
    "# max_concurrency = 64   # calls at once",
    "",
    "# [env]                  # environment variables for every call",
    '# GREETING = "hi"',
    "",
  ].join("\n");
}

/** A path as one word for the `cd` line we print: quoted if the shell would split or expand it. */
const shellWord = (path: string) => (/^[\w./-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`);

/** Creates dir, or accepts it if it is an empty directory; refuses anything else. */
function prepareDirectory(dir: string): void {
  let stat;
  try {
    stat = statSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    mkdirSync(dir, { recursive: true });
    return;
  }
  if (!stat.isDirectory()) throw new CliError(`${dir} exists and is not a directory`);
  if (readdirSync(dir).length > 0) throw new CliError(`${dir} exists and is not empty`);
}
