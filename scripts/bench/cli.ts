// `bun run bench cli`: how long the command line takes to start and answer,
// from the source (bun src/cli.ts) and from the single binary
// (scripts/build-binary.sh, built into a scratch directory here). The target
// is `thaw --help` and client commands well under 0.4 s: only `serve`, `run`
// and `compile` may load the server or the compiler.
//
// Each round runs every command once, interleaved, so machine noise falls
// on all of them alike; the peer is bun running an empty file, the floor any
// Bun program pays.
//
//   rows     median and p90 wall time per command, and its ratio to the peer
//   JSON     {"<command>_ms": median, ..., "peer_ms": median}

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { benchScope, percentile, ROOT, startThaw } from "./thaw-process.ts";

const ROUNDS = Number(process.env.ROUNDS ?? 15);
const scope = benchScope("cli");

const empty = join(scope.tmp, "empty.ts");
writeFileSync(empty, "");
const binary = join(scope.tmp, "thaw");
const build = Bun.spawnSync(["bash", join(ROOT, "scripts/build-binary.sh"), binary], { stderr: "inherit" });
if (build.exitCode !== 0) throw new Error("scripts/build-binary.sh failed");

const url = await startThaw(join(scope.tmp, "data"), scope.procs);
const deployed = await fetch(`${url}/v1/functions/hello?wait=true`, {
  method: "PUT",
  headers: { "content-type": "application/wasm" },
  body: Bun.file(join(ROOT, "functions/build/hello.wasm")),
});
if (!deployed.ok) throw new Error(`deploy failed: ${deployed.status} ${await deployed.text()}`);

const src = [process.execPath, join(ROOT, "src/cli.ts")];
const commands: Record<string, string[]> = {
  peer: [process.execPath, empty],
  help: [...src, "--help"],
  version: [...src, "--version"],
  deploy_help: [...src, "deploy", "--help"],
  functions: [...src, "functions", "--url", url],
  invoke: [...src, "invoke", "hello", "--url", url, "--data", ""],
  completion: [...src, "completion", "bash"],
  binary_help: [binary, "--help"],
  binary_functions: [binary, "functions", "--url", url],
  binary_invoke: [binary, "invoke", "hello", "--url", url, "--data", ""],
};

const times: Record<string, number[]> = Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
for (let round = 0; round < ROUNDS; round++)
  for (const [name, argv] of Object.entries(commands)) {
    const t0 = performance.now();
    const p = Bun.spawnSync(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    times[name]!.push(performance.now() - t0);
    if (p.exitCode !== 0) throw new Error(`${argv.join(" ")} failed (${p.exitCode}): ${p.stderr}`);
  }

const peer = percentile(times.peer!, 50);
console.log(`${ROUNDS} interleaved rounds; peer = bun running an empty file\n`);
console.log(`${"command".padEnd(20)} ${"p50 ms".padStart(8)} ${"p90 ms".padStart(8)} ${"x peer".padStart(7)}`);
const figures: Record<string, number> = {};
for (const [name, xs] of Object.entries(times)) {
  const p50 = percentile(xs, 50);
  figures[`${name}_ms`] = Math.round(p50 * 10) / 10;
  console.log(`${name.padEnd(20)} ${p50.toFixed(1).padStart(8)} ${percentile(xs, 90).toFixed(1).padStart(8)} ${(p50 / peer).toFixed(1).padStart(7)}`);
}
await scope.cleanup();
console.log(JSON.stringify(figures));
