/*
 * thumbnail — image thumbnailer for binary PGM/PPM.
 *
 * Input:  a binary PGM ("P5", greyscale) or PPM ("P6", RGB) image with
 *         maxval 255 on stdin. Header tokens may be separated by any
 *         whitespace and "#" comments; exactly one whitespace byte follows
 *         the maxval, then width*height*channels raster bytes. Bytes after
 *         the raster are ignored.
 *         Bounding box: QUERY_STRING "w=<n>&h=<n>" if present, else env
 *         THUMB_WIDTH / THUMB_HEIGHT, else 64 (each dimension separately;
 *         1..4096).
 * Output: the same format, header exactly "P6\n<w> <h>\n255\n" (or "P5...")
 *         followed by the raster. The image is scaled to fit inside the box,
 *         keeping the aspect ratio (the binding dimension becomes exactly
 *         the box size, the other is rounded to nearest, minimum 1), and is
 *         never upscaled (an image that already fits is copied unchanged).
 *         Each output pixel is the rounded mean of its source box
 *         [ox*W/w, (ox+1)*W/w) x [oy*H/h, (oy+1)*H/h) (integer bounds).
 * Errors: malformed/truncated input or bad size parameters -> one line
 *         "thumbnail: <reason>" on stderr, nothing on stdout, exit code 1.
 *
 * Example (test): a 256x128 P6 image of solid (10,20,30), default box 64x64
 *         -> "P6\n64 32\n255\n" + 64*32 pixels of (10,20,30)
 *         (6144 raster bytes, 6157 bytes in total).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BOX 64
#define MAX_BOX 4096
#define MAX_INPUT_DIM 100000

static void die(const char *why)
{
    fprintf(stderr, "thumbnail: %s\n", why);
    exit(1);
}

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

/* Reads one unsigned decimal header field, skipping whitespace/comments. */
static int64_t read_header_int(FILE *f)
{
    int c;
    for (;;) {
        c = getc(f);
        if (c == '#') {
            while ((c = getc(f)) != EOF && c != '\n')
                ;
        }
        if (c == EOF) die("truncated header");
        if (!is_space(c)) break;
    }
    if (c < '0' || c > '9') die("malformed header");
    int64_t v = 0;
    while (c >= '0' && c <= '9') {
        v = v * 10 + (c - '0');
        if (v > MAX_INPUT_DIM) die("header value too large");
        c = getc(f);
    }
    /* The field must be terminated by whitespace (after maxval, this is the
     * single byte that separates the header from the raster). */
    if (!is_space(c)) die("malformed header");
    return v;
}

/* Parses a size value: decimal 1..MAX_BOX, whole string. */
static int parse_box(const char *s, size_t len, const char *what)
{
    long v = 0;
    if (len == 0) goto bad;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') goto bad;
        v = v * 10 + (s[i] - '0');
        if (v > MAX_BOX) goto bad;
    }
    if (v < 1) goto bad;
    return (int)v;
bad:
    fprintf(stderr, "thumbnail: invalid %s (expected 1..%d)\n", what, MAX_BOX);
    exit(1);
}

/* Looks up `key` in a query string; returns its raw value or NULL. */
static const char *query_param(const char *qs, const char *key, size_t *len)
{
    size_t klen = strlen(key);
    for (const char *p = qs; p && *p; ) {
        size_t plen = strcspn(p, "&");
        if (plen > klen && memcmp(p, key, klen) == 0 && p[klen] == '=') {
            *len = plen - klen - 1;
            return p + klen + 1;
        }
        p += plen;
        if (*p == '&') p++;
    }
    return NULL;
}

static int box_size(const char *qkey, const char *env, const char *what)
{
    size_t len;
    const char *v = query_param(getenv("QUERY_STRING"), qkey, &len);
    if (!v) {
        v = getenv(env);
        if (!v) return DEFAULT_BOX;
        len = strlen(v);
    }
    return parse_box(v, len, what);
}

int main(void)
{
    int box_w = box_size("w", "THUMB_WIDTH", "width");
    int box_h = box_size("h", "THUMB_HEIGHT", "height");

    FILE *f = stdin;
    int m0 = getc(f), m1 = getc(f);
    if (m0 != 'P' || (m1 != '5' && m1 != '6'))
        die("not a binary PGM/PPM (expected P5 or P6)");
    int ch = m1 == '6' ? 3 : 1;
    int sep = getc(f);
    if (!is_space(sep) && sep != '#') die("malformed header");
    ungetc(sep, f);
    /* Header fields after the magic: width, height, maxval. */
    int64_t w = read_header_int(f), h = read_header_int(f);
    int64_t maxval = read_header_int(f);
    if (w < 1 || h < 1) die("zero image size");
    if (maxval != 255) die("unsupported maxval (only 255)");

    /* Output size: fit into box_w x box_h, keep aspect, never upscale. */
    int64_t ow = w, oh = h;
    if (w > box_w || h > box_h) {
        if (w * box_h >= h * box_w) { /* width is the binding side */
            ow = box_w;
            oh = (h * box_w + w / 2) / w;
        } else {
            oh = box_h;
            ow = (w * box_h + h / 2) / h;
        }
        if (ow < 1) ow = 1;
        if (oh < 1) oh = 1;
    }

    size_t row_bytes = (size_t)w * ch;
    unsigned char *row = malloc(row_bytes);
    uint64_t *acc = malloc((size_t)ow * ch * sizeof *acc);
    unsigned char *out = malloc((size_t)ow * oh * ch);
    int64_t *x0 = malloc(((size_t)ow + 1) * sizeof *x0);
    if (!row || !acc || !out || !x0) die("out of memory");
    for (int64_t ox = 0; ox <= ow; ox++) x0[ox] = ox * w / ow;

    /* Stream the raster row by row; output row oy averages source rows
     * [oy*h/oh, (oy+1)*h/oh). */
    for (int64_t oy = 0; oy < oh; oy++) {
        int64_t y0 = oy * h / oh, y1 = (oy + 1) * h / oh;
        memset(acc, 0, (size_t)ow * ch * sizeof *acc);
        for (int64_t y = y0; y < y1; y++) {
            if (fread(row, 1, row_bytes, f) != row_bytes)
                die("truncated raster");
            for (int64_t ox = 0; ox < ow; ox++)
                for (int64_t x = x0[ox]; x < x0[ox + 1]; x++)
                    for (int c = 0; c < ch; c++)
                        acc[ox * ch + c] += row[x * ch + c];
        }
        for (int64_t ox = 0; ox < ow; ox++) {
            uint64_t n = (uint64_t)(y1 - y0) * (uint64_t)(x0[ox + 1] - x0[ox]);
            for (int c = 0; c < ch; c++)
                out[((size_t)oy * ow + ox) * ch + c] =
                    (unsigned char)((acc[ox * ch + c] + n / 2) / n);
        }
    }

    printf("P%c\n%d %d\n255\n", m1, (int)ow, (int)oh);
    fwrite(out, 1, (size_t)ow * oh * ch, stdout);
    if (fflush(stdout) != 0) die("error writing stdout");
    free(row);
    free(acc);
    free(out);
    free(x0);
    return 0;
}
