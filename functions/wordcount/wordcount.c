/*
 * wordcount — text statistics.
 *
 * Input:  arbitrary bytes on stdin (treated as ASCII text).
 * Output: one JSON line
 *           {"lines":L,"words":W,"bytes":B,"top":[["word",count],...]}\n
 *         L = number of '\n' bytes (like `wc -l`), B = number of bytes,
 *         W = number of words, where a word is a maximal run of ASCII
 *         letters, digits and apostrophes ('), lowercased (so "Don't" and
 *         "DON'T" are the same word, and a lone "'" is a word too).
 *         "top" lists the 5 most frequent words (fewer if there are fewer
 *         distinct words), by count descending, ties broken by ascending
 *         byte order of the word. Words contain only [a-z0-9'], so no JSON
 *         escaping is needed. Exit code 0.
 *
 * Example: "The cat and the hat.\nThe end\n"
 *       -> {"lines":2,"words":7,"bytes":29,"top":[["the",3],["and",1],["cat",1],["end",1],["hat",1]]}
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOP_N 5

struct entry {
    char *word; /* NULL = empty slot */
    size_t len;
    uint64_t hash;
    uint64_t count;
};

static struct entry *table;
static size_t table_cap, table_used; /* cap is a power of two */

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fputs("wordcount: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void grow(void)
{
    size_t old_cap = table_cap;
    struct entry *old = table;
    table_cap = old_cap ? old_cap * 2 : 1024;
    table = xmalloc(table_cap * sizeof *table);
    memset(table, 0, table_cap * sizeof *table);
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].word) continue;
        size_t j = (size_t)old[i].hash & (table_cap - 1);
        while (table[j].word) j = (j + 1) & (table_cap - 1);
        table[j] = old[i];
    }
    free(old);
}

/* Counts one occurrence of word[0..len) (already lowercased). */
static void add_word(const char *word, size_t len)
{
    if ((table_used + 1) * 2 > table_cap) grow(); /* load factor <= 1/2 */
    uint64_t h = fnv1a(word, len);
    size_t j = (size_t)h & (table_cap - 1);
    while (table[j].word) {
        if (table[j].hash == h && table[j].len == len &&
            memcmp(table[j].word, word, len) == 0) {
            table[j].count++;
            return;
        }
        j = (j + 1) & (table_cap - 1);
    }
    table[j].word = xmalloc(len);
    memcpy(table[j].word, word, len);
    table[j].len = len;
    table[j].hash = h;
    table[j].count = 1;
    table_used++;
}

/* Is a ranked before b? Higher count first, then byte order. */
static int ranks_before(const struct entry *a, const struct entry *b)
{
    if (a->count != b->count) return a->count > b->count;
    size_t n = a->len < b->len ? a->len : b->len;
    int r = memcmp(a->word, b->word, n);
    if (r) return r < 0;
    return a->len < b->len;
}

static int is_word_byte(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '\'';
}

int main(void)
{
    uint64_t lines = 0, words = 0, bytes = 0;
    size_t wcap = 64, wlen = 0;
    char *word = xmalloc(wcap);
    static unsigned char buf[1 << 16];
    size_t got;

    grow();
    while ((got = fread(buf, 1, sizeof buf, stdin)) > 0) {
        bytes += got;
        for (size_t i = 0; i < got; i++) {
            int c = buf[i];
            if (is_word_byte(c)) {
                if (wlen == wcap) {
                    wcap *= 2;
                    word = realloc(word, wcap);
                    if (!word) {
                        fputs("wordcount: out of memory\n", stderr);
                        return 1;
                    }
                }
                word[wlen++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
                continue;
            }
            if (wlen) {
                add_word(word, wlen);
                words++;
                wlen = 0;
            }
            if (c == '\n') lines++;
        }
    }
    if (wlen) { /* a word running up to EOF */
        add_word(word, wlen);
        words++;
    }
    if (ferror(stdin)) {
        fputs("wordcount: error reading stdin\n", stderr);
        return 1;
    }

    /* Keep the TOP_N best entries in a small sorted array. */
    const struct entry *top[TOP_N];
    size_t ntop = 0;
    for (size_t i = 0; i < table_cap; i++) {
        const struct entry *e = &table[i];
        if (!e->word) continue;
        if (ntop == TOP_N && !ranks_before(e, top[TOP_N - 1])) continue;
        size_t k = ntop < TOP_N ? ntop++ : TOP_N - 1;
        while (k > 0 && ranks_before(e, top[k - 1])) {
            top[k] = top[k - 1];
            k--;
        }
        top[k] = e;
    }

    printf("{\"lines\":%llu,\"words\":%llu,\"bytes\":%llu,\"top\":[",
           (unsigned long long)lines, (unsigned long long)words,
           (unsigned long long)bytes);
    for (size_t i = 0; i < ntop; i++) {
        printf("%s[\"%.*s\",%llu]", i ? "," : "", (int)top[i]->len,
               top[i]->word, (unsigned long long)top[i]->count);
    }
    printf("]}\n");
    if (fflush(stdout) != 0) {
        fputs("wordcount: error writing stdout\n", stderr);
        return 1;
    }
    return 0;
}
