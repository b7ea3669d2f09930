/* thaw_module.h -- what a compiled function exports to libthaw.
 *
 * wasm2c names everything after the module and lays the instance struct out
 * per module, so the compiler (src/compiler/glue.ts) generates a small C file
 * next to the wasm2c output that describes the instance to libthaw in this
 * fixed shape: where the WASI import pointer, the memory and the tables sit
 * inside the struct, and the entry points. libthaw finds it with
 * dlsym("thaw_function_info").
 *
 * Everything in the instance struct that is not listed here is plain data
 * (globals, segment-dropped flags) and is restored by copying bytes.
 */
#ifndef THAW_MODULE_H
#define THAW_MODULE_H

#include <stdint.h>

#define THAW_MODULE_ABI 2
#define THAW_MAX_TABLES 8

/* The snapshot file's format (snapshot.c). It lives here because the
 * compiler's artifact key hashes this header: bumping it rebuilds every
 * artifact instead of leaving old snapshots that no longer load. */
#define THAW_SNAPSHOT_MAGIC "THAWSNP2"

/* The largest native stack frame a compiled function may have. A function
 * allocates its frame before its prologue checks the stack (wasm-rt.h), so
 * libthaw keeps room for frames of this size below each thread's stack
 * floor (THAW_STACK_RESERVE in call.c), and the compiler refuses a module
 * with any frame over it (gcc/clang -fstack-usage) -- as well as one with a
 * frame of unbounded size (alloca). Without that bound, one frame could
 * also step over the stack's guard page into another mapping. 256 KiB is
 * ~32,000 spilled 8-byte values: far beyond what real code keeps live, and
 * little next to an executor's THAW_STACK_BYTES. TypeScript reads it with
 * thaw_max_frame_bytes() (thaw.h). */
#define THAW_MAX_FRAME_BYTES (256u << 10)

/* thaw_module_info.flags */
#define THAW_MODULE_GUARDED 1u /* no bounds checks: needs guarded memory (guard.c) */

typedef struct thaw_module_info {
  uint32_t abi;
  uint32_t flags;
  uint32_t instance_size;
  int32_t wasi_offset;   /* offset of the import pointer; -1: no WASI import */
  int32_t memory_offset; /* offset of the wasm_rt_memory_t */
  uint32_t n_funcref_tables;
  uint32_t n_externref_tables;
  uint32_t funcref_table_offsets[THAW_MAX_TABLES];
  uint32_t externref_table_offsets[THAW_MAX_TABLES];
  void (*init_module)(void);
  void (*instantiate)(void* instance, void* wasi);
  void (*free_instance)(void* instance);
  void (*start)(void* instance);      /* `_start`, or NULL */
  void (*initialize)(void* instance); /* `wizer.initialize`, or NULL */
} thaw_module_info;

#endif /* THAW_MODULE_H */
