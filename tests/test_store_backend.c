/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The store with backends attached (store.h, "Backends" and "Blob retention"):
 *   - the provider path: a memory miss in get_blob, get(Hash), promote and
 *     fetch_blob asks the backends in order, publishes and returns; a second
 *     lookup is a memory hit; absent everywhere is CAP_EBLOBMISSING;
 *   - errors from a backend (mismatch, corrupt, truncated, I/O) publish
 *     nothing; a trusted backend skips the hash check;
 *   - add_backend's checks, cap_store_exists;
 *   - flush (dirty bits, one batch, failure keeps everything dirty, retry),
 *     write-through (a failed write publishes nothing);
 *   - pins, the byte budget and trim: nothing dropped without a backend,
 *     dirty / pinned / referenced / reachable blobs stay, CLOCK order,
 *     dropped blobs come back through the provider;
 *   - an LMDB round trip through two stores.
 * Every case runs with the pthread hooks and the built-in spin lock. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_caps.h"
#include "test_alloc.h"
#include "test_rng.h"

static test_alloc_t ta;
#define A (&ta.alloc)
static test_rng_t rng = {0x9E3779B97F4A7C15ull};
static int use_spin;

static cap_store_t *new_store(unsigned flags)
{
    cap_store_options_t o;
    memset(&o, 0, sizeof o);
    o.alloc = A;
    o.locks = use_spin ? NULL : cap_lock_pthread();
    o.hash_seed[0] = 7;
    o.hash_seed[1] = 77;
    o.flags = flags;
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_OK);
    return s;
}

/* A CNode with `n` random Hash targets. */
static cap_t *make_cnode(int n)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, A, 8), CAP_OK);
    for (int i = 0; i < n; i++) {
        cap_hash_t h = test_rng_hash(&rng);
        cap_target_t t = cap_target_of_hash(&h);
        CHECK_EQ_INT(cap_cnode_set(c, (uint32_t)i, &t), CAP_OK);
    }
    return c;
}

/* A CNode pointing at the given hashes (slots 0..n-1). */
static cap_t *make_parent(const cap_hash_t *kids, int n)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, A, 4), CAP_OK);
    for (int i = 0; i < n; i++) {
        cap_target_t t = cap_target_of_hash(&kids[i]);
        CHECK_EQ_INT(cap_cnode_set(c, (uint32_t)i, &t), CAP_OK);
    }
    return c;
}

/* Write a cap straight into a backend (not through the store). */
static cap_hash_t backend_put(cap_backend_t *b, cap_t *c)
{
    cap_hash_t h;
    cap_err_t e;
    CHECK_EQ_INT(cap_persist_put(b, c, &h, &e), CAP_OK);
    return h;
}

static cap_backend_t *mem_backend(void)
{
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(NULL, &b), CAP_OK);
    return b;
}

static cap_backend_t *fault_over(cap_backend_t *inner)
{
    cap_backend_t *f = NULL;
    CHECK_EQ_INT(cap_fault_backend_new(inner, true, &f), CAP_OK);
    return f;
}

static void set_fault(cap_backend_t *f, cap_fault_kind_t kind, unsigned ops)
{
    cap_fault_plan_t p;
    memset(&p, 0, sizeof p);
    p.kind = kind;
    p.ops = ops;
    cap_fault_backend_set(f, &p);
}

/* Provider ------------------------------------------------------------------------------------- */

static void test_provider_basics(void)
{
    cap_backend_t *fb = fault_over(mem_backend());
    cap_t *c = make_cnode(5);
    cap_hash_t h = backend_put(fb, c);
    cap_release(c);
    cap_hash_t absent = test_rng_hash(&rng);

    cap_store_t *s = new_store(0);
    cap_t *out = NULL;
    /* Without a backend: memory only. */
    CHECK_EQ_INT(cap_store_get_blob(s, &h, &out), CAP_EBLOBMISSING);
    CHECK(out == NULL);
    cap_err_t e;
    CHECK_EQ_INT(cap_store_add_backend(s, fb, &e), CAP_OK);
    CHECK(!cap_store_contains_blob(s, &h));
    CHECK_EQ_INT(cap_store_blob_count(s), 0);

    uint64_t calls0 = cap_fault_backend_calls(fb);
    CHECK_EQ_INT(cap_store_get_blob(s, &h, &out), CAP_OK);
    CHECK(out != NULL);
    CHECK(cap_is_frozen(out));
    cap_hash_t got = test_hash_cap(out);
    CHECK_MEM(got.bytes, h.bytes, 32);
    cap_release(out);
    CHECK_EQ_INT(cap_store_blob_count(s), 1);
    CHECK(cap_store_contains_blob(s, &h));
    CHECK(cap_store_blob_bytes(s) > 0);
    uint64_t calls1 = cap_fault_backend_calls(fb);
    CHECK_EQ_INT(calls1 - calls0, 1);
    /* A second lookup is a memory hit. */
    CHECK_EQ_INT(cap_store_get_blob(s, &h, &out), CAP_OK);
    cap_release(out);
    CHECK_EQ_INT(cap_fault_backend_calls(fb), calls1);

    /* Absent everywhere. */
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_store_fetch_blob(s, &absent, &out, &e), CAP_EBLOBMISSING);
    CHECK_EQ_INT(e.code, CAP_EBLOBMISSING);
    CHECK(e.what != NULL);
    CHECK(out == NULL);
    CHECK_EQ_INT(cap_store_get_blob(s, &absent, &out), CAP_EBLOBMISSING);
    CHECK_EQ_INT(cap_store_blob_count(s), 1);
    CHECK_EQ_INT(cap_store_fetch_blob(s, NULL, &out, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_fetch_blob(s, &h, NULL, &e), CAP_EINVAL);
    cap_store_free(s);

    /* get(Hash) and promote fall through to the backend too. */
    s = new_store(0);
    CHECK_EQ_INT(cap_store_add_backend(s, fb, NULL), CAP_OK);
    cap_target_t t = cap_target_of_hash(&h);
    CHECK_EQ_INT(cap_store_get(s, &t, &out), CAP_OK);
    cap_release(out);
    cap_store_free(s);
    s = new_store(0);
    CHECK_EQ_INT(cap_store_add_backend(s, fb, NULL), CAP_OK);
    cap_ref_t *r = NULL;
    CHECK_EQ_INT(cap_store_promote_blob_to_instance(s, &h, &r), CAP_OK);
    CHECK(r != NULL);
    CHECK_EQ_INT(cap_store_blob_count(s), 1);
    CHECK_EQ_INT(cap_store_instance_count(s), 1);
    CHECK_EQ_INT(cap_store_get_instance(s, r, &out), CAP_OK);
    got = test_hash_cap(out);
    CHECK_MEM(got.bytes, h.bytes, 32);
    cap_release(out);
    cap_ref_t *r2 = NULL;
    CHECK_EQ_INT(cap_store_promote_blob_to_instance(s, &absent, &r2), CAP_EBLOBMISSING);
    CHECK(r2 == NULL);
    cap_ref_release(r);
    /* iter_blobs describes memory only. */
    cap_blob_entry_t *ents = NULL;
    size_t n = 0;
    CHECK_EQ_INT(cap_store_iter_blobs(s, &ents, &n), CAP_OK);
    CHECK_EQ_INT(n, 1);
    cap_store_blobs_free(s, ents, n);
    cap_store_free(s);

    /* A store in place, never used before its first fetch. */
    cap_store_storage_t st;
    cap_store_options_t o;
    memset(&o, 0, sizeof o);
    o.alloc = A;
    o.locks = use_spin ? NULL : cap_lock_pthread();
    CHECK_EQ_INT(cap_store_init_in_place(&st, &o, &s), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(s, fb, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_get_blob(s, &h, &out), CAP_OK);
    cap_release(out);
    cap_store_free(s);
    cap_backend_free(fb);
}

static void test_add_backend_checks(void)
{
    cap_store_t *s = new_store(0);
    cap_err_t e;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_store_add_backend(s, NULL, &e), CAP_EINVAL);
    CHECK(e.what != NULL);
    CHECK_EQ_INT(cap_store_add_backend(NULL, NULL, &e), CAP_EINVAL);
    cap_backend_t bad = CAP_BACKEND_INIT; /* no read */
    CHECK_EQ_INT(cap_store_add_backend(s, &bad, &e), CAP_EINVAL);
    cap_backend_t *b[CAP_STORE_MAX_BACKENDS + 1];
    for (int i = 0; i <= CAP_STORE_MAX_BACKENDS; i++) b[i] = mem_backend();
    for (int i = 0; i < CAP_STORE_MAX_BACKENDS; i++)
        CHECK_EQ_INT(cap_store_add_backend(s, b[i], &e), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(s, b[CAP_STORE_MAX_BACKENDS], &e), CAP_EINVAL);
    CHECK(e.what != NULL);
    cap_store_free(s);
    s = new_store(0);
    CHECK_EQ_INT(cap_store_add_backend(s, b[0], &e), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(s, b[0], &e), CAP_EINVAL); /* twice */
    cap_store_free(s);
    for (int i = 0; i <= CAP_STORE_MAX_BACKENDS; i++) cap_backend_free(b[i]);
}

static void test_order_and_errors(void)
{
    cap_backend_t *f1 = fault_over(mem_backend());
    cap_backend_t *f2 = fault_over(mem_backend());
    cap_t *c = make_cnode(9);
    cap_t *other = make_cnode(3);
    cap_hash_t h = backend_put(f1, c);
    (void)backend_put(f2, c);
    cap_hash_t ho = backend_put(f1, other);
    (void)backend_put(f2, other);
    cap_t *only2 = make_cnode(4);
    cap_hash_t h2 = backend_put(f2, only2);
    cap_release(c);
    cap_release(other);
    cap_release(only2);
    cap_t *out = NULL;
    cap_err_t e;

    /* In order: the first backend that has it answers. */
    cap_store_t *s = new_store(0);
    CHECK_EQ_INT(cap_store_add_backend(s, f1, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(s, f2, NULL), CAP_OK);
    uint64_t c1 = cap_fault_backend_calls(f1), c2 = cap_fault_backend_calls(f2);
    CHECK_EQ_INT(cap_store_get_blob(s, &h, &out), CAP_OK);
    cap_release(out);
    CHECK_EQ_INT(cap_fault_backend_calls(f1) - c1, 1);
    CHECK_EQ_INT(cap_fault_backend_calls(f2) - c2, 0);
    /* Not in the first: the second is asked. */
    CHECK_EQ_INT(cap_store_get_blob(s, &h2, &out), CAP_OK);
    cap_release(out);
    CHECK_EQ_INT(cap_fault_backend_calls(f2) - c2, 1);
    cap_store_free(s);

    /* Each kind of bad answer from the first backend: that error, nothing
     * published, the second backend not asked. */
    struct {
        cap_fault_kind_t kind;
        int rc1, rc2; /* acceptable codes */
    } cases[] = {
        {CAP_FAULT_SWAP, CAP_EMISMATCH, CAP_EMISMATCH},
        {CAP_FAULT_CORRUPT, CAP_EMISMATCH, CAP_EDECODE},
        {CAP_FAULT_TRUNCATE, CAP_EDECODE, CAP_EDECODE},
        {CAP_FAULT_IO, CAP_EBACKEND, CAP_EBACKEND},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        s = new_store(0);
        CHECK_EQ_INT(cap_store_add_backend(s, f1, NULL), CAP_OK);
        CHECK_EQ_INT(cap_store_add_backend(s, f2, NULL), CAP_OK);
        cap_fault_plan_t p;
        memset(&p, 0, sizeof p);
        p.kind = cases[k].kind;
        p.ops = CAP_FAULT_READ;
        p.swap_with = ho;
        cap_fault_backend_set(f1, &p);
        c2 = cap_fault_backend_calls(f2);
        memset(&e, 0, sizeof e);
        int rc = cap_store_fetch_blob(s, &h, &out, &e);
        CHECK(rc == cases[k].rc1 || rc == cases[k].rc2);
        CHECK_EQ_INT(e.code, rc);
        CHECK(e.what != NULL);
        CHECK(out == NULL);
        CHECK_EQ_INT(cap_store_blob_count(s), 0);
        CHECK_EQ_INT(cap_store_blob_bytes(s), 0);
        CHECK(!cap_store_contains_blob(s, &h));
        CHECK_EQ_INT(cap_store_get_blob(s, &h, &out), rc); /* get_blob: the same code */
        CHECK_EQ_INT(cap_fault_backend_calls(f2), c2);
        /* Once the backend heals, the blob comes. */
        set_fault(f1, CAP_FAULT_NONE, 0);
        CHECK_EQ_INT(cap_store_get_blob(s, &h, &out), CAP_OK);
        cap_release(out);
        CHECK_EQ_INT(cap_store_blob_count(s), 1);
        cap_store_free(s);
    }

    /* "Not found" from the first (a fault) falls through to the second. */
    s = new_store(0);
    CHECK_EQ_INT(cap_store_add_backend(s, f1, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(s, f2, NULL), CAP_OK);
    set_fault(f1, CAP_FAULT_NOTFOUND, CAP_FAULT_READ);
    CHECK_EQ_INT(cap_store_get_blob(s, &h, &out), CAP_OK);
    cap_release(out);
    set_fault(f1, CAP_FAULT_NONE, 0);
    cap_store_free(s);

    /* A trusted backend is not re-hashed: a swapped blob is published under
     * the asked hash (that is what trusting means). */
    s = new_store(0);
    f1->flags |= CAP_BACKEND_TRUSTED;
    CHECK_EQ_INT(cap_store_add_backend(s, f1, NULL), CAP_OK);
    cap_fault_plan_t p;
    memset(&p, 0, sizeof p);
    p.kind = CAP_FAULT_SWAP;
    p.ops = CAP_FAULT_READ;
    p.swap_with = ho;
    cap_fault_backend_set(f1, &p);
    CHECK_EQ_INT(cap_store_get_blob(s, &h, &out), CAP_OK);
    cap_hash_t got = test_hash_cap(out);
    CHECK_MEM(got.bytes, ho.bytes, 32);
    cap_release(out);
    /* Decoding stays strict for a trusted backend. */
    cap_hash_t h2b = h2;
    set_fault(f1, CAP_FAULT_TRUNCATE, CAP_FAULT_READ);
    (void)backend_put(f1, only2 = make_cnode(6));
    h2b = test_hash_cap(only2);
    cap_release(only2);
    CHECK_EQ_INT(cap_store_fetch_blob(s, &h2b, &out, &e), CAP_EDECODE);
    f1->flags &= ~CAP_BACKEND_TRUSTED;
    set_fault(f1, CAP_FAULT_NONE, 0);
    cap_store_free(s);
    cap_backend_free(f1);
    cap_backend_free(f2);
}

static void test_exists(void)
{
    cap_backend_t *fb = fault_over(mem_backend());
    cap_t *c = make_cnode(2);
    cap_hash_t hb = backend_put(fb, c);
    cap_release(c);
    cap_store_t *s = new_store(0);
    cap_t *m = make_cnode(3);
    cap_hash_t hm;
    CHECK_EQ_INT(cap_store_put_cap(s, m, &hm), CAP_OK);
    cap_release(m);
    cap_hash_t absent = test_rng_hash(&rng);
    cap_err_t e;
    CHECK_EQ_INT(cap_store_exists(s, &hm, &e), CAP_OK);
    CHECK_EQ_INT(cap_store_exists(s, &hb, &e), CAP_ENOTFOUND); /* no backend yet */
    CHECK_EQ_INT(cap_store_add_backend(s, fb, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_exists(s, &hb, &e), CAP_OK);
    CHECK_EQ_INT(cap_store_blob_count(s), 1); /* fetches nothing */
    CHECK_EQ_INT(cap_store_exists(s, &absent, &e), CAP_ENOTFOUND);
    CHECK_EQ_INT(e.code, CAP_ENOTFOUND);
    set_fault(fb, CAP_FAULT_IO, CAP_FAULT_EXISTS);
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_store_exists(s, &hb, &e), CAP_EBACKEND);
    CHECK(e.what != NULL);
    CHECK_EQ_INT(cap_store_exists(s, &hm, &e), CAP_OK); /* memory answers first */
    set_fault(fb, CAP_FAULT_NONE, 0);
    CHECK_EQ_INT(cap_store_exists(s, NULL, &e), CAP_EINVAL);
    cap_store_free(s);
    cap_backend_free(fb);
}

/* Flush and write-through ------------------------------------------------------------------------ */

static void test_flush(void)
{
    cap_backend_t *mb = mem_backend();
    cap_backend_t *fb = fault_over(mb);
    cap_store_t *s = new_store(0);
    size_t w = 99;
    cap_err_t e;
    /* No backend: nothing to do. */
    CHECK_EQ_INT(cap_store_flush(s, &w, &e), CAP_OK);
    CHECK_EQ_INT(w, 0);
    cap_hash_t hs[12];
    for (int i = 0; i < 10; i++) {
        cap_t *c = make_cnode(i + 1);
        CHECK_EQ_INT(cap_store_put_cap(s, c, &hs[i]), CAP_OK);
        cap_release(c);
    }
    CHECK_EQ_INT(cap_store_add_backend(s, fb, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_flush(s, &w, &e), CAP_OK);
    CHECK_EQ_INT(w, 10);
    CHECK_EQ_INT(cap_mem_backend_count(mb), 10);
    for (int i = 0; i < 10; i++) CHECK_EQ_INT(cap_backend_exists(mb, &hs[i], NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_flush(s, &w, &e), CAP_OK);
    CHECK_EQ_INT(w, 0); /* all clean now */

    /* A failing batch (full disk): error, nothing written, nothing marked. */
    for (int i = 10; i < 12; i++) {
        cap_t *c = make_cnode(i + 1);
        CHECK_EQ_INT(cap_store_put_cap(s, c, &hs[i]), CAP_OK);
        cap_release(c);
    }
    set_fault(fb, CAP_FAULT_DISK_FULL, CAP_FAULT_BATCH);
    memset(&e, 0, sizeof e);
    w = 99;
    CHECK_EQ_INT(cap_store_flush(s, &w, &e), CAP_EBACKEND);
    CHECK_EQ_INT(w, 0);
    CHECK_EQ_INT(e.code, CAP_EBACKEND);
    CHECK(e.what != NULL && strstr(e.what, "space") != NULL);
    CHECK_EQ_INT(cap_mem_backend_count(mb), 10);
    /* A failing backend flush after the batch also leaves them dirty. */
    set_fault(fb, CAP_FAULT_IO, CAP_FAULT_FLUSH);
    CHECK_EQ_INT(cap_store_flush(s, &w, &e), CAP_EBACKEND);
    set_fault(fb, CAP_FAULT_NONE, 0);
    CHECK_EQ_INT(cap_store_flush(s, &w, &e), CAP_OK);
    CHECK_EQ_INT(w, 0); /* the retry hands them over again; the failed flush's batch had stored them */
    CHECK_EQ_INT(cap_mem_backend_count(mb), 12);
    CHECK_EQ_INT(cap_store_flush(s, &w, NULL), CAP_OK);
    CHECK_EQ_INT(w, 0);
    cap_store_free(s);

    /* Fetched blobs are clean: a flush writes none of them. */
    s = new_store(0);
    CHECK_EQ_INT(cap_store_add_backend(s, fb, NULL), CAP_OK);
    for (int i = 0; i < 12; i++) {
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_store_get_blob(s, &hs[i], &c), CAP_OK);
        cap_release(c);
    }
    uint64_t calls = cap_fault_backend_calls(fb);
    CHECK_EQ_INT(cap_store_flush(s, &w, &e), CAP_OK);
    CHECK_EQ_INT(w, 0);
    CHECK_EQ_INT(cap_fault_backend_calls(fb), calls);
    cap_store_free(s);

    /* Settle's blobs are dirty too. */
    s = new_store(0);
    CHECK_EQ_INT(cap_store_add_backend(s, fb, NULL), CAP_OK);
    cap_t *c = make_cnode(2);
    cap_ref_t *r = NULL;
    CHECK_EQ_INT(cap_store_put_instance(s, c, &r), CAP_OK);
    cap_release(c);
    cap_target_t t = cap_target_of_ref(r);
    cap_hash_t sh;
    CHECK_EQ_INT(cap_store_settle(s, &t, &sh, NULL), CAP_OK);
    cap_ref_release(r);
    CHECK_EQ_INT(cap_store_flush(s, &w, &e), CAP_OK);
    CHECK_EQ_INT(w, 1);
    CHECK_EQ_INT(cap_backend_exists(mb, &sh, NULL), CAP_OK);
    cap_store_free(s);

    /* Only a read-only backend: dirty blobs cannot be flushed. */
    cap_backend_t *ro = mem_backend();
    ro->flags |= CAP_BACKEND_READONLY;
    s = new_store(0);
    CHECK_EQ_INT(cap_store_add_backend(s, ro, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_flush(s, &w, &e), CAP_OK); /* nothing dirty yet */
    c = make_cnode(1);
    CHECK_EQ_INT(cap_store_put_cap(s, c, NULL), CAP_OK);
    cap_release(c);
    CHECK_EQ_INT(cap_store_flush(s, &w, &e), CAP_EBACKEND);
    /* ... but a writable one attached later receives them. */
    CHECK_EQ_INT(cap_store_add_backend(s, fb, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_flush(s, &w, &e), CAP_OK);
    CHECK_EQ_INT(w, 1);
    cap_store_free(s);
    ro->flags &= ~CAP_BACKEND_READONLY;
    cap_backend_free(ro);
    CHECK_EQ_INT(cap_store_flush(NULL, &w, &e), CAP_EINVAL);
    cap_backend_free(fb);
}

static void test_write_through(void)
{
    cap_backend_t *mb = mem_backend();
    cap_backend_t *fb = fault_over(mb);
    cap_store_t *s = new_store(CAP_STORE_WRITE_THROUGH);
    /* No writable backend yet: a plain put (dirty). */
    cap_t *c0 = make_cnode(1);
    cap_hash_t h0;
    CHECK_EQ_INT(cap_store_put_cap(s, c0, &h0), CAP_OK);
    cap_release(c0);
    CHECK_EQ_INT(cap_store_add_backend(s, fb, NULL), CAP_OK);
    CHECK_EQ_INT(cap_mem_backend_count(mb), 0);

    cap_t *c = make_cnode(4);
    cap_hash_t h;
    CHECK_EQ_INT(cap_store_put_cap(s, c, &h), CAP_OK);
    CHECK_EQ_INT(cap_mem_backend_count(mb), 1); /* written before the put returned */
    CHECK_EQ_INT(cap_backend_exists(mb, &h, NULL), CAP_OK);
    uint64_t calls = cap_fault_backend_calls(fb);
    CHECK_EQ_INT(cap_store_put_cap(s, c, &h), CAP_OK); /* not new: not written again */
    CHECK_EQ_INT(cap_fault_backend_calls(fb), calls);
    cap_release(c);

    /* A failed write publishes nothing and leaves the cap unfrozen. */
    set_fault(fb, CAP_FAULT_DISK_FULL, CAP_FAULT_WRITE | CAP_FAULT_BATCH);
    cap_t *d = make_cnode(6);
    cap_hash_t hd = test_hash_cap(d);
    size_t before = cap_store_blob_count(s);
    CHECK_EQ_INT(cap_store_put_cap(s, d, NULL), CAP_EBACKEND);
    CHECK_EQ_INT(cap_store_blob_count(s), before);
    CHECK(!cap_store_contains_blob(s, &hd));
    CHECK(!cap_is_frozen(d));
    CHECK_EQ_INT(cap_store_put_cap_with_hash(s, &hd, d), CAP_EBACKEND);
    CHECK(!cap_store_contains_blob(s, &hd));
    set_fault(fb, CAP_FAULT_NONE, 0);
    CHECK_EQ_INT(cap_store_put_cap_with_hash(s, &hd, d), CAP_OK);
    CHECK(cap_is_frozen(d));
    CHECK_EQ_INT(cap_backend_exists(mb, &hd, NULL), CAP_OK);
    cap_release(d);
    /* Written-through blobs are clean: the flush writes only the early one. */
    size_t w = 0;
    CHECK_EQ_INT(cap_store_flush(s, &w, NULL), CAP_OK);
    CHECK_EQ_INT(w, 1);
    CHECK_EQ_INT(cap_backend_exists(mb, &h0, NULL), CAP_OK);
    cap_store_free(s);
    cap_backend_free(fb);
}

/* Retention ------------------------------------------------------------------------------------ */

static void test_pins(void)
{
    cap_backend_t *mb = mem_backend();
    cap_t *c = make_cnode(3);
    cap_hash_t hb = backend_put(mb, c);
    cap_release(c);
    cap_store_t *s = new_store(0);
    cap_t *m = make_cnode(2);
    cap_hash_t hm;
    CHECK_EQ_INT(cap_store_put_cap(s, m, &hm), CAP_OK);
    cap_release(m);
    cap_err_t e;
    CHECK_EQ_INT(cap_store_pin(s, &hm, &e), CAP_OK);
    CHECK_EQ_INT(cap_store_pin(s, &hm, &e), CAP_OK);
    CHECK_EQ_INT(cap_store_unpin(s, &hm), CAP_OK);
    CHECK_EQ_INT(cap_store_unpin(s, &hm), CAP_OK);
    CHECK_EQ_INT(cap_store_unpin(s, &hm), CAP_EINVAL); /* not pinned any more */
    /* Pinning a blob that is nowhere. */
    CHECK_EQ_INT(cap_store_pin(s, &hb, &e), CAP_EBLOBMISSING);
    CHECK_EQ_INT(cap_store_unpin(s, &hb), CAP_EINVAL);
    /* Pinning fetches it. */
    CHECK_EQ_INT(cap_store_add_backend(s, mb, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_pin(s, &hb, &e), CAP_OK);
    CHECK(cap_store_contains_blob(s, &hb));
    CHECK_EQ_INT(cap_store_pin(s, NULL, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_unpin(NULL, &hb), CAP_EINVAL);
    /* A pinned blob survives any trim. */
    cap_store_set_budget(s, 1);
    size_t dropped = 0;
    CHECK_EQ_INT(cap_store_trim(s, &dropped), CAP_OK);
    CHECK(cap_store_contains_blob(s, &hb));
    CHECK(cap_store_contains_blob(s, &hm)); /* dirty */
    CHECK_EQ_INT(cap_store_unpin(s, &hb), CAP_OK);
    CHECK_EQ_INT(cap_store_trim(s, &dropped), CAP_OK);
    CHECK_EQ_INT(dropped, 1);
    CHECK(!cap_store_contains_blob(s, &hb));
    cap_store_free(s);
    cap_backend_free(mb);
}

#define NB 64

/* A store holding NB flushed blobs, no outside references. */
static cap_store_t *flushed_store(cap_backend_t *b, cap_hash_t *hs)
{
    cap_store_t *s = new_store(0);
    CHECK_EQ_INT(cap_store_add_backend(s, b, NULL), CAP_OK);
    for (int i = 0; i < NB; i++) {
        cap_t *c = make_cnode(8);
        CHECK_EQ_INT(cap_store_put_cap(s, c, &hs[i]), CAP_OK);
        cap_release(c);
    }
    size_t w = 0;
    CHECK_EQ_INT(cap_store_flush(s, &w, NULL), CAP_OK);
    CHECK_EQ_INT(w, NB);
    return s;
}

static void test_budget(void)
{
    cap_hash_t hs[NB];
    size_t dropped = 0;

    /* Without a backend nothing is dropped, however small the budget. */
    cap_store_t *s = new_store(0);
    for (int i = 0; i < NB; i++) {
        cap_t *c = make_cnode(8);
        CHECK_EQ_INT(cap_store_put_cap(s, c, &hs[i]), CAP_OK);
        cap_release(c);
    }
    size_t total = cap_store_blob_bytes(s);
    CHECK(total >= NB * 8 * 32); /* at least the cnode slots */
    cap_store_set_budget(s, 1);
    CHECK_EQ_INT(cap_store_trim(s, &dropped), CAP_OK);
    CHECK_EQ_INT(dropped, 0);
    CHECK_EQ_INT(cap_store_blob_count(s), NB);
    cap_store_free(s);

    /* With a backend but unflushed: dirty blobs stay. */
    cap_backend_t *mb = mem_backend();
    s = new_store(0);
    CHECK_EQ_INT(cap_store_add_backend(s, mb, NULL), CAP_OK);
    for (int i = 0; i < NB; i++) {
        cap_t *c = make_cnode(8);
        CHECK_EQ_INT(cap_store_put_cap(s, c, &hs[i]), CAP_OK);
        cap_release(c);
    }
    cap_store_set_budget(s, 1);
    CHECK_EQ_INT(cap_store_trim(s, &dropped), CAP_OK);
    CHECK_EQ_INT(dropped, 0);
    CHECK_EQ_INT(cap_store_blob_count(s), NB);
    /* After the flush the next put trims by itself. */
    size_t w;
    CHECK_EQ_INT(cap_store_flush(s, &w, NULL), CAP_OK);
    CHECK(cap_store_blob_count(s) < NB); /* the flush trimmed */
    cap_store_free(s);

    /* Flushed: trim drops down to 7/8 of the budget; everything comes back. */
    s = flushed_store(mb, hs);
    total = cap_store_blob_bytes(s);
    size_t per = total / NB;
    size_t budget = total / 2;
    cap_store_set_budget(s, budget);
    CHECK_EQ_INT(cap_store_trim(s, &dropped), CAP_OK);
    CHECK(dropped > 0);
    CHECK(cap_store_blob_bytes(s) <= budget - budget / 8);
    CHECK(cap_store_blob_bytes(s) + per > budget - budget / 8);
    CHECK_EQ_INT(cap_store_blob_count(s), NB - dropped);
    /* Under the budget: a trim drops nothing. */
    CHECK_EQ_INT(cap_store_trim(s, &dropped), CAP_OK);
    CHECK_EQ_INT(dropped, 0);
    cap_store_set_budget(s, 0);
    for (int i = 0; i < NB; i++) {
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_store_get_blob(s, &hs[i], &c), CAP_OK);
        cap_hash_t got = test_hash_cap(c);
        CHECK_MEM(got.bytes, hs[i].bytes, 32);
        cap_release(c);
    }
    CHECK_EQ_INT(cap_store_blob_count(s), NB);
    CHECK_EQ_INT(cap_store_blob_bytes(s), total);
    cap_store_free(s);

    /* Referenced from outside: stays. */
    s = flushed_store(mb, hs);
    cap_t *held[4];
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(cap_store_get_blob(s, &hs[i], &held[i]), CAP_OK);
    cap_store_set_budget(s, 1);
    CHECK_EQ_INT(cap_store_trim(s, &dropped), CAP_OK);
    CHECK_EQ_INT(dropped, NB - 4);
    CHECK_EQ_INT(cap_store_blob_count(s), 4);
    for (int i = 0; i < 4; i++) {
        CHECK(cap_store_contains_blob(s, &hs[i]));
        cap_release(held[i]);
    }
    CHECK_EQ_INT(cap_store_trim(s, &dropped), CAP_OK);
    CHECK_EQ_INT(dropped, 4);
    CHECK_EQ_INT(cap_store_blob_count(s), 0);
    CHECK_EQ_INT(cap_store_blob_bytes(s), 0);
    cap_store_free(s);

    /* Puts over the budget trim by themselves (clean blobs go). */
    s = flushed_store(mb, hs);
    total = cap_store_blob_bytes(s);
    cap_store_set_budget(s, total / 4);
    cap_t *c = make_cnode(8);
    CHECK_EQ_INT(cap_store_put_cap(s, c, NULL), CAP_OK);
    cap_release(c);
    CHECK(cap_store_blob_bytes(s) <= total / 4);
    CHECK_EQ_INT(cap_store_trim(NULL, &dropped), CAP_EINVAL);
    cap_store_free(s);
    cap_backend_free(mb);
}

/* Many blobs per shard: trims remove from the middle of probe runs
 * (backward-shift deletion); every blob left must still be found, every
 * dropped one refetched, and the counts and the snapshot must agree. */
static void test_many_drops(void)
{
    enum { N = 5000 };
    cap_backend_t *mb = mem_backend();
    cap_store_t *s = new_store(0);
    CHECK_EQ_INT(cap_store_add_backend(s, mb, NULL), CAP_OK);
    cap_hash_t *hs = malloc(N * sizeof *hs);
    for (int i = 0; i < N; i++) {
        cap_t *c = make_cnode(1 + i % 3);
        CHECK_EQ_INT(cap_store_put_cap(s, c, &hs[i]), CAP_OK);
        cap_release(c);
    }
    size_t w;
    CHECK_EQ_INT(cap_store_flush(s, &w, NULL), CAP_OK);
    CHECK_EQ_INT(w, N);
    size_t total = cap_store_blob_bytes(s);
    for (int round = 0; round < 4; round++) {
        /* Touch a pseudo-random third, then trim to a smaller budget. */
        for (int i = round; i < N; i += 3) {
            cap_t *c = NULL;
            if (cap_store_contains_blob(s, &hs[i]) && cap_store_get_blob(s, &hs[i], &c) == CAP_OK)
                cap_release(c);
        }
        size_t dropped;
        cap_store_set_budget(s, total / (size_t)(2 + round));
        CHECK_EQ_INT(cap_store_trim(s, &dropped), CAP_OK);
        CHECK(dropped > 0);
        size_t found = 0;
        for (int i = 0; i < N; i++) found += cap_store_contains_blob(s, &hs[i]);
        CHECK_EQ_INT(found, cap_store_blob_count(s));
        cap_blob_entry_t *ents = NULL;
        size_t n = 0;
        CHECK_EQ_INT(cap_store_iter_blobs(s, &ents, &n), CAP_OK);
        CHECK_EQ_INT(n, found);
        cap_store_blobs_free(s, ents, n);
    }
    cap_store_set_budget(s, 0);
    for (int i = 0; i < N; i++) {
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_store_get_blob(s, &hs[i], &c), CAP_OK);
        cap_release(c);
    }
    CHECK_EQ_INT(cap_store_blob_count(s), N);
    CHECK_EQ_INT(cap_store_blob_bytes(s), total);
    free(hs);
    cap_store_free(s);
    cap_backend_free(mb);
}

/* CLOCK: blobs looked up since the last pass survive those that were not. */
static void test_clock_order(void)
{
    cap_backend_t *mb = mem_backend();
    cap_hash_t hs[NB];
    cap_store_t *s = flushed_store(mb, hs);
    size_t total = cap_store_blob_bytes(s), per = total / NB;
    size_t dropped;
    /* First trim: every USED bit (set by the puts) is cleared in the first
     * pass; the second drops down to the target. */
    cap_store_set_budget(s, per * 40);
    CHECK_EQ_INT(cap_store_trim(s, &dropped), CAP_OK);
    CHECK(dropped > 0);
    /* Touch 10 of what remains. */
    int touched[NB], nt = 0;
    memset(touched, 0, sizeof touched);
    for (int i = 0; i < NB && nt < 10; i++) {
        if (!cap_store_contains_blob(s, &hs[i])) continue;
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_store_get_blob(s, &hs[i], &c), CAP_OK);
        cap_release(c);
        touched[i] = 1;
        nt++;
    }
    CHECK_EQ_INT(nt, 10);
    cap_store_set_budget(s, per * 14); /* target 7/8: room for ~12 */
    CHECK_EQ_INT(cap_store_trim(s, &dropped), CAP_OK);
    CHECK(dropped > 0);
    for (int i = 0; i < NB; i++)
        if (touched[i]) CHECK(cap_store_contains_blob(s, &hs[i]));
    cap_store_free(s);
    cap_backend_free(mb);
}

/* Reachable from a live instance: stays, transitively through blobs. */
static void test_reachability(void)
{
    cap_backend_t *mb = mem_backend();
    cap_store_t *s = new_store(0);
    CHECK_EQ_INT(cap_store_add_backend(s, mb, NULL), CAP_OK);
    /* grandchild <- child <- (instance entry's cnode); plus loose blobs. */
    cap_t *g = make_cnode(3);
    cap_hash_t hg;
    CHECK_EQ_INT(cap_store_put_cap(s, g, &hg), CAP_OK);
    cap_release(g);
    cap_t *ch = make_parent(&hg, 1);
    cap_hash_t hc;
    CHECK_EQ_INT(cap_store_put_cap(s, ch, &hc), CAP_OK);
    cap_release(ch);
    cap_hash_t loose[8];
    for (int i = 0; i < 8; i++) {
        cap_t *c = make_cnode(5);
        CHECK_EQ_INT(cap_store_put_cap(s, c, &loose[i]), CAP_OK);
        cap_release(c);
    }
    /* An Instance blob whose root CNode is a blob, reached from an entry. */
    cap_t *leaf = make_cnode(2);
    cap_hash_t hl;
    CHECK_EQ_INT(cap_store_put_cap(s, leaf, &hl), CAP_OK);
    cap_release(leaf);
    cap_target_t lt = cap_target_of_hash(&hl);
    cap_t *inst = NULL;
    CHECK_EQ_INT(cap_instance_new(&inst, A, &lt), CAP_OK);
    cap_hash_t hi;
    CHECK_EQ_INT(cap_store_put_cap(s, inst, &hi), CAP_OK);
    cap_release(inst);
    cap_hash_t roots[2] = {hc, hi};
    cap_t *top = make_parent(roots, 2);
    cap_ref_t *r = NULL;
    CHECK_EQ_INT(cap_store_put_instance(s, top, &r), CAP_OK);
    cap_release(top);
    size_t w, dropped;
    CHECK_EQ_INT(cap_store_flush(s, &w, NULL), CAP_OK);
    CHECK_EQ_INT(w, 12);
    cap_store_set_budget(s, 1);
    CHECK_EQ_INT(cap_store_trim(s, &dropped), CAP_OK);
    CHECK_EQ_INT(dropped, 8);
    CHECK(cap_store_contains_blob(s, &hg));
    CHECK(cap_store_contains_blob(s, &hc));
    CHECK(cap_store_contains_blob(s, &hi));
    CHECK(cap_store_contains_blob(s, &hl));
    for (int i = 0; i < 8; i++) CHECK(!cap_store_contains_blob(s, &loose[i]));
    /* Once the entry is gone (released and swept) they may go too. */
    cap_ref_release(r);
    size_t removed;
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(removed, 1);
    CHECK_EQ_INT(cap_store_trim(s, &dropped), CAP_OK);
    CHECK_EQ_INT(dropped, 4);
    CHECK_EQ_INT(cap_store_blob_count(s), 0);
    /* And come back. */
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_store_get_blob(s, &hg, &c), CAP_OK);
    cap_release(c);
    cap_store_free(s);
    cap_backend_free(mb);
}

/* Trim keeps every child cap_for_each_child names: an Instance blob's
 * image, and that Image's pinned and initial entries. */
static void test_reachability_children(void)
{
    cap_backend_t *mb = mem_backend();
    cap_store_t *s = new_store(0);
    CHECK_EQ_INT(cap_store_add_backend(s, mb, NULL), CAP_OK);
    cap_hash_t hp, hn, hl, him, hib, hloose;
    cap_t *c = make_cnode(4);
    CHECK_EQ_INT(cap_store_put_cap(s, c, &hp), CAP_OK); /* pinned by the image */
    cap_release(c);
    c = make_cnode(6);
    CHECK_EQ_INT(cap_store_put_cap(s, c, &hn), CAP_OK); /* initial of the image */
    cap_release(c);
    c = make_cnode(2);
    CHECK_EQ_INT(cap_store_put_cap(s, c, &hl), CAP_OK); /* the instance's root cnode */
    cap_release(c);
    c = make_cnode(7);
    CHECK_EQ_INT(cap_store_put_cap(s, c, &hloose), CAP_OK);
    cap_release(c);
    cap_slot_entry_t pinned = {0, hp}, initial = {1, hn};
    cap_image_desc_t d;
    memset(&d, 0, sizeof d);
    d.pinned = &pinned;
    d.pinned_len = 1;
    d.initial = &initial;
    d.initial_len = 1;
    CHECK_EQ_INT(cap_image_new(&c, A, &d, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_put_cap(s, c, &him), CAP_OK);
    cap_release(c);
    cap_target_t lt = cap_target_of_hash(&hl);
    CHECK_EQ_INT(cap_instance_new(&c, A, &lt), CAP_OK);
    CHECK_EQ_INT(cap_instance_set_image_hash(c, &him), CAP_OK);
    CHECK_EQ_INT(cap_store_put_cap(s, c, &hib), CAP_OK);
    cap_release(c);
    cap_t *top = make_parent(&hib, 1);
    cap_ref_t *r = NULL;
    CHECK_EQ_INT(cap_store_put_instance(s, top, &r), CAP_OK);
    cap_release(top);
    size_t w, dropped;
    CHECK_EQ_INT(cap_store_flush(s, &w, NULL), CAP_OK);
    CHECK_EQ_INT(w, 6);
    cap_store_set_budget(s, 1);
    CHECK_EQ_INT(cap_store_trim(s, &dropped), CAP_OK);
    CHECK_EQ_INT(dropped, 1);
    CHECK(!cap_store_contains_blob(s, &hloose));
    CHECK(cap_store_contains_blob(s, &hib));
    CHECK(cap_store_contains_blob(s, &him)); /* the Instance's image */
    CHECK(cap_store_contains_blob(s, &hp));  /* the Image's pinned entry */
    CHECK(cap_store_contains_blob(s, &hn));  /* the Image's initial entry */
    CHECK(cap_store_contains_blob(s, &hl));
    cap_ref_release(r);
    cap_store_free(s);
    cap_backend_free(mb);
}

/* LMDB: blobs flushed by one store come back in another after a reopen. */
static void test_lmdb_round_trip(void)
{
    char dir[] = "/tmp/capstore-sb-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    char path[256], lockp[300];
    snprintf(path, sizeof path, "%s/db.lmdb", dir);
    snprintf(lockp, sizeof lockp, "%s-lock", path);
    cap_backend_t *db = NULL;
    cap_err_t e;
    CHECK_EQ_INT(cap_lmdb_open(path, NULL, &db, &e), CAP_OK);
    cap_store_t *s = new_store(0);
    CHECK_EQ_INT(cap_store_add_backend(s, db, &e), CAP_OK);
    cap_hash_t hs[20];
    for (int i = 0; i < 20; i++) {
        cap_t *c = make_cnode(i % 7 + 1);
        CHECK_EQ_INT(cap_store_put_cap(s, c, &hs[i]), CAP_OK);
        cap_release(c);
    }
    size_t w;
    CHECK_EQ_INT(cap_store_flush(s, &w, &e), CAP_OK);
    CHECK_EQ_INT(w, 20);
    cap_store_free(s);
    cap_backend_free(db);

    CHECK_EQ_INT(cap_lmdb_open(path, NULL, &db, &e), CAP_OK);
    s = new_store(0);
    CHECK_EQ_INT(cap_store_add_backend(s, db, &e), CAP_OK);
    for (int i = 0; i < 20; i++) {
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_store_get_blob(s, &hs[i], &c), CAP_OK);
        if (c) {
            cap_hash_t got = test_hash_cap(c);
            CHECK_MEM(got.bytes, hs[i].bytes, 32);
        }
        cap_release(c);
    }
    CHECK_EQ_INT(cap_store_blob_count(s), 20);
    cap_store_free(s);
    cap_backend_free(db);
    unlink(path);
    unlink(lockp);
    rmdir(dir);
}

#define RUN(f)                                                                             \
    do {                                                                                   \
        f();                                                                               \
        if (!test_alloc_clean(&ta))                                                        \
            fprintf(stderr, "%s (%s locks): %ld blocks leaked\n", #f,                      \
                    use_spin ? "spin" : "pthread", ta.live_blocks);                          \
        CHECK(test_alloc_clean(&ta));                                                      \
    } while (0)

static void run_all(void)
{
    RUN(test_provider_basics);
    RUN(test_add_backend_checks);
    RUN(test_order_and_errors);
    RUN(test_exists);
    RUN(test_flush);
    RUN(test_write_through);
    RUN(test_pins);
    RUN(test_budget);
    RUN(test_many_drops);
    RUN(test_clock_order);
    RUN(test_reachability);
    RUN(test_reachability_children);
    RUN(test_lmdb_round_trip);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_alloc_init(&ta);
    for (use_spin = 0; use_spin < 2; use_spin++) run_all();
    return check_done("test_store_backend");
}
