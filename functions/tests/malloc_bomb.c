/*
 * malloc_bomb — allocates 1 MiB blocks with malloc, writing one byte in
 * every 4 KiB of each block, until malloc returns NULL; then prints
 * "allocated=<N>\n" on stdout (N = number of 1 MiB blocks obtained) and
 * exits with code 3.
 * Expected: exit code 3 with N a little below the memory limit in MiB
 * (malloc overhead, stack and static data take the rest); never a trap.
 * The blocks are chained into a list and walked at the end so the compiler
 * cannot elide the allocations.
 */
#include <stdio.h>
#include <stdlib.h>

#define BLOCK (1024 * 1024)

struct block {
    struct block *prev;
};

int main(void)
{
    struct block *last = NULL;
    for (;;) {
        struct block *b = malloc(BLOCK);
        if (!b) break;
        volatile char *bytes = (volatile char *)b;
        for (size_t off = sizeof *b; off < BLOCK; off += 4096) bytes[off] = 1;
        b->prev = last;
        last = b;
    }
    unsigned long n = 0;
    for (struct block *b = last; b; b = b->prev) n++;
    printf("allocated=%lu\n", n);
    fflush(stdout);
    exit(3);
}
