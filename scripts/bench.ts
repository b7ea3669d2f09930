// `bun run bench NAME`: runs one benchmark from scripts/bench/. Each prints a
// table and ends with one line of JSON holding every figure it measured.
//
// Every benchmark lists what it needs beyond bun (tools on PATH, built
// files). They are checked before the benchmark is loaded, so a missing one
// is one line naming it and the command that provides it (exit 2), not a
// stack trace from deep inside. `bash scripts/setup.sh` provides the
// compiler toolchain and builds; `bash scripts/test.sh` also installs the
// test- and bench-only tools (wrk, redis-server, ...).
//
// To add a benchmark: one row in BENCHES, with its prerequisites.

import { existsSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");

export interface Prerequisite {
  /** What is missing, as the user should read it. */
  name: string;
  present: () => boolean;
  /** The command that provides it. */
  install: string;
  /** The repository's script that provides it too, if one does. */
  script?: string;
}

const SETUP = "bash scripts/setup.sh";
const TEST = "bash scripts/test.sh";

/** A program on PATH, from a Debian package. */
export const tool = (cmd: string, pkg = cmd, script?: string): Prerequisite => ({
  name: cmd,
  present: () => Bun.which(cmd) !== null,
  install: `apt-get install -y ${pkg}`,
  script,
});
/** A file the repository builds. */
export const built = (path: string, how: string): Prerequisite => ({ name: path, present: () => existsSync(join(ROOT, path)), install: how, script: SETUP });

/** A file a Debian package installs. */
const system = (path: string, pkg: string): Prerequisite => ({ name: path, present: () => existsSync(path), install: `apt-get install -y ${pkg}`, script: SETUP });

const LIBTHAW = built("native/build/libthaw.so", "make -C native");
const EXAMPLES = built("functions/build/hello.wasm", "make -C functions");
const COMPILER = [tool("wasm2c", "wabt", SETUP), tool("wasm-validate", "wabt", SETUP), tool("cc", "gcc", SETUP)];
/** What a thaw node needs to deploy the examples. */
const NODE = [LIBTHAW, EXAMPLES, ...COMPILER];

export interface Bench {
  load: () => Promise<unknown>;
  needs: Prerequisite[];
}

export const BENCHES: Record<string, Bench> = {
  engine: { load: () => import("./bench/engine.ts"), needs: [...NODE, built("functions/build/kernel-native", "make -C functions"), tool("node", "nodejs")] },
  invoke: { load: () => import("./bench/invoke.ts"), needs: [...NODE, tool("wrk", "wrk", TEST)] },
  density: { load: () => import("./bench/density.ts"), needs: NODE },
  trace: { load: () => import("./bench/trace.ts"), needs: NODE },
  jobs: { load: () => import("./bench/jobs.ts"), needs: [...NODE, tool("redis-server", "redis-server", TEST)] },
  fairness: { load: () => import("./bench/fairness.ts"), needs: NODE },
  cli: { load: () => import("./bench/cli.ts"), needs: NODE },
  deploy: {
    load: () => import("./bench/deploy.ts"),
    needs: [LIBTHAW, ...COMPILER, tool("clang", "clang", SETUP), tool("clang++", "clang", SETUP), tool("rustc", "rustc", SETUP),
      system("/usr/lib/rustlib/wasm32-wasi", "libstd-rust-dev-wasm32"), system("/usr/lib/wasm32-wasi/libc++.a", "libc++-dev-wasm32 libc++abi-14-dev-wasm32")],
  },
};

/** One line naming what is missing and how to get it; undefined when nothing is. */
export function missingLine(name: string, bench: Bench): string | undefined {
  const missing = bench.needs.filter((p) => !p.present());
  if (!missing.length) return undefined;
  // One apt-get for all the packages, then the builds, in the order listed.
  const packages = [...new Set(missing.filter((p) => p.install.startsWith("apt-get install -y ")).map((p) => p.install.slice(19)))];
  const commands = [...(packages.length ? [`apt-get install -y ${packages.join(" ")}`] : []), ...new Set(missing.filter((p) => !p.install.startsWith("apt-get")).map((p) => p.install))];
  // test.sh runs setup.sh first, so it provides everything either provides.
  const scripts = new Set(missing.map((p) => p.script));
  const script = scripts.has(undefined) ? "" : scripts.has(TEST) ? ` (or ${TEST})` : ` (or ${SETUP})`;
  return `bench ${name}: missing ${missing.map((p) => p.name).join(", ")}; run \`${commands.join(" && ")}\`${script}`;
}

if (import.meta.main) {
  const name = process.argv[2];
  const bench = name ? BENCHES[name] : undefined;
  if (!bench) {
    const help = name === "--help" || name === "-h";
    (help ? console.log : console.error)(`usage: bun run bench <${Object.keys(BENCHES).join("|")}>`);
    process.exit(help ? 0 : 2);
  }
  const missing = missingLine(name!, bench);
  if (missing) {
    console.error(missing);
    process.exit(2);
  }
  await bench.load();
}
