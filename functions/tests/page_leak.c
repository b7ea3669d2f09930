/*
 * page_leak — detects a reset that misses a page a call wrote for the
 * first time.
 *
 * stdin: a page number n (0..63). The call checks that all 64 pages of its
 * static buffer read as zero and prints "clean\n" (or "dirty page <p>\n"
 * for the first that does not), then writes one byte into page n. A reset
 * that put back only the pages earlier calls wrote, and missed that this
 * call wrote another, shows as "dirty" on the next call. Exit code 0; 2
 * for input that is not a page number.
 */
#include <stdio.h>

#define PAGES 64
#define PAGE 4096

/* Words, not bytes: the check must stay short enough to run inline. */
#define WORDS (PAGE / 8)

static volatile unsigned long long buffer[PAGES * WORDS] __attribute__((aligned(PAGE)));

int main(void)
{
    int n = -1;
    if (scanf("%d", &n) != 1 || n < 0 || n >= PAGES) {
        fprintf(stderr, "page_leak: want a page number 0..%d on stdin\n", PAGES - 1);
        return 2;
    }
    int dirty = -1;
    for (int i = 0; i < PAGES * WORDS && dirty < 0; i++)
        if (buffer[i]) dirty = i / WORDS;
    if (dirty < 0) printf("clean\n");
    else printf("dirty page %d\n", dirty);
    buffer[n * WORDS + 2] = 1;
    return 0;
}
