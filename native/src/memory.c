/* memory.c -- where linear memory lives.
 *
 * A region is one private mapping that reserves the instance's capped
 * maximum of linear memory (MAP_NORESERVE: address space, not memory). The
 * snapshot image is mapped over its start MAP_PRIVATE|MAP_FIXED, so every
 * instance of a function shares the image's page-cache pages until it
 * writes one; the remainder is anonymous memory that reads as zero.
 *
 * Resetting a region after a call is a single MADV_DONTNEED over the bytes
 * the call could have reached (its memory size): private copies of image
 * pages are dropped and fall back to the file, anonymous pages go back to
 * reading as zero. The cost follows the pages actually written (eq. 1 of the
 * paper), not the size of the memory.
 *
 * Because wasm2c is built with bounds checks (wasm-rt.h), nothing past
 * `size` is ever touched, so no guard pages are needed and one region costs
 * one or two VMAs.
 */
#include <sys/mman.h>

#include "internal.h"

size_t thaw_region_size(uint32_t max_pages) {
  return max_pages ? (size_t)max_pages * THAW_PAGE_SIZE : THAW_OS_PAGE;
}

int thaw_region_reserve(thaw_region* r, uint32_t max_pages) {
  r->reserved = thaw_region_size(max_pages);
  void* p = mmap(NULL, r->reserved, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    r->base = NULL;
    return THAW_ENOMEM;
  }
  r->base = p;
  return 0;
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
  if (len > r->reserved) len = r->reserved;
  if (len == 0) return 0;
  return madvise(r->base, len, MADV_DONTNEED) == 0 ? 0 : THAW_ENOMEM;
}

void thaw_region_release(thaw_region* r) {
  if (r->base) munmap(r->base, r->reserved);
  r->base = NULL;
  r->reserved = 0;
}
