/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* SHA-256 of 64-byte inputs with the x86 SHA extensions.
 *
 * sha256rnds2 issues every cycle but has a latency of about four, and one
 * node's 64 calls form a single dependency chain, so the kernel keeps four
 * independent nodes in flight. Two shapes:
 *
 * - a plain group of 4, 2 or 1 nodes (short batches and tails), each node
 *   expanding its own message schedule between its rounds;
 * - a pipelined stream of groups of 4 for long batches: while the rounds of
 *   group g run, the message schedule (W + K) of group g+1 is computed into a
 *   small stack buffer. The rounds then need only the two state registers per
 *   node, nothing spills, and the schedule work fills the other FP pipes
 *   instead of delaying the round chains.
 *
 * The second block of every node is the constant padding block; its W + K is
 * the precomputed cap_sha256_pad_wk. Only the functions here are compiled
 * for the SHA target, so the rest of the build needs no -msha; they are
 * written once (sha256_shani_kernels.h) and compiled twice, with the legacy
 * SSE and with the VEX (AVX) encoding (see the end of this file). */
#include "sha256/sha256_internal.h"

#if CAP_SHA256_HAVE_SHANI

#include <immintrin.h>

/* The SHA instructions keep the state as ABEF and CDGH (lane 3 holds the
 * first letter). The initial value in that layout. */
static _Alignas(16) const uint32_t iv_abef[4] = {0x9b05688cu, 0x510e527fu, 0xbb67ae85u, 0x6a09e667u};
static _Alignas(16) const uint32_t iv_cdgh[4] = {0x5be0cd19u, 0x1f83d9abu, 0xa54ff53au, 0x3c6ef372u};

/* Four K[t] or padding W[t] + K[t], from round 4 * i. */
#define K4(i) _mm_load_si128((const __m128i *)&cap_sha256_k[4 * (i)])
#define PAD4(i) _mm_load_si128((const __m128i *)&cap_sha256_pad_wk[4 * (i)])
/* sha256rnds2 reads only the low two words of its message operand: the
 * upper pair of a quad can be loaded as 8 bytes instead of shuffled. */
#define PAD2_HI(i) _mm_loadl_epi64((const __m128i *)&cap_sha256_pad_wk[4 * (i) + 2])

#define LOADU(p) _mm_loadu_si128((const __m128i *)(const void *)(p))
#define STOREU(p, v) _mm_storeu_si128((__m128i *)(void *)(p), (v))

/* Lane expansion: M(lane, args...) once per node of the group. Written out
 * rather than looped so each node's values have their own variables (no
 * arrays for the compiler to keep in memory) whatever the compiler. */
#define FOR4(M, ...) M(0, __VA_ARGS__) M(1, __VA_ARGS__) M(2, __VA_ARGS__) M(3, __VA_ARGS__)
#define FOR3(M, ...) M(0, __VA_ARGS__) M(1, __VA_ARGS__) M(2, __VA_ARGS__)
#define FOR2(M, ...) M(0, __VA_ARGS__) M(1, __VA_ARGS__)
#define FOR1(M, ...) M(0, __VA_ARGS__)

/* Byte orders: SHA-256 words are big-endian; the digest comes out of
 * (CDGH hi, ABEF hi) = D C B A from lane 0 up, so one 16-byte reversal gives
 * the bytes of A, B, C, D in order (likewise the low halves, E..H). */
#define SHANI_CONSTS                                                                              \
    const __m128i bswap32 = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);   \
    const __m128i rev128 = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);    \
    const __m128i iv0 = _mm_load_si128((const __m128i *)iv_abef);                                 \
    const __m128i iv1 = _mm_load_si128((const __m128i *)iv_cdgh);

/* W[t+16..t+19] from W[t..t+15] held in a, b, c, d (four words each). */
#define SCHEDULE(a, b, c, d)                                                                      \
    _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(a, b), _mm_alignr_epi8(d, c, 4)), d)

/* After block 1: add the initial value, keep the sum for block 2's
 * feed-forward. */
#define MID(l, _)                                                                                 \
    s0_##l = h0_##l = _mm_add_epi32(s0_##l, iv0);                                                 \
    s1_##l = h1_##l = _mm_add_epi32(s1_##l, iv1);

#define STORE(l, _)                                                                               \
    {                                                                                             \
        __m128i abef_ = _mm_add_epi32(s0_##l, h0_##l), cdgh_ = _mm_add_epi32(s1_##l, h1_##l);     \
        STOREU(out + 32 * l, _mm_shuffle_epi8(_mm_unpackhi_epi64(cdgh_, abef_), rev128));         \
        STOREU(out + 32 * l + 16, _mm_shuffle_epi8(_mm_unpacklo_epi64(cdgh_, abef_), rev128));    \
    }

/* ---- Plain groups ------------------------------------------------------------------- */

#define G_DECL(l, _) __m128i s0_##l, s1_##l, h0_##l, h1_##l, m0_##l, m1_##l, m2_##l, m3_##l;
#define G_LOAD(l, _)                                                                              \
    m0_##l = _mm_shuffle_epi8(LOADU(in + 64 * l), bswap32);                                       \
    m1_##l = _mm_shuffle_epi8(LOADU(in + 64 * l + 16), bswap32);                                  \
    m2_##l = _mm_shuffle_epi8(LOADU(in + 64 * l + 32), bswap32);                                  \
    m3_##l = _mm_shuffle_epi8(LOADU(in + 64 * l + 48), bswap32);                                  \
    s0_##l = iv0;                                                                                 \
    s1_##l = iv1;
#define G_QUAD(l, wk)                                                                             \
    {                                                                                             \
        __m128i wk_ = (wk);                                                                       \
        s1_##l = _mm_sha256rnds2_epu32(s1_##l, s0_##l, wk_);                                      \
        s0_##l = _mm_sha256rnds2_epu32(s0_##l, s1_##l, _mm_shuffle_epi32(wk_, 0x0E));             \
    }
/* Quad k on message words m_a; G_SCHED first replaces m_a by the words four
 * quads later. */
#define G_MSG(l, a, k) G_QUAD(l, _mm_add_epi32(m##a##_##l, K4(k)))
#define G_SCHED(l, a, b, c, d, k)                                                                 \
    m##a##_##l = SCHEDULE(m##a##_##l, m##b##_##l, m##c##_##l, m##d##_##l);                        \
    G_MSG(l, a, k)
#define G_SCHED4(FOR, k)                                                                          \
    FOR(G_SCHED, 0, 1, 2, 3, k) FOR(G_SCHED, 1, 2, 3, 0, k + 1)                                   \
    FOR(G_SCHED, 2, 3, 0, 1, k + 2) FOR(G_SCHED, 3, 0, 1, 2, k + 3)
#define G_PAD(l, q) G_QUAD(l, PAD4(q))

/* Hash the nodes FOR names, in[0..] -> out[0..]. Every input is loaded before
 * any digest is stored, so out == in is safe. */
#define GROUP(FOR)                                                                                \
    SHANI_CONSTS                                                                                  \
    FOR(G_DECL, _)                                                                                \
    FOR(G_LOAD, _)                                                                                \
    FOR(G_MSG, 0, 0) FOR(G_MSG, 1, 1) FOR(G_MSG, 2, 2) FOR(G_MSG, 3, 3)                           \
    G_SCHED4(FOR, 4) G_SCHED4(FOR, 8) G_SCHED4(FOR, 12)                                           \
    FOR(MID, _)                                                                                   \
    FOR(G_PAD, 0) FOR(G_PAD, 1) FOR(G_PAD, 2) FOR(G_PAD, 3)                                       \
    FOR(G_PAD, 4) FOR(G_PAD, 5) FOR(G_PAD, 6) FOR(G_PAD, 7)                                       \
    FOR(G_PAD, 8) FOR(G_PAD, 9) FOR(G_PAD, 10) FOR(G_PAD, 11)                                     \
    FOR(G_PAD, 12) FOR(G_PAD, 13) FOR(G_PAD, 14) FOR(G_PAD, 15)                                   \
    FOR(STORE, _)

/* ---- The pipelined stream ------------------------------------------------------------- */

/* Scheduling node l of the next group (input nin) into nx[64 * l + t]
 * = W[t] + K[t], in sixteen steps (four loads, twelve expansions) on the
 * registers x0..x3; the nodes are scheduled one after the other. */
#define X_LOAD(l, a)                                                                              \
    x##a = _mm_shuffle_epi8(LOADU(nin + 64 * l + 16 * a), bswap32);                               \
    _mm_store_si128((__m128i *)&nx[64 * l + 4 * a], _mm_add_epi32(x##a, K4(a)));
#define X_SCHED(l, a, b, c, d, q)                                                                 \
    x##a = SCHEDULE(x##a, x##b, x##c, x##d);                                                      \
    _mm_store_si128((__m128i *)&nx[64 * l + 4 * (q)], _mm_add_epi32(x##a, K4(q)));
/* The sixteen steps in eight slices of two, spread over the 32 quads of a
 * group's rounds: nodes 0 and 1 during block 1, nodes 2 and 3 during block 2. */
#define X0(l) X_LOAD(l, 0) X_LOAD(l, 1)
#define X1(l) X_LOAD(l, 2) X_LOAD(l, 3)
#define X2(l) X_SCHED(l, 0, 1, 2, 3, 4) X_SCHED(l, 1, 2, 3, 0, 5)
#define X3(l) X_SCHED(l, 2, 3, 0, 1, 6) X_SCHED(l, 3, 0, 1, 2, 7)
#define X4(l) X_SCHED(l, 0, 1, 2, 3, 8) X_SCHED(l, 1, 2, 3, 0, 9)
#define X5(l) X_SCHED(l, 2, 3, 0, 1, 10) X_SCHED(l, 3, 0, 1, 2, 11)
#define X6(l) X_SCHED(l, 0, 1, 2, 3, 12) X_SCHED(l, 1, 2, 3, 0, 13)
#define X7(l) X_SCHED(l, 2, 3, 0, 1, 14) X_SCHED(l, 3, 0, 1, 2, 15)
#define X_NODE(l, _) X0(l) X1(l) X2(l) X3(l) X4(l) X5(l) X6(l) X7(l)

/* Rounds from the buffer (block 1) and from the padding table (block 2):
 * first the low pair of every node, then the high pair, so four independent
 * sha256rnds2 sit between two dependent ones. */
#define S_LO1(l, q) s1_##l = _mm_sha256rnds2_epu32(s1_##l, s0_##l, _mm_load_si128((const __m128i *)&cu[64 * l + 4 * (q)]));
#define S_HI1(l, q) s0_##l = _mm_sha256rnds2_epu32(s0_##l, s1_##l, _mm_loadl_epi64((const __m128i *)&cu[64 * l + 4 * (q) + 2]));
#define S_LO2(l, q) s1_##l = _mm_sha256rnds2_epu32(s1_##l, s0_##l, PAD4(q));
#define S_HI2(l, q) s0_##l = _mm_sha256rnds2_epu32(s0_##l, s1_##l, PAD2_HI(q));
#define B1(q, x) FOR4(S_LO1, q) x FOR4(S_HI1, q)
#define B2(q, x) FOR4(S_LO2, q) x FOR4(S_HI2, q)
#define S_INIT(l, _)                                                                              \
    s0_##l = iv0;                                                                                 \
    s1_##l = iv1;

/* Below this many groups the stream's unoverlapped first schedule costs more
 * than it saves (measured on Zen 3). */
#define STREAM_MIN_GROUPS 4

/* The kernels, compiled twice. The legacy SSE encoding runs on every CPU
 * with the SHA extensions (some, such as Goldmont, have no AVX). The VEX
 * encoding of the same code has three-operand forms, so the register copies
 * that the destructive SSE forms need go: about 12% fewer instructions per
 * node. That is free while the SHA unit is the limit, and worth about 10%
 * when the core's front end is shared (a busy SMT sibling). */
#define SHANI_TARGET __attribute__((target("sha,sse4.1,ssse3")))
#define SHANI_FN(name) name##_sse
#define SHANI_ENTRY cap_sha256_nodes_shani
#include "sha256/sha256_shani_kernels.h"
#undef SHANI_TARGET
#undef SHANI_FN
#undef SHANI_ENTRY

#define SHANI_TARGET __attribute__((target("sha,sse4.1,ssse3,avx")))
#define SHANI_FN(name) name##_avx
#define SHANI_ENTRY cap_sha256_nodes_shani_avx
#include "sha256/sha256_shani_kernels.h"
#undef SHANI_TARGET
#undef SHANI_FN
#undef SHANI_ENTRY

#endif
