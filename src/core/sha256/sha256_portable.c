/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Portable SHA-256: of 64-byte inputs, two compressions per node, the second
 * on the constant padding block whose schedule is precomputed; and block
 * compression for messages of any length (the streaming hash,
 * sha256_stream.c), with the same rounds. */
#include "base.h"
#include "sha256/sha256_internal.h"

/* The functions of FIPS 180-4 section 4.1.2. */
#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define BSIG0(x) (ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x) (ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x) (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))
#define CH(e, f, g) (((e) & (f)) ^ (~(e) & (g)))
#define MAJ(a, b, c) (((a) & (b)) ^ ((a) & (c)) ^ ((b) & (c)))

/* One round with the variables renamed instead of shifted: only d and h
 * change, the caller rotates the names. */
#define ROUND(a, b, c, d, e, f, g, h, wk)                                                 \
    do {                                                                                  \
        uint32_t t1_ = (h) + BSIG1(e) + CH(e, f, g) + (wk);                               \
        uint32_t t2_ = BSIG0(a) + MAJ(a, b, c);                                           \
        (d) += t1_;                                                                       \
        (h) = t1_ + t2_;                                                                  \
    } while (0)

/* 64 rounds on state s with the given W[t] + K[t]. */
static void compress(uint32_t s[8], const uint32_t wk[64])
{
    uint32_t a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
    for (int t = 0; t < 64; t += 8) {
        ROUND(a, b, c, d, e, f, g, h, wk[t + 0]);
        ROUND(h, a, b, c, d, e, f, g, wk[t + 1]);
        ROUND(g, h, a, b, c, d, e, f, wk[t + 2]);
        ROUND(f, g, h, a, b, c, d, e, wk[t + 3]);
        ROUND(e, f, g, h, a, b, c, d, wk[t + 4]);
        ROUND(d, e, f, g, h, a, b, c, wk[t + 5]);
        ROUND(c, d, e, f, g, h, a, b, wk[t + 6]);
        ROUND(b, c, d, e, f, g, h, a, wk[t + 7]);
    }
    s[0] += a;
    s[1] += b;
    s[2] += c;
    s[3] += d;
    s[4] += e;
    s[5] += f;
    s[6] += g;
    s[7] += h;
}

/* W[t] + K[t] of one 64-byte block. */
static void schedule(uint32_t wk[64], const uint8_t *in)
{
    for (int t = 0; t < 16; t++) wk[t] = cap_load_be32(in + 4 * t);
    for (int t = 16; t < 64; t++) wk[t] = SSIG1(wk[t - 2]) + wk[t - 7] + SSIG0(wk[t - 15]) + wk[t - 16];
    for (int t = 0; t < 64; t++) wk[t] += cap_sha256_k[t];
}

void cap_sha256_blocks_portable(uint32_t s[8], const uint8_t *in, size_t n)
{
    for (; n; n--, in += 64) {
        uint32_t wk[64];
        schedule(wk, in);
        compress(s, wk);
    }
}

void cap_sha256_nodes_portable(uint8_t *out, const uint8_t *in, size_t n)
{
    for (size_t i = 0; i < n; i++, in += 64, out += 32) {
        uint32_t w[64];
        /* The whole input is read here, before the digest is stored: that is
         * what makes out == in safe. */
        schedule(w, in);

        uint32_t s[8];
        for (int j = 0; j < 8; j++) s[j] = cap_sha256_iv[j];
        compress(s, w);
        compress(s, cap_sha256_pad_wk);
        for (int j = 0; j < 8; j++) cap_store_be32(out + 4 * j, s[j]);
    }
}
