/* test_guard.c -- guarded memories (guard.c) under AddressSanitizer and UBSan.
 *
 * Plays the part of compiled code: a function of this binary stands in for
 * fn.so's code, its call state names it as the code range, and it touches
 * a guard slot the way wasm2c's unchecked loads do. What must hold:
 *  - a fault in the slot past the memory's size, by the call's code, is an
 *    OOB trap, and the thread (and its next call) carries on;
 *  - every other fault is passed on: outside a call, by code outside the
 *    range, past the slot, in a memory that is no slot, in host code. Those run in a
 *    forked child, which must die of the fault (or ASan's report of it),
 *    not carry on as if trapped;
 *  - growing maps fresh zero pages, shrinking unmaps them again, and a
 *    slot goes back to the pool with its tenant's charge.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#include "check.h"

#define PAGE THAW_PAGE_SIZE

static volatile uint64_t g_offset;
static wasm_rt_memory_t g_mem;

/* The stand-in for compiled code: one unchecked load at g_offset. */
__attribute__((noinline)) static void touch(void* arg) {
  (void)arg;
  volatile uint8_t* p = g_mem.data + g_offset;
  (void)*p;
}
__attribute__((noinline)) static void after_touch(void) {}

static void state_for(thaw_call_state* st, int in_range) {
  memset(st, 0, sizeof *st);
  st->guarded = 1;
  st->memory = &g_mem;
  st->max_pages = 4;
  uintptr_t a = (uintptr_t)touch, b = (uintptr_t)after_touch;
  st->code_lo = in_range ? (a < b ? a : b) : 1;
  st->code_hi = in_range ? (a < b ? b : a) + 4096 : 2;
}

static int run_touch(uint64_t offset, int in_range) {
  thaw_call_state st;
  state_for(&st, in_range);
  g_offset = offset;
  return thaw_guarded_run(&st, touch, NULL, 0, 1000, 0);
}

/* Runs f in a child; returns 1 when the child died of its fault (a signal,
 * or ASan's report and non-zero exit) rather than exiting 0. */
static int dies(void (*f)(void)) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE* quiet = freopen("/dev/null", "w", stderr); /* ASan's report of the fault */
    (void)quiet;
    f();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

static void fault_outside_call(void) {
  volatile uint8_t* p = g_mem.data + g_mem.size;
  (void)*p;
}
static void fault_outside_code_range(void) { run_touch(g_mem.size, 0); }
static void fault_far_past_slot(void) { run_touch(THAW_GUARD_SPAN + (1ull << 30), 1); }

static void fault_in_host_code(void) {
  thaw_call_state st;
  state_for(&st, 1);
  st.in_host = 1;
  st.active = 1;
  thaw_current = &st;
  g_offset = g_mem.size;
  touch(NULL);
}

/* Code in range, address past the size, but the memory is not a guard
 * slot (a bug, not a wasm access): passed on. */
static void fault_outside_any_slot(void) {
  uint8_t* other = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  mprotect(other + PAGE, PAGE, PROT_NONE);
  g_mem.data = other;
  run_touch(PAGE, 1);
}

static void test_traps_and_passes_on(void) {
  thaw_region r;
  CHECK(thaw_region_reserve_guarded(&r, 4, 0, PAGE) == 0);
  g_mem = (wasm_rt_memory_t){.data = r.base, .pages = 1, .max_pages = 4, .size = PAGE};
  CHECK(run_touch(0, 1) == 0);
  CHECK(run_touch(PAGE - 1, 1) == 0);
  CHECK(run_touch(PAGE, 1) == THAW_TRAP_OOB);
  CHECK(run_touch(0xFFFFFFFFull + 0xFFFFFFFFull, 1) == THAW_TRAP_OOB);
  /* The thread is fine after a trap: the signal is not left blocked. */
  CHECK(run_touch(3 * PAGE, 1) == THAW_TRAP_OOB);
  CHECK(run_touch(17, 1) == 0);
  CHECK(dies(fault_outside_call));
  CHECK(dies(fault_outside_code_range));
  CHECK(dies(fault_far_past_slot));
  CHECK(dies(fault_in_host_code));
  CHECK(dies(fault_outside_any_slot));
  thaw_region_release(&r);
}

static void test_resize(void) {
  thaw_region r;
  CHECK(thaw_region_reserve_guarded(&r, 4, 0, PAGE) == 0);
  g_mem = (wasm_rt_memory_t){.data = r.base, .pages = 1, .max_pages = 4, .size = PAGE};
  CHECK(thaw_region_resize(&r, PAGE, 3 * PAGE) == 0);
  g_mem.size = 3 * PAGE;
  r.base[3 * PAGE - 1] = 7;
  CHECK(run_touch(3 * PAGE - 1, 1) == 0);
  CHECK(thaw_region_resize(&r, 3 * PAGE, PAGE) == 0);
  g_mem.size = PAGE;
  CHECK(run_touch(2 * PAGE, 1) == THAW_TRAP_OOB);
  CHECK(thaw_region_resize(&r, PAGE, 3 * PAGE) == 0);
  CHECKF(r.base[3 * PAGE - 1] == 0, "a page mapped again reads %d", r.base[3 * PAGE - 1]);
  CHECK(thaw_region_resize(&r, 3 * PAGE, THAW_GUARD_SPAN) == THAW_EINVAL);
  thaw_region_release(&r);
}

/* The tenant is charged its memory limit per slot, and nothing once the
 * slot is back; a tenant at its limit gets no slot. */
static void test_budget(void) {
  thaw_pool* pool = thaw_memory_pool();
  CHECK(pool != NULL);
  enum { T = 7 };
  CHECK(thaw_pool_tenant_set(pool, T, 0, 8u << 20) == 0);
  uint64_t slots = thaw_guard_slots_free();
  thaw_region a, b;
  CHECK(thaw_region_reserve_guarded(&a, 128, T, PAGE) == 0); /* 8 MiB */
  thaw_pool_tenant_stats ts;
  CHECK(thaw_pool_tenant_stats_get(pool, T, &ts) == 0 && ts.used_bytes == 8u << 20);
  CHECK(thaw_guard_slots_free() == slots - 1);
  CHECK(thaw_region_reserve_guarded(&b, 128, T, PAGE) == THAW_ENOMEM);
  CHECK(thaw_guard_slots_free() == slots - 1);
  thaw_region_release(&a);
  CHECK(thaw_pool_tenant_stats_get(pool, T, &ts) == 0 && ts.used_bytes == 0);
  CHECK(thaw_guard_slots_free() == slots);
}

int main(void) {
  test_traps_and_passes_on();
  test_resize();
  test_budget();
  return check_summary();
}
