/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Every error path of the store leaves it exactly as it was: the same blobs
 * (hashes and cap objects), the same instance entries with the same caps, the
 * same handle counts, and no reference gained or lost on the caller's caps. */
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

#define MAXH 16
#define MAXC 24

typedef struct fixture {
    cap_store_t *s, *other;
    cap_ref_t *h[MAXH];
    size_t nh;
    cap_t *caps[MAXC]; /* caller-held caps whose refcounts are watched */
    size_t nc;
    cap_ref_t *foreign;
    cap_hash_t b1, b2;
    /* Roles */
    cap_ref_t *chain_root, *chain_child, *cyc_a, *cyc_b, *graduated, *promoted, *dangling,
        *lonely, *gone_child, *deep_root;
} fixture_t;


static cap_t *watch(fixture_t *f, cap_t *c)
{
    f->caps[f->nc++] = c;
    return c;
}

static cap_ref_t *keep(fixture_t *f, cap_ref_t *r)
{
    f->h[f->nh++] = r;
    return r;
}

static cap_t *cnode_with(fixture_t *f, unsigned size_log)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, &ta.alloc, size_log), CAP_OK);
    return watch(f, c);
}

static cap_ref_t *put(fixture_t *f, cap_t *c)
{
    cap_ref_t *r = NULL;
    CHECK_EQ_INT(cap_store_put_instance(f->s, c, &r), CAP_OK);
    return keep(f, r);
}

static void fixture_init(fixture_t *f)
{
    memset(f, 0, sizeof *f);
    cap_store_options_t o = cap_store_options_host();
    o.alloc = &ta.alloc;
    o.flags = CAP_STORE_VERIFY;
    CHECK_EQ_INT(cap_store_new(&f->s, &o), CAP_OK);
    CHECK_EQ_INT(cap_store_new(&f->other, &o), CAP_OK);

    cap_t *b1 = cnode_with(f, 3), *b2 = cnode_with(f, 3);
    test_set_hash_of(b1, 1, 1);
    test_set_hash_of(b2, 2, 2);
    CHECK_EQ_INT(cap_store_put_cap(f->s, b1, &f->b1), CAP_OK);
    CHECK_EQ_INT(cap_store_put_cap(f->s, b2, &f->b2), CAP_OK);

    cap_t *child = cnode_with(f, 2);
    test_set_hash_of(child, 0, 3);
    f->chain_child = put(f, child);
    cap_t *root = cnode_with(f, 2);
    test_set_ref(root, 1, f->chain_child);
    f->chain_root = put(f, root);

    cap_t *a = cnode_with(f, 1), *b = cnode_with(f, 1);
    f->cyc_a = put(f, a);
    f->cyc_b = put(f, b);
    cap_t *a2 = cnode_with(f, 1), *b2c = cnode_with(f, 1);
    test_set_ref(a2, 0, f->cyc_b);
    test_set_ref(b2c, 0, f->cyc_a);
    CHECK_EQ_INT(cap_store_set_instance(f->s, f->cyc_a, a2, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_set_instance(f->s, f->cyc_b, b2c, NULL), CAP_OK);

    /* deep_root -> x -> y -> x: a cycle below the root. */
    cap_t *x = cnode_with(f, 1), *y = cnode_with(f, 1);
    cap_ref_t *xr = put(f, x), *yr = put(f, y);
    cap_t *x2 = cnode_with(f, 1), *y2 = cnode_with(f, 1);
    test_set_ref(x2, 0, yr);
    test_set_ref(y2, 0, xr);
    CHECK_EQ_INT(cap_store_set_instance(f->s, xr, x2, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_set_instance(f->s, yr, y2, NULL), CAP_OK);
    cap_t *dr = cnode_with(f, 1);
    test_set_hash_of(dr, 1, 9);
    test_set_ref(dr, 0, xr);
    f->deep_root = put(f, dr);

    cap_t *g = cnode_with(f, 1);
    test_set_hash_of(g, 0, 4);
    f->graduated = put(f, g);
    cap_target_t t = cap_target_of_ref(f->graduated);
    cap_hash_t gh;
    CHECK_EQ_INT(cap_store_settle(f->s, &t, &gh, NULL), CAP_OK);

    CHECK_EQ_INT(cap_store_promote_blob_to_instance(f->s, &f->b1, &f->promoted), CAP_OK);
    keep(f, f->promoted);

    /* `dangling` holds a Ref to `gone_child`, which another settle graduated. */
    cap_t *gc = cnode_with(f, 1);
    test_set_hash_of(gc, 1, 5);
    f->gone_child = put(f, gc);
    cap_t *p1 = cnode_with(f, 1), *p2 = cnode_with(f, 2);
    test_set_ref(p1, 0, f->gone_child);
    test_set_ref(p2, 0, f->gone_child);
    f->dangling = put(f, p1);
    cap_ref_t *p2r = put(f, p2);
    t = cap_target_of_ref(p2r);
    CHECK_EQ_INT(cap_store_settle(f->s, &t, &gh, NULL), CAP_OK);

    /* `lonely`: only the store holds its cap. */
    cap_t *l = NULL;
    CHECK_EQ_INT(cap_cnode_new(&l, &ta.alloc, 2), CAP_OK);
    f->lonely = put(f, l);
    cap_release(l);

    cap_t *fc = cnode_with(f, 1);
    CHECK_EQ_INT(cap_store_put_instance(f->other, fc, &f->foreign), CAP_OK);
}

static void fixture_free(fixture_t *f)
{
    for (size_t i = 0; i < f->nh; i++) cap_ref_release(f->h[i]);
    cap_ref_release(f->foreign);
    for (size_t i = 0; i < f->nc; i++) cap_release(f->caps[i]);
    cap_store_free(f->s);
    cap_store_free(f->other);
    CHECK(test_alloc_clean(&ta));
}

static test_watch_t watched(const fixture_t *f)
{
    return (test_watch_t){f->s, f->h, f->nh, f->caps, f->nc};
}

/* Compare the store with the fingerprint taken before the failed call. */
static void same(const fixture_t *f, const test_fingerprint_t *before, const char *what, int line)
{
    test_watch_t w = watched(f);
    bool ok = test_fp_same(&w, before);
    check_count++;
    if (!ok) {
        check_failures++;
        fprintf(stderr, "%s:%d: store changed by failed %s\n", __FILE__, line, what);
    }
}

#define EXPECT_UNCHANGED(f, fp, call, code)                                                    \
    do {                                                                                       \
        test_watch_t w_ = watched(f);                                                          \
        test_fp_take(&w_, (fp));                                                               \
        CHECK_EQ_INT((call), (code));                                                          \
        same((f), (fp), #call, __LINE__);                                                      \
        w_ = watched(f);                                                                       \
        test_fp_drop(&w_, (fp));                                                               \
    } while (0)

static int edit_fail_after_change(cap_t *c, void *arg)
{
    (void)arg;
    cap_hash_t h = test_hash_of(77);
    cap_target_t t = cap_target_of_hash(&h);
    if (cap_cnode_set(c, 0, &t) != CAP_OK) return CAP_EIMAGE;
    return CAP_EIMAGE; /* abandon after changing the copy */
}

static int edit_out_of_range(cap_t *c, void *arg)
{
    (void)arg;
    cap_hash_t h = test_hash_of(78);
    cap_target_t t = cap_target_of_hash(&h);
    return cap_cnode_set(c, 1000, &t); /* CAP_ESLOTRANGE, changes nothing */
}

static int edit_add_foreign(cap_t *c, void *arg)
{
    cap_target_t t = cap_target_of_ref((cap_ref_t *)arg);
    return cap_cnode_set(c, 0, &t);
}

static void test_errors(void)
{
    fixture_t f;
    test_fingerprint_t fp;
    fixture_init(&f);
    cap_store_t *s = f.s;
    cap_err_t err;
    cap_t *out = (cap_t *)1;
    cap_hash_t h, missing = test_hash_of(999);
    cap_ref_t *r = (cap_ref_t *)1;
    cap_target_t t;

    /* Lookups */
    EXPECT_UNCHANGED(&f, &fp, cap_store_get_blob(s, &missing, &out), CAP_EBLOBMISSING);
    CHECK(out == NULL);
    EXPECT_UNCHANGED(&f, &fp, cap_store_get_instance(s, f.graduated, &out), CAP_EINSTANCEMISSING);
    EXPECT_UNCHANGED(&f, &fp, cap_store_get_instance(s, f.foreign, &out), CAP_EINVAL);
    EXPECT_UNCHANGED(&f, &fp, cap_store_get_instance(s, NULL, &out), CAP_EINVAL);
    memset(&t, 0, sizeof t);
    EXPECT_UNCHANGED(&f, &fp, cap_store_get(s, &t, &out), CAP_EINVAL);
    EXPECT_UNCHANGED(&f, &fp, cap_store_get_blob(s, &missing, NULL), CAP_EINVAL);

    /* Puts */
    cap_t *with_ref = cnode_with(&f, 2);
    test_set_ref(with_ref, 0, f.chain_child);
    EXPECT_UNCHANGED(&f, &fp, cap_store_put_cap(s, with_ref, &h), CAP_EUNSETTLED);
    EXPECT_UNCHANGED(&f, &fp, cap_store_put_cap_with_hash(s, &f.b1, with_ref), CAP_EUNSETTLED);
    cap_t *plain = cnode_with(&f, 2);
    test_set_hash_of(plain, 3, 50);
    EXPECT_UNCHANGED(&f, &fp, cap_store_put_cap_with_hash(s, &missing, plain), CAP_EMISMATCH);
    CHECK(!cap_is_frozen(plain));
    EXPECT_UNCHANGED(&f, &fp, cap_store_put_cap_with_hash(s, &f.b1, plain), CAP_EMISMATCH);
    EXPECT_UNCHANGED(&f, &fp, cap_store_put_cap(s, NULL, &h), CAP_EINVAL);
    cap_t *holds_foreign = cnode_with(&f, 1);
    test_set_ref(holds_foreign, 1, f.foreign);
    EXPECT_UNCHANGED(&f, &fp, cap_store_put_instance(s, holds_foreign, &r), CAP_EINVAL);
    CHECK(r == NULL);
    EXPECT_UNCHANGED(&f, &fp, cap_store_put_instance(s, NULL, &r), CAP_EINVAL);
    EXPECT_UNCHANGED(&f, &fp, cap_store_promote_blob_to_instance(s, &missing, &r), CAP_EBLOBMISSING);
    CHECK(r == NULL);

    /* set_instance */
    memset(&err, 0, sizeof err);
    EXPECT_UNCHANGED(&f, &fp, cap_store_set_instance(s, f.graduated, plain, &err),
                     CAP_EINSTANCEMISSING);
    CHECK_EQ_INT(err.code, CAP_EINSTANCEMISSING);
    CHECK(err.id == cap_ref_id(f.graduated));
    char msg[128];
    cap_err_format(&err, msg, sizeof msg);
    char want[64];
    snprintf(want, sizeof want, "%llu", (unsigned long long)cap_ref_id(f.graduated));
    CHECK(strstr(msg, want) != NULL);
    EXPECT_UNCHANGED(&f, &fp, cap_store_set_instance(s, f.lonely, holds_foreign, NULL), CAP_EINVAL);
    EXPECT_UNCHANGED(&f, &fp, cap_store_set_instance(s, f.foreign, plain, NULL), CAP_EINVAL);
    EXPECT_UNCHANGED(&f, &fp, cap_store_set_instance(s, f.lonely, NULL, NULL), CAP_EINVAL);

    /* settle */
    t = cap_target_of_ref(f.cyc_a);
    h = missing;
    EXPECT_UNCHANGED(&f, &fp, cap_store_settle(s, &t, &h, NULL), CAP_ECYCLE);
    CHECK(memcmp(h.bytes, missing.bytes, 32) == 0);
    t = cap_target_of_ref(f.deep_root);
    EXPECT_UNCHANGED(&f, &fp, cap_store_settle(s, &t, &h, NULL), CAP_ECYCLE);
    t = cap_target_of_ref(f.dangling);
    memset(&err, 0, sizeof err);
    EXPECT_UNCHANGED(&f, &fp, cap_store_settle(s, &t, &h, &err), CAP_EINSTANCEMISSING);
    CHECK(err.id == cap_ref_id(f.gone_child));
    t = cap_target_of_ref(f.graduated);
    memset(&err, 0, sizeof err);
    EXPECT_UNCHANGED(&f, &fp, cap_store_settle(s, &t, &h, &err), CAP_EINSTANCEMISSING);
    CHECK(err.id == cap_ref_id(f.graduated));
    t = cap_target_of_ref(f.foreign);
    EXPECT_UNCHANGED(&f, &fp, cap_store_settle(s, &t, &h, NULL), CAP_EINVAL);
    memset(&t, 0, sizeof t);
    EXPECT_UNCHANGED(&f, &fp, cap_store_settle(s, &t, &h, NULL), CAP_EINVAL);

    /* edit_instance: an error abandons the edit, whoever else holds the cap. */
    EXPECT_UNCHANGED(&f, &fp, cap_store_edit_instance(s, f.chain_child, edit_fail_after_change, NULL, NULL),
                     CAP_EIMAGE);
    EXPECT_UNCHANGED(&f, &fp, cap_store_edit_instance(s, f.lonely, edit_out_of_range, NULL, NULL),
                     CAP_ESLOTRANGE);
    EXPECT_UNCHANGED(&f, &fp, cap_store_edit_instance(s, f.lonely, edit_fail_after_change, NULL, NULL),
                     CAP_EIMAGE);
    EXPECT_UNCHANGED(&f, &fp, cap_store_edit_instance(s, f.chain_child, edit_add_foreign, f.foreign, NULL),
                     CAP_EINVAL);
    memset(&err, 0, sizeof err);
    EXPECT_UNCHANGED(&f, &fp, cap_store_edit_instance(s, f.graduated, edit_out_of_range, NULL, &err),
                     CAP_EINSTANCEMISSING);
    CHECK(err.id == cap_ref_id(f.graduated));
    EXPECT_UNCHANGED(&f, &fp, cap_store_edit_instance(s, f.foreign, edit_out_of_range, NULL, NULL),
                     CAP_EINVAL);
    EXPECT_UNCHANGED(&f, &fp, cap_store_edit_instance(s, f.lonely, NULL, NULL, NULL), CAP_EINVAL);

    /* Snapshots with bad arguments */
    cap_blob_entry_t *e = (cap_blob_entry_t *)1;
    size_t n = 5;
    EXPECT_UNCHANGED(&f, &fp, cap_store_iter_blobs(s, NULL, &n), CAP_EINVAL);
    EXPECT_UNCHANGED(&f, &fp, cap_store_iter_blobs(s, &e, NULL), CAP_EINVAL);
    CHECK(e == NULL);

    /* The fixture itself is sane: the successful counterparts work. */
    t = cap_target_of_ref(f.chain_root);
    CHECK_EQ_INT(cap_store_settle(s, &t, &h, NULL), CAP_OK);
    CHECK(cap_store_contains_blob(s, &h));
    fixture_free(&f);
}

static void test_id_space(void)
{
    cap_store_options_t o = cap_store_options_host();
    o.alloc = &ta.alloc;
    o.first_id = UINT64_MAX - 1;
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_OK);
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, &ta.alloc, 1), CAP_OK);
    cap_ref_t *a = NULL, *b = (cap_ref_t *)1;
    CHECK_EQ_INT(cap_store_put_instance(s, c, &a), CAP_OK);
    CHECK(cap_ref_id(a) == UINT64_MAX - 1);
    long live = ta.live_blocks;
    CHECK_EQ_INT(cap_store_put_instance(s, c, &b), CAP_EIDSPACE);
    CHECK(b == NULL);
    CHECK_EQ_INT(ta.live_blocks, live); /* nothing kept */
    CHECK_EQ_INT(cap_store_instance_count(s), 1);
    CHECK_EQ_INT(cap_refcount(c), 2);
    cap_ref_release(a);
    cap_release(c);
    cap_store_free(s);
    CHECK(test_alloc_clean(&ta));
}

static void test_bad_options(void)
{
    cap_store_options_t o;
    memset(&o, 0, sizeof o);
    cap_store_t *s = (cap_store_t *)1;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_EINVAL); /* no allocator */
    CHECK(s == NULL);
    o.alloc = &ta.alloc;
    cap_lock_hooks_t bad = *cap_lock_pthread();
    bad.lock = NULL;
    o.locks = &bad;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_EINVAL);
    cap_store_storage_t st;
    CHECK_EQ_INT(cap_store_init_in_place(&st, &o, &s), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_init_in_place(NULL, &o, &s), CAP_EINVAL);
    CHECK(test_alloc_clean(&ta));
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_alloc_init(&ta);
    test_errors();
    test_id_space();
    test_bad_options();
    return check_done("test_store_errors");
}
