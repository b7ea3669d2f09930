/* test_hostile.c -- libthaw's wasm-rt runtime against what a hostile module
 * can make wasm2c's code ask of it, under AddressSanitizer and UBSan.
 *
 * Standalone (no compiled functions): it plays the part of fn.so, calling
 * the wasm-rt entry points the way wasm2c 1.0.32 output does, so limits
 * far past anything a test module could reach quickly (hundreds of
 * thousands of function types, 2,000-value signatures) are cheap to check.
 * The end-to-end versions of these cases, through the real compiler, are
 * in test/engine-hostile.test.ts.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include "check.h"

/* ---- function types --------------------------------------------------------
 * wasm2c's init_module() registers each type of the type section in order;
 * these stand in for it. */

enum { MANY_TYPES = 100000 };
static uint32_t g_ids[MANY_TYPES];

/* Type i: i's nine base-4 digits as parameter types (4^9 > MANY_TYPES),
 * one result: distinct for every i. */
static uint32_t register_numbered(uint32_t i) {
  uint32_t t[9];
  for (int d = 0; d < 9; d++, i /= 4) t[d] = i % 4;
  return wasm_rt_register_func_type(9, 1, t[0], t[1], t[2], t[3], t[4], t[5], t[6],
                                    t[7], t[8], WASM_RT_I64);
}

static void init_many(void) {
  for (uint32_t i = 0; i < MANY_TYPES; i++) g_ids[i] = register_numbered(i);
}

/* Ids count distinct types in registration order, and repeat for an equal
 * type; another module registers from scratch, so no number of modules
 * (deploys) fills anything up, and one fn.so always gets the same ids. */
static void test_types_are_per_module(void) {
  for (int module = 0; module < 3; module++) {
    memset(g_ids, 0, sizeof g_ids);
    int64_t n = thaw_init_module(init_many);
    CHECKF(n == MANY_TYPES, "module %d: %lld distinct types", module, (long long)n);
    uint32_t wrong = 0;
    for (uint32_t i = 0; i < MANY_TYPES; i++) wrong += g_ids[i] != i + 1;
    CHECKF(wrong == 0, "module %d: %u ids out of order", module, wrong);
  }
}

static uint32_t g_dup[4];

static void init_duplicates(void) {
  g_dup[0] = wasm_rt_register_func_type(1, 1, WASM_RT_I32, WASM_RT_I32);
  g_dup[1] = wasm_rt_register_func_type(0, 0);
  g_dup[2] = wasm_rt_register_func_type(1, 1, WASM_RT_I32, WASM_RT_I32);
  g_dup[3] = wasm_rt_register_func_type(2, 0, WASM_RT_I32, WASM_RT_I32);
}

static void test_equal_types_share_an_id(void) {
  CHECK(thaw_init_module(init_duplicates) == 3);
  CHECKF(g_dup[0] == 1 && g_dup[1] == 2 && g_dup[2] == 1 && g_dup[3] == 3,
         "ids %u %u %u %u", g_dup[0], g_dup[1], g_dup[2], g_dup[3]);
}

/* 1,000 params and 1,000 results (wasm's limits), passed the way wasm2c
 * passes them: one vararg per value type. */
#define T10 WASM_RT_I32, WASM_RT_I32, WASM_RT_I32, WASM_RT_I32, WASM_RT_I32, \
            WASM_RT_I32, WASM_RT_I32, WASM_RT_I32, WASM_RT_I32, WASM_RT_I32,
#define T100 T10 T10 T10 T10 T10 T10 T10 T10 T10 T10
#define T999 T100 T100 T100 T100 T100 T100 T100 T100 T100 \
             T10 T10 T10 T10 T10 T10 T10 T10 T10 \
             WASM_RT_I32, WASM_RT_I32, WASM_RT_I32, WASM_RT_I32, WASM_RT_I32, \
             WASM_RT_I32, WASM_RT_I32, WASM_RT_I32, WASM_RT_I32,
#define T1000 T999 WASM_RT_I32,

static uint32_t g_wide[3];

/* Two types equal but for their 2,000th value. */
static void init_wide(void) {
  g_wide[0] = wasm_rt_register_func_type(1000, 1000, T1000 T999 WASM_RT_I64);
  g_wide[1] = wasm_rt_register_func_type(1000, 1000, T1000 T999 WASM_RT_I32);
  g_wide[2] = wasm_rt_register_func_type(1000, 1000, T1000 T999 WASM_RT_I64);
}

static void test_wide_signatures(void) {
  CHECK(thaw_init_module(init_wide) == 2);
  CHECKF(g_wide[0] == 1 && g_wide[1] == 2 && g_wide[2] == 1,
         "types differing in their 2,000th value: ids %u %u %u", g_wide[0], g_wide[1],
         g_wide[2]);
}

/* wasm2c never registers outside init_module; if anything did, it must get
 * ids that can only make call_indirect trap: never a real id, never equal. */
static void test_registration_outside_a_load(void) {
  uint32_t a = wasm_rt_register_func_type(0, 0);
  uint32_t b = wasm_rt_register_func_type(0, 0);
  CHECKF(a >= 0x80000000u && b >= 0x80000000u && a != b, "ids %u %u", a, b);
}

/* ---- the memory budget --------------------------------------------------------
 * Linear memory plus tables may not pass the memory region (max_pages *
 * 64 KiB). These run the wasm-rt calls as a call would, with thaw_current
 * set, on a memory whose data is never touched. */

static void test_tables_share_the_memory_budget(void) {
  wasm_rt_memory_t mem = {.pages = 1, .max_pages = 4, .size = THAW_PAGE_SIZE};
  thaw_call_state st = {0};
  st.max_pages = 4;
  st.memory = &mem;
  thaw_current = &st;
  const uint64_t budget = 4 * THAW_PAGE_SIZE;

  wasm_rt_funcref_table_t f = {0};
  wasm_rt_externref_table_t e = {0};
  /* No unwind target is set (active is 0): a trap would abort the test. */
  wasm_rt_allocate_funcref_table(&f, 1000, UINT32_MAX);
  wasm_rt_allocate_externref_table(&e, 1000, UINT32_MAX);
  uint64_t tables = 1000 * sizeof(wasm_rt_funcref_t) + 1000 * sizeof(wasm_rt_externref_t);
  CHECKF(st.table_bytes == tables, "table bytes %llu", (unsigned long long)st.table_bytes);

  /* What is left after the memory and both tables, in externref slots. */
  uint64_t room = (budget - mem.size - tables) / sizeof(wasm_rt_externref_t);
  CHECK(wasm_rt_grow_externref_table(&e, (uint32_t)room + 1, NULL) == UINT32_MAX);
  CHECK(st.grow_refused == 1 && e.size == 1000);
  st.grow_refused = 0;
  CHECK(wasm_rt_grow_externref_table(&e, (uint32_t)room, NULL) == 1000);
  CHECK(e.size == 1000 + room && st.grow_refused == 0);
  CHECK(mem.size + st.table_bytes <= budget);

  /* The tables now hold what memory.grow would need. */
  CHECK(wasm_rt_grow_memory(&mem, 1) == UINT32_MAX && st.grow_refused == 1);
  CHECK(mem.pages == 1 && mem.size == THAW_PAGE_SIZE);
  CHECK(wasm_rt_grow_funcref_table(&f, 1, wasm_rt_funcref_null_value) == UINT32_MAX);
  /* A table's own maximum is the module's business, not a memory limit. */
  st.grow_refused = 0;
  wasm_rt_funcref_table_t small = {0};
  wasm_rt_allocate_funcref_table(&small, 0, 0);
  CHECK(wasm_rt_grow_funcref_table(&small, 1, wasm_rt_funcref_null_value) == UINT32_MAX);
  CHECK(st.grow_refused == 0);

  /* Counts near 2^32 must not wrap any byte count into "fits". */
  CHECK(wasm_rt_grow_externref_table(&e, UINT32_MAX - e.size, NULL) == UINT32_MAX);
  CHECK(wasm_rt_grow_funcref_table(&f, UINT32_MAX - f.size, wasm_rt_funcref_null_value) ==
        UINT32_MAX);

  wasm_rt_free_funcref_table(&f);
  wasm_rt_free_funcref_table(&small);
  wasm_rt_free_externref_table(&e);
  thaw_current = NULL;
}

/* 65,536 pages is 4 GiB: the size must not wrap to 0 (every access would
 * trap and a reset would restore nothing). */
static void test_full_wasm32_memory(void) {
  wasm_rt_memory_t mem = {.pages = 1, .max_pages = 65536, .size = THAW_PAGE_SIZE};
  thaw_call_state st = {0};
  st.max_pages = 65536;
  st.memory = &mem;
  thaw_current = &st;
  CHECK(wasm_rt_grow_memory(&mem, 65535) == 1);
  CHECKF(mem.pages == 65536 && mem.size == (1ull << 32), "size %llu",
         (unsigned long long)mem.size);
  CHECK(wasm_rt_grow_memory(&mem, 1) == UINT32_MAX);
  thaw_current = NULL;
}

int main(void) {
  test_types_are_per_module();
  test_equal_types_share_an_id();
  test_wide_signatures();
  test_registration_outside_a_load();
  test_tables_share_the_memory_budget();
  test_full_wasm32_memory();
  return check_summary();
}
