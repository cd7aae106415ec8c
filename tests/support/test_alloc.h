/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* A checking allocator for tests: counts live blocks and bytes, verifies the
 * size given to reallocate/deallocate matches, and can fail the Nth
 * allocation (fail_at = N, 1-based; 0 = never) to drive every allocation
 * failure path. Thread-safe. */
#ifndef CAPSTORE_TEST_ALLOC_H
#define CAPSTORE_TEST_ALLOC_H

#include <stddef.h>

#include "capstore/common.h"

typedef struct test_alloc {
    cap_alloc_t alloc;       /* pass &ta.alloc to capstore */
    long fail_at;            /* fail the fail_at-th allocation from now (0 = never) */
    long count;              /* allocations attempted since reset */
    long live_blocks;
    long long live_bytes;
    long size_errors;        /* mismatched sizes on free/realloc */
    int fail_all_after;      /* once the fail_at-th failed, keep failing */
    /* If set, called at every allocation (allocate, or reallocate to grow a
     * block) with its size, before the block is made and with no lock of the
     * allocator held: a test runs another caller's operations from there, at
     * a chosen point inside an operation. */
    void (*on_allocate)(void *arg, size_t n);
    void *on_allocate_arg;
} test_alloc_t;

void test_alloc_init(test_alloc_t *ta);
/* Start a new failure round: fail the n-th allocation from now on (0 = never). */
void test_alloc_fail_at(test_alloc_t *ta, long n);
/* True when no block is live and no size was wrong. */
int test_alloc_clean(const test_alloc_t *ta);

#endif
