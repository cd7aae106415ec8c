/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Small cap builders shared by the store tests: distinct hashes by number and
 * CNode slot setters that must succeed. */
#ifndef CAPSTORE_TEST_CAPS_H
#define CAPSTORE_TEST_CAPS_H

#include <string.h>

#include "capstore/cap.h"
#include "check.h"

/* A non-zero hash, distinct for every v. */
static inline cap_hash_t test_hash_of(unsigned v)
{
    cap_hash_t h;
    for (int i = 0; i < 32; i++) h.bytes[i] = (uint8_t)(v * 131u + (unsigned)i * 7u + 1u);
    memcpy(h.bytes, &v, sizeof v);
    return h;
}

/* The cap hash of c, which must hash. */
static inline cap_hash_t test_hash_cap(const cap_t *c)
{
    cap_hash_t h;
    memset(&h, 0, sizeof h);
    CHECK_EQ_INT(cap_hash(c, &h), CAP_OK);
    return h;
}

static inline void test_set_hash(cap_t *c, uint32_t slot, const cap_hash_t *h)
{
    cap_target_t t = cap_target_of_hash(h);
    CHECK_EQ_INT(cap_cnode_set(c, slot, &t), CAP_OK);
}

static inline void test_set_hash_of(cap_t *c, uint32_t slot, unsigned v)
{
    cap_hash_t h = test_hash_of(v);
    test_set_hash(c, slot, &h);
}

static inline void test_set_ref(cap_t *c, uint32_t slot, cap_ref_t *r)
{
    cap_target_t t = cap_target_of_ref(r);
    CHECK_EQ_INT(cap_cnode_set(c, slot, &t), CAP_OK);
}

#endif
