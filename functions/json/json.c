/*
 * json — JSON transformer.
 *
 * Input:  one JSON document (RFC 8259) on stdin; leading/trailing
 *         whitespace allowed, nothing else after the document.
 * Output: the same document, transformed and written compactly (no
 *         whitespace at all) followed by a single "\n":
 *           - every object's members are sorted by key, ascending, comparing
 *             the raw key bytes as written (escapes not decoded; a key that
 *             is a prefix of another sorts first); members with equal keys
 *             keep their input order (duplicates are kept);
 *           - keys themselves are written unchanged;
 *           - in string values every ASCII a-z byte that is not part of a
 *             backslash escape is uppercased; escapes ("\n", "\u00e9", ...)
 *             and non-ASCII bytes are copied verbatim;
 *           - numbers, true, false and null are copied verbatim.
 *         Nesting up to MAX_DEPTH (512) arrays/objects is supported.
 * Errors: invalid JSON (or nesting deeper than MAX_DEPTH) -> one line
 *         "json: invalid JSON at byte <offset>: <reason>" on stderr, nothing
 *         on stdout, exit code 1.
 *
 * Example: {"b":[1,"x",{"d":true,"c":null}],"a":"hi"}
 *       -> {"a":"HI","b":[1,"X",{"c":null,"d":true}]}
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 512

enum kind { K_OBJECT, K_ARRAY, K_STRING, K_LITERAL };

/* One parsed value. Scalars refer back into the input buffer; containers
 * hold a singly linked list of children. Indices, not pointers, because the
 * node array is reallocated while parsing. */
struct node {
    enum kind kind;
    size_t start, len;         /* raw text (strings: including the quotes) */
    size_t key_start, key_len; /* member of an object: raw key, no quotes */
    size_t order;              /* position among its siblings */
    long first, last, next;    /* children list, -1 = none */
};

static const char *in;      /* whole input */
static size_t in_len, pos;  /* input length, parse position */
static struct node *nodes;
static size_t n_nodes, cap_nodes;

/* Kept out of line: inlined, its fprintf would give every recursive
 * parse_value frame ~150 bytes of shadow stack, and deep nesting would
 * overflow wasm-ld's default 64 KiB stack. */
__attribute__((noreturn, noinline)) static void fail(const char *why)
{
    fprintf(stderr, "json: invalid JSON at byte %zu: %s\n", pos, why);
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        fputs("json: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static long new_node(enum kind kind, size_t start)
{
    if (n_nodes == cap_nodes) {
        cap_nodes = cap_nodes ? cap_nodes * 2 : 256;
        nodes = xrealloc(nodes, cap_nodes * sizeof *nodes);
    }
    struct node *n = &nodes[n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->start = start;
    n->first = n->last = n->next = -1;
    return (long)n_nodes++;
}

static void add_child(long parent, long child)
{
    struct node *p = &nodes[parent];
    if (p->last < 0) {
        p->first = child;
        nodes[child].order = 0;
    } else {
        nodes[child].order = nodes[p->last].order + 1;
        nodes[p->last].next = child;
    }
    p->last = child;
}

static void skip_ws(void)
{
    while (pos < in_len && (in[pos] == ' ' || in[pos] == '\t' ||
                            in[pos] == '\n' || in[pos] == '\r'))
        pos++;
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Validates a string starting at the opening quote; leaves pos after the
 * closing quote. */
static void parse_string(void)
{
    if (pos >= in_len || in[pos] != '"') fail("expected string");
    pos++;
    for (;;) {
        if (pos >= in_len) fail("unterminated string");
        unsigned char c = (unsigned char)in[pos];
        if (c == '"') {
            pos++;
            return;
        }
        if (c < 0x20) fail("control character in string");
        if (c == '\\') {
            pos++;
            if (pos >= in_len) fail("unterminated string");
            switch (in[pos]) {
            case '"': case '\\': case '/': case 'b':
            case 'f': case 'n': case 'r': case 't':
                pos++;
                break;
            case 'u':
                for (int i = 1; i <= 4; i++)
                    if (pos + i >= in_len || !is_hex(in[pos + i])) {
                        pos += i;
                        fail("bad \\u escape");
                    }
                pos += 5;
                break;
            default:
                fail("bad escape");
            }
        } else {
            pos++;
        }
    }
}

static void parse_number(void)
{
    if (pos < in_len && in[pos] == '-') pos++;
    if (pos >= in_len || !is_digit(in[pos])) fail("bad number");
    if (in[pos] == '0') {
        pos++;
    } else {
        while (pos < in_len && is_digit(in[pos])) pos++;
    }
    if (pos < in_len && in[pos] == '.') {
        pos++;
        if (pos >= in_len || !is_digit(in[pos])) fail("bad number");
        while (pos < in_len && is_digit(in[pos])) pos++;
    }
    if (pos < in_len && (in[pos] == 'e' || in[pos] == 'E')) {
        pos++;
        if (pos < in_len && (in[pos] == '+' || in[pos] == '-')) pos++;
        if (pos >= in_len || !is_digit(in[pos])) fail("bad number");
        while (pos < in_len && is_digit(in[pos])) pos++;
    }
}

static long parse_value(int depth)
{
    skip_ws();
    if (pos >= in_len) fail("unexpected end of input");
    size_t start = pos;
    char c = in[pos];
    long self;

    if (c == '{' || c == '[') {
        if (depth >= MAX_DEPTH) fail("nesting too deep");
        int is_obj = c == '{';
        char close = is_obj ? '}' : ']';
        self = new_node(is_obj ? K_OBJECT : K_ARRAY, start);
        pos++;
        skip_ws();
        if (pos < in_len && in[pos] == close) {
            pos++;
            return self;
        }
        for (;;) {
            size_t key_start = 0, key_len = 0;
            if (is_obj) {
                skip_ws();
                key_start = pos + 1;
                parse_string();
                key_len = pos - 1 - key_start;
                skip_ws();
                if (pos >= in_len || in[pos] != ':') fail("expected ':'");
                pos++;
            }
            long child = parse_value(depth + 1);
            nodes[child].key_start = key_start;
            nodes[child].key_len = key_len;
            add_child(self, child);
            skip_ws();
            if (pos >= in_len) fail("unexpected end of input");
            if (in[pos] == ',') {
                pos++;
                continue;
            }
            if (in[pos] == close) {
                pos++;
                return self;
            }
            fail(is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }

    if (c == '"') {
        parse_string();
        self = new_node(K_STRING, start);
    } else if (c == '-' || is_digit(c)) {
        parse_number();
        self = new_node(K_LITERAL, start);
    } else {
        static const char *const words[] = {"true", "false", "null"};
        size_t i;
        for (i = 0; i < 3; i++) {
            size_t wl = strlen(words[i]);
            if (in_len - pos >= wl && memcmp(in + pos, words[i], wl) == 0) {
                pos += wl;
                break;
            }
        }
        if (i == 3) fail("unexpected character");
        self = new_node(K_LITERAL, start);
    }
    nodes[self].len = pos - start;
    return self;
}

/* Object members: by raw key bytes, then by input order (stable). */
static int cmp_members(const void *pa, const void *pb)
{
    const struct node *a = &nodes[*(const long *)pa];
    const struct node *b = &nodes[*(const long *)pb];
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int r = memcmp(in + a->key_start, in + b->key_start, n);
    if (r) return r;
    if (a->key_len != b->key_len) return a->key_len < b->key_len ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

static void write_string_upper(const struct node *n)
{
    const char *s = in + n->start;
    size_t i = 0, len = n->len;
    while (i < len) {
        char c = s[i];
        if (c == '\\') {
            size_t esc = s[i + 1] == 'u' ? 6 : 2;
            fwrite(s + i, 1, esc, stdout);
            i += esc;
        } else {
            putchar(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
            i++;
        }
    }
}

static void write_value(long idx)
{
    const struct node *n = &nodes[idx];
    switch (n->kind) {
    case K_LITERAL:
        fwrite(in + n->start, 1, n->len, stdout);
        break;
    case K_STRING:
        write_string_upper(n);
        break;
    case K_ARRAY:
        putchar('[');
        for (long c = n->first; c >= 0; c = nodes[c].next) {
            if (c != n->first) putchar(',');
            write_value(c);
        }
        putchar(']');
        break;
    case K_OBJECT: {
        size_t count = n->last >= 0 ? nodes[n->last].order + 1 : 0;
        long *members = xrealloc(NULL, (count ? count : 1) * sizeof *members);
        size_t i = 0;
        for (long c = n->first; c >= 0; c = nodes[c].next) members[i++] = c;
        qsort(members, count, sizeof *members, cmp_members);
        putchar('{');
        for (i = 0; i < count; i++) {
            const struct node *m = &nodes[members[i]];
            if (i) putchar(',');
            putchar('"');
            fwrite(in + m->key_start, 1, m->key_len, stdout);
            putchar('"');
            putchar(':');
            write_value(members[i]);
        }
        putchar('}');
        free(members);
        break;
    }
    }
}

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = xrealloc(NULL, cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = xrealloc(buf, cap *= 2);
    }
    if (ferror(f)) {
        fputs("json: error reading stdin\n", stderr);
        exit(1);
    }
    *len = n;
    return buf;
}

int main(void)
{
    char *buf = read_all(stdin, &in_len);
    in = buf;
    long root = parse_value(0);
    skip_ws();
    if (pos != in_len) fail("trailing characters after document");
    write_value(root);
    putchar('\n');
    if (fflush(stdout) != 0) {
        fputs("json: error writing stdout\n", stderr);
        return 1;
    }
    free(nodes);
    free(buf);
    return 0;
}
