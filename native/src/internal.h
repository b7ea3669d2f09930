/* internal.h -- state shared by libthaw's translation units.
 *
 * Ownership, stated once:
 *  - thaw_module owns the dlopen handle and the snapshot (a read-only file
 *    mapping of the memory image plus the saved instance bytes and tables).
 *    It lives until it is released and its last instance is freed.
 *  - thaw_instance owns its wasm2c instance struct, its table arrays, its
 *    linear-memory region and its output buffers. At most one call runs on
 *    an instance at a time; the caller (the pool) guarantees it.
 *  - Per-thread call state (the unwind target, the call in progress) lives
 *    in thread-locals set by call.c around each call.
 */
#ifndef THAW_INTERNAL_H
#define THAW_INTERNAL_H

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "thaw.h"
#include "thaw_module.h"
#include "wasm-rt.h"

#define THAW_PAGE_SIZE 65536u
#define THAW_OS_PAGE 4096u

/* Bounded capture of one output stream. Bytes past `cap` are dropped and
 * `truncated` is set; the buffer grows on demand and keeps its allocation
 * between calls up to THAW_OUTBUF_KEEP bytes. */
typedef struct thaw_outbuf {
  uint8_t* data;
  size_t len;
  size_t alloc;
  size_t cap;
  int truncated;
} thaw_outbuf;
#define THAW_OUTBUF_KEEP (64u * 1024u)

void thaw_outbuf_append(thaw_outbuf* b, const uint8_t* p, size_t n);
void thaw_outbuf_clear(thaw_outbuf* b);
void thaw_outbuf_free(thaw_outbuf* b);

/* The WASI host's view of one instance. wasm2c passes a pointer to it as
 * the "instance" of the imported module wasi_snapshot_preview1. */
struct Z_wasi_snapshot_preview1_instance_t {
  wasm_rt_memory_t* memory; /* the instance's linear memory */
  const thaw_request* req;  /* the call in progress: args, env, stdin */
  uint64_t stdin_pos;
  thaw_outbuf out;
  thaw_outbuf err;
  uint64_t deadline_ns; /* CLOCK_MONOTONIC; 0: no deadline */
};
typedef struct Z_wasi_snapshot_preview1_instance_t thaw_wasi;

/* How a call ended, carried through longjmp from traps and proc_exit. */
#define THAW_UNWIND_EXIT 0x100 /* proc_exit: exit code in thaw_call_state */

typedef struct thaw_call_state {
  sigjmp_buf unwind;
  int32_t exit_code;
  volatile sig_atomic_t in_host;         /* inside a WASI host function */
  volatile sig_atomic_t timeout_pending; /* watchdog fired while in host */
  volatile sig_atomic_t active;          /* unwind target is valid */
  volatile sig_atomic_t yield_pending;   /* asked to yield its slot while in host */
  /* On a thread that must not block (thaw_call_inline): a wait ends the
   * call with THAW_MOVED instead of sleeping. */
  int inline_call;
  int grow_refused;
  uint32_t max_pages; /* the function's memory limit: memory + tables (rt.c) */
  /* Linear memory and tables share one budget (rt.c). */
  wasm_rt_memory_t* memory; /* the instance's memory */
  uint64_t table_bytes;     /* its tables' elements, all tables */
  /* Guarded memory (guard.c): the fault handler traps only faults of this
   * call's code, [code_lo, code_hi), in this call's memory slot. */
  int guarded;
  uintptr_t code_lo, code_hi;
  /* Watchdog bookkeeping (call.c), guarded by its lock. */
  uint64_t deadline_ns;
  uint64_t last_signal_ns;
  pthread_t thread;
  struct thaw_call_state* wd_next;
  struct thaw_call_state* wd_prev;
  int wd_armed;
} thaw_call_state;

extern __thread thaw_call_state* thaw_current
    __attribute__((tls_model("initial-exec")));

/* Leave the running call with a status (a THAW_TRAP_* or THAW_UNWIND_EXIT). */
__attribute__((noreturn)) void thaw_unwind(int status);

/* WASI host functions bracket their work with these so that a timeout
 * signal never unwinds through host code (which may hold a lock). */
static inline void thaw_host_enter(void) {
  if (thaw_current) thaw_current->in_host = 1;
}
/* Give the CPU slot to whoever is owed it (cpu.c): a preemption that
 * arrived inside host code, taken on the way out, still in_host. */
void thaw_cpu_yield_pending(thaw_call_state* c);
static inline void thaw_host_leave(void) {
  thaw_call_state* c = thaw_current;
  if (!c) return;
  if (c->yield_pending) thaw_cpu_yield_pending(c);
  c->in_host = 0;
  if (c->timeout_pending) thaw_unwind(THAW_TRAP_TIMEOUT);
}

/* Monotonic clock in nanoseconds. */
uint64_t thaw_now_ns(void);

/* Run fn(arg) as wasm code under st: traps, proc_exit and the watchdog
 * unwind back here. Returns 0, THAW_UNWIND_EXIT or a THAW_TRAP_* status. */
int thaw_guarded_run(thaw_call_state* st, void (*fn)(void*), void* arg,
                     uint64_t deadline_ns, uint32_t depth_limit, int inline_call);

/* Start the watchdog thread now, from the calling thread, whose priority
 * it inherits (the executor's workers run at nice 19; the watchdog must
 * not). Otherwise it starts with the first call that has a deadline. */
void thaw_watchdog_start(void);

/* Run fn(arg) on a fresh thread with an executor-sized stack and wait. */
int thaw_run_on_big_stack(void* (*fn)(void*), void* arg);
#define THAW_STACK_BYTES (128u << 20)

void thaw_wasi_init(thaw_wasi* w, wasm_rt_memory_t* memory, size_t stdout_cap,
                    size_t stderr_cap);
void thaw_wasi_begin_call(thaw_wasi* w, const thaw_request* req,
                          uint64_t deadline_ns);
void thaw_wasi_free(thaw_wasi* w);

/* Linear-memory regions (memory.c). A region reserves `max_pages` of
 * address space; [0, image_len) maps the snapshot image copy-on-write and
 * the rest is anonymous zero memory. A guarded region (guard.c) lives in a
 * THAW_GUARD_SPAN slot of which only [0, size) is mapped. */
typedef struct thaw_region {
  uint8_t* base;
  size_t reserved;
  int guarded;
  /* While `listed`: every private page of [0, image_len) is in
   * private_pages (memory.c, "Restoring without a scan"). */
  int listed;
  uint32_t n_private, cap_private;
  uint32_t* private_pages;
} thaw_region;

size_t thaw_region_size(uint32_t max_pages);
int thaw_region_reserve(thaw_region* r, uint32_t max_pages, uint32_t tenant);
/* A guarded region for a memory of max_pages, with `size` bytes mapped. */
int thaw_region_reserve_guarded(thaw_region* r, uint32_t max_pages,
                                uint32_t tenant, uint64_t size);
/* Guarded regions: map [0, new_size) and nothing past it (else a no-op). */
int thaw_region_resize(thaw_region* r, uint64_t old_size, uint64_t new_size);
int thaw_region_map_image(thaw_region* r, int fd, uint64_t file_off,
                          size_t image_len);
int thaw_region_discard(thaw_region* r, size_t len);
int thaw_region_restore(thaw_region* r, size_t len, const uint8_t* image,
                        size_t image_len);
/* The region's list of private pages no longer holds: the next restore scans. */
void thaw_region_forget(thaw_region* r);
/* 1 if the calling thread took a page fault since its previous check (or
 * this is its first, or it cannot tell); 0 if it certainly took none. */
int thaw_thread_faulted(void);
void thaw_region_release(thaw_region* r);

/* Guard slots (guard.c). Every access wasm2c code makes lies within 8 GiB
 * of the memory's base: a 32-bit address plus a 32-bit offset. */
#define THAW_GUARD_SPAN (8ull << 30)
uint8_t* thaw_guard_take(uint32_t tenant, uint64_t charge, uint64_t size);
int thaw_guard_resize(uint8_t* base, uint64_t old_size, uint64_t new_size);
int thaw_guard_owns(const uint8_t* base);
void thaw_guard_put(uint8_t* base);
/* The executable segment of the fn.so that holds `info`. */
void thaw_code_bounds(const thaw_module_info* info, uintptr_t* lo, uintptr_t* hi);

/* Run a fn.so's init_module(), which registers its function types: ids
 * 1..n, per module (rt.c). Returns n, or THAW_ENOMEM. */
int64_t thaw_init_module(void (*init_module)(void));

/* A funcref table as saved in a snapshot, relocated into this process:
 * func and func_type are ready to use; module_instance is NULL and set to
 * the instance for every non-null entry (funcrefs never cross modules). */
typedef struct thaw_table_template {
  uint32_t size;
  uint32_t max_size;
  wasm_rt_funcref_t* entries;
} thaw_table_template;

#define THAW_HOT_PAGES 32u

struct thaw_module {
  void* dl;
  const thaw_module_info* info;
  uint8_t* instance_bytes; /* the instance struct after initialization */
  thaw_table_template ftables[THAW_MAX_TABLES];
  uint32_t etable_size[THAW_MAX_TABLES];
  uint32_t etable_max[THAW_MAX_TABLES];
  int image_fd;
  const uint8_t* image_view; /* read-only shared view of the image */
  uint64_t image_offset;
  uint64_t image_len;
  uint32_t mem_pages;
  uint32_t max_pages; /* snapshot's maximum capped by limits */
  uint32_t limit_pages; /* the function's memory limit: what memory + tables may use */
  thaw_limits limits;
  uint64_t code_bytes;
  uintptr_t code_lo, code_hi; /* its executable segment */
  int guarded;                /* compiled without bounds checks (guard.c) */
  _Atomic int64_t refs; /* the loader's reference plus one per instance */
  _Atomic int64_t live;
  /* Pages of the snapshot's memory a call writes, learned at the first
   * reset (instance.c): a cold instance's first call writes them first,
   * so that its guest code finds them private already. hot_state: 0 unknown, 1 learning, 2 hot[] is
   * set, 3 none (too many, or no pagemap). */
  _Atomic int hot_state;
  uint32_t hot_n;
  uint32_t hot[THAW_HOT_PAGES];
};

struct thaw_instance {
  thaw_module* module;
  thaw_region region;
  thaw_wasi wasi;
  uint8_t* wasm; /* the wasm2c instance struct */
  size_t touched; /* bytes of the region any call could have written */
  int lost;      /* timed out: never reused */
  int cold;      /* no call since its restore or its memory was released */
};

wasm_rt_memory_t* thaw_instance_memory(thaw_instance* inst);
/* Fill st's limits (memory cap, memory, table bytes) for a call on inst. */
void thaw_instance_prepare_call(thaw_instance* inst, thaw_call_state* st);
/* Before the first call of a cold instance: write the module's hot pages. */
void thaw_instance_prefault(thaw_instance* inst);
/* Right after a call ran on the calling thread, before anything resets it. */
void thaw_instance_end_call(thaw_instance* inst);
void thaw_module_unref(thaw_module* m);
/* Pages in [base, base+len) that are private to this process (pagemap). */
uint64_t thaw_private_pages(const uint8_t* base, size_t len);
/* The first `cap` of those (page indices into pages[]); returns how many
 * there are in all, or -1 without pagemap. */
int64_t thaw_private_page_list(const uint8_t* base, size_t len, uint32_t* pages,
                               uint32_t cap);
/* Whether a /proc/self/pagemap entry is a page this process wrote. */
int thaw_pagemap_written(uint64_t entry);

#endif /* THAW_INTERNAL_H */
