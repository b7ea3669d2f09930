// `bun run bench NAME`: runs one benchmark from scripts/bench/. Each prints a
// table and ends with one line of JSON holding every figure it measured.

const benches: Record<string, () => Promise<unknown>> = {
  engine: () => import("./bench/engine.ts"),
  invoke: () => import("./bench/invoke.ts"),
  density: () => import("./bench/density.ts"),
  trace: () => import("./bench/trace.ts"),
  jobs: () => import("./bench/jobs.ts"),
  fairness: () => import("./bench/fairness.ts"),
  deploy: () => import("./bench/deploy.ts"),
};

const name = process.argv[2];
const load = name ? benches[name] : undefined;
if (!load) {
  console.error(`usage: bun run bench <${Object.keys(benches).join("|")}>`);
  process.exit(2);
}
await load();

export {};
