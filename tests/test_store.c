/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The store, one test per documented behaviour of the seed (cache.rs) and of
 * store.h. Every test runs twice: with the pthread lock hooks and with the
 * core's built-in spin lock; all allocation goes through the counting test
 * allocator, which must be clean at the end of each test. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "capstore/host.h"
#include "capstore/store.h"
#include "check.h"
#include "test_caps.h"
#include "test_alloc.h"

static test_alloc_t ta;
static int use_spin; /* 0: pthread hooks, 1: built-in spin lock */

static cap_store_options_t opts(void)
{
    cap_store_options_t o;
    memset(&o, 0, sizeof o);
    o.alloc = &ta.alloc;
    o.locks = use_spin ? NULL : cap_lock_pthread();
    o.hash_seed[0] = 0x0123456789abcdefull;
    o.hash_seed[1] = 0xfedcba9876543210ull;
    return o;
}

static cap_store_t *new_store(void)
{
    cap_store_options_t o = opts();
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_OK);
    return s;
}

static cap_t *cnode(unsigned size_log)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, &ta.alloc, size_log), CAP_OK);
    return c;
}

/* A cnode with one hash slot (distinct content per v). */
static cap_t *leaf(unsigned v)
{
    cap_t *c = cnode(4);
    cap_hash_t h = test_hash_of(v);
    test_set_hash(c, v % 16, &h);
    return c;
}

static cap_ref_t *put_inst(cap_store_t *s, cap_t *c)
{
    cap_ref_t *r = NULL;
    CHECK_EQ_INT(cap_store_put_instance(s, c, &r), CAP_OK);
    return r;
}

static void end_test(cap_store_t *s)
{
    cap_store_free(s);
    CHECK(test_alloc_clean(&ta));
}

/* ------------------------------------------------------------------------------------------ */

static void test_put_get_counts(void)
{
    cap_store_t *s = new_store();
    cap_t *a = leaf(1), *b = leaf(2), *got = NULL;
    cap_hash_t ha, hb, hx = test_hash_of(99);
    CHECK_EQ_INT(cap_store_blob_count(s), 0);
    CHECK_EQ_INT(cap_store_get_blob(s, &hx, &got), CAP_EBLOBMISSING);
    CHECK(got == NULL);
    CHECK_EQ_INT(cap_store_put_cap(s, a, &ha), CAP_OK);
    CHECK_EQ_INT(cap_store_put_cap(s, b, &hb), CAP_OK);
    CHECK_MEM(ha.bytes, test_hash_cap(a).bytes, 32);
    CHECK_EQ_INT(cap_store_blob_count(s), 2);
    CHECK_EQ_INT(cap_store_instance_count(s), 0);
    CHECK(cap_store_contains_blob(s, &ha));
    CHECK(!cap_store_contains_blob(s, &hx));
    CHECK_EQ_INT(cap_store_get_blob(s, &ha, &got), CAP_OK);
    CHECK(got == a); /* the store keeps the caller's cap: no copy */
    CHECK_EQ_INT(cap_refcount(a), 3);
    cap_release(got);
    cap_target_t t = cap_target_of_hash(&hb);
    CHECK_EQ_INT(cap_store_get(s, &t, &got), CAP_OK);
    CHECK(got == b);
    cap_release(got);
    /* Publishing freezes: a blob never changes under its hash. */
    CHECK(cap_is_frozen(a));
    CHECK_EQ_INT(cap_cnode_set(a, 0, &t), CAP_EBUSY);
    cap_release(a);
    cap_release(b);
    end_test(s);
}

static void test_reput_idempotent(void)
{
    cap_store_t *s = new_store();
    cap_t *a = leaf(5), *a2 = leaf(5), *got = NULL;
    cap_hash_t h1, h2;
    CHECK_EQ_INT(cap_store_put_cap(s, a, &h1), CAP_OK);
    CHECK_EQ_INT(cap_store_put_cap(s, a2, &h2), CAP_OK);
    CHECK_MEM(h1.bytes, h2.bytes, 32);
    CHECK_EQ_INT(cap_store_blob_count(s), 1);
    CHECK_EQ_INT(cap_store_get_blob(s, &h1, &got), CAP_OK);
    CHECK(got == a); /* the first cap is kept */
    cap_release(got);
    CHECK_EQ_INT(cap_refcount(a2), 1); /* the store took no reference to the second */
    CHECK_EQ_INT(cap_store_put_cap_with_hash(s, &h1, a2), CAP_OK);
    CHECK_EQ_INT(cap_store_blob_count(s), 1);
    CHECK_EQ_INT(cap_refcount(a2), 1);
    cap_release(a);
    cap_release(a2);
    end_test(s);
}

static void test_put_with_hash(void)
{
    cap_store_options_t o = opts();
    o.flags = CAP_STORE_VERIFY;
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_OK);
    cap_t *a = leaf(7);
    cap_hash_t h = test_hash_cap(a), wrong = test_hash_of(1234);
    CHECK_EQ_INT(cap_store_put_cap_with_hash(s, &wrong, a), CAP_EMISMATCH);
    CHECK_EQ_INT(cap_store_blob_count(s), 0);
    CHECK(!cap_is_frozen(a));
    CHECK_EQ_INT(cap_store_put_cap_with_hash(s, &h, a), CAP_OK);
    CHECK(cap_store_contains_blob(s, &h));
    CHECK(cap_is_frozen(a));
    /* A cap holding a Ref is always refused, verify or not. */
    cap_t *inner = leaf(8);
    cap_ref_t *r = put_inst(s, inner);
    cap_t *p = cnode(2);
    test_set_ref(p, 0, r);
    CHECK_EQ_INT(cap_store_put_cap_with_hash(s, &h, p), CAP_EUNSETTLED);
    CHECK_EQ_INT(cap_store_put_cap(s, p, NULL), CAP_EUNSETTLED);
    CHECK_EQ_INT(cap_store_blob_count(s), 1);
    cap_release(p);
    cap_ref_release(r);
    cap_release(inner);
    cap_release(a);
    end_test(s);
}

/* Stores compare keys against the hash a published cap carries (set on
 * its first publication). A cap published under a wrong, unverified hash
 * (release builds only verify with CAP_STORE_VERIFY) must still be found
 * under its true hash when put honestly elsewhere, and a settle of it
 * must publish it under the true hash. */
static void test_wrong_hash_then_true(void)
{
#ifdef NDEBUG
    cap_store_t *liar = new_store();
    cap_store_t *s2 = NULL;
    cap_store_options_t o = opts();
    CHECK_EQ_INT(cap_store_new(&s2, &o), CAP_OK);
    cap_t *a = leaf(11), *got = NULL;
    cap_hash_t h = test_hash_cap(a), wrong = test_hash_of(4321), h2;
    CHECK_EQ_INT(cap_store_put_cap_with_hash(liar, &wrong, a), CAP_OK);
    CHECK(cap_store_contains_blob(liar, &wrong));
    CHECK_EQ_INT(cap_store_put_cap(s2, a, &h2), CAP_OK);
    CHECK_MEM(h.bytes, h2.bytes, 32);
    CHECK(cap_store_contains_blob(s2, &h));
    CHECK_EQ_INT(cap_store_get_blob(s2, &h, &got), CAP_OK);
    CHECK(got && cap_equal(got, a));
    cap_release(got);
    got = NULL;
    /* The same store, under the true hash too. */
    CHECK_EQ_INT(cap_store_put_cap(liar, a, NULL), CAP_OK);
    CHECK(cap_store_contains_blob(liar, &h));
    CHECK(cap_store_contains_blob(liar, &wrong));
    CHECK_EQ_INT(cap_store_blob_count(liar), 2);
    /* Promote the mis-keyed blob and settle it: published under h. */
    cap_ref_t *r = NULL;
    cap_store_t *s3 = new_store();
    CHECK_EQ_INT(cap_store_put_cap_with_hash(s3, &wrong, a), CAP_OK);
    CHECK_EQ_INT(cap_store_promote_blob_to_instance(s3, &wrong, &r), CAP_OK);
    cap_target_t t = cap_target_of_ref(r);
    cap_hash_t hs;
    CHECK_EQ_INT(cap_store_settle(s3, &t, &hs, NULL), CAP_OK);
    CHECK_MEM(h.bytes, hs.bytes, 32);
    CHECK_EQ_INT(cap_store_get_blob(s3, &h, &got), CAP_OK);
    CHECK(got && cap_equal(got, a));
    cap_release(got);
    cap_ref_release(r);
    cap_release(a);
    cap_store_free(s3);
    cap_store_free(s2);
    end_test(liar);
#endif
}

static void test_lazy_promote_shares(void)
{
    cap_store_t *s = new_store();
    cap_t *a = leaf(3), *inst = NULL, *blob = NULL;
    cap_hash_t h, hx = test_hash_of(4242);
    cap_ref_t *r = NULL;
    CHECK_EQ_INT(cap_store_put_cap(s, a, &h), CAP_OK);
    CHECK_EQ_INT(cap_store_promote_blob_to_instance(s, &hx, &r), CAP_EBLOBMISSING);
    CHECK(r == NULL);
    CHECK_EQ_INT(cap_store_promote_blob_to_instance(s, &h, &r), CAP_OK);
    CHECK(r != NULL && cap_ref_id(r) >= 1);
    CHECK_EQ_INT(cap_store_instance_count(s), 1);
    CHECK_EQ_INT(cap_store_get_instance(s, r, &inst), CAP_OK);
    CHECK_EQ_INT(cap_store_get_blob(s, &h, &blob), CAP_OK);
    CHECK(inst == a && blob == a); /* one object: no copy */
    CHECK_EQ_INT(cap_refcount(a), 5); /* caller, blob, entry, inst, blob */
    /* make_mut copies: the blob and the entry share it. */
    cap_t *m = inst;
    CHECK_EQ_INT(cap_make_mut(&m), CAP_OK);
    CHECK(m != a);
    CHECK(cap_is_writable(m));
    cap_hash_t nh = test_hash_of(77);
    test_set_hash(m, 15, &nh);
    CHECK_EQ_INT(cap_store_set_instance(s, r, m, NULL), CAP_OK);
    /* The blob is untouched. */
    CHECK_MEM(test_hash_cap(a).bytes, h.bytes, 32);
    CHECK_EQ_INT(cap_refcount(a), 3); /* caller, blob table, `blob` */
    cap_release(m);
    cap_release(blob);
    cap_ref_release(r);
    cap_release(a);
    end_test(s);
}

static void test_make_mut_iff_shared(void)
{
    cap_t *c = leaf(1);
    cap_t *m = c;
    CHECK_EQ_INT(cap_make_mut(&m), CAP_OK);
    CHECK(m == c); /* sole reference: the same object */
    cap_retain(c);
    m = c;
    CHECK_EQ_INT(cap_make_mut(&m), CAP_OK);
    CHECK(m != c); /* shared: a copy, and the caller's reference to c dropped */
    CHECK_EQ_INT(cap_refcount(c), 1);
    CHECK(cap_equal(m, c));
    cap_release(m);
    cap_release(c);
    CHECK(test_alloc_clean(&ta));
}

static void test_set_instance_keeps_id(void)
{
    cap_store_t *s = new_store();
    cap_t *c1 = leaf(1), *c2 = leaf(2), *got = NULL;
    cap_ref_t *r = put_inst(s, c1);
    uint64_t id = cap_ref_id(r);
    CHECK_EQ_INT(cap_refcount(c1), 2);
    CHECK_EQ_INT(cap_ref_strong_count(r), 2); /* ours + the store's */
    CHECK_EQ_INT(cap_store_set_instance(s, r, c2, NULL), CAP_OK);
    CHECK_EQ_INT(cap_refcount(c1), 1); /* the old cap was released */
    CHECK_EQ_INT(cap_refcount(c2), 2);
    CHECK_EQ_INT(cap_ref_id(r), id);
    CHECK_EQ_INT(cap_store_instance_count(s), 1);
    CHECK_EQ_INT(cap_store_get_instance(s, r, &got), CAP_OK);
    CHECK(got == c2);
    cap_release(got);
    /* Ids start at 1 and increase. */
    cap_ref_t *r2 = put_inst(s, c1);
    CHECK_EQ_INT(id, 1);
    CHECK_EQ_INT(cap_ref_id(r2), 2);
    cap_ref_release(r2);
    cap_ref_release(r);
    cap_release(c1);
    cap_release(c2);
    end_test(s);
}

static void test_sweep_basic(void)
{
    cap_store_t *s = new_store();
    cap_t *c = leaf(1);
    cap_ref_t *live = put_inst(s, c), *dead = put_inst(s, c);
    size_t removed = 99;
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(removed, 0);
    cap_ref_t *extra = cap_ref_retain(dead);
    CHECK_EQ_INT(cap_ref_strong_count(dead), 3);
    cap_ref_release(dead);
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(removed, 0); /* `extra` still holds it */
    cap_ref_release(extra);
    CHECK_EQ_INT(cap_store_instance_count(s), 2); /* dead but unswept still counts */
    CHECK_EQ_INT(cap_refcount(c), 3);
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(removed, 1);
    CHECK_EQ_INT(cap_store_instance_count(s), 1);
    CHECK_EQ_INT(cap_refcount(c), 2);
    cap_t *got = NULL;
    CHECK_EQ_INT(cap_store_get_instance(s, live, &got), CAP_OK);
    cap_release(got);
    cap_ref_release(live);
    cap_release(c);
    end_test(s);
}

/* A chain of n cnode instances, each slot 0 = Ref(next); only the head kept. */
static cap_ref_t *build_chain(cap_store_t *s, size_t n)
{
    cap_ref_t *next = NULL;
    for (size_t i = 0; i < n; i++) {
        cap_t *c = cnode(2);
        if (next) {
            test_set_ref(c, 0, next);
            cap_ref_release(next);
        } else {
            cap_hash_t h = test_hash_of(4321);
            test_set_hash(c, 1, &h);
        }
        next = put_inst(s, c);
        cap_release(c);
    }
    return next;
}

static void test_sweep_cascades(void)
{
    cap_store_t *s = new_store();
    cap_ref_t *head = build_chain(s, 1000);
    CHECK_EQ_INT(cap_store_instance_count(s), 1000);
    size_t removed = 0;
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(removed, 0);
    cap_ref_release(head);
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(removed, 1000);
    CHECK_EQ_INT(cap_store_instance_count(s), 0);

    /* A tree: root -> 4 children -> 4 grandchildren each, plus a DAG edge. */
    cap_ref_t *kids[4];
    cap_ref_t *shared = NULL;
    {
        cap_t *c = leaf(9);
        shared = put_inst(s, c);
        cap_release(c);
    }
    for (int i = 0; i < 4; i++) {
        cap_t *k = cnode(3);
        for (int j = 0; j < 4; j++) {
            cap_t *g = leaf((unsigned)(10 * i + j));
            cap_ref_t *gr = put_inst(s, g);
            test_set_ref(k, (uint32_t)j, gr);
            cap_ref_release(gr);
            cap_release(g);
        }
        test_set_ref(k, 7, shared);
        kids[i] = put_inst(s, k);
        cap_release(k);
    }
    cap_ref_release(shared);
    cap_t *root = cnode(2);
    for (int i = 0; i < 4; i++) {
        test_set_ref(root, (uint32_t)i, kids[i]);
        cap_ref_release(kids[i]);
    }
    cap_ref_t *rr = put_inst(s, root);
    cap_release(root);
    CHECK_EQ_INT(cap_store_instance_count(s), 1 + 4 + 16 + 1);
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(removed, 0);
    cap_ref_release(rr);
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(removed, 22);
    CHECK_EQ_INT(cap_store_instance_count(s), 0);
    end_test(s);
}

static void test_sweep_budget(void)
{
    cap_store_t *s = new_store();
    cap_ref_t *head = build_chain(s, 10);
    size_t removed = 0;
    bool more = true;
    CHECK_EQ_INT(cap_store_sweep_budget(s, 3, &removed, &more), CAP_OK);
    CHECK_EQ_INT(removed, 0);
    CHECK(!more);
    cap_ref_release(head);
    CHECK_EQ_INT(cap_store_sweep_budget(s, 0, &removed, &more), CAP_OK);
    CHECK_EQ_INT(removed, 0);
    CHECK(more);
    CHECK_EQ_INT(cap_store_sweep_budget(s, 3, &removed, &more), CAP_OK);
    CHECK_EQ_INT(removed, 3);
    CHECK(more);
    CHECK_EQ_INT(cap_store_instance_count(s), 7);
    CHECK_EQ_INT(cap_store_sweep_budget(s, 6, &removed, &more), CAP_OK);
    CHECK_EQ_INT(removed, 6);
    CHECK(more);
    CHECK_EQ_INT(cap_store_sweep_budget(s, 6, &removed, &more), CAP_OK);
    CHECK_EQ_INT(removed, 1);
    CHECK(!more);
    CHECK_EQ_INT(cap_store_instance_count(s), 0);
    end_test(s);
}

static void test_settle_bottom_up(void)
{
    cap_store_t *s = new_store();
    /* root(cnode) -> mid(cnode) -> leaf(cnode), and root -> data. */
    cap_t *lf = leaf(1);
    cap_hash_t lf_h = test_hash_cap(lf);
    cap_ref_t *lr = put_inst(s, lf);
    cap_t *mid = cnode(3);
    test_set_ref(mid, 2, lr);
    cap_hash_t x = test_hash_of(5);
    test_set_hash(mid, 5, &x);
    cap_ref_t *mr = put_inst(s, mid);
    cap_t *data = NULL;
    CHECK_EQ_INT(cap_data_new_inline(&data, &ta.alloc, 64, "hello", 5), CAP_OK);
    cap_hash_t data_h = test_hash_cap(data);
    cap_ref_t *dr = put_inst(s, data);
    cap_t *root = cnode(2);
    test_set_ref(root, 0, mr);
    test_set_ref(root, 3, dr);
    cap_ref_t *rr = put_inst(s, root);

    /* The expected hashes, built by hand. */
    cap_t *mid2 = cnode(3);
    test_set_hash(mid2, 2, &lf_h);
    test_set_hash(mid2, 5, &x);
    cap_hash_t mid_h = test_hash_cap(mid2);
    cap_t *root2 = cnode(2);
    test_set_hash(root2, 0, &mid_h);
    test_set_hash(root2, 3, &data_h);
    cap_hash_t root_h = test_hash_cap(root2);

    cap_hash_t got;
    cap_target_t t = cap_target_of_ref(rr);
    CHECK_EQ_INT(cap_store_settle(s, &t, &got, NULL), CAP_OK);
    CHECK_MEM(got.bytes, root_h.bytes, 32);
    CHECK_EQ_INT(cap_store_instance_count(s), 0); /* all graduated */
    CHECK_EQ_INT(cap_store_blob_count(s), 4);
    CHECK(cap_store_contains_blob(s, &lf_h));
    CHECK(cap_store_contains_blob(s, &mid_h));
    CHECK(cap_store_contains_blob(s, &data_h));
    CHECK(cap_store_contains_blob(s, &root_h));
    cap_t *b = NULL;
    CHECK_EQ_INT(cap_store_get_blob(s, &root_h, &b), CAP_OK);
    CHECK(cap_equal(b, root2));
    CHECK(cap_is_frozen(b));
    cap_release(b);
    CHECK_EQ_INT(cap_store_get_blob(s, &lf_h, &b), CAP_OK);
    CHECK(b == lf); /* a cap without Refs graduates as is */
    cap_release(b);
    /* The working entries are gone from the instance tier. */
    CHECK_EQ_INT(cap_store_get_instance(s, rr, &b), CAP_EINSTANCEMISSING);
    cap_err_t err;
    CHECK_EQ_INT(cap_store_set_instance(s, mr, mid, &err), CAP_EINSTANCEMISSING);
    CHECK_EQ_INT(err.id, cap_ref_id(mr));
    CHECK_EQ_INT(cap_ref_strong_count(rr), 1); /* only ours now */
    /* Settle of a Hash returns it unchanged. */
    cap_hash_t z;
    t = cap_target_of_hash(&x);
    CHECK_EQ_INT(cap_store_settle(s, &t, &z, NULL), CAP_OK);
    CHECK_MEM(z.bytes, x.bytes, 32);

    cap_ref_release(lr);
    cap_ref_release(mr);
    cap_ref_release(dr);
    cap_ref_release(rr);
    cap_release(lf);
    cap_release(mid);
    cap_release(data);
    cap_release(root);
    cap_release(mid2);
    cap_release(root2);
    size_t removed = 9;
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(removed, 0);
    end_test(s);
}

static void test_settle_keeps_instances(void)
{
    cap_store_t *s = new_store();
    cap_t *cn = leaf(3);
    cap_hash_t cn_h = test_hash_cap(cn);
    cap_ref_t *cr = put_inst(s, cn);
    cap_target_t rt = cap_target_of_ref(cr);
    cap_t *inst = NULL;
    CHECK_EQ_INT(cap_instance_new(&inst, &ta.alloc, &rt), CAP_OK);
    CHECK_EQ_INT(cap_instance_set_pc(inst, 77), CAP_OK);
    cap_ref_t *ir = put_inst(s, inst);
    cap_ref_release(cr);

    cap_t *want = NULL;
    cap_target_t ht = cap_target_of_hash(&cn_h);
    CHECK_EQ_INT(cap_instance_new(&want, &ta.alloc, &ht), CAP_OK);
    CHECK_EQ_INT(cap_instance_set_pc(want, 77), CAP_OK);
    cap_hash_t want_h = test_hash_cap(want);

    cap_hash_t got;
    cap_target_t t = cap_target_of_ref(ir);
    CHECK_EQ_INT(cap_store_settle(s, &t, &got, NULL), CAP_OK);
    CHECK_MEM(got.bytes, want_h.bytes, 32);
    CHECK_EQ_INT(cap_store_instance_count(s), 1); /* the Instance stays */
    CHECK_EQ_INT(cap_store_blob_count(s), 1);     /* the CNode graduated */
    CHECK(cap_store_contains_blob(s, &cn_h));
    CHECK(!cap_store_contains_blob(s, &want_h)); /* the Instance's hash is a snapshot */
    cap_t *now = NULL;
    CHECK_EQ_INT(cap_store_get_instance(s, ir, &now), CAP_OK);
    CHECK(now != inst);
    CHECK(cap_equal(now, want)); /* its Ref was rewritten to the hash */
    CHECK(!cap_is_frozen(now));
    cap_release(now);
    CHECK_EQ_INT(cap_refcount(inst), 1); /* the store released the old cap */
    /* Settling again gives the same hash and changes nothing. */
    CHECK_EQ_INT(cap_store_settle(s, &t, &got, NULL), CAP_OK);
    CHECK_MEM(got.bytes, want_h.bytes, 32);
    CHECK_EQ_INT(cap_store_instance_count(s), 1);
    cap_ref_release(ir);
    cap_release(inst);
    cap_release(want);
    cap_release(cn);
    end_test(s);
}

static void test_settle_promoted_unchanged(void)
{
    cap_store_t *s = new_store();
    cap_t *a = leaf(11);
    cap_hash_t h, got;
    CHECK_EQ_INT(cap_store_put_cap(s, a, &h), CAP_OK);
    cap_ref_t *r = NULL;
    CHECK_EQ_INT(cap_store_promote_blob_to_instance(s, &h, &r), CAP_OK);
    cap_target_t t = cap_target_of_ref(r);
    CHECK_EQ_INT(cap_store_settle(s, &t, &got, NULL), CAP_OK);
    CHECK_MEM(got.bytes, h.bytes, 32);
    CHECK_EQ_INT(cap_store_blob_count(s), 1);
    CHECK_EQ_INT(cap_store_instance_count(s), 0);
    cap_t *b = NULL;
    CHECK_EQ_INT(cap_store_get_blob(s, &h, &b), CAP_OK);
    CHECK(b == a);
    CHECK_EQ_INT(cap_refcount(a), 3); /* caller, table, b */
    cap_release(b);
    cap_ref_release(r);
    cap_release(a);
    end_test(s);
}

static void test_settle_dag(void)
{
    cap_store_t *s = new_store();
    cap_t *c = leaf(21);
    cap_hash_t c_h = test_hash_cap(c);
    cap_ref_t *cr = put_inst(s, c);
    cap_t *p1 = cnode(2), *p2 = cnode(2);
    test_set_ref(p1, 0, cr);
    test_set_ref(p2, 1, cr);
    test_set_ref(p2, 3, cr); /* twice in one parent too */
    cap_ref_t *r1 = put_inst(s, p1), *r2 = put_inst(s, p2);
    cap_t *root = cnode(1);
    test_set_ref(root, 0, r1);
    test_set_ref(root, 1, r2);
    cap_ref_t *rr = put_inst(s, root);
    cap_ref_release(cr);
    cap_ref_release(r1);
    cap_ref_release(r2);

    cap_t *e1 = cnode(2), *e2 = cnode(2), *er = cnode(1);
    test_set_hash(e1, 0, &c_h);
    test_set_hash(e2, 1, &c_h);
    test_set_hash(e2, 3, &c_h);
    cap_hash_t h1 = test_hash_cap(e1), h2 = test_hash_cap(e2);
    test_set_hash(er, 0, &h1);
    test_set_hash(er, 1, &h2);
    cap_hash_t hr = test_hash_cap(er);

    cap_hash_t got;
    cap_target_t t = cap_target_of_ref(rr);
    CHECK_EQ_INT(cap_store_settle(s, &t, &got, NULL), CAP_OK);
    CHECK_MEM(got.bytes, hr.bytes, 32);
    CHECK_EQ_INT(cap_store_blob_count(s), 4);
    CHECK_EQ_INT(cap_store_instance_count(s), 0);
    CHECK(cap_store_contains_blob(s, &c_h));
    CHECK(cap_store_contains_blob(s, &h1));
    CHECK(cap_store_contains_blob(s, &h2));
    cap_ref_release(rr);
    cap_release(c);
    cap_release(p1);
    cap_release(p2);
    cap_release(root);
    cap_release(e1);
    cap_release(e2);
    cap_release(er);
    end_test(s);
}

static void test_settle_cycle(void)
{
    cap_store_t *s = new_store();
    cap_t *a = cnode(1), *b = cnode(1);
    cap_ref_t *ra = put_inst(s, a), *rb = put_inst(s, b);
    cap_t *a2 = cnode(1), *b2 = cnode(1);
    cap_hash_t x = test_hash_of(1);
    test_set_hash(a2, 1, &x);
    test_set_ref(a2, 0, rb);
    test_set_ref(b2, 0, ra);
    CHECK_EQ_INT(cap_store_set_instance(s, ra, a2, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_set_instance(s, rb, b2, NULL), CAP_OK);
    /* Unrelated blob to see that nothing moves. */
    cap_t *other = leaf(2);
    CHECK_EQ_INT(cap_store_put_cap(s, other, NULL), CAP_OK);
    cap_hash_t got = test_hash_of(5), before = got;
    cap_target_t t = cap_target_of_ref(ra);
    CHECK_EQ_INT(cap_store_settle(s, &t, &got, NULL), CAP_ECYCLE);
    CHECK_MEM(got.bytes, before.bytes, 32);
    CHECK_EQ_INT(cap_store_instance_count(s), 2);
    CHECK_EQ_INT(cap_store_blob_count(s), 1);
    cap_t *g = NULL;
    CHECK_EQ_INT(cap_store_get_instance(s, ra, &g), CAP_OK);
    CHECK(g == a2);
    cap_release(g);
    CHECK_EQ_INT(cap_refcount(a2), 2);
    CHECK_EQ_INT(cap_refcount(b2), 2);
    /* A self-reference is a cycle too. */
    cap_t *self = cnode(0);
    cap_ref_t *rs = put_inst(s, self);
    cap_t *self2 = cnode(0);
    test_set_ref(self2, 0, rs);
    CHECK_EQ_INT(cap_store_set_instance(s, rs, self2, NULL), CAP_OK);
    t = cap_target_of_ref(rs);
    CHECK_EQ_INT(cap_store_settle(s, &t, &got, NULL), CAP_ECYCLE);
    /* Sweep cannot reclaim cycles; break them by hand to clean up. */
    cap_ref_release(ra);
    cap_ref_release(rb);
    cap_ref_release(rs);
    size_t removed = 0;
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(removed, 0);
    cap_release(a);
    cap_release(b);
    cap_release(a2);
    cap_release(b2);
    cap_release(self);
    cap_release(self2);
    cap_release(other);
    /* cap_store_free releases the cycles' caps: no leak remains. */
    end_test(s);
}

static void test_settle_deep_chain(void)
{
    cap_store_t *s = new_store();
    const size_t n = 100000;
    cap_ref_t *head = build_chain(s, n);
    cap_hash_t got;
    cap_target_t t = cap_target_of_ref(head);
    CHECK_EQ_INT(cap_store_settle(s, &t, &got, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_instance_count(s), 0);
    CHECK_EQ_INT(cap_store_blob_count(s), n);
    CHECK(cap_store_contains_blob(s, &got));
    cap_ref_release(head);
    /* A deep chain is also swept without recursion. */
    head = build_chain(s, n);
    cap_ref_release(head);
    size_t removed = 0;
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(removed, n);
    /* And freed with the store while still held. */
    head = build_chain(s, n);
    cap_store_free(s);
    cap_ref_release(head);
    CHECK(test_alloc_clean(&ta));
}

static void test_release_after_free(void)
{
    cap_store_t *s = new_store();
    cap_t *c = leaf(1);
    cap_ref_t *r = put_inst(s, c), *r2 = put_inst(s, c);
    cap_t *holder = cnode(1);
    test_set_ref(holder, 0, r2);
    cap_ref_release(r2);
    cap_ref_t *dead = put_inst(s, c);
    cap_ref_release(dead); /* dead, unswept at close */
    CHECK_EQ_INT(cap_ref_strong_count(r), 2);
    cap_store_free(s);
    CHECK_EQ_INT(cap_refcount(c), 1); /* the store released its references */
    CHECK_EQ_INT(cap_ref_strong_count(r), 1);
    CHECK(cap_ref_id(r) == 1);
    CHECK(!test_alloc_clean(&ta)); /* the header lives while handles do */
    cap_ref_t *r3 = cap_ref_retain(r);
    cap_ref_release(r);
    cap_ref_release(r3);
    cap_release(holder); /* releases the last handle: the header goes */
    cap_release(c);
    CHECK(test_alloc_clean(&ta));

    /* The same with an in-place store. */
    cap_store_storage_t st;
    cap_store_options_t o = opts();
    CHECK_EQ_INT(cap_store_init_in_place(&st, &o, &s), CAP_OK);
    c = leaf(2);
    r = put_inst(s, c);
    cap_store_free(s);
    cap_ref_release(r);
    cap_release(c);
    CHECK(test_alloc_clean(&ta));
}

static void test_in_place_lazy(void)
{
    cap_store_storage_t st;
    cap_store_options_t o = opts();
    cap_store_t *s = NULL;
    test_alloc_fail_at(&ta, 0);
    CHECK_EQ_INT(cap_store_init_in_place(&st, &o, &s), CAP_OK);
    CHECK((void *)s == (void *)&st);
    cap_hash_t h = test_hash_of(3);
    cap_t *got = NULL;
    cap_blob_entry_t *e = NULL;
    size_t n = 7, removed = 7;
    CHECK_EQ_INT(cap_store_get_blob(s, &h, &got), CAP_EBLOBMISSING);
    CHECK(!cap_store_contains_blob(s, &h));
    CHECK_EQ_INT(cap_store_blob_count(s), 0);
    CHECK_EQ_INT(cap_store_instance_count(s), 0);
    CHECK_EQ_INT(cap_store_iter_blobs(s, &e, &n), CAP_OK);
    CHECK(e == NULL && n == 0);
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(removed, 0);
    CHECK_EQ_INT(cap_store_promote_blob_to_instance(s, &h, NULL), CAP_EINVAL);
    cap_ref_t *r = NULL;
    CHECK_EQ_INT(cap_store_promote_blob_to_instance(s, &h, &r), CAP_EBLOBMISSING);
    CHECK_EQ_INT(ta.count, 0); /* nothing allocated so far */
    cap_store_free(s);         /* freeing an unused in-place store allocates nothing either */
    CHECK_EQ_INT(ta.count, 0);

    CHECK_EQ_INT(cap_store_init_in_place(&st, &o, &s), CAP_OK);
    cap_t *c = leaf(4);
    long before = ta.count;
    CHECK_EQ_INT(cap_store_put_cap(s, c, &h), CAP_OK);
    CHECK(ta.count > before); /* first use sets the tables up */
    CHECK_EQ_INT(cap_store_get_blob(s, &h, &got), CAP_OK);
    cap_release(got);
    cap_release(c);
    cap_store_free(s);
    CHECK(test_alloc_clean(&ta));

    /* The spin-lock variant: no hooks at all. */
    o.locks = NULL;
    CHECK_EQ_INT(cap_store_init_in_place(&st, &o, &s), CAP_OK);
    c = leaf(5);
    CHECK_EQ_INT(cap_store_put_cap(s, c, &h), CAP_OK);
    CHECK(cap_store_contains_blob(s, &h));
    cap_release(c);
    cap_store_free(s);
    CHECK(test_alloc_clean(&ta));
}

static void test_id_exhaustion(void)
{
    cap_store_options_t o = opts();
    o.first_id = UINT64_MAX - 2;
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_OK);
    cap_t *c = leaf(1);
    cap_ref_t *a = put_inst(s, c), *b = put_inst(s, c), *x = (cap_ref_t *)1;
    CHECK(cap_ref_id(a) == UINT64_MAX - 2);
    CHECK(cap_ref_id(b) == UINT64_MAX - 1);
    CHECK_EQ_INT(cap_store_put_instance(s, c, &x), CAP_EIDSPACE);
    CHECK(x == NULL);
    cap_hash_t h;
    CHECK_EQ_INT(cap_store_put_cap(s, c, &h), CAP_OK);
    CHECK_EQ_INT(cap_store_promote_blob_to_instance(s, &h, &x), CAP_EIDSPACE);
    CHECK_EQ_INT(cap_store_instance_count(s), 2);
    CHECK_EQ_INT(cap_refcount(c), 4); /* caller, blob, two entries: nothing leaked */
    /* Swept ids are not reused. */
    cap_ref_release(a);
    CHECK_EQ_INT(cap_store_sweep_instances(s, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_put_instance(s, c, &x), CAP_EIDSPACE);
    cap_ref_release(b);
    cap_release(c);
    end_test(s);
}

static int edit_put_ref(cap_t *c, void *arg)
{
    cap_target_t t = cap_target_of_ref((cap_ref_t *)arg);
    return cap_cnode_set(c, 0, &t);
}

static void test_foreign_handles(void)
{
    cap_store_t *s1 = new_store(), *s2 = new_store();
    cap_t *c = leaf(1), *got = (cap_t *)1;
    cap_ref_t *r1 = put_inst(s1, c), *r2 = put_inst(s2, c), *x = NULL;
    cap_t *holds2 = cnode(1);
    test_set_ref(holds2, 0, r2);
    cap_target_t t2 = cap_target_of_ref(r2);
    cap_t *inst2 = NULL;
    CHECK_EQ_INT(cap_instance_new(&inst2, &ta.alloc, &t2), CAP_OK);
    cap_hash_t h;

    CHECK_EQ_INT(cap_store_get_instance(s1, r2, &got), CAP_EINVAL);
    CHECK(got == NULL);
    CHECK_EQ_INT(cap_store_get(s1, &t2, &got), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_set_instance(s1, r2, c, NULL), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_set_instance(s1, r1, holds2, NULL), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_set_instance(s1, r1, inst2, NULL), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_put_instance(s1, holds2, &x), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_put_instance(s1, inst2, &x), CAP_EINVAL);
    CHECK(x == NULL);
    CHECK_EQ_INT(cap_store_settle(s1, &t2, &h, NULL), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_edit_instance(s1, r2, edit_put_ref, r1, NULL), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_get_instance(s1, NULL, &got), CAP_EINVAL);
    /* An edit that slips a foreign handle in is refused (copy path: the
     * caller holds the cap, so the store's is shared). */
    cap_t *cur = NULL;
    CHECK_EQ_INT(cap_store_get_instance(s1, r1, &cur), CAP_OK);
    cap_t *w = cnode(1);
    CHECK_EQ_INT(cap_store_set_instance(s1, r1, w, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_edit_instance(s1, r1, edit_put_ref, r2, NULL), CAP_EINVAL);
    cap_t *after = NULL;
    CHECK_EQ_INT(cap_store_get_instance(s1, r1, &after), CAP_OK);
    CHECK(after == w);
    CHECK_EQ_INT(cap_cnode_count(after), 0);
    cap_release(after);
    cap_release(cur);
    CHECK_EQ_INT(cap_store_instance_count(s1), 1);
    CHECK_EQ_INT(cap_refcount(c), 2); /* caller, s2's entry */
    cap_release(w);
    cap_release(holds2);
    cap_release(inst2);
    cap_ref_release(r1);
    cap_ref_release(r2);
    cap_release(c);
    cap_store_free(s1);
    end_test(s2);
}

static int edit_set_slot(cap_t *c, void *arg)
{
    const cap_hash_t *h = arg;
    cap_target_t t = cap_target_of_hash(h);
    return cap_cnode_set(c, 1, &t);
}

static int edit_then_fail(cap_t *c, void *arg)
{
    const cap_hash_t *h = arg;
    cap_target_t t = cap_target_of_hash(h);
    CHECK_EQ_INT(cap_cnode_set(c, 2, &t), CAP_OK);
    return CAP_EIMAGE; /* abandon after a change */
}

static void test_edit_instance(void)
{
    cap_store_t *s = new_store();
    cap_t *c = leaf(1);
    cap_t *orig = c;
    cap_ref_t *r = put_inst(s, c);
    cap_release(c); /* the store holds the only reference now */
    cap_hash_t h = test_hash_of(66);
    /* An abandoned edit changes nothing, even on a cap only the store holds. */
    CHECK_EQ_INT(cap_store_edit_instance(s, r, edit_then_fail, &h, NULL), CAP_EIMAGE);
    cap_t *got = NULL;
    CHECK_EQ_INT(cap_store_get_instance(s, r, &got), CAP_OK);
    CHECK(got == orig);
    cap_target_t t;
    CHECK_EQ_INT(cap_cnode_get(got, 2, &t), CAP_OK);
    CHECK(t.kind == CAP_TARGET_NONE);
    cap_release(got);
    CHECK_EQ_INT(cap_store_edit_instance(s, r, edit_set_slot, &h, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_get_instance(s, r, &got), CAP_OK);
    CHECK_EQ_INT(cap_cnode_get(got, 1, &t), CAP_OK);
    CHECK(t.kind == CAP_TARGET_HASH && memcmp(t.hash.bytes, h.bytes, 32) == 0);
    /* While we hold it, our reference is never changed under us. */
    cap_hash_t before = test_hash_cap(got);
    cap_hash_t h2 = test_hash_of(67);
    CHECK_EQ_INT(cap_store_edit_instance(s, r, edit_set_slot, &h2, NULL), CAP_OK);
    CHECK_MEM(test_hash_cap(got).bytes, before.bytes, 32);
    cap_t *now = NULL;
    CHECK_EQ_INT(cap_store_get_instance(s, r, &now), CAP_OK);
    CHECK(now != got);
    CHECK_EQ_INT(cap_cnode_get(now, 1, &t), CAP_OK);
    CHECK(memcmp(t.hash.bytes, h2.bytes, 32) == 0);
    CHECK_EQ_INT(cap_refcount(got), 1); /* the store released its reference */
    cap_release(got);
    cap_release(now);
    /* A blob promoted to an instance is frozen and shared: the blob stays. */
    cap_t *b = leaf(9);
    cap_hash_t bh;
    CHECK_EQ_INT(cap_store_put_cap(s, b, &bh), CAP_OK);
    cap_release(b);
    cap_ref_t *pr = NULL;
    CHECK_EQ_INT(cap_store_promote_blob_to_instance(s, &bh, &pr), CAP_OK);
    CHECK_EQ_INT(cap_store_edit_instance(s, pr, edit_set_slot, &h2, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_get_blob(s, &bh, &got), CAP_OK);
    CHECK_MEM(test_hash_cap(got).bytes, bh.bytes, 32);
    cap_release(got);
    cap_ref_release(pr);
    cap_ref_release(r);
    end_test(s);
}

static void test_iter_sorted(void)
{
    cap_store_t *s = new_store();
    const unsigned n = 300;
    for (unsigned i = 0; i < n; i++) {
        cap_t *c = leaf(i + 1000);
        CHECK_EQ_INT(cap_store_put_cap(s, c, NULL), CAP_OK);
        cap_release(c);
    }
    cap_blob_entry_t *e = NULL;
    size_t cnt = 0;
    CHECK_EQ_INT(cap_store_iter_blobs_sorted(s, &e, &cnt), CAP_OK);
    CHECK_EQ_INT(cnt, n);
    int order_ok = 1, hash_ok = 1;
    for (size_t i = 0; i < cnt; i++) {
        if (i && memcmp(e[i - 1].hash.bytes, e[i].hash.bytes, 32) >= 0) order_ok = 0;
        cap_hash_t h = test_hash_cap(e[i].cap);
        if (memcmp(h.bytes, e[i].hash.bytes, 32) != 0) hash_ok = 0;
    }
    CHECK(order_ok);
    CHECK(hash_ok);
    /* The unsorted form has the same set. */
    cap_blob_entry_t *u = NULL;
    size_t un = 0;
    CHECK_EQ_INT(cap_store_iter_blobs(s, &u, &un), CAP_OK);
    CHECK_EQ_INT(un, n);
    int found_all = 1;
    for (size_t i = 0; i < un; i++) {
        size_t lo = 0, hi = cnt;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            int cmp = memcmp(e[mid].hash.bytes, u[i].hash.bytes, 32);
            if (cmp < 0) lo = mid + 1;
            else hi = mid;
        }
        if (lo == cnt || memcmp(e[lo].hash.bytes, u[i].hash.bytes, 32) != 0 || e[lo].cap != u[i].cap)
            found_all = 0;
    }
    CHECK(found_all);
    cap_store_blobs_free(s, u, un);
    cap_store_blobs_free(s, e, cnt);
    end_test(s);
}

static void test_many_blobs_growth(void)
{
    cap_store_t *s = new_store();
    const unsigned n = 20000;
    for (unsigned i = 0; i < n; i++) {
        cap_t *c = leaf(i);
        CHECK_EQ_INT(cap_store_put_cap(s, c, NULL), CAP_OK);
        cap_release(c);
    }
    CHECK_EQ_INT(cap_store_blob_count(s), n);
    int all = 1;
    for (unsigned i = 0; i < n; i++) {
        cap_t *c = leaf(i);
        cap_hash_t h = test_hash_cap(c);
        cap_t *g = NULL;
        if (cap_store_get_blob(s, &h, &g) != CAP_OK || !cap_equal(g, c)) all = 0;
        cap_release(g);
        cap_release(c);
    }
    CHECK(all);
    end_test(s);
}

static void test_bad_args(void)
{
    cap_store_t *s = NULL;
    cap_store_options_t o = opts();
    CHECK_EQ_INT(cap_store_new(NULL, &o), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_new(&s, NULL), CAP_EINVAL);
    o.alloc = NULL;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_EINVAL);
    CHECK(s == NULL);
    cap_store_free(NULL);
    s = new_store();
    cap_target_t none;
    memset(&none, 0, sizeof none);
    cap_t *got = NULL;
    cap_hash_t h;
    CHECK_EQ_INT(cap_store_get(s, &none, &got), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_settle(s, &none, &h, NULL), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_put_cap(s, NULL, &h), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_sweep_instances(NULL, NULL), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_blob_count(NULL), 0);
    end_test(s);
}

/* The options' size field: 0 and sizeof are this layout; a caller built
 * against a later header (a larger size) is accepted while the bytes this
 * library does not know are zero, and refused otherwise; a size too small
 * to hold even the size field is refused; worker hooks need `run`. */
static void test_options_size(void)
{
    struct {
        cap_store_options_t o;
        unsigned char later[16];
    } big;
    memset(&big, 0, sizeof big);
    big.o = opts();
    cap_store_t *s = NULL;
    size_t sizes[] = {0, sizeof(cap_store_options_t), sizeof big};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        big.o.size = sizes[i];
        CHECK_EQ_INT(cap_store_new(&s, &big.o), CAP_OK);
        cap_store_free(s);
        s = NULL;
    }
    big.later[3] = 1; /* a later field this library cannot honour */
    CHECK_EQ_INT(cap_store_new(&s, &big.o), CAP_EINVAL);
    CHECK(s == NULL);
    big.o.size = 1;
    CHECK_EQ_INT(cap_store_new(&s, &big.o), CAP_EINVAL);
    cap_store_options_t init = CAP_STORE_OPTIONS_INIT;
    CHECK_EQ_INT(init.size, sizeof(cap_store_options_t));
    CHECK(init.alloc == NULL && init.workers == NULL);
    cap_workers_t w;
    memset(&w, 0, sizeof w);
    cap_store_options_t o = opts();
    o.workers = &w; /* no run */
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_EINVAL);
    CHECK(s == NULL);
}

typedef void (*test_fn)(void);


int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static const struct {
        const char *name;
        test_fn fn;
    } tests[] = {
        {"put_get_counts", test_put_get_counts},
        {"reput_idempotent", test_reput_idempotent},
        {"put_with_hash", test_put_with_hash},
        {"wrong_hash_then_true", test_wrong_hash_then_true},
        {"lazy_promote_shares", test_lazy_promote_shares},
        {"make_mut_iff_shared", test_make_mut_iff_shared},
        {"set_instance_keeps_id", test_set_instance_keeps_id},
        {"sweep_basic", test_sweep_basic},
        {"sweep_cascades", test_sweep_cascades},
        {"sweep_budget", test_sweep_budget},
        {"settle_bottom_up", test_settle_bottom_up},
        {"settle_keeps_instances", test_settle_keeps_instances},
        {"settle_promoted_unchanged", test_settle_promoted_unchanged},
        {"settle_dag", test_settle_dag},
        {"settle_cycle", test_settle_cycle},
        {"settle_deep_chain", test_settle_deep_chain},
        {"release_after_free", test_release_after_free},
        {"in_place_lazy", test_in_place_lazy},
        {"id_exhaustion", test_id_exhaustion},
        {"foreign_handles", test_foreign_handles},
        {"edit_instance", test_edit_instance},
        {"iter_sorted", test_iter_sorted},
        {"many_blobs_growth", test_many_blobs_growth},
        {"bad_args", test_bad_args},
        {"options_size", test_options_size},
    };
    test_alloc_init(&ta);
    for (use_spin = 0; use_spin < 2; use_spin++) {
        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
            int before = check_failures;
            tests[i].fn();
            if (check_failures != before)
                fprintf(stderr, "  in test %s (%s locks)\n", tests[i].name,
                        use_spin ? "spin" : "pthread");
        }
    }
    return check_done("test_store");
}
