/* test_memory.c -- resetting linear memory (native/src/memory.c).
 *
 * A reset must find every page a call wrote. The pagemap classification is
 * driven with synthetic entries, so the swapped-out case is checked on any
 * host; then a real region over a real image file is written, reset and
 * compared, and -- where the host has swap -- the same with the written
 * pages pushed out to swap first (MADV_PAGEOUT). Without swap that part is
 * skipped with the reason printed. Restores that trust the region's list
 * of private pages instead of scanning, and the fault check that decides
 * when they may, are driven directly.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#include "check.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define PRESENT (1ull << 63)
#define SWAPPED (1ull << 62)
#define FILE_OR_SHARED (1ull << 61)
#define EXCLUSIVE (1ull << 56)
#define SOFT_DIRTY (1ull << 55)

#define IMAGE_PAGES 4u
#define REGION_PAGES 1u /* 64 KiB: 16 OS pages, the first IMAGE_PAGES mapped */

static void test_classify(void) {
  CHECK(!thaw_pagemap_written(0));                        /* never touched */
  CHECK(thaw_pagemap_written(PRESENT | 0x1234));          /* anonymous copy */
  CHECK(thaw_pagemap_written(PRESENT | EXCLUSIVE | SOFT_DIRTY | 0x1234));
  CHECK(!thaw_pagemap_written(PRESENT | FILE_OR_SHARED)); /* the image's page */
  CHECK(!thaw_pagemap_written(PRESENT | FILE_OR_SHARED | EXCLUSIVE));
  CHECK(thaw_pagemap_written(SWAPPED | (7ull << 5) | 3)); /* copy in swap */
  CHECK(thaw_pagemap_written(SWAPPED | SOFT_DIRTY));
  CHECK(!thaw_pagemap_written(SWAPPED | FILE_OR_SHARED)); /* file page migrating */
  CHECK(!thaw_pagemap_written(FILE_OR_SHARED));
  CHECK(!thaw_pagemap_written(SOFT_DIRTY | EXCLUSIVE));
}

static uint64_t pagemap_entry(const void* p) {
  int fd = open("/proc/self/pagemap", O_RDONLY);
  uint64_t e = 0;
  if (fd >= 0) {
    if (pread(fd, &e, sizeof e, (off_t)((uintptr_t)p / THAW_OS_PAGE * 8)) != sizeof e) e = 0;
    close(fd);
  }
  return e;
}

typedef struct fixture {
  int fd;
  uint8_t* image; /* read-only view, as a module keeps one */
  thaw_region r;
} fixture;

static int fixture_open(fixture* f) {
  memset(f, 0, sizeof *f);
  f->fd = memfd_create("thaw-test-image", 0);
  if (f->fd < 0 || ftruncate(f->fd, IMAGE_PAGES * THAW_OS_PAGE) != 0) return -1;
  uint8_t page[THAW_OS_PAGE];
  for (uint32_t i = 0; i < IMAGE_PAGES; i++) {
    memset(page, 0x40 + (int)i, sizeof page);
    if (pwrite(f->fd, page, sizeof page, (off_t)i * THAW_OS_PAGE) != sizeof page) return -1;
  }
  f->image = mmap(NULL, IMAGE_PAGES * THAW_OS_PAGE, PROT_READ, MAP_SHARED, f->fd, 0);
  if (f->image == MAP_FAILED) return -1;
  if (thaw_region_reserve(&f->r, REGION_PAGES, 0) != 0) return -1;
  return thaw_region_map_image(&f->r, f->fd, 0, IMAGE_PAGES * THAW_OS_PAGE);
}

static void fixture_close(fixture* f) {
  thaw_region_release(&f->r);
  munmap(f->image, IMAGE_PAGES * THAW_OS_PAGE);
  close(f->fd);
}

/* Every page of the region reads as the image, then zeros. */
static int region_is_snapshot(const fixture* f) {
  for (size_t off = 0; off < THAW_PAGE_SIZE; off++) {
    uint8_t want = off < IMAGE_PAGES * THAW_OS_PAGE ? f->image[off] : 0;
    if (f->r.base[off] != want) return 0;
  }
  return 1;
}

/* Counts come before any full read: reading untouched anonymous memory maps
 * the zero page, which counts as written (see thaw_pagemap_written). */
static void test_restore(void) {
  fixture f;
  CHECK(fixture_open(&f) == 0);
  CHECK(thaw_private_pages(f.r.base, THAW_PAGE_SIZE) == 0);
  f.r.base[1 * THAW_OS_PAGE + 5] = 1;  /* an image page */
  f.r.base[10 * THAW_OS_PAGE + 7] = 2; /* past the image */
  CHECK(thaw_private_pages(f.r.base, THAW_PAGE_SIZE) == 2);
  CHECK(!region_is_snapshot(&f));
  CHECK(thaw_region_restore(&f.r, THAW_PAGE_SIZE, f.image, IMAGE_PAGES * THAW_OS_PAGE) == 0);
  CHECK(region_is_snapshot(&f));
  CHECK(thaw_region_discard(&f.r, THAW_PAGE_SIZE) == 0);
  CHECK(thaw_private_pages(f.r.base, THAW_PAGE_SIZE) == 0);
  CHECK(region_is_snapshot(&f));
  fixture_close(&f);
}

/* The fault check the instance layer makes after every call: a fault of
 * this thread in between -- a page touched for the first time, by the
 * program or by the kernel copying into it for a system call -- shows;
 * no fault, no alarm. */
static void test_thread_faults(void) {
  thaw_thread_faulted(); /* a thread's first check cannot know */
  CHECK(!thaw_thread_faulted());
  uint8_t* p = mmap(NULL, 2 * THAW_OS_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED);
  p[0] = 1;
  CHECK(thaw_thread_faulted());
  p[1] = 2; /* the same page again */
  CHECK(!thaw_thread_faulted());
  int fds[2];
  CHECK(pipe(fds) == 0);
  CHECK(write(fds[1], "x", 1) == 1);
  CHECK(!thaw_thread_faulted());
  CHECK(read(fds[0], p + THAW_OS_PAGE, 1) == 1); /* the kernel writes the page */
  CHECK(thaw_thread_faulted());
  close(fds[0]);
  close(fds[1]);
  munmap(p, 2 * THAW_OS_PAGE);
}

/* A restore over the image keeps the list of pages it found and the next
 * one copies exactly those, without a scan: a page written since stays
 * written (which is why the instance layer forgets the list after a call
 * that faulted), and forgetting brings the scan back. Past the image no
 * list is kept. */
static void test_restore_from_list(void) {
  fixture f;
  CHECK(fixture_open(&f) == 0);
  size_t image_len = IMAGE_PAGES * THAW_OS_PAGE;
  f.r.base[1 * THAW_OS_PAGE] = 1;
  CHECK(thaw_region_restore(&f.r, image_len, f.image, image_len) == 0);
  CHECK(f.r.listed && f.r.n_private == 1 && f.r.private_pages[0] == 1);
  f.r.base[1 * THAW_OS_PAGE] = 9;
  CHECK(thaw_region_restore(&f.r, image_len, f.image, image_len) == 0);
  CHECK(f.r.base[1 * THAW_OS_PAGE] == f.image[THAW_OS_PAGE]);
  f.r.base[3 * THAW_OS_PAGE] = 7; /* not listed */
  CHECK(thaw_region_restore(&f.r, image_len, f.image, image_len) == 0);
  CHECK(f.r.base[3 * THAW_OS_PAGE] == 7);
  thaw_region_forget(&f.r);
  CHECK(thaw_region_restore(&f.r, image_len, f.image, image_len) == 0);
  CHECK(f.r.base[3 * THAW_OS_PAGE] == f.image[3 * THAW_OS_PAGE]);
  CHECK(f.r.listed && f.r.n_private == 2);
  CHECK(thaw_region_restore(&f.r, THAW_PAGE_SIZE, f.image, image_len) == 0);
  CHECK(!f.r.listed);
  CHECK(thaw_region_restore(&f.r, image_len, f.image, image_len) == 0);
  CHECK(thaw_region_discard(&f.r, image_len) == 0);
  CHECK(!f.r.listed);
  fixture_close(&f);
}

static int host_has_swap(void) {
  FILE* f = fopen("/proc/swaps", "r");
  if (!f) return 0;
  char line[512];
  int lines = 0;
  while (fgets(line, sizeof line, f)) lines++;
  fclose(f);
  return lines > 1; /* a header, then one line per swap area */
}

static void test_restore_swapped(void) {
  if (!host_has_swap()) {
    printf("skipped: reset of swapped-out pages: this host has no swap (/proc/swaps is empty)\n");
    return;
  }
  fixture f;
  CHECK(fixture_open(&f) == 0);
  uint8_t* img = f.r.base + 2 * THAW_OS_PAGE;
  uint8_t* anon = f.r.base + 12 * THAW_OS_PAGE;
  memset(img, 0xEE, THAW_OS_PAGE);
  memset(anon, 0xDD, THAW_OS_PAGE);
  madvise(img, THAW_OS_PAGE, MADV_PAGEOUT);
  madvise(anon, THAW_OS_PAGE, MADV_PAGEOUT);
  uint64_t ei = pagemap_entry(img), ea = pagemap_entry(anon);
  if (!(ei & SWAPPED) || !(ea & SWAPPED)) {
    printf("skipped: reset of swapped-out pages: MADV_PAGEOUT left them resident "
           "(pagemap %016llx %016llx)\n", (unsigned long long)ei, (unsigned long long)ea);
  } else {
    CHECK(thaw_private_pages(f.r.base, THAW_PAGE_SIZE) == 2);
    CHECK(thaw_region_restore(&f.r, THAW_PAGE_SIZE, f.image, IMAGE_PAGES * THAW_OS_PAGE) == 0);
    CHECK(region_is_snapshot(&f));
  }
  fixture_close(&f);
}

int main(void) {
  /* A small arena: the default reserves terabytes of address space, which
   * the sanitizers' shadow mapping makes slow to set up. */
  setenv("THAW_ARENA_BYTES", "1073741824", 1);
  test_classify();
  test_restore();
  test_thread_faults();
  test_restore_from_list();
  test_restore_swapped();
  return check_summary();
}
