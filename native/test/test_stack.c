/* test_stack.c -- the native stack floor (call.c, wasm-rt.h) at its limits.
 *
 * Compiled functions are tested through the real pipeline
 * (test/engine-limits.test.ts), but real code cannot easily be made to have
 * a frame of exactly THAW_MAX_FRAME_BYTES (frames that big take cc minutes
 * to compile). This test stands in for one: a function with the prologue
 * wasm2c emits and a frame of THAW_MAX_FRAME_BYTES that it writes in full
 * *before* its check, the worst a compiled function may do. It recurses
 * until the check traps, on threads with small stacks so the floor is
 * reached in a few dozen levels:
 *  - every level calls a WASI host function (fd_write, which grows its
 *    capture with realloc), so one runs from the deepest passing frame;
 *  - in a second run, the level whose check fails waits there for the
 *    watchdog's timeout signal, whose handler then runs below a frame that
 *    is already two frames under the floor.
 * Either run overflowing the reserve would be a SIGSEGV, not a status.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include "check.h"

/* The frame is the array plus a little; the sanitizers' redzones make it
 * somewhat larger, which only makes the test stricter. */
#define FRAME_ARRAY (THAW_MAX_FRAME_BYTES - 1024)

uint32_t Z_wasi_snapshot_preview1Z_fd_write(thaw_wasi*, uint32_t, uint32_t,
                                            uint32_t, uint32_t);

typedef struct run {
  thaw_wasi wasi;
  wasm_rt_memory_t memory;
  uint8_t mem[64];
  int wait_for_signal;
  volatile uint32_t deepest;
} run;

static __attribute__((noinline)) uint64_t level(run* r, uint32_t n) {
  volatile uint8_t frame[FRAME_ARRAY];
  memset((uint8_t*)frame, (int)n, sizeof frame);
  if (++wasm_rt_call_stack_depth > WASM_RT_MAX_CALL_STACK_DEPTH) {
    if (r->wait_for_signal)
      for (;;) __asm__ volatile("" ::: "memory");
    wasm_rt_trap(WASM_RT_TRAP_EXHAUSTION);
  }
  r->deepest = n;
  Z_wasi_snapshot_preview1Z_fd_write(&r->wasi, 1, 0, 1, 8);
  uint64_t below = level(r, n + 1);
  --wasm_rt_call_stack_depth;
  return below + frame[n % sizeof frame];
}

static void run_levels(void* arg) { level(arg, 1); }

typedef struct job {
  int wait_for_signal;
  int status;
  uint32_t deepest;
  size_t output;
} job;

static void* run_job(void* arg) {
  job* j = arg;
  run* r = calloc(1, sizeof *r);
  r->memory = (wasm_rt_memory_t){r->mem, 1, 1, sizeof r->mem};
  memcpy(r->mem, "\x10\0\0\0\x20\0\0\0", 8); /* iovec: 32 bytes at 16 */
  r->wait_for_signal = j->wait_for_signal;
  thaw_wasi_init(&r->wasi, &r->memory, 1 << 20, 1 << 20);
  thaw_call_state st = {0};
  uint64_t deadline = j->wait_for_signal ? thaw_now_ns() + 50000000u : 0;
  thaw_wasi_begin_call(&r->wasi, NULL, deadline);
  j->status = thaw_guarded_run(&st, run_levels, r, deadline, 20000, 0);
  j->deepest = r->deepest;
  j->output = r->wasi.out.len;
  thaw_wasi_free(&r->wasi);
  free(r);
  return NULL;
}

static job on_thread(size_t stack_bytes, int wait_for_signal) {
  job j = {.wait_for_signal = wait_for_signal};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack_bytes);
  pthread_t t;
  CHECK(pthread_create(&t, &attr, run_job, &j) == 0);
  pthread_join(t, NULL);
  pthread_attr_destroy(&attr);
  return j;
}

static void test_floor(void) {
  for (size_t mib = 4; mib <= 16; mib *= 2) {
    job j = on_thread(mib << 20, 0);
    CHECKF(j.status == THAW_TRAP_STACK_EXHAUSTION, "%zu MiB: status %d", mib, j.status);
    /* Most of the stack is usable: all but the reserve and a frame or two. */
    uint32_t levels = (uint32_t)((mib << 20) / THAW_MAX_FRAME_BYTES);
    CHECKF(j.deepest + 5 >= levels && j.deepest < levels,
           "%zu MiB: %u levels of %u", mib, j.deepest, levels);
    CHECK(j.output == 32u * j.deepest);
  }
}

static void test_signal_below_floor(void) {
  job j = on_thread(8u << 20, 1);
  CHECKF(j.status == THAW_TRAP_TIMEOUT, "status %d", j.status);
  CHECK(j.deepest > 20);
}

/* A stack smaller than the reserve: every call traps, none overflows. */
static void test_tiny_stack(void) {
  job j = on_thread(512u << 10, 0);
  CHECKF(j.status == THAW_TRAP_STACK_EXHAUSTION, "status %d", j.status);
  CHECK(j.deepest == 0);
}

/* The main thread (whose stack bound glibc finds differently). */
static void test_main_thread(void) {
  job j = {0};
  run_job(&j);
  CHECKF(j.status == THAW_TRAP_STACK_EXHAUSTION, "status %d", j.status);
  CHECK(j.deepest > 4);
}

int main(void) {
  test_floor();
  test_signal_below_floor();
  test_tiny_stack();
  test_main_thread();
  return check_summary();
}
