// Hostile modules against a real `thaw serve`: each module here was once
// able to run host code, hijack a call, crash or hang the node, or leak one
// call's data into the next. Every test deploys through the real compiler,
// calls over real HTTP, and then checks the node is still up and serving
// other functions.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DATA_DIR, ROOT } from "./helpers.ts";
import { type ServerProcess, startServer } from "./server.ts";
import { command, wat } from "./wat.ts";

// biome-ignore lint: response bodies are checked field by field below.
const json = (res: Response): Promise<any> => res.json();

function deploy(s: ServerProcess, name: string, module: Uint8Array, query = "") {
  return fetch(`${s.url}/v1/functions/${name}?wait=true${query ? `&${query}` : ""}`, {
    method: "PUT",
    body: module,
    headers: { "content-type": "application/wasm" },
  });
}

const invoke = (s: ServerProcess, name: string, body: string | Uint8Array = "", query = "") =>
  fetch(`${s.url}/v1/functions/${name}/invoke${query ? `?${query}` : ""}`, { method: "POST", body });

/** WAT for "write these bytes to stdout" using memory at [0, 8) for the iovec. */
const print = (offset: number, len: number) => `
  (i32.store (i32.const 0) (i32.const ${offset}))
  (i32.store (i32.const 4) (i32.const ${len}))
  (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))`;

/** A module that prints `text` from its _start: the node's "still fine" probe. */
const hello = (text: string) => wat(command(print(64, text.length), `(data (i32.const 64) "${text}")`));

/** Exports whose names carry C code that would touch `marker` if it ever ran. */
function namesAsCode(marker: string) {
  const payload =
    `x */\\n#ifndef PWN\\n#define PWN\\n__attribute__((constructor)) static void pwn(void) ` +
    `{ system(\\"touch ${marker}\\"); }\\n#endif\\n/* `;
  return wat(
    command(print(64, 2), `(data (i32.const 64) "ok") (func (export "${payload}")) (export "\\2a/\\0a\\00\\c3\\a9" (memory 0))`),
  );
}

/** Exports named to forge wasm2c's export comments: the real _start prints "real". */
const forgedStart = () =>
  wat(`(module
    (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (memory 1)
    (data (i32.const 64) "real")
    (data (i32.const 80) "hijacked")
    (func (export "_start") ${print(64, 4)})
    (func (export "_start' */ /* export: '_start") ${print(80, 8)})
    (func (export "wizer.initialize' */ /* export: '_start") ${print(80, 8)}))`);

/** Grows to 65,536 pages, prints the last 16 bytes, then reads stdin into them. */
const fourGiB = () =>
  wat(`(module
    (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (memory 1)
    (func (export "_start")
      (if (i32.eq (memory.grow (i32.const 65535)) (i32.const -1)) (then unreachable))
      ${print(0xfffffff0 | 0, 16)}
      (i32.store (i32.const 0) (i32.const ${0xfffffff0 | 0}))
      (i32.store (i32.const 4) (i32.const 16))
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))))`);

/** Recursion that keeps 2,000 i64 locals live across each call: ~16 KB native frames. */
function deepFrames() {
  const locals = Array.from({ length: 2000 }, () => "i64").join(" ");
  const sum = Array.from({ length: 2000 }, (_, i) => `(local.get ${i + 1})`).reduce((a, b) => `(i64.add ${a} ${b})`);
  const init = Array.from({ length: 2000 }, (_, i) => `(local.set ${i + 1} (i64.extend_i32_u (i32.add (local.get 0) (i32.const ${i}))))`).join("\n");
  return wat(command("(drop (call $deep (i32.const 0)))", `
    (func $deep (param i32) (result i64) (local ${locals})
      ${init}
      (i64.add (call $deep (i32.add (local.get 0) (i32.const 1))) ${sum}))`));
}

/** A wasm start function that calls WASI (fd_write, random_get) while the snapshot is made. */
const startCallsWasi = () =>
  wat(`(module
    (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
    (memory 1)
    (global $seeded (mut i32) (i32.const 0))
    (data (i32.const 64) "started")
    (func $init (global.set $seeded (call $random_get (i32.const 128) (i32.const 8))) ${print(64, 3)})
    (start $init)
    (func (export "_start") (if (i32.eqz (global.get $seeded)) (then ${print(64, 7)}))))`);

/** random_get over 1 GiB of memory, forever: one host call is seconds of work. */
const slowHostCall = () =>
  wat(`(module
    (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
    (memory 1)
    (func (export "_start")
      (drop (memory.grow (i32.const 16383)))
      (loop $again (drop (call $random_get (i32.const 0) (i32.const 1073741824))) (br $again))))`);

async function stillServing(s: ServerProcess) {
  expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  const res = await invoke(s, "probe");
  expect(res.status).toBe(200);
  expect(await res.text()).toBe("alive");
}

describe("hostile modules through a real server", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    s = await startServer();
    expect((await deploy(s, "probe", hello("alive"))).status).toBe(201);
  });
  afterAll(async () => {
    await s.stop();
  });

  test("an export name carrying C code never becomes host code, and the module still runs", async () => {
    const marker = join(tmpdir(), `thaw-pwned-${process.pid}-server`);
    rmSync(marker, { force: true });
    const mod = namesAsCode(marker);
    const res = await deploy(s, "odd-names", mod);
    expect(res.status).toBe(201);
    const call = await invoke(s, "odd-names");
    expect(call.status).toBe(200);
    expect(await call.text()).toBe("ok");
    expect(existsSync(marker)).toBe(false);
    await stillServing(s);
  });

  test("an export name that forges the compiler's comments cannot replace _start", async () => {
    const mod = forgedStart();
    expect((await deploy(s, "forged", mod)).status).toBe(201);
    const call = await invoke(s, "forged");
    expect(await call.text()).toBe("real");
  });

  test("a 4 GiB memory works, and a call never sees the previous call's bytes at its top", async () => {
    const mod = fourGiB();
    expect((await deploy(s, "four-gib", mod, "memoryMiB=4096")).status).toBe(201);
    const zeros = new Uint8Array(16);
    for (let i = 0; i < 3; i++) {
      const call = await invoke(s, "four-gib", "SECRET-SECRET-16");
      expect(call.status).toBe(200);
      expect(new Uint8Array(await call.arrayBuffer())).toEqual(zeros);
    }
  });

  test("modules of many distinct function types, and an 80-parameter type, deploy and run", async () => {
    const vt = ["i32", "i64", "f32", "f64"];
    // 1,500 distinct signatures per module (param lists in base 4), and a
    // different result per module, so no two modules share a type. (The
    // native tests load 100,000 types per module; compiling that many here
    // would take minutes.)
    const types = (m: number) =>
      Array.from({ length: 1500 }, (_, i) => {
        const params = Array.from({ length: 6 }, (_, d) => vt[Math.floor(i / 4 ** d) % 4]).join(" ");
        return `(type (func (param ${params}) (result ${vt[m]})))`;
      }).join("\n");
    const params = Array.from({ length: 80 }, () => "i64").join(" ");
    for (const m of [0, 1]) {
      const mod = wat(command(`(drop (call $wide ${"(i64.const 1) ".repeat(80)})) ${print(64, 4)}`, `
        (data (i32.const 64) "wide")
        ${types(m)}
        (func $wide (param ${params}) (result i64) (local.get 79))`));
      expect((await deploy(s, `types-${m}`, mod)).status).toBe(201);
      expect(await (await invoke(s, `types-${m}`)).text()).toBe("wide");
    }
    await stillServing(s);
  });

  test("deep recursion with large native frames is a stack_exhaustion trap, not a crash", async () => {
    const mod = deepFrames();
    expect((await deploy(s, "deep", mod)).status).toBe(201);
    for (let i = 0; i < 2; i++) {
      const call = await invoke(s, "deep");
      expect(call.status).toBe(500);
      const err = await json(call);
      expect(err.error.code).toBe("function_trap");
      expect(err.error.trap).toBe("stack_exhaustion");
    }
    await stillServing(s);
  });

  test("a start function may call WASI while the snapshot is made", async () => {
    const mod = startCallsWasi();
    expect((await deploy(s, "start-wasi", mod)).status).toBe(201);
    expect(await (await invoke(s, "start-wasi")).text()).toBe("started");
  });

  test("tables count against the memory limit: growing them past it is refused", async () => {
    const grows = Array.from({ length: 8 }, (_, t) => `
      (if (i32.ne (table.grow $t${t} (ref.null func) (i32.const 16000000)) (i32.const -1)) (then ${print(64, 5)}))`).join("");
    const tables = Array.from({ length: 8 }, (_, t) => `(table $t${t} 1 funcref)`).join(" ");
    const mod = wat(command(grows, `(data (i32.const 64) "grown") ${tables}`));
    expect((await deploy(s, "table-bomb", mod, "memoryMiB=64")).status).toBe(201);
    const call = await invoke(s, "table-bomb");
    expect(call.status).toBe(200);
    expect(await call.text()).toBe("");
    await stillServing(s);
  });

  test("a timeout holds inside a long host call", async () => {
    const mod = slowHostCall();
    expect((await deploy(s, "slow-host", mod, "memoryMiB=1024&timeoutMs=100")).status).toBe(201);
    const t0 = performance.now();
    const call = await invoke(s, "slow-host");
    const elapsed = performance.now() - t0;
    expect(call.status).toBe(504);
    expect((await json(call)).error.code).toBe("function_timeout");
    expect(elapsed).toBeLessThan(1000);
    await stillServing(s);
  });

  async function settledBuilds(s: ServerProcess) {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const { functions } = (await json(await fetch(`${s.url}/v1/functions`))) as { functions: { build?: unknown }[] };
      if (functions.every((f) => f.build === undefined)) return;
      if (Date.now() > deadline) throw new Error("background builds did not end");
      await Bun.sleep(100);
    }
  }

  test("refused and failed builds leave nothing behind in the data directory", async () => {
    const bomb = wat(`(module (memory 1) (table 16000000 funcref) (func (export "_start")))`);
    const refused = await deploy(s, "table-snapshot", bomb);
    expect(refused.status).toBe(422);
    expect((await json(refused)).error.code).toBe("module_limit");
    const trapsAtInit = wat(`(module (memory 1) (func $boom unreachable) (start $boom) (func (export "_start")))`);
    const failed = await deploy(s, "init-trap", trapsAtInit);
    expect(failed.status).toBe(422);
    expect((await json(failed)).error.code).toBe("init_failed");
    // The earlier deploys' background optimized builds have build directories of their own.
    await settledBuilds(s);
    const leftovers = readdirSync(join(s.dataDir, "artifacts")).filter((f) => f.startsWith(".build-"));
    expect(leftovers).toEqual([]);
    expect((await fetch(`${s.url}/v1/functions`)).status).toBe(200);
    await stillServing(s);
  });
});

describe("the same modules through thaw run", () => {
  const dir = mkdtempSync(join(tmpdir(), "thaw-hostile-run-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function run(mod: Uint8Array, args: string[] = [], stdin = "") {
    const file = join(dir, `m${Math.random().toString(36).slice(2)}.wasm`);
    writeFileSync(file, mod);
    const t0 = performance.now();
    const r = Bun.spawnSync([process.execPath, join(ROOT, "src/cli.ts"), "run", "--data", DATA_DIR, ...args, file], {
      stdin: new TextEncoder().encode(stdin),
    });
    return { code: r.exitCode, signal: r.signalCode, out: r.stdout.toString(), err: r.stderr.toString(), ms: performance.now() - t0 };
  }

  test("names carrying C code never run, in the CLI either", () => {
    const marker = join(tmpdir(), `thaw-pwned-${process.pid}-run`);
    rmSync(marker, { force: true });
    const r = run(namesAsCode(marker));
    expect(r.out).toBe("ok");
    expect(r.code).toBe(0);
    expect(existsSync(marker)).toBe(false);
  });

  test("a forged export comment does not choose what runs", () => {
    expect(run(forgedStart()).out).toBe("real");
  });

  test("a 4 GiB memory works", () => {
    const r = run(fourGiB(), ["--memory", "4096"], "SECRET-SECRET-16");
    expect(r.code).toBe(0);
    expect(r.out).toBe("\0".repeat(16));
  });

  test("big frames end in a stack_exhaustion trap (exit 108), not a signal", () => {
    const r = run(deepFrames());
    expect(r.signal).toBeUndefined();
    expect(r.code).toBe(108);
    expect(r.err).toContain("trap: stack_exhaustion");
  });

  test("a start function may call WASI", () => {
    const r = run(startCallsWasi());
    expect(r.code).toBe(0);
    expect(r.out).toBe("started");
  });

  test("a timeout holds inside a long host call (exit 109)", () => {
    const r = run(slowHostCall(), ["--memory", "1024", "--timeout", "100"]);
    expect(r.code).toBe(109);
    expect(r.err).toContain("trap: timeout");
  });
});
