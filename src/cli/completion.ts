// `thaw completion bash|zsh|fish`: a completion script generated from the
// command table (src/cli/commands.ts), so it offers exactly the commands and
// flags that --help lists. Function names (for invoke, logs, deploy --name)
// come from `thaw functions` at the moment of completion.
//
//   bash: source <(thaw completion bash)
//   zsh:  source <(thaw completion zsh)     (after compinit)
//   fish: thaw completion fish | source

import { COMMANDS, type Completion, type Flag } from "./commands.ts";
import { UsageError } from "./common.ts";

const visible = (flags: Flag[]) => flags.filter((f) => !f.hidden);
const GLOBAL = ["--help", "--version"];

export async function completionCommand(argv: string[]): Promise<number> {
  const [shell, ...extra] = argv;
  const script = shell === "bash" ? bash() : shell === "zsh" ? zsh() : shell === "fish" ? fish() : undefined;
  if (!script || extra.length) throw new UsageError("needs one of bash, zsh, fish");
  process.stdout.write(script);
  return 0;
}

const FUNCTIONS = "thaw functions 2>/dev/null | awk '{print $1}'";

function bashValues(c: Completion | undefined): string {
  if (c === "file") return `COMPREPLY=($(compgen -f -- "$cur"))`;
  if (c === "dir") return `COMPREPLY=($(compgen -d -- "$cur"))`;
  if (c === "function") return `COMPREPLY=($(compgen -W "$(${FUNCTIONS})" -- "$cur"))`;
  if (c) return `COMPREPLY=($(compgen -W "${c.join(" ")}" -- "$cur"))`;
  return "COMPREPLY=()";
}

function bash(): string {
  const cases = COMMANDS.map((cmd) => {
    const flags = visible(cmd.flags);
    const valued = flags.filter((f) => f.value);
    const prev = valued.map((f) => `        ${[`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])].join("|")}) ${bashValues(f.complete)}; return ;;`);
    const words = [...flags.flatMap((f) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])]), "--help"].join(" ");
    return `    ${cmd.name})
      case "$prev" in
${prev.join("\n")}
      esac
      if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "${words}" -- "$cur")); else ${bashValues(cmd.complete)}; fi ;;`;
  });
  return `# thaw completion for bash: source <(thaw completion bash)
_thaw() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" cmd="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    [[ \${COMP_WORDS[i]} != -* ]] && { cmd="\${COMP_WORDS[i]}"; break; }
  done
  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "${COMMANDS.map((c) => c.name).join(" ")} ${GLOBAL.join(" ")}" -- "$cur"))
    return
  fi
  case "$cmd" in
${cases.join("\n")}
  esac
}
complete -o filenames -F _thaw thaw
`;
}

/** Text inside a single-quoted zsh spec: `'` closes and reopens the quote; _arguments wants [ ] : escaped. */
const zshText = (s: string) => s.replace(/[\\[\]:]/g, "\\$&").replaceAll("'", "'\\''");

function zshAction(c: Completion | undefined): string {
  if (c === "file") return "_files";
  if (c === "dir") return "_files -/";
  if (c === "function") return "_thaw_functions";
  if (c) return `(${c.join(" ")})`;
  return "";
}

function zshFlag(f: Flag): string {
  const value = f.value ? `:${zshText(f.value)}:${zshAction(f.complete)}` : "";
  const help = `[${zshText(f.help)}]`;
  if (f.short) return `'(-${f.short} --${f.name})'{-${f.short},--${f.name}}'${help}${value}'`;
  return `'${f.multiple ? "*" : ""}--${f.name}${help}${value}'`;
}

function zsh(): string {
  const commands = COMMANDS.map((c) => `    '${c.name}:${zshText(c.summary)}'`);
  const cases = COMMANDS.map((cmd) => {
    const specs = [...visible(cmd.flags).map(zshFlag), "'(-h --help)'{-h,--help}'[print usage]'"];
    // Every positional needs a spec, or _arguments gives up on the line.
    if (cmd.args) specs.push(`'1:${zshText(cmd.args.replace(/[[\]]/g, "").split(" ")[0]!)}:${zshAction(cmd.complete)}'`, "'*: :_default'");
    return `    ${cmd.name}) _arguments -s \\\n      ${specs.join(" \\\n      ")} ;;`;
  });
  return `#compdef thaw
# thaw completion for zsh: source <(thaw completion zsh)   (after compinit)
_thaw_functions() {
  local -a fns
  fns=(\${(f)"$(${FUNCTIONS})"})
  compadd -a fns
}
_thaw() {
  local -a commands
  commands=(
${commands.join("\n")}
  )
  if (( CURRENT == 2 )); then
    _describe 'command' commands
    compadd -- ${GLOBAL.join(" ")}
    return
  fi
  local cmd=\${words[2]}
  shift words
  (( CURRENT-- ))
  case $cmd in
${cases.join("\n")}
  esac
}
compdef _thaw thaw
`;
}

const fishText = (s: string) => `'${s.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;

function fishValues(c: Completion | undefined): string {
  if (c === "file") return "-r -F";
  if (c === "dir") return "-x -a '(__fish_complete_directories)'";
  if (c === "function") return `-x -a '(${FUNCTIONS.replace("'{print $1}'", '"{print \\$1}"')})'`;
  if (c) return `-x -a ${fishText(c.join(" "))}`;
  return "-x";
}

function fish(): string {
  const lines = [
    "# thaw completion for fish: thaw completion fish | source",
    "complete -c thaw -f",
    "complete -c thaw -n __fish_use_subcommand -l help -s h -d 'print usage'",
    "complete -c thaw -n __fish_use_subcommand -l version -d 'print the version'",
  ];
  for (const cmd of COMMANDS) {
    lines.push(`complete -c thaw -n __fish_use_subcommand -a ${cmd.name} -d ${fishText(cmd.summary)}`);
    const when = `-n '__fish_seen_subcommand_from ${cmd.name}'`;
    for (const f of visible(cmd.flags)) {
      const value = f.value ? ` ${fishValues(f.complete)}` : "";
      lines.push(`complete -c thaw ${when} -l ${f.name}${f.short ? ` -s ${f.short}` : ""}${value} -d ${fishText(f.help)}`);
    }
    if (cmd.complete === "file") lines.push(`complete -c thaw ${when} -F`);
    else if (cmd.complete) lines.push(`complete -c thaw ${when} ${fishValues(cmd.complete)}`);
  }
  return `${lines.join("\n")}\n`;
}
