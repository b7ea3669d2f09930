/*
 * memory_bomb — grows linear memory with raw `memory.grow` in steps of 16
 * pages (1 MiB) until the host refuses (memory.grow returns -1), then
 * prints "pages=<N>\n" on stdout, N being the final memory size in 64 KiB
 * pages (initial pages + all successful grows), and exits 0.
 * Expected: terminates promptly with N equal to the host's memory limit in
 * pages, rounded down to initial + a multiple of 16 (at most 65536). A host
 * without a limit below 4 GiB will let it reach ~65536 pages (4 GiB).
 * wasm-only (uses wasm builtins).
 */
#include <stddef.h>
#include <stdio.h>

int main(void)
{
    while (__builtin_wasm_memory_grow(0, 16) != (size_t)-1)
        ;
    /* printf writes through libc's static stdout buffer: no allocation. */
    printf("pages=%zu\n", __builtin_wasm_memory_size(0));
    return 0;
}
