/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The benchmarks' generator (xorshift64*, spec section 6) for tests: fixed
 * seeds make every random test reproducible. */
#ifndef CAPSTORE_TEST_RNG_H
#define CAPSTORE_TEST_RNG_H

#include <stdint.h>
#include <string.h>

#include "capstore/common.h"

typedef struct test_rng {
    uint64_t state; /* never 0 */
} test_rng_t;

static inline uint64_t test_rng_next(test_rng_t *r)
{
    uint64_t x = r->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static inline uint64_t test_rng_below(test_rng_t *r, uint64_t n)
{
    return n ? test_rng_next(r) % n : 0;
}

static inline void test_rng_bytes(test_rng_t *r, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)test_rng_next(r);
}

/* A random hash, never all zero (zero is no target). */
static inline cap_hash_t test_rng_hash(test_rng_t *r)
{
    cap_hash_t h;
    for (int i = 0; i < 4; i++) {
        uint64_t v = test_rng_next(r);
        memcpy(h.bytes + 8 * i, &v, 8);
    }
    if (cap_hash_is_zero(&h)) h.bytes[0] = 1;
    return h;
}

#endif
