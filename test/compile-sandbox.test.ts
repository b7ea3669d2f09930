// The compiler's box and the server's compile queue, with the real tools
// and a real `thaw serve`: what a boxed tool can see and reach, that limits
// and timeouts hold and clean up after themselves, and that the server stays
// up and truthful when a compile is killed, hangs or has to wait.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CompileError, compile } from "../src/compiler/compile.ts";
import { COMPILER_LIMITS, compilerBox, runBoxed, sandbox } from "../src/compiler/sandbox.ts";
import { sharedEngine, wasmPath } from "./helpers.ts";
import { type ServerProcess, startServer } from "./server.ts";
import { command, wat } from "./wat.ts";

// biome-ignore lint: response bodies are checked field by field below.
const json = (res: Response): Promise<any> => res.json();
const scratch = () => mkdtempSync(join(tmpdir(), "thaw-box-"));

/** Every process whose command line or working directory mentions `dir`, but `except`. */
function processesUsing(dir: string, except: number[] = []): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    if (except.includes(Number(pid))) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
      let cwd = "";
      try {
        cwd = readlinkSync(`/proc/${pid}/cwd`);
      } catch {}
      if (cmd.includes(dir) || cwd.startsWith(dir)) found.push(`${pid} ${cmd}`);
    } catch {
      // Gone while we looked.
    }
  }
  return found;
}

/** The server's `thaw compile` children (the box execs down to thaw, so they are its direct
 * children); with `module`, only those compiling it (background builds of other functions may run too). */
function compileChildren(s: ServerProcess, module?: Uint8Array): number[] {
  const hash = module && createHash("sha256").update(module).digest("hex");
  const pids: number[] = [];
  for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== s.proc.pid) continue;
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (argv.includes("compile") && (!hash || argv.some((a) => a.includes(hash)))) pids.push(Number(pid));
    } catch {}
  }
  return pids;
}

async function until<T>(what: string, f: () => T | undefined | false | Promise<T | undefined | false>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

const leftoverBuilds = (dataDir: string) => {
  try {
    return readdirSync(join(dataDir, "artifacts")).filter((f) => f.startsWith(".build-"));
  } catch {
    return [];
  }
};

function deploy(s: ServerProcess, name: string, module: Uint8Array, wait = true) {
  return fetch(`${s.url}/v1/functions/${name}${wait ? "?wait=true" : ""}`, {
    method: "PUT",
    body: module,
    headers: { "content-type": "application/wasm" },
  });
}

/** A module whose start function never returns: it hangs the snapshot, the last step of a compile. */
const spinsAtStart = (tag: number) =>
  wat(`(module (memory 1) (global $g (mut i32) (i32.const ${tag}))
    (func $spin (loop $l (global.set $g (i32.add (global.get $g) (i32.const 1))) (br $l)))
    (start $spin) (func (export "_start")))`);

/** A module that prints `text`: distinct texts are distinct modules, each compiled on its own. */
const prints = (text: string) =>
  wat(
    command(
      `(i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const ${text.length}))
       (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))`,
      `(data (i32.const 64) "${text}")`,
    ),
  );

describe("the compiler's box", () => {
  test("namespaces are available here, so the tests below check the real box", async () => {
    expect((await sandbox()).mode).not.toBe("none");
  });

  test("no network: a port listening on this host is reachable outside the box and not inside", async () => {
    let connections = 0;
    const listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: { open: () => void connections++, data: () => {} },
    });
    try {
      const probe = ["/bin/bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${listener.port} && echo connected`];
      const outside = Bun.spawnSync(probe);
      expect(outside.stdout.toString()).toBe("connected\n");
      await until("the outside connection", () => connections === 1, 5000);

      const inside = await runBoxed(probe, compilerBox(scratch(), 10_000));
      expect(inside.exitCode).not.toBe(0);
      expect(inside.stdout).toBe("");
      expect(inside.stderr).toContain("Network is unreachable");
      await Bun.sleep(100);
      expect(connections).toBe(1);
    } finally {
      listener.stop(true);
    }
  });

  test("the environment is cleared to PATH, LANG and TMPDIR (the build dir)", async () => {
    const dir = scratch();
    const r = await runBoxed(["/usr/bin/env"], compilerBox(dir, 10_000));
    expect(r.exitCode).toBe(0);
    const env = Object.fromEntries(r.stdout.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    // PWD is the init shell's own.
    expect(env).toEqual({ PATH: "/usr/bin:/bin", LANG: "C", TMPDIR: dir, PWD: dir });
  });

  test("a box can run below the server's priority, and all it starts inherits that", async () => {
    const r = await runBoxed(["/bin/cat", "/proc/self/stat"], { ...compilerBox(scratch(), 30_000), nice: 19 });
    expect(r.exitCode).toBe(0);
    expect(Number(r.stdout.slice(r.stdout.lastIndexOf(")") + 2).split(" ")[16])).toBe(19);
  });

  test("rlimits: CPU, address space, file size, no core dumps, processes", async () => {
    const r = await runBoxed(["/bin/cat", "/proc/self/limits"], compilerBox(scratch(), 30_000));
    const limit = (name: string) => new RegExp(`^${name}\\s+(\\S+)\\s+(\\S+)`, "m").exec(r.stdout)?.slice(1, 3);
    expect(limit("Max cpu time")).toEqual(["30", "31"]);
    expect(limit("Max address space")).toEqual([String(COMPILER_LIMITS.addressSpaceBytes), String(COMPILER_LIMITS.addressSpaceBytes)]);
    expect(limit("Max file size")).toEqual([String(COMPILER_LIMITS.fileSizeBytes), String(COMPILER_LIMITS.fileSizeBytes)]);
    expect(limit("Max core file size")).toEqual(["0", "0"]);
    expect(limit("Max processes")).toEqual([String(COMPILER_LIMITS.processes), String(COMPILER_LIMITS.processes)]);
  });

  test("the CPU limit stops a busy tool with SIGXCPU", async () => {
    const box = { ...compilerBox(scratch(), 20_000), limits: { cpuSeconds: 1 } };
    const r = await runBoxed(["/bin/sh", "-c", "while :; do :; done"], box);
    expect(r.timedOut).toBe(false);
    expect(r.signal).toBe("SIGXCPU");
  });

  test("a timeout past setTimeout's 2^31-1 ms range does not fire at once", async () => {
    const r = await runBoxed(["/bin/sh", "-c", "sleep 0.2; echo done"], compilerBox(scratch(), 3_000_000_000));
    expect(r.timedOut).toBe(false);
    expect(r.stdout).toBe("done\n");
  });

  test("own PID namespace, and the timeout kills all of it, even what left the process group", async () => {
    const dir = scratch();
    expect((await runBoxed(["/bin/sh", "-c", "echo $$"], compilerBox(dir, 10_000))).stdout).toBe("2\n");
    const marker = `${987 + Math.random()}`.slice(0, 10);
    const t0 = performance.now();
    const r = await runBoxed(["/bin/sh", "-c", `setsid sleep ${marker} & sleep ${marker}`], compilerBox(dir, 300));
    expect(r.timedOut).toBe(true);
    expect(performance.now() - t0).toBeLessThan(5000);
    await until("no sleep left", () => processesUsing(`sleep ${marker}`).length === 0, 3000);
  });
});

describe("compile()", () => {
  test("past its timeout a compile is compile_timeout and leaves no build directory", async () => {
    const dataDir = scratch();
    let error: unknown;
    try {
      await compile(readFileSync(wasmPath("thumbnail")), { dataDir, engine: sharedEngine(), timeoutMs: 300 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CompileError);
    expect((error as CompileError).code).toBe("compile_timeout");
    expect((error as CompileError).message).toMatch(/ran past the compile timeout/);
    expect(leftoverBuilds(dataDir)).toEqual([]);
  });
});

describe("compiles in the server", () => {
  let s: ServerProcess;
  beforeAll(async () => {
    s = await startServer({ args: ["--compile-timeout", "10000"] });
  });
  afterAll(async () => {
    await s.stop();
  });

  test("a start function that never returns is killed at --compile-timeout: 422 compile_timeout, server fine", async () => {
    const t0 = performance.now();
    const res = await deploy(s, "spinner", spinsAtStart(1));
    const elapsed = performance.now() - t0;
    expect(res.status).toBe(422);
    const err = (await json(res)).error;
    expect(err.code).toBe("compile_timeout");
    expect(err.message).toBe("compiling took longer than the 10 s compile timeout");
    expect(elapsed).toBeGreaterThanOrEqual(10_000);
    expect(elapsed).toBeLessThan(20_000);
    expect(compileChildren(s)).toEqual([]);
    expect(leftoverBuilds(s.dataDir)).toEqual([]);
    expect((await fetch(`${s.url}/v1/functions`)).status).toBe(200);
    expect((await json(await fetch(`${s.url}/v1/functions/spinner`))).status).toBe("failed");
    expect((await deploy(s, "fine", prints("fine"))).status).toBe(201);
    expect(await (await fetch(`${s.url}/v1/functions/fine/invoke`, { method: "POST" })).text()).toBe("fine");
  });

  for (const signal of ["SIGKILL", "SIGSEGV"] as const) {
    test(`a compile child killed by ${signal}: the deploy fails cleanly, list and GET stay 200`, async () => {
      const name = `killed-${signal.toLowerCase()}`;
      const module = spinsAtStart(signal === "SIGKILL" ? 2 : 3);
      const accepted = await deploy(s, name, module, false);
      expect(accepted.status).toBe(202);
      const [child] = await until("the compile child", () => {
        const c = compileChildren(s, module);
        return c.length ? c : undefined;
      });
      // Far enough in that Bun's crash handler is installed and would print its banner.
      await Bun.sleep(1000);
      process.kill(child!, signal);
      const failed = await until("the deploy to fail", async () => {
        const fn = await json(await fetch(`${s.url}/v1/functions/${name}`));
        return fn.status === "failed" ? fn : undefined;
      });
      expect(failed.error).toEqual({ code: "compiler_failed", message: `the compiler process was killed (${signal})` });
      const list = await fetch(`${s.url}/v1/functions`);
      expect(list.status).toBe(200);
      expect((await json(list)).functions.map((f: { name: string }) => f.name)).toContain(name);
      const get = await fetch(`${s.url}/v1/functions/${name}`);
      expect(get.status).toBe(200);
      expect(JSON.stringify(await json(get))).not.toMatch(/Bun v|Kernel|CPU:|\/work\/|\/tmp\//);
      // Background optimized builds of earlier deploys have build directories of their own.
      await until("the other compiles to end", () => compileChildren(s).length === 0, 60_000);
      expect(leftoverBuilds(s.dataDir)).toEqual([]);
      // The child's tools die with it (pdeathsig), a few milliseconds after the server saw it go.
      await until("its tools to die", () => processesUsing(s.dataDir, [s.proc.pid]).length === 0, 3000).catch(() => {
        throw new Error(`left running: ${processesUsing(s.dataDir, [s.proc.pid]).join("\n")}`);
      });
    });
  }
});

describe("a server stopping mid-compile", () => {
  for (const how of ["SIGTERM", "SIGKILL"] as const) {
    test(`${how}: no compile process or tool outlives it, and the next start removes its build directory`, async () => {
      const s = await startServer();
      const accepted = await deploy(s, "spinner", spinsAtStart(10), false);
      expect(accepted.status).toBe(202);
      await until("the compile child", () => compileChildren(s).length > 0);
      // Into the compile: its build directory exists.
      await until("a build directory", () => leftoverBuilds(s.dataDir).length > 0);
      s.proc.kill(how);
      await s.proc.exited;
      await until("no process using the data directory", () => processesUsing(s.dataDir).length === 0, 5000).catch(() => {
        throw new Error(`left running: ${processesUsing(s.dataDir).join("\n")}`);
      });
      if (how === "SIGKILL") expect(leftoverBuilds(s.dataDir).length).toBeGreaterThan(0);
      const again = await startServer({ dataDir: s.dataDir, args: ["--compile-timeout", "1000"] });
      try {
        // The restart rebuilds the record that was compiling; that build's own directory is removed when it fails.
        await until("the rebuild to end", async () => (await json(await fetch(`${again.url}/v1/functions/spinner`))).status !== "compiling");
        expect(leftoverBuilds(again.dataDir)).toEqual([]);
      } finally {
        await again.stop();
      }
    });
  }

  test("build directories of live processes are kept at start, those of dead ones removed", async () => {
    const dataDir = scratch();
    const live = `.build-${process.pid}-aaaa`;
    for (const d of [live, ".build-999999999-bbbb", ".build-0123456789abcdef0123456789abcdef-77-1700000000000"])
      mkdirSync(join(dataDir, "artifacts", d), { recursive: true });
    const s = await startServer({ dataDir });
    try {
      expect(leftoverBuilds(dataDir)).toEqual([live]);
    } finally {
      await s.stop();
    }
  });
});

describe("the compile queue", () => {
  test("--compile-concurrency 1: one compile child at a time; the others wait as `compiling`", async () => {
    const s = await startServer({ args: ["--compile-concurrency", "1"] });
    try {
      const deploys = ["one", "two", "three"].map((n) => deploy(s, n, prints(n)));
      let most = 0;
      let sawWaiting = false;
      let done = false;
      const all = Promise.all(deploys).finally(() => (done = true));
      while (!done) {
        most = Math.max(most, compileChildren(s).length);
        const list = await json(await fetch(`${s.url}/v1/functions`));
        if (list.functions.filter((f: { status: string }) => f.status === "compiling").length > 1) sawWaiting = true;
        await Bun.sleep(10);
      }
      for (const res of await all) expect(res.status).toBe(201);
      expect(most).toBe(1);
      expect(sawWaiting).toBe(true);
    } finally {
      await s.stop();
    }
  });

  test("past --compile-queue a deploy is 503 compile_queue_full with Retry-After", async () => {
    const s = await startServer({ args: ["--compile-concurrency", "1", "--compile-queue", "1", "--compile-timeout", "5000"] });
    try {
      expect((await deploy(s, "running", spinsAtStart(20), false)).status).toBe(202);
      expect((await deploy(s, "waiting", spinsAtStart(21), false)).status).toBe(202);
      const refused = await deploy(s, "refused", spinsAtStart(22), false);
      expect(refused.status).toBe(503);
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect((await json(refused)).error.code).toBe("compile_queue_full");
      expect((await fetch(`${s.url}/v1/functions/refused`)).status).toBe(404);
      expect((await json(await fetch(`${s.url}/v1/functions/waiting`))).status).toBe("compiling");
      // Once the first has timed out the line moves: the second runs and a new deploy is taken.
      await until("the first to time out", async () => (await json(await fetch(`${s.url}/v1/functions/running`))).status === "failed");
      expect((await deploy(s, "taken", prints("taken"), false)).status).toBe(202);
    } finally {
      await s.stop();
    }
  });
});
