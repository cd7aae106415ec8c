/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* cap_store_flush_roots: blobs and roots in one write, the root refused
 * over a graph that exists nowhere (the blobs stay dirty), blobs a
 * collection removed written again from memory, a backend that cannot
 * batch atomically (blobs first, roots second), bad names and backends
 * without roots. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_graph.h"
#include "test_rng.h"

static char dir[256];

static void put_all(cap_store_t *s, const test_graph_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_wire_decode(g->items[i].bytes, g->items[i].n, cap_alloc_libc(), &c, NULL), CAP_OK);
        cap_hash_t h;
        CHECK_EQ_INT(cap_store_put_cap(s, c, &h), CAP_OK);
        cap_release(c);
    }
}

static bool whole(cap_backend_t *b, const cap_hash_t *root)
{
    cap_walk_options_t o = CAP_WALK_OPTIONS_INIT;
    o.flags = CAP_WALK_VERIFY;
    return cap_backend_walk(b, root, 1, &o, cap_alloc_libc(), NULL, NULL, NULL, NULL) == CAP_OK;
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/capstore_test_store_roots_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    char p[512];
    snprintf(p, sizeof p, "%s/s.lmdb", dir);
    cap_lmdb_options_t lo = {CAP_LMDB_NOSYNC, 0, 0, 0};
    cap_backend_t *b = NULL;
    cap_err_t e;
    CHECK_EQ_INT(cap_lmdb_open(p, &lo, &b, &e), CAP_OK);
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new_host(&s), CAP_OK);
    if (!b || !s) return check_done("test_store_roots");
    size_t written = 0;
    cap_backend_root_t r = {"g1", {{0}}};
    CHECK_EQ_INT(cap_store_flush_roots(s, &r, 1, &written, &e), CAP_EBACKEND); /* no backend */
    CHECK_EQ_INT(cap_store_add_backend(s, b, &e), CAP_OK);

    /* Blobs and root in one write. */
    test_graph_t g1, g2, g3;
    test_graph_make(&g1, 31, 120);
    test_graph_make(&g2, 32, 90);
    test_graph_make(&g3, 33, 60);
    put_all(s, &g1);
    r.hash = g1.root;
    CHECK_EQ_INT(cap_store_flush_roots(s, &r, 1, &written, &e), CAP_OK);
    CHECK_EQ_INT(written, g1.n);
    cap_hash_t h;
    CHECK_EQ_INT(cap_backend_root_get(b, "g1", &h, &e), CAP_OK);
    CHECK_MEM(h.bytes, g1.root.bytes, 32);
    CHECK(whole(b, &g1.root));
    CHECK_EQ_INT(cap_store_flush(s, &written, &e), CAP_OK);
    CHECK_EQ_INT(written, 0); /* all clean */

    /* Flushed without a root, collected away; the store still holds them
     * (clean): the root's write brings them back. */
    put_all(s, &g2);
    CHECK_EQ_INT(cap_store_flush(s, &written, &e), CAP_OK);
    CHECK_EQ_INT(written, g2.n);
    cap_lmdb_collect_result_t cr;
    CHECK_EQ_INT(cap_lmdb_collect(b, NULL, 0, NULL, &cr, &e), CAP_OK);
    CHECK_EQ_INT(cr.deleted, g2.n);
    CHECK(!whole(b, &g2.root));
    cap_backend_root_t r2 = {"g2", g2.root};
    CHECK_EQ_INT(cap_store_flush_roots(s, &r2, 1, &written, &e), CAP_OK);
    CHECK_EQ_INT(written, g2.n);
    CHECK(whole(b, &g2.root));
    CHECK_EQ_INT(cap_backend_root_get(b, "g2", &h, &e), CAP_OK);

    /* A graph that names a hash stored nowhere: refused, nothing cleaned. */
    test_rng_t rng = {77};
    cap_hash_t ghost = test_rng_hash(&rng);
    cap_t *cn = NULL;
    cap_cnode_new(&cn, cap_alloc_libc(), 1);
    cap_target_t t = cap_target_of_hash(&ghost);
    cap_cnode_set(cn, 1, &t);
    cap_hash_t hcn;
    CHECK_EQ_INT(cap_store_put_cap(s, cn, &hcn), CAP_OK);
    cap_release(cn);
    cap_backend_root_t r3 = {"ghostly", hcn};
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_store_flush_roots(s, &r3, 1, &written, &e), CAP_EBLOBMISSING);
    CHECK(e.has_hash && memcmp(e.hash.bytes, ghost.bytes, 32) == 0);
    CHECK_EQ_INT(cap_backend_root_get(b, "ghostly", &h, &e), CAP_ENOTFOUND);
    CHECK_EQ_INT(cap_backend_exists(b, &hcn, NULL), CAP_ENOTFOUND); /* not written either */
    CHECK_EQ_INT(cap_store_flush(s, &written, &e), CAP_OK);
    CHECK_EQ_INT(written, 1); /* it stayed dirty */

    /* Names. */
    cap_backend_root_t bad = {"no spaces", g1.root};
    CHECK_EQ_INT(cap_store_flush_roots(s, &bad, 1, &written, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_flush_roots(s, NULL, 1, &written, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_flush_roots(s, NULL, 0, &written, &e), CAP_OK); /* a plain flush */
    cap_store_free(s);

    /* A backend that cannot batch atomically: blobs first, then roots. */
    cap_backend_t *fb = NULL;
    CHECK_EQ_INT(cap_fault_backend_new(b, false, &fb), CAP_OK);
    fb->flags |= CAP_BACKEND_NONATOMIC_BATCH;
    CHECK(cap_backend_has_roots(fb));
    CHECK_EQ_INT(cap_store_new_host(&s), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(s, fb, &e), CAP_OK);
    put_all(s, &g3);
    cap_backend_root_t r4 = {"g3", g3.root};
    CHECK_EQ_INT(cap_store_flush_roots(s, &r4, 1, &written, &e), CAP_OK);
    CHECK_EQ_INT(written, g3.n);
    CHECK(whole(b, &g3.root));
    CHECK_EQ_INT(cap_backend_root_get(b, "g3", &h, &e), CAP_OK);
    cap_store_free(s);
    cap_backend_free(fb);

    /* A backend without roots. */
    cap_backend_t *mem = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(NULL, &mem), CAP_OK);
    CHECK_EQ_INT(cap_store_new_host(&s), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(s, mem, &e), CAP_OK);
    put_all(s, &g3);
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_store_flush_roots(s, &r4, 1, &written, &e), CAP_EBACKEND);
    CHECK(e.what && strstr(e.what, "roots not supported") != NULL);
    cap_store_free(s);
    cap_backend_free(mem);

    cap_backend_free(b);
    test_graph_free(&g1);
    test_graph_free(&g2);
    test_graph_free(&g3);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("test_store_roots");
}
