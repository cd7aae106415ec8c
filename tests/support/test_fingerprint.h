/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* A fingerprint of a store, to check that a call that failed left it as it
 * was: the counts, every blob (hash and cap), each watched handle's lookup
 * result, cap and strong count, each watched cap's reference count and frozen
 * state. Shared by the error-path and allocation-failure tests. */
#ifndef CAPSTORE_TEST_FINGERPRINT_H
#define CAPSTORE_TEST_FINGERPRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capstore/store.h"

#define TEST_FP_MAXH 16
#define TEST_FP_MAXC 24

/* What a test watches: its store, the handles and the caller-held caps. */
typedef struct test_watch {
    cap_store_t *s;
    cap_ref_t *const *h;
    size_t nh;
    cap_t *const *caps;
    size_t nc;
} test_watch_t;

typedef struct test_fingerprint {
    size_t blobs, instances;
    cap_blob_entry_t *entries;
    size_t n;
    cap_t *inst[TEST_FP_MAXH];
    int inst_rc[TEST_FP_MAXH];
    uint64_t strong[TEST_FP_MAXH];
    uint32_t refs[TEST_FP_MAXC];
    int frozen[TEST_FP_MAXC];
} test_fingerprint_t;

/* Take one (it holds references until test_fp_drop). */
void test_fp_take(const test_watch_t *w, test_fingerprint_t *p);
void test_fp_drop(const test_watch_t *w, test_fingerprint_t *p);
/* Whether the store is as `before` describes (the references `before` holds
 * are not counted); prints what differs on stderr. */
bool test_fp_same(const test_watch_t *w, const test_fingerprint_t *before);

#endif
