/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Portable SHA-256 block compression for messages of any length (the
 * streaming hash, sha256_stream.c); the node kernels keep their own
 * two-block form. */
#include "base.h"
#include "sha256/sha256_internal.h"

void cap_sha256_blocks_portable(uint32_t s[8], const uint8_t *in, size_t n)
{
    for (; n; n--, in += 64) {
        uint32_t w[64];
        for (int t = 0; t < 16; t++) w[t] = cap_load_be32(in + 4 * t);
        for (int t = 16; t < 64; t++) w[t] = SSIG1(w[t - 2]) + w[t - 7] + SSIG0(w[t - 15]) + w[t - 16];
        uint32_t a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
        for (int t = 0; t < 64; t++) {
            uint32_t t1 = h + BSIG1(e) + CH(e, f, g) + cap_sha256_k[t] + w[t];
            uint32_t t2 = BSIG0(a) + MAJ(a, b, c);
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
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
}
