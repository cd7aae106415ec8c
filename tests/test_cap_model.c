/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The cap model: every constructor, getter and setter of the five kinds,
 * their errors, copy-on-write (pages shared, handles retained), make_mut,
 * equality, and the Ref-target walk settle uses. */
#include <stdatomic.h>

#include "cap/cap_internal.h"
#include "capstore/cap.h"
#include "check.h"
#include "test_alloc.h"

static test_alloc_t ta;
#define A (&ta.alloc)

/* A stand-in handle: its release just counts. */
static int dummy_releases;
static void dummy_release(struct cap_ref *r)
{
    atomic_fetch_sub(&r->state, CAP_REF_ONE);
    dummy_releases++;
}
static const struct cap_ref_ops dummy_ops = {dummy_release};
static void dummy_init(struct cap_ref *r, uint64_t id)
{
    atomic_init(&r->state, CAP_REF_IN_STORE | CAP_REF_ONE); /* the store + the test */
    r->id = id;
    r->ops = &dummy_ops;
    r->owner = NULL;
}

static cap_hash_t H(uint8_t fill)
{
    cap_hash_t h;
    memset(h.bytes, fill, 32);
    return h;
}

static void test_refs(void)
{
    struct cap_ref r;
    dummy_init(&r, 7);
    CHECK_EQ_INT(cap_ref_id(&r), 7);
    CHECK_EQ_INT(cap_ref_strong_count(&r), 2);
    CHECK(cap_ref_retain(&r) == &r);
    CHECK_EQ_INT(cap_ref_strong_count(&r), 3);
    int before = dummy_releases;
    cap_ref_release(&r);
    CHECK_EQ_INT(dummy_releases, before + 1);
    CHECK_EQ_INT(cap_ref_strong_count(&r), 2);
    cap_ref_release(NULL); /* no-op */
    CHECK_EQ_INT(dummy_releases, before + 1);
    /* queued bit does not count; the store bit does */
    atomic_store(&r.state, CAP_REF_QUEUED | CAP_REF_ONE);
    CHECK_EQ_INT(cap_ref_strong_count(&r), 1);
    CHECK(!cap_hash_is_zero(&(cap_hash_t){{1}}));
    cap_hash_t z = H(0);
    CHECK(cap_hash_is_zero(&z));
}

static void test_common_and_type(void)
{
    cap_t *t = NULL;
    cap_hash_t h1 = H(1), h2 = H(2), z = H(0);
    CHECK_EQ_INT(cap_type_new(&t, A, NULL), CAP_EINVAL);
    CHECK_EQ_INT(cap_type_new(NULL, A, &h1), CAP_EINVAL);
    CHECK_EQ_INT(cap_type_new(&t, NULL, &h1), CAP_EINVAL);
    CHECK_EQ_INT(cap_type_new(&t, A, &h1), CAP_OK);
    CHECK_EQ_INT(cap_kind(t), CAP_KIND_TYPE);
    CHECK(cap_allocator(t) == A);
    CHECK_EQ_INT(cap_refcount(t), 1);
    CHECK(cap_is_writable(t));
    CHECK(!cap_is_frozen(t));
    CHECK_MEM(cap_type_image_hash_chain(t)->bytes, h1.bytes, 32);
    CHECK_EQ_INT(cap_type_set_image_hash_chain(t, &h2), CAP_OK);
    CHECK_MEM(cap_type_image_hash_chain(t)->bytes, h2.bytes, 32);
    CHECK_EQ_INT(cap_type_set_image_hash_chain(t, &z), CAP_OK); /* a zero chain is allowed */
    CHECK_EQ_INT(cap_type_set_image_hash_chain(t, NULL), CAP_EINVAL);
    CHECK(cap_type_image_hash_chain(NULL) == NULL);
    CHECK(!cap_has_refs(t));

    /* shared: EBUSY, nothing changes */
    cap_retain(t);
    CHECK_EQ_INT(cap_refcount(t), 2);
    CHECK(!cap_is_writable(t));
    CHECK_EQ_INT(cap_type_set_image_hash_chain(t, &h1), CAP_EBUSY);
    CHECK_MEM(cap_type_image_hash_chain(t)->bytes, z.bytes, 32);
    cap_release(t);
    CHECK(cap_is_writable(t));

    /* frozen: EBUSY for good; make_mut copies */
    cap_freeze(t);
    CHECK(cap_is_frozen(t));
    CHECK(!cap_is_writable(t));
    CHECK_EQ_INT(cap_type_set_image_hash_chain(t, &h1), CAP_EBUSY);
    cap_t *keep = cap_retain(t);
    cap_t *m = t;
    CHECK_EQ_INT(cap_make_mut(&m), CAP_OK);
    CHECK(m != t);
    CHECK(cap_is_writable(m));
    CHECK(!cap_is_frozen(m));
    CHECK(cap_equal(m, keep));
    CHECK_EQ_INT(cap_refcount(keep), 1); /* make_mut released the caller's reference */
    CHECK_EQ_INT(cap_type_set_image_hash_chain(m, &h1), CAP_OK);
    CHECK(!cap_equal(m, keep));

    /* make_mut of a writable cap leaves it */
    cap_t *same = m;
    CHECK_EQ_INT(cap_make_mut(&same), CAP_OK);
    CHECK(same == m);
    CHECK_EQ_INT(cap_make_mut(NULL), CAP_EINVAL);

    /* wrong kind */
    CHECK_EQ_INT(cap_cnode_set(m, 0, &(cap_target_t){.kind = CAP_TARGET_NONE}), CAP_EINVAL);
    CHECK_EQ_INT(cap_data_resize(m, 1), CAP_EINVAL);
    CHECK_EQ_INT(cap_instance_set_pc(m, 1), CAP_EINVAL);
    CHECK(!cap_equal(m, NULL));
    CHECK(cap_equal(NULL, NULL));
    cap_release(m);
    cap_release(keep);
    cap_release(NULL);
}

static void test_cnode(void)
{
    cap_t *c = NULL;
    cap_hash_t h1 = H(1), h2 = H(2), z = H(0);
    cap_target_t t1 = cap_target_of_hash(&h1), t2 = cap_target_of_hash(&h2);
    cap_target_t tz = cap_target_of_hash(&z), tnull = cap_target_of_ref(NULL), got;
    cap_target_t none = {.kind = CAP_TARGET_NONE};

    CHECK_EQ_INT(cap_cnode_new(&c, A, 17), CAP_EINVAL);
    CHECK_EQ_INT(cap_cnode_new(&c, A, 100), CAP_EINVAL);
    CHECK_EQ_INT(cap_cnode_new(&c, A, 3), CAP_OK);
    CHECK_EQ_INT(cap_cnode_size_log(c), 3);
    CHECK_EQ_INT(cap_cnode_count(c), 0);
    CHECK_EQ_INT(cap_cnode_set(c, 8, &t1), CAP_ESLOTRANGE);
    CHECK_EQ_INT(cap_cnode_set(c, 0xffffffffu, &t1), CAP_ESLOTRANGE);
    CHECK_EQ_INT(cap_cnode_get(c, 8, &got), CAP_ESLOTRANGE);
    CHECK_EQ_INT(cap_cnode_clear(c, 8), CAP_ESLOTRANGE);
    CHECK_EQ_INT(cap_cnode_set(c, 1, &tz), CAP_EINVAL);
    CHECK_EQ_INT(cap_cnode_set(c, 1, &tnull), CAP_EINVAL);
    CHECK_EQ_INT(cap_cnode_set(c, 1, NULL), CAP_EINVAL);
    CHECK_EQ_INT(cap_cnode_count(c), 0);

    CHECK_EQ_INT(cap_cnode_set(c, 5, &t1), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(c, 7, &t2), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(c, 0, &t2), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(c, 3, &t1), CAP_OK);
    CHECK_EQ_INT(cap_cnode_count(c), 4);
    uint32_t want[4] = {0, 3, 5, 7}, slot;
    for (size_t i = 0; i < 4; i++) {
        CHECK_EQ_INT(cap_cnode_entry(c, i, &slot, &got), CAP_OK);
        CHECK_EQ_INT(slot, want[i]);
        CHECK_EQ_INT(got.kind, CAP_TARGET_HASH);
    }
    CHECK_EQ_INT(cap_cnode_entry(c, 4, &slot, &got), CAP_EINVAL);
    CHECK_EQ_INT(cap_cnode_get(c, 5, &got), CAP_OK);
    CHECK(got.kind == CAP_TARGET_HASH && memcmp(got.hash.bytes, h1.bytes, 32) == 0);
    CHECK_EQ_INT(cap_cnode_get(c, 4, &got), CAP_OK);
    CHECK_EQ_INT(got.kind, CAP_TARGET_NONE);
    /* replace */
    CHECK_EQ_INT(cap_cnode_set(c, 5, &t2), CAP_OK);
    CHECK_EQ_INT(cap_cnode_count(c), 4);
    CHECK_EQ_INT(cap_cnode_get(c, 5, &got), CAP_OK);
    CHECK_MEM(got.hash.bytes, h2.bytes, 32);
    /* NONE target clears; clearing an empty slot is fine */
    CHECK_EQ_INT(cap_cnode_set(c, 5, &none), CAP_OK);
    CHECK_EQ_INT(cap_cnode_count(c), 3);
    CHECK_EQ_INT(cap_cnode_clear(c, 5), CAP_OK);
    CHECK_EQ_INT(cap_cnode_clear(c, 0), CAP_OK);
    CHECK_EQ_INT(cap_cnode_count(c), 2);
    CHECK_EQ_INT(cap_cnode_entry(c, 0, &slot, NULL), CAP_OK);
    CHECK_EQ_INT(slot, 3);

    /* EBUSY when shared or frozen */
    cap_t *extra = cap_retain(c);
    CHECK_EQ_INT(cap_cnode_set(c, 1, &t1), CAP_EBUSY);
    CHECK_EQ_INT(cap_cnode_clear(c, 3), CAP_EBUSY);
    CHECK_EQ_INT(cap_cnode_count(c), 2);
    cap_release(extra);
    cap_freeze(c);
    CHECK_EQ_INT(cap_cnode_set(c, 1, &t1), CAP_EBUSY);
    CHECK_EQ_INT(cap_cnode_clear(c, 3), CAP_EBUSY);
    cap_release(c);

    /* size_log 0: one slot */
    CHECK_EQ_INT(cap_cnode_new(&c, A, 0), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(c, 1, &t1), CAP_ESLOTRANGE);
    CHECK_EQ_INT(cap_cnode_set(c, 0, &t1), CAP_OK);
    cap_release(c);

    /* 65536 slots, 3 occupied: memory for 3, not 65536 */
    long long before = ta.live_bytes;
    CHECK_EQ_INT(cap_cnode_new(&c, A, 16), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(c, 65535, &t1), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(c, 0, &t1), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(c, 30000, &t2), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(c, 65536, &t2), CAP_ESLOTRANGE);
    CHECK(ta.live_bytes - before < 1024);
    cap_release(c);

    /* appending in order is amortised O(1): 2^14 slots in order, and
     * the same slots in a scrambled order give an equal cnode */
    cap_t *a1, *a2;
    CHECK_EQ_INT(cap_cnode_new(&a1, A, 16), CAP_OK);
    CHECK_EQ_INT(cap_cnode_new(&a2, A, 16), CAP_OK);
    long reallocs_before = ta.count;
    for (uint32_t s = 0; s < 16384; s++) {
        cap_hash_t h = H(1);
        memcpy(h.bytes, &s, 4);
        cap_target_t t = cap_target_of_hash(&h);
        if (cap_cnode_set(a1, s, &t) != CAP_OK) CHECK(0);
    }
    CHECK(ta.count - reallocs_before < 40); /* geometric growth */
    for (uint32_t k = 0; k < 16384; k++) {
        uint32_t s = (k * 40503u) & 0x3fffu; /* odd multiplier: a permutation */
        cap_hash_t h = H(1);
        memcpy(h.bytes, &s, 4);
        cap_target_t t = cap_target_of_hash(&h);
        if (cap_cnode_set(a2, s, &t) != CAP_OK) CHECK(0);
    }
    CHECK_EQ_INT(cap_cnode_count(a1), 16384);
    CHECK(cap_equal(a1, a2));
    CHECK_EQ_INT(cap_cnode_entry(a2, 1234, &slot, &got), CAP_OK);
    CHECK_EQ_INT(slot, 1234);
    uint32_t v;
    memcpy(&v, got.hash.bytes, 4);
    CHECK_EQ_INT(v, 1234);
    cap_release(a1);
    cap_release(a2);

    /* D1: set slot 5 then clear it == never set (equal and same hash) */
    cap_t *d1a, *d1b;
    cap_hash_t ha, hb;
    CHECK_EQ_INT(cap_cnode_new(&d1a, A, 3), CAP_OK);
    CHECK_EQ_INT(cap_cnode_new(&d1b, A, 3), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(d1a, 0, &t1), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(d1b, 0, &t1), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(d1a, 5, &t2), CAP_OK);
    CHECK_EQ_INT(cap_hash(d1a, &ha), CAP_OK);
    CHECK_EQ_INT(cap_hash(d1b, &hb), CAP_OK);
    CHECK(memcmp(ha.bytes, hb.bytes, 32) != 0);
    CHECK_EQ_INT(cap_cnode_clear(d1a, 5), CAP_OK);
    CHECK(cap_equal(d1a, d1b));
    CHECK_EQ_INT(cap_hash(d1a, &ha), CAP_OK);
    CHECK_MEM(ha.bytes, hb.bytes, 32);
    cap_release(d1a);
    cap_release(d1b);
}

static void test_cnode_refs(void)
{
    struct cap_ref r1, r2;
    dummy_init(&r1, 1);
    dummy_init(&r2, 2);
    cap_hash_t h1 = H(1), hx = H(0x77), z = H(0);
    cap_target_t tr1 = cap_target_of_ref(&r1), tr2 = cap_target_of_ref(&r2), t1 = cap_target_of_hash(&h1);
    cap_t *c, *cp;
    CHECK_EQ_INT(cap_cnode_new(&c, A, 4), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(c, 2, &tr1), CAP_OK);
    CHECK_EQ_INT(cap_ref_strong_count(&r1), 3);
    CHECK_EQ_INT(cap_cnode_set(c, 9, &tr1), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(c, 4, &tr2), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(c, 6, &t1), CAP_OK);
    CHECK_EQ_INT(cap_ref_strong_count(&r1), 4);
    CHECK(cap_has_refs(c));
    CHECK_EQ_INT(cap_ref_target_count(c), 3);
    CHECK(cap_ref_target_at(c, 0) == &r1);
    CHECK(cap_ref_target_at(c, 1) == &r2);
    CHECK(cap_ref_target_at(c, 2) == &r1);
    CHECK(cap_ref_target_at(c, 3) == NULL);
    cap_target_t got;
    CHECK_EQ_INT(cap_cnode_get(c, 4, &got), CAP_OK);
    CHECK(got.kind == CAP_TARGET_REF && got.ref == &r2);
    cap_hash_t hh;
    CHECK_EQ_INT(cap_hash(c, &hh), CAP_EUNSETTLED);

    /* a copy retains every handle */
    CHECK_EQ_INT(cap_copy(c, &cp), CAP_OK);
    CHECK_EQ_INT(cap_ref_strong_count(&r1), 6);
    CHECK_EQ_INT(cap_ref_strong_count(&r2), 4);
    CHECK(cap_equal(c, cp));

    /* replacing a ref by the same ref keeps the count */
    CHECK_EQ_INT(cap_cnode_set(cp, 4, &tr2), CAP_OK);
    CHECK_EQ_INT(cap_ref_strong_count(&r2), 4);
    /* rewrite r1 -> hx in the copy: its two references go */
    CHECK_EQ_INT(cap_ref_target_rewrite(cp, &r1, &z), CAP_EINVAL);
    CHECK_EQ_INT(cap_ref_target_rewrite(cp, &r1, &hx), CAP_OK);
    CHECK_EQ_INT(cap_ref_strong_count(&r1), 4);
    CHECK_EQ_INT(cap_ref_target_count(cp), 1);
    CHECK(cap_ref_target_at(cp, 0) == &r2);
    CHECK_EQ_INT(cap_cnode_get(cp, 9, &got), CAP_OK);
    CHECK(got.kind == CAP_TARGET_HASH && memcmp(got.hash.bytes, hx.bytes, 32) == 0);
    CHECK(!cap_equal(c, cp));
    /* rewrite needs a writable cap */
    cap_retain(c);
    CHECK_EQ_INT(cap_ref_target_rewrite(c, &r1, &hx), CAP_EBUSY);
    cap_release(c);
    /* clearing a ref slot releases it */
    CHECK_EQ_INT(cap_cnode_clear(cp, 4), CAP_OK);
    CHECK_EQ_INT(cap_ref_strong_count(&r2), 3);
    CHECK(!cap_has_refs(cp));
    CHECK_EQ_INT(cap_hash(cp, &hh), CAP_OK);
    cap_release(cp);
    /* releasing the cnode releases what it holds */
    cap_release(c);
    CHECK_EQ_INT(cap_ref_strong_count(&r1), 2);
    CHECK_EQ_INT(cap_ref_strong_count(&r2), 2);
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed + i * 7 + (i >> 8));
}

static void test_data(void)
{
    cap_t *d = NULL;
    uint8_t page[4096], other[4096];
    fill(page, sizeof page, 1);
    fill(other, sizeof other, 99);
    static const uint32_t bad[] = {0, 16, 31, 33, 100, 4095, 131072, 0x80000000u};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(cap_data_new(&d, A, bad[i]), CAP_EINVAL);
        CHECK_EQ_INT(cap_data_new_inline(&d, A, bad[i], page, 10), CAP_EINVAL);
    }
    for (uint32_t ps = 32; ps <= 65536; ps *= 2) {
        CHECK_EQ_INT(cap_data_new(&d, A, ps), CAP_OK);
        CHECK_EQ_INT(cap_data_page_size(d), ps);
        CHECK_EQ_INT(cap_data_page_count(d), 0);
        cap_release(d);
    }

    CHECK_EQ_INT(cap_data_new(&d, A, 4096), CAP_OK);
    CHECK_EQ_INT(cap_data_resize(d, 3), CAP_OK);
    CHECK_EQ_INT(cap_data_page_count(d), 3);
    for (uint64_t i = 0; i < 3; i++) CHECK_EQ_INT(cap_data_page_state(d, i), CAP_PAGE_EMPTY);
    CHECK(cap_data_page_bytes(d, 0) == NULL);
    CHECK_EQ_INT(cap_data_resize(d, ((uint64_t)1 << 32) + 1), CAP_EINVAL);

    /* set_page: exact length only */
    cap_err_t err;
    memset(&err, 0, sizeof err);
    CHECK_EQ_INT(cap_data_set_page(d, 0, page, 4095, &err), CAP_EPAGESIZE);
    CHECK_EQ_INT(err.code, CAP_EPAGESIZE);
    CHECK_EQ_INT(err.expected, 4096);
    CHECK_EQ_INT(err.got, 4095);
    CHECK_EQ_INT(cap_data_set_page(d, 0, page, 4097, NULL), CAP_EPAGESIZE);
    CHECK_EQ_INT(cap_data_page_state(d, 0), CAP_PAGE_EMPTY);
    CHECK_EQ_INT(cap_data_set_page(d, 3, page, 4096, NULL), CAP_EINVAL); /* index out of range */
    CHECK_EQ_INT(cap_data_set_page(d, 0, page, 4096, &err), CAP_OK);
    CHECK_EQ_INT(cap_data_page_state(d, 0), CAP_PAGE_LOADED);
    CHECK(cap_data_page_bytes(d, 0) != page);
    CHECK_MEM(cap_data_page_bytes(d, 0), page, 4096);

    cap_hash_t root0, rootm = H(0x5a), r;
    CHECK_EQ_INT(cap_data_page_root(d, 0, &root0), CAP_OK);
    CHECK_EQ_INT(cap_data_set_page_missing(d, 2, &rootm), CAP_OK);
    CHECK_EQ_INT(cap_data_set_page_missing(d, 2, NULL), CAP_EINVAL);
    CHECK_EQ_INT(cap_data_page_state(d, 2), CAP_PAGE_MISSING);
    CHECK(cap_data_page_bytes(d, 2) == NULL);
    CHECK_EQ_INT(cap_data_page_root(d, 2, &r), CAP_OK);
    CHECK_MEM(r.bytes, rootm.bytes, 32);
    CHECK_EQ_INT(cap_data_page_root(d, 3, &r), CAP_EINVAL);
    CHECK_EQ_INT(cap_data_page_state(d, 99), CAP_PAGE_EMPTY);

    /* write: within a Loaded page in place (root cache invalidated) */
    const uint8_t *p0 = cap_data_page_bytes(d, 0);
    CHECK_EQ_INT(cap_data_write(d, 10, "abc", 3), CAP_OK);
    CHECK(cap_data_page_bytes(d, 0) == p0);
    CHECK_MEM(p0 + 10, "abc", 3);
    CHECK_EQ_INT(cap_data_page_root(d, 0, &r), CAP_OK);
    CHECK(memcmp(r.bytes, root0.bytes, 32) != 0);
    cap_t *ref_d;
    memcpy(page + 10, "abc", 3);
    CHECK_EQ_INT(cap_data_new_inline(&ref_d, A, 4096, page, 4096), CAP_OK);
    cap_hash_t r2;
    CHECK_EQ_INT(cap_data_page_root(ref_d, 0, &r2), CAP_OK);
    CHECK_MEM(r.bytes, r2.bytes, 32);
    cap_release(ref_d);
    /* across pages: page 0 tail + Empty page 1 head; Empty becomes Loaded */
    uint8_t span[200];
    fill(span, sizeof span, 42);
    CHECK_EQ_INT(cap_data_write(d, 4096 - 100, span, 200), CAP_OK);
    CHECK_EQ_INT(cap_data_page_state(d, 1), CAP_PAGE_LOADED);
    CHECK_MEM(cap_data_page_bytes(d, 0) + 3996, span, 100);
    CHECK_MEM(cap_data_page_bytes(d, 1), span + 100, 100);
    CHECK(cap_data_page_bytes(d, 1)[100] == 0 && cap_data_page_bytes(d, 1)[4095] == 0);
    /* a Missing page in range, or past the end: EINVAL, nothing written */
    CHECK_EQ_INT(cap_data_write(d, 4096 * 2 - 1, "xy", 2), CAP_EINVAL);
    CHECK(cap_data_page_bytes(d, 1)[4095] == 0);
    CHECK_EQ_INT(cap_data_write(d, 4096 * 3 - 1, "xy", 2), CAP_EINVAL);
    CHECK_EQ_INT(cap_data_write(d, 4096 * 3 + 1, "x", 1), CAP_EINVAL);
    CHECK_EQ_INT(cap_data_write(d, 0, NULL, 0), CAP_OK);

    /* copy shares pages; writing one copy copies only that page */
    cap_t *cp;
    CHECK_EQ_INT(cap_copy(d, &cp), CAP_OK);
    CHECK(cap_equal(d, cp));
    CHECK(cap_data_page_bytes(cp, 0) == cap_data_page_bytes(d, 0));
    CHECK(cap_data_page_bytes(cp, 1) == cap_data_page_bytes(d, 1));
    CHECK_EQ_INT(cap_data_write(cp, 5, "Z", 1), CAP_OK);
    CHECK(cap_data_page_bytes(cp, 0) != cap_data_page_bytes(d, 0));
    CHECK(cap_data_page_bytes(cp, 1) == cap_data_page_bytes(d, 1));
    CHECK(cap_data_page_bytes(cp, 0)[5] == 'Z');
    CHECK(cap_data_page_bytes(d, 0)[5] == page[5]);
    CHECK(!cap_equal(d, cp));
    /* a copied page's root is recomputed; the original's is unchanged */
    CHECK_EQ_INT(cap_data_page_root(d, 0, &r2), CAP_OK);
    CHECK_EQ_INT(cap_data_page_root(cp, 0, &root0), CAP_OK);
    CHECK(memcmp(r2.bytes, root0.bytes, 32) != 0);
    /* a shared page written across two pages: both copied */
    cap_t *cp2;
    CHECK_EQ_INT(cap_copy(d, &cp2), CAP_OK);
    CHECK_EQ_INT(cap_data_write(cp2, 4000, span, 200), CAP_OK);
    CHECK(cap_data_page_bytes(cp2, 0) != cap_data_page_bytes(d, 0));
    CHECK(cap_data_page_bytes(cp2, 1) != cap_data_page_bytes(d, 1));
    CHECK_MEM(cap_data_page_bytes(d, 1), span + 100, 100);
    cap_release(cp2);
    /* set_page on a copy replaces only that page */
    CHECK_EQ_INT(cap_data_set_page(cp, 1, other, 4096, NULL), CAP_OK);
    CHECK_MEM(cap_data_page_bytes(cp, 1), other, 4096);
    CHECK_MEM(cap_data_page_bytes(d, 1), span + 100, 100);
    CHECK_EQ_INT(cap_data_set_page_empty(cp, 0), CAP_OK);
    CHECK_EQ_INT(cap_data_page_state(cp, 0), CAP_PAGE_EMPTY);
    CHECK_EQ_INT(cap_data_page_state(d, 0), CAP_PAGE_LOADED);
    CHECK_EQ_INT(cap_data_set_page_empty(cp, 7), CAP_EINVAL);
    /* shrink, grow: the new pages are Empty */
    CHECK_EQ_INT(cap_data_resize(cp, 1), CAP_OK);
    CHECK_EQ_INT(cap_data_resize(cp, 5), CAP_OK);
    CHECK_EQ_INT(cap_data_page_count(cp), 5);
    for (uint64_t i = 0; i < 5; i++) CHECK_EQ_INT(cap_data_page_state(cp, i), CAP_PAGE_EMPTY);
    CHECK_EQ_INT(cap_data_resize(cp, 0), CAP_OK);
    CHECK_EQ_INT(cap_data_page_count(cp), 0);

    /* EBUSY when shared or frozen */
    cap_t *extra = cap_retain(d);
    CHECK_EQ_INT(cap_data_resize(d, 9), CAP_EBUSY);
    CHECK_EQ_INT(cap_data_set_page(d, 0, other, 4096, NULL), CAP_EBUSY);
    CHECK_EQ_INT(cap_data_set_page_empty(d, 0), CAP_EBUSY);
    CHECK_EQ_INT(cap_data_set_page_missing(d, 0, &rootm), CAP_EBUSY);
    CHECK_EQ_INT(cap_data_write(d, 0, "q", 1), CAP_EBUSY);
    CHECK_EQ_INT(cap_data_page_count(d), 3);
    CHECK(cap_data_page_bytes(d, 0)[0] == page[0]);
    cap_release(extra);
    cap_freeze(d);
    CHECK_EQ_INT(cap_data_write(d, 0, "q", 1), CAP_EBUSY);
    /* make_mut of a frozen data cap shares its pages */
    cap_t *keep = cap_retain(d), *m = d;
    CHECK_EQ_INT(cap_make_mut(&m), CAP_OK);
    CHECK(m != keep);
    CHECK(cap_data_page_bytes(m, 0) == cap_data_page_bytes(keep, 0));
    CHECK_EQ_INT(cap_data_write(m, 0, "q", 1), CAP_OK);
    CHECK(cap_data_page_bytes(keep, 0)[0] == page[0]);
    CHECK(cap_data_page_bytes(m, 0)[0] == 'q');
    cap_release(m);
    cap_release(keep);
    cap_release(cp);

    /* inline: split, last page zero-padded, all pages Loaded */
    uint8_t buf[5000];
    fill(buf, sizeof buf, 3);
    memset(buf + 4096, 0, 904); /* an all-zero second page stays Loaded */
    CHECK_EQ_INT(cap_data_new_inline(&d, A, 4096, buf, 5000), CAP_OK);
    CHECK_EQ_INT(cap_data_page_count(d), 2);
    CHECK_EQ_INT(cap_data_page_state(d, 0), CAP_PAGE_LOADED);
    CHECK_EQ_INT(cap_data_page_state(d, 1), CAP_PAGE_LOADED);
    CHECK_MEM(cap_data_page_bytes(d, 0), buf, 4096);
    static const uint8_t zeros[4096];
    CHECK_MEM(cap_data_page_bytes(d, 1), zeros, 4096);
    cap_release(d);
    CHECK_EQ_INT(cap_data_new_inline(&d, A, 32, buf, 0), CAP_OK);
    CHECK_EQ_INT(cap_data_page_count(d), 0);
    cap_release(d);
    CHECK_EQ_INT(cap_data_new_inline(&d, A, 32, NULL, 5), CAP_EINVAL);
    CHECK_EQ_INT(cap_data_new_inline(&d, A, 32, buf, 64), CAP_OK);
    CHECK_EQ_INT(cap_data_page_count(d), 2);
    CHECK_MEM(cap_data_page_bytes(d, 1), buf + 32, 32);
    cap_release(d);

    /* a big write over many shared pages (beyond the on-stack list) */
    CHECK_EQ_INT(cap_data_new(&d, A, 32), CAP_OK);
    CHECK_EQ_INT(cap_data_resize(d, 100), CAP_OK);
    uint8_t big[3200];
    fill(big, sizeof big, 9);
    CHECK_EQ_INT(cap_data_write(d, 0, big, 3200), CAP_OK);
    CHECK_EQ_INT(cap_copy(d, &cp), CAP_OK);
    uint8_t big2[3200 - 40];
    fill(big2, sizeof big2, 77);
    CHECK_EQ_INT(cap_data_write(cp, 20, big2, sizeof big2), CAP_OK);
    for (uint64_t i = 0; i < 100; i++) {
        CHECK(cap_data_page_bytes(cp, i) != cap_data_page_bytes(d, i));
        CHECK_MEM(cap_data_page_bytes(d, i), big + 32 * i, 32);
    }
    CHECK_MEM(cap_data_page_bytes(cp, 0), big, 20);
    CHECK_MEM(cap_data_page_bytes(cp, 0) + 20, big2, 12);
    CHECK_MEM(cap_data_page_bytes(cp, 99) + 12, big + 99 * 32 + 12, 20);
    CHECK_MEM(cap_data_page_bytes(cp, 50), big2 + 50 * 32 - 20, 32);
    cap_release(cp);
    cap_release(d);
}

static void test_instance(void)
{
    struct cap_ref r;
    dummy_init(&r, 3);
    cap_hash_t h1 = H(1), h2 = H(2), z = H(0);
    cap_target_t t1 = cap_target_of_hash(&h1), tz = cap_target_of_hash(&z), tr = cap_target_of_ref(&r);
    cap_target_t none = {.kind = CAP_TARGET_NONE}, got;
    cap_t *in = NULL;
    CHECK_EQ_INT(cap_instance_new(&in, A, &none), CAP_EINVAL);
    CHECK_EQ_INT(cap_instance_new(&in, A, &tz), CAP_EINVAL);
    CHECK_EQ_INT(cap_instance_new(&in, A, NULL), CAP_EINVAL);
    CHECK_EQ_INT(cap_instance_new(&in, A, &t1), CAP_OK);
    CHECK_EQ_INT(cap_kind(in), CAP_KIND_INSTANCE);
    CHECK(cap_hash_is_zero(cap_instance_image_hash_chain(in)));
    CHECK(cap_hash_is_zero(cap_instance_image_hash(in)));
    got = cap_instance_root_cnode(in);
    CHECK(got.kind == CAP_TARGET_HASH && memcmp(got.hash.bytes, h1.bytes, 32) == 0);
    CHECK_EQ_INT(cap_instance_mem_size(in), 0);
    CHECK_EQ_INT(cap_instance_pc(in), 0);
    CHECK_EQ_INT(cap_instance_overlay_count(in), 0);

    CHECK_EQ_INT(cap_instance_set_image_hash_chain(in, &h1), CAP_OK);
    CHECK_EQ_INT(cap_instance_set_image_hash(in, &h2), CAP_OK);
    CHECK_EQ_INT(cap_instance_set_image_hash(in, NULL), CAP_EINVAL);
    CHECK_EQ_INT(cap_instance_set_mem_size(in, 0x10000), CAP_OK);
    for (unsigned i = 0; i < CAP_NUM_REGS; i++) CHECK_EQ_INT(cap_instance_set_reg(in, i, 100 + i), CAP_OK);
    CHECK_EQ_INT(cap_instance_set_reg(in, CAP_NUM_REGS, 1), CAP_EINVAL);
    CHECK_EQ_INT(cap_instance_set_pc(in, 0x1234), CAP_OK);
    CHECK_EQ_INT(cap_instance_set_gas_remaining(in, 999), CAP_OK);
    CHECK_EQ_INT(cap_instance_add_overlay(in, 16, "hello", 5), CAP_OK);
    CHECK_EQ_INT(cap_instance_add_overlay(in, 99, NULL, 0), CAP_OK);
    CHECK_EQ_INT(cap_instance_add_overlay(in, 1, "abc", 3), CAP_OK);
    CHECK_EQ_INT(cap_instance_add_overlay(in, 1, NULL, 3), CAP_EINVAL);
    CHECK_MEM(cap_instance_image_hash_chain(in)->bytes, h1.bytes, 32);
    CHECK_MEM(cap_instance_image_hash(in)->bytes, h2.bytes, 32);
    CHECK_EQ_INT(cap_instance_mem_size(in), 0x10000);
    for (unsigned i = 0; i < CAP_NUM_REGS; i++) CHECK_EQ_INT(cap_instance_reg(in, i), 100 + i);
    CHECK_EQ_INT(cap_instance_reg(in, CAP_NUM_REGS), 0);
    CHECK_EQ_INT(cap_instance_pc(in), 0x1234);
    CHECK_EQ_INT(cap_instance_gas_remaining(in), 999);
    CHECK_EQ_INT(cap_instance_overlay_count(in), 3);
    uint32_t start;
    const uint8_t *bytes;
    size_t len;
    CHECK_EQ_INT(cap_instance_overlay(in, 0, &start, &bytes, &len), CAP_OK);
    CHECK(start == 16 && len == 5 && memcmp(bytes, "hello", 5) == 0);
    CHECK_EQ_INT(cap_instance_overlay(in, 1, &start, &bytes, &len), CAP_OK);
    CHECK(start == 99 && len == 0);
    CHECK_EQ_INT(cap_instance_overlay(in, 3, &start, &bytes, &len), CAP_EINVAL);

    /* root_cnode: a Ref is retained, NONE and zero refused */
    CHECK_EQ_INT(cap_instance_set_root_cnode(in, &none), CAP_EINVAL);
    CHECK_EQ_INT(cap_instance_set_root_cnode(in, &tz), CAP_EINVAL);
    CHECK_EQ_INT(cap_instance_set_root_cnode(in, &tr), CAP_OK);
    CHECK_EQ_INT(cap_ref_strong_count(&r), 3);
    got = cap_instance_root_cnode(in);
    CHECK(got.kind == CAP_TARGET_REF && got.ref == &r);
    CHECK(cap_has_refs(in));
    CHECK_EQ_INT(cap_ref_target_count(in), 1);
    CHECK(cap_ref_target_at(in, 0) == &r);
    cap_hash_t hh;
    CHECK_EQ_INT(cap_hash(in, &hh), CAP_EUNSETTLED);

    /* copy: overlays copied, handle retained */
    cap_t *cp;
    CHECK_EQ_INT(cap_copy(in, &cp), CAP_OK);
    CHECK(cap_equal(in, cp));
    CHECK_EQ_INT(cap_ref_strong_count(&r), 4);
    const uint8_t *b2;
    CHECK_EQ_INT(cap_instance_overlay(cp, 0, NULL, &b2, NULL), CAP_OK);
    CHECK_EQ_INT(cap_instance_overlay(in, 0, NULL, &bytes, NULL), CAP_OK);
    CHECK(b2 != bytes);
    CHECK_EQ_INT(cap_ref_target_rewrite(cp, &r, &h2), CAP_OK);
    CHECK_EQ_INT(cap_ref_strong_count(&r), 3);
    CHECK(!cap_has_refs(cp));
    CHECK_EQ_INT(cap_hash(cp, &hh), CAP_OK);
    CHECK_EQ_INT(cap_instance_clear_overlays(cp), CAP_OK);
    CHECK_EQ_INT(cap_instance_overlay_count(cp), 0);
    CHECK(!cap_equal(in, cp));
    cap_release(cp);

    /* EBUSY on every setter when shared */
    cap_t *extra = cap_retain(in);
    CHECK_EQ_INT(cap_instance_set_image_hash_chain(in, &h2), CAP_EBUSY);
    CHECK_EQ_INT(cap_instance_set_image_hash(in, &h1), CAP_EBUSY);
    CHECK_EQ_INT(cap_instance_set_root_cnode(in, &t1), CAP_EBUSY);
    CHECK_EQ_INT(cap_instance_set_mem_size(in, 1), CAP_EBUSY);
    CHECK_EQ_INT(cap_instance_set_reg(in, 0, 1), CAP_EBUSY);
    CHECK_EQ_INT(cap_instance_set_pc(in, 1), CAP_EBUSY);
    CHECK_EQ_INT(cap_instance_set_gas_remaining(in, 1), CAP_EBUSY);
    CHECK_EQ_INT(cap_instance_add_overlay(in, 0, "x", 1), CAP_EBUSY);
    CHECK_EQ_INT(cap_instance_clear_overlays(in), CAP_EBUSY);
    CHECK_EQ_INT(cap_instance_pc(in), 0x1234);
    CHECK_EQ_INT(cap_instance_overlay_count(in), 3);
    cap_release(extra);
    cap_freeze(in);
    CHECK_EQ_INT(cap_instance_set_pc(in, 1), CAP_EBUSY);
    cap_release(in);
    CHECK_EQ_INT(cap_ref_strong_count(&r), 2);
}

static cap_image_desc_t sample_image(cap_endpoint_t *ep, cap_mapping_t *mp, cap_slot_entry_t *pin,
                                     cap_slot_entry_t *ini, uint32_t *jt, uint8_t *code, uint8_t *bm)
{
    for (int i = 0; i < 20; i++) code[i] = (uint8_t)(i * 3 + 1);
    bm[0] = 0xff;
    bm[1] = 0x0f;
    bm[2] = 0x01;
    jt[0] = 0;
    jt[1] = 7;
    jt[2] = 19;
    memset(ep, 0, 2 * sizeof *ep);
    ep[0].entry_pc = 4;
    ep[0].stack_top = 0x8000;
    ep[0].arg_cnode_slot = 3;
    ep[0].arg_cnode_size = 2;
    for (int i = 0; i < CAP_NUM_REGS; i++) ep[0].initial_regs[i] = (uint64_t)i * 11;
    ep[1].entry_pc = 8;
    memset(mp, 0, sizeof *mp);
    mp[0].start = 0x1000;
    mp[0].size = 0x2000;
    mp[0].source_path[0] = 5;
    mp[0].source_path[1] = 6;
    mp[0].source_path_len = 2;
    pin[0].slot = 1;
    pin[0].cap_hash = H(0x11);
    pin[1].slot = 4;
    pin[1].cap_hash = H(0x22);
    ini[0].slot = 0;
    ini[0].cap_hash = H(0x33);
    cap_image_desc_t d = {.code = code, .code_len = 20, .bitmask = bm, .bitmask_len = 3,
                          .jump_table = jt, .jump_table_len = 3, .endpoints = ep, .endpoints_len = 2,
                          .mappings = mp, .mappings_len = 1, .pinned = pin, .pinned_len = 2,
                          .initial = ini, .initial_len = 1, .has_yield_marker = true,
                          .yield_marker_slot = 9};
    return d;
}

static void expect_image_reason(const cap_image_desc_t *d, const char *what)
{
    cap_err_t err;
    cap_t *c = NULL;
    memset(&err, 0, sizeof err);
    CHECK_EQ_INT(cap_image_validate(d, &err), CAP_EIMAGE);
    CHECK_EQ_INT(err.code, CAP_EIMAGE);
    CHECK(err.what != NULL && strcmp(err.what, what) == 0);
    memset(&err, 0, sizeof err);
    CHECK_EQ_INT(cap_image_new(&c, A, d, &err), CAP_EIMAGE);
    CHECK(c == NULL);
    CHECK(err.what != NULL && strcmp(err.what, what) == 0);
    if (err.what && strcmp(err.what, what) != 0) fprintf(stderr, "  got reason %s, want %s\n", err.what, what);
}

static void test_image(void)
{
    cap_endpoint_t ep[65];
    cap_mapping_t mp[1];
    cap_slot_entry_t pin[2], ini[1];
    uint32_t jt[3];
    uint8_t code[20], bm[3];
    cap_image_desc_t d = sample_image(ep, mp, pin, ini, jt, code, bm);
    cap_t *img = NULL;
    cap_err_t err;
    CHECK_EQ_INT(cap_image_validate(&d, &err), CAP_OK);
    CHECK_EQ_INT(cap_image_new(&img, A, &d, &err), CAP_OK);
    CHECK_EQ_INT(cap_kind(img), CAP_KIND_IMAGE);
    cap_image_desc_t v;
    cap_image_view(img, &v);
    CHECK(v.code != code && v.code_len == 20 && memcmp(v.code, code, 20) == 0);
    CHECK(v.bitmask_len == 3 && memcmp(v.bitmask, bm, 3) == 0);
    CHECK(v.jump_table_len == 3 && memcmp(v.jump_table, jt, sizeof jt) == 0);
    CHECK(v.endpoints_len == 2 && memcmp(v.endpoints, ep, 2 * sizeof *ep) == 0);
    CHECK(v.mappings_len == 1 && memcmp(v.mappings, mp, sizeof mp) == 0);
    CHECK(v.pinned_len == 2 && memcmp(v.pinned, pin, sizeof pin) == 0);
    CHECK(v.initial_len == 1 && memcmp(v.initial, ini, sizeof ini) == 0);
    CHECK(v.has_yield_marker && v.yield_marker_slot == 9);
    /* the source may go away: the cap holds copies */
    code[0] ^= 0xff;
    cap_image_view(img, &v);
    CHECK(v.code[0] != code[0]);
    code[0] ^= 0xff;

    cap_t *cp;
    CHECK_EQ_INT(cap_copy(img, &cp), CAP_OK);
    CHECK(cap_equal(img, cp));
    cap_image_desc_t v2;
    cap_image_view(cp, &v2);
    CHECK(v2.code != v.code);
    cap_release(cp);
    cap_t *img2;
    d.yield_marker_slot = 10;
    CHECK_EQ_INT(cap_image_new(&img2, A, &d, NULL), CAP_OK);
    CHECK(!cap_equal(img, img2));
    cap_release(img2);
    d.yield_marker_slot = 9;
    CHECK(!cap_has_refs(img));
    cap_release(img);

    /* empty image */
    cap_image_desc_t e;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_image_new(&img, A, &e, NULL), CAP_OK);
    cap_image_view(img, &v);
    CHECK(v.code_len == 0 && v.endpoints_len == 0 && !v.has_yield_marker);
    cap_release(img);

    /* validation reasons */
    cap_image_desc_t b = d;
    memset(ep, 0, sizeof ep);
    b.endpoints_len = 65;
    expect_image_reason(&b, "EndpointIndexOutOfRange");
    b.endpoints_len = 64;
    CHECK_EQ_INT(cap_image_validate(&b, NULL), CAP_OK);
    b = d;
    mp[0].source_path_len = 9;
    expect_image_reason(&b, "SourcePathTooDeep");
    mp[0].source_path_len = 1; /* entry [1] = 6 lies past the length */
    expect_image_reason(&b, "SourcePathNonZeroPadding");
    mp[0].source_path_len = 8;
    CHECK_EQ_INT(cap_image_validate(&b, NULL), CAP_OK);
    mp[0].source_path_len = 2;
    pin[1].slot = 1;
    expect_image_reason(&b, "PinnedNotSorted");
    pin[1].slot = 0;
    expect_image_reason(&b, "PinnedNotSorted");
    pin[1].slot = 4;
    pin[1].cap_hash = H(0);
    expect_image_reason(&b, "PinnedZeroCapHash");
    pin[1].cap_hash = H(0x22);
    cap_slot_entry_t ini2[2] = {{.slot = 3, .cap_hash = H(1)}, {.slot = 3, .cap_hash = H(2)}};
    b.initial = ini2;
    b.initial_len = 2;
    expect_image_reason(&b, "InitialNotSorted");
    ini2[1].slot = 4;
    ini2[0].cap_hash = H(0);
    expect_image_reason(&b, "InitialZeroCapHash");
    b = d;
    b.bitmask_len = 2;
    expect_image_reason(&b, "BitmaskLengthMismatch");
    b.code_len = 16;
    b.jump_table_len = 2; /* entries 0, 7 */
    CHECK_EQ_INT(cap_image_validate(&b, NULL), CAP_OK);
    b.code_len = 0; /* bitmask without code */
    b.jump_table_len = 0;
    expect_image_reason(&b, "BitmaskLengthMismatch");
    b = d;
    jt[1] = 20; /* == code length */
    expect_image_reason(&b, "JumpTableOutOfRange");
    jt[1] = 7;
    b.code_len = 0;
    b.bitmask_len = 0;
    expect_image_reason(&b, "JumpTableOutOfRange");
    b = d;
    b.code = NULL;
    CHECK_EQ_INT(cap_image_validate(&b, &err), CAP_EINVAL);
    CHECK_EQ_INT(cap_image_validate(NULL, &err), CAP_EINVAL);
}

static void test_equal_details(void)
{
    /* page states count for equality even when hashes agree */
    cap_t *a, *b;
    static const uint8_t zeros[32];
    CHECK_EQ_INT(cap_data_new(&a, A, 32), CAP_OK);
    CHECK_EQ_INT(cap_data_resize(a, 1), CAP_OK);
    CHECK_EQ_INT(cap_data_new_inline(&b, A, 32, zeros, 32), CAP_OK);
    CHECK(!cap_equal(a, b));
    cap_hash_t ha, hb;
    CHECK_EQ_INT(cap_hash(a, &ha), CAP_OK);
    CHECK_EQ_INT(cap_hash(b, &hb), CAP_OK);
    CHECK_MEM(ha.bytes, hb.bytes, 32);
    /* Loaded pages with equal bytes in different blocks are equal */
    cap_t *c;
    CHECK_EQ_INT(cap_data_new_inline(&c, A, 32, zeros, 1), CAP_OK);
    CHECK(cap_equal(b, c));
    cap_release(c);
    /* kinds differ */
    cap_t *t;
    CHECK_EQ_INT(cap_type_new(&t, A, &ha), CAP_OK);
    CHECK(!cap_equal(a, t));
    cap_release(t);
    cap_release(a);
    cap_release(b);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_alloc_init(&ta);
    test_refs();
    test_common_and_type();
    test_cnode();
    test_cnode_refs();
    test_data();
    test_instance();
    test_image();
    test_equal_details();
    CHECK(test_alloc_clean(&ta));
    if (!test_alloc_clean(&ta))
        fprintf(stderr, "leak: %ld blocks, %lld bytes, %ld size errors\n", ta.live_blocks, ta.live_bytes,
                ta.size_errors);
    return check_done("test_cap_model");
}
