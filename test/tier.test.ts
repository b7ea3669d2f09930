// Tiered compilation through the real pipeline: the fast tier runs the WASI
// conformance and trap modules exactly as the optimized tier does, a large
// module split into several C units links and runs, and on a real server a
// deploy is callable on the fast tier, then swaps to the optimized one
// without a failed call, and a redeploy or delete during the background
// build is never undone by it.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { type Artifact, compile, type Tier } from "../src/compiler/compile.ts";
import { CompileQueue } from "../src/compiler/queue.ts";
import { splitUnits } from "../src/compiler/split.ts";
import { DATA_DIR, sharedEngine, text, wasmPath } from "./helpers.ts";
import { putModule, type ServerProcess, startServer } from "./server.ts";
import { wat } from "./wat.ts";

const enc = (s: string) => new TextEncoder().encode(s);

async function run(a: Artifact, stdin = "", limits = {}) {
  const engine = sharedEngine();
  const mod = engine.load(a.soPath, a.snapshotPath, { ...(await import("../src/engine/engine.ts")).DEFAULT_LIMITS, ...limits });
  const inst = mod.restore();
  try {
    return await engine.call(inst, { stdin: enc(stdin) });
  } finally {
    inst.free();
    mod.release();
  }
}

const build = (name: string, tier: Tier) =>
  compile(readFileSync(wasmPath(name)), { dataDir: DATA_DIR, engine: sharedEngine(), tier });

describe("the fast tier", () => {
  for (const [name, status] of [
    ["trap_unreachable", "unreachable"],
    ["trap_oob", "out_of_bounds"],
    ["trap_div0", "divide_by_zero"],
    ["trap_recursion", "stack_exhaustion"],
  ] as const)
    test(`${name} traps as ${status}`, async () => {
      const a = await build(name, "fast");
      expect(a.meta.tier).toBe("fast");
      expect((await run(a, "7\n")).status).toBe(status);
    });

  test("WASI conformance: clocks, random, yield, sleep and a refused open", async () => {
    const r = await run(await build("wasi_probe", "fast"));
    expect(text(r.stdout)).toBe("clock ok\nclock_res ok\nrandom ok\nyield ok\nsleep ok\nopen errno=76\n");
  });

  test("kernel: the native build's checksum; primes: wizer.initialize's table is in the fast snapshot", async () => {
    const native = Bun.spawnSync([`${import.meta.dir}/../functions/build/kernel-native`], { stdin: enc("20000") });
    expect(text((await run(await build("kernel", "fast"), "20000")).stdout)).toBe(native.stdout.toString());
    const fast = await run(await build("primes", "fast"), "100");
    const optimized = await run(await build("primes", "optimized"), "100");
    expect(fast.status).toBe("ok");
    expect(text(fast.stdout)).toBe(text(optimized.stdout));
  });

  for (const name of ["simd_int", "simd_float", "simd_memory"])
    test(`${name}: the same output as the optimized tier`, async () => {
      const fast = await run(await build(name, "fast"));
      const optimized = await run(await build(name, "optimized"));
      expect(fast.status).toBe("ok");
      expect(fast.stdout.length).toBeGreaterThan(0);
      expect(text(fast.stdout)).toBe(text(optimized.stdout));
    });

  test("memory.grow past the cap returns -1 to the module", async () => {
    const r = await run(await build("memory_bomb", "fast"), "", { memoryMiB: 4 });
    expect(r.growRefused).toBe(true);
  });

  test("each tier has its own artifact key; auto takes the optimized one once it is cached", async () => {
    const bytes = readFileSync(wasmPath("echo"));
    const opts = { dataDir: DATA_DIR, engine: sharedEngine() };
    const fast = await compile(bytes, { ...opts, tier: "fast" });
    const optimized = await compile(bytes, { ...opts, tier: "optimized" });
    expect(fast.meta.key).not.toBe(optimized.meta.key);
    expect((await compile(bytes, { ...opts, tier: "auto" })).meta.key).toBe(optimized.meta.key);
    expect((await compile(bytes, opts)).meta.key).toBe(optimized.meta.key);
  });
});

/** N functions called through one table (call_indirect checks each against the shared type
 * table), the last one reading a passive data segment with memory.init; _start writes the
 * sum of f_i(i) to stdout as 4 little-endian bytes. */
function manyFunctions(n: number, k: number): { bytes: Uint8Array; expected: number } {
  const funcs: string[] = [];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const ops: string[] = [];
    let x = i;
    for (let j = 0; j < k; j++) {
      ops.push(`(local.set 0 (i32.rotl (i32.add (local.get 0) (i32.const ${i * 7 + j})) (i32.const 3)))`);
      x = (x + i * 7 + j) >>> 0;
      x = ((x << 3) | (x >>> 29)) >>> 0;
    }
    if (i === n - 1) {
      ops.push("(memory.init $seg (i32.const 100) (i32.const 0) (i32.const 4))");
      ops.push("(local.set 0 (i32.add (local.get 0) (i32.load8_u (i32.const 101))))");
      x = (x + "h".charCodeAt(0)) >>> 0;
    }
    sum = (sum + x) >>> 0;
    funcs.push(`(func $f${i} (type $t) ${ops.join(" ")} (local.get 0))`);
  }
  const source = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (type $t (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (table ${n} funcref)
  (elem (i32.const 0) func ${funcs.map((_, i) => `$f${i}`).join(" ")})
  (data $seg "thaw")
  ${funcs.join("\n  ")}
  (func (export "_start") (local $i i32) (local $sum i32)
    (loop $l
      (local.set $sum (i32.add (local.get $sum) (call_indirect (type $t) (local.get $i) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const ${n}))))
    (i32.store (i32.const 0) (local.get $sum))
    (i32.store (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32)))))`;
  return { bytes: wat(source), expected: sum };
}

describe("split builds", () => {
  test("a module over a unit's worth of C is built as several units that link and run", async () => {
    const { bytes, expected } = manyFunctions(900, 12);
    const a = await compile(bytes, { dataDir: DATA_DIR, engine: sharedEngine(), tier: "fast", jobs: 2 });
    expect(a.meta.units).toBeGreaterThan(1);
    const r = await run(a);
    expect(r.status).toBe("ok");
    expect(new DataView(r.stdout.buffer, r.stdout.byteOffset, 4).getUint32(0, true)).toBe(expected);
  }, 120_000);

  test("C of any other shape is built whole", () => {
    expect(splitUnits("int main(void) { return 0; }\n", 4)).toBeUndefined();
    const one = "static u32 w2c_f0(Z_i* instance) {\n  return 0;\n}\n";
    expect(splitUnits(`${one}\n${one.replace("f0", "f1")}`, 1)).toBeUndefined();
    // A top-level line between two bodies: not the shape split.ts knows.
    expect(splitUnits(`${one}int stray;\n${one.replace("f0", "f1")}\nstatic u32 w2c_f2(Z_i* i);\n`, 2)).toBeUndefined();
  });
});

describe("deploys on a server", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(async () => {
    await s.stop();
  });

  const view = async (name: string) => (await fetch(`${s.url}/v1/functions/${name}`)).json() as Promise<Record<string, any>>;
  const call = (name: string, body = "") => fetch(`${s.url}/v1/functions/${name}/invoke`, { method: "POST", body });
  async function until(what: () => Promise<boolean>, ms = 90_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await what())) {
      if (Date.now() > deadline) throw new Error("timed out");
      await Bun.sleep(50);
    }
  }

  test("callable on the fast tier, then the optimized code swaps in while calls never fail", async () => {
    const res = await putModule(s, "words", "wordcount");
    expect(res.status).toBe(201);
    const first = (await res.json()) as { tier: string };
    expect(first.tier).toBe("fast");
    let sawBuild = false;
    let calls = 0;
    const tiers = new Set<string | null>();
    await until(async () => {
      const r = await call("words", "a b a");
      expect(r.status).toBe(200);
      expect(await r.text()).toContain('"a"');
      tiers.add(r.headers.get("x-thaw-tier"));
      calls++;
      const v = await view("words");
      if (v.build) {
        sawBuild = true;
        expect(v.build.tier).toBe("optimized");
        expect(["queued", "validating", "translating", "compiling", "snapshotting"]).toContain(v.build.stage);
      }
      return v.tier === "optimized";
    });
    expect(sawBuild).toBe(true);
    expect(calls).toBeGreaterThan(1);
    expect(tiers.has("fast")).toBe(true);
    expect((await call("words", "a")).headers.get("x-thaw-tier")).toBe("optimized");
    const v = await view("words");
    expect(v.version).toBe(1);
    expect(v.build).toBeUndefined();
    expect(v.pool.calls).toBeGreaterThanOrEqual(calls);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toContain('thaw_function_tier{tenant="default",function="words",tier="optimized"} 1');
    expect(metrics).toMatch(/thaw_tier_upgrades_total\{result="ok"\} [1-9]/);
  }, 120_000);

  test("a module whose optimized artifact exists is deployed straight onto it", async () => {
    const res = await putModule(s, "words-again", "wordcount");
    expect(res.status).toBe(201);
    expect(((await res.json()) as { tier: string }).tier).toBe("optimized");
  });

  test("a redeploy during the background build is not replaced by the old version's optimized code", async () => {
    expect((await putModule(s, "swap", "hello")).status).toBe(201);
    expect((await putModule(s, "swap", "echo")).status).toBe(201);
    await until(async () => (await view("swap")).tier === "optimized" && !(await view("swap")).build);
    const v = await view("swap");
    expect(v.version).toBe(2);
    expect(await (await call("swap", "still echo")).text()).toBe("still echo");
    expect(s.logs.filter((l) => l.msg === "optimized code swapped in" && l.function === "swap").map((l) => l.version)).toEqual([2]);
  }, 120_000);

  test("a delete during the background build stays deleted", async () => {
    expect((await putModule(s, "gone", "json")).status).toBe(201);
    expect((await fetch(`${s.url}/v1/functions/gone`, { method: "DELETE" })).status).toBe(204);
    // The optimized build of `gone` is skipped or thrown away; `later` queues behind it.
    expect((await putModule(s, "later", "primes")).status).toBe(201);
    await until(async () => (await view("later")).tier === "optimized");
    expect((await fetch(`${s.url}/v1/functions/gone`)).status).toBe(404);
    expect((await call("gone")).status).toBe(404);
    expect(s.logs.some((l) => l.msg === "optimized code swapped in" && l.function === "gone")).toBe(false);
  }, 120_000);
});

test("a node stopped before its optimized build finishes it after a restart", async () => {
  let s = await startServer();
  try {
    const res = await putModule(s, "thumb", "thumbnail");
    expect(((await res.json()) as { tier: string }).tier).toBe("fast");
    await s.stop();
    s = await startServer({ dataDir: s.dataDir });
    const deadline = Date.now() + 90_000;
    let tier = "";
    while (tier !== "optimized" && Date.now() < deadline) {
      tier = (((await (await fetch(`${s.url}/v1/functions/thumb`)).json()) as { tier: string }).tier);
      await Bun.sleep(100);
    }
    expect(tier).toBe("optimized");
    const header = enc("P6\n256 128\n255\n");
    const img = new Uint8Array(header.length + 256 * 128 * 3).fill(7);
    img.set(header);
    const out = new Uint8Array(await (await fetch(`${s.url}/v1/functions/thumb/invoke`, { method: "POST", body: img })).arrayBuffer());
    expect(text(out.subarray(0, 13))).toBe("P6\n64 32\n255\n");
  } finally {
    await s.stop();
  }
}, 120_000);

test("a deploy the fast tier's compiler refuses is built on the optimized tier", async () => {
  // THAW_FAST_CC names the fast tier's compiler; `false` fails every build.
  const s = await startServer({ env: { THAW_FAST_CC: "false" } });
  try {
    const res = await putModule(s, "hello", "hello");
    expect(res.status).toBe(201);
    expect(((await res.json()) as { tier: string }).tier).toBe("optimized");
    expect(await (await fetch(`${s.url}/v1/functions/hello/invoke`, { method: "POST" })).text()).toBe("Hello, world!\n");
    expect(s.logs.some((l) => l.msg === "fast tier failed: building the optimized tier")).toBe(true);
  } finally {
    await s.stop();
  }
}, 120_000);

describe("the compile queue", () => {
  const order: string[] = [];
  const job = (name: string, gate: Promise<void>) => async () => {
    order.push(`start ${name}`);
    await gate;
    order.push(`end ${name}`);
  };

  test("deploys go before waiting background builds, which leave one slot free for them", async () => {
    order.length = 0;
    const q = new CompileQueue(2, 10);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const bg1 = q.enter({ priority: "background" })!.run(job("bg1", gate));
    // Only one background build at a time on two slots.
    const bg2 = q.enter({ priority: "background" })!.run(job("bg2", Promise.resolve()));
    const deploy = q.enter()!.run(job("deploy", Promise.resolve()));
    await deploy;
    expect(order).toEqual(["start bg1", "start deploy", "end deploy"]);
    release();
    await Promise.all([bg1, bg2]);
    expect(order.slice(3)).toEqual(["end bg1", "start bg2", "end bg2"]);
  });

  test("a compile weighs its C units, capped at the node's concurrency; full queues refuse deploys only", () => {
    const q = new CompileQueue(2, 1);
    expect(q.enter({ weight: 8 })!.slots).toBe(2);
    expect(q.enter({ weight: 8, priority: "background" })!.slots).toBe(1);
    expect(q.enter()).toBeDefined();
    expect(q.enter()).toBeUndefined();
    expect(q.enter({ priority: "background" })).toBeDefined();
    expect(q.enter({ force: true })).toBeDefined();
  });
});
