/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* SHA-256 block compression with the x86 SHA extensions, for the streaming
 * hash: one message, so one dependency chain (the node kernels' four nodes
 * in flight do not apply). The state is held as ABEF / CDGH, the layout
 * sha256rnds2 works on (lane 3 holds the first letter). */
#include "sha256/sha256_internal.h"

#if CAP_SHA256_HAVE_SHANI

#include <immintrin.h>

#define TARGET __attribute__((target("sha,sse4.1,ssse3")))

/* Four rounds on message words `m` (W[t..t+3]) and K[t..t+3]. */
#define QUAD(m, t)                                                                                \
    do {                                                                                          \
        __m128i wk_ = _mm_add_epi32((m), _mm_load_si128((const __m128i *)&cap_sha256_k[(t)]));     \
        s1 = _mm_sha256rnds2_epu32(s1, s0, wk_);                                                  \
        s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(wk_, 0x0E));                         \
    } while (0)

/* W[t+16..t+19] from W[t..t+15] held in a, b, c, d. */
#define NEXT(a, b, c, d)                                                                          \
    _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(a, b), _mm_alignr_epi8(d, c, 4)), d)

TARGET void cap_sha256_blocks_shani(uint32_t s[8], const uint8_t *in, size_t n)
{
    const __m128i bswap32 = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    __m128i abcd = _mm_loadu_si128((const __m128i *)(const void *)&s[0]);
    __m128i efgh = _mm_loadu_si128((const __m128i *)(const void *)&s[4]);
    __m128i badc = _mm_shuffle_epi32(abcd, 0xB1);
    __m128i hgfe = _mm_shuffle_epi32(efgh, 0x1B);
    __m128i s0 = _mm_alignr_epi8(badc, hgfe, 8);    /* F E B A from lane 0 up */
    __m128i s1 = _mm_blend_epi16(hgfe, badc, 0xF0); /* H G D C */
    for (; n; n--, in += 64) {
        __m128i save0 = s0, save1 = s1;
        __m128i m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)in), bswap32);
        __m128i m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(in + 16)), bswap32);
        __m128i m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(in + 32)), bswap32);
        __m128i m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(in + 48)), bswap32);
        QUAD(m0, 0);
        QUAD(m1, 4);
        QUAD(m2, 8);
        QUAD(m3, 12);
        for (int t = 16; t < 64; t += 16) {
            m0 = NEXT(m0, m1, m2, m3);
            QUAD(m0, t);
            m1 = NEXT(m1, m2, m3, m0);
            QUAD(m1, t + 4);
            m2 = NEXT(m2, m3, m0, m1);
            QUAD(m2, t + 8);
            m3 = NEXT(m3, m0, m1, m2);
            QUAD(m3, t + 12);
        }
        s0 = _mm_add_epi32(s0, save0);
        s1 = _mm_add_epi32(s1, save1);
    }
    __m128i abef = _mm_shuffle_epi32(s0, 0x1B); /* A B E F */
    __m128i ghcd = _mm_shuffle_epi32(s1, 0xB1); /* G H C D */
    _mm_storeu_si128((__m128i *)(void *)&s[0], _mm_blend_epi16(abef, ghcd, 0xF0));
    _mm_storeu_si128((__m128i *)(void *)&s[4], _mm_alignr_epi8(ghcd, abef, 8));
}

#endif
