/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The one definition of a cap's children (cap_for_each_child) and its wire
 * form (cap_wire_for_each_child): what each kind names, that both forms
 * agree on every conformance vector and on random caps, that the wire form
 * never reads past its input, and that a callback can stop the walk. */
#include <stdlib.h>
#include <string.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "check.h"
#include "test_caps.h"
#include "test_rng.h"

#define MAX_KIDS 512

typedef struct kids {
    size_t n;
    cap_child_t v[MAX_KIDS];
    size_t stop_after; /* 0: never stop */
} kids_t;

static int collect(void *arg, const cap_child_t *ch)
{
    kids_t *k = arg;
    if (k->n < MAX_KIDS) k->v[k->n] = *ch;
    k->n++;
    if (k->stop_after && k->n == k->stop_after) return 42;
    return 0;
}

static bool same_kids(const kids_t *a, const kids_t *b)
{
    if (a->n != b->n) return false;
    for (size_t i = 0; i < a->n && i < MAX_KIDS; i++) {
        const cap_child_t *x = &a->v[i], *y = &b->v[i];
        if (x->field != y->field || x->index != y->index || x->target.kind != y->target.kind) return false;
        if (x->target.kind == CAP_TARGET_HASH && memcmp(&x->target.hash, &y->target.hash, 32) != 0) return false;
    }
    return true;
}

/* Both forms over a settled cap: they must agree. Returns the children. */
static kids_t *both(const cap_t *c)
{
    static kids_t a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    CHECK_EQ_INT(cap_for_each_child(c, collect, &a), CAP_OK);
    uint8_t *w;
    size_t n;
    CHECK_EQ_INT(cap_wire_encode_alloc(c, cap_alloc_libc(), &w, &n), CAP_OK);
    cap_err_t e;
    CHECK_EQ_INT(cap_wire_for_each_child(w, n, collect, &b, &e), CAP_OK);
    CHECK(same_kids(&a, &b));
    /* Every shorter prefix is read without going past it (ASan watches a
     * buffer of exactly that size) and never yields more children. */
    for (size_t k = 0; k < n; k++) {
        uint8_t *p = k ? malloc(k) : NULL;
        if (k) memcpy(p, w, k);
        kids_t t;
        memset(&t, 0, sizeof t);
        int rc = cap_wire_for_each_child(p, k, collect, &t, &e);
        CHECK(rc == CAP_OK || rc == CAP_EDECODE);
        if (rc == CAP_EDECODE) CHECK_EQ_INT(t.n, 0);
        free(p);
    }
    free(w);
    return &a;
}

static void test_kinds(void)
{
    const cap_alloc_t *a = cap_alloc_libc();
    cap_hash_t h1 = test_hash_of(1), h2 = test_hash_of(2), h3 = test_hash_of(3);

    /* CNode: occupied slots in slot order. */
    cap_t *cn;
    CHECK_EQ_INT(cap_cnode_new(&cn, a, 8), CAP_OK);
    test_set_hash(cn, 200, &h2);
    test_set_hash(cn, 7, &h1);
    kids_t *k = both(cn);
    CHECK_EQ_INT(k->n, 2);
    CHECK(k->v[0].field == CAP_CHILD_SLOT && k->v[0].index == 7 && !memcmp(&k->v[0].target.hash, &h1, 32));
    CHECK(k->v[1].field == CAP_CHILD_SLOT && k->v[1].index == 200 && !memcmp(&k->v[1].target.hash, &h2, 32));
    cap_release(cn);

    /* Instance: image_hash only when not zero, then root_cnode; the chain
     * names a type, not a cap. */
    cap_t *in;
    cap_target_t root = cap_target_of_hash(&h1);
    CHECK_EQ_INT(cap_instance_new(&in, a, &root), CAP_OK);
    CHECK_EQ_INT(cap_instance_set_image_hash_chain(in, &h3), CAP_OK);
    k = both(in);
    CHECK_EQ_INT(k->n, 1);
    CHECK(k->v[0].field == CAP_CHILD_ROOT_CNODE && !memcmp(&k->v[0].target.hash, &h1, 32));
    CHECK_EQ_INT(cap_instance_set_image_hash(in, &h2), CAP_OK);
    k = both(in);
    CHECK_EQ_INT(k->n, 2);
    CHECK(k->v[0].field == CAP_CHILD_IMAGE && !memcmp(&k->v[0].target.hash, &h2, 32));
    CHECK(k->v[1].field == CAP_CHILD_ROOT_CNODE);
    cap_release(in);

    /* Image: pinned entries, then initial ones. */
    cap_slot_entry_t pinned[2] = {{3, h1}, {9, h2}}, initial[1] = {{1, h3}};
    cap_image_desc_t d;
    memset(&d, 0, sizeof d);
    d.pinned = pinned;
    d.pinned_len = 2;
    d.initial = initial;
    d.initial_len = 1;
    cap_t *im;
    CHECK_EQ_INT(cap_image_new(&im, a, &d, NULL), CAP_OK);
    k = both(im);
    CHECK_EQ_INT(k->n, 3);
    CHECK(k->v[0].field == CAP_CHILD_PINNED && k->v[0].index == 3);
    CHECK(k->v[1].field == CAP_CHILD_PINNED && k->v[1].index == 9 && !memcmp(&k->v[1].target.hash, &h2, 32));
    CHECK(k->v[2].field == CAP_CHILD_INITIAL && k->v[2].index == 1 && !memcmp(&k->v[2].target.hash, &h3, 32));

    /* A callback's stop value comes back, in both forms. */
    kids_t s;
    memset(&s, 0, sizeof s);
    s.stop_after = 2;
    CHECK_EQ_INT(cap_for_each_child(im, collect, &s), 42);
    CHECK_EQ_INT(s.n, 2);
    uint8_t *w;
    size_t n;
    CHECK_EQ_INT(cap_wire_encode_alloc(im, a, &w, &n), CAP_OK);
    memset(&s, 0, sizeof s);
    s.stop_after = 1;
    CHECK_EQ_INT(cap_wire_for_each_child(w, n, collect, &s, NULL), 42);
    CHECK_EQ_INT(s.n, 1);
    free(w);
    cap_release(im);

    /* Data and Type name nothing (a Missing page's root is no cap). */
    cap_t *dc, *ty;
    CHECK_EQ_INT(cap_data_new(&dc, a, 64), CAP_OK);
    CHECK_EQ_INT(cap_data_resize(dc, 2), CAP_OK);
    CHECK_EQ_INT(cap_data_set_page_missing(dc, 1, &h1), CAP_OK);
    CHECK_EQ_INT(both(dc)->n, 0);
    CHECK_EQ_INT(cap_type_new(&ty, a, &h1), CAP_OK);
    CHECK_EQ_INT(both(ty)->n, 0);
    cap_release(dc);
    cap_release(ty);

    /* An unsettled cap: its Refs are children too (the wire form has none). */
    cap_store_t *st;
    CHECK_EQ_INT(cap_store_new_host(&st), CAP_OK);
    cap_t *leaf, *parent;
    cap_ref_t *r;
    CHECK_EQ_INT(cap_cnode_new(&leaf, a, 0), CAP_OK);
    CHECK_EQ_INT(cap_store_put_instance(st, leaf, &r), CAP_OK);
    CHECK_EQ_INT(cap_cnode_new(&parent, a, 2), CAP_OK);
    test_set_ref(parent, 1, r);
    test_set_hash(parent, 2, &h1);
    kids_t u;
    memset(&u, 0, sizeof u);
    CHECK_EQ_INT(cap_for_each_child(parent, collect, &u), CAP_OK);
    CHECK_EQ_INT(u.n, 2);
    CHECK(u.v[0].target.kind == CAP_TARGET_REF && u.v[0].target.ref == r && u.v[0].index == 1);
    CHECK(u.v[1].target.kind == CAP_TARGET_HASH);
    cap_release(parent);
    cap_release(leaf);
    cap_ref_release(r);
    cap_store_free(st);

    /* Arguments and names. */
    CHECK_EQ_INT(cap_for_each_child(NULL, collect, &u), CAP_EINVAL);
    CHECK_EQ_INT(cap_wire_for_each_child((const uint8_t *)"\3", 1, NULL, NULL, NULL), CAP_EINVAL);
    CHECK_EQ_INT(cap_wire_for_each_child(NULL, 0, collect, &u, NULL), CAP_EDECODE);
    CHECK(strcmp(cap_child_field_name(CAP_CHILD_SLOT), "slot") == 0);
    CHECK(strcmp(cap_child_field_name(CAP_CHILD_IMAGE), "image") == 0);
    CHECK(strcmp(cap_child_field_name(CAP_CHILD_ROOT_CNODE), "root_cnode") == 0);
    CHECK(strcmp(cap_child_field_name(CAP_CHILD_PINNED), "pinned") == 0);
    CHECK(strcmp(cap_child_field_name(CAP_CHILD_INITIAL), "initial") == 0);
}

/* Malformed child parts are refused before any child is reported. */
static void test_wire_rejects(void)
{
    uint8_t cn[1 + 5 + 72];
    memset(cn, 0, sizeof cn);
    cn[0] = CAP_KIND_CNODE;
    cn[1] = 8;
    cn[2] = 5;
    cn[6] = 4; /* slot 4 */
    memset(cn + 10, 0x11, 32);
    cn[42] = 2; /* slot 2: not increasing */
    memset(cn + 46, 0x22, 32);
    kids_t k;
    memset(&k, 0, sizeof k);
    cap_err_t e;
    CHECK_EQ_INT(cap_wire_for_each_child(cn, sizeof cn, collect, &k, &e), CAP_EDECODE);
    CHECK(e.code == CAP_EDECODE && strcmp(e.what, "cnode_slots_not_increasing") == 0 && e.offset == 42);
    CHECK_EQ_INT(k.n, 0);
    cn[42] = 5;
    memset(cn + 46, 0, 32); /* a zero target */
    CHECK_EQ_INT(cap_wire_for_each_child(cn, sizeof cn, collect, &k, &e), CAP_EDECODE);
    CHECK(strcmp(e.what, "zero_target") == 0 && e.offset == 46);
    CHECK_EQ_INT(cap_wire_for_each_child(cn, sizeof cn - 1, collect, &k, &e), CAP_EDECODE);
    CHECK(strcmp(e.what, "list_partial_element") == 0);
    cn[2] = 6;
    CHECK_EQ_INT(cap_wire_for_each_child(cn, sizeof cn, collect, &k, &e), CAP_EDECODE);
    CHECK(strcmp(e.what, "offset_not_at_fixed_end") == 0);
    CHECK_EQ_INT(k.n, 0);
    uint8_t bad = 9;
    CHECK_EQ_INT(cap_wire_for_each_child(&bad, 1, collect, &k, &e), CAP_EDECODE);
    CHECK(strcmp(e.what, "unknown_selector") == 0);

    /* An Image whose pinned list is fine but whose initial one is not:
     * refused before any child is reported (found by fuzz_decode). */
    cap_hash_t h1 = test_hash_of(1), h2 = test_hash_of(2);
    cap_slot_entry_t pinned = {0, h1}, initial = {1, h2};
    cap_image_desc_t d;
    memset(&d, 0, sizeof d);
    d.pinned = &pinned;
    d.pinned_len = 1;
    d.initial = &initial;
    d.initial_len = 1;
    cap_t *im;
    CHECK_EQ_INT(cap_image_new(&im, cap_alloc_libc(), &d, NULL), CAP_OK);
    uint8_t *w;
    size_t n;
    CHECK_EQ_INT(cap_wire_encode_alloc(im, cap_alloc_libc(), &w, &n), CAP_OK);
    memset(w + n - 33, 0, 32); /* the initial entry's hash (the yield marker is the last byte) */
    memset(&k, 0, sizeof k);
    CHECK_EQ_INT(cap_wire_for_each_child(w, n, collect, &k, &e), CAP_EDECODE);
    CHECK_EQ_INT(k.n, 0);
    CHECK_EQ_INT(e.offset, n - 33);
    free(w);
    cap_release(im);
}

/* Every vector that decodes: both forms agree. Every line, rejects too:
 * the wire form reads inside its input. */
static void test_vectors(int argc, char **argv)
{
    char path[4096];
    check_data_path(argc, argv, "vectors/caps.txt", path, sizeof path);
    line_reader_t lr;
    CHECK(line_reader_open(&lr, path) == 0);
    char *line;
    int decoded = 0, with_kids = 0;
    while ((line = line_reader_next(&lr)) != NULL) {
        if (line[0] == '#' || line[strspn(line, " \t")] == 0) continue;
        char *save = NULL;
        char *name = strtok_r(line, " \t", &save);
        char *expect = strtok_r(NULL, " \t", &save);
        char *hex = strtok_r(NULL, " \t", &save);
        if (!name || !expect || !hex) continue;
        size_t cap = strlen(hex) / 2 + 1;
        unsigned char *w = malloc(cap);
        long n = hex_decode(hex, w, cap);
        CHECK(n >= 0);
        if (n < 0) {
            free(w);
            continue;
        }
        /* An exact-size copy, so ASan sees any read past the end. */
        unsigned char *x = n ? malloc((size_t)n) : NULL;
        if (n) memcpy(x, w, (size_t)n);
        free(w);
        kids_t k;
        memset(&k, 0, sizeof k);
        int rc = cap_wire_for_each_child(x, (size_t)n, collect, &k, NULL);
        CHECK(rc == CAP_OK || rc == CAP_EDECODE);
        cap_t *c = NULL;
        if (cap_wire_decode(x, (size_t)n, cap_alloc_libc(), &c, NULL) == CAP_OK) {
            decoded++;
            CHECK_EQ_INT(rc, CAP_OK);
            kids_t m;
            memset(&m, 0, sizeof m);
            CHECK_EQ_INT(cap_for_each_child(c, collect, &m), CAP_OK);
            if (!same_kids(&k, &m)) fprintf(stderr, "%s: the two forms disagree\n", name);
            CHECK(same_kids(&k, &m));
            if (m.n) with_kids++;
            cap_release(c);
        }
        free(x);
    }
    line_reader_close(&lr);
    CHECK(decoded > 50);
    CHECK(with_kids > 10);
    printf("vectors: %d decoded, %d with children\n", decoded, with_kids);
}

/* Random settled caps of the three kinds that have children. */
static void test_random(void)
{
    const cap_alloc_t *a = cap_alloc_libc();
    test_rng_t rng = {13};
    for (int round = 0; round < 300; round++) {
        cap_t *c = NULL;
        unsigned kind = (unsigned)(test_rng_next(&rng) % 3);
        if (kind == 0) {
            CHECK_EQ_INT(cap_cnode_new(&c, a, (unsigned)(test_rng_next(&rng) % 17)), CAP_OK);
            unsigned cnt = (unsigned)(test_rng_next(&rng) % 20);
            uint32_t lim = (uint32_t)1 << cap_cnode_size_log(c);
            for (unsigned i = 0; i < cnt; i++)
                test_set_hash_of(c, (uint32_t)(test_rng_next(&rng) % lim), (unsigned)test_rng_next(&rng));
        } else if (kind == 1) {
            cap_hash_t r = test_hash_of((unsigned)round);
            cap_target_t t = cap_target_of_hash(&r);
            CHECK_EQ_INT(cap_instance_new(&c, a, &t), CAP_OK);
            if (test_rng_next(&rng) & 1) {
                cap_hash_t im = test_hash_of((unsigned)round + 1000);
                CHECK_EQ_INT(cap_instance_set_image_hash(c, &im), CAP_OK);
            }
            if (test_rng_next(&rng) & 1) CHECK_EQ_INT(cap_instance_add_overlay(c, 16, "abc", 3), CAP_OK);
        } else {
            cap_slot_entry_t p[8], q[8];
            size_t np = test_rng_next(&rng) % 8, nq = test_rng_next(&rng) % 8;
            for (size_t i = 0; i < np; i++) p[i] = (cap_slot_entry_t){(uint32_t)(i * 3 + 1), test_hash_of((unsigned)i + 7)};
            for (size_t i = 0; i < nq; i++) q[i] = (cap_slot_entry_t){(uint32_t)(i * 5), test_hash_of((unsigned)i + 70)};
            uint8_t code[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, mask[2] = {0xff, 1};
            cap_image_desc_t d;
            memset(&d, 0, sizeof d);
            d.code = code;
            d.code_len = sizeof code;
            d.bitmask = mask;
            d.bitmask_len = 2;
            d.pinned = p;
            d.pinned_len = np;
            d.initial = q;
            d.initial_len = nq;
            d.has_yield_marker = test_rng_next(&rng) & 1;
            CHECK_EQ_INT(cap_image_new(&c, a, &d, NULL), CAP_OK);
        }
        if (c) {
            both(c);
            cap_release(c);
        }
    }
}

int main(int argc, char **argv)
{
    test_kinds();
    test_wire_rejects();
    test_vectors(argc, argv);
    test_random();
    return check_done("test_children");
}
