/*
 * hello — the smallest useful web handler.
 *
 * Input:  QUERY_STRING, e.g. "name=Ada" or "x=1&name=Ada+Lovelace".
 *         The value of the first `name` parameter is URL-decoded
 *         ("%41" -> "A", "+" -> " "; a malformed %-escape is kept as-is).
 *         A missing or empty `name` means "world". stdin is ignored.
 * Output: exactly "Hello, <name>!\n" on stdout, nothing else (no CGI
 *         headers, nothing on stderr). Exit code 0.
 *
 * Example: QUERY_STRING="name=Ada"  ->  "Hello, Ada!\n"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* URL-decode src[0..len) into dst (room for len bytes is enough, decoding
 * never makes a string longer); returns the decoded length. */
static size_t url_decode(char *dst, const char *src, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '+') {
            dst[o++] = ' ';
        } else if (src[i] == '%' && i + 2 < len &&
                   hexval(src[i + 1]) >= 0 && hexval(src[i + 2]) >= 0) {
            dst[o++] = (char)(hexval(src[i + 1]) * 16 + hexval(src[i + 2]));
            i += 2;
        } else {
            dst[o++] = src[i];
        }
    }
    return o;
}

int main(void)
{
    const char *qs = getenv("QUERY_STRING");
    const char *name = "world";
    size_t name_len = strlen(name);
    char *value = NULL;

    /* Walk the "&"-separated key=value pairs; stop at the first `name`. */
    for (const char *p = qs; p && *p; ) {
        size_t plen = strcspn(p, "&");
        const char *eq = memchr(p, '=', plen);
        if (eq) {
            size_t klen = (size_t)(eq - p), vlen = plen - klen - 1;
            char key[16];
            /* Any encoding of "name" is at most 4*3 = 12 bytes long. */
            if (klen <= 12 && url_decode(key, p, klen) == 4 &&
                memcmp(key, "name", 4) == 0) {
                value = malloc(vlen + 1);
                if (!value) {
                    fputs("hello: out of memory\n", stderr);
                    return 1;
                }
                size_t dlen = url_decode(value, eq + 1, vlen);
                if (dlen > 0) {
                    name = value;
                    name_len = dlen;
                }
                break;
            }
        }
        p += plen;
        if (*p == '&') p++;
    }

    fputs("Hello, ", stdout);
    fwrite(name, 1, name_len, stdout);
    fputs("!\n", stdout);
    free(value);
    return fflush(stdout) == 0 ? 0 : 1;
}
