// `thaw completion bash|zsh|fish`, exercised by the real shells: bash's
// completion function is called as bash would call it, fish answers
// `complete -C`, and an interactive zsh on a pseudo-terminal is sent TAB.
// Function names are completed from a real server.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { COMMANDS } from "../src/cli/commands.ts";
import { ROOT } from "./helpers.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";

let server: ServerProcess;
/** A directory with a `thaw` on it, as an installed thaw would be. */
const BIN = mkdtempSync(join(tmpdir(), "thaw-bin-"));
const WORK = mkdtempSync(join(tmpdir(), "thaw-completion-"));

beforeAll(async () => {
  writeFileSync(join(BIN, "thaw"), `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, "src/cli.ts")}" "$@"\n`);
  chmodSync(join(BIN, "thaw"), 0o755);
  writeFileSync(join(WORK, "input.txt"), "");
  writeFileSync(join(WORK, "index.wasm"), "");
  server = await startServer();
  expect((await putModule(server, "wordy", "wordcount")).status).toBe(201);
});
afterAll(async () => {
  await server.stop();
});

function shell(argv: string[], script: string) {
  const p = Bun.spawnSync([...argv, script], {
    cwd: WORK,
    env: { ...process.env, PATH: `${BIN}:${process.env.PATH}`, THAW_URL: server.url, HOME: WORK },
    stdin: "ignore",
    timeout: 30_000,
  });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

function need(program: string) {
  if (!Bun.which(program)) throw new Error(`${program} is not installed: this test needs it (apt-get install -y ${program}; scripts/test.sh installs it)`);
}

/** What bash's completion offers for the words typed so far (the last one is being completed). */
function bashComplete(...words: string[]): string[] {
  const quoted = words.map((w) => `'${w}'`).join(" ");
  const r = shell(["bash", "-c"], `source <(thaw completion bash) && COMP_WORDS=(${quoted}) && COMP_CWORD=${words.length - 1} && _thaw && printf '%s\\n' "\${COMPREPLY[@]}"`);
  expect(r.err).toBe("");
  return r.out.split("\n").filter(Boolean).sort();
}

describe("bash", () => {
  test("commands, flags, flag values, files and function names", () => {
    expect(bashComplete("thaw", "")).toEqual([...COMMANDS.map((c) => c.name), "--help", "--version"].sort());
    expect(bashComplete("thaw", "de")).toEqual(["deploy"]);
    expect(bashComplete("thaw", "deploy", "--n")).toEqual(["--name", "--no-build", "--no-wait"]);
    expect(bashComplete("thaw", "new", "x", "--lang", "")).toEqual(["assemblyscript", "c", "cpp", "rust"]);
    expect(bashComplete("thaw", "completion", "")).toEqual(["bash", "fish", "zsh"]);
    expect(bashComplete("thaw", "run", "--stdin", "inp")).toEqual(["input.txt"]);
    expect(bashComplete("thaw", "run", "ind")).toEqual(["index.wasm"]);
    expect(bashComplete("thaw", "invoke", "wo")).toEqual(["wordy"]);
    expect(bashComplete("thaw", "logs", "-")).toContain("--follow");
    expect(bashComplete("thaw", "compile", "--")).not.toContain("--build-dir");
  });
});

describe("fish", () => {
  const complete = (line: string) => {
    need("fish");
    const r = shell(["fish", "-c"], `thaw completion fish | source; complete -C '${line}'`);
    expect(r.err).toBe("");
    return r.out.split("\n").filter(Boolean).map((l) => l.split("\t")[0]!).sort();
  };

  test("the script parses, and completes commands, flags, values and function names", () => {
    need("fish");
    const script = Bun.spawnSync([process.execPath, join(ROOT, "src/cli.ts"), "completion", "fish"]).stdout;
    expect(Bun.spawnSync(["fish", "--no-execute"], { stdin: script }).exitCode).toBe(0);
    expect(complete("thaw dep")).toEqual(["deploy"]);
    expect(complete("thaw deploy --no-")).toEqual(["--no-build", "--no-wait"]);
    expect(complete("thaw new x --lang ")).toEqual(["assemblyscript", "c", "cpp", "rust"]);
    expect(complete("thaw invoke wo")).toEqual(["wordy"]);
  });
});

/**
 * What zsh's completion offers for `line`: an interactive zsh on a
 * pseudo-terminal (zpty) with the script loaded under compinit, compadd
 * wrapped to print the candidates it is given, and TAB pressed.
 */
const ZSH_CAPTURE = `zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z 'PROMPT= ; RPROMPT= ; autoload -U compinit; compinit -u -D; source <(thaw completion zsh)'
zpty -w z 'compadd () { if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then builtin compadd "$@"; return $?; fi; typeset -a hits; builtin compadd -A hits "$@"; local ret=$?; (( $#hits )) && print -r -l -- "<<CAND" $hits "CAND>>"; return $ret }'
zpty -w z 'zstyle ":completion:*" menu no; bindkey "^I" complete-word; print -r -- READY-$((40+2))'
zpty -r z line '*READY-42*'
zpty -w -n z "$1"$'\\t'
out=""
for i in {1..100}; do
  zpty -r -t z line && out+="$line" || sleep 0.1
  [[ $out == *"CAND>>"* ]] && break
done
zpty -d z
print -r -- "$out" | tr -d '\\r' | sed -n '/<<CAND/,/CAND>>/p' | grep -v CAND
`;

describe("zsh", () => {
  const complete = (line: string) => {
    need("zsh");
    const script = join(WORK, "capture.zsh");
    writeFileSync(script, ZSH_CAPTURE);
    const r = shell(["zsh", "-f", script], line);
    return r.out.split("\n").filter(Boolean).sort();
  };

  test("the script registers _thaw under compinit and completes commands, flags, values, files and function names", () => {
    need("zsh");
    const r = shell(["zsh", "-f", "-c"], `autoload -U compinit && compinit -u -D && source <(thaw completion zsh) && print -r -- $_comps[thaw]`);
    expect(r.err).toBe("");
    expect(r.out).toBe("_thaw\n");
    expect(complete("thaw de")).toEqual(["deploy"]);
    expect(complete("thaw deploy --n")).toEqual(["--name", "--no-build", "--no-wait"]);
    expect(complete("thaw new x --lang ")).toEqual(["assemblyscript", "c", "cpp", "rust"]);
    expect(complete("thaw run --stdin inp")).toEqual(["input.txt"]);
    expect(complete("thaw push in x --pl")).toEqual(["--plain-http"]);
    expect(complete("thaw invoke wo")).toEqual(["wordy"]);
  });
});

test("an unknown shell is a usage error", () => {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "src/cli.ts"), "completion", "powershell"]);
  expect(p.exitCode).toBe(2);
  expect(p.stderr.toString()).toBe("thaw completion: needs one of bash, zsh, fish (see thaw completion --help)\n");
});
