/* buddy.c -- the memory pool: where linear memories and small objects live.
 *
 * One mmap reserves the arena (MAP_NORESERVE: address space, not memory),
 * aligned to its largest power-of-two part and at least to 2 MiB, so every
 * block's address is aligned to its size and a block of 2 MiB or more can
 * be backed by transparent huge pages.
 *
 * Blocks. The arena is cut into power-of-two blocks of min_block (64 KiB,
 * one wasm page) or more. A block is split in halves to serve a smaller
 * request and merged with its buddy (the other half) once both are free:
 * the classic buddy system. It suits linear memories -- their sizes are
 * whole pages already, a buddy is found by flipping one address bit, and
 * split and merge take O(log(arena / min_block)). The price is internal
 * fragmentation, up to half a block for a size just past a power of two;
 * the stats count it (frag_wasted / frag_block) so it can be watched.
 *
 * Metadata lives outside the arena: one 16-byte record per min_block unit
 * holding a free block's list links, a used block's requested size and
 * tenant, the block's order and tree, and a per-unit "committed" bit.
 * Nothing is ever written into free memory, so a free block's pages stay
 * untouched (or given back), and memory never handed out reads as zero.
 *
 * Trees. A tree is a set of free lists over some disjoint root blocks;
 * merging stops at a root. Tree 0, the shared overflow, starts as the whole
 * arena (one root per set bit of its size). A tenant's reserved partition
 * is carved from it as blocks (one per set bit of the rounded reservation)
 * that become the roots of the tenant's own tree. A tenant's churn thus
 * splits and merges only its own blocks and never fragments another
 * tenant's partition; only the overflow is shared. Allocation checks the
 * tenant's limit (on block bytes: what it really holds), then tries its
 * tree, then the overflow. The partition overhead the guide mentions (5-10
 * %) is here the rounding of reservations to min_block.
 *
 * Huge pages. A block of 2 MiB or more gets MADV_HUGEPAGE when handed out.
 * A small block inside a 2 MiB frame that once held a huge block would get
 * a whole huge page on first touch (32 times the memory of a 64 KiB block),
 * so that frame gets MADV_NOHUGEPAGE first. The pool remembers the advice
 * last given to each frame: small blocks cost no syscall in the common
 * case, and the kernel's areas (VMAs) stay bounded by the number of frames.
 *
 * Return to OS. Freed blocks keep their pages, so the next instance reuses
 * them without page faults (free lists are LIFO: the warmest block goes
 * first). "Committed" counts units handed out since they were last given
 * back, an upper bound of what is resident. Once used/committed has stayed
 * under return_threshold for retention_ns, maintain() gives every free
 * committed unit back with MADV_DONTNEED and marks it uncommitted, so it is
 * not given back twice. The clock is the caller's: tests simulate it, the
 * engine calls maintain from a timer. madvise runs under the lock; an
 * allocation may wait for it, which is acceptable once per retention period.
 *
 * Slabs. Small runtime objects (64 .. 4096 bytes, 7 classes) come from
 * slabs of one min_block each, carved lazily (a bump index, then a free
 * list threaded through freed objects). A slab's header is malloc'd apart
 * with a bitmap of live slots, so objects are packed with no header and a
 * double free is caught rather than chained into the free list. One empty
 * slab per class is kept to absorb churn; further ones go back to the
 * overflow tree.
 *
 * Validation. With cfg.validate a hash table records every live allocation
 * (address, size, tenant) and check_leaks reports it. Bad frees are caught
 * with or without it (the metadata tells), counted and refused.
 *
 * Threads: one mutex per pool. Allocation happens when an instance is
 * restored, not per call, so contention is low and a finer scheme would
 * not pay for itself.
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

#define NONE UINT32_MAX
#define NO_TENANT 0xFFFFu
#define HUGE_SHIFT 21u /* 2 MiB: a transparent huge page on x86-64 */
#define SMALL_MIN_SHIFT 6u
#define SMALL_CLASSES 7u /* 64 .. 4096 bytes */

/* Unit flags. HEAD, FREE, USED and SLAB describe a block and are set on its
 * first unit only; COMMITTED is kept for every unit. */
enum { U_HEAD = 1, U_FREE = 2, U_USED = 4, U_SLAB = 8, U_COMMITTED = 16 };
enum { FRAME_DEFAULT = 0, FRAME_HUGE = 1, FRAME_SMALL = 2 };
enum { KIND_BLOCK = 0, KIND_SMALL = 1 };

typedef struct slab slab;

typedef struct unit {
  union {
    struct {
      uint32_t next, prev;
    } link;     /* free block: its free list */
    uint64_t req; /* tenant's block: bytes requested */
    slab* slab;   /* slab block: its header */
  } u;
  uint16_t tree;   /* head: 0 overflow, 1 + t tenant t's partition */
  uint16_t tenant; /* used block: tenant charged; NO_TENANT for slabs */
  uint8_t order;   /* head: log2 of the block's size */
  uint8_t flags;
} unit;

typedef struct tree {
  uint32_t* head;    /* free-list head per order index (order - min_shift) */
  uint32_t* root;    /* root unit per order index; NONE: no such root */
  uint64_t nonempty; /* bit i: head[i] != NONE */
  uint64_t free_units;
} tree;

typedef struct tenant {
  uint64_t reserved, limit, used, overflow, blocks, fail_limit, fail_space;
} tenant;

struct slab {
  slab *next, *prev; /* the class's slabs with a free slot */
  uint8_t* base;
  void* free; /* freed slots, linked through their first word */
  uint32_t cls, size, slots, used, bump;
  uint64_t live[]; /* bit per slot */
};

typedef struct vt_entry {
  uint64_t addr, size;
  uint32_t tenant, kind;
} vt_entry;

struct thaw_pool {
  pthread_mutex_t lock;
  uint8_t* base;
  uint64_t len;
  unsigned min_shift, max_shift, norders;
  uint32_t nunits;
  unit* units;
  tree* trees; /* [0] overflow, [1 + t] tenant t's partition */
  uint32_t* lists;
  tenant* tenants;
  uint32_t max_tenants;
  uint8_t* frames; /* per 2 MiB frame: FRAME_* advice last given */
  uint64_t threshold, retention_ns, below_since;
  int below;
  uint64_t committed_units;
  slab* partial[SMALL_CLASSES];
  uint32_t empty[SMALL_CLASSES];
  int validate;
  vt_entry* vt;
  uint64_t vt_cap, vt_count;
  unsigned vt_shift;
  thaw_pool_stats st; /* counters; committed_bytes is filled on demand */
};

/* ---- helpers ----------------------------------------------------------- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned latency_bucket(uint64_t ns) {
  unsigned bits = ns ? 64u - (unsigned)__builtin_clzll(ns) : 0;
  if (bits <= 6) return 0;
  return bits - 6 < THAW_POOL_LATENCY_BUCKETS ? bits - 6
                                              : THAW_POOL_LATENCY_BUCKETS - 1;
}

static inline uint32_t units_of(const thaw_pool* p, unsigned order) {
  return 1u << (order - p->min_shift);
}

static inline uint8_t* unit_addr(const thaw_pool* p, uint32_t u) {
  return p->base + ((uint64_t)u << p->min_shift);
}

/* The unit `ptr` falls in, NONE outside the arena. */
static uint32_t unit_at(const thaw_pool* p, const void* ptr) {
  uintptr_t a = (uintptr_t)ptr, b = (uintptr_t)p->base;
  if (a < b || a - b >= p->len) return NONE;
  return (uint32_t)((a - b) >> p->min_shift);
}

/* The unit starting at `ptr`, NONE if ptr is not the start of a unit. */
static uint32_t unit_of(const thaw_pool* p, const void* ptr) {
  uint32_t u = unit_at(p, ptr);
  return u != NONE && (const uint8_t*)ptr == unit_addr(p, u) ? u : NONE;
}

static unsigned order_for(const thaw_pool* p, uint64_t size) {
  if (size <= (1ull << p->min_shift)) return p->min_shift;
  return 64u - (unsigned)__builtin_clzll(size - 1);
}

/* Utilization rose: a period under the threshold, if any, is over. */
static void used_grew(thaw_pool* p) {
  uint64_t used = p->st.used_bytes >> p->min_shift;
  if (p->below && used * 1000 >= p->threshold * p->committed_units)
    p->below = 0;
}

/* ---- free lists and trees ------------------------------------------------ */

static void list_push(thaw_pool* p, unsigned t, uint32_t u, unsigned order) {
  tree* tr = &p->trees[t];
  unsigned i = order - p->min_shift;
  unit* x = &p->units[u];
  x->flags = (uint8_t)((x->flags & U_COMMITTED) | U_HEAD | U_FREE);
  x->tree = (uint16_t)t;
  x->order = (uint8_t)order;
  x->u.link.prev = NONE;
  x->u.link.next = tr->head[i];
  if (tr->head[i] != NONE) p->units[tr->head[i]].u.link.prev = u;
  tr->head[i] = u;
  tr->nonempty |= 1ull << i;
  tr->free_units += units_of(p, order);
}

static void list_remove(thaw_pool* p, uint32_t u) {
  unit* x = &p->units[u];
  tree* tr = &p->trees[x->tree];
  unsigned i = x->order - p->min_shift;
  if (x->u.link.prev != NONE) p->units[x->u.link.prev].u.link.next = x->u.link.next;
  else tr->head[i] = x->u.link.next;
  if (x->u.link.next != NONE) p->units[x->u.link.next].u.link.prev = x->u.link.prev;
  if (tr->head[i] == NONE) tr->nonempty &= ~(1ull << i);
  tr->free_units -= units_of(p, x->order);
  x->flags &= (uint8_t)~U_FREE;
}

/* Take a block of 2^order bytes from tree t: the smallest free block that
 * fits, split down; the halves not taken stay free in t. NONE if none fits.
 * The block comes back as a head that is neither free nor used. */
static uint32_t tree_take(thaw_pool* p, unsigned t, unsigned order) {
  tree* tr = &p->trees[t];
  unsigned i = order - p->min_shift;
  if (i >= p->norders) return NONE;
  uint64_t fits = tr->nonempty >> i;
  if (!fits) return NONE;
  unsigned k = order + (unsigned)__builtin_ctzll(fits);
  uint32_t u = tr->head[k - p->min_shift];
  list_remove(p, u);
  while (k > order) {
    k--;
    list_push(p, t, u + units_of(p, k), k);
  }
  p->units[u].order = (uint8_t)order;
  return u;
}

/* Give block (u, order) to tree t, merging it with its buddy while that is
 * a free block of the same order in the same tree and u is not a root.
 * (As a tree's roots have distinct orders, a root's buddy never passes the
 * buddy test anyway; the root test keeps that a local fact.) */
static void tree_put(thaw_pool* p, unsigned t, uint32_t u, unsigned order) {
  const tree* tr = &p->trees[t];
  while (order < p->max_shift && tr->root[order - p->min_shift] != u) {
    uint32_t b = u ^ units_of(p, order);
    if (b >= p->nunits) break;
    unit* y = &p->units[b];
    if ((y->flags & (U_HEAD | U_FREE)) != (U_HEAD | U_FREE) || y->order != order ||
        y->tree != t)
      break;
    list_remove(p, b);
    y->flags &= U_COMMITTED; /* no longer a head */
    if (b < u) {
      p->units[u].flags &= U_COMMITTED;
      u = b;
    }
    order++;
  }
  list_push(p, t, u, order);
}

/* ---- pages: commit, zero, huge-page advice, give back -------------------- */

static int drop(thaw_pool* p, uint32_t from, uint32_t to) {
  return madvise(unit_addr(p, from), (uint64_t)(to - from) << p->min_shift,
                 MADV_DONTNEED);
}

/* The block's new owner will touch it: count its units committed. With
 * `zero`, units committed before may hold a previous owner's data: drop
 * them (they fault back in as zero) rather than write zeroes over memory
 * the new owner may never touch. */
static void commit(thaw_pool* p, uint32_t u, unsigned order, int zero) {
  uint32_t end = u + units_of(p, order);
  for (uint32_t i = u; i < end;) {
    if (!(p->units[i].flags & U_COMMITTED)) {
      p->units[i++].flags |= U_COMMITTED;
      p->committed_units++;
      continue;
    }
    uint32_t j = i;
    while (j < end && (p->units[j].flags & U_COMMITTED)) j++;
    if (zero && drop(p, i, j) != 0)
      memset(unit_addr(p, i), 0, (uint64_t)(j - i) << p->min_shift);
    i = j;
  }
}

/* Huge-page advice for a block being handed out; 1 if it is huge. Errors
 * are ignored: without THP the advice is only lost, not harmful. */
static int advise(thaw_pool* p, uint32_t u, unsigned order) {
  uint64_t f = ((uint64_t)u << p->min_shift) >> HUGE_SHIFT;
  if (order >= HUGE_SHIFT) {
#ifdef MADV_HUGEPAGE
    /* Even when the frames say so already: the previous owner may have
     * mapped over the block, which resets the advice. A no-op is cheap. */
    madvise(unit_addr(p, u), 1ull << order, MADV_HUGEPAGE);
#endif
    memset(p->frames + f, FRAME_HUGE, 1ull << (order - HUGE_SHIFT));
    return 1;
  }
  if (p->frames[f] == FRAME_HUGE) {
#ifdef MADV_NOHUGEPAGE
    madvise(p->base + (f << HUGE_SHIFT), 1ull << HUGE_SHIFT, MADV_NOHUGEPAGE);
#endif
    p->frames[f] = FRAME_SMALL;
  }
  return 0;
}

/* Give the committed units of [from, end) (free) back to the OS. */
static uint64_t give_back_range(thaw_pool* p, uint32_t from, uint32_t end) {
  uint64_t n = 0;
  for (uint32_t i = from; i < end;) {
    if (!(p->units[i].flags & U_COMMITTED)) {
      i++;
      continue;
    }
    uint32_t j = i;
    while (j < end && (p->units[j].flags & U_COMMITTED)) j++;
    if (drop(p, i, j) == 0) {
      for (uint32_t k = i; k < j; k++) p->units[k].flags &= (uint8_t)~U_COMMITTED;
      p->committed_units -= j - i;
      p->st.os_returns++;
      p->st.os_return_bytes += (uint64_t)(j - i) << p->min_shift;
      n += j - i;
    }
    i = j;
  }
  return n;
}

/* Every free block of every tree; returns bytes given back. */
static uint64_t give_back(thaw_pool* p) {
  uint64_t n = 0;
  for (uint32_t t = 0; t <= p->max_tenants; t++) {
    const tree* tr = &p->trees[t];
    for (uint64_t m = tr->nonempty; m; m &= m - 1) {
      unsigned i = (unsigned)__builtin_ctzll(m);
      for (uint32_t u = tr->head[i]; u != NONE; u = p->units[u].u.link.next)
        n += give_back_range(p, u, u + (1u << i));
    }
  }
  return n << p->min_shift;
}

/* ---- validation table: open addressing, backward-shift deletion ---------- */

static uint64_t vt_home(const thaw_pool* p, uint64_t addr) {
  return ((addr >> 6) * 0x9E3779B97F4A7C15ull) >> p->vt_shift;
}

static void vt_place(thaw_pool* p, const vt_entry* e) {
  uint64_t m = p->vt_cap - 1, i = vt_home(p, e->addr);
  while (p->vt[i].addr) i = (i + 1) & m;
  p->vt[i] = *e;
}

static int vt_grow(thaw_pool* p) {
  uint64_t cap = p->vt_cap ? p->vt_cap * 2 : 1024;
  vt_entry* e = calloc(cap, sizeof *e);
  if (!e) return THAW_ENOMEM;
  vt_entry* old = p->vt;
  uint64_t old_cap = p->vt_cap;
  p->vt = e;
  p->vt_cap = cap;
  p->vt_shift = 64u - (unsigned)__builtin_ctzll(cap);
  for (uint64_t i = 0; i < old_cap; i++)
    if (old[i].addr) vt_place(p, &old[i]);
  free(old);
  return 0;
}

static int vt_insert(thaw_pool* p, const void* addr, uint64_t size,
                     uint32_t tenant, uint32_t kind) {
  if ((p->vt_count + 1) * 2 > p->vt_cap && vt_grow(p) != 0) return THAW_ENOMEM;
  vt_entry e = {(uint64_t)(uintptr_t)addr, size, tenant, kind};
  vt_place(p, &e);
  p->vt_count++;
  return 0;
}

static int vt_remove(thaw_pool* p, const void* addr, uint32_t kind) {
  uint64_t a = (uint64_t)(uintptr_t)addr;
  if (!p->vt_cap) return THAW_EINVAL;
  uint64_t m = p->vt_cap - 1, i = vt_home(p, a);
  for (; p->vt[i].addr != a; i = (i + 1) & m)
    if (!p->vt[i].addr) return THAW_EINVAL;
  if (p->vt[i].kind != kind) return THAW_EINVAL;
  /* Pull later entries of the run into the hole unless their home lies
   * cyclically in (hole, j]: lookups then never meet a gap. */
  for (uint64_t j = i;;) {
    j = (j + 1) & m;
    if (!p->vt[j].addr) break;
    uint64_t k = vt_home(p, p->vt[j].addr);
    if (j > i ? (k <= i || k > j) : (k <= i && k > j)) {
      p->vt[i] = p->vt[j];
      i = j;
    }
  }
  p->vt[i].addr = 0;
  p->vt_count--;
  return 0;
}

/* ---- create / destroy ---------------------------------------------------- */

void thaw_pool_config_default(thaw_pool_config* cfg) {
  *cfg = (thaw_pool_config){
      .arena_bytes = 1ull << 30,
      .min_block = 64u << 10,
      .return_threshold = 500,
      .retention_ns = 1000000000ull,
      .validate = 0,
      .max_tenants = 256,
  };
}

static int config_ok(const thaw_pool_config* c) {
  long page = sysconf(_SC_PAGESIZE);
  uint64_t mb = c ? c->min_block : 0;
  return c && mb >= 4096 && mb >= (uint64_t)page && mb <= (1ull << 30) &&
         !(mb & (mb - 1)) && c->arena_bytes >= mb &&
         c->arena_bytes <= (1ull << 46) && c->arena_bytes / mb < NONE &&
         c->return_threshold <= 1000 && c->max_tenants >= 1 &&
         c->max_tenants <= THAW_POOL_MAX_TENANTS;
}

/* Reserve the arena aligned to its largest block (and to 2 MiB): map more
 * than needed without access, trim both ends, open the middle. */
static int reserve(thaw_pool* p) {
  uint64_t align = 1ull << (p->max_shift > HUGE_SHIFT ? p->max_shift : HUGE_SHIFT);
  uint8_t* m = mmap(NULL, p->len + align, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return THAW_ENOMEM;
  uint8_t* b = (uint8_t*)(((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1));
  uint8_t* end = m + p->len + align;
  if (b > m) munmap(m, (size_t)(b - m));
  if (end > b + p->len) munmap(b + p->len, (size_t)(end - (b + p->len)));
  if (mprotect(b, p->len, PROT_READ | PROT_WRITE) != 0) {
    munmap(b, p->len);
    return THAW_ENOMEM;
  }
  p->base = b;
  return 0;
}

static int alloc_tables(thaw_pool* p) {
  uint64_t trees = (uint64_t)p->max_tenants + 1;
  uint64_t frames = (p->len + (1ull << HUGE_SHIFT) - 1) >> HUGE_SHIFT;
  p->units = calloc(p->nunits, sizeof *p->units);
  p->trees = calloc(trees, sizeof *p->trees);
  p->lists = malloc(trees * p->norders * 2 * sizeof *p->lists);
  p->tenants = calloc(p->max_tenants, sizeof *p->tenants);
  p->frames = calloc(frames, 1);
  if (!p->units || !p->trees || !p->lists || !p->tenants || !p->frames)
    return THAW_ENOMEM;
  memset(p->lists, 0xff, trees * p->norders * 2 * sizeof *p->lists); /* NONE */
  for (uint64_t t = 0; t < trees; t++) {
    p->trees[t].head = p->lists + t * p->norders * 2;
    p->trees[t].root = p->trees[t].head + p->norders;
  }
  for (uint32_t t = 0; t < p->max_tenants; t++)
    p->tenants[t].limit = THAW_POOL_UNLIMITED;
  return 0;
}

static void free_tables(thaw_pool* p) {
  free(p->units);
  free(p->trees);
  free(p->lists);
  free(p->tenants);
  free(p->frames);
  free(p->vt);
}

thaw_pool* thaw_pool_create(const thaw_pool_config* cfg) {
  if (!config_ok(cfg)) return NULL;
  thaw_pool* p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->min_shift = (unsigned)__builtin_ctzll(cfg->min_block);
  p->len = cfg->arena_bytes & ~(cfg->min_block - 1);
  p->max_shift = 63u - (unsigned)__builtin_clzll(p->len);
  p->norders = p->max_shift - p->min_shift + 1;
  p->nunits = (uint32_t)(p->len >> p->min_shift);
  p->max_tenants = (uint32_t)cfg->max_tenants;
  p->threshold = cfg->return_threshold;
  p->retention_ns = cfg->retention_ns;
  p->validate = cfg->validate != 0;
  if (alloc_tables(p) != 0 || reserve(p) != 0) {
    free_tables(p);
    free(p);
    return NULL;
  }
  pthread_mutex_init(&p->lock, NULL);
  /* The overflow tree's roots: one block per set bit of the arena size,
   * largest first, so each lies aligned to its size. */
  uint32_t u = 0;
  for (unsigned o = p->max_shift; o >= p->min_shift; o--) {
    if (!(p->len & (1ull << o))) continue;
    p->trees[0].root[o - p->min_shift] = u;
    list_push(p, 0, u, o);
    u += units_of(p, o);
  }
  p->st.arena_bytes = p->len;
  p->st.min_block = 1ull << p->min_shift;
  p->st.max_block = 1ull << p->max_shift;
  return p;
}

void thaw_pool_destroy(thaw_pool* p) {
  if (!p) return;
  for (uint32_t u = 0; u < p->nunits; u += units_of(p, p->units[u].order))
    if (p->units[u].flags & U_SLAB) free(p->units[u].u.slab);
  munmap(p->base, p->len);
  free_tables(p);
  pthread_mutex_destroy(&p->lock);
  free(p);
}

/* ---- tenants ------------------------------------------------------------- */

/* Carve `bytes` (a multiple of min_block) out of the overflow as roots of
 * tenant t's tree, one block per set bit, largest first. */
static int carve(thaw_pool* p, uint32_t t, uint64_t bytes) {
  tree* tr = &p->trees[1 + t];
  for (unsigned o = p->max_shift; o >= p->min_shift; o--) {
    if (!(bytes & (1ull << o))) continue;
    uint32_t u = tree_take(p, 0, o);
    if (u == NONE) return THAW_ENOMEM;
    tr->root[o - p->min_shift] = u;
    list_push(p, 1 + t, u, o);
    bytes &= ~(1ull << o);
    p->tenants[t].reserved += 1ull << o;
    p->st.reserved_bytes += 1ull << o;
  }
  return bytes ? THAW_ENOMEM : 0;
}

/* Give tenant t's partition back to the overflow. The tenant holds no block
 * in it, so each root is a single free block again. */
static void uncarve(thaw_pool* p, uint32_t t) {
  tree* tr = &p->trees[1 + t];
  for (unsigned i = 0; i < p->norders; i++) {
    uint32_t u = tr->root[i];
    if (u == NONE) continue;
    list_remove(p, u);
    tr->root[i] = NONE;
    tree_put(p, 0, u, p->min_shift + i);
    p->tenants[t].reserved -= 1ull << (p->min_shift + i);
    p->st.reserved_bytes -= 1ull << (p->min_shift + i);
  }
}

int thaw_pool_tenant_set(thaw_pool* p, uint32_t t, uint64_t reserved,
                         uint64_t limit) {
  if (!p || t >= p->max_tenants) return THAW_EINVAL;
  if (reserved > p->len) return THAW_ENOMEM;
  uint64_t mask = (1ull << p->min_shift) - 1;
  reserved = (reserved + mask) & ~mask;
  if (limit < reserved) return THAW_EINVAL;
  pthread_mutex_lock(&p->lock);
  tenant* tn = &p->tenants[t];
  int rc = 0;
  if (reserved != tn->reserved) {
    if (tn->used != tn->overflow) {
      rc = THAW_EBUSY;
    } else {
      uint64_t old = tn->reserved;
      uncarve(p, t);
      rc = carve(p, t, reserved);
      if (rc != 0) { /* put the old partition back (its space is free) */
        uncarve(p, t);
        carve(p, t, old);
      }
    }
  }
  if (rc == 0) tn->limit = limit;
  pthread_mutex_unlock(&p->lock);
  return rc;
}

/* ---- blocks -------------------------------------------------------------- */

static void* alloc_locked(thaw_pool* p, uint32_t t, uint64_t size, int zero) {
  if (t >= p->max_tenants || size == 0) {
    p->st.fail_invalid++;
    return NULL;
  }
  tenant* tn = &p->tenants[t];
  unsigned order = order_for(p, size);
  if (order > p->max_shift) {
    p->st.fail_space++;
    tn->fail_space++;
    return NULL;
  }
  uint64_t bytes = 1ull << order;
  if (bytes > tn->limit || tn->used > tn->limit - bytes) {
    p->st.fail_limit++;
    tn->fail_limit++;
    return NULL;
  }
  unsigned tr = 1 + t;
  uint32_t u = tree_take(p, tr, order);
  if (u == NONE) u = tree_take(p, tr = 0, order);
  if (u == NONE ||
      (p->validate && vt_insert(p, unit_addr(p, u), size, t, KIND_BLOCK) != 0)) {
    if (u != NONE) tree_put(p, tr, u, order);
    p->st.fail_space++;
    tn->fail_space++;
    return NULL;
  }
  unit* x = &p->units[u];
  x->flags |= U_USED;
  x->tenant = (uint16_t)t;
  x->u.req = size;
  commit(p, u, order, zero);
  p->st.huge_blocks += (uint64_t)advise(p, u, order);
  tn->used += bytes;
  tn->overflow += tr == 0 ? bytes : 0;
  tn->blocks++;
  p->st.used_bytes += bytes;
  p->st.live_blocks++;
  p->st.frag_wasted_bytes += bytes - size;
  p->st.frag_block_bytes += bytes;
  p->st.allocs++;
  used_grew(p);
  return unit_addr(p, u);
}

static void* alloc_block(thaw_pool* p, uint32_t t, uint64_t size, int zero) {
  if (!p) return NULL;
  uint64_t t0 = now_ns();
  pthread_mutex_lock(&p->lock);
  void* r = alloc_locked(p, t, size, zero);
  if (r) p->st.alloc_latency[latency_bucket(now_ns() - t0)]++;
  pthread_mutex_unlock(&p->lock);
  return r;
}

void* thaw_pool_alloc(thaw_pool* p, uint32_t t, uint64_t size) {
  return alloc_block(p, t, size, 0);
}

void* thaw_pool_alloc_zeroed(thaw_pool* p, uint32_t t, uint64_t size) {
  return alloc_block(p, t, size, 1);
}

int thaw_pool_free(thaw_pool* p, void* ptr) {
  if (!p) return THAW_EINVAL;
  if (!ptr) return 0;
  pthread_mutex_lock(&p->lock);
  uint32_t u = unit_of(p, ptr);
  unit* x = u == NONE ? NULL : &p->units[u];
  if (!x || (x->flags & (U_HEAD | U_USED | U_SLAB)) != (U_HEAD | U_USED) ||
      (p->validate && vt_remove(p, ptr, KIND_BLOCK) != 0)) {
    p->st.invalid_frees++;
    pthread_mutex_unlock(&p->lock);
    return THAW_EINVAL;
  }
  uint64_t bytes = 1ull << x->order;
  tenant* tn = &p->tenants[x->tenant];
  tn->used -= bytes;
  tn->overflow -= x->tree == 0 ? bytes : 0;
  tn->blocks--;
  p->st.used_bytes -= bytes;
  p->st.live_blocks--;
  p->st.frag_wasted_bytes -= bytes - x->u.req;
  p->st.frag_block_bytes -= bytes;
  p->st.frees++;
  x->flags &= (uint8_t)~U_USED;
  tree_put(p, x->tree, u, x->order);
  pthread_mutex_unlock(&p->lock);
  return 0;
}

uint64_t thaw_pool_block_size(thaw_pool* p, const void* ptr) {
  if (!p) return 0;
  pthread_mutex_lock(&p->lock);
  uint32_t u = unit_of(p, ptr);
  uint64_t n = 0;
  if (u != NONE &&
      (p->units[u].flags & (U_HEAD | U_USED | U_SLAB)) == (U_HEAD | U_USED))
    n = 1ull << p->units[u].order;
  pthread_mutex_unlock(&p->lock);
  return n;
}

/* ---- slabs --------------------------------------------------------------- */

static unsigned small_class(size_t n) {
  if (n <= (1u << SMALL_MIN_SHIFT)) return 0;
  return 64u - (unsigned)__builtin_clzll(n - 1) - SMALL_MIN_SHIFT;
}

static void slab_link(thaw_pool* p, slab* s) {
  s->prev = NULL;
  s->next = p->partial[s->cls];
  if (s->next) s->next->prev = s;
  p->partial[s->cls] = s;
}

static void slab_unlink(thaw_pool* p, slab* s) {
  if (s->prev) s->prev->next = s->next;
  else p->partial[s->cls] = s->next;
  if (s->next) s->next->prev = s->prev;
}

static slab* slab_new(thaw_pool* p, unsigned cls) {
  uint32_t size = 1u << (cls + SMALL_MIN_SHIFT);
  uint32_t slots = (uint32_t)((1ull << p->min_shift) / size);
  slab* s = calloc(1, sizeof *s + (slots + 63) / 64 * sizeof(uint64_t));
  if (!s) return NULL;
  uint32_t u = tree_take(p, 0, p->min_shift);
  if (u == NONE) {
    free(s);
    return NULL;
  }
  unit* x = &p->units[u];
  x->flags |= U_USED | U_SLAB;
  x->tenant = NO_TENANT;
  x->u.slab = s;
  commit(p, u, p->min_shift, 0);
  advise(p, u, p->min_shift);
  s->base = unit_addr(p, u);
  s->cls = cls;
  s->size = size;
  s->slots = slots;
  slab_link(p, s);
  p->empty[cls]++;
  p->st.used_bytes += 1ull << p->min_shift;
  p->st.small_slabs++;
  used_grew(p);
  return s;
}

static void slab_release(thaw_pool* p, slab* s) {
  uint32_t u = unit_at(p, s->base);
  slab_unlink(p, s);
  p->units[u].flags &= (uint8_t)~(U_USED | U_SLAB);
  tree_put(p, 0, u, p->min_shift);
  p->st.used_bytes -= 1ull << p->min_shift;
  p->st.small_slabs--;
  free(s);
}

static void* slab_take(thaw_pool* p, slab* s) {
  uint8_t* obj;
  if (s->free) {
    obj = s->free;
    memcpy(&s->free, obj, sizeof s->free);
  } else {
    obj = s->base + (uint64_t)s->bump++ * s->size;
  }
  uint32_t i = (uint32_t)((uint64_t)(obj - s->base) / s->size);
  s->live[i / 64] |= 1ull << (i % 64);
  if (s->used++ == 0) p->empty[s->cls]--;
  if (s->used == s->slots) slab_unlink(p, s);
  p->st.small_live++;
  p->st.small_bytes += s->size;
  return obj;
}

/* Put back object `obj`, slot i of s (checked live by the caller). */
static void slab_give(thaw_pool* p, slab* s, uint8_t* obj, uint32_t i) {
  s->live[i / 64] &= ~(1ull << (i % 64));
  memcpy(obj, &s->free, sizeof s->free);
  s->free = obj;
  if (s->used-- == s->slots) slab_link(p, s);
  p->st.small_live--;
  p->st.small_bytes -= s->size;
  if (s->used > 0) return;
  if (p->empty[s->cls] > 0) slab_release(p, s); /* keep one empty per class */
  else p->empty[s->cls]++;
}

void* thaw_pool_small_alloc(thaw_pool* p, size_t n) {
  if (!p) return NULL;
  pthread_mutex_lock(&p->lock);
  uint8_t* obj = NULL;
  uint32_t size = 0;
  if (n > THAW_POOL_SMALL_MAX) {
    p->st.fail_invalid++;
  } else {
    unsigned cls = small_class(n);
    slab* s = p->partial[cls] ? p->partial[cls] : slab_new(p, cls);
    if (s) {
      obj = slab_take(p, s);
      size = s->size;
      if (p->validate && vt_insert(p, obj, n, UINT32_MAX, KIND_SMALL) != 0) {
        slab_give(p, s, obj, (uint32_t)((uint64_t)(obj - s->base) / s->size));
        obj = NULL;
      }
    }
    if (!obj) p->st.fail_space++;
  }
  pthread_mutex_unlock(&p->lock);
  if (obj) memset(obj, 0, size); /* ours alone now: zero outside the lock */
  return obj;
}

int thaw_pool_small_free(thaw_pool* p, void* obj) {
  if (!p) return THAW_EINVAL;
  if (!obj) return 0;
  pthread_mutex_lock(&p->lock);
  uint32_t u = unit_at(p, obj);
  const unit* x = u == NONE ? NULL : &p->units[u];
  slab* s = x && (x->flags & (U_HEAD | U_USED | U_SLAB)) == (U_HEAD | U_USED | U_SLAB)
                ? x->u.slab
                : NULL;
  uint64_t off = s ? (uint64_t)((uint8_t*)obj - s->base) : 0;
  uint32_t i = s ? (uint32_t)(off / s->size) : 0;
  if (!s || off % s->size || i >= s->slots || !(s->live[i / 64] & (1ull << (i % 64))) ||
      (p->validate && vt_remove(p, obj, KIND_SMALL) != 0)) {
    p->st.invalid_frees++;
    pthread_mutex_unlock(&p->lock);
    return THAW_EINVAL;
  }
  slab_give(p, s, obj, i);
  pthread_mutex_unlock(&p->lock);
  return 0;
}

/* ---- maintenance, stats, leaks ------------------------------------------- */

uint64_t thaw_pool_maintain(thaw_pool* p, uint64_t now) {
  if (!p) return 0;
  pthread_mutex_lock(&p->lock);
  uint64_t used = p->st.used_bytes >> p->min_shift, given = 0;
  if (used * 1000 >= p->threshold * p->committed_units) {
    p->below = 0;
  } else {
    if (!p->below || now < p->below_since) {
      p->below = 1;
      p->below_since = now;
    }
    if (now - p->below_since >= p->retention_ns) {
      given = give_back(p);
      p->below = 0;
    }
  }
  pthread_mutex_unlock(&p->lock);
  return given;
}

void thaw_pool_stats_get(thaw_pool* p, thaw_pool_stats* out) {
  memset(out, 0, sizeof *out);
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  *out = p->st;
  out->committed_bytes = p->committed_units << p->min_shift;
  pthread_mutex_unlock(&p->lock);
}

int thaw_pool_tenant_stats_get(thaw_pool* p, uint32_t t,
                               thaw_pool_tenant_stats* out) {
  memset(out, 0, sizeof *out);
  if (!p || t >= p->max_tenants) return THAW_EINVAL;
  pthread_mutex_lock(&p->lock);
  const tenant* tn = &p->tenants[t];
  *out = (thaw_pool_tenant_stats){
      .reserved_bytes = tn->reserved,
      .limit_bytes = tn->limit,
      .used_bytes = tn->used,
      .overflow_bytes = tn->overflow,
      .live_blocks = tn->blocks,
      .fail_limit = tn->fail_limit,
      .fail_space = tn->fail_space,
  };
  pthread_mutex_unlock(&p->lock);
  return 0;
}

static int by_addr(const void* a, const void* b) {
  uint64_t x = ((const vt_entry*)a)->addr, y = ((const vt_entry*)b)->addr;
  return (x > y) - (x < y);
}

uint64_t thaw_pool_check_leaks(thaw_pool* p, thaw_pool_leak_fn report,
                               void* arg) {
  if (!p) return 0;
  pthread_mutex_lock(&p->lock);
  uint64_t n = p->validate ? p->vt_count : p->st.live_blocks + p->st.small_live;
  vt_entry* live = p->validate && n ? malloc(n * sizeof *live) : NULL;
  for (uint64_t i = 0, k = 0; live && i < p->vt_cap; i++)
    if (p->vt[i].addr) live[k++] = p->vt[i];
  pthread_mutex_unlock(&p->lock);
  if (!live) return n;
  /* Report outside the lock: the callback may call into the pool. */
  qsort(live, n, sizeof *live, by_addr);
  for (uint64_t i = 0; report && i < n; i++)
    report((void*)(uintptr_t)live[i].addr, live[i].size, live[i].tenant, arg);
  free(live);
  return n;
}

/* ---- internal interface (buddy.h) ---------------------------------------- */

void thaw_pool_arena(thaw_pool* p, uint8_t** base, uint64_t* len) {
  *base = p->base;
  *len = p->len;
}

uint64_t thaw_pool_free_layout(thaw_pool* p, uint32_t tenant, uint64_t* out,
                               uint64_t cap) {
  if (tenant != THAW_POOL_SHARED && tenant >= p->max_tenants) return 0;
  pthread_mutex_lock(&p->lock);
  const tree* tr = &p->trees[tenant == THAW_POOL_SHARED ? 0 : 1 + tenant];
  uint64_t n = 0;
  for (unsigned i = 0; i < p->norders; i++)
    for (uint32_t u = tr->head[i]; u != NONE; u = p->units[u].u.link.next, n++)
      if (n < cap) out[n] = ((uint64_t)u << p->min_shift) | (p->min_shift + i);
  pthread_mutex_unlock(&p->lock);
  return n;
}

/* Per-tree and per-tenant totals recounted by thaw_pool_check. */
typedef struct recount {
  uint16_t* owner; /* per unit: the tree its roots give it to */
  uint64_t *tree_units, *tree_heads, *used, *overflow, *blocks;
} recount;

#define BAD(...)                            \
  do {                                      \
    snprintf(err, err_len, __VA_ARGS__);    \
    return THAW_EINVAL;                     \
  } while (0)

/* Each root claims its units for its tree; check roots against tenants. */
static int check_roots(const thaw_pool* p, recount* r, char* err, size_t err_len) {
  for (uint32_t t = 0; t <= p->max_tenants; t++) {
    uint64_t bytes = 0;
    for (unsigned i = 0; i < p->norders; i++) {
      uint32_t u = p->trees[t].root[i];
      if (u == NONE) continue;
      uint32_t k = 1u << i;
      if (u % k || u + k > p->nunits) BAD("tree %u: root %u misplaced", t, u);
      for (uint32_t j = u; j < u + k; j++) {
        if (t && r->owner[j]) BAD("tree %u: root %u overlaps another", t, u);
        r->owner[j] = (uint16_t)t;
      }
      bytes += 1ull << (p->min_shift + i);
    }
    if (t == 0 && bytes != p->len) BAD("overflow roots cover %llu bytes",
                                       (unsigned long long)bytes);
    if (t > 0 && bytes != p->tenants[t - 1].reserved)
      BAD("tenant %u: roots %llu bytes, reserved %llu", t - 1,
          (unsigned long long)bytes, (unsigned long long)p->tenants[t - 1].reserved);
  }
  return 0;
}

/* One block: its placement, flags, tree, and what it adds to the totals. */
static int check_block(const thaw_pool* p, uint32_t u, recount* r, uint64_t* sum,
                       char* err, size_t err_len) {
  const unit* x = &p->units[u];
  if (!(x->flags & U_HEAD)) BAD("unit %u: not a block head", u);
  if (x->order < p->min_shift || x->order > p->max_shift) BAD("unit %u: order", u);
  uint32_t k = units_of(p, x->order);
  if (u % k || u + k > p->nunits) BAD("block %u: misplaced", u);
  for (uint32_t j = u; j < u + k; j++) {
    if (j > u && (p->units[j].flags & U_HEAD)) BAD("block %u: head %u inside", u, j);
    if (r->owner[j] != x->tree) BAD("block %u: unit %u outside its tree", u, j);
    if (p->units[j].flags & U_COMMITTED) sum[0]++;
    else if (x->flags & U_USED) BAD("block %u: used but not committed", u);
  }
  if ((x->flags & (U_FREE | U_USED)) == U_FREE) {
    r->tree_units[x->tree] += k;
    r->tree_heads[x->tree]++;
    uint32_t b = u ^ k;
    const unit* y = b < p->nunits ? &p->units[b] : NULL;
    if (p->trees[x->tree].root[x->order - p->min_shift] != u && y &&
        (y->flags & (U_HEAD | U_FREE)) == (U_HEAD | U_FREE) && y->order == x->order &&
        y->tree == x->tree)
      BAD("free buddies %u and %u not merged", u, b);
    return 0;
  }
  if ((x->flags & (U_FREE | U_USED)) != U_USED) BAD("block %u: free and used", u);
  sum[1] += k;
  if (x->flags & U_SLAB) {
    if (x->tree != 0 || x->u.slab->base != unit_addr(p, u)) BAD("slab %u", u);
    sum[2]++;
    return 0;
  }
  uint32_t t = x->tenant;
  if (t >= p->max_tenants) BAD("block %u: tenant %u", u, t);
  if (x->tree != 0 && x->tree != 1 + t) BAD("block %u: in another partition", u);
  if (x->u.req == 0 || x->u.req > (1ull << x->order)) BAD("block %u: size", u);
  r->used[t] += k;
  r->overflow[t] += x->tree == 0 ? k : 0;
  r->blocks[t]++;
  sum[3]++;
  sum[4] += (1ull << x->order) - x->u.req;
  return 0;
}

/* The free lists of tree t against the block walk. */
static int check_lists(const thaw_pool* p, uint32_t t, const recount* r, char* err,
                       size_t err_len) {
  const tree* tr = &p->trees[t];
  uint64_t heads = 0, units = 0;
  for (unsigned i = 0; i < p->norders; i++) {
    if (!((tr->nonempty >> i) & 1) != (tr->head[i] == NONE))
      BAD("tree %u order %u: nonempty bit", t, i);
    uint32_t prev = NONE;
    for (uint32_t u = tr->head[i]; u != NONE; prev = u, u = p->units[u].u.link.next) {
      const unit* x = u < p->nunits ? &p->units[u] : NULL;
      if (!x || (x->flags & (U_HEAD | U_FREE)) != (U_HEAD | U_FREE) ||
          x->order != p->min_shift + i || x->tree != t || x->u.link.prev != prev)
        BAD("tree %u order %u: bad list entry %u", t, i, u);
      if (++heads > p->nunits) BAD("tree %u: list cycle", t);
      units += 1u << i;
    }
  }
  if (heads != r->tree_heads[t] || units != r->tree_units[t] || units != tr->free_units)
    BAD("tree %u: lists hold %llu blocks, walk found %llu", t,
        (unsigned long long)heads, (unsigned long long)r->tree_heads[t]);
  return 0;
}

static int check_counters(const thaw_pool* p, const recount* r, const uint64_t* sum,
                          char* err, size_t err_len) {
  if (sum[0] != p->committed_units) BAD("committed units %llu, counter %llu",
                                        (unsigned long long)sum[0],
                                        (unsigned long long)p->committed_units);
  if (sum[1] << p->min_shift != p->st.used_bytes) BAD("used bytes");
  if (sum[2] != p->st.small_slabs) BAD("slab count");
  if (sum[3] != p->st.live_blocks) BAD("live blocks");
  if (sum[4] != p->st.frag_wasted_bytes) BAD("fragmentation");
  uint64_t reserved = 0;
  for (uint32_t t = 0; t < p->max_tenants; t++) {
    const tenant* tn = &p->tenants[t];
    if (r->used[t] << p->min_shift != tn->used ||
        r->overflow[t] << p->min_shift != tn->overflow || r->blocks[t] != tn->blocks)
      BAD("tenant %u: counters", t);
    reserved += tn->reserved;
  }
  if (reserved != p->st.reserved_bytes) BAD("reserved bytes");
  if (p->validate && p->vt_count != p->st.live_blocks + p->st.small_live)
    BAD("validation table holds %llu entries", (unsigned long long)p->vt_count);
  return 0;
}

static int check_locked(const thaw_pool* p, recount* r, char* err, size_t err_len) {
  uint64_t sum[5] = {0}; /* committed, used units, slabs, blocks, wasted */
  int rc = check_roots(p, r, err, err_len);
  for (uint32_t u = 0; rc == 0 && u < p->nunits; u += units_of(p, p->units[u].order))
    rc = check_block(p, u, r, sum, err, err_len);
  for (uint32_t t = 0; rc == 0 && t <= p->max_tenants; t++)
    rc = check_lists(p, t, r, err, err_len);
  return rc ? rc : check_counters(p, r, sum, err, err_len);
}

int thaw_pool_check(thaw_pool* p, char* err, size_t err_len) {
  uint64_t n = (uint64_t)p->max_tenants + 1;
  recount r = {
      .owner = calloc(p->nunits, sizeof *r.owner),
      .tree_units = calloc(n, sizeof(uint64_t)),
      .tree_heads = calloc(n, sizeof(uint64_t)),
      .used = calloc(n, sizeof(uint64_t)),
      .overflow = calloc(n, sizeof(uint64_t)),
      .blocks = calloc(n, sizeof(uint64_t)),
  };
  int rc = THAW_ENOMEM;
  if (r.owner && r.tree_units && r.tree_heads && r.used && r.overflow && r.blocks) {
    pthread_mutex_lock(&p->lock);
    rc = check_locked(p, &r, err, err_len);
    pthread_mutex_unlock(&p->lock);
  }
  if (rc == 0 && err_len) err[0] = 0;
  free(r.owner);
  free(r.tree_units);
  free(r.tree_heads);
  free(r.used);
  free(r.overflow);
  free(r.blocks);
  return rc;
}
