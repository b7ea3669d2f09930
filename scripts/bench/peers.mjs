// peers.mjs — the JS engine's own WebAssembly as a peer for thaw's benchmark.
//
// Runs unchanged under node (>= 20) and bun; no dependencies, no TypeScript.
//
//   node --expose-gc scripts/bench/peers.mjs --module functions/build/hello.wasm \
//     --kernel functions/build/kernel.wasm --kernel-input 2000000 [--iterations 2000] [--live 1000] [--kernel-runs 3]
//   bun scripts/bench/peers.mjs ...same flags...
//
// Measures, with a minimal in-file WASI preview1 shim (stdin from memory, stdout/stderr captured):
//   instantiate_us_p50/p99  `new WebAssembly.Instance(module, imports)` for --module (compiled once,
//                           outside the timing), --iterations runs after 100 warmups, timed with
//                           process.hrtime.bigint(), in microseconds.
//   instance_bytes          RSS growth per live idle instance: GC, read RSS, create --live instances
//                           (kept in an array, memory untouched), GC, read RSS; (after-before)/live.
//                           instance_bytes_rss_total is the whole delta. RSS, not the reserved virtual
//                           memory, is the honest figure: engines reserve big regions, touch few pages.
//   instance_bytes_after_start  the same for a second batch where `_start` ran once on each instance
//                           (stdin empty; proc_exit caught), i.e. pages touched by a real run resident.
//   kernel_ms, kernel_stdout  --kernel's `_start` with stdin = --kernel-input (ASCII decimal): best of
//                           --kernel-runs runs, each on a fresh instance (only the `_start` call is timed), and the
//                           captured stdout of the last run (to compare with the native checksum).
//   kernel_cpu_ms           the same runs' least process CPU time (process.cpuUsage, JIT threads included).
// GC: global.gc (node --expose-gc) or Bun.gc(true); without it instance_bytes figures are noisier.
// Output: exactly one line of JSON on stdout; diagnostics go to stderr.
import { readFileSync } from 'node:fs';

const die = (msg) => { process.stderr.write(`peers: ${msg}\n`); process.exit(2); };

// ---- arguments ----------------------------------------------------------------------------------
const opts = { iterations: '2000', live: '1000', 'kernel-runs': '3' };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const m = /^--([a-z-]+)$/.exec(argv[i]);
  if (!m || i + 1 >= argv.length) die(`bad argument: ${argv[i]}`);
  opts[m[1]] = argv[++i];
}
for (const k of ['module', 'kernel', 'kernel-input']) if (opts[k] === undefined) die(`--${k} is required`);
const posInt = (k) => { const n = Number(opts[k]); if (!Number.isInteger(n) || n < 1) die(`--${k} must be a positive integer`); return n; };
const ITER = posInt('iterations'), LIVE = posInt('live');

// ---- minimal WASI preview1 shim -----------------------------------------------------------------
class ExitError extends Error { constructor(code) { super(`proc_exit(${code})`); this.code = code; } }
const ENOSYS = 52, EBADF = 8, ESPIPE = 70, ARGV0 = new TextEncoder().encode('main.wasm\0');

// Returns { imports, bind(instance), stdout(), stderr() } for `module`; every function the module
// imports that the shim lacks becomes a stub returning ENOSYS.
function makeWasi(module, stdin = new Uint8Array(0)) {
  let inst = null, inPos = 0;
  const out = { 1: [], 2: [] };
  const dv = () => new DataView(inst.exports.memory.buffer); // re-fetched: memory can grow
  const u8 = () => new Uint8Array(inst.exports.memory.buffer);
  const iovs = (ptr, n) => { const d = dv(), r = []; for (let i = 0; i < n; i++) r.push([d.getUint32(ptr + 8 * i, true), d.getUint32(ptr + 8 * i + 4, true)]); return r; };
  const wasi = {
    args_sizes_get: (argcP, sizeP) => { const d = dv(); d.setUint32(argcP, 1, true); d.setUint32(sizeP, ARGV0.length, true); return 0; },
    args_get: (argvP, bufP) => { dv().setUint32(argvP, bufP, true); u8().set(ARGV0, bufP); return 0; },
    environ_sizes_get: (cP, sP) => { const d = dv(); d.setUint32(cP, 0, true); d.setUint32(sP, 0, true); return 0; },
    environ_get: () => 0,
    clock_time_get: (id, _prec, p) => { dv().setBigUint64(p, id === 0 ? BigInt(Date.now()) * 1000000n : process.hrtime.bigint(), true); return 0; },
    clock_res_get: (_id, p) => { dv().setBigUint64(p, 1000n, true); return 0; },
    fd_read: (fd, iovP, n, nreadP) => {
      if (fd !== 0) return EBADF;
      const m = u8(); let total = 0;
      for (const [buf, len] of iovs(iovP, n)) {
        const k = Math.min(len, stdin.length - inPos);
        m.set(stdin.subarray(inPos, inPos + k), buf); inPos += k; total += k;
        if (k < len) break;
      }
      dv().setUint32(nreadP, total, true); return 0;
    },
    fd_write: (fd, iovP, n, nwP) => {
      if (fd !== 1 && fd !== 2) return EBADF;
      const m = u8(); let total = 0;
      for (const [buf, len] of iovs(iovP, n)) { out[fd].push(m.slice(buf, buf + len)); total += len; }
      dv().setUint32(nwP, total, true); return 0;
    },
    fd_close: () => 0,
    fd_fdstat_get: (fd, p) => { if (fd > 2) return EBADF; u8().fill(0, p, p + 24); return 0; },
    fd_seek: () => ESPIPE,
    fd_prestat_get: () => EBADF,
    fd_prestat_dir_name: () => EBADF,
    proc_exit: (code) => { throw new ExitError(code); },
    random_get: (p, len) => {
      const m = u8();
      for (let o = 0; o < len; o += 65536) crypto.getRandomValues(m.subarray(p + o, p + Math.min(len, o + 65536)));
      return 0;
    },
    sched_yield: () => 0,
    poll_oneoff: () => ENOSYS,
  };
  const imports = {};
  for (const { module: mod, name, kind } of WebAssembly.Module.imports(module)) {
    if (kind !== 'function') continue; // a non-function import fails instantiation with a clear error
    imports[mod] ??= {};
    imports[mod][name] = (mod === 'wasi_snapshot_preview1' && wasi[name]) || (() => ENOSYS);
  }
  const text = (fd) => Buffer.concat(out[fd]).toString('utf8');
  return { imports, bind(i) { inst = i; inPos = 0; return i; }, stdout: () => text(1), stderr: () => text(2) };
}

// Runs _start; returns the exit code (0 if _start returns normally). Other traps propagate.
function runStart(instance) {
  try { instance.exports._start(); return 0; } catch (e) { if (e instanceof ExitError) return e.code; throw e; }
}

// ---- helpers ------------------------------------------------------------------------------------
const hasGc = !!(globalThis.Bun || typeof globalThis.gc === 'function');
if (!hasGc) process.stderr.write('peers: no GC hook (run node with --expose-gc); instance_bytes will be noisy\n');
function gc() {
  for (let i = 0; i < 3; i++) { if (globalThis.Bun) Bun.gc(true); else if (typeof globalThis.gc === 'function') globalThis.gc(); }
}
const rss = () => process.memoryUsage().rss;
const r2 = (x) => Math.round(x * 100) / 100;
const pct = (sorted, p) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
const load = (path) => { try { return new WebAssembly.Module(readFileSync(path)); } catch (e) { die(`${path}: ${e.message}`); } };

// ---- 1. instantiation latency -------------------------------------------------------------------
const mod = load(opts.module);
const shared = makeWasi(mod); // import object built once: we time instantiation, not shim building
for (let i = 0; i < 100; i++) new WebAssembly.Instance(mod, shared.imports);
const times = new Float64Array(ITER);
for (let i = 0; i < ITER; i++) {
  const t0 = process.hrtime.bigint();
  new WebAssembly.Instance(mod, shared.imports);
  times[i] = Number(process.hrtime.bigint() - t0) / 1000;
}
times.sort();
const linearBytes = new WebAssembly.Instance(mod, shared.imports).exports.memory?.buffer.byteLength ?? 0;

// ---- 2. memory per live instance (idle, then after one _start each) ------------------------------
function liveBatch(start) {
  gc();
  const before = rss();
  let keep = [], badExit = 0;
  for (let i = 0; i < LIVE; i++) {
    const w = makeWasi(mod);
    const inst = w.bind(new WebAssembly.Instance(mod, w.imports));
    if (start && runStart(inst) !== 0) badExit++;
    keep.push(inst);
  }
  gc();
  const delta = rss() - before;
  if (badExit) process.stderr.write(`peers: ${badExit}/${LIVE} _start runs exited non-zero\n`);
  if (keep.length !== LIVE) throw new Error('unreachable'); // keep the batch alive until measured
  keep = null;
  return delta;
}
const idleDelta = liveBatch(false);
const startedDelta = liveBatch(true);
gc();

// ---- 3. CPU kernel ------------------------------------------------------------------------------
const kmod = load(opts.kernel);
const kin = new TextEncoder().encode(String(opts['kernel-input']));
let best = Infinity, bestCpu = Infinity, kout = '';
for (let run = 0; run < posInt('kernel-runs'); run++) {
  const w = makeWasi(kmod, kin);
  const inst = w.bind(new WebAssembly.Instance(kmod, w.imports));
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const code = runStart(inst);
  const cpu = process.cpuUsage(c0);
  bestCpu = Math.min(bestCpu, (cpu.user + cpu.system) / 1000);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (code !== 0) die(`kernel exited with code ${code}: ${w.stderr().trim()}`);
  best = Math.min(best, ms);
  kout = w.stdout();
}

// ---- output -------------------------------------------------------------------------------------
process.stdout.write(JSON.stringify({
  runtime: process.versions.bun ? `bun ${process.versions.bun}` : `node ${process.versions.node}`,
  iterations: ITER,
  live: LIVE,
  gc: hasGc,
  linear_memory_bytes: linearBytes,
  instantiate_us_p50: r2(pct(times, 50)),
  instantiate_us_p99: r2(pct(times, 99)),
  instance_bytes: Math.round(idleDelta / LIVE),
  instance_bytes_rss_total: idleDelta,
  instance_bytes_after_start: Math.round(startedDelta / LIVE),
  instance_bytes_after_start_rss_total: startedDelta,
  kernel_ms: r2(best),
  kernel_cpu_ms: r2(bestCpu),
  kernel_stdout: kout,
}) + '\n');
