// Guarded memories (native/src/guard.c) through the real pipeline: modules
// compiled without bounds checks, whose out-of-bounds accesses fault and
// become traps. Each test checks what a tenant sees: the trap at exactly the
// first byte past memory, a grown memory usable and then gone again after a
// reset, calls on executor threads after a trap, and that a fault anywhere
// else still crashes the process instead of being swallowed.

import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { compile } from "../src/compiler/compile.ts";
import { DEFAULT_LIMITS } from "../src/engine/engine.ts";
import { DATA_DIR, ROOT, sharedEngine } from "./helpers.ts";
import { command, wat } from "./wat.ts";

async function load(source: string) {
  const a = await compile(wat(source), { dataDir: DATA_DIR, engine: sharedEngine() });
  return { artifact: a, module: sharedEngine().load(a.soPath, a.snapshotPath, DEFAULT_LIMITS) };
}

async function callFresh(source: string) {
  const { module } = await load(source);
  const inst = module.restore();
  try {
    return await sharedEngine().call(inst, {});
  } finally {
    inst.free();
  }
}

/** _start exits with the value `load` reads (a load expression over one page). */
const exitWith = (load: string) => command(`(call $proc_exit ${load})`);

describe("guarded memory: out-of-bounds accesses trap", () => {
  test("the code is built without bounds checks on this host", async () => {
    // The guard only matters if the compiled code relies on it.
    const { module } = await load(exitWith("(i32.load (i32.const 0))"));
    expect(process.arch === "x64" ? 1 : 0).toBe(module.stats().guarded ? 1 : 0);
  });

  test("the last bytes of memory are readable; one byte further traps", async () => {
    const last = await callFresh(exitWith("(i32.load (i32.const 65532))"));
    expect([last.status, last.exitCode]).toEqual(["ok", 0]);
    for (const load of ["(i32.load (i32.const 65533))", "(i32.load8_u (i32.const 65536))", "(i32.wrap_i64 (i64.load offset=65529 (i32.const 0)))"]) {
      const r = await callFresh(exitWith(load));
      expect([load, r.status]).toEqual([load, "out_of_bounds"]);
    }
  });

  test("the largest address plus the largest offset traps, for loads and stores", async () => {
    const load = await callFresh(exitWith("(i32.wrap_i64 (i64.load offset=0xffffffff (i32.const -1)))"));
    expect(load.status).toBe("out_of_bounds");
    const store = await callFresh(command("(i64.store offset=0xffffffff (i32.const -1) (i64.const 1))"));
    expect(store.status).toBe("out_of_bounds");
  });

  test("memory.grow maps zeroed pages; a reset unmaps them again", async () => {
    // Each call grows to two pages, exits with what it finds at 70000 and
    // leaves 7 there. A reset must put the memory back to one page (the
    // address traps again) and the next grow must read zero, not the 7.
    const { module } = await load(
      command(`
      (if (i32.ne (memory.size) (i32.const 1)) (then (call $proc_exit (i32.const 99))))
      (drop (memory.grow (i32.const 1)))
      (local.set 0 (i32.load (i32.const 70000)))
      (i32.store (i32.const 70000) (i32.const 7))
      (call $proc_exit (local.get 0))`).replace("(func (export \"_start\")", "(func (export \"_start\") (local i32)"),
    );
    const inst = module.restore();
    try {
      for (let i = 0; i < 3; i++) {
        const r = await sharedEngine().call(inst, {});
        expect([r.status, r.exitCode, r.memoryPages]).toEqual(["ok", 0, 2]);
        expect(inst.reset()).toBe(true);
      }
    } finally {
      inst.free();
    }
    const past = await callFresh(exitWith("(i32.load (i32.const 70000))"));
    expect(past.status).toBe("out_of_bounds");
  });

  test("an instance keeps working after traps, with resets done on the executor thread", async () => {
    const { module } = await load(
      command(`
      (call $proc_exit (i32.load (i32.mul (memory.size) (i32.const 65536))))`),
    );
    const inst = module.restore();
    try {
      for (let i = 0; i < 50; i++) {
        const r = await sharedEngine().call(inst, { resetAfter: true });
        expect(r.status).toBe("out_of_bounds");
      }
    } finally {
      inst.free();
    }
    const ok = await callFresh(exitWith("(i32.load (i32.const 0))"));
    expect(ok.status).toBe("ok");
  });
});

describe("guarded memory: other faults are not swallowed", () => {
  test("a segfault outside wasm code still kills the process", async () => {
    // A child loads a guarded module (installing the fault handler), runs a
    // call that traps, then faults in Bun's own code: it must die of it.
    const { artifact } = await load(exitWith("(i32.load (i32.const 65536))"));
    const script = `
      import { Engine, DEFAULT_LIMITS } from ${JSON.stringify(join(ROOT, "src/engine/engine.ts"))};
      import { read } from "bun:ffi";
      const engine = new Engine();
      const mod = engine.load(${JSON.stringify(artifact.soPath)}, ${JSON.stringify(artifact.snapshotPath)}, DEFAULT_LIMITS);
      const inst = mod.restore();
      const r = await engine.call(inst, {});
      console.log("trapped:" + r.status);
      read.u8(16);
      console.log("survived");`;
    const p = Bun.spawnSync([process.execPath, "-e", script], { cwd: ROOT, stderr: "pipe" });
    const out = p.stdout.toString();
    expect(out).toContain("trapped:out_of_bounds");
    expect(out).not.toContain("survived");
    expect(p.exitCode === 0).toBe(false);
  });

  test("Bun's own WebAssembly and thaw both keep their out-of-bounds traps, whichever handler came first", async () => {
    const { module } = await load(exitWith("(i32.load (i32.const 65536))"));
    const thawCall = async () => {
      const inst = module.restore();
      try {
        return (await sharedEngine().call(inst, {})).status;
      } finally {
        inst.free();
      }
    };
    const jsc = new WebAssembly.Instance(
      new WebAssembly.Module(wat(`(module (memory 1) (func (export "f") (result i32) (i32.load (i32.const 70000))))`)),
      {},
    );
    const jscCall = () => {
      try {
        (jsc.exports.f as () => number)();
        return "returned";
      } catch (e) {
        return String(e);
      }
    };
    expect(await thawCall()).toBe("out_of_bounds");
    expect(jscCall()).toContain("Out of bounds memory access");
    expect(await thawCall()).toBe("out_of_bounds");
    expect(jscCall()).toContain("Out of bounds memory access");
  });

  test("when the guard slots run out, a restore fails cleanly and a freed slot is reused", async () => {
    const { artifact } = await load(exitWith("(i32.load (i32.const 0))"));
    const script = `
      import { Engine, DEFAULT_LIMITS } from ${JSON.stringify(join(ROOT, "src/engine/engine.ts"))};
      const engine = new Engine();
      const mod = engine.load(${JSON.stringify(artifact.soPath)}, ${JSON.stringify(artifact.snapshotPath)}, DEFAULT_LIMITS);
      const live = [];
      let refused = "";
      try { for (;;) live.push(mod.restore()); } catch (e) { refused = e.message; }
      console.log(JSON.stringify({ live: live.length, refused }));
      live.pop().free();
      const again = mod.restore();
      const r = await engine.call(again, {});
      console.log(JSON.stringify({ again: r.status }));`;
    // 64 GiB of slot arena: eight 8 GiB slots.
    const p = Bun.spawnSync([process.execPath, "-e", script], {
      cwd: ROOT,
      env: { ...process.env, THAW_GUARD_ARENA_BYTES: String(64 * 2 ** 30) },
    });
    const lines = p.stdout.toString().trim().split("\n");
    expect(p.exitCode).toBe(0);
    expect(JSON.parse(lines[0]!)).toEqual({ live: 8, refused: expect.stringContaining("address space") });
    expect(JSON.parse(lines[1]!)).toEqual({ again: "ok" });
  });
});
