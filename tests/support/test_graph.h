/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Random closed cap graphs as wire bytes, for the database tests: Data
 * leaves (some past an LMDB page, so in overflow pages) under CNodes that
 * share children, all reachable from one root CNode. */
#ifndef CAPSTORE_TEST_GRAPH_H
#define CAPSTORE_TEST_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "capstore/sys/backend.h"

typedef struct test_graph {
    size_t n;                  /* caps, the root last */
    cap_backend_item_t *items; /* hash and wire bytes (malloc'd) of each */
    cap_hash_t root;
} test_graph_t;

/* About `n` caps (at least 3) from `seed`: graphs of different seeds share
 * nothing. Exits the test on out of memory. */
void test_graph_make(test_graph_t *g, uint64_t seed, size_t n);
void test_graph_free(test_graph_t *g);
/* The index of `h` among g's items, or SIZE_MAX. */
size_t test_graph_find(const test_graph_t *g, const cap_hash_t *h);

#endif
