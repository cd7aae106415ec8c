/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Allocation failure at every allocation of every store operation: the call
 * returns CAP_ENOMEM, the store is exactly as before (counts, blob hashes and
 * caps, each handle's cap and strong count, the caller's refcounts) and,
 * once the store is freed, nothing leaks. Each operation is retried with the
 * n-th allocation failing, n = 1, 2, ... until it succeeds. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "capstore/host.h"
#include "capstore/store.h"
#include "check.h"
#include "test_caps.h"
#include "test_alloc.h"
#include "test_fingerprint.h"

static test_alloc_t ta;
static int use_spin;

#define MAXH 16
#define MAXC 16

typedef struct world {
    cap_store_storage_t storage;
    cap_store_t *s;
    cap_ref_t *h[MAXH];
    size_t nh;
    cap_t *caps[MAXC];
    size_t nc;
    cap_hash_t b1;
    cap_ref_t *root, *shared_edit, *lonely, *inst_root, *chain;
    cap_t *spare; /* a settled cap to put */
    int fresh;    /* in-place store never used */
} world_t;


static cap_t *cn(world_t *w, unsigned size_log, int watch)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, &ta.alloc, size_log), CAP_OK);
    if (watch) w->caps[w->nc++] = c;
    return c;
}

/* Put c as an instance; keep the handle if asked, and drop our cap unless watched. */
static cap_ref_t *put(world_t *w, cap_t *c, int keep_handle, int keep_cap)
{
    cap_ref_t *r = NULL;
    CHECK_EQ_INT(cap_store_put_instance(w->s, c, &r), CAP_OK);
    if (!keep_cap) cap_release(c);
    if (keep_handle) w->h[w->nh++] = r;
    return r;
}

static void world_init(world_t *w, int fresh)
{
    memset(w, 0, sizeof *w);
    cap_store_options_t o;
    memset(&o, 0, sizeof o);
    o.alloc = &ta.alloc;
    o.locks = use_spin ? NULL : cap_lock_pthread();
    o.hash_seed[0] = 42;
    o.hash_seed[1] = 4242;
    CHECK_EQ_INT(cap_store_init_in_place(&w->storage, &o, &w->s), CAP_OK);
    w->fresh = fresh;
    w->spare = cn(w, 3, 1);
    test_set_hash_of(w->spare, 5, 500);
    if (fresh) return;

    cap_t *b = cn(w, 3, 1);
    test_set_hash_of(b, 1, 1);
    CHECK_EQ_INT(cap_store_put_cap(w->s, b, &w->b1), CAP_OK);

    /* Settle graph: root -> {mid -> leaf, data, inst -> leaf2, shared}, mid -> shared. */
    cap_t *leaf = cn(w, 2, 0);
    test_set_hash_of(leaf, 0, 10);
    cap_ref_t *lr = put(w, leaf, 0, 0);
    cap_t *sh = cn(w, 2, 0);
    test_set_hash_of(sh, 3, 11);
    cap_ref_t *shr = put(w, sh, 0, 0);
    cap_t *mid = cn(w, 3, 1);
    test_set_ref(mid, 0, lr);
    test_set_ref(mid, 7, shr);
    cap_ref_t *mr = put(w, mid, 1, 1);
    cap_t *data = NULL;
    CHECK_EQ_INT(cap_data_new_inline(&data, &ta.alloc, 32, "0123456789abcdef0123456789abcdefXYZ", 35),
                 CAP_OK);
    cap_ref_t *dr = put(w, data, 0, 0);
    cap_t *leaf2 = cn(w, 1, 0);
    test_set_hash_of(leaf2, 1, 12);
    cap_ref_t *l2r = put(w, leaf2, 0, 0);
    cap_target_t t = cap_target_of_ref(l2r);
    cap_t *inst = NULL;
    CHECK_EQ_INT(cap_instance_new(&inst, &ta.alloc, &t), CAP_OK);
    w->inst_root = put(w, inst, 1, 0);
    cap_t *root = cn(w, 4, 0);
    test_set_ref(root, 0, mr);
    test_set_ref(root, 1, dr);
    test_set_ref(root, 2, w->inst_root);
    test_set_ref(root, 3, shr);
    w->root = put(w, root, 1, 0);
    cap_ref_release(lr);
    cap_ref_release(shr);
    cap_ref_release(dr);
    cap_ref_release(l2r);

    /* An entry whose cap the caller also holds (edits copy) and one only the store holds. */
    cap_t *e = cn(w, 2, 1);
    test_set_hash_of(e, 2, 20);
    w->shared_edit = put(w, e, 1, 1);
    w->lonely = put(w, cn(w, 2, 0), 1, 0);

    /* A chain of 300 (settle's arrays and map grow several times). */
    cap_ref_t *next = NULL;
    for (unsigned i = 0; i < 300; i++) {
        cap_t *c = cn(w, 1, 0);
        test_set_hash_of(c, 1, 1000 + i);
        if (next) {
            test_set_ref(c, 0, next);
            cap_ref_release(next);
        }
        next = put(w, c, 0, 0);
    }
    w->chain = next;
    w->h[w->nh++] = next;

    /* A dead chain of 10 for sweep (its head released: unswept). */
    next = NULL;
    for (unsigned i = 0; i < 10; i++) {
        cap_t *c = cn(w, 1, 0);
        if (next) {
            test_set_ref(c, 0, next);
            cap_ref_release(next);
        }
        next = put(w, c, 0, 0);
    }
    cap_ref_release(next);
}

static void world_free(world_t *w)
{
    for (size_t i = 0; i < w->nh; i++) cap_ref_release(w->h[i]);
    for (size_t i = 0; i < w->nc; i++) cap_release(w->caps[i]);
    cap_store_free(w->s);
    CHECK(test_alloc_clean(&ta));
}

static test_watch_t watch(const world_t *w)
{
    return (test_watch_t){w->s, w->h, w->nh, w->caps, w->nc};
}

/* The operations -------------------------------------------------------------------------- */

typedef int (*op_fn)(world_t *w);

static int op_put_cap(world_t *w)
{
    cap_hash_t h;
    return cap_store_put_cap(w->s, w->spare, &h);
}

static int op_put_instance(world_t *w)
{
    cap_ref_t *r = NULL;
    int rc = cap_store_put_instance(w->s, w->spare, &r);
    if (rc == CAP_OK) {
        CHECK(r != NULL);
        w->h[w->nh++] = r;
    } else {
        CHECK(r == NULL);
    }
    return rc;
}

static int op_promote(world_t *w)
{
    cap_ref_t *r = NULL;
    int rc = cap_store_promote_blob_to_instance(w->s, &w->b1, &r);
    if (rc == CAP_OK) w->h[w->nh++] = r;
    return rc;
}

static int op_set_instance(world_t *w)
{
    return cap_store_set_instance(w->s, w->lonely, w->spare, NULL);
}

static int edit_slot(cap_t *c, void *arg)
{
    (void)arg;
    cap_hash_t h = test_hash_of(321);
    cap_target_t t = cap_target_of_hash(&h);
    return cap_cnode_set(c, 0, &t);
}

static int op_edit_copy(world_t *w)
{
    return cap_store_edit_instance(w->s, w->shared_edit, edit_slot, NULL, NULL);
}

static int op_settle_root(world_t *w)
{
    cap_target_t t = cap_target_of_ref(w->root);
    cap_hash_t h;
    int rc = cap_store_settle(w->s, &t, &h, NULL);
    if (rc == CAP_OK) {
        CHECK(cap_store_contains_blob(w->s, &h));
        cap_t *g = NULL;
        CHECK_EQ_INT(cap_store_get_instance(w->s, w->inst_root, &g), CAP_OK); /* stays */
        CHECK(g && !cap_has_refs(g));
        cap_release(g);
    }
    return rc;
}

static int op_settle_chain(world_t *w)
{
    cap_target_t t = cap_target_of_ref(w->chain);
    cap_hash_t h;
    size_t before = cap_store_instance_count(w->s);
    int rc = cap_store_settle(w->s, &t, &h, NULL);
    if (rc == CAP_OK) CHECK_EQ_INT(cap_store_instance_count(w->s), before - 300);
    return rc;
}

static int op_iter(world_t *w)
{
    cap_blob_entry_t *e = NULL;
    size_t n = 0;
    int rc = cap_store_iter_blobs(w->s, &e, &n);
    if (rc == CAP_OK) {
        CHECK(n == cap_store_blob_count(w->s));
        cap_store_blobs_free(w->s, e, n);
    } else {
        CHECK(e == NULL && n == 0);
    }
    return rc;
}

static int op_iter_sorted(world_t *w)
{
    cap_blob_entry_t *e = NULL;
    size_t n = 0;
    int rc = cap_store_iter_blobs_sorted(w->s, &e, &n);
    if (rc == CAP_OK) cap_store_blobs_free(w->s, e, n);
    return rc;
}

static int op_sweep(world_t *w)
{
    size_t removed = 0;
    int rc = cap_store_sweep_instances(w->s, &removed);
    if (rc == CAP_OK) CHECK_EQ_INT(removed, 10);
    return rc;
}

/* Run `op` failing its n-th allocation for n = 1.. until it succeeds. */
static void exhaust(const char *name, op_fn op, int fresh, int must_allocate)
{
    long n;
    int bad_rc = 0, changed = 0;
    for (n = 1; n < 100000; n++) {
        world_t w;
        world_init(&w, fresh);
        test_fingerprint_t before;
        test_watch_t wt = watch(&w);
        test_fp_take(&wt, &before);
        test_alloc_fail_at(&ta, n);
        int rc = op(&w);
        test_alloc_fail_at(&ta, 0);
        wt = watch(&w); /* the same store, handles and caps */
        if (rc == CAP_OK) {
            test_fp_drop(&wt, &before);
            world_free(&w);
            break;
        }
        if (rc != CAP_ENOMEM) bad_rc++;
        if (!test_fp_same(&wt, &before)) changed++;
        test_fp_drop(&wt, &before);
        world_free(&w);
    }
    CHECK_EQ_INT(bad_rc, 0);
    CHECK_EQ_INT(changed, 0);
    if (must_allocate) CHECK(n > 1);
    printf("%-24s %-7s locks: succeeded at allocation %ld%s\n", name, use_spin ? "spin" : "pthread",
           n, (bad_rc || changed || (must_allocate && n <= 1)) ? "  <-- FAILED" : "");
}

/* Growth of a blob table: many puts, each with its first allocation failing. */
static void test_put_growth(void)
{
    world_t w;
    world_init(&w, 0);
    int enomem = 0, ok = 1;
    for (unsigned i = 0; i < 3000 && ok; i++) {
        cap_t *c = cn(&w, 4, 0);
        test_set_hash_of(c, i % 16, 5000 + i);
        size_t count = cap_store_blob_count(w.s);
        test_alloc_fail_at(&ta, 1);
        int rc = cap_store_put_cap(w.s, c, NULL);
        test_alloc_fail_at(&ta, 0);
        if (rc == CAP_ENOMEM) {
            enomem++;
            cap_hash_t h;
            CHECK_EQ_INT(cap_hash(c, &h), CAP_OK);
            if (cap_store_blob_count(w.s) != count || cap_store_contains_blob(w.s, &h) ||
                cap_is_frozen(c))
                ok = 0;
            rc = cap_store_put_cap(w.s, c, NULL);
        }
        if (rc != CAP_OK || cap_store_blob_count(w.s) != count + 1) ok = 0;
        cap_release(c);
    }
    CHECK(ok);
    CHECK(enomem > 0); /* some puts had to grow their shard's table */
    world_free(&w);
}

static void test_new(void)
{
    cap_store_options_t o;
    memset(&o, 0, sizeof o);
    o.alloc = &ta.alloc;
    cap_store_t *s = (cap_store_t *)1;
    test_alloc_fail_at(&ta, 1);
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_ENOMEM);
    test_alloc_fail_at(&ta, 0);
    CHECK(s == NULL);
    CHECK(test_alloc_clean(&ta));
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_OK);
    cap_store_free(s);
    CHECK(test_alloc_clean(&ta));
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_alloc_init(&ta);
    test_new();
    for (use_spin = 0; use_spin < 2; use_spin++) {
        exhaust("first-use put_cap", op_put_cap, 1, 1);
        exhaust("first-use put_instance", op_put_instance, 1, 1);
        exhaust("put_cap", op_put_cap, 0, 0);
        exhaust("put_instance", op_put_instance, 0, 1);
        exhaust("promote", op_promote, 0, 1);
        exhaust("set_instance", op_set_instance, 0, 0);
        exhaust("edit_instance (copy)", op_edit_copy, 0, 1);
        exhaust("settle graph", op_settle_root, 0, 1);
        exhaust("settle chain", op_settle_chain, 0, 1);
        exhaust("iter_blobs", op_iter, 0, 1);
        exhaust("iter_blobs_sorted", op_iter_sorted, 0, 1);
        exhaust("sweep", op_sweep, 0, 0);
        test_put_growth();
    }
    return check_done("test_store_alloc");
}
