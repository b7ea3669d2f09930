// The WASI preview1 host surface libthaw implements (native/src/wasi.c), as
// wasm signatures. A module may import any of these and nothing else; the
// signature must match exactly because wasm2c turns an import into a direct
// C call.

import type { FuncType, Import, ValType } from "./wasm-module.ts";

export const WASI_MODULE = "wasi_snapshot_preview1";

const sig = (spec: string): FuncType => {
  const [params = "", results = ""] = spec.split("->");
  const list = (s: string) => (s.trim() ? (s.trim().split(/\s+/) as ValType[]) : []);
  return { params: list(params), results: list(results) };
};

export const WASI_PREVIEW1: Record<string, FuncType> = {
  args_get: sig("i32 i32 -> i32"),
  args_sizes_get: sig("i32 i32 -> i32"),
  environ_get: sig("i32 i32 -> i32"),
  environ_sizes_get: sig("i32 i32 -> i32"),
  clock_res_get: sig("i32 i32 -> i32"),
  clock_time_get: sig("i32 i64 i32 -> i32"),
  fd_advise: sig("i32 i64 i64 i32 -> i32"),
  fd_allocate: sig("i32 i64 i64 -> i32"),
  fd_close: sig("i32 -> i32"),
  fd_datasync: sig("i32 -> i32"),
  fd_fdstat_get: sig("i32 i32 -> i32"),
  fd_fdstat_set_flags: sig("i32 i32 -> i32"),
  fd_fdstat_set_rights: sig("i32 i64 i64 -> i32"),
  fd_filestat_get: sig("i32 i32 -> i32"),
  fd_filestat_set_size: sig("i32 i64 -> i32"),
  fd_filestat_set_times: sig("i32 i64 i64 i32 -> i32"),
  fd_pread: sig("i32 i32 i32 i64 i32 -> i32"),
  fd_prestat_get: sig("i32 i32 -> i32"),
  fd_prestat_dir_name: sig("i32 i32 i32 -> i32"),
  fd_pwrite: sig("i32 i32 i32 i64 i32 -> i32"),
  fd_read: sig("i32 i32 i32 i32 -> i32"),
  fd_readdir: sig("i32 i32 i32 i64 i32 -> i32"),
  fd_renumber: sig("i32 i32 -> i32"),
  fd_seek: sig("i32 i64 i32 i32 -> i32"),
  fd_sync: sig("i32 -> i32"),
  fd_tell: sig("i32 i32 -> i32"),
  fd_write: sig("i32 i32 i32 i32 -> i32"),
  path_create_directory: sig("i32 i32 i32 -> i32"),
  path_filestat_get: sig("i32 i32 i32 i32 i32 -> i32"),
  path_filestat_set_times: sig("i32 i32 i32 i32 i64 i64 i32 -> i32"),
  path_link: sig("i32 i32 i32 i32 i32 i32 i32 -> i32"),
  path_open: sig("i32 i32 i32 i32 i32 i64 i64 i32 i32 -> i32"),
  path_readlink: sig("i32 i32 i32 i32 i32 i32 -> i32"),
  path_remove_directory: sig("i32 i32 i32 -> i32"),
  path_rename: sig("i32 i32 i32 i32 i32 i32 -> i32"),
  path_symlink: sig("i32 i32 i32 i32 i32 -> i32"),
  path_unlink_file: sig("i32 i32 i32 -> i32"),
  poll_oneoff: sig("i32 i32 i32 i32 -> i32"),
  proc_exit: sig("i32 ->"),
  proc_raise: sig("i32 -> i32"),
  sched_yield: sig("-> i32"),
  random_get: sig("i32 i32 -> i32"),
  sock_accept: sig("i32 i32 i32 -> i32"),
  sock_recv: sig("i32 i32 i32 i32 i32 i32 -> i32"),
  sock_send: sig("i32 i32 i32 i32 i32 -> i32"),
  sock_shutdown: sig("i32 i32 -> i32"),
};

const sameSig = (a: FuncType, b: FuncType) =>
  a.params.join() === b.params.join() && a.results.join() === b.results.join();

/** The imports thaw cannot link, each with the reason. */
export function unsupportedImports(imports: Import[]): { import: string; reason: string }[] {
  const bad: { import: string; reason: string }[] = [];
  for (const imp of imports) {
    const label = `${imp.module}.${imp.name}`;
    // Own properties only: an import named `constructor` or `__proto__` is not a WASI function.
    const expected = imp.module === WASI_MODULE && Object.hasOwn(WASI_PREVIEW1, imp.name) ? WASI_PREVIEW1[imp.name] : undefined;
    if (!expected) bad.push({ import: label, reason: "not a WASI preview1 function" });
    else if (imp.kind !== "func") bad.push({ import: label, reason: `imported as a ${imp.kind}` });
    else if (!imp.type || !sameSig(imp.type, expected))
      bad.push({ import: label, reason: "signature differs from WASI preview1" });
  }
  return bad;
}
