// Usage texts, generated from the command table (src/cli/commands.ts): the
// overview `thaw --help` prints, each command's `thaw COMMAND --help`, and
// docs/cli.md, the same texts as one page (`bun src/cli/help.ts >
// docs/cli.md`; test/cli-start.test.ts fails when it is stale).

import { COMMANDS, type Command, type Flag } from "./commands.ts";

const HELP: Flag = { name: "help", short: "h", help: "print this text" };

const flagLabel = (f: Flag) => `${f.short ? `-${f.short}, ` : ""}--${f.name}${f.value ? ` ${f.value}` : ""}`;

export function overview(version: string): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`);
  return `thaw ${version}: run WebAssembly (WASI) functions from copy-on-write snapshots

usage: thaw COMMAND [options]

commands:
${lines.join("\n")}

  thaw COMMAND --help   a command's options
  thaw --version        print the version

Quick start:
  thaw serve --examples &
  echo '{"a":1}' | thaw invoke json
  thaw new hello --lang c && cd hello && thaw deploy && echo hi | thaw invoke hello

Client commands talk to $THAW_URL (default http://127.0.0.1:8080) with the
bearer token in $THAW_TOKEN. Exit status: 0 ok, 1 failed, 2 usage error.
`;
}

export function commandHelp(c: Command): string {
  const flags = c.flags.filter((f) => !f.hidden);
  const all = [...flags, HELP];
  const width = Math.min(32, Math.max(...all.map((f) => flagLabel(f).length)) + 2);
  const rows = all.map((f) => {
    const label = flagLabel(f);
    return label.length >= width ? `  ${label}\n  ${" ".repeat(width)}${f.help}` : `  ${label.padEnd(width)}${f.help}`;
  });
  const synopsis = [`thaw ${c.name}`, flags.length ? "[options]" : "", c.args].filter(Boolean).join(" ");
  return [
    `usage: ${synopsis}`,
    "",
    `${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.`,
    ...(c.details ? ["", c.details] : []),
    "",
    "options:",
    ...rows,
    "",
  ].join("\n");
}

/** docs/cli.md: every command's --help, as one Markdown page. */
export function reference(): string {
  const sections = COMMANDS.map((c) => `## thaw ${c.name}\n\n\`\`\`\n${commandHelp(c)}\`\`\`\n`);
  return `# thaw command line

Generated from src/cli/commands.ts by \`bun src/cli/help.ts > docs/cli.md\`;
the same text as \`thaw COMMAND --help\`.

Client commands (deploy, invoke, job, functions, logs) talk to \`--url\`, else
\`$THAW_URL\`, else http://127.0.0.1:8080, with the bearer token in
\`$THAW_TOKEN\`. Errors are one line on stderr: \`thaw: CODE: MESSAGE\` with the
server's error code, \`thaw: cannot reach URL: REASON\` when there is no server.
Exit status: 0 ok, 1 failed, 2 usage error (\`thaw run\`: the module's own).

${COMMANDS.map((c) => `- [\`thaw ${c.name}\`](#thaw-${c.name}): ${c.summary}`).join("\n")}

${sections.join("\n")}`;
}

if (import.meta.main) process.stdout.write(reference());
