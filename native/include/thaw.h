/* thaw.h -- the whole API of libthaw as Bun (bun:ffi) sees it.
 *
 * A *module* is one compiled function: its native code (a shared object
 * made from wasm2c output) plus its snapshot (the initialized instance
 * state and linear-memory image, see snapshot.c). An *instance* is a private
 * copy-on-write view of a module's snapshot that can run one call at a time.
 *
 *   thaw_snapshot_create()   instantiate + wizer.initialize, write snapshot
 *   thaw_module_load()       dlopen code, open snapshot (shared by instances)
 *   thaw_instance_restore()  map the snapshot privately: microseconds
 *   thaw_call() / thaw_submit()
 *   thaw_instance_reset()    drop dirty pages, restore globals and tables
 *
 * Every struct crossing the FFI boundary is made of 64-bit fields only, so
 * TypeScript reads and writes it with fixed offsets and no padding rules.
 * Errors from setup functions are returned as a negative THAW_E* code with a
 * message in the caller's buffer; errors of a call are in thaw_result.
 */
#ifndef THAW_H
#define THAW_H

#include <stddef.h>
#include <stdint.h>

#include "thaw_pool.h"

#ifdef __cplusplus
extern "C" {
#endif

#define THAW_ABI_VERSION 1

/* Outcome of a call (thaw_result.status). Traps keep wasm-rt's order. */
enum thaw_status {
  THAW_OK = 0,               /* returned from _start or proc_exit: see exit_code */
  THAW_TRAP_OOB = 1,         /* out-of-bounds memory or table access */
  THAW_TRAP_INT_OVERFLOW = 2,
  THAW_TRAP_DIV_BY_ZERO = 3,
  THAW_TRAP_INVALID_CONVERSION = 4,
  THAW_TRAP_UNREACHABLE = 5,
  THAW_TRAP_CALL_INDIRECT = 6,
  THAW_TRAP_UNCAUGHT_EXCEPTION = 7,
  THAW_TRAP_STACK_EXHAUSTION = 8, /* call-depth limit reached */
  THAW_TRAP_TIMEOUT = 9,          /* wall-clock limit, instance discarded */
  THAW_TRAP_MEMORY_LIMIT = 10,    /* trapped after memory.grow was refused */
  THAW_TRAP_HOST = 11,            /* the host could not run the call */
  THAW_MOVED = 12,                /* thaw_call_inline: not a result; the call
                                     must run on the executor (see there) */
};

/* Setup error codes (negative returns). */
enum thaw_error {
  THAW_EINVAL = -1,    /* bad argument */
  THAW_EIO = -2,       /* a file could not be read or written */
  THAW_ELOAD = -3,     /* dlopen/dlsym of the function failed */
  THAW_EABI = -4,      /* artifact built for another ABI version */
  THAW_ESNAPSHOT = -5, /* snapshot file malformed or not matching code */
  THAW_ENOMEM = -6,    /* no memory for the instance (or over its cap) */
  THAW_EINIT = -7,     /* instantiation or wizer.initialize failed */
  THAW_EBUSY = -8,     /* executor queue full */
  THAW_ENOENT = -9,    /* thaw_cancel: the call is not queued (started, or unknown) */
};

/* Result flags (thaw_result.flags). */
#define THAW_RESULT_STDOUT_TRUNCATED 1u
#define THAW_RESULT_STDERR_TRUNCATED 2u
#define THAW_RESULT_GROW_REFUSED 4u    /* memory.grow hit the cap at least once */
#define THAW_RESULT_INSTANCE_LOST 8u   /* instance must not be reused (timeout) */
#define THAW_RESULT_RESET 16u          /* instance already reset (RESET_AFTER) */

/* Request flags (thaw_request.flags). */
#define THAW_REQUEST_COUNT_PAGES 1u    /* fill pages_touched (reads pagemap) */
#define THAW_REQUEST_RESET_AFTER 2u    /* reset the instance right after the call,
                                          on the executor thread; output stays
                                          valid until the next call */

typedef struct thaw_limits {
  uint64_t max_memory_pages; /* cap on linear memory, in 64 KiB pages */
  uint64_t timeout_ms;       /* wall clock per call; 0 means none */
  uint64_t max_call_depth;   /* nested wasm calls before a stack trap */
  uint64_t stdout_cap;       /* bytes of stdout kept; the rest is dropped */
  uint64_t stderr_cap;
  uint64_t tenant;           /* memory-pool tenant charged for instances */
} thaw_limits;

/* One call's input. args and env are NUL-terminated strings packed back to
 * back (argc / envc of them); the memory must stay valid until the call
 * completes. */
typedef struct thaw_request {
  uint64_t stdin_ptr;
  uint64_t stdin_len;
  uint64_t args_ptr;
  uint64_t args_len;
  uint64_t argc;
  uint64_t env_ptr;
  uint64_t env_len;
  uint64_t envc;
  uint64_t timeout_ms; /* 0: the module's limit */
  uint64_t flags;
  /* Who the call is for, for the executor's fair queue (executor.c): calls
   * of one tenant share its slot time, and within it, per function. */
  uint64_t tenant;
  uint64_t function;
} thaw_request;

/* One call's outcome. stdout/stderr point into buffers owned by the
 * instance: valid until its next call, reset or free. */
typedef struct thaw_result {
  int64_t status;
  int64_t exit_code;
  uint64_t duration_ns;
  uint64_t pages_touched;
  uint64_t flags;
  uint64_t stdout_ptr;
  uint64_t stdout_len;
  uint64_t stderr_ptr;
  uint64_t stderr_len;
  uint64_t memory_pages; /* linear memory size at the end of the call */
} thaw_result;

typedef struct thaw_module_stats {
  uint64_t code_bytes;      /* size of the function's native code (text) */
  uint64_t snapshot_bytes;  /* linear-memory image size */
  uint64_t memory_pages;    /* pages in the snapshot */
  uint64_t max_memory_pages;
  uint64_t instance_bytes;  /* heap held by one idle instance (struct, tables) */
  uint64_t live_instances;
  uint64_t has_start;
  uint64_t has_initialize;
  uint64_t guarded;         /* built without bounds checks: guarded memory (guard.c) */
} thaw_module_stats;

typedef struct thaw_module thaw_module;
typedef struct thaw_instance thaw_instance;

/* Completion callback of thaw_submit: runs on an executor thread. */
typedef void (*thaw_complete_fn)(uint64_t ticket);

int thaw_abi_version(void);
const char* thaw_status_name(int64_t status);
/* THAW_MAX_FRAME_BYTES (thaw_module.h): the compiler refuses functions whose
 * native frame is larger. */
uint64_t thaw_max_frame_bytes(void);

/* Instantiate the compiled function at so_path with fresh state, run its
 * `wizer.initialize` export when present, and write the snapshot file. On an
 * init trap, *init_result holds the trap and captured output. */
int thaw_snapshot_create(const char* so_path, const char* snapshot_path,
                         const thaw_limits* limits, thaw_result* init_result,
                         char* err, size_t err_len);

thaw_module* thaw_module_load(const char* so_path, const char* snapshot_path,
                              const thaw_limits* limits, char* err,
                              size_t err_len);
void thaw_module_stats_get(const thaw_module* m, thaw_module_stats* out);
/* Nanoseconds to build an instance from scratch, as a runtime without
 * snapshots does on a cold start: instantiate (data segments, tables) and
 * run wizer.initialize. The instance is discarded; for benchmarks. Returns
 * a negative THAW_E* code or THAW_EINIT when instantiation traps. */
int64_t thaw_module_fresh_instantiate_ns(thaw_module* m);
/* Frees the module once its last instance is freed. */
void thaw_module_release(thaw_module* m);

thaw_instance* thaw_instance_restore(thaw_module* m);
int thaw_instance_reset(thaw_instance* inst);
/* Give an idle instance's private pages back to the OS (MADV_DONTNEED); its
 * next call faults them in again from the snapshot. */
void thaw_instance_release_memory(thaw_instance* inst);
void thaw_instance_free(thaw_instance* inst);
/* Private bytes of one instance's linear memory now resident (pagemap). */
uint64_t thaw_instance_private_bytes(const thaw_instance* inst);

/* The process-wide memory pool linear memories come from (thaw_pool.h):
 * created on first use with an arena of THAW_ARENA_BYTES (default 4 TiB of
 * address space). maintain() drives its return-to-OS policy. */
thaw_pool* thaw_memory_pool(void);
void thaw_memory_maintain(void);
/* Guarded memories (guard.c): how many more instances of guarded modules
 * this process has address space for. */
uint64_t thaw_guard_slots_free(void);

/* Run a call on the calling thread. */
int thaw_call(thaw_instance* inst, const thaw_request* req, thaw_result* res);
/* Run a call on a thread that must not be held long (Bun's event loop):
 * as thaw_call, but a call that is still running after budget_ns, that
 * would sleep, or that needs more stack than this thread has is stopped
 * and ends with status THAW_MOVED and its instance reset (flag RESET), or
 * lost if the reset failed. Its output is discarded; submit it to the
 * executor, which runs it from the start. That is sound because a call
 * has no effect outside its instance until its result is read. A call
 * whose own timeout comes first times out as usual. */
int thaw_call_inline(thaw_instance* inst, const thaw_request* req,
                     thaw_result* res, uint64_t budget_ns);

/* Executor: worker threads that run calls off the caller's thread, in a
 * fair order between tenants, on a bounded number of CPU slots (the
 * scheduling model is described in executor.c). */
typedef struct thaw_executor_config {
  uint64_t cpu_slots;   /* calls running guest code at once (cores) */
  uint64_t max_threads; /* worker threads at most: slots + calls blocked
                           (sleeping, or waiting to get a slot back);
                           at least cpu_slots + 1 */
  uint64_t queue_cap;   /* calls queued for their first slot at most */
  uint64_t preempt;     /* 1: a call yields its slot to a tenant owed it */
} thaw_executor_config;

typedef struct thaw_executor_stats {
  uint64_t cpu_slots;
  uint64_t free_slots;
  uint64_t threads;      /* worker threads started */
  uint64_t max_threads;
  uint64_t idle_threads;
  uint64_t queued;       /* calls waiting for their first slot */
  uint64_t running;      /* calls holding a slot */
  uint64_t waiting;      /* started calls waiting to get a slot back */
  uint64_t blocked;      /* started calls in a sleep, holding no slot */
  uint64_t tenants;      /* tenants with calls queued or started */
  uint64_t preemptions;  /* slots taken back for another tenant */
  uint64_t blocks;       /* sleeps that gave their slot up */
} thaw_executor_stats;

int thaw_executor_start_ex(const thaw_executor_config* cfg,
                           thaw_complete_fn on_complete);
/* thaw_executor_start_ex with `threads` slots, 4 x threads more threads for
 * blocked calls, preemption on. */
int thaw_executor_start(uint32_t threads, uint32_t queue_cap,
                        thaw_complete_fn on_complete);
/* Like thaw_executor_start_ex, with completions batched: instead of a call
 * per completed call, on_ready(n) fires (on an executor thread) when a
 * completion arrives and none was pending since the queue was last emptied;
 * the caller then drains with thaw_completions_take. */
int thaw_executor_start_batched(const thaw_executor_config* cfg,
                                thaw_complete_fn on_ready);
/* Batched mode: up to max completed tickets into tickets[]; returns how
 * many. Fewer than max: the queue is empty and the next completion fires
 * on_ready again. */
uint32_t thaw_completions_take(uint64_t* tickets, uint32_t max);
/* Batched mode, for a caller that polls instead of waiting for on_ready:
 * three words. [0] is bumped (atomically, after the ticket is queued) at
 * each completion. While [1] is 1 completions do not call on_ready: the
 * caller sets it before thaw_submit (thaw_completions_wait sets it too) and
 * must call thaw_completions_take when it stops polling (which sets [1]
 * back to 0).
 * [2] is 1 when the caller's last thaw_submit handed the call to a worker
 * that was awake (spinning), so it runs now without a wake-up. */
uint32_t* thaw_completions_seq(void);
/* Batched mode: mark the caller as polling ([1] = 1) and spin until [0]
 * differs from `seen` (returns 1) or max_ns pass (0). The caller then calls
 * thaw_completions_take either way. */
int thaw_completions_wait(uint32_t seen, uint64_t max_ns);
/* Queue a call for req->tenant / req->function; on_complete(ticket) fires
 * when *res is filled. Tickets of queued calls must be distinct. */
int thaw_submit(thaw_instance* inst, const thaw_request* req, thaw_result* res,
                uint64_t ticket);
/* Take a queued call out before it starts: 0, and on_complete never fires
 * for it; THAW_ENOENT if it has started (it runs to the end) or is unknown. */
int thaw_cancel(uint64_t ticket);
/* Calls queued or started and not yet completed. */
uint64_t thaw_executor_pending(void);
void thaw_executor_stats_get(thaw_executor_stats* out);
void thaw_executor_stop(void);

#ifdef __cplusplus
}
#endif

#endif /* THAW_H */
