/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The core's byte-order helpers (base.h) against byte arrays written out by
 * hand, so they hold on a big-endian target too, and both lowest-set-bit
 * helpers (the de Bruijn one serves only targets without a ctz
 * instruction, so it is checked here on every build). */
#include "base.h"
#include "capstore/cap.h"
#include "check.h"
#include "test_rng.h"

static void check_loads_and_stores(void)
{
    static const uint8_t b[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    CHECK(cap_load_le32(b) == 0x67452301u);
    CHECK(cap_load_le64(b) == 0xefcdab8967452301ull);
    CHECK(cap_load_be32(b) == 0x01234567u);
    CHECK(cap_load_le32(b + 1) == 0x89674523u); /* unaligned */

    uint8_t out[9];
    memset(out, 0, sizeof out);
    cap_store_le32(out + 1, 0x67452301u);
    CHECK_MEM(out + 1, b, 4);
    cap_store_le64(out + 1, 0xefcdab8967452301ull);
    CHECK_MEM(out + 1, b, 8);
    CHECK(out[0] == 0);
    cap_store_be32(out + 1, 0x01234567u);
    CHECK_MEM(out + 1, b, 4);
}

/* The reference: the lowest set bit found by walking up. */
static unsigned ctz_walk(uint64_t v)
{
    unsigned n = 0;
    while (!(v & 1u)) {
        v >>= 1;
        n++;
    }
    return n;
}

static void check_ctz(void)
{
    test_rng_t rng = {0x9e3779b97f4a7c15ull};
    for (unsigned i = 0; i < 64; i++) {
        uint64_t bit = (uint64_t)1 << i;
        CHECK_EQ_INT(cap_ctz64_portable(bit), i);
        CHECK_EQ_INT(cap_ctz64(bit), i);
        /* Bits above the lowest one must not matter. */
        uint64_t v = bit | (test_rng_next(&rng) << i);
        CHECK_EQ_INT(cap_ctz64_portable(v), i);
        CHECK_EQ_INT(cap_ctz64(v), i);
    }
    for (int k = 0; k < 10000; k++) {
        uint64_t v = test_rng_next(&rng) >> (k % 64);
        if (v == 0) continue;
        CHECK_EQ_INT(cap_ctz64_portable(v), ctz_walk(v));
    }
}

int main(void)
{
    check_loads_and_stores();
    check_ctz();
    return check_done("test_byteorder");
}
