/* thaw_pool.h -- the memory pool's API (src/buddy.c), as Bun sees it.
 *
 * A pool owns one reserved arena of address space. Linear memories come
 * from it as power-of-two blocks (a buddy allocator), charged to a tenant;
 * small runtime objects come from size-class slabs inside it. Tenants are
 * small integers (the TypeScript side maps names to ids); each may have a
 * reserved partition of the arena that no other tenant can touch, and a
 * limit on the bytes it holds. Free memory goes back to the OS when the
 * pool stays underused for a while; thaw_pool_maintain drives that with the
 * caller's clock, so nothing in the pool runs on its own thread.
 *
 * Like thaw.h, every struct is made of 64-bit fields only (fixed offsets
 * for bun:ffi). Functions returning int return 0 or a negative THAW_E* code
 * of thaw.h: THAW_EINVAL (bad argument, unknown pointer, double free),
 * THAW_ENOMEM (no space in the arena), THAW_EBUSY (partition in use).
 *
 * Memory contract of thaw_pool_alloc:
 *  - a block is readable and writable, aligned to its size (a power of two,
 *    at least min_block), and blocks of 2 MiB and more get MADV_HUGEPAGE;
 *  - parts never handed out before (or returned to the OS since) read as
 *    zero; parts a previous owner used may hold its data. Callers that need
 *    zeroes use thaw_pool_alloc_zeroed, which drops exactly those parts;
 *  - a block must be plain private anonymous memory again when it is freed:
 *    whoever mapped a file over part of it (a snapshot image, MAP_FIXED)
 *    maps anonymous memory back first (PROT_READ|PROT_WRITE, MAP_PRIVATE|
 *    MAP_ANONYMOUS|MAP_NORESERVE|MAP_FIXED, so the kernel can merge the
 *    areas again). The pool relies on MADV_DONTNEED making freed pages read
 *    as zero, which is only true of anonymous memory.
 */
#ifndef THAW_POOL_H
#define THAW_POOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define THAW_POOL_LATENCY_BUCKETS 16
#define THAW_POOL_SMALL_MAX 4096u   /* largest thaw_pool_small_alloc */
#define THAW_POOL_MAX_TENANTS 65534u
#define THAW_POOL_UNLIMITED UINT64_MAX

typedef struct thaw_pool thaw_pool;

/* Fill with thaw_pool_config_default, then change what differs. */
typedef struct thaw_pool_config {
  uint64_t arena_bytes;      /* address space reserved; rounded down to min_block */
  uint64_t min_block;        /* smallest block, a power of two >= 4096 (64 KiB) */
  uint64_t return_threshold; /* per mille: give free memory back below this
                                utilization (used/committed); 500 (bursty),
                                700 suits steady load; 0 never */
  uint64_t retention_ns;     /* ... once it stayed below that this long (1 s) */
  uint64_t validate;         /* 1: track every allocation (leak/double-free report) */
  uint64_t max_tenants;      /* tenant ids are 0 .. max_tenants-1 (256) */
} thaw_pool_config;

/* Allocation latency: bucket 0 counts calls under 64 ns, bucket i (1..14)
 * those in [2^(i+5), 2^(i+6)) ns, bucket 15 those of 1 ms (2^20 ns) and more. */
typedef struct thaw_pool_stats {
  uint64_t arena_bytes;       /* usable arena */
  uint64_t min_block;
  uint64_t max_block;         /* largest block: the arena's largest power of two */
  uint64_t reserved_bytes;    /* arena carved into tenant partitions */
  uint64_t used_bytes;        /* blocks held: tenants' blocks plus slabs */
  uint64_t committed_bytes;   /* handed out since last given back to the OS */
  uint64_t live_blocks;       /* tenants' live blocks */
  uint64_t frag_wasted_bytes; /* internal fragmentation of the live blocks: */
  uint64_t frag_block_bytes;  /*   sum(block - requested) / sum(block) */
  uint64_t allocs;            /* successful thaw_pool_alloc* calls */
  uint64_t frees;
  uint64_t huge_blocks;       /* blocks >= 2 MiB handed out (MADV_HUGEPAGE) */
  uint64_t os_returns;        /* madvise(MADV_DONTNEED) calls by maintain */
  uint64_t os_return_bytes;
  uint64_t fail_limit;        /* refused: the tenant would pass its limit */
  uint64_t fail_space;        /* refused: no free block large enough */
  uint64_t fail_invalid;      /* refused: bad tenant id or size */
  uint64_t invalid_frees;     /* frees of unknown pointers, double frees */
  uint64_t small_live;        /* live slab objects */
  uint64_t small_bytes;       /* their size-class bytes */
  uint64_t small_slabs;       /* min blocks the slabs hold */
  uint64_t alloc_latency[THAW_POOL_LATENCY_BUCKETS];
} thaw_pool_stats;

typedef struct thaw_pool_tenant_stats {
  uint64_t reserved_bytes; /* its partition */
  uint64_t limit_bytes;
  uint64_t used_bytes;     /* blocks it holds, partition and overflow */
  uint64_t overflow_bytes; /* of which from the shared overflow */
  uint64_t live_blocks;
  uint64_t fail_limit;
  uint64_t fail_space;
} thaw_pool_tenant_stats;

/* Called by thaw_pool_check_leaks for each live allocation; tenant is
 * UINT32_MAX for small objects. */
typedef void (*thaw_pool_leak_fn)(void* addr, uint64_t size, uint32_t tenant,
                                  void* arg);

void thaw_pool_config_default(thaw_pool_config* cfg);
/* NULL on a bad config or when the arena cannot be reserved. */
thaw_pool* thaw_pool_create(const thaw_pool_config* cfg);
/* Unmaps the arena: every block and small object dies with it. */
void thaw_pool_destroy(thaw_pool* pool);

/* Give a tenant `reserved` bytes (rounded up to min_block) of its own and
 * cap what it holds at `limit` (THAW_POOL_UNLIMITED: no cap; must be >=
 * reserved). Unset tenants have no partition and no limit. The partition
 * can only be resized while the tenant holds nothing in it (THAW_EBUSY);
 * the limit can change any time and applies to the next allocation. */
int thaw_pool_tenant_set(thaw_pool* pool, uint32_t tenant, uint64_t reserved,
                         uint64_t limit);

/* A block of the smallest power of two >= size (and >= min_block), from
 * the tenant's partition, else the shared overflow. NULL when refused; the
 * reason is counted in the stats (pool and tenant). */
void* thaw_pool_alloc(thaw_pool* pool, uint32_t tenant, uint64_t size);
/* The same, and every byte reads as zero. */
void* thaw_pool_alloc_zeroed(thaw_pool* pool, uint32_t tenant, uint64_t size);
/* Free a block. NULL is a no-op; an unknown pointer or a double free is
 * counted and returns THAW_EINVAL. */
int thaw_pool_free(thaw_pool* pool, void* block);
/* Size of the live block starting at `block`; 0 if there is none. */
uint64_t thaw_pool_block_size(thaw_pool* pool, const void* block);

/* Small runtime objects (instance records, buffers): up to
 * THAW_POOL_SMALL_MAX bytes, zeroed, aligned to their size class (64 ..
 * 4096 bytes, powers of two). Not charged to any tenant. */
void* thaw_pool_small_alloc(thaw_pool* pool, size_t size);
int thaw_pool_small_free(thaw_pool* pool, void* obj);

/* Return-to-OS. Call periodically (e.g. every 100 ms) with a monotonic
 * clock. Returns the bytes given back by this call. */
uint64_t thaw_pool_maintain(thaw_pool* pool, uint64_t now_ns);

void thaw_pool_stats_get(thaw_pool* pool, thaw_pool_stats* out);
int thaw_pool_tenant_stats_get(thaw_pool* pool, uint32_t tenant,
                               thaw_pool_tenant_stats* out);

/* With validate set: calls report (may be NULL) for each live allocation,
 * in address order, and returns how many there are. Without it: returns
 * the count of live blocks plus small objects and reports nothing. Call it
 * outside any other pool call (report runs without the pool's lock). */
uint64_t thaw_pool_check_leaks(thaw_pool* pool, thaw_pool_leak_fn report,
                               void* arg);

#ifdef __cplusplus
}
#endif

#endif /* THAW_POOL_H */
