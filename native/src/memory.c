/* memory.c -- where linear memory lives.
 *
 * A region is one private mapping that reserves the instance's capped
 * maximum of linear memory (MAP_NORESERVE: address space, not memory). The
 * snapshot image is mapped over its start MAP_PRIVATE|MAP_FIXED, so every
 * instance of a function shares the image's page-cache pages until it
 * writes one; the remainder is anonymous memory that reads as zero.
 *
 * Resetting a region after a call puts every page the call wrote back to
 * its snapshot contents. /proc/self/pagemap tells which pages are private
 * (thaw_pagemap_written): those, and only those, were written. Two ways to
 * put them back, chosen by how many there are:
 *  - few (the common case): copy each from a read-only view of the image
 *    (zero-fill past it). The page stays private and mapped, so the next
 *    call does not fault it in again, and no TLB shootdown is needed --
 *    on a busy multi-threaded process those cost more than the copy.
 *  - many, or no pagemap: one MADV_DONTNEED over the memory; private
 *    copies are dropped and fall back to the file, anonymous pages read as
 *    zero again.
 * Either way the cost follows the pages actually written (eq. 1 of the
 * paper), not the size of the memory. A warm instance so keeps its working
 * set private; thaw_region_discard gives it back when the pool decides the
 * instance is idle for long (return-to-OS).
 *
 * Restoring without a scan. Reading pagemap costs a system call and ~33 ns
 * per mapped page: 1.7 us for a 128 KiB memory, more than the rest of a
 * small call's reset. After a restore the region's private pages are
 * exactly the ones it found, and the region keeps that list. A page becomes
 * private only through a page fault: a write to an image page (mapped
 * read-only, copy-on-write) or to a page never touched, and the kernel
 * counts every fault it resolves on the thread that took it, including
 * its own copies into user memory on that thread's behalf (getrusage
 * RUSAGE_THREAD). So the instance layer checks, after every call, whether
 * the calling thread faulted since its previous check (a window that holds
 * the whole call); if not, the call made no page private, the list still
 * holds, and the next restore copies the listed pages without asking the
 * kernel. Any fault, on any page, forgets the list: a false alarm costs one
 * scan, a missed page would hand a call's data to the next one.
 * Nothing else writes an instance's memory: only its calls, one at a time.
 * The kernel could still map a page writable on its own: khugepaged
 * collapses anonymous ranges into huge pages, turning untouched pages into
 * writable zero pages. It does not do that in a private file mapping (a
 * page of one is mapped read-only until its own write fault), so the list
 * is trusted only while the memory lies within the image; a call that
 * grew the memory past it is followed by a scan.
 *
 * Code built with explicit bounds checks (wasm-rt.h) never touches
 * anything past `size`, so its region needs no guard pages and costs one or
 * two VMAs. Code built without them gets a guarded region instead: the
 * same operations on a slot of guard.c, where only [0, size) is mapped and
 * the tenant is charged through a pool block of the same size as here.
 *
 * Regions are blocks of the process-wide buddy pool (buddy.c): power-of-two
 * blocks of one NORESERVE arena, 2 MiB-aligned and MADV_HUGEPAGE from 2 MiB
 * up, charged to the function's tenant (its partition, then the shared
 * overflow, never past its limit). A block goes back to the pool as plain
 * anonymous memory: the image mapping is replaced first, as the pool wants.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Past this many written pages (1 MiB), dropping them beats copying. */
#define RESTORE_COPY_MAX_PAGES 256u
#define PAGEMAP_BATCH 512u
#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_SWAPPED (1ull << 62)
#define PAGEMAP_FILE_OR_SHARED (1ull << 61)

/* A page the process wrote is an anonymous copy, resident or swapped out;
 * missing one would leave a previous call's data in place, so swapped
 * pages count (restoring faults them back in; dropping frees their swap).
 * The image's own pages are file pages whether resident or not, and a page
 * never touched has no entry at all. A swap entry with the file bit is a
 * file page in migration, not a copy. A read of untouched anonymous memory
 * maps the shared zero page, which looks written too: it is restored
 * needlessly, never missed. */
int thaw_pagemap_written(uint64_t entry) {
  return (entry & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED)) &&
         !(entry & PAGEMAP_FILE_OR_SHARED);
}

/* The clock lives here, in the lowest file that needs it (the pool's
 * return-to-OS policy), so that wasi.c, cpu.c and call.c reach down for it. */
uint64_t thaw_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int g_pagemap_fd = -1;
static pthread_once_t g_pagemap_once = PTHREAD_ONCE_INIT;

static void open_pagemap(void) {
  g_pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
}

/* Stores the index of each written page of [base, base+len) in found (up
 * to `limit` of them) and returns how many there were, or -1 without
 * pagemap. Stops early, returning more than `limit`, once past it. */
static int64_t scan_private(const uint8_t* base, size_t len, uint64_t limit,
                            uint32_t* found) {
  pthread_once(&g_pagemap_once, open_pagemap);
  if (g_pagemap_fd < 0) return -1;
  uint64_t first = (uintptr_t)base / THAW_OS_PAGE;
  uint64_t n = (len + THAW_OS_PAGE - 1) / THAW_OS_PAGE;
  uint64_t entries[PAGEMAP_BATCH];
  uint64_t count = 0;
  for (uint64_t done = 0; done < n;) {
    uint64_t batch = n - done < PAGEMAP_BATCH ? n - done : PAGEMAP_BATCH;
    ssize_t got = pread(g_pagemap_fd, entries, batch * 8, (off_t)((first + done) * 8));
    if (got <= 0) return -1;
    for (uint64_t i = 0; i < (uint64_t)got / 8; i++) {
      if (!thaw_pagemap_written(entries[i])) continue;
      if (count < limit && found) found[count] = (uint32_t)(done + i);
      if (++count > limit) return (int64_t)count;
    }
    done += (uint64_t)got / 8;
  }
  return (int64_t)count;
}

uint64_t thaw_private_pages(const uint8_t* base, size_t len) {
  if (len == 0) return 0;
  int64_t n = scan_private(base, len, UINT64_MAX, NULL);
  return n < 0 ? 0 : (uint64_t)n;
}

int64_t thaw_private_page_list(const uint8_t* base, size_t len, uint32_t* pages,
                               uint32_t cap) {
  return len ? scan_private(base, len, cap, pages) : 0;
}

size_t thaw_region_size(uint32_t max_pages) {
  return max_pages ? (size_t)max_pages * THAW_PAGE_SIZE : THAW_OS_PAGE;
}

static thaw_pool* g_pool;
static pthread_once_t g_pool_once = PTHREAD_ONCE_INIT;

static void create_pool(void) {
  thaw_pool_config cfg;
  thaw_pool_config_default(&cfg);
  const char* arena = getenv("THAW_ARENA_BYTES");
  cfg.arena_bytes = arena ? strtoull(arena, NULL, 10) : (4ull << 40);
  /* The pool keeps 16 bytes of metadata per min_block unit of a live block:
   * with 64 KiB units a 64 MiB region would cost an idle instance 16 KiB.
   * 1 MiB units make that 1 KiB; the rounding only costs address space. */
  cfg.min_block = 1u << 20;
  cfg.max_tenants = 4096;
  /* Under strict overcommit (vm.overcommit_memory=2) a writable arena is
   * charged in full; settle for the largest arena the kernel grants. */
  for (; !g_pool && cfg.arena_bytes >= (1ull << 30); cfg.arena_bytes /= 2)
    g_pool = thaw_pool_create(&cfg);
}

thaw_pool* thaw_memory_pool(void) {
  pthread_once(&g_pool_once, create_pool);
  return g_pool;
}

void thaw_memory_maintain(void) {
  thaw_pool* pool = thaw_memory_pool();
  if (pool) thaw_pool_maintain(pool, thaw_now_ns());
}

int thaw_region_reserve(thaw_region* r, uint32_t max_pages, uint32_t tenant) {
  thaw_pool* pool = thaw_memory_pool();
  *r = (thaw_region){.reserved = thaw_region_size(max_pages)};
  r->base = pool ? thaw_pool_alloc_zeroed(pool, tenant, r->reserved) : NULL;
  return r->base ? 0 : THAW_ENOMEM;
}

int thaw_region_reserve_guarded(thaw_region* r, uint32_t max_pages,
                                uint32_t tenant, uint64_t size) {
  *r = (thaw_region){.reserved = thaw_region_size(max_pages), .guarded = 1};
  r->base = thaw_guard_take(tenant, r->reserved, size);
  return r->base ? 0 : THAW_ENOMEM;
}

int thaw_region_resize(thaw_region* r, uint64_t old_size, uint64_t new_size) {
  return r->guarded ? thaw_guard_resize(r->base, old_size, new_size) : 0;
}

int thaw_region_map_image(thaw_region* r, int fd, uint64_t file_off,
                          size_t image_len) {
  if (image_len == 0) return 0;
  if (image_len > r->reserved) return THAW_EINVAL;
  void* p = mmap(r->base, image_len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_FIXED, fd, (off_t)file_off);
  return p == MAP_FAILED ? THAW_ENOMEM : 0;
}

int thaw_region_discard(thaw_region* r, size_t len) {
  r->listed = 0;
  if (len > r->reserved) len = r->reserved;
  if (len == 0) return 0;
  return madvise(r->base, len, MADV_DONTNEED) == 0 ? 0 : THAW_ENOMEM;
}

void thaw_region_forget(thaw_region* r) {
  r->listed = 0;
}

/* Faults of the calling thread at its previous check; none yet: UINT64_MAX. */
static __thread uint64_t t_faults = UINT64_MAX;

int thaw_thread_faulted(void) {
  uint64_t before = t_faults;
  struct rusage ru;
  if (getrusage(RUSAGE_THREAD, &ru) != 0) {
    t_faults = UINT64_MAX;
    return 1;
  }
  t_faults = (uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt;
  return before == UINT64_MAX || t_faults != before;
}

static void restore_page(thaw_region* r, uint32_t page, const uint8_t* image,
                         size_t image_len) {
  size_t off = (size_t)page * THAW_OS_PAGE;
  if (off < image_len) memcpy(r->base + off, image + off, THAW_OS_PAGE);
  else memset(r->base + off, 0, THAW_OS_PAGE);
}

/* Keep `pages` as the region's private pages; without room, keep nothing. */
static void list_private(thaw_region* r, const uint32_t* pages, uint32_t n) {
  if (n > r->cap_private) {
    uint32_t* grown = realloc(r->private_pages, n * sizeof *grown);
    if (!grown) return;
    r->private_pages = grown;
    r->cap_private = n;
  }
  if (n) memcpy(r->private_pages, pages, n * sizeof *pages);
  r->n_private = n;
  r->listed = 1;
}

int thaw_region_restore(thaw_region* r, size_t len, const uint8_t* image,
                        size_t image_len) {
  if (len > r->reserved) len = r->reserved;
  if (r->listed && len <= image_len) {
    for (uint32_t i = 0; i < r->n_private; i++)
      restore_page(r, r->private_pages[i], image, image_len);
    return 0;
  }
  r->listed = 0;
  uint32_t pages[RESTORE_COPY_MAX_PAGES];
  int64_t n = scan_private(r->base, len, RESTORE_COPY_MAX_PAGES, pages);
  if (n < 0 || n > (int64_t)RESTORE_COPY_MAX_PAGES || (image_len && !image))
    return thaw_region_discard(r, len);
  for (int64_t i = 0; i < n; i++) restore_page(r, pages[i], image, image_len);
  if (len <= image_len) list_private(r, pages, (uint32_t)n);
  return 0;
}

void thaw_region_release(thaw_region* r) {
  if (r->base && r->guarded) {
    thaw_guard_put(r->base);
  } else if (r->base) {
    mmap(r->base, r->reserved, PROT_READ | PROT_WRITE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    thaw_pool_free(thaw_memory_pool(), r->base);
  }
  free(r->private_pages);
  *r = (thaw_region){0};
}
