/*
 * kernel — deterministic CPU-bound benchmark kernel (native vs wasm).
 *
 * Builds unchanged both natively (`gcc -O2 kernel.c -o kernel`) and for
 * wasm32-wasi, and prints the same output on both: only fixed-width integer
 * arithmetic is used (no floating point, no libc randomness, explicit
 * byte order), so there is nothing that may legitimately differ.
 *
 * Input:  optional decimal N (0..1000000000) on stdin, surrounding whitespace
 *         allowed; empty input means N = 2000000.
 * Work:   driven by an xorshift64* PRNG seeded with a constant:
 *           1. hash:   N insert-or-update operations on an open-addressing
 *                      hash table (2^18 slots, 2^17 possible keys), i.e.
 *                      random memory access + branches;
 *           2. sha256: SHA-256 of an 8*N-byte stream of PRNG output,
 *                      i.e. 32-bit ALU work;
 *           3. matrix: C = A*B for 128x128 uint32 matrices (mod 2^32),
 *                      repeated max(1, N/1000000) times, i.e. tight loops
 *                      over arrays.
 *         ~100 ms natively at the default N on a current x86-64 core.
 * Output: one line
 *           "n=<N> hash=<16 hex> sha256=<64 hex> matrix=<16 hex>\n"
 * Errors: malformed N -> message on stderr, exit code 1.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_N 2000000u
#define MAX_N 1000000000u

/* ---- PRNG ---------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* ---- 1. hash table -------------------------------------------------------- */

#define SLOTS (1u << 18)
#define KEYS (1u << 17)

static uint32_t slot_key[SLOTS]; /* key + 1; 0 = empty */
static uint32_t slot_val[SLOTS];

static uint64_t phase_hash(uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint64_t r = rng_next();
        uint32_t key = (uint32_t)(r >> 40) & (KEYS - 1);
        uint32_t h = (key * 2654435761u) >> 14; /* top 18 bits */
        while (slot_key[h] != 0 && slot_key[h] != key + 1)
            h = (h + 1) & (SLOTS - 1);
        slot_key[h] = key + 1;
        slot_val[h] += (uint32_t)r;
    }
    uint64_t sum = 0;
    for (uint32_t i = 0; i < SLOTS; i++)
        sum = (sum ^ (((uint64_t)slot_key[i] << 32) | slot_val[i])) *
              0x100000001B3ull + i;
    return sum;
}

/* ---- 2. SHA-256 ----------------------------------------------------------- */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(uint32_t st[8], const uint8_t blk[64])
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 |
               (uint32_t)blk[4 * i + 2] << 8 | blk[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
    uint32_t e = st[4], f = st[5], g = st[6], h = st[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) +
                      ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) +
                      ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    st[0] += a; st[1] += b; st[2] += c; st[3] += d;
    st[4] += e; st[5] += f; st[6] += g; st[7] += h;
}

/* SHA-256 of 8*n bytes: n PRNG outputs, each serialized little-endian. */
static void phase_sha256(uint32_t n, char hex[65])
{
    uint32_t st[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    uint8_t blk[64];
    size_t fill = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t r = rng_next();
        for (int b = 0; b < 8; b++) blk[fill++] = (uint8_t)(r >> (8 * b));
        if (fill == 64) {
            sha256_block(st, blk);
            fill = 0;
        }
    }
    uint64_t bits = (uint64_t)n * 64;
    blk[fill++] = 0x80;
    if (fill > 56) {
        memset(blk + fill, 0, 64 - fill);
        sha256_block(st, blk);
        fill = 0;
    }
    memset(blk + fill, 0, 56 - fill);
    for (int b = 0; b < 8; b++) blk[56 + b] = (uint8_t)(bits >> (56 - 8 * b));
    sha256_block(st, blk);
    for (int i = 0; i < 8; i++) snprintf(hex + 8 * i, 9, "%08" PRIx32, st[i]);
}

/* ---- 3. integer matrix multiply ------------------------------------------ */

#define DIM 128

static uint32_t ma[DIM][DIM], mb[DIM][DIM], mc[DIM][DIM];

static uint64_t phase_matrix(uint32_t n)
{
    uint32_t reps = n / 1000000 ? n / 1000000 : 1;
    uint64_t sum = 0;
    for (uint32_t rep = 0; rep < reps; rep++) {
        for (int i = 0; i < DIM; i++)
            for (int j = 0; j < DIM; j++) {
                uint64_t r = rng_next();
                ma[i][j] = (uint32_t)r;
                mb[i][j] = (uint32_t)(r >> 32);
            }
        for (int i = 0; i < DIM; i++) {
            for (int j = 0; j < DIM; j++) mc[i][j] = 0;
            for (int k = 0; k < DIM; k++) {
                uint32_t aik = ma[i][k];
                for (int j = 0; j < DIM; j++) mc[i][j] += aik * mb[k][j];
            }
        }
        for (int i = 0; i < DIM; i++)
            for (int j = 0; j < DIM; j++)
                sum = (sum ^ mc[i][j]) * 0x100000001B3ull;
    }
    return sum;
}

/* ---- driver --------------------------------------------------------------- */

static uint32_t read_n(void)
{
    char buf[64];
    size_t len = fread(buf, 1, sizeof buf - 1, stdin);
    buf[len] = '\0';
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\t' ||
                       buf[i] == '\r'))
        i++;
    if (i == len) return DEFAULT_N;
    uint64_t n = 0;
    size_t digits = 0;
    while (i < len && buf[i] >= '0' && buf[i] <= '9') {
        n = n * 10 + (uint64_t)(buf[i++] - '0');
        if (n > MAX_N) break;
        digits++;
    }
    while (i < len && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\t' ||
                       buf[i] == '\r'))
        i++;
    if (digits == 0 || n > MAX_N || i != len || len == sizeof buf - 1) {
        fprintf(stderr, "kernel: expected N in 0..%u on stdin\n", MAX_N);
        exit(1);
    }
    return (uint32_t)n;
}

int main(void)
{
    uint32_t n = read_n();
    uint64_t hash = phase_hash(n);
    char sha[65];
    phase_sha256(n, sha);
    uint64_t matrix = phase_matrix(n);
    printf("n=%" PRIu32 " hash=%016" PRIx64 " sha256=%s matrix=%016" PRIx64
           "\n", n, hash, sha, matrix);
    return fflush(stdout) == 0 ? 0 : 1;
}
