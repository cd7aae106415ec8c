/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The SHA-NI kernel functions, included twice by sha256_shani.c (once per
 * instruction encoding) after the macros they are written in. The includer
 * defines SHANI_TARGET (the functions' target attribute), SHANI_FN(name)
 * (a name of this encoding's copy) and SHANI_ENTRY (the kernel's entry). */

static SHANI_TARGET void SHANI_FN(group4)(uint8_t *out, const uint8_t *in) { GROUP(FOR4) }
static SHANI_TARGET void SHANI_FN(group3)(uint8_t *out, const uint8_t *in) { GROUP(FOR3) }
static SHANI_TARGET void SHANI_FN(group2)(uint8_t *out, const uint8_t *in) { GROUP(FOR2) }
static SHANI_TARGET void SHANI_FN(group1)(uint8_t *out, const uint8_t *in) { GROUP(FOR1) }

/* `groups` groups of four nodes. Group g + 1's inputs are read during group
 * g, before group g's digests are stored; with out == in those digests land
 * at or below group g's own inputs, so in-place use stays safe. */
static SHANI_TARGET void SHANI_FN(stream4)(uint8_t *out, const uint8_t *in, size_t groups)
{
    SHANI_CONSTS
    _Alignas(16) uint32_t wk[2][4 * 64];
    __m128i x0, x1, x2, x3;
    {
        uint32_t *nx = wk[0];
        const uint8_t *nin = in;
        FOR4(X_NODE, _)
    }
    for (size_t g = 0; g < groups; g++, in += 256, out += 128) {
        const uint32_t *cu = wk[g & 1];
        uint32_t *nx = wk[(g + 1) & 1];
        /* The last group schedules itself once more, unused: cheaper than a
         * second copy of the loop body. */
        const uint8_t *nin = g + 1 < groups ? in + 256 : in;
        __m128i s0_0, s1_0, s0_1, s1_1, s0_2, s1_2, s0_3, s1_3;
        __m128i h0_0, h1_0, h0_1, h1_1, h0_2, h1_2, h0_3, h1_3;
        FOR4(S_INIT, _)
        B1(0, X0(0)) B1(1, X1(0)) B1(2, X2(0)) B1(3, X3(0))
        B1(4, X4(0)) B1(5, X5(0)) B1(6, X6(0)) B1(7, X7(0))
        B1(8, X0(1)) B1(9, X1(1)) B1(10, X2(1)) B1(11, X3(1))
        B1(12, X4(1)) B1(13, X5(1)) B1(14, X6(1)) B1(15, X7(1))
        FOR4(MID, _)
        B2(0, X0(2)) B2(1, X1(2)) B2(2, X2(2)) B2(3, X3(2))
        B2(4, X4(2)) B2(5, X5(2)) B2(6, X6(2)) B2(7, X7(2))
        B2(8, X0(3)) B2(9, X1(3)) B2(10, X2(3)) B2(11, X3(3))
        B2(12, X4(3)) B2(13, X5(3)) B2(14, X6(3)) B2(15, X7(3))
        FOR4(STORE, _)
    }
}

void SHANI_ENTRY(uint8_t *out, const uint8_t *in, size_t n)
{
    /* Tails: a group of k costs about max(k, 2) node times (two nodes in
     * flight cover the round latency), so 3 nodes go as one group of three
     * and 5 as 3 + 2 rather than 4 + 1. */
    size_t groups = n / 4, tail = n % 4;
    if (tail == 1 && groups) {
        groups--;
        tail = 5;
    }
    if (groups >= STREAM_MIN_GROUPS) {
        SHANI_FN(stream4)(out, in, groups);
    } else {
        for (size_t g = 0; g < groups; g++) SHANI_FN(group4)(out + 128 * g, in + 256 * g);
    }
    size_t i = 4 * groups;
    out += 32 * i;
    in += 64 * i;
    switch (tail) {
    case 5:
        SHANI_FN(group3)(out, in);
        SHANI_FN(group2)(out + 96, in + 192);
        break;
    case 3:
        SHANI_FN(group3)(out, in);
        break;
    case 2:
        SHANI_FN(group2)(out, in);
        break;
    case 1:
        SHANI_FN(group1)(out, in);
        break;
    default:
        break;
    }
}

