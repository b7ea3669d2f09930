// Inline calls: a function whose recent calls were short runs on the JS
// thread itself (engine.ts, thaw_call_inline in native/src/call.c). These
// tests drive the real compiler and library with modules that are short
// until the input tells them otherwise -- loop, sleep, recurse deeper than
// the JS thread's stack, trap -- and check that such a call is moved to a
// worker and ends exactly as it would have there, without holding this
// thread past its budget.

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { compile } from "../src/compiler/compile.ts";
import { ConfigError, parseServerConfig } from "../src/config.ts";
import { type CallResult, CallProfile, DEFAULT_LIMITS, type Limits, type LoadedModule } from "../src/engine/engine.ts";
import { RESULT, RESULT_FLAGS, STATUS_MOVED } from "../src/engine/native.ts";
import { artifact, DATA_DIR, loadFunction, sharedEngine, text, wasmPath } from "./helpers.ts";
import { startServer } from "./server.ts";
import { wat } from "./wat.ts";

const engine = sharedEngine();

async function loadWat(source: string, limits: Partial<Limits> = {}): Promise<LoadedModule> {
  const a = await compile(wat(source), { dataDir: DATA_DIR, engine });
  return engine.load(a.soPath, a.snapshotPath, { ...DEFAULT_LIMITS, ...limits });
}

async function call(m: LoadedModule, stdin = "", opts: { timeoutMs?: number } = {}): Promise<CallResult> {
  const inst = m.restore();
  try {
    return await engine.call(inst, { stdin: new TextEncoder().encode(stdin), ...opts });
  } finally {
    inst.free();
  }
}

/** Calls until the function runs inline, well below the engine's threshold
 * for that: its first calls teach the engine it is short. */
async function warm(m: LoadedModule, stdin = "") {
  let inline = false;
  for (let i = 0; i < 100 && !(inline && m.profile.expectedNs! < 25_000); i++) {
    const before = engine.inline.calls;
    await call(m, stdin);
    inline = engine.inline.calls > before;
  }
  expect(inline).toBe(true);
}

/** _start reads one byte of stdin into address 0 and runs `body`. */
const byInput = (body: string, extra = "", { imports = "", pages = 1 } = {}) => `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  ${imports}
  (memory (export "memory") ${pages})
  ${extra}
  (func (export "_start")
    (i32.store (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (i32.const 1))
    (drop (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)))
    ${body}))`;

describe("inline calls", () => {
  test("a short function runs inline with the same output as on a worker", async () => {
    const m = await loadFunction("hello");
    const first = await call(m);
    await warm(m);
    const inline = await call(m);
    expect(inline.status).toBe("ok");
    expect(text(inline.stdout)).toBe(text(first.stdout));
    expect(text(inline.stdout)).toBe("Hello, world!\n");
  });

  test("a second load of the same code (a redeploy) starts from the first one's profile: its first call runs inline", async () => {
    const first = await loadFunction("hello");
    await warm(first);
    const second = await loadFunction("hello");
    expect(second.profile).toBe(first.profile);
    const before = engine.inline.calls;
    expect(text((await call(second)).stdout)).toBe("Hello, world!\n");
    expect(engine.inline.calls).toBe(before + 1);
    first.release();
    second.release();
  });

  test("a profile is never shared between tenants; two builds given one key (a module's tiers) share theirs", async () => {
    const a = await loadFunction("hello", { tenant: 7 });
    const b = await loadFunction("hello", { tenant: 8 });
    expect(a.profile).not.toBe(b.profile);
    const fast = await artifact("hello");
    const json = await artifact("json");
    const one = engine.load(fast.soPath, fast.snapshotPath, { ...DEFAULT_LIMITS, tenant: 7 }, "7:same-module");
    const other = engine.load(json.soPath, json.snapshotPath, { ...DEFAULT_LIMITS, tenant: 7 }, "7:same-module");
    expect(one.profile).toBe(other.profile);
    for (const m of [a, b, one, other]) m.release();
  });

  test("a call that runs past the budget moves to a worker and ends at its own timeout", async () => {
    const m = await loadWat(byInput(`(if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 76)) (then (loop $l (br $l))))`), {
      timeoutMs: 300,
    });
    await warm(m, "x");
    const moved = engine.inline.moved;
    const started = performance.now();
    const pending = call(m, "L");
    // What the loop held this thread for before it was moved: the budget
    // (1 ms) and one watchdog tick. Not moved, it would hold it for the
    // call's whole 300 ms timeout; the bound leaves room for a busy machine.
    const heldMs = performance.now() - started;
    const r = await pending;
    expect(engine.inline.moved).toBe(moved + 1);
    expect(heldMs).toBeLessThan(250);
    expect(r.status).toBe("timeout");
    expect(r.instanceLost).toBe(true);
    // The function is backed off from inline for its next calls, which still work.
    const after = await call(m, "x");
    expect(after.status).toBe("ok");
  });

  test("a host call that runs past the budget (random_get over 16 MiB) moves to a worker", async () => {
    const m = await loadWat(
      byInput(
        `(if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 82))
           (then (call $proc_exit (call $random_get (i32.const 65536) (i32.const ${16 << 20})))))`,
        "",
        { imports: `(import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))`, pages: 300 },
      ),
    );
    await warm(m, "x");
    const moved = engine.inline.moved;
    const r = await call(m, "R");
    expect(engine.inline.moved).toBe(moved + 1);
    expect(r.status).toBe("ok");
    expect(r.exitCode).toBe(0);
  });

  test("a call that sleeps moves to a worker and sleeps there", async () => {
    const m = await loadFunction("sleep");
    await warm(m, "0");
    const moved = engine.inline.moved;
    const started = performance.now();
    const r = await call(m, "30");
    expect(engine.inline.moved).toBe(moved + 1);
    expect(r.status).toBe("ok");
    expect(r.exitCode).toBe(0);
    expect(performance.now() - started).toBeGreaterThanOrEqual(29);
  });

  test("recursion deeper than the JS thread's stack moves to a worker's stack and returns", async () => {
    // 256 i64 locals loaded from memory (which the callee could change, so
    // the compiler must keep them) live across the recursive call: about
    // 2 KiB of native frame per level. 15,000 levels need ~30 MiB: more than
    // the main thread's 8 MiB stack, well inside a worker's 128 MiB.
    const K = 256;
    const locals = Array.from({ length: K }, (_, i) => `(local $l${i} i64)`).join(" ");
    const sets = Array.from({ length: K }, (_, i) => `(local.set $l${i} (i64.load (i32.const ${1024 + 8 * i})))`).join("\n");
    const sum = Array.from({ length: K }, (_, i) => `(local.set $acc (i64.add (local.get $acc) (local.get $l${i})))`).join("\n");
    const rec = `(func $rec (param $n i32) (result i64) (local $acc i64) ${locals}
      (if (i32.eqz (local.get $n)) (then (return (i64.const 0))))
      ${sets}
      (local.set $acc (call $rec (i32.sub (local.get $n) (i32.const 1))))
      ${sum}
      (local.get $acc))`;
    const depth = 15_000;
    // Memory holds i at 1024 + 8i, the same at every level: each level adds K(K-1)/2.
    const hex = (i: number) => Array.from({ length: 8 }, (_, b) => `\\${((i >> (8 * b)) & 255).toString(16).padStart(2, "0")}`).join("");
    const data = `(data (i32.const 1024) "${Array.from({ length: K }, (_, i) => hex(i)).join("")}")`;
    const body = `(if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 68))
      (then (call $proc_exit (i32.wrap_i64 (i64.and (call $rec (i32.const ${depth})) (i64.const 127))))))`;
    const m = await loadWat(byInput(body, `${rec} ${data}`));
    // With a budget it cannot reach, only the stack can stop the call inline.
    const inst = m.restore();
    try {
      // `inputs` holds the buffers the request points into until the call returns.
      const inputs = inst.prepare({ stdin: new TextEncoder().encode("D") });
      engine.lib.thaw_call_inline(inst.handle, inst.request, inst.result, 10_000_000_000n);
      expect(inputs.length).toBeGreaterThan(0);
      expect(Number(inst.result[RESULT.status])).toBe(STATUS_MOVED);
      expect(inst.result[RESULT.flags]! & RESULT_FLAGS.reset).toBe(RESULT_FLAGS.reset);
    } finally {
      inst.free();
    }
    await warm(m, "x");
    const moved = engine.inline.moved;
    const r = await call(m, "D");
    expect(engine.inline.moved).toBe(moved + 1);
    expect(r.status).toBe("ok");
    expect(r.exitCode).toBe(((depth * K * (K - 1)) / 2) % 128);
  });

  test("traps inline end as they do on a worker, and the instance is reset for the next call", async () => {
    const kinds: [string, string][] = [
      ["(unreachable)", "unreachable"],
      ["(drop (i32.div_u (i32.const 1) (i32.load8_u (i32.const 1))))", "divide_by_zero"],
      ["(drop (i32.load (i32.const 70000)))", "out_of_bounds"],
    ];
    for (const [instr, status] of kinds) {
      // Writes a marker the next call must not see, then traps when asked.
      const m = await loadWat(
        byInput(`(if (i32.load8_u (i32.const 200)) (then (call $proc_exit (i32.const 9))))
          (i32.store8 (i32.const 200) (i32.const 1))
          (if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 84)) (then ${instr}))`),
      );
      await warm(m, "x");
      const inst = m.restore();
      try {
        expect((await engine.call(inst, { stdin: new TextEncoder().encode("x"), resetAfter: true })).exitCode).toBe(0);
        const calls = engine.inline.calls;
        const r = await engine.call(inst, { stdin: new TextEncoder().encode("T"), resetAfter: true });
        expect(engine.inline.calls).toBe(calls + 1);
        expect(r.status).toBe(status as never);
        if (!inst.reset()) throw new Error("reset after a trap failed");
        const next = await engine.call(inst, { stdin: new TextEncoder().encode("x"), resetAfter: true });
        expect(next.status).toBe("ok");
        expect(next.exitCode).toBe(0);
      } finally {
        inst.free();
      }
    }
  });

  test("a timeout shorter than the budget is the call's own timeout, inline", async () => {
    const m = await loadWat(byInput(`(if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 76)) (then (loop $l (br $l))))`), {
      timeoutMs: 1,
    });
    await warm(m, "x");
    const moved = engine.inline.moved;
    const r = await call(m, "L");
    expect(engine.inline.moved).toBe(moved);
    expect(r.status).toBe("timeout");
    expect(r.instanceLost).toBe(true);
  });
});

describe("inline policy", () => {
  // A function's profile driven directly: which of its calls get to run
  // inline, whatever they take (the average duration is held at a short call's).
  test("long calls spaced out by short ones get at most one inline run per 64 calls", () => {
    for (const every of [2, 5, 9, 65, 200]) {
      const profile = new CallProfile();
      profile.observe(2_000);
      let longInline = 0;
      let inline = 0;
      const N = 20_000;
      for (let i = 0; i < N; i++) {
        if (!profile.mayRunInline()) continue;
        inline++;
        const long = i % every === 0;
        if (long) longInline++;
        profile.ranInline(long ? 900_000 : 2_000);
      }
      expect(longInline).toBeLessThanOrEqual(Math.ceil(N / 64) + 1);
      // Rare long calls cost a function little: most of its calls still run inline.
      if (every === 200) expect(inline).toBeGreaterThan(N / 2);
    }
  });

  test("a function that is moved again and again tries inline once per 1024 calls", () => {
    const profile = new CallProfile();
    profile.observe(2_000);
    let tries = 0;
    for (let i = 0; i < 20_000; i++) {
      if (!profile.mayRunInline()) continue;
      tries++;
      profile.ranInline(undefined);
    }
    expect(tries).toBeLessThan(40);
  });
});

describe("inline calls in a server", () => {
  const inlineCounts = async (url: string, headers: Record<string, string> = {}) => {
    const metrics = await (await fetch(`${url}/metrics`, { headers })).text();
    const n = (outcome: string) => Number(new RegExp(`^thaw_inline_calls_total\\{outcome="${outcome}"\\} (\\d+)$`, "m").exec(metrics)?.[1]);
    return { ran: n("ran"), moved: n("moved") };
  };

  for (const [args, inline] of [[[], true], [["--inline-us", "0"], false]] as const)
    test(`${args.length ? args.join(" ") : "by default"}: calls ${inline ? "run" : "never run"} inline, with the same answers`, async () => {
      const s = await startServer({ args: [...args] });
      try {
        const put = await fetch(`${s.url}/v1/functions/echo?wait=true`, {
          method: "PUT",
          headers: { "content-type": "application/wasm" },
          body: readFileSync(wasmPath("echo")),
        });
        expect(put.status).toBe(201);
        for (let i = 0; i < 40; i++) {
          const r = await fetch(`${s.url}/v1/functions/echo/invoke`, { method: "POST", body: `call ${i}` });
          expect(r.status).toBe(200);
          expect(await r.text()).toBe(`call ${i}`);
        }
        const counts = await inlineCounts(s.url);
        expect(counts.moved).toBe(0);
        if (inline) expect(counts.ran).toBeGreaterThan(0);
        else expect(counts.ran).toBe(0);
      } finally {
        await s.stop();
      }
    });

  // A reset copies back the pages the previous reset found, without asking
  // the kernel, when the call's thread took no page fault (memory.c): a
  // call writing a page for the first time must still have it put back,
  // whether it ran inline among the event loop's work or on a worker.
  test("every call sees a clean memory though calls keep writing pages no call wrote before", async () => {
    const s = await startServer();
    try {
      const put = await fetch(`${s.url}/v1/functions/page-leak?wait=true`, {
        method: "PUT",
        headers: { "content-type": "application/wasm" },
        body: readFileSync(wasmPath("page_leak")),
      });
      expect(put.status).toBe(201);
      const seen: string[] = [];
      /** The call's answer kept in `seen`; returns the tier it ran on. */
      const call = async (page: number) => {
        const r = await fetch(`${s.url}/v1/functions/page-leak/invoke`, { method: "POST", body: String(page) });
        seen.push(`${r.status} ${await r.text()}`);
        return r.headers.get("x-thaw-tier");
      };
      // Mostly pages written before, every fifth call one of the 64 perhaps not.
      const page = (i: number) => (i % 5 === 4 ? (i * 7) % 64 : i % 3);
      // The fast tier's check takes too long to run inline; the optimized one's does not.
      let tier: string | null = null;
      for (let i = 0; tier !== "optimized" && i < 20_000; i++) tier = await call(page(i));
      expect(tier).toBe("optimized");
      for (let i = 0; i < 200; i++) await call(page(i));
      for (let round = 0; round < 8; round++) await Promise.all(Array.from({ length: 8 }, (_, j) => call((round * 8 + j * 13) % 64)));
      expect(seen.filter((r) => r !== "200 clean\n")).toEqual([]);
      expect((await inlineCounts(s.url)).ran).toBeGreaterThan(100);
    } finally {
      await s.stop();
    }
  });

  test("a tenant whose calls of a module keep being moved does not send another tenant's calls of the same module to workers", async () => {
    const s = await startServer({ env: { THAW_TOKENS: "alice-token:alice,bob-token:bob", THAW_ADMIN_TOKEN: "admin-token" } });
    const alice = { authorization: "Bearer alice-token" };
    const bob = { authorization: "Bearer bob-token" };
    const counts = () => inlineCounts(s.url, { authorization: "Bearer admin-token" });
    // The same bytes for both: loops on "L", returns at once otherwise.
    const bytes = wat(byInput(`(if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 76)) (then (loop $l (br $l))))`));
    const call = (who: Record<string, string>, input: string) =>
      fetch(`${s.url}/v1/functions/same/invoke`, { method: "POST", body: input, headers: who });
    /** Calls until five in a row run inline (the first inline call of a
     * process is slow, and one long call backs a function off); whether they did. */
    const warmed = async (who: Record<string, string>) => {
      for (let i = 0, streak = 0; i < 200; i++) {
        const before = (await counts()).ran;
        expect((await call(who, "x")).status).toBe(200);
        streak = (await counts()).ran > before ? streak + 1 : 0;
        if (streak === 5) return true;
      }
      return false;
    };
    try {
      for (const who of [alice, bob]) {
        const put = await fetch(`${s.url}/v1/functions/same?wait=true&timeoutMs=300`, {
          method: "PUT",
          headers: { "content-type": "application/wasm", ...who },
          body: bytes,
        });
        expect(put.status).toBe(201);
        expect(await warmed(who)).toBe(true);
      }
      for (let i = 0; i < 3; i++) expect((await call(alice, "L")).status).toBe(504);
      expect((await counts()).moved).toBeGreaterThanOrEqual(1);
      const before = (await counts()).ran;
      expect((await call(bob, "x")).status).toBe(200);
      expect((await counts()).ran).toBe(before + 1);
    } finally {
      await s.stop();
    }
  });

  test("--inline-us must be a number from 0 to 100000", () => {
    for (const bad of ["-1", "abc", "100001", "1e12"]) expect(() => parseServerConfig([`--inline-us=${bad}`], {})).toThrow(ConfigError);
    expect(parseServerConfig([], {}).inlineUs).toBe(1000);
    expect(parseServerConfig(["--inline-us", "0"], {}).inlineUs).toBe(0);
  });
});
