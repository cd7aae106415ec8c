/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The cap_err_t contract (common.h): every call that takes a `cap_err_t *`
 * fills it on every failure with the code it returns and that code's
 * detail. Like every test program, this one is compiled with
 * support/err_check.h forced in, so each call below goes through a wrapper
 * that poisons the struct first and checks it after a failure. Here:
 *   - the checker itself catches a struct left unset or half set;
 *   - the failures once left unfilled (a settle cycle, another store's
 *     handle, a page set on a CNode) carry their detail;
 *   - every wrapped function fails at least once in this program, so no
 *     function goes unchecked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/archive.h"
#include "capstore/persist.h"
#include "capstore/sys/backend.h"
#include "check.h"

static const cap_alloc_t *A;

static cap_t *cnode(unsigned size_log)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, A, (uint8_t)size_log), CAP_OK);
    return c;
}

/* A new instance holding an empty cnode (the store keeps its own reference). */
static cap_ref_t *put_empty(cap_store_t *s)
{
    cap_t *c = cnode(0);
    cap_ref_t *r = NULL;
    CHECK_EQ_INT(cap_store_put_instance(s, c, &r), CAP_OK);
    cap_release(c);
    return r;
}

static cap_t *type_cap(uint8_t fill)
{
    cap_hash_t h;
    memset(&h, fill, sizeof h);
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_type_new(&c, A, &h), CAP_OK);
    return c;
}

static cap_hash_t hash_of(uint8_t fill)
{
    cap_hash_t h;
    memset(&h, fill, sizeof h);
    return h;
}

static bool msg_has(const cap_err_t *e, const char *part)
{
    char msg[256];
    cap_err_format(e, msg, sizeof msg);
    bool ok = strstr(msg, part) != NULL;
    if (!ok) fprintf(stderr, "message \"%s\" lacks \"%s\"\n", msg, part);
    return ok;
}

/* The checker: a poisoned struct, a wrong code, stray numbers all fail. */
static void test_checker(void)
{
    cap_err_t e;
    memset(&e, 0x5a, sizeof e);
    CHECK(cap_test_err_broken_rule(CAP_ECYCLE, &e) != NULL);
    cap_err_set(&e, CAP_ECYCLE, NULL);
    CHECK(cap_test_err_broken_rule(CAP_ECYCLE, &e) == NULL);
    CHECK(cap_test_err_broken_rule(CAP_EINVAL, &e) != NULL);
    e.offset = 3;
    CHECK(cap_test_err_broken_rule(CAP_ECYCLE, &e) != NULL);
    cap_err_set(&e, CAP_EDECODE, NULL);
    CHECK(cap_test_err_broken_rule(CAP_EDECODE, &e) != NULL); /* no rule named */
    cap_err_set(&e, CAP_EINSTANCEMISSING, NULL);
    CHECK(cap_test_err_broken_rule(CAP_EINSTANCEMISSING, &e) != NULL); /* no id */
    e.id = 7;
    CHECK(cap_test_err_broken_rule(CAP_EINSTANCEMISSING, &e) == NULL);
    cap_err_set(&e, CAP_EBLOBMISSING, "x");
    CHECK(cap_test_err_broken_rule(CAP_EBLOBMISSING, &e) != NULL); /* no hash */
    cap_hash_t h = hash_of(1);
    cap_err_set_hash(&e, &h);
    CHECK(cap_test_err_broken_rule(CAP_EBLOBMISSING, &e) == NULL);
}

/* The three gaps of issue 16, each with its detail. */
static void test_known_gaps(void)
{
    cap_store_t *s = NULL, *other = NULL;
    CHECK_EQ_INT(cap_store_new_host(&s), CAP_OK);
    CHECK_EQ_INT(cap_store_new_host(&other), CAP_OK);
    cap_err_t e;

    /* settle on a 2-cycle: a -> b -> a */
    cap_ref_t *ra = put_empty(s), *rb = put_empty(s);
    cap_t *a2 = cnode(0), *b2 = cnode(0);
    cap_target_t to_b = cap_target_of_ref(rb), to_a = cap_target_of_ref(ra);
    CHECK_EQ_INT(cap_cnode_set(a2, 0, &to_b), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(b2, 0, &to_a), CAP_OK);
    CHECK_EQ_INT(cap_store_set_instance(s, ra, a2, &e), CAP_OK);
    CHECK_EQ_INT(cap_store_set_instance(s, rb, b2, &e), CAP_OK);
    cap_release(a2);
    cap_release(b2);
    cap_hash_t out;
    CHECK_EQ_INT(cap_store_settle(s, &to_a, &out, &e), CAP_ECYCLE);
    CHECK_EQ_INT(e.code, CAP_ECYCLE);
    CHECK(msg_has(&e, "cycle"));
    CHECK(msg_has(&e, "instance "));
    CHECK_EQ_INT(cap_store_settle(s, &to_a, &out, NULL), CAP_ECYCLE);

    /* set_instance with another store's handle */
    cap_ref_t *foreign = put_empty(other);
    cap_t *plain = cnode(0);
    CHECK_EQ_INT(cap_store_set_instance(s, foreign, plain, &e), CAP_EINVAL);
    CHECK(msg_has(&e, "another store"));
    /* and a cap that holds one */
    cap_t *holds = cnode(0);
    cap_target_t tf = cap_target_of_ref(foreign);
    CHECK_EQ_INT(cap_cnode_set(holds, 0, &tf), CAP_OK);
    CHECK_EQ_INT(cap_store_set_instance(s, ra, holds, &e), CAP_EINVAL);
    CHECK(msg_has(&e, "another store"));
    /* settle and edit from the other store's side */
    cap_target_t tfor = cap_target_of_ref(foreign);
    CHECK_EQ_INT(cap_store_settle(s, &tfor, &out, &e), CAP_EINVAL);
    CHECK(msg_has(&e, "another store"));

    /* cap_data_set_page on a CNode */
    uint8_t page[4096] = {0};
    CHECK_EQ_INT(cap_data_set_page(plain, 0, page, sizeof page, &e), CAP_EINVAL);
    CHECK(msg_has(&e, "not a Data cap"));

    /* Break the cycle so that the sweep can free it all. */
    cap_t *empty = cnode(0);
    CHECK_EQ_INT(cap_store_set_instance(s, ra, empty, NULL), CAP_OK);
    cap_release(empty);
    cap_release(plain);
    cap_release(holds);
    cap_ref_release(ra);
    cap_ref_release(rb);
    cap_ref_release(foreign);
    cap_store_free(s);
    cap_store_free(other);
}

static int edit_fails(cap_t *c, void *arg)
{
    (void)c;
    (void)arg;
    return CAP_ESLOTRANGE;
}

static int count_stop(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    (void)arg;
    (void)h;
    (void)bytes;
    (void)n;
    return CAP_ENOMEM; /* a callback that gives up with an error */
}

static int root_seen(void *arg, const char *name, const cap_hash_t *h)
{
    (void)arg;
    (void)name;
    (void)h;
    return 0;
}

/* At least one failing call of every wrapped function; the wrapper checks
 * each struct. Return values are checked loosely (any failure will do):
 * what matters here is the struct. */
static void test_every_function_fails(void)
{
    cap_err_t e;
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new_host(&s), CAP_OK);
    cap_hash_t missing = hash_of(0x77), out;

    /* cap.h */
    cap_t *d = NULL;
    CHECK_EQ_INT(cap_data_new(&d, A, 4096), CAP_OK);
    CHECK_EQ_INT(cap_data_resize(d, 1), CAP_OK);
    uint8_t small[100] = {0};
    CHECK_EQ_INT(cap_data_set_page(d, 0, small, sizeof small, &e), CAP_EPAGESIZE);
    CHECK(e.expected == 4096 && e.got == sizeof small);
    CHECK_EQ_INT(cap_data_set_page(d, 5, small, sizeof small, &e), CAP_EINVAL);
    CHECK(cap_data_set_page(d, 0, small, sizeof small, NULL) < 0);
    uint8_t code[8] = {0};
    cap_image_desc_t bad;
    memset(&bad, 0, sizeof bad);
    bad.code = code;
    bad.code_len = sizeof code; /* and no bitmask: one bit per code byte is missing */
    cap_t *img = NULL;
    CHECK_EQ_INT(cap_image_new(&img, A, &bad, &e), CAP_EIMAGE);
    CHECK(e.what != NULL);
    CHECK_EQ_INT(cap_image_validate(&bad, &e), CAP_EIMAGE);
    CHECK_EQ_INT(cap_image_validate(NULL, NULL), CAP_EINVAL);
    cap_t *dec = NULL;
    const uint8_t junk[] = {9, 1, 2};
    CHECK_EQ_INT(cap_wire_decode(junk, sizeof junk, A, &dec, &e), CAP_EDECODE);
    CHECK_EQ_INT(cap_wire_decode(junk, 0, A, &dec, &e), CAP_EDECODE);
    CHECK_EQ_INT(cap_wire_decode(junk, 1, NULL, &dec, &e), CAP_EINVAL);

    /* persist.h and sys/backend.h, on a memory backend */
    cap_backend_t *mem = NULL, *fault = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(NULL, &mem), CAP_OK);
    CHECK_EQ_INT(cap_fault_backend_new(mem, false, &fault), CAP_OK);
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_persist_fetch(mem, &missing, A, true, &c, &e), CAP_ENOTFOUND);
    cap_t *t1 = type_cap(1), *t2 = type_cap(2);
    cap_hash_t h1, h2;
    CHECK_EQ_INT(cap_hash(t1, &h1), CAP_OK);
    CHECK_EQ_INT(cap_hash(t2, &h2), CAP_OK);
    uint8_t *w2 = NULL;
    size_t n2 = 0;
    CHECK_EQ_INT(cap_wire_encode_alloc(t2, A, &w2, &n2), CAP_OK);
    /* t2's bytes stored under t1's hash: a mismatch, with the hash */
    CHECK_EQ_INT(cap_backend_write(mem, &h1, w2, n2, &e), CAP_OK);
    CHECK_EQ_INT(cap_persist_fetch(mem, &h1, A, true, &c, &e), CAP_EMISMATCH);
    CHECK(e.has_hash && memcmp(e.hash.bytes, h1.bytes, 32) == 0);
    CHECK_EQ_INT(cap_persist_decode(&h1, w2, n2, A, true, &c, &e), CAP_EMISMATCH);
    CHECK_EQ_INT(cap_persist_decode(&h1, junk, sizeof junk, A, true, &c, &e), CAP_EDECODE);
    CHECK(e.has_hash);
    cap_t *unsettled = cnode(0);
    cap_ref_t *r = put_empty(s);
    cap_target_t tr = cap_target_of_ref(r);
    CHECK_EQ_INT(cap_cnode_set(unsettled, 0, &tr), CAP_OK);
    CHECK_EQ_INT(cap_persist_put(mem, unsettled, &out, &e), CAP_EUNSETTLED);
    cap_t *batch[2] = {t1, NULL};
    CHECK_EQ_INT(cap_persist_put_batch(mem, batch, NULL, 2, A, NULL, &e), CAP_EINVAL);
    batch[1] = unsettled;
    CHECK_EQ_INT(cap_persist_put_batch(mem, batch, NULL, 2, A, NULL, &e), CAP_EUNSETTLED);
    cap_backend_t *lm = NULL;
    CHECK_EQ_INT(cap_lmdb_open("/nonexistent-capstore-dir/x.lmdb", NULL, &lm, &e), CAP_EBACKEND);
    CHECK(e.what != NULL);
    CHECK_EQ_INT(cap_lmdb_open(NULL, NULL, &lm, &e), CAP_EINVAL);
    cap_lmdb_stats_t st;
    CHECK_EQ_INT(cap_lmdb_stats(mem, &st, &e), CAP_EINVAL);

    CHECK_EQ_INT(cap_backend_check(NULL, &e), CAP_EINVAL);
    uint8_t *bytes = NULL;
    size_t n = 0;
    CHECK_EQ_INT(cap_backend_read(mem, &missing, A, &bytes, &n, &e), CAP_ENOTFOUND);
    cap_backend_t ro = *mem;
    ro.flags |= CAP_BACKEND_READONLY;
    CHECK_EQ_INT(cap_backend_write(&ro, &h2, w2, n2, &e), CAP_EBACKEND);
    cap_fault_plan_t plan;
    memset(&plan, 0, sizeof plan);
    plan.kind = CAP_FAULT_IO;
    plan.ops = CAP_FAULT_ALL;
    cap_fault_backend_set(fault, &plan);
    cap_backend_item_t item = {h2, w2, n2};
    CHECK_EQ_INT(cap_backend_write_batch(fault, &item, 1, &e), CAP_EBACKEND);
    CHECK_EQ_INT(cap_backend_flush(NULL, &e), CAP_EINVAL);
    CHECK(cap_backend_flush(fault, &e) <= 0);
    CHECK_EQ_INT(cap_backend_exists(mem, &missing, &e), CAP_ENOTFOUND);
    CHECK_EQ_INT(cap_backend_exists(fault, &missing, &e), CAP_EBACKEND);
    CHECK_EQ_INT(cap_backend_iterate(mem, count_stop, NULL, &e), CAP_ENOMEM);
    CHECK_EQ_INT(cap_backend_iterate(mem, NULL, NULL, &e), CAP_EINVAL);
    uint8_t *bs[1];
    size_t lens[1];
    int codes[1];
    CHECK_EQ_INT(cap_backend_read_many(mem, &missing, 1, NULL, bs, lens, codes, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_backend_exists_many(mem, NULL, 1, codes, &e), CAP_EINVAL);
    cap_backend_root_t root = {"bad name!", h2};
    CHECK_EQ_INT(cap_backend_write_many(mem, &item, 1, &root, 1, NULL, &e), CAP_EINVAL);
    CHECK(cap_backend_root_get(mem, "no-such-root", &out, &e) < 0);
    CHECK(cap_backend_root_set(&ro, "a-root", &h2, &e) < 0);
    CHECK(cap_backend_root_delete(mem, "no-such-root", &e) < 0);
    CHECK_EQ_INT(cap_backend_root_list(mem, NULL, NULL, &e), CAP_EINVAL);
    if (cap_backend_has_roots(mem)) CHECK_EQ_INT(cap_backend_root_list(mem, root_seen, NULL, &e), CAP_OK);

    /* store.h */
    CHECK_EQ_INT(cap_store_edit_instance(s, r, edit_fails, NULL, &e), CAP_ESLOTRANGE);
    CHECK_EQ_INT(cap_store_edit_instance(s, NULL, edit_fails, NULL, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_settle(NULL, &tr, &out, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_add_backend(s, NULL, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_add_backend(s, fault, &e), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(s, fault, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_fetch_blob(s, &missing, &c, &e), CAP_EBACKEND); /* the fault backend */
    plan.kind = CAP_FAULT_NOTFOUND;
    plan.ops = CAP_FAULT_READ | CAP_FAULT_EXISTS;
    cap_fault_backend_set(fault, &plan);
    CHECK_EQ_INT(cap_store_fetch_blob(s, &missing, &c, &e), CAP_EBLOBMISSING);
    CHECK(e.has_hash && memcmp(e.hash.bytes, missing.bytes, 32) == 0);
    CHECK_EQ_INT(cap_store_exists(s, &missing, &e), CAP_ENOTFOUND);
    CHECK_EQ_INT(cap_store_pin(s, &missing, &e), CAP_EBLOBMISSING);
    plan.kind = CAP_FAULT_IO;
    plan.ops = CAP_FAULT_ALL;
    cap_fault_backend_set(fault, &plan);
    CHECK_EQ_INT(cap_store_put_cap(s, t2, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_flush(s, NULL, &e), CAP_EBACKEND);
    CHECK(e.what != NULL);
    CHECK_EQ_INT(cap_store_set_instance(NULL, r, t1, &e), CAP_EINVAL);
    plan.kind = CAP_FAULT_NONE;
    cap_fault_backend_set(fault, &plan);

    /* batches, walks, checkpoint, children, and the other backends */
    cap_t *got1[1] = {NULL};
    CHECK_EQ_INT(cap_store_get_blobs(s, &missing, 1, got1, codes, &e), CAP_EBLOBMISSING);
    CHECK(e.has_index && e.index == 0 && e.has_hash);
    cap_t *unsettled_batch[1] = {unsettled};
    CHECK_EQ_INT(cap_store_put_caps(s, unsettled_batch, 1, NULL, &e), CAP_EUNSETTLED);
    CHECK(e.has_index && e.index == 0);
    CHECK(cap_store_walk(s, &missing, 1, NULL, NULL, NULL, NULL, &e) < 0);
    CHECK_EQ_INT(cap_store_prefetch(s, &missing, &e), CAP_EBLOBMISSING);
    CHECK(e.has_hash && !e.has_index);
    CHECK(cap_backend_walk(mem, &missing, 1, NULL, A, NULL, NULL, NULL, &e) < 0);
    cap_target_t none;
    memset(&none, 0, sizeof none);
    CHECK_EQ_INT(cap_store_checkpoint(s, &none, &out, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_wire_for_each_child(junk, sizeof junk, NULL, NULL, &e) < 0, 1);
    CHECK(cap_persist_put_many(mem, batch, NULL, 2, A, NULL, &e) < 0);
    CHECK(cap_lmdb_check("/nonexistent-capstore-dir/x.lmdb", NULL, NULL, NULL, &e) < 0);
    cap_backend_t *rb = NULL;
    CHECK(cap_redis_open("not-a-uri", NULL, &rb, &e) < 0);
    CHECK(rb == NULL);
    CHECK(cap_redis_stats(mem, NULL, &e) < 0);
    /* roots, collection, compaction, prefixes, archives */
    CHECK(cap_persist_put_roots(mem, batch, NULL, 2, A, &root, 1, NULL, &e) < 0);
    cap_backend_root_t fine = {"fine", h2};
    CHECK(cap_store_flush_roots(s, &fine, 1, NULL, &e) < 0); /* the fault backend has no roots */
    CHECK(cap_store_flush_roots(s, &root, 1, NULL, &e) < 0);  /* a bad name */
    CHECK(cap_lmdb_collect(mem, NULL, 0, NULL, NULL, &e) < 0);
    CHECK(cap_lmdb_compact("/nonexistent-capstore-dir/x.lmdb", NULL, &e) < 0);
    CHECK(cap_lmdb_find_prefix(mem, "abcd", 4, NULL, 0, NULL, &e) < 0);
    CHECK(cap_redis_find_prefix(mem, "abcd", 4, NULL, 0, NULL, &e) < 0);
    CHECK(cap_redis_collect(mem, NULL, 0, NULL, NULL, &e) < 0);
    CHECK(cap_archive_export(mem, &root, 1, NULL, NULL, NULL, NULL, &e) < 0);
    CHECK(cap_archive_import(mem, NULL, NULL, NULL, NULL, &e) < 0);

    A->deallocate(A->ctx, w2, n2);
    cap_release(d);
    cap_release(t1);
    cap_release(t2);
    cap_release(unsettled);
    cap_ref_release(r);
    cap_store_free(s);
    cap_backend_free(fault);
    cap_backend_free(mem);

    /* No function goes unchecked. */
    for (size_t i = 0; i < cap_test_err_count(); i++) {
        if (cap_test_err_failures(i) == 0) {
            fprintf(stderr, "%s never failed in this test: add a failing call\n", cap_test_err_name(i));
            CHECK(cap_test_err_failures(i) > 0);
        }
    }
}

int main(void)
{
    A = cap_alloc_libc();
    test_checker();
    test_known_gaps();
    test_every_function_fails();
    return check_done("test_err_contract");
}
