// The box the compiler runs in. Deploys hand thaw arbitrary modules, and
// wasm2c and the C compiler are large programs that were never meant to
// face hostile input: a module can make them run for hours, take gigabytes
// or crash. So every tool runs boxed, and so does the server's `thaw
// compile` child (which runs the module's start code while snapshotting).
//
// The box is a chain of util-linux programs (and coreutils' nice), which
// every Debian has:
//
//   [nice -n N]  (the server's compile child: below the event loop, as the executor's workers)
//   prlimit --core=0 [--cpu --as --fsize --nproc] --
//     setpriv --pdeathsig KILL --
//       unshare [--user --map-root-user] --net [--pid --fork --kill-child=SIGKILL] --
//         [/bin/sh -c '"$@"; exit $?' sh]  TOOL ARGS...
//
// - rlimits: CPU seconds (SIGXCPU, SIGKILL a second later), address space
//   (cc1 on a 5 MB module wants 2+ GiB; past the limit malloc fails and the
//   compiler says so), file size (SIGXFSZ / EFBIG), no core dumps (a crash
//   must not write the tenant's memory to disk), and a process count.
//   RLIMIT_NPROC counts every task of the real uid and root bypasses it, so
//   it is only a fork-bomb backstop for a non-root server, set high.
// - pdeathsig: the box dies with the process that started it, so a server
//   killed mid-compile leaves nothing behind (the kernel sends it when the
//   spawning *thread* exits; Bun spawns from the JS thread, which lives as
//   long as the process).
// - unshare: no network (a fresh network namespace has only a loopback that
//   is down) and, for the tools, a PID namespace: killing unshare kills its
//   child, and when that child (the namespace's init) dies the kernel kills
//   everything in the namespace, so cc, cc1, as and ld go at once. A PID
//   namespace's init ignores signals it has no handler for (SIGXCPU,
//   SIGXFSZ from its own limits), so a tiny sh is the init and the tool
//   runs as its child with ordinary signal semantics; sh reports a tool
//   killed by signal N as exit status 128+N, which is decoded back (tools
//   do not exit with such codes themselves). The server's compile child gets
//   a network namespace only: it is thaw itself, and its exit status and
//   signal then come straight from the kernel.
// - A cleared environment (PATH=/usr/bin:/bin, LANG=C for messages we can
//   read, TMPDIR=the build dir) and the private build directory as cwd:
//   the only writable place thaw creates for the tools. The box does not
//   hide the rest of the file system (no mount namespace or uid drop); what
//   the server's uid may write, a compromised compiler may too.
// - A wall-clock timeout kills the box's process group; with the PID
//   namespace that takes the whole namespace with it.
//
// Namespaces need root, or unprivileged user namespaces (then unshare maps
// the server's uid to root inside). Which works is probed once per process
// and cached. When neither works (e.g. Docker's default seccomp profile
// refuses unshare to a non-root user) the tools still get rlimits, the
// cleared environment, pdeathsig and the timeout (which kills their process
// group), but no namespaces: they can reach the network, and what cc starts
// (cc1, as) is not killed with a server that dies mid-compile. The server
// logs one warning at start (FunctionService); `thaw run` and `thaw compile`
// stay quiet so their output remains the module's.
//
// Cost, measured on a loaded 2-core VM (medians of 60 runs): wasm-validate
// on hello.wasm takes 2.4 ms plain and 5.4 ms boxed, so ~3 ms per tool
// (the four extra execs ~1.7 ms, the namespaces ~1.2 ms); the compile
// child's box adds ~3 ms to its start. About 12 ms per compile, against
// 1.5-2 s for cc on hello.wasm: under 1 %.

import { constants } from "node:os";
import { ToolchainError } from "./toolchain.ts";

export type SandboxMode = "namespaces" | "user-namespaces" | "none";

export interface Sandbox {
  mode: SandboxMode;
  prlimit: string;
  setpriv: string;
  nice: string;
  unshare?: string;
}

export interface BoxLimits {
  /** RLIMIT_CPU, seconds of CPU per process: SIGXCPU, then SIGKILL a second later. */
  cpuSeconds?: number;
  /** RLIMIT_AS, bytes of address space per process. */
  addressSpaceBytes?: number;
  /** RLIMIT_FSIZE, the largest file a process may write. */
  fileSizeBytes?: number;
  /** RLIMIT_NPROC (ignored by the kernel for root). */
  processes?: number;
}

export interface BoxOptions {
  cwd?: string;
  env: Record<string, string | undefined>;
  /** Wall clock; past it the whole box is killed and the result says timedOut. */
  timeoutMs: number;
  /** Give the command its own PID namespace (and sh as its init). */
  pidNamespace: boolean;
  limits?: BoxLimits;
  /** Bytes kept of stdout and of stderr: the tail, so a tool that floods its output costs no memory. */
  keepBytes?: number;
  /** Run at this nice value (and so does everything it starts). */
  nice?: number;
}

export interface BoxResult {
  exitCode: number | null;
  /** The signal that ended the command, e.g. "SIGXCPU"; "SIGKILL" when the timeout killed it. */
  signal: string | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** Limits for wasm-validate, wasm2c and cc; CPU time comes from the compile's timeout. */
export const COMPILER_LIMITS = {
  addressSpaceBytes: 4 * GiB,
  fileSizeBytes: 512 * MiB,
  processes: 4096,
} as const satisfies BoxLimits;

/** The box one compiler tool runs in: limits, cleared environment, the build directory. */
export function compilerBox(buildDir: string, timeoutMs: number): BoxOptions {
  return {
    cwd: buildDir,
    env: { PATH: "/usr/bin:/bin", LANG: "C", TMPDIR: buildDir },
    timeoutMs,
    pidNamespace: true,
    // The kernel's own backstop for the wall clock, which needs our event loop.
    limits: { ...COMPILER_LIMITS, cpuSeconds: Math.max(1, Math.ceil(timeoutMs / 1000)) },
  };
}

const NAMESPACE_FLAGS = ["--net", "--pid", "--fork", "--kill-child=SIGKILL"];

let probed: Promise<Sandbox> | undefined;

/** What this process can box with: probed once (a couple of milliseconds), then cached. */
export function sandbox(): Promise<Sandbox> {
  probed ??= (async () => {
    const prlimit = Bun.which("prlimit");
    const setpriv = Bun.which("setpriv");
    const nice = Bun.which("nice");
    if (!prlimit) throw new ToolchainError("prlimit", "util-linux");
    if (!setpriv) throw new ToolchainError("setpriv", "util-linux");
    if (!nice) throw new ToolchainError("nice", "coreutils");
    const unshare = Bun.which("unshare");
    if (!unshare) return { mode: "none", prlimit, setpriv, nice };
    const works = async (flags: string[]) => {
      const p = Bun.spawn([unshare, ...flags, ...NAMESPACE_FLAGS, "--", prlimit, "--version"], {
        stdin: "ignore",
        stdout: "ignore",
        stderr: "ignore",
      });
      return (await p.exited) === 0;
    };
    if (await works([])) return { mode: "namespaces", prlimit, setpriv, nice, unshare };
    if (await works(["--user", "--map-root-user"])) return { mode: "user-namespaces", prlimit, setpriv, nice, unshare };
    return { mode: "none", prlimit, setpriv, nice };
  })();
  probed.catch(() => (probed = undefined));
  return probed;
}

/** The argv that runs `cmd` in the box. */
function boxCommand(box: Sandbox, cmd: string[], opts: Pick<BoxOptions, "pidNamespace" | "limits" | "nice">): string[] {
  const l = opts.limits ?? {};
  const rlimits = [
    "--core=0",
    // soft:hard, so the process first gets SIGXCPU and we can say which limit it was.
    ...(l.cpuSeconds ? [`--cpu=${l.cpuSeconds}:${l.cpuSeconds + 1}`] : []),
    ...(l.addressSpaceBytes ? [`--as=${l.addressSpaceBytes}`] : []),
    ...(l.fileSizeBytes ? [`--fsize=${l.fileSizeBytes}`] : []),
    ...(l.processes ? [`--nproc=${l.processes}`] : []),
  ];
  // nice first, so that every process of the box starts at that priority.
  const niced = opts.nice === undefined ? [] : [box.nice, "-n", String(opts.nice)];
  const chain = [...niced, box.prlimit, ...rlimits, "--", box.setpriv, "--pdeathsig", "KILL", "--"];
  if (box.mode === "none") return [...chain, ...cmd];
  const user = box.mode === "user-namespaces" ? ["--user", "--map-root-user"] : [];
  if (!opts.pidNamespace) return [...chain, box.unshare!, ...user, "--net", "--", ...cmd];
  return [...chain, box.unshare!, ...user, ...NAMESPACE_FLAGS, "--", "/bin/sh", "-c", '"$@"; exit $?', "sh", ...cmd];
}

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, n]) => [n as number, name]));

/** Runs `cmd` boxed and waits for it; never rejects for what the command did, only if it cannot start. */
export async function runBoxed(cmd: string[], opts: BoxOptions): Promise<BoxResult> {
  const box = await sandbox();
  const proc = Bun.spawn(boxCommand(box, cmd, opts), {
    cwd: opts.cwd,
    env: opts.env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    // Its own process group, so the timeout can kill everything it started even without namespaces.
    detached: true,
  });
  let timedOut = false;
  const timer = setTimeout(
    () => {
      timedOut = true;
      killGroup(proc.pid);
    },
    // setTimeout takes at most 2^31-1 ms and fires at once past it.
    Math.min(Math.max(0, opts.timeoutMs), 2 ** 31 - 1),
  );
  // Once the command is gone (and reaped: its pid may be reused, so no more
  // kills), its output is read for at most a second more: a descendant that
  // escaped the group must not hold the compile open.
  let outputDeadline: ReturnType<typeof setTimeout> | undefined;
  const stopReading = new Promise<void>((resolve) =>
    proc.exited.then(() => {
      clearTimeout(timer);
      outputDeadline = setTimeout(resolve, 1000).unref();
    }),
  );
  const keep = opts.keepBytes ?? 64 * 1024;
  const [stdout, stderr] = await Promise.all([
    readTail(proc.stdout, keep, stopReading),
    readTail(proc.stderr, keep, stopReading),
    proc.exited,
  ]);
  clearTimeout(outputDeadline);
  const code = proc.signalCode;
  let signal: string | null = timedOut ? "SIGKILL" : typeof code === "number" ? (SIGNAL_NAMES.get(code) ?? null) : code;
  let exitCode = timedOut ? null : proc.exitCode;
  if (!signal && opts.pidNamespace && box.mode !== "none" && exitCode !== null && exitCode > 128) {
    signal = SIGNAL_NAMES.get(exitCode - 128) ?? null;
    if (signal) exitCode = null;
  }
  return { exitCode, signal, timedOut, stdout, stderr };
}

/** SIGKILL to a process group and its leader; either may already be gone. */
function killGroup(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, "SIGKILL");
    } catch {
      // ESRCH: already gone.
    }
  }
}

async function readTail(stream: ReadableStream<Uint8Array>, keep: number, stop: Promise<void>): Promise<string> {
  const reader = stream.getReader();
  void stop.then(() => reader.cancel().catch(() => {}));
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
    while (chunks.length > 1 && size - chunks[0]!.length >= keep) size -= chunks.shift()!.length;
  }
  const all = Buffer.concat(chunks);
  return all.subarray(Math.max(0, all.length - keep)).toString("utf8");
}
