/* buddy.h -- the memory pool's internal interface (src/buddy.c).
 *
 * The public API is include/thaw_pool.h. What is here looks inside the
 * pool: where the arena lies, which blocks are free, and a full consistency
 * check. The engine uses the first; the tests use all three.
 */
#ifndef THAW_BUDDY_H
#define THAW_BUDDY_H

#include <stddef.h>
#include <stdint.h>

#include "thaw_pool.h"

/* Tenant id naming the shared overflow tree in thaw_pool_free_layout. */
#define THAW_POOL_SHARED UINT32_MAX

/* The arena: [*base, *base + *len). */
void thaw_pool_arena(thaw_pool* pool, uint8_t** base, uint64_t* len);

/* The free blocks of one tree (a tenant's partition or THAW_POOL_SHARED),
 * each as (offset from the arena base) | log2(size), by size then in
 * free-list order. Writes at most cap entries; returns how many exist. */
uint64_t thaw_pool_free_layout(thaw_pool* pool, uint32_t tenant, uint64_t* out,
                               uint64_t cap);

/* Walk every block and free list and recount every counter: 0 if all is
 * consistent, else THAW_EINVAL with the first problem in err. Slow (reads
 * all metadata); for tests and debugging. */
int thaw_pool_check(thaw_pool* pool, char* err, size_t err_len);

#endif /* THAW_BUDDY_H */
