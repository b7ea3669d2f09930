// The one place TypeScript touches libthaw: symbol table, struct layouts and
// pointer handling over bun:ffi. Every struct in native/include/thaw.h is
// made of 64-bit fields, so each is a BigUint64Array here with named
// indices. Nothing outside src/engine imports bun:ffi.

import { dlopen, FFIType, JSCallback, ptr, toArrayBuffer, type Pointer } from "bun:ffi";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import embeddedLibrary from "../../native/build/libthaw.so" with { type: "file" };

export const ABI_VERSION = 1;

const symbols = {
  thaw_abi_version: { args: [], returns: FFIType.i32 },
  thaw_status_name: { args: [FFIType.i64], returns: FFIType.cstring },
  thaw_snapshot_create: {
    args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64],
    returns: FFIType.i32,
  },
  thaw_module_load: {
    args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64],
    returns: FFIType.ptr,
  },
  thaw_module_stats_get: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.void },
  thaw_module_release: { args: [FFIType.ptr], returns: FFIType.void },
  thaw_module_fresh_instantiate_ns: { args: [FFIType.ptr], returns: FFIType.i64 },
  thaw_instance_restore: { args: [FFIType.ptr], returns: FFIType.ptr },
  thaw_instance_reset: { args: [FFIType.ptr], returns: FFIType.i32 },
  thaw_instance_release_memory: { args: [FFIType.ptr], returns: FFIType.void },
  thaw_instance_free: { args: [FFIType.ptr], returns: FFIType.void },
  thaw_instance_private_bytes: { args: [FFIType.ptr], returns: FFIType.u64 },
  thaw_call: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  thaw_call_inline: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  thaw_memory_pool: { args: [], returns: FFIType.ptr },
  thaw_memory_maintain: { args: [], returns: FFIType.void },
  thaw_guard_slots_free: { args: [], returns: FFIType.u64 },
  thaw_pool_stats_get: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.void },
  thaw_pool_tenant_stats_get: { args: [FFIType.ptr, FFIType.u32, FFIType.ptr], returns: FFIType.i32 },
  thaw_pool_tenant_set: { args: [FFIType.ptr, FFIType.u32, FFIType.u64, FFIType.u64], returns: FFIType.i32 },
  thaw_executor_start_ex: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  thaw_executor_start_batched: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  thaw_completions_take: { args: [FFIType.ptr, FFIType.u32], returns: FFIType.u32 },
  thaw_completions_seq: { args: [], returns: FFIType.ptr },
  thaw_completions_wait: { args: [FFIType.u32, FFIType.u64], returns: FFIType.i32 },
  thaw_submit: {
    args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64],
    returns: FFIType.i32,
  },
  thaw_cancel: { args: [FFIType.u64], returns: FFIType.i32 },
  thaw_executor_pending: { args: [], returns: FFIType.u64 },
  thaw_executor_stats_get: { args: [FFIType.ptr], returns: FFIType.void },
  thaw_executor_stop: { args: [], returns: FFIType.void },
} as const;

export type Lib = ReturnType<typeof dlopen<typeof symbols>>["symbols"];

/** Field indices of the structs in thaw.h. */
export const LIMITS = { maxMemoryPages: 0, timeoutMs: 1, maxCallDepth: 2, stdoutCap: 3, stderrCap: 4, tenant: 5, size: 6 } as const;
/** thaw_pool_stats (thaw_pool.h): 21 counters, then the latency histogram. */
export const POOL_STATS = {
  arenaBytes: 0, usedBytes: 4, committedBytes: 5, reservedBytes: 3, liveBlocks: 6,
  fragWasted: 7, fragBlock: 8, hugeBlocks: 11, osReturns: 12, osReturnBytes: 13,
  failLimit: 14, failSpace: 15, latency: 21, latencyBuckets: 16, size: 37,
} as const;
export const TENANT_STATS = { reservedBytes: 0, limitBytes: 1, usedBytes: 2, overflowBytes: 3, liveBlocks: 4, size: 7 } as const;
export const REQUEST = {
  stdinPtr: 0, stdinLen: 1, argsPtr: 2, argsLen: 3, argc: 4,
  envPtr: 5, envLen: 6, envc: 7, timeoutMs: 8, flags: 9, tenant: 10, function: 11, size: 12,
} as const;
export const EXECUTOR_CONFIG = { cpuSlots: 0, maxThreads: 1, queueCap: 2, preempt: 3, size: 4 } as const;
export const EXECUTOR_STATS = {
  cpuSlots: 0, freeSlots: 1, threads: 2, maxThreads: 3, idleThreads: 4, queued: 5,
  running: 6, waiting: 7, blocked: 8, tenants: 9, preemptions: 10, blocks: 11, size: 12,
} as const;
export const RESULT = {
  status: 0, exitCode: 1, durationNs: 2, pagesTouched: 3, flags: 4,
  stdoutPtr: 5, stdoutLen: 6, stderrPtr: 7, stderrLen: 8, memoryPages: 9, size: 10,
} as const;
export const STATS = {
  codeBytes: 0, snapshotBytes: 1, memoryPages: 2, maxMemoryPages: 3,
  instanceBytes: 4, liveInstances: 5, hasStart: 6, hasInitialize: 7, guarded: 8, size: 9,
} as const;

export const RESULT_FLAGS = { stdoutTruncated: 1n, stderrTruncated: 2n, growRefused: 4n, instanceLost: 8n, reset: 16n };
export const REQUEST_FLAGS = { countPages: 1, resetAfter: 2 };
/** thaw_result.status of an inline call that must run on the executor instead (THAW_MOVED). */
export const STATUS_MOVED = 12;
export const ERRORS: Record<number, string> = {
  [-1]: "invalid argument",
  [-2]: "i/o error",
  [-3]: "cannot load compiled code",
  [-4]: "artifact built for another ABI",
  [-5]: "snapshot malformed",
  [-6]: "out of memory",
  [-7]: "initialization failed",
  [-8]: "executor queue full",
  [-9]: "call not queued",
};
export const E_BUSY = -8;

/** Where libthaw is: THAW_LIB, the build output next to the sources, or --
 * inside the single binary -- a copy of the embedded library written out
 * once per content hash, because dlopen needs a real file. */
export function findLibrary(): string {
  if (process.env.THAW_LIB) return process.env.THAW_LIB;
  if (!embeddedLibrary.startsWith("/$bunfs/")) return embeddedLibrary;
  const bytes = readFileSync(embeddedLibrary);
  const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  const path = join(process.env.THAW_LIB_DIR ?? tmpdir(), `libthaw-${hash}.so`);
  if (!existsSync(path)) {
    const tmp = `${path}.${process.pid}`;
    writeFileSync(tmp, bytes, { mode: 0o755 });
    renameSync(tmp, path);
  }
  return path;
}

export function openLibrary(path: string): Lib {
  const lib = dlopen(path, symbols).symbols;
  const abi = lib.thaw_abi_version();
  if (abi !== ABI_VERSION) throw new Error(`${path} has ABI ${abi}, expected ${ABI_VERSION}`);
  return lib;
}

// Pointer rules: a typed array handed to an FFI function directly stays
// alive for the call. `addr` is only for pointers stored inside a struct
// (thaw_request), whose buffers the caller must keep referenced until the
// call completes -- a bare ptr() of a temporary can be collected before
// native code reads it.
export const cstr = (s: string): Buffer => Buffer.from(`${s}\0`, "utf8");
export const addr = (view: Uint8Array | BigUint64Array): Pointer => ptr(view);
export const errText = (buf: Buffer): string => buf.toString("utf8", 0, Math.max(0, buf.indexOf(0)));

// A struct's 64-bit fields through a Uint32Array over the same memory (x86-64
// is little-endian): every field thaw passes fits a double exactly (sizes,
// counts, user-space pointers below 2^47), and reading or writing one this
// way needs no BigInt, which on a call's path cost more than the call's own
// bookkeeping.
const TWO_32 = 4294967296;
export const words = (s: BigUint64Array): Uint32Array => new Uint32Array(s.buffer, s.byteOffset, s.length * 2);
export const getU64 = (w: Uint32Array, i: number): number => w[2 * i]! + w[2 * i + 1]! * TWO_32;
export const getI64 = (w: Uint32Array, i: number): number => w[2 * i]! + (w[2 * i + 1]! | 0) * TWO_32;
export function setU64(w: Uint32Array, i: number, n: number): void {
  w[2 * i] = n >>> 0;
  w[2 * i + 1] = Math.floor(n / TWO_32);
}

const NO_BYTES = new Uint8Array(0);

/**
 * Copies out of one native buffer (an instance's stdout, say) into
 * JS-owned ones. The buffer is usually at the same address call after
 * call, so the view over it is made once, not per copy: making one costs
 * several times the copy of a short output. The view is only ever read
 * while its address is the buffer's current one, and within its current
 * length, so a buffer freed or moved since is never touched.
 */
export class NativeReader {
  private at = 0;
  private view = NO_BYTES;

  /** `len` bytes at `p`, copied. */
  copy(p: number, len: number): Uint8Array {
    if (!p || !len) return NO_BYTES;
    if (p !== this.at || len > this.view.length) {
      this.view = new Uint8Array(toArrayBuffer(p as Pointer, 0, len));
      this.at = p;
    }
    return this.view.slice(0, len);
  }
}

/** NUL-terminated strings back to back, as thaw_request wants them. */
export function packStrings(items: string[]): Uint8Array {
  return Buffer.from(items.map((s) => `${s}\0`).join(""), "utf8");
}

/** Called on the JS thread when completions are waiting (thaw_executor_start_batched). */
export function readyCallback(onReady: () => void): JSCallback {
  return new JSCallback(() => onReady(), { args: [FFIType.u64], returns: FFIType.void, threadsafe: true });
}

/** The executor's completion words (thaw_completions_seq), in place: [0] the
 * completion counter libthaw bumps atomically (a plain load sees a whole
 * value), [1] "this thread is polling", [2] "the last call submitted went to
 * an awake worker". */
export function completionCounter(lib: Lib): Uint32Array {
  return new Uint32Array(toArrayBuffer(lib.thaw_completions_seq() as Pointer, 0, 12));
}

export type { Pointer };
