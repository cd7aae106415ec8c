/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* A graph's closure in the server: before a root is set, every hash it
 * reaches must be stored (a root must never name a graph that is not all
 * there). The core's walk (cap_backend_walk) reads the server directly,
 * breadth first, a whole level per read_many when it fits one batch, and
 * finds each blob's children in its wire bytes without decoding it. */
#include "capstore/host.h"
#include "redis_internal.h"

/* Hashes per read_many: a level of the settle_tree graph (65536) in one. */
#define CLOSURE_BATCH 65536u

int redis_check_closure(redis_t *r, const cap_hash_t *roots, size_t nroots, cap_err_t *err)
{
    cap_walk_options_t o = CAP_WALK_OPTIONS_INIT;
    o.batch = CLOSURE_BATCH;
    int rc = cap_backend_walk(&r->table, roots, nroots, &o, cap_alloc_libc(), NULL, NULL, NULL, err);
    if (rc == CAP_EBLOBMISSING && err) err->what = "the root's graph is not complete in the server";
    return rc;
}
