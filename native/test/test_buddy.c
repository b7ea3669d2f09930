/* test_buddy.c -- unit test of the memory pool (native/src/buddy.c) alone.
 *
 * Needs nothing else of libthaw. Every test ends with thaw_pool_check,
 * which recounts all metadata; the randomized run also checks the pool
 * against a model of its own (live blocks, tenants' bytes) and tags every
 * live block, so a block handed out twice, merged too early or given back
 * to the OS while live shows up as a clobbered tag.
 *
 *   clang -std=gnu11 -D_GNU_SOURCE -g -fsanitize=address,undefined \
 *     -Inative/include -Inative/src native/test/test_buddy.c \
 *     native/src/buddy.c -o test_buddy -lpthread
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "buddy.h"
#include "thaw.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BUILD_KIND "sanitized"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define BUILD_KIND "sanitized"
#endif
#endif
#ifndef BUILD_KIND
#define BUILD_KIND "unsanitized"
#endif

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define SEC 1000000000ull

/* ---- harness ----------------------------------------------------------------- */

#include "check.h"

#define CHECK_POOL(p)                                                          \
  do {                                                                         \
    char err_[200];                                                            \
    int rc_ = thaw_pool_check(p, err_, sizeof err_);                           \
    if (rc_ != 0) fprintf(stderr, "%s:%d: pool: %s\n", __FILE__, __LINE__, err_); \
    CHECK(rc_ == 0);                                                           \
  } while (0)

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void) { /* xorshift64* */
  g_rng ^= g_rng >> 12;
  g_rng ^= g_rng << 25;
  g_rng ^= g_rng >> 27;
  return g_rng * 2685821657736338717ull;
}

static uint64_t below(uint64_t n) { return rnd() % n; }

static uint64_t clock_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

static thaw_pool* make_pool(uint64_t arena, uint64_t validate, uint64_t threshold,
                            uint64_t retention_ns, uint64_t max_tenants) {
  thaw_pool_config c;
  thaw_pool_config_default(&c);
  c.arena_bytes = arena;
  c.validate = validate;
  c.return_threshold = threshold;
  c.retention_ns = retention_ns;
  c.max_tenants = max_tenants;
  return thaw_pool_create(&c);
}

static thaw_pool_stats stats(thaw_pool* p) {
  thaw_pool_stats s;
  thaw_pool_stats_get(p, &s);
  return s;
}

static thaw_pool_tenant_stats tstats(thaw_pool* p, uint32_t t) {
  thaw_pool_tenant_stats s;
  thaw_pool_tenant_stats_get(p, t, &s);
  return s;
}

static uint64_t arena_off(thaw_pool* p, const void* ptr) {
  uint8_t* base;
  uint64_t len;
  thaw_pool_arena(p, &base, &len);
  return (uint64_t)((const uint8_t*)ptr - base);
}

static int in_arena(thaw_pool* p, const void* ptr, uint64_t size) {
  uint8_t* base;
  uint64_t len;
  thaw_pool_arena(p, &base, &len);
  const uint8_t* b = ptr;
  return b >= base && b + size <= base + len;
}

/* Resident pages of [p, p+len) (mincore). */
static uint64_t resident(const void* p, uint64_t len) {
  long page = sysconf(_SC_PAGESIZE);
  uint64_t n = len / (uint64_t)page, r = 0;
  unsigned char* vec = malloc(n);
  if (mincore((void*)p, len, vec) != 0) {
    free(vec);
    return UINT64_MAX;
  }
  for (uint64_t i = 0; i < n; i++) r += vec[i] & 1;
  free(vec);
  return r;
}

static int all_bytes(const void* p, uint64_t len, uint8_t v) {
  const uint8_t* b = p;
  for (uint64_t i = 0; i < len; i++)
    if (b[i] != v) return 0;
  return 1;
}

static void shuffle(void** a, uint64_t n) {
  for (uint64_t i = n; i > 1; i--) {
    uint64_t j = below(i);
    void* t = a[i - 1];
    a[i - 1] = a[j];
    a[j] = t;
  }
}

/* ---- tests --------------------------------------------------------------------- */

static void test_config(void) {
  thaw_pool_config c;
  thaw_pool_config_default(&c);
  CHECK(c.min_block == 64 * KiB && c.return_threshold == 500 &&
        c.retention_ns == SEC && c.validate == 0);
  thaw_pool_config bad = c;
  bad.min_block = 3 * 64 * KiB;
  CHECK(thaw_pool_create(&bad) == NULL);
  bad = c;
  bad.min_block = 2048;
  CHECK(thaw_pool_create(&bad) == NULL);
  bad = c;
  bad.arena_bytes = 32 * KiB;
  CHECK(thaw_pool_create(&bad) == NULL);
  bad = c;
  bad.return_threshold = 1001;
  CHECK(thaw_pool_create(&bad) == NULL);
  bad = c;
  bad.max_tenants = 0;
  CHECK(thaw_pool_create(&bad) == NULL);
  CHECK(thaw_pool_create(NULL) == NULL);

  thaw_pool* p = thaw_pool_create(&c);
  CHECK(p != NULL);
  thaw_pool_stats s = stats(p);
  CHECK(s.arena_bytes == 1ull << 30 && s.max_block == 1ull << 30 &&
        s.min_block == 64 * KiB && s.used_bytes == 0 && s.committed_bytes == 0);
  uint8_t* base;
  uint64_t len;
  thaw_pool_arena(p, &base, &len);
  CHECK(((uintptr_t)base & ((1ull << 30) - 1)) == 0); /* aligned to max block */
  CHECK_POOL(p);
  thaw_pool_destroy(p);
  thaw_pool_destroy(NULL);
  CHECK(thaw_pool_alloc(NULL, 0, 1) == NULL && thaw_pool_free(NULL, NULL) != 0);
}

static void test_split_coalesce(void) {
  thaw_pool* p = make_pool(16 * MiB, 0, 500, SEC, 4);
  void* b[257];
  int ok = 1;
  for (int i = 0; i < 256; i++) {
    b[i] = thaw_pool_alloc(p, 0, 1 + below(64 * KiB));
    ok &= b[i] && in_arena(p, b[i], 64 * KiB) && ((uintptr_t)b[i] & (64 * KiB - 1)) == 0;
    ok &= thaw_pool_block_size(p, b[i]) == 64 * KiB;
  }
  CHECK(ok);
  uint64_t lay[64];
  CHECK(thaw_pool_free_layout(p, THAW_POOL_SHARED, lay, 64) == 0);
  CHECK(thaw_pool_alloc(p, 0, 1) == NULL && stats(p).fail_space == 1);
  CHECK(stats(p).used_bytes == 16 * MiB && stats(p).committed_bytes == 16 * MiB);
  CHECK_POOL(p);
  shuffle(b, 256);
  for (int i = 0; i < 256; i++) ok &= thaw_pool_free(p, b[i]) == 0;
  CHECK(ok);
  CHECK(thaw_pool_free_layout(p, THAW_POOL_SHARED, lay, 64) == 1 && lay[0] == (0 | 24));
  CHECK(stats(p).used_bytes == 0 && stats(p).live_blocks == 0);
  CHECK_POOL(p);

  /* Mixed sizes: each block aligned to its size, 2 MiB+ to 2 MiB. */
  static const uint64_t sizes[] = {8 * MiB, 2 * MiB, 2 * MiB - 1, 1 * MiB + 1,
                                   100 * KiB, 64 * KiB, 64 * KiB, 5 * KiB};
  uint64_t huge0 = stats(p).huge_blocks;
  for (int i = 0; i < 8; i++) {
    uint64_t bs = 64 * KiB;
    while (bs < sizes[i]) bs *= 2;
    b[i] = thaw_pool_alloc(p, 0, sizes[i]);
    CHECK(b[i] && ((uintptr_t)b[i] & (bs - 1)) == 0 && thaw_pool_block_size(p, b[i]) == bs);
    if (bs >= 2 * MiB) CHECK(((uintptr_t)b[i] & (2 * MiB - 1)) == 0);
  }
  CHECK(stats(p).huge_blocks - huge0 == 4); /* 1 MiB + 1 rounds to 2 MiB */
  /* 8+2+2+2+0.125+0.0625*2+0.0625 MiB used */
  CHECK(stats(p).used_bytes == 14 * MiB + 128 * KiB + 192 * KiB);
  CHECK(stats(p).frag_block_bytes == stats(p).used_bytes);
  uint64_t wasted = 0;
  for (int i = 0; i < 8; i++) wasted += thaw_pool_block_size(p, b[i]) - sizes[i];
  CHECK(stats(p).frag_wasted_bytes == wasted);
  CHECK_POOL(p);
  for (int i = 0; i < 8; i++) CHECK(thaw_pool_free(p, b[i]) == 0);
  CHECK(thaw_pool_free_layout(p, THAW_POOL_SHARED, lay, 64) == 1 && lay[0] == (0 | 24));
  CHECK(stats(p).frag_wasted_bytes == 0 && stats(p).frag_block_bytes == 0);
  CHECK(thaw_pool_alloc(p, 0, 16 * MiB + 1) == NULL && stats(p).fail_space == 2);
  CHECK(thaw_pool_alloc(p, 0, 0) == NULL && thaw_pool_alloc(p, 4, 1) == NULL &&
        stats(p).fail_invalid == 2);
  CHECK_POOL(p);
  thaw_pool_destroy(p);

  /* An arena that is no power of two: roots 16 MiB + 8 MiB. */
  p = make_pool(24 * MiB + 100, 0, 500, SEC, 4);
  CHECK(stats(p).arena_bytes == 24 * MiB && stats(p).max_block == 16 * MiB);
  CHECK(thaw_pool_free_layout(p, THAW_POOL_SHARED, lay, 64) == 2 &&
        lay[0] == ((16 * MiB) | 23) && lay[1] == (0 | 24));
  void* x = thaw_pool_alloc(p, 0, 16 * MiB);
  void* y = thaw_pool_alloc(p, 0, 8 * MiB);
  CHECK(x && y && thaw_pool_alloc(p, 0, 16 * MiB) == NULL && thaw_pool_alloc(p, 0, 1) == NULL);
  CHECK(arena_off(p, x) == 0 && arena_off(p, y) == 16 * MiB);
  CHECK(thaw_pool_free(p, x) == 0 && thaw_pool_free(p, y) == 0);
  CHECK(thaw_pool_free_layout(p, THAW_POOL_SHARED, lay, 64) == 2 &&
        lay[0] == ((16 * MiB) | 23) && lay[1] == (0 | 24));
  CHECK_POOL(p);
  thaw_pool_destroy(p);
}

static void test_tenants(void) {
  thaw_pool* p = make_pool(32 * MiB, 0, 500, SEC, 4);
  CHECK(thaw_pool_tenant_set(p, 4, 0, THAW_POOL_UNLIMITED) == THAW_EINVAL);
  CHECK(thaw_pool_tenant_set(p, 1, 2 * MiB, 1 * MiB) == THAW_EINVAL);
  CHECK(thaw_pool_tenant_set(p, 1, 64 * MiB, THAW_POOL_UNLIMITED) == THAW_ENOMEM);
  CHECK(thaw_pool_tenant_set(p, 1, 1 * MiB - 100, 3 * MiB) == 0);
  thaw_pool_tenant_stats t1 = tstats(p, 1);
  CHECK(t1.reserved_bytes == 1 * MiB && t1.limit_bytes == 3 * MiB && t1.used_bytes == 0);
  CHECK(stats(p).reserved_bytes == 1 * MiB);
  uint64_t lay[64];
  CHECK(thaw_pool_free_layout(p, 1, lay, 64) == 1 && (lay[0] & 63) == 20);
  uint64_t part = lay[0] & ~63ull;

  /* Reserved first ... */
  void* b[64];
  int ok = 1;
  for (int i = 0; i < 16; i++) {
    b[i] = thaw_pool_alloc(p, 1, 64 * KiB);
    ok &= b[i] && arena_off(p, b[i]) >= part && arena_off(p, b[i]) < part + MiB;
  }
  CHECK(ok && tstats(p, 1).overflow_bytes == 0 && tstats(p, 1).used_bytes == MiB);
  /* ... then the overflow ... */
  for (int i = 16; i < 48; i++) {
    b[i] = thaw_pool_alloc(p, 1, 64 * KiB);
    ok &= b[i] && (arena_off(p, b[i]) < part || arena_off(p, b[i]) >= part + MiB);
  }
  CHECK(ok && tstats(p, 1).overflow_bytes == 2 * MiB && tstats(p, 1).used_bytes == 3 * MiB);
  /* ... then refusal at the limit. */
  CHECK(thaw_pool_alloc(p, 1, 1) == NULL);
  CHECK(tstats(p, 1).fail_limit == 1 && stats(p).fail_limit == 1);
  CHECK(tstats(p, 1).live_blocks == 48);
  CHECK(thaw_pool_tenant_set(p, 1, 2 * MiB, 8 * MiB) == THAW_EBUSY);
  CHECK(tstats(p, 1).limit_bytes == 3 * MiB); /* unchanged on failure */
  CHECK(thaw_pool_tenant_set(p, 1, 1 * MiB, 4 * MiB) == 0); /* limit only */
  b[48] = thaw_pool_alloc(p, 1, 1 * MiB);
  CHECK(b[48] && tstats(p, 1).used_bytes == 4 * MiB && thaw_pool_alloc(p, 1, 1) == NULL);
  CHECK_POOL(p);
  for (int i = 0; i < 49; i++) ok &= thaw_pool_free(p, b[i]) == 0;
  CHECK(ok && tstats(p, 1).used_bytes == 0 && tstats(p, 1).overflow_bytes == 0);
  CHECK(thaw_pool_free_layout(p, 1, lay, 64) == 1 && lay[0] == (part | 20));

  /* A reservation that is no power of two: 2 MiB + 1 MiB blocks. */
  CHECK(thaw_pool_tenant_set(p, 2, 3 * MiB, THAW_POOL_UNLIMITED) == 0);
  CHECK(thaw_pool_free_layout(p, 2, lay, 64) == 2 && (lay[0] & 63) == 20 && (lay[1] & 63) == 21);
  void* x = thaw_pool_alloc(p, 2, 2 * MiB);
  void* y = thaw_pool_alloc(p, 2, 1 * MiB);
  CHECK(x && y && tstats(p, 2).overflow_bytes == 0);
  void* z = thaw_pool_alloc(p, 2, 64 * KiB);
  CHECK(z && tstats(p, 2).overflow_bytes == 64 * KiB);
  CHECK(thaw_pool_free(p, x) == 0 && thaw_pool_free(p, y) == 0 && thaw_pool_free(p, z) == 0);

  /* A reservation is a guarantee: tenant 0 (no partition) exhausts the
   * overflow, tenant 3 still gets its 4 MiB. */
  CHECK(thaw_pool_tenant_set(p, 3, 4 * MiB, THAW_POOL_UNLIMITED) == 0);
  int n = 0;
  void* hog[512];
  while (n < 512 && (hog[n] = thaw_pool_alloc(p, 0, 64 * KiB)) != NULL) n++;
  CHECK(n == (32 - 1 - 3 - 4) * 16);
  CHECK(tstats(p, 0).fail_space == 1);
  void* mine = thaw_pool_alloc(p, 3, 4 * MiB);
  CHECK(mine != NULL && tstats(p, 3).overflow_bytes == 0);
  CHECK(thaw_pool_alloc(p, 3, 1) == NULL && tstats(p, 3).fail_space == 1);
  /* Growing a partition with no space left fails and keeps the old one. */
  CHECK(thaw_pool_tenant_set(p, 2, 8 * MiB, THAW_POOL_UNLIMITED) == THAW_ENOMEM);
  CHECK(tstats(p, 2).reserved_bytes == 3 * MiB && stats(p).reserved_bytes == 8 * MiB);
  CHECK_POOL(p);
  for (int i = 0; i < n; i++) ok &= thaw_pool_free(p, hog[i]) == 0;
  CHECK(ok && thaw_pool_free(p, mine) == 0);
  /* Dropping every partition leaves one arena-sized block. */
  for (uint32_t t = 0; t < 4; t++) CHECK(thaw_pool_tenant_set(p, t, 0, THAW_POOL_UNLIMITED) == 0);
  CHECK(stats(p).reserved_bytes == 0);
  CHECK(thaw_pool_free_layout(p, THAW_POOL_SHARED, lay, 64) == 1 && lay[0] == (0 | 25));
  CHECK_POOL(p);
  thaw_pool_destroy(p);
}

/* Tenant A's churn must leave tenant B's free blocks exactly as they were. */
static void test_isolation(void) {
  thaw_pool* p = make_pool(64 * MiB, 0, 500, SEC, 4);
  CHECK(thaw_pool_tenant_set(p, 0, 8 * MiB, THAW_POOL_UNLIMITED) == 0);
  CHECK(thaw_pool_tenant_set(p, 1, 8 * MiB, THAW_POOL_UNLIMITED) == 0);
  void* keep[4] = {thaw_pool_alloc(p, 1, 64 * KiB), thaw_pool_alloc(p, 1, 1 * MiB),
                   thaw_pool_alloc(p, 1, 200 * KiB), thaw_pool_alloc(p, 1, 64 * KiB)};
  CHECK(keep[0] && keep[1] && keep[2] && keep[3]);
  CHECK(thaw_pool_free(p, keep[2]) == 0); /* a hole in B's partition */
  uint64_t before[64], after[64];
  uint64_t nb = thaw_pool_free_layout(p, 1, before, 64);
  CHECK(nb > 1 && nb <= 64);

  void* live[256];
  int n = 0, ok = 1, overflowed = 0;
  for (int i = 0; i < 20000; i++) {
    if (n < 256 && (n == 0 || below(2))) {
      void* b = thaw_pool_alloc(p, 0, 1 + below(4 * MiB >> below(6)));
      if (b) live[n++] = b;
      overflowed |= tstats(p, 0).overflow_bytes > 0;
    } else {
      uint64_t j = below((uint64_t)n);
      ok &= thaw_pool_free(p, live[j]) == 0;
      live[j] = live[--n];
    }
  }
  CHECK(ok && overflowed);
  CHECK(thaw_pool_free_layout(p, 1, after, 64) == nb);
  CHECK(memcmp(before, after, nb * sizeof before[0]) == 0);
  CHECK(tstats(p, 1).used_bytes == 64 * KiB + MiB + 64 * KiB);
  while (n > 0) ok &= thaw_pool_free(p, live[--n]) == 0;
  CHECK(ok);
  CHECK_POOL(p);
  thaw_pool_destroy(p);
}

static void test_return_to_os(void) {
  thaw_pool* p = make_pool(64 * MiB, 0, 500, SEC, 4);
  void* b[16];
  for (int i = 0; i < 16; i++) {
    b[i] = thaw_pool_alloc(p, 0, MiB);
    CHECK(b[i] && all_bytes(b[i], MiB, 0)); /* fresh memory reads zero */
    memset(b[i], 0xab, MiB);
  }
  CHECK(stats(p).committed_bytes == 16 * MiB);
  for (int i = 4; i < 16; i++) CHECK(thaw_pool_free(p, b[i]) == 0);
  /* 4 MiB used of 16 committed: 25 %, under the 50 % threshold. */
  uint64_t t0 = 5 * SEC;
  CHECK(thaw_pool_maintain(p, t0) == 0);
  CHECK(thaw_pool_maintain(p, t0 + SEC / 2) == 0);
  CHECK(thaw_pool_maintain(p, t0 + SEC - 1) == 0);
  CHECK(stats(p).os_returns == 0 && resident(b[10], MiB) == MiB / 4096);
  CHECK(thaw_pool_maintain(p, t0 + SEC) == 12 * MiB);
  thaw_pool_stats s = stats(p);
  CHECK(s.os_returns >= 1 && s.os_return_bytes == 12 * MiB && s.committed_bytes == 4 * MiB);
  int ok = 1;
  for (int i = 4; i < 16; i++) ok &= resident(b[i], MiB) == 0;
  CHECK(ok); /* really gone */
  for (int i = 0; i < 4; i++) ok &= resident(b[i], MiB) == MiB / 4096 && all_bytes(b[i], MiB, 0xab);
  CHECK(ok); /* live blocks untouched */
  CHECK(thaw_pool_maintain(p, t0 + 9 * SEC) == 0); /* not repeated */
  CHECK(stats(p).os_returns == s.os_returns);
  CHECK_POOL(p);

  /* Above the threshold nothing goes back, however long. */
  for (int i = 4; i < 8; i++) {
    b[i] = thaw_pool_alloc(p, 0, MiB);
    CHECK(b[i] && all_bytes(b[i], MiB, 0)); /* given-back memory reads zero */
    memset(b[i], 0xcd, MiB);
  }
  CHECK(thaw_pool_free(p, b[6]) == 0 && thaw_pool_free(p, b[7]) == 0); /* 6 of 8 */
  uint64_t t1 = 20 * SEC;
  CHECK(thaw_pool_maintain(p, t1) == 0 && thaw_pool_maintain(p, t1 + 10 * SEC) == 0);
  CHECK(stats(p).os_returns == s.os_returns && resident(b[6], MiB) == MiB / 4096);

  /* The retention clock restarts when utilization comes back up. */
  for (int i = 3; i < 6; i++) CHECK(thaw_pool_free(p, b[i]) == 0); /* 3 of 8 */
  uint64_t t2 = 40 * SEC;
  CHECK(thaw_pool_maintain(p, t2) == 0);
  b[3] = thaw_pool_alloc(p, 0, MiB);
  b[4] = thaw_pool_alloc(p, 0, MiB); /* 5 of 8: above */
  CHECK(b[3] && b[4] && stats(p).committed_bytes == 8 * MiB);
  CHECK(thaw_pool_free(p, b[3]) == 0 && thaw_pool_free(p, b[4]) == 0);
  CHECK(thaw_pool_maintain(p, t2 + SEC * 9 / 10) == 0); /* under again from here */
  CHECK(thaw_pool_maintain(p, t2 + SEC * 15 / 10) == 0);
  CHECK(thaw_pool_maintain(p, t2 + SEC * 19 / 10) == 5 * MiB);
  CHECK(stats(p).committed_bytes == 3 * MiB);

  /* alloc_zeroed: a block with old data comes back zero. */
  void* d = thaw_pool_alloc(p, 0, MiB);
  memset(d, 0xee, MiB);
  CHECK(thaw_pool_free(p, d) == 0);
  void* z = thaw_pool_alloc_zeroed(p, 0, MiB);
  CHECK(z == d && all_bytes(z, MiB, 0));
  CHECK(thaw_pool_free(p, z) == 0);
  for (int i = 0; i < 3; i++) CHECK(thaw_pool_free(p, b[i]) == 0);
  CHECK_POOL(p);
  thaw_pool_destroy(p);

  /* Threshold 0: never give back. */
  p = make_pool(16 * MiB, 0, 0, 0, 4);
  void* q = thaw_pool_alloc(p, 0, MiB);
  memset(q, 1, MiB);
  CHECK(thaw_pool_free(p, q) == 0);
  CHECK(thaw_pool_maintain(p, 0) == 0 && thaw_pool_maintain(p, 100 * SEC) == 0);
  CHECK(stats(p).committed_bytes == MiB);
  thaw_pool_destroy(p);
}

typedef struct leak_log {
  int n;
  void* addr[8];
  uint64_t size[8];
  uint32_t tenant[8];
} leak_log;

static void on_leak(void* addr, uint64_t size, uint32_t tenant, void* arg) {
  leak_log* l = arg;
  if (l->n < 8) {
    l->addr[l->n] = addr;
    l->size[l->n] = size;
    l->tenant[l->n] = tenant;
  }
  l->n++;
}

static void test_validation(void) {
  thaw_pool* p = make_pool(16 * MiB, 1, 500, SEC, 4);
  void* a = thaw_pool_alloc(p, 0, 100000);
  void* b = thaw_pool_alloc(p, 1, 64 * KiB);
  void* c = thaw_pool_alloc(p, 2, 3 * MiB);
  uint8_t* s1 = thaw_pool_small_alloc(p, 100);
  uint8_t* s2 = thaw_pool_small_alloc(p, 4096);
  uint8_t* s3 = thaw_pool_small_alloc(p, 1);
  CHECK(a && b && c && s1 && s2 && s3);
  CHECK(thaw_pool_free(p, b) == 0);
  CHECK(thaw_pool_free(p, b) == THAW_EINVAL); /* double free */
  CHECK(thaw_pool_block_size(p, b) == 0);
  int local;
  CHECK(thaw_pool_free(p, (uint8_t*)a + 64 * KiB) == THAW_EINVAL); /* inside a block */
  CHECK(thaw_pool_free(p, (uint8_t*)a + 8) == THAW_EINVAL);
  CHECK(thaw_pool_free(p, &local) == THAW_EINVAL);                 /* not ours */
  CHECK(thaw_pool_free(p, s1) == THAW_EINVAL);                     /* a small object */
  CHECK(thaw_pool_free(p, NULL) == 0);
  CHECK(thaw_pool_small_free(p, s1) == 0);
  CHECK(thaw_pool_small_free(p, s1) == THAW_EINVAL); /* double free */
  CHECK(thaw_pool_small_free(p, s2 + 8) == THAW_EINVAL);
  CHECK(thaw_pool_small_free(p, a) == THAW_EINVAL);
  CHECK(thaw_pool_small_free(p, &local) == THAW_EINVAL);
  CHECK(stats(p).invalid_frees == 9);
  CHECK_POOL(p);

  leak_log l = {0};
  CHECK(thaw_pool_check_leaks(p, on_leak, &l) == 4 && l.n == 4);
  void* want[4] = {a, c, s2, s3};
  uint64_t want_size[4] = {100000, 3 * MiB, 4096, 1};
  uint32_t want_tenant[4] = {0, 2, UINT32_MAX, UINT32_MAX};
  /* Reported in address order: sort the expectation the same way. */
  for (int i = 0; i < 4; i++)
    for (int j = i + 1; j < 4; j++)
      if ((uintptr_t)want[j] < (uintptr_t)want[i]) {
        void* t = want[i]; want[i] = want[j]; want[j] = t;
        uint64_t s = want_size[i]; want_size[i] = want_size[j]; want_size[j] = s;
        uint32_t u = want_tenant[i]; want_tenant[i] = want_tenant[j]; want_tenant[j] = u;
      }
  int ok = 1;
  for (int i = 0; i < 4; i++)
    ok &= l.addr[i] == want[i] && l.size[i] == want_size[i] && l.tenant[i] == want_tenant[i];
  CHECK(ok);
  CHECK(thaw_pool_free(p, a) == 0 && thaw_pool_free(p, c) == 0);
  CHECK(thaw_pool_small_free(p, s2) == 0 && thaw_pool_small_free(p, s3) == 0);
  CHECK(thaw_pool_check_leaks(p, on_leak, &l) == 0);
  CHECK_POOL(p);
  thaw_pool_destroy(p);

  /* Without validation: bad frees are still caught, leaks only counted. */
  p = make_pool(16 * MiB, 0, 500, SEC, 4);
  a = thaw_pool_alloc(p, 0, 1);
  s1 = thaw_pool_small_alloc(p, 10);
  CHECK(thaw_pool_free(p, a) == 0 && thaw_pool_free(p, a) == THAW_EINVAL);
  a = thaw_pool_alloc(p, 0, 1);
  l.n = 0;
  CHECK(thaw_pool_check_leaks(p, on_leak, &l) == 2 && l.n == 0);
  CHECK(thaw_pool_small_free(p, s1) == 0 && thaw_pool_small_free(p, s1) == THAW_EINVAL);
  CHECK(stats(p).invalid_frees == 2);
  CHECK_POOL(p);
  thaw_pool_destroy(p); /* with a block still live: the arena goes anyway */
}

static void test_small(void) {
  thaw_pool* p = make_pool(16 * MiB, 1, 500, SEC, 4);
  static const size_t sizes[] = {1, 64, 65, 128, 200, 512, 1000, 2048, 4096};
  enum { N = 3000 };
  void** objs = malloc(N * sizeof *objs);
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t n = sizes[k], cls = 64;
    while (cls < n) cls *= 2;
    int ok = 1;
    for (int i = 0; i < N; i++) {
      uint8_t* o = thaw_pool_small_alloc(p, n);
      ok &= o && ((uintptr_t)o & (cls - 1)) == 0 && in_arena(p, o, cls) && all_bytes(o, cls, 0);
      if (o) memset(o, (uint8_t)i, cls);
      objs[i] = o;
    }
    CHECK(ok);
    CHECK(stats(p).small_live == N && stats(p).small_bytes == N * cls);
    CHECK(stats(p).small_slabs >= (N * cls + 64 * KiB - 1) / (64 * KiB));
    for (int i = 0; i < N; i++) ok &= objs[i] && all_bytes(objs[i], cls, (uint8_t)i);
    CHECK(ok); /* no two objects overlap */
    CHECK_POOL(p);
    shuffle(objs, N);
    for (int i = 0; i < N; i++) ok &= thaw_pool_small_free(p, objs[i]) == 0;
    CHECK(ok && stats(p).small_live == 0 && stats(p).small_bytes == 0);
  }
  CHECK(stats(p).small_slabs <= 7); /* one empty slab kept per class */
  CHECK(thaw_pool_small_alloc(p, THAW_POOL_SMALL_MAX + 1) == NULL && stats(p).fail_invalid == 1);
  CHECK(thaw_pool_check_leaks(p, NULL, NULL) == 0);
  CHECK_POOL(p);
  free(objs);
  thaw_pool_destroy(p);
}

/* ---- threads --------------------------------------------------------------- */

static void* hammer(void* arg) {
  thaw_pool* p = arg;
  void* blocks[32] = {0};
  void* smalls[32] = {0};
  uint64_t r = (uint64_t)(uintptr_t)&blocks, bad = 0;
  for (int i = 0; i < 20000; i++) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    unsigned j = (unsigned)(r >> 33) % 32;
    if (blocks[j]) {
      bad += *(uint64_t*)blocks[j] != (uint64_t)(uintptr_t)blocks[j];
      bad += thaw_pool_free(p, blocks[j]) != 0;
      blocks[j] = NULL;
    } else if ((blocks[j] = thaw_pool_alloc(p, (uint32_t)(r >> 40) % 4, 1 + (r >> 45) % (256 * KiB)))) {
      *(uint64_t*)blocks[j] = (uint64_t)(uintptr_t)blocks[j];
    }
    if (smalls[j]) {
      bad += thaw_pool_small_free(p, smalls[j]) != 0;
      smalls[j] = NULL;
    } else {
      smalls[j] = thaw_pool_small_alloc(p, 1 + (r >> 20) % 4096);
    }
  }
  for (int j = 0; j < 32; j++) {
    bad += blocks[j] && thaw_pool_free(p, blocks[j]) != 0;
    bad += smalls[j] && thaw_pool_small_free(p, smalls[j]) != 0;
  }
  return (void*)(uintptr_t)bad;
}

static void test_threads(void) {
  thaw_pool* p = make_pool(128 * MiB, 1, 500, SEC, 4);
  CHECK(thaw_pool_tenant_set(p, 1, 4 * MiB, 16 * MiB) == 0);
  pthread_t th[4];
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, hammer, p);
  uint64_t bad = 0;
  for (int i = 0; i < 4; i++) {
    void* r;
    pthread_join(th[i], &r);
    bad += (uint64_t)(uintptr_t)r;
  }
  CHECK(bad == 0);
  CHECK(stats(p).used_bytes == stats(p).small_slabs * 64 * KiB && stats(p).live_blocks == 0);
  CHECK(thaw_pool_check_leaks(p, NULL, NULL) == 0);
  CHECK_POOL(p);
  thaw_pool_destroy(p);
}

/* ---- randomized run against a model ---------------------------------------- */

typedef struct live_block {
  uint8_t* p;
  uint64_t size, bsize, tag;
  uint32_t tenant;
} live_block;

static int by_ptr(const void* a, const void* b) {
  uintptr_t x = (uintptr_t)((const live_block*)a)->p, y = (uintptr_t)((const live_block*)b)->p;
  return (x > y) - (x < y);
}

static int by_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return (x > y) - (x < y);
}

static void put_tag(const live_block* b) {
  memcpy(b->p, &b->tag, 8);
  uint64_t t = ~b->tag;
  memcpy(b->p + b->bsize - 8, &t, 8);
}

static int tag_ok(const live_block* b) {
  uint64_t h, t;
  memcpy(&h, b->p, 8);
  memcpy(&t, b->p + b->bsize - 8, 8);
  return h == b->tag && t == ~b->tag;
}

/* No free block of 2^order or more in the tenant's tree nor the overflow. */
static int really_full(thaw_pool* p, uint32_t tenant, unsigned order) {
  static uint64_t lay[1 << 14];
  uint32_t trees[2] = {tenant, THAW_POOL_SHARED};
  for (int k = 0; k < 2; k++) {
    uint64_t n = thaw_pool_free_layout(p, trees[k], lay, 1 << 14);
    for (uint64_t i = 0; i < n && i < (1 << 14); i++)
      if ((lay[i] & 63) >= order) return 0;
  }
  return 1;
}

static int cmp_u64(const void* a, const void* b) { return by_u64(a, b); }

static uint64_t pct(uint64_t* v, uint64_t n, unsigned q) {
  if (!n) return 0;
  qsort(v, n, sizeof *v, cmp_u64);
  return v[n * q / 100 < n ? n * q / 100 : n - 1];
}

enum { OPS = 100000, TENANTS = 5, MAX_LIVE = 4096 };

static void test_random(void) {
  const uint64_t arena = 256 * MiB;
  thaw_pool* p = make_pool(arena, 0, 700, 50 * 1000000ull, 8);
  /* t0: partition + overflow; t1: partition only (limit = reservation);
   * t2: overflow only, limited; t3: a 16+8 MiB partition; t4: unset. */
  static const uint64_t reserved[TENANTS] = {32 * MiB, 16 * MiB, 0, 24 * MiB, 0};
  static const uint64_t limit[TENANTS] = {96 * MiB, 16 * MiB, 64 * MiB,
                                          THAW_POOL_UNLIMITED, THAW_POOL_UNLIMITED};
  for (uint32_t t = 0; t < TENANTS; t++)
    CHECK(thaw_pool_tenant_set(p, t, reserved[t], limit[t]) == 0);

  live_block* live = calloc(MAX_LIVE, sizeof *live);
  live_block* sorted = calloc(MAX_LIVE, sizeof *sorted);
  uint64_t* alloc_ns = calloc(OPS, sizeof(uint64_t));
  uint64_t* free_ns = calloc(OPS, sizeof(uint64_t));
  uint64_t n_alloc = 0, n_free = 0, n = 0, used[TENANTS] = {0};
  uint64_t fails_limit = 0, fails_space = 0, zeroed = 0, given = 0, now = 0;
  uint64_t bad_place = 0, bad_fail = 0, bad_tag = 0, bad_zero = 0, bad_free = 0;
  uint64_t bad_overlap = 0, bad_stats = 0, bad_check = 0;
  char err[200] = "";

  for (uint64_t op = 0; op < OPS; op++) {
    now += 1000000; /* a simulated millisecond per operation */
    if (n < MAX_LIVE && (n == 0 || below(100) < 55)) {
      uint32_t t = (uint32_t)below(TENANTS);
      unsigned bits = (unsigned)below(23); /* up to 4 MiB, log-uniform */
      uint64_t size = (1ull << bits) + below(1ull << bits);
      uint64_t bsize = 64 * KiB;
      while (bsize < size) bsize *= 2;
      int zero = below(10) == 0;
      thaw_pool_stats before = stats(p);
      uint64_t t0 = clock_ns();
      uint8_t* b = zero ? thaw_pool_alloc_zeroed(p, t, size) : thaw_pool_alloc(p, t, size);
      uint64_t dt = clock_ns() - t0;
      thaw_pool_stats after = stats(p);
      int over = limit[t] != THAW_POOL_UNLIMITED && used[t] + bsize > limit[t];
      if (!b) {
        if (over) {
          fails_limit++;
          bad_fail += after.fail_limit != before.fail_limit + 1;
        } else {
          fails_space++;
          bad_fail += after.fail_space != before.fail_space + 1;
          bad_fail += !really_full(p, t, (unsigned)__builtin_ctzll(bsize));
        }
        continue;
      }
      alloc_ns[n_alloc++] = dt;
      bad_fail += over; /* should have been refused */
      bad_place += !in_arena(p, b, bsize) || ((uintptr_t)b & (bsize - 1)) != 0 ||
                   thaw_pool_block_size(p, b) != bsize;
      if (zero) {
        zeroed++;
        uint64_t mid = below(bsize);
        bad_zero += b[0] != 0 || b[bsize - 1] != 0 || b[mid] != 0 ||
                    b[bsize / 2] != 0;
      }
      live[n] = (live_block){b, size, bsize, rnd(), t};
      put_tag(&live[n]);
      used[t] += bsize;
      n++;
    } else {
      uint64_t j = below(n);
      bad_tag += !tag_ok(&live[j]);
      uint64_t t0 = clock_ns();
      int rc = thaw_pool_free(p, live[j].p);
      free_ns[n_free++] = clock_ns() - t0;
      bad_free += rc != 0;
      used[live[j].tenant] -= live[j].bsize;
      live[j] = live[--n];
    }
    if (op % 97 == 0) given += thaw_pool_maintain(p, now);
    if (op % 1000 == 999) {
      /* Sort-and-scan: no two live blocks overlap. */
      memcpy(sorted, live, n * sizeof *live);
      qsort(sorted, n, sizeof *sorted, by_ptr);
      for (uint64_t i = 1; i < n; i++)
        bad_overlap += sorted[i - 1].p + sorted[i - 1].bsize > sorted[i].p;
      uint64_t sum = 0;
      for (uint32_t t = 0; t < TENANTS; t++) {
        thaw_pool_tenant_stats ts = tstats(p, t);
        bad_stats += ts.used_bytes != used[t] || ts.used_bytes > ts.limit_bytes;
        sum += used[t];
      }
      thaw_pool_stats s = stats(p);
      bad_stats += s.used_bytes != sum || s.live_blocks != n;
      if (thaw_pool_check(p, err, sizeof err) != 0) bad_check++;
    }
  }
  for (uint64_t i = 0; i < n; i++) {
    bad_tag += !tag_ok(&live[i]);
    bad_free += thaw_pool_free(p, live[i].p) != 0;
  }
  if (bad_check) fprintf(stderr, "random: pool check: %s\n", err);
  CHECK(bad_place == 0);
  CHECK(bad_fail == 0);
  CHECK(bad_tag == 0);
  CHECK(bad_zero == 0);
  CHECK(bad_free == 0);
  CHECK(bad_overlap == 0);
  CHECK(bad_stats == 0);
  CHECK(bad_check == 0);
  CHECK(fails_limit > 0 && zeroed > 0 && given > 0); /* the run reached them all */
  CHECK(n_alloc > OPS / 3);

  /* Everything free: each partition is its roots again, the overflow is
   * the rest, and without partitions the arena is one block. */
  thaw_pool_stats s = stats(p);
  CHECK(s.used_bytes == 0 && s.live_blocks == 0 && s.frag_block_bytes == 0);
  uint64_t lay[64];
  for (uint32_t t = 0; t < TENANTS; t++)
    CHECK(thaw_pool_free_layout(p, t, lay, 64) ==
          (uint64_t)__builtin_popcountll(reserved[t] >> 16));
  CHECK_POOL(p);
  for (uint32_t t = 0; t < TENANTS; t++)
    CHECK(thaw_pool_tenant_set(p, t, 0, THAW_POOL_UNLIMITED) == 0);
  CHECK(thaw_pool_free_layout(p, THAW_POOL_SHARED, lay, 64) == 1 && lay[0] == (0 | 28));
  CHECK_POOL(p);

  s = stats(p);
  uint64_t hist_total = 0, hist_p50 = 0, acc = 0;
  for (int i = 0; i < THAW_POOL_LATENCY_BUCKETS; i++) hist_total += s.alloc_latency[i];
  for (int i = 0; i < THAW_POOL_LATENCY_BUCKETS && acc * 2 < hist_total; i++) {
    acc += s.alloc_latency[i];
    hist_p50 = 1ull << (i + 6);
  }
  CHECK(hist_total == s.allocs);
  printf("random: %d ops, %llu allocs (%llu zeroed), %llu frees, refused %llu at limit "
         "and %llu for space, %llu bytes given back in %llu returns, %llu huge blocks\n",
         OPS, (unsigned long long)n_alloc, (unsigned long long)zeroed,
         (unsigned long long)n_free, (unsigned long long)fails_limit,
         (unsigned long long)fails_space, (unsigned long long)s.os_return_bytes,
         (unsigned long long)s.os_returns, (unsigned long long)s.huge_blocks);
  uint64_t a50 = pct(alloc_ns, n_alloc, 50), a99 = pct(alloc_ns, n_alloc, 99);
  uint64_t f50 = pct(free_ns, n_free, 50), f99 = pct(free_ns, n_free, 99);
  printf("random: latency (" BUILD_KIND " build) alloc p50 %llu ns p99 %llu ns, "
         "free p50 %llu ns p99 %llu ns; pool histogram p50 < %llu ns\n",
         (unsigned long long)a50, (unsigned long long)a99, (unsigned long long)f50,
         (unsigned long long)f99, (unsigned long long)hist_p50);
  free(live);
  free(sorted);
  free(alloc_ns);
  free(free_ns);
  thaw_pool_destroy(p);
}

int main(void) {
  test_config();
  test_split_coalesce();
  test_tenants();
  test_isolation();
  test_return_to_os();
  test_validation();
  test_small();
  test_threads();
  test_random();
  return check_summary();
}
