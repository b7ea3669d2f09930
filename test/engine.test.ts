// The engine through the real pipeline and the real libthaw: outputs of the
// example functions, snapshot isolation, traps, limits and memory use.

import { describe, expect, test } from "bun:test";
import { CancelledError } from "../src/engine/engine.ts";
import { loadFunction, rssBytes, sharedEngine, text } from "./helpers.ts";

const enc = (s: string) => new TextEncoder().encode(s);

async function callOnce(name: string, stdin = "", extra: Parameters<ReturnType<typeof sharedEngine>["call"]>[1] = {}, limits = {}) {
  const mod = await loadFunction(name, limits);
  const inst = mod.restore();
  try {
    return await sharedEngine().call(inst, { stdin: enc(stdin), ...extra });
  } finally {
    inst.free();
    mod.release();
  }
}

describe("example functions", () => {
  test("hello: web handler reads QUERY_STRING", async () => {
    const r = await callOnce("hello", "", { env: { QUERY_STRING: "name=Ada" } });
    expect(r.status).toBe("ok");
    expect(r.exitCode).toBe(0);
    expect(text(r.stdout)).toBe("Hello, Ada!\n");
  });

  test("json: sorts keys and uppercases strings", async () => {
    const r = await callOnce("json", '{"b":[1,"x",{"d":true,"c":null}],"a":"hi"}');
    expect(text(r.stdout)).toBe('{"a":"HI","b":[1,"X",{"c":null,"d":true}]}\n');
  });

  test("json: invalid input is exit code 1 with a message", async () => {
    const r = await callOnce("json", '{"a":');
    expect(r.status).toBe("ok");
    expect(r.exitCode).toBe(1);
    expect(r.stderr.length).toBeGreaterThan(0);
  });

  test("wordcount: counts and ranks words", async () => {
    const r = await callOnce("wordcount", "the cat and the dog\nthe end\n");
    expect(JSON.parse(text(r.stdout))).toEqual({
      lines: 2, words: 7, bytes: 28,
      top: [["the", 3], ["and", 1], ["cat", 1], ["dog", 1], ["end", 1]],
    });
  });

  test("thumbnail: downscales a PPM keeping the colour", async () => {
    const header = enc("P6\n256 128\n255\n");
    const img = new Uint8Array(header.length + 256 * 128 * 3);
    img.set(header);
    for (let i = header.length; i < img.length; i += 3) img.set([10, 20, 30], i);
    const mod = await loadFunction("thumbnail");
    const inst = mod.restore();
    const r = await sharedEngine().call(inst, { stdin: img });
    inst.free();
    mod.release();
    const out = r.stdout;
    const outHeader = "P6\n64 32\n255\n";
    expect(text(out.subarray(0, outHeader.length))).toBe(outHeader);
    expect(out.length).toBe(outHeader.length + 64 * 32 * 3);
    expect([...out.subarray(outHeader.length, outHeader.length + 6)]).toEqual([10, 20, 30, 10, 20, 30]);
  });

  test("primes: the table built by wizer.initialize is in the snapshot", async () => {
    const mod = await loadFunction("primes");
    expect(mod.stats().hasInitialize).toBe(true);
    expect(mod.stats().snapshotBytes).toBeGreaterThan(2_000_000);
    mod.release();
    const r = await callOnce("primes", "10\n97\n2000000\n");
    expect(text(r.stdout)).toBe("10 4 0\n97 25 1\n2000000 148933 0\n");
  });

  test("kernel: same checksum as the native build", async () => {
    const r = await callOnce("kernel", "200000");
    const native = Bun.spawnSync([`${import.meta.dir}/../functions/build/kernel-native`], { stdin: enc("200000") });
    expect(text(r.stdout)).toBe(native.stdout.toString());
  });

  test("args, environment and stdin reach the module exactly", async () => {
    const r = await callOnce("echo", "payload", { args: ["one", "two words"], env: { A: "1", B: "x=y" } });
    expect(text(r.stdout)).toBe("payload");
    expect(text(r.stderr)).toBe("one\ntwo words\nA=1\nB=x=y\n");
  });

  test("WASI clocks, random, yield, sleep and a refused open", async () => {
    const r = await callOnce("wasi_probe");
    expect(text(r.stdout)).toBe("clock ok\nclock_res ok\nrandom ok\nyield ok\nsleep ok\nopen errno=76\n");
  });
});

describe("snapshots", () => {
  test("a call never sees another call's writes", async () => {
    const mod = await loadFunction("state_leak");
    const a = mod.restore();
    const b = mod.restore();
    const engine = sharedEngine();
    const first = await engine.call(a, {});
    expect(a.reset()).toBe(true);
    const second = await engine.call(a, {});
    const other = await engine.call(b, {});
    expect(text(first.stdout)).toBe("count=0 buf=\n");
    expect(text(second.stdout)).toBe(text(first.stdout));
    expect(text(other.stdout)).toBe(text(first.stdout));
    // Without a reset the instance keeps its state: the test above can fail.
    const dirty = await engine.call(b, {});
    expect(text(dirty.stdout)).toBe("count=1 buf=dirty\n");
    a.free();
    b.free();
    mod.release();
  });

  test("two calls from one snapshot give identical results", async () => {
    const mod = await loadFunction("json");
    const inst = mod.restore();
    const input = { stdin: enc('{"z":"q","y":[true,false]}') };
    const r1 = await sharedEngine().call(inst, input);
    inst.reset();
    const r2 = await sharedEngine().call(inst, input);
    expect(text(r2.stdout)).toBe(text(r1.stdout));
    expect(r2.exitCode).toBe(r1.exitCode);
    inst.free();
    mod.release();
  });

  test("an idle restored instance holds no private linear memory", async () => {
    const mod = await loadFunction("primes");
    const inst = mod.restore();
    expect(inst.privateBytes()).toBe(0);
    const first = await sharedEngine().call(inst, { stdin: enc("100\n") });
    const written = inst.privateBytes();
    expect(written).toBeGreaterThan(0);
    // A reset copies the written pages back and keeps them: the next call
    // does not fault them in again, and memory does not grow.
    inst.reset();
    expect(inst.privateBytes()).toBe(written);
    const again = await sharedEngine().call(inst, { stdin: enc("100\n") });
    expect(text(again.stdout)).toBe(text(first.stdout));
    inst.reset();
    expect(inst.privateBytes()).toBe(written);
    inst.releaseMemory();
    expect(inst.privateBytes()).toBe(0);
    const third = await sharedEngine().call(inst, { stdin: enc("100\n") });
    expect(text(third.stdout)).toBe(text(first.stdout));
    inst.free();
    mod.release();
  });

  test("a reset on the executor thread keeps the output readable", async () => {
    const mod = await loadFunction("state_leak");
    const inst = mod.restore();
    for (let i = 0; i < 3; i++) {
      const r = await sharedEngine().call(inst, { resetAfter: true });
      expect(r.instanceReset).toBe(true);
      expect(text(r.stdout)).toBe("count=0 buf=\n");
    }
    inst.free();
    mod.release();
  });
});

describe("traps and limits", () => {
  const cases: [string, string][] = [
    ["trap_unreachable", "unreachable"],
    ["trap_oob", "out_of_bounds"],
    ["trap_div0", "divide_by_zero"],
    ["trap_recursion", "stack_exhaustion"],
  ];
  for (const [name, status] of cases)
    test(`${name} traps as ${status} and the process lives on`, async () => {
      const r = await callOnce(name, "7\n");
      expect(r.status).toBe(status as never);
      const ok = await callOnce("hello");
      expect(text(ok.stdout)).toBe("Hello, world!\n");
    });

  test("an infinite loop stops at its timeout", async () => {
    const started = performance.now();
    const r = await callOnce("loop_forever", "", { timeoutMs: 200 });
    const elapsed = performance.now() - started;
    expect(r.status).toBe("timeout");
    expect(r.instanceLost).toBe(true);
    expect(elapsed).toBeLessThan(5000);
  });

  test("memory.grow past the cap returns -1 to the module", async () => {
    const r = await callOnce("memory_bomb", "", {}, { memoryMiB: 4 });
    expect(r.status).toBe("ok");
    expect(r.growRefused).toBe(true);
    const pages = Number(/pages=(\d+)/.exec(text(r.stdout))?.[1]);
    expect(pages).toBeGreaterThan(32);
    expect(pages).toBeLessThanOrEqual(64);
  });

  test("malloc failure is seen by the program, not the host", async () => {
    const r = await callOnce("malloc_bomb", "", {}, { memoryMiB: 8 });
    expect(r.exitCode).toBe(3);
    expect(Number(/allocated=(\d+)/.exec(text(r.stdout))?.[1])).toBeLessThan(8);
  });

  test("stdout beyond its cap is truncated and flagged", async () => {
    const mod = await loadFunction("echo", { stdoutCap: 10 });
    const inst = mod.restore();
    const r = await sharedEngine().call(inst, { stdin: enc("x".repeat(1000)) });
    expect(r.stdout.length).toBe(10);
    expect(r.stdoutTruncated).toBe(true);
    inst.free();
    mod.release();
  });
});

describe("concurrency and memory", () => {
  test("many calls at once on separate instances", async () => {
    const mod = await loadFunction("hello");
    const insts = Array.from({ length: 32 }, () => mod.restore());
    const results = await Promise.all(
      insts.map((inst, i) => sharedEngine().call(inst, { env: { QUERY_STRING: `name=n${i}` } })),
    );
    results.forEach((r, i) => expect(text(r.stdout)).toBe(`Hello, n${i}!\n`));
    for (const i of insts) i.free();
    mod.release();
  });

  // Lone calls are awaited by spinning, batches by one wake-up per drain,
  // and the continuations of a drained batch call again at once: every
  // path must deliver each call's own result, and none may be lost (a lost
  // completion hangs its caller, and the test times out).
  test("lone, batched and aborted calls all complete with their own output", async () => {
    const mod = await loadFunction("hello");
    const engine = sharedEngine();
    const lone = mod.restore();
    const call = (inst: ReturnType<typeof mod.restore>, name: string, signal?: AbortSignal) =>
      engine.call(inst, { env: { QUERY_STRING: `name=${name}` }, resetAfter: true, queueDeadline: performance.now() + 5000, signal });
    for (let i = 0; i < 300; i++) expect(text((await call(lone, `l${i}`)).stdout)).toBe(`Hello, l${i}!\n`);
    const insts = Array.from({ length: 16 }, () => mod.restore());
    await Promise.all(
      insts.map(async (inst, k) => {
        for (let i = 0; i < 50; i++) expect(text((await call(inst, `b${k}x${i}`)).stdout)).toBe(`Hello, b${k}x${i}!\n`);
      }),
    );
    // Aborted right after the call is made: taken back if it had not
    // started, else it completes; either way it settles.
    for (let i = 0; i < 50; i++) {
      const ac = new AbortController();
      const p = call(lone, `a${i}`, ac.signal);
      ac.abort();
      const r = await p.then((r) => text(r.stdout), (e: Error) => (e instanceof CancelledError ? "cancelled" : String(e)));
      expect([`Hello, a${i}!\n`, "cancelled"]).toContain(r);
    }
    expect(text((await call(lone, "end")).stdout)).toBe("Hello, end!\n");
    expect(engine.inFlight).toBe(0);
    for (const i of [lone, ...insts]) i.free();
    mod.release();
  });

  test("10,000 sequential calls leave RSS flat", async () => {
    const mod = await loadFunction("json");
    const inst = mod.restore();
    const engine = sharedEngine();
    const input = { stdin: enc('{"b":[1,2,3],"a":"text"}') };
    const run = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const r = await engine.call(inst, input);
        if (r.exitCode !== 0) throw new Error("call failed");
        inst.reset();
      }
    };
    await run(2000);
    Bun.gc(true);
    const before = rssBytes();
    await run(10_000);
    Bun.gc(true);
    const growth = rssBytes() - before;
    console.log(`RSS growth over 10,000 calls: ${(growth / 1024).toFixed(0)} KiB`);
    expect(growth).toBeLessThan(8 * 1024 * 1024);
    inst.free();
    mod.release();
  });
});
