/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* cap_store_prefetch against a memory backend seen through a counting
 * wrapper (every read the store makes goes through it):
 *   - a 4-ary tree of depth 6: one read_many per level, each hash asked
 *     once, every cap in memory afterwards and verified;
 *   - a DAG (children shared between parents and levels): each asked once;
 *   - part of the graph already in memory: only the rest is asked;
 *   - a missing child: CAP_EBLOBMISSING naming it, the levels above kept;
 *   - a poisoned blob: CAP_EMISMATCH naming it, not published;
 *   - every allocation failing in turn: an error or success, no leak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_alloc.h"
#include "test_caps.h"
#include "test_rng.h"

static test_rng_t rng = {0xA11CE5EEDull};

typedef struct counting {
    cap_backend_t table;
    cap_backend_t *inner;
    long read_many_calls, singles, items;
} counting_t;

static int c_read(void *ctx, const cap_hash_t *h, const cap_alloc_t *a, uint8_t **b, size_t *n,
                  cap_err_t *e)
{
    counting_t *c = ctx;
    c->singles++;
    return cap_backend_read(c->inner, h, a, b, n, e);
}

static int c_read_many(void *ctx, const cap_hash_t *hs, size_t n, const cap_alloc_t *a, uint8_t **b,
                       size_t *l, int *codes, cap_err_t *e)
{
    counting_t *c = ctx;
    c->read_many_calls++;
    c->items += (long)n;
    return cap_backend_read_many(c->inner, hs, n, a, b, l, codes, e);
}

static int c_write_batch(void *ctx, const cap_backend_item_t *items, size_t n, cap_err_t *e)
{
    counting_t *c = ctx;
    return cap_backend_write_batch(c->inner, items, n, e);
}

static void counting_init(counting_t *c)
{
    memset(c, 0, sizeof *c);
    CHECK_EQ_INT(cap_mem_backend_new(NULL, &c->inner), CAP_OK);
    cap_backend_t t = CAP_BACKEND_INIT;
    t.name = "counting";
    t.ctx = c;
    t.read = c_read;
    t.read_many = c_read_many;
    t.write_batch = c_write_batch;
    c->table = t;
}

static void counting_reset(counting_t *c)
{
    c->read_many_calls = c->singles = c->items = 0;
}

/* A 4-ary tree of `levels` levels written to the backend: leaves are
 * distinct Data caps, inner nodes CNodes of 4 slots. Returns the root;
 * all[] (may be NULL) gets every hash, root first, level by level. */
static cap_hash_t build_tree(const cap_backend_t *b, unsigned levels, cap_hash_t *all, size_t *nall)
{
    size_t width = (size_t)1 << (2 * (levels - 1));
    cap_hash_t *layer = malloc(width * sizeof *layer);
    size_t total = ((size_t)1 << (2 * levels)) / 3; /* (4^levels - 1) / 3 */
    size_t pos = total;
    cap_err_t e;
    for (size_t i = 0; i < width; i++) {
        uint64_t v = test_rng_next(&rng);
        cap_t *d = NULL;
        CHECK_EQ_INT(cap_data_new_inline(&d, cap_alloc_libc(), 32, &v, sizeof v), CAP_OK);
        CHECK_EQ_INT(cap_persist_put(b, d, &layer[i], &e), CAP_OK);
        cap_release(d);
    }
    pos -= width;
    if (all) memcpy(all + pos, layer, width * sizeof *layer);
    while (width > 1) {
        size_t up = width / 4;
        for (size_t i = 0; i < up; i++) {
            cap_t *cn = NULL;
            CHECK_EQ_INT(cap_cnode_new(&cn, cap_alloc_libc(), 2), CAP_OK);
            for (uint32_t k = 0; k < 4; k++) test_set_hash(cn, k, &layer[4 * i + k]);
            CHECK_EQ_INT(cap_persist_put(b, cn, &layer[i], &e), CAP_OK);
            cap_release(cn);
        }
        width = up;
        pos -= width;
        if (all) memcpy(all + pos, layer, width * sizeof *layer);
    }
    if (nall) *nall = total;
    cap_hash_t root = layer[0];
    free(layer);
    return root;
}

static cap_store_t *store_on(const cap_backend_t *b, const cap_alloc_t *a)
{
    cap_store_options_t o = cap_store_options_host();
    if (a) o.alloc = a;
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_OK);
    cap_err_t e;
    CHECK_EQ_INT(cap_store_add_backend(s, b, &e), CAP_OK);
    return s;
}

static void test_tree(void)
{
    counting_t c;
    counting_init(&c);
    enum { LEVELS = 6 };
    cap_hash_t all[1365];
    size_t n;
    cap_hash_t root = build_tree(&c.table, LEVELS, all, &n);
    CHECK_EQ_INT(n, 1365);
    cap_store_t *s = store_on(&c.table, NULL);
    cap_err_t e;
    CHECK_EQ_INT(cap_store_prefetch(s, &root, &e), CAP_OK);
    CHECK_EQ_INT(c.read_many_calls, LEVELS); /* one batch a level */
    CHECK_EQ_INT(c.items, (long)n);          /* each hash once */
    CHECK_EQ_INT(c.singles, 0);
    CHECK_EQ_INT(cap_store_blob_count(s), n);
    for (size_t i = 0; i < n; i++) CHECK(cap_store_contains_blob(s, &all[i]));
    /* Again: all in memory, nothing asked. */
    counting_reset(&c);
    CHECK_EQ_INT(cap_store_prefetch(s, &root, &e), CAP_OK);
    CHECK_EQ_INT(c.read_many_calls + c.singles, 0);
    cap_store_free(s);

    /* Part already in memory (the first two levels and one subtree's
     * leaves): only the rest is asked. */
    s = store_on(&c.table, NULL);
    for (size_t i = 0; i < 5; i++) {
        cap_t *x = NULL;
        CHECK_EQ_INT(cap_store_fetch_blob(s, &all[i], &x, &e), CAP_OK);
        cap_release(x);
    }
    counting_reset(&c);
    CHECK_EQ_INT(cap_store_prefetch(s, &root, &e), CAP_OK);
    CHECK_EQ_INT(c.items, (long)n - 5);
    CHECK_EQ_INT(c.read_many_calls, LEVELS - 2);
    CHECK_EQ_INT(cap_store_blob_count(s), n);
    cap_store_free(s);
    cap_backend_free(c.inner);
}

static void test_dag(void)
{
    counting_t c;
    counting_init(&c);
    cap_err_t e;
    /* Three leaves; two mid nodes sharing two of them; the root names both
     * mids and one leaf directly (a child on two levels). */
    cap_hash_t leaf[3], mid[2], root;
    for (int i = 0; i < 3; i++) {
        cap_t *d = NULL;
        CHECK_EQ_INT(cap_data_new_inline(&d, cap_alloc_libc(), 32, &i, sizeof i), CAP_OK);
        CHECK_EQ_INT(cap_persist_put(&c.table, d, &leaf[i], &e), CAP_OK);
        cap_release(d);
    }
    for (int m = 0; m < 2; m++) {
        cap_t *cn = NULL;
        CHECK_EQ_INT(cap_cnode_new(&cn, cap_alloc_libc(), 3), CAP_OK);
        test_set_hash(cn, 0, &leaf[0]);
        test_set_hash(cn, 1, &leaf[1 + m]);
        test_set_hash(cn, 2, &leaf[0]); /* twice in one cap */
        CHECK_EQ_INT(cap_persist_put(&c.table, cn, &mid[m], &e), CAP_OK);
        cap_release(cn);
    }
    cap_t *cn = NULL;
    CHECK_EQ_INT(cap_cnode_new(&cn, cap_alloc_libc(), 2), CAP_OK);
    test_set_hash(cn, 0, &mid[0]);
    test_set_hash(cn, 1, &mid[1]);
    test_set_hash(cn, 2, &leaf[2]);
    CHECK_EQ_INT(cap_persist_put(&c.table, cn, &root, &e), CAP_OK);
    cap_release(cn);
    cap_store_t *s = store_on(&c.table, NULL);
    CHECK_EQ_INT(cap_store_prefetch(s, &root, &e), CAP_OK);
    CHECK_EQ_INT(c.items, 6);
    CHECK_EQ_INT(c.read_many_calls, 3);
    CHECK_EQ_INT(cap_store_blob_count(s), 6);
    cap_store_free(s);
    cap_backend_free(c.inner);
}

static void test_failures(void)
{
    counting_t c;
    counting_init(&c);
    cap_err_t e;
    cap_hash_t all[85];
    size_t n;
    cap_hash_t root = build_tree(&c.table, 4, all, &n);
    /* A parent naming a hash stored nowhere, beside the tree. */
    cap_hash_t ghost = test_rng_hash(&rng);
    cap_t *cn = NULL;
    CHECK_EQ_INT(cap_cnode_new(&cn, cap_alloc_libc(), 1), CAP_OK);
    test_set_hash(cn, 0, &root);
    test_set_hash(cn, 1, &ghost);
    cap_hash_t top;
    CHECK_EQ_INT(cap_persist_put(&c.table, cn, &top, &e), CAP_OK);
    cap_release(cn);
    cap_store_t *s = store_on(&c.table, NULL);
    CHECK_EQ_INT(cap_store_prefetch(s, &top, &e), CAP_EBLOBMISSING);
    CHECK(e.has_hash && memcmp(e.hash.bytes, ghost.bytes, 32) == 0);
    CHECK(cap_store_contains_blob(s, &top)); /* the level above is kept */
    CHECK(cap_store_contains_blob(s, &root));
    cap_store_free(s);

    /* A blob of the tree replaced by another cap's bytes: refused. */
    cap_t *evil = NULL;
    CHECK_EQ_INT(cap_data_new_inline(&evil, cap_alloc_libc(), 32, "evil", 4), CAP_OK);
    uint8_t *enc;
    size_t en;
    CHECK_EQ_INT(cap_wire_encode_alloc(evil, cap_alloc_libc(), &enc, &en), CAP_OK);
    cap_backend_t *poisoned = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(NULL, &poisoned), CAP_OK);
    /* A memory backend holding the tree, but leaf all[40] poisoned. */
    for (size_t i = 0; i < n; i++) {
        uint8_t *b;
        size_t bl;
        CHECK_EQ_INT(cap_backend_read(c.inner, &all[i], cap_alloc_libc(), &b, &bl, &e), CAP_OK);
        if (i == 40) CHECK_EQ_INT(cap_backend_write(poisoned, &all[i], enc, en, &e), CAP_OK);
        else CHECK_EQ_INT(cap_backend_write(poisoned, &all[i], b, bl, &e), CAP_OK);
        free(b);
    }
    s = store_on(poisoned, NULL);
    CHECK_EQ_INT(cap_store_prefetch(s, &root, &e), CAP_EMISMATCH);
    CHECK(e.has_hash && memcmp(e.hash.bytes, all[40].bytes, 32) == 0);
    CHECK(!cap_store_contains_blob(s, &all[40]));
    cap_store_free(s);
    cap_backend_free(poisoned);
    free(enc);
    cap_release(evil);

    /* Every allocation failing in turn (the store's allocator). */
    static test_alloc_t ta;
    test_alloc_init(&ta);
    bool ok_seen = false;
    for (long k = 1; k < 400 && !ok_seen; k++) {
        s = store_on(&c.table, &ta.alloc);
        test_alloc_fail_at(&ta, k);
        int rc = cap_store_prefetch(s, &root, &e);
        CHECK(rc == CAP_OK || rc == CAP_ENOMEM);
        if (rc == CAP_ENOMEM) CHECK_EQ_INT(e.code, CAP_ENOMEM);
        ok_seen = rc == CAP_OK;
        test_alloc_fail_at(&ta, 0);
        cap_store_free(s);
        CHECK(test_alloc_clean(&ta));
    }
    CHECK(ok_seen);
    CHECK_EQ_INT(cap_store_prefetch(NULL, &root, &e), CAP_EINVAL);
    cap_backend_free(c.inner);
}

int main(void)
{
    test_tree();
    test_dag();
    test_failures();
    return check_done("test_store_prefetch");
}
