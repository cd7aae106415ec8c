/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Allocation failure at every allocation of every cap operation that
 * allocates: build, set, copy, make_mut, hash. For n = 1, 2, ... the n-th
 * allocation fails; each failing run must return CAP_ENOMEM, leave the
 * subject exactly as it was (content, refcount, held handles) and leak
 * nothing; the loop ends when the operation succeeds. */
#include <stdatomic.h>

#include "cap/cap_internal.h"
#include "capstore/cap.h"
#include "check.h"
#include "test_alloc.h"

static test_alloc_t ta;
#define A (&ta.alloc)

static struct cap_ref ref1;
static void dummy_release(struct cap_ref *r) { atomic_fetch_sub(&r->state, CAP_REF_ONE); }
static const struct cap_ref_ops dummy_ops = {dummy_release};

static cap_hash_t H(uint8_t fill)
{
    cap_hash_t h;
    memset(h.bytes, fill, 32);
    return h;
}

/* An operation on a subject cap (NULL for constructors). It may replace
 * *subj (make_mut) and may return a new cap through *made. */
typedef int (*op_fn)(cap_t **subj, cap_t **made);
typedef cap_t *(*setup_fn)(void);

static void run(const char *name, setup_fn setup, op_fn op, int expect_alloc)
{
    long n;
    int failures = 0;
    for (n = 1; n < 10000; n++) {
        cap_t *subj = setup ? setup() : NULL, *snap = NULL, *made = NULL, *extra = NULL;
        if (subj) {
            CHECK_EQ_INT(cap_copy(subj, &snap), CAP_OK);
            /* the make_mut case wants a shared subject: setup froze it */
            if (cap_is_frozen(subj)) extra = cap_retain(subj);
        }
        cap_t *before = subj;
        uint32_t refs_before = subj ? cap_refcount(subj) : 0;
        uint64_t strong_before = cap_ref_strong_count(&ref1);
        test_alloc_fail_at(&ta, n);
        int rc = op(&subj, &made);
        long attempted = ta.count;
        test_alloc_fail_at(&ta, 0);
        if (rc == CAP_OK) {
            if (attempted >= n) {
                fprintf(stderr, "%s: allocation %ld failed but the operation succeeded\n", name, n);
                CHECK(0);
            }
            cap_release(made);
            cap_release(subj);
            cap_release(extra);
            cap_release(snap);
            break;
        }
        failures++;
        if (rc != CAP_ENOMEM) fprintf(stderr, "%s: allocation %ld: rc %d\n", name, n, rc);
        CHECK_EQ_INT(rc, CAP_ENOMEM);
        CHECK(made == NULL);
        CHECK(subj == before);
        if (subj) {
            CHECK(cap_equal(subj, snap));
            CHECK_EQ_INT(cap_refcount(subj), refs_before);
        }
        CHECK_EQ_INT(cap_ref_strong_count(&ref1), strong_before); /* no handle reference leaked */
        cap_release(snap);
        cap_release(subj);
        cap_release(extra);
        if (!test_alloc_clean(&ta)) {
            fprintf(stderr, "%s: leak after failing allocation %ld\n", name, n);
            CHECK(0);
        }
    }
    CHECK(n < 10000);
    if (expect_alloc) CHECK(failures > 0);
    CHECK(test_alloc_clean(&ta));
    CHECK_EQ_INT(cap_ref_strong_count(&ref1), 2);
    fprintf(stderr, "%-28s %d failing runs\n", name, failures);
}

/* Subjects ---------------------------------------------------------------------------------- */

static cap_t *mk_cnode(void)
{
    cap_t *c;
    cap_cnode_new(&c, A, 16);
    for (uint32_t s = 0; s < 100; s++) {
        cap_hash_t h = H((uint8_t)(s + 1));
        cap_target_t t = (s % 7 == 3) ? cap_target_of_ref(&ref1) : cap_target_of_hash(&h);
        cap_cnode_set(c, s * 600, &t);
    }
    return c;
}

static cap_t *mk_cnode_settled(void)
{
    cap_t *c;
    cap_cnode_new(&c, A, 16);
    for (uint32_t s = 0; s < 100; s++) {
        cap_hash_t h = H((uint8_t)(s + 1));
        cap_target_t t = cap_target_of_hash(&h);
        cap_cnode_set(c, s * 600 + 1, &t);
    }
    return c;
}

static cap_t *mk_cnode_small(void)
{
    cap_t *c;
    cap_cnode_new(&c, A, 8);
    cap_hash_t h = H(9);
    cap_target_t t = cap_target_of_hash(&h);
    for (uint32_t s = 0; s < 4; s++) cap_cnode_set(c, s * 3, &t); /* capacity 4, full */
    return c;
}

static uint8_t pagebuf[64 * 100];

static cap_t *mk_data(void)
{
    cap_t *d;
    for (size_t i = 0; i < sizeof pagebuf; i++) pagebuf[i] = (uint8_t)(i * 13 + 1);
    cap_data_new_inline(&d, A, 64, pagebuf, sizeof pagebuf);
    cap_data_resize(d, 103); /* 3 Empty pages at the end */
    cap_hash_t m = H(0x42);
    cap_data_set_page_missing(d, 101, &m);
    return d;
}

static cap_t *mk_instance(void)
{
    cap_t *in;
    cap_target_t t = cap_target_of_ref(&ref1);
    cap_instance_new(&in, A, &t);
    cap_instance_set_pc(in, 77);
    cap_instance_add_overlay(in, 1, "abcdef", 6);
    cap_instance_add_overlay(in, 2, NULL, 0);
    cap_instance_add_overlay(in, 3, "xyz", 3);
    cap_instance_add_overlay(in, 4, "w", 1); /* capacity 4, full */
    return in;
}

static cap_image_desc_t image_desc(void)
{
    static uint8_t code[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, bm[2] = {1, 2};
    static uint32_t jt[2] = {1, 9};
    static cap_endpoint_t ep[2] = {{.entry_pc = 1}, {.entry_pc = 2}};
    static cap_mapping_t mp[1] = {{.start = 5, .size = 6, .source_path_len = 1, .source_path = {3}}};
    static cap_slot_entry_t pin[1] = {{.slot = 2, .cap_hash = {{1}}}};
    cap_image_desc_t d = {.code = code, .code_len = 10, .bitmask = bm, .bitmask_len = 2,
                          .jump_table = jt, .jump_table_len = 2, .endpoints = ep, .endpoints_len = 2,
                          .mappings = mp, .mappings_len = 1, .pinned = pin, .pinned_len = 1,
                          .has_yield_marker = true, .yield_marker_slot = 4};
    return d;
}

static cap_t *mk_image(void)
{
    cap_t *c;
    cap_image_desc_t d = image_desc();
    cap_image_new(&c, A, &d, NULL);
    return c;
}

static cap_t *frozen(cap_t *c)
{
    cap_freeze(c);
    return c;
}
static cap_t *mk_cnode_frozen(void) { return frozen(mk_cnode()); }
static cap_t *mk_data_frozen(void) { return frozen(mk_data()); }
static cap_t *mk_instance_frozen(void) { return frozen(mk_instance()); }
static cap_t *mk_image_frozen(void) { return frozen(mk_image()); }

/* Operations -------------------------------------------------------------------------------- */

static int op_type_new(cap_t **s, cap_t **m)
{
    (void)s;
    cap_hash_t h = H(3);
    return cap_type_new(m, A, &h);
}
static int op_cnode_new(cap_t **s, cap_t **m) { (void)s; return cap_cnode_new(m, A, 16); }
static int op_data_new(cap_t **s, cap_t **m) { (void)s; return cap_data_new(m, A, 4096); }
static int op_data_new_inline(cap_t **s, cap_t **m)
{
    (void)s;
    return cap_data_new_inline(m, A, 64, pagebuf, sizeof pagebuf - 7);
}
static int op_instance_new(cap_t **s, cap_t **m)
{
    (void)s;
    cap_target_t t = cap_target_of_ref(&ref1);
    return cap_instance_new(m, A, &t);
}
static int op_image_new(cap_t **s, cap_t **m)
{
    (void)s;
    cap_image_desc_t d = image_desc();
    return cap_image_new(m, A, &d, NULL);
}

static int op_cnode_set_grow(cap_t **s, cap_t **m)
{
    (void)m;
    cap_target_t t = cap_target_of_ref(&ref1);
    return cap_cnode_set(*s, 1, &t); /* insert into a full array: grows */
}
static int op_cnode_set_append(cap_t **s, cap_t **m)
{
    (void)m;
    cap_hash_t h = H(0x31);
    cap_target_t t = cap_target_of_hash(&h);
    return cap_cnode_set(*s, 200, &t);
}
static int op_data_resize(cap_t **s, cap_t **m) { (void)m; return cap_data_resize(*s, 5000); }
static int op_data_set_page(cap_t **s, cap_t **m)
{
    (void)m;
    return cap_data_set_page(*s, 102, pagebuf, 64, NULL);
}
static int op_data_set_missing(cap_t **s, cap_t **m)
{
    (void)m;
    cap_hash_t h = H(0x55);
    return cap_data_set_page_missing(*s, 3, &h);
}
static int op_data_write_empty(cap_t **s, cap_t **m)
{
    (void)m;
    return cap_data_write(*s, 64 * 100 - 10, pagebuf, 20); /* Loaded + Empty page */
}
static int op_instance_add_overlay(cap_t **s, cap_t **m)
{
    (void)m;
    return cap_instance_add_overlay(*s, 9, "0123456789", 10); /* copies the bytes, grows the array */
}
static int op_copy(cap_t **s, cap_t **m) { return cap_copy(*s, m); }
static int op_make_mut(cap_t **s, cap_t **m)
{
    (void)m;
    return cap_make_mut(s);
}
static int op_hash(cap_t **s, cap_t **m)
{
    (void)m;
    cap_hash_t h;
    return cap_hash(*s, &h);
}

/* A write over shared pages: copy the data cap, write across 40 of its
 * pages (more than the on-stack list) in the copy. */
static cap_t *shared_src;
static cap_t *mk_data_shared(void)
{
    shared_src = mk_data();
    cap_t *c;
    cap_copy(shared_src, &c);
    return c;
}
static int op_data_write_shared(cap_t **s, cap_t **m)
{
    (void)m;
    return cap_data_write(*s, 30, pagebuf, 64 * 40);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_alloc_init(&ta);
    atomic_init(&ref1.state, CAP_REF_IN_STORE | CAP_REF_ONE);
    ref1.id = 1;
    ref1.ops = &dummy_ops;

    run("build type", NULL, op_type_new, 1);
    run("build cnode", NULL, op_cnode_new, 1);
    run("build data", NULL, op_data_new, 1);
    run("build data inline", NULL, op_data_new_inline, 1);
    run("build instance", NULL, op_instance_new, 1);
    run("build image", NULL, op_image_new, 1);

    run("set cnode (grow)", mk_cnode_small, op_cnode_set_grow, 1);
    run("set cnode (no growth)", mk_cnode, op_cnode_set_append, 0);
    run("set data resize", mk_data, op_data_resize, 1);
    run("set data page", mk_data, op_data_set_page, 1);
    run("set data missing", mk_data, op_data_set_missing, 1);
    run("set data write", mk_data, op_data_write_empty, 1);
    run("set instance overlay", mk_instance, op_instance_add_overlay, 1);

    run("copy cnode", mk_cnode, op_copy, 1);
    run("copy data", mk_data, op_copy, 1);
    run("copy instance", mk_instance, op_copy, 1);
    run("copy image", mk_image, op_copy, 1);

    run("make_mut cnode", mk_cnode_frozen, op_make_mut, 1);
    run("make_mut data", mk_data_frozen, op_make_mut, 1);
    run("make_mut instance", mk_instance_frozen, op_make_mut, 1);
    run("make_mut image", mk_image_frozen, op_make_mut, 1);

    run("hash cnode (100 entries)", mk_cnode_settled, op_hash, 1);
    run("hash data", mk_data, op_hash, 0);
    run("hash image", mk_image, op_hash, 0);

    /* copy-on-write over shared pages */
    {
        long n;
        int failures = 0;
        for (n = 1; n < 1000; n++) {
            cap_t *c = mk_data_shared(), *snap;
            cap_copy(c, &snap);
            test_alloc_fail_at(&ta, n);
            int rc = op_data_write_shared(&c, NULL);
            test_alloc_fail_at(&ta, 0);
            if (rc == CAP_OK) {
                CHECK(!cap_equal(c, snap));
                CHECK(cap_data_page_bytes(c, 5) != cap_data_page_bytes(shared_src, 5));
                cap_release(c);
                cap_release(snap);
                cap_release(shared_src);
                break;
            }
            failures++;
            CHECK_EQ_INT(rc, CAP_ENOMEM);
            CHECK(cap_equal(c, snap));
            CHECK(cap_data_page_bytes(c, 5) == cap_data_page_bytes(shared_src, 5));
            cap_release(c);
            cap_release(snap);
            cap_release(shared_src);
            CHECK(test_alloc_clean(&ta));
        }
        CHECK(failures >= 41); /* the list, then 40 pages (page 0..40 shared) */
        fprintf(stderr, "%-28s %d failing runs\n", "set data write (shared)", failures);
    }
    CHECK(test_alloc_clean(&ta));
    return check_done("test_cap_alloc");
}
