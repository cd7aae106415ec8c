/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The backend interface (sys/backend.h) and the generic persistence calls
 * (persist.h) on the in-memory backend and the fault injector:
 *   - mem backend semantics: read/write/exists/iterate/batch, idempotence,
 *     absent hashes, early stop of an iteration;
 *   - table checks (version, required entries) and the wrappers' fallbacks
 *     (no exists, no write_batch), a misbehaving backend's positive code;
 *   - cap_persist_put / _put_batch / _fetch round trips of every kind;
 *   - every fault kind: what fetch reports (CAP_EMISMATCH, CAP_EDECODE,
 *     CAP_EBACKEND, CAP_ENOTFOUND), that a failed batch writes nothing, and
 *     the after/count schedule;
 *   - allocation failure at every step of fetch and put_batch: CAP_ENOMEM,
 *     nothing leaks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_rng.h"
#include "test_alloc.h"

static test_alloc_t ta;
#define A (&ta.alloc)

static test_rng_t rng = {0x243F6A8885A308D3ull};

/* A CNode like the benchmarks' publish: size_log 8, 16 random slots. */
static cap_t *make_cnode(const cap_alloc_t *a)
{
    cap_t *c = NULL;
    if (cap_cnode_new(&c, a, 8) != CAP_OK) return NULL;
    for (int i = 0; i < 16; i++) {
        uint32_t slot = (uint32_t)(test_rng_next(&rng) % 256);
        cap_hash_t h = test_rng_hash(&rng);
        cap_target_t t = cap_target_of_hash(&h);
        if (cap_cnode_set(c, slot, &t) != CAP_OK) {
            cap_release(c);
            return NULL;
        }
    }
    return c;
}

static cap_t *make_data(const cap_alloc_t *a, size_t n)
{
    uint8_t *buf = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)test_rng_next(&rng);
    cap_t *c = NULL;
    int rc = cap_data_new_inline(&c, a, 256, buf, n);
    free(buf);
    return rc == CAP_OK ? c : NULL;
}

static cap_t *make_type(const cap_alloc_t *a)
{
    cap_hash_t h = test_rng_hash(&rng);
    cap_t *c = NULL;
    return cap_type_new(&c, a, &h) == CAP_OK ? c : NULL;
}

static void item(cap_backend_item_t *it, uint8_t fill, size_t n, uint8_t *store)
{
    it->hash = test_rng_hash(&rng);
    memset(store, fill, n);
    it->bytes = store;
    it->n = n;
}

/* Mem backend basics ------------------------------------------------------------------------ */

typedef struct collect {
    int count;
    size_t bytes;
    int stop_after;
} collect_t;

static int collect_cb(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    (void)h;
    (void)bytes;
    collect_t *c = arg;
    c->count++;
    c->bytes += n;
    if (c->stop_after && c->count == c->stop_after) return 7;
    return 0;
}

static void test_mem_basics(void)
{
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(A, &b), CAP_OK);
    CHECK(b != NULL);
    CHECK_EQ_INT(cap_backend_check(b, NULL), CAP_OK);
    CHECK_EQ_INT(b->version, CAP_BACKEND_VERSION);
    CHECK(strcmp(b->name, "mem") == 0);
    CHECK_EQ_INT(cap_mem_backend_count(b), 0);

    cap_hash_t h = test_rng_hash(&rng);
    uint8_t *bytes = (uint8_t *)1;
    size_t n = 99;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_backend_read(b, &h, A, &bytes, &n, &e), CAP_ENOTFOUND);
    CHECK_EQ_INT(e.code, CAP_ENOTFOUND);
    CHECK(bytes == NULL && n == 0);
    CHECK_EQ_INT(cap_backend_exists(b, &h, NULL), CAP_ENOTFOUND);

    uint8_t v1[100], v2[100];
    memset(v1, 0xab, sizeof v1);
    memset(v2, 0xcd, sizeof v2);
    CHECK_EQ_INT(cap_backend_write(b, &h, v1, sizeof v1, &e), CAP_OK);
    CHECK_EQ_INT(cap_backend_exists(b, &h, NULL), CAP_OK);
    /* Other bytes under the hash replace the stored ones only when they
     * are an encoding of the hash (cap_backend_replaces; test_backend_encodings
     * writes caps): these are not, so nothing changes; a write of the same
     * bytes changes nothing either. */
    cap_backend_item_t again = {h, v2, sizeof v2};
    cap_backend_write_result_t wr = {9, 9};
    CHECK_EQ_INT(cap_backend_write_many(b, &again, 1, NULL, 0, &wr, &e), CAP_OK);
    CHECK(wr.written == 0 && wr.repaired == 0);
    CHECK_EQ_INT(cap_mem_backend_count(b), 1);
    CHECK_EQ_INT(cap_backend_read(b, &h, A, &bytes, &n, &e), CAP_OK);
    CHECK_EQ_INT(n, sizeof v1);
    CHECK(bytes && memcmp(bytes, v1, sizeof v1) == 0);
    A->deallocate(A->ctx, bytes, n);
    CHECK_EQ_INT(cap_backend_write(b, &h, v1, sizeof v1, &e), CAP_OK); /* the same bytes */
    CHECK_EQ_INT(cap_backend_read(b, &h, A, &bytes, &n, &e), CAP_OK);
    CHECK(bytes && n == sizeof v1 && memcmp(bytes, v1, sizeof v1) == 0);
    A->deallocate(A->ctx, bytes, n);

    /* An empty value reads back as (NULL, 0). */
    cap_hash_t he = test_rng_hash(&rng);
    CHECK_EQ_INT(cap_backend_write(b, &he, NULL, 0, NULL), CAP_OK);
    bytes = (uint8_t *)1;
    CHECK_EQ_INT(cap_backend_read(b, &he, A, &bytes, &n, NULL), CAP_OK);
    CHECK(bytes == NULL && n == 0);

    /* A batch with a duplicate of an existing hash and of itself. */
    cap_backend_item_t items[5];
    uint8_t store[5][40];
    for (int i = 0; i < 5; i++) item(&items[i], (uint8_t)i, 10 + (size_t)i, store[i]);
    items[3].hash = h;           /* already there, with these bytes */
    items[3].bytes = v1;
    items[3].n = sizeof v1;
    items[4].hash = items[0].hash; /* twice in the batch: the first stays */
    CHECK_EQ_INT(cap_backend_write_batch(b, items, 5, &e), CAP_OK);
    CHECK_EQ_INT(cap_mem_backend_count(b), 5); /* h, he, items 0..2 */
    CHECK_EQ_INT(cap_backend_read(b, &items[0].hash, A, &bytes, &n, NULL), CAP_OK);
    CHECK_EQ_INT(n, 10);
    if (bytes) A->deallocate(A->ctx, bytes, n);
    CHECK_EQ_INT(cap_backend_write_batch(b, items, 0, &e), CAP_OK);

    collect_t c = {0, 0, 0};
    CHECK_EQ_INT(cap_backend_iterate(b, collect_cb, &c, &e), CAP_OK);
    CHECK_EQ_INT(c.count, 5);
    CHECK_EQ_INT(c.bytes, 100 + 0 + 10 + 11 + 12);
    collect_t c2 = {0, 0, 2};
    CHECK_EQ_INT(cap_backend_iterate(b, collect_cb, &c2, &e), 7);
    CHECK_EQ_INT(c2.count, 2);

    /* Many entries: the table grows. */
    for (int i = 0; i < 1000; i++) {
        cap_hash_t hh = test_rng_hash(&rng);
        uint8_t v = (uint8_t)i;
        CHECK_EQ_INT(cap_backend_write(b, &hh, &v, 1, NULL), CAP_OK);
    }
    CHECK_EQ_INT(cap_mem_backend_count(b), 1005);
    CHECK_EQ_INT(cap_backend_flush(b, NULL), CAP_OK); /* no flush entry: nothing to do */
    cap_backend_free(b);
    cap_backend_free(NULL);
    CHECK(test_alloc_clean(&ta));
}

/* Table checks and wrapper fallbacks --------------------------------------------------------- */

/* A minimal backend built on the mem backend's functions, with entries left
 * out to exercise the wrappers' fallbacks. */
static cap_backend_t *g_inner;
static int thin_read(void *ctx, const cap_hash_t *h, const cap_alloc_t *a, uint8_t **b, size_t *n,
                     cap_err_t *err)
{
    (void)ctx;
    return g_inner->read(g_inner->ctx, h, a, b, n, err);
}
static int thin_write(void *ctx, const cap_hash_t *h, const uint8_t *b, size_t n, cap_err_t *err)
{
    int *calls = ctx;
    (*calls)++;
    return cap_backend_write(g_inner, h, b, n, err);
}
static int thin_batch(void *ctx, const cap_backend_item_t *items, size_t n, cap_err_t *err)
{
    int *calls = ctx;
    (*calls)++;
    return cap_backend_write_batch(g_inner, items, n, err);
}
static int bad_read(void *ctx, const cap_hash_t *h, const cap_alloc_t *a, uint8_t **b, size_t *n,
                    cap_err_t *err)
{
    (void)ctx;
    (void)h;
    (void)a;
    (void)b;
    (void)n;
    (void)err;
    return 5; /* a positive code: a buggy backend */
}
static int silent_fail_read(void *ctx, const cap_hash_t *h, const cap_alloc_t *a, uint8_t **b, size_t *n,
                            cap_err_t *err)
{
    (void)ctx;
    (void)h;
    (void)a;
    (void)b;
    (void)n;
    (void)err;
    return CAP_EBACKEND; /* no reason given */
}

static void test_table_checks(void)
{
    cap_err_t e;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_backend_check(NULL, &e), CAP_EINVAL);
    cap_backend_t t = CAP_BACKEND_INIT;
    CHECK_EQ_INT(t.version, 2);
    CHECK_EQ_INT(cap_backend_check(&t, &e), CAP_EINVAL); /* no read */
    CHECK(e.what != NULL);
    CHECK_EQ_INT(cap_mem_backend_new(A, &g_inner), CAP_OK);
    int writes = 0;
    t.ctx = &writes;
    t.read = thin_read;
    CHECK_EQ_INT(cap_backend_check(&t, &e), CAP_EINVAL); /* writable without write */
    t.flags = CAP_BACKEND_READONLY;
    CHECK_EQ_INT(cap_backend_check(&t, &e), CAP_OK);
    cap_hash_t h = test_rng_hash(&rng);
    uint8_t v = 1;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_backend_write(&t, &h, &v, 1, &e), CAP_EBACKEND);
    CHECK(e.what && strcmp(e.what, "read-only") == 0);
    t.flags = 0;
    t.write = thin_write;
    t.version = 0;
    CHECK_EQ_INT(cap_backend_check(&t, &e), CAP_EINVAL);
    t.version = CAP_BACKEND_VERSION + 1;
    CHECK_EQ_INT(cap_backend_check(&t, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_backend_read(&t, &h, A, &(uint8_t *){NULL}, &(size_t){0}, &e), CAP_EINVAL);
    t.version = CAP_BACKEND_VERSION;
    CHECK_EQ_INT(cap_backend_check(&t, &e), CAP_OK);

    /* exists falls back on read with a refusing allocator. */
    CHECK_EQ_INT(cap_backend_exists(&t, &h, &e), CAP_ENOTFOUND);
    CHECK_EQ_INT(cap_backend_write(&t, &h, &v, 1, &e), CAP_OK);
    CHECK_EQ_INT(cap_backend_exists(&t, &h, &e), CAP_OK);
    cap_hash_t he = test_rng_hash(&rng);
    CHECK_EQ_INT(cap_backend_write(&t, &he, NULL, 0, &e), CAP_OK); /* empty value: no allocation */
    CHECK_EQ_INT(cap_backend_exists(&t, &he, &e), CAP_OK);

    /* write_batch falls back on write, item by item. */
    writes = 0;
    cap_backend_item_t items[3];
    uint8_t store[3][8];
    for (int i = 0; i < 3; i++) item(&items[i], (uint8_t)i, 8, store[i]);
    CHECK_EQ_INT(cap_backend_write_batch(&t, items, 3, &e), CAP_OK);
    CHECK_EQ_INT(writes, 3);
    CHECK_EQ_INT(cap_mem_backend_count(g_inner), 5);
    /* write falls back on write_batch, a batch of one. */
    cap_backend_t tb = t;
    tb.write = NULL;
    tb.write_batch = thin_batch;
    CHECK_EQ_INT(cap_backend_check(&tb, &e), CAP_OK);
    writes = 0;
    cap_hash_t hb = test_rng_hash(&rng);
    CHECK_EQ_INT(cap_backend_write(&tb, &hb, &v, 1, &e), CAP_OK);
    CHECK_EQ_INT(writes, 1);
    CHECK_EQ_INT(cap_backend_exists(&tb, &hb, &e), CAP_OK);
    CHECK_EQ_INT(cap_mem_backend_count(g_inner), 6);
    /* No iterate entry. */
    collect_t c = {0, 0, 0};
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_backend_iterate(&t, collect_cb, &c, &e), CAP_EBACKEND);
    CHECK(e.what && strstr(e.what, "iterate") != NULL);
    /* No free entry: cap_backend_free does nothing. */
    cap_backend_free(&t);

    /* A buggy backend: a positive code becomes CAP_EBACKEND; a missing reason is filled. */
    t.read = bad_read;
    cap_t *out = (cap_t *)1;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_persist_fetch(&t, &h, A, true, &out, &e), CAP_EBACKEND);
    CHECK(out == NULL);
    t.read = silent_fail_read;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_persist_fetch(&t, &h, A, true, &out, &e), CAP_EBACKEND);
    CHECK_EQ_INT(e.code, CAP_EBACKEND);
    CHECK(e.what != NULL);
    char msg[200];
    cap_err_format(&e, msg, sizeof msg);
    CHECK(strlen(msg) > 0);

    cap_backend_free(g_inner);
    g_inner = NULL;
    CHECK(test_alloc_clean(&ta));
}

/* Round trips ------------------------------------------------------------------------------------ */

static void test_roundtrip(void)
{
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(A, &b), CAP_OK);
    cap_t *caps[4] = {make_cnode(A), make_data(A, 1000), make_type(A), make_data(A, 0)};
    cap_hash_t hs[4];
    for (int i = 0; i < 4; i++) {
        CHECK(caps[i] != NULL);
        CHECK_EQ_INT(cap_hash(caps[i], &hs[i]), CAP_OK);
    }
    cap_hash_t got;
    CHECK_EQ_INT(cap_persist_put(b, caps[0], &got, NULL), CAP_OK);
    CHECK_MEM(got.bytes, hs[0].bytes, 32);
    /* The batch hashes what it is not told. */
    cap_hash_t out_h[3];
    CHECK_EQ_INT(cap_persist_put_batch(b, caps + 1, NULL, 3, A, out_h, NULL), CAP_OK);
    for (int i = 0; i < 3; i++) CHECK_MEM(out_h[i].bytes, hs[i + 1].bytes, 32);
    CHECK_EQ_INT(cap_mem_backend_count(b), 4);
    CHECK_EQ_INT(cap_persist_put_batch(b, caps, hs, 4, A, NULL, NULL), CAP_OK); /* idempotent */
    CHECK_EQ_INT(cap_mem_backend_count(b), 4);
    CHECK_EQ_INT(cap_persist_put_batch(b, caps, hs, 0, A, NULL, NULL), CAP_OK);

    for (int i = 0; i < 4; i++) {
        cap_t *c = NULL;
        cap_err_t e;
        memset(&e, 0, sizeof e);
        CHECK_EQ_INT(cap_persist_fetch(b, &hs[i], A, true, &c, &e), CAP_OK);
        CHECK(c != NULL);
        if (!c) continue;
        CHECK(cap_equal(c, caps[i]));
        CHECK(cap_is_writable(c));
        CHECK(cap_allocator(c) == A);
        cap_release(c);
    }
    cap_hash_t missing = test_rng_hash(&rng);
    cap_t *c = (cap_t *)1;
    CHECK_EQ_INT(cap_persist_fetch(b, &missing, A, true, &c, NULL), CAP_ENOTFOUND);
    CHECK(c == NULL);
    CHECK_EQ_INT(cap_persist_fetch(NULL, &missing, A, true, &c, NULL), CAP_EINVAL);

    /* cap_persist_decode: bytes already read, checked against a hash. */
    uint8_t *wire = NULL;
    size_t wn = 0;
    CHECK_EQ_INT(cap_backend_read(b, &hs[0], A, &wire, &wn, NULL), CAP_OK);
    c = (cap_t *)1;
    CHECK_EQ_INT(cap_persist_decode(&hs[0], wire, wn, A, true, &c, NULL), CAP_OK);
    CHECK(c != NULL && cap_equal(c, caps[0]));
    cap_release(c);
    cap_err_t de;
    CHECK_EQ_INT(cap_persist_decode(&hs[1], wire, wn, A, true, &c, &de), CAP_EMISMATCH);
    CHECK(c == NULL);
    CHECK_EQ_INT(de.code, CAP_EMISMATCH);
    CHECK_EQ_INT(cap_persist_decode(&hs[1], wire, wn, A, false, &c, NULL), CAP_OK); /* unverified */
    cap_release(c);
    CHECK_EQ_INT(cap_persist_decode(&hs[0], wire, wn - 1, A, true, &c, &de), CAP_EDECODE);
    CHECK(c == NULL);
    CHECK_EQ_INT(cap_persist_decode(&hs[0], NULL, 0, A, true, &c, &de), CAP_EDECODE); /* empty */
    CHECK_EQ_INT(cap_persist_decode(NULL, wire, wn, A, true, &c, NULL), CAP_EINVAL);
    CHECK_EQ_INT(cap_persist_decode(&hs[0], wire, wn, A, true, NULL, NULL), CAP_EINVAL);
    A->deallocate(A->ctx, wire, wn);

    /* An Instance cap goes through as well. */
    cap_t *inst = NULL;
    cap_hash_t root = test_rng_hash(&rng);
    cap_target_t rt = cap_target_of_hash(&root);
    CHECK_EQ_INT(cap_instance_new(&inst, A, &rt), CAP_OK);
    CHECK_EQ_INT(cap_persist_put(b, inst, NULL, NULL), CAP_OK);
    cap_release(inst);

    for (int i = 0; i < 4; i++) cap_release(caps[i]);
    cap_backend_free(b);
    CHECK(test_alloc_clean(&ta));
}

/* Faults -------------------------------------------------------------------------------------- */

static void test_faults(void)
{
    cap_backend_t *mem = NULL, *f = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(A, &mem), CAP_OK);
    CHECK_EQ_INT(cap_fault_backend_new(mem, true, &f), CAP_OK);
    CHECK(strcmp(f->name, "fault") == 0);
    cap_t *cn = make_cnode(A), *other = make_type(A);
    cap_hash_t h, ho;
    CHECK_EQ_INT(cap_persist_put(f, cn, &h, NULL), CAP_OK);
    CHECK_EQ_INT(cap_persist_put(f, other, &ho, NULL), CAP_OK);
    cap_t *c = NULL;
    cap_err_t e;

    /* No plan: pass through. */
    CHECK_EQ_INT(cap_persist_fetch(f, &h, A, true, &c, NULL), CAP_OK);
    cap_release(c);

    cap_fault_plan_t p;
    memset(&p, 0, sizeof p);
    p.kind = CAP_FAULT_IO;
    p.ops = CAP_FAULT_READ;
    cap_fault_backend_set(f, &p);
    memset(&e, 0, sizeof e);
    c = (cap_t *)1;
    CHECK_EQ_INT(cap_persist_fetch(f, &h, A, true, &c, &e), CAP_EBACKEND);
    CHECK(c == NULL);
    CHECK(e.what && strstr(e.what, "simulated") != NULL);
    CHECK_EQ_INT(cap_backend_exists(f, &h, NULL), CAP_OK); /* exists not in ops */

    /* A flipped bit in the last byte (inside the last slot's target): it
     * still decodes, but to another hash. */
    p.kind = CAP_FAULT_CORRUPT;
    p.corrupt_offset = 0;
    cap_fault_backend_set(f, &p);
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_persist_fetch(f, &h, A, true, &c, &e), CAP_EMISMATCH);
    CHECK(c == NULL);
    CHECK_EQ_INT(e.code, CAP_EMISMATCH);
    /* Unverified (a trusted backend), the damage goes through. */
    CHECK_EQ_INT(cap_persist_fetch(f, &h, A, false, &c, NULL), CAP_OK);
    CHECK(c && !cap_equal(c, cn));
    cap_release(c);
    /* A flipped selector byte: the bytes no longer decode. */
    p.corrupt_offset = (size_t)-1; /* clamped: byte 0 */
    cap_fault_backend_set(f, &p);
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_persist_fetch(f, &h, A, true, &c, &e), CAP_EDECODE);
    CHECK(c == NULL);
    CHECK(e.what != NULL);

    p.kind = CAP_FAULT_TRUNCATE;
    cap_fault_backend_set(f, &p);
    CHECK_EQ_INT(cap_persist_fetch(f, &h, A, true, &c, &e), CAP_EDECODE);
    CHECK(c == NULL);

    /* Bytes of another blob: only verification catches it. */
    p.kind = CAP_FAULT_SWAP;
    p.swap_with = ho;
    cap_fault_backend_set(f, &p);
    CHECK_EQ_INT(cap_persist_fetch(f, &h, A, true, &c, &e), CAP_EMISMATCH);
    CHECK(c == NULL);
    CHECK_EQ_INT(cap_persist_fetch(f, &h, A, false, &c, &e), CAP_OK);
    CHECK(c && cap_equal(c, other));
    cap_release(c);

    p.kind = CAP_FAULT_NOTFOUND;
    p.ops = CAP_FAULT_READ | CAP_FAULT_EXISTS;
    cap_fault_backend_set(f, &p);
    CHECK_EQ_INT(cap_persist_fetch(f, &h, A, true, &c, &e), CAP_ENOTFOUND);
    CHECK_EQ_INT(cap_backend_exists(f, &h, &e), CAP_ENOTFOUND);

    /* Full disk on a batch: nothing of it is written. */
    size_t before = cap_mem_backend_count(mem);
    p.kind = CAP_FAULT_DISK_FULL;
    p.ops = CAP_FAULT_ALL;
    p.after = 0;
    p.count = 1;
    cap_fault_backend_set(f, &p);
    cap_t *batch[3] = {make_cnode(A), make_cnode(A), make_cnode(A)};
    cap_hash_t bh[3];
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_persist_put_batch(f, batch, NULL, 3, A, bh, &e), CAP_EBACKEND);
    CHECK(e.what && strstr(e.what, "no space") != NULL);
    CHECK_EQ_INT(cap_mem_backend_count(mem), before);
    /* Reads are not affected by a full disk. */
    CHECK_EQ_INT(cap_persist_fetch(f, &h, A, true, &c, &e), CAP_OK);
    cap_release(c);
    /* count = 1: the next batch passes. */
    CHECK_EQ_INT(cap_persist_put_batch(f, batch, NULL, 3, A, bh, &e), CAP_OK);
    CHECK_EQ_INT(cap_mem_backend_count(mem), before + 3);

    /* after / count: calls 1-2 pass, 3-4 fail, 5 passes. */
    p.kind = CAP_FAULT_IO;
    p.ops = CAP_FAULT_EXISTS;
    p.after = 2;
    p.count = 2;
    cap_fault_backend_set(f, &p);
    uint64_t inj0 = cap_fault_backend_injected(f);
    int expect[5] = {CAP_OK, CAP_OK, CAP_EBACKEND, CAP_EBACKEND, CAP_OK};
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(cap_backend_exists(f, &h, NULL), expect[i]);
    CHECK_EQ_INT(cap_fault_backend_injected(f) - inj0, 2);
    CHECK(cap_fault_backend_calls(f) > 10);

    /* Iterate and flush faults; then the plan cleared. */
    p.ops = CAP_FAULT_ITERATE | CAP_FAULT_FLUSH;
    p.after = 0;
    p.count = 0;
    cap_fault_backend_set(f, &p);
    collect_t cc = {0, 0, 0};
    CHECK_EQ_INT(cap_backend_iterate(f, collect_cb, &cc, NULL), CAP_EBACKEND);
    CHECK_EQ_INT(cap_backend_flush(f, NULL), CAP_EBACKEND);
    cap_fault_backend_set(f, NULL);
    CHECK_EQ_INT(cap_backend_iterate(f, collect_cb, &cc, NULL), CAP_OK);
    CHECK_EQ_INT(cc.count, (int)cap_mem_backend_count(mem));
    CHECK_EQ_INT(cap_backend_flush(f, NULL), CAP_OK);

    /* Not a fault backend: the accessors are harmless. */
    CHECK_EQ_INT(cap_fault_backend_injected(mem), 0);
    cap_fault_backend_set(mem, &p);
    cap_backend_t *f2 = (cap_backend_t *)1;
    CHECK_EQ_INT(cap_fault_backend_new(NULL, false, &f2), CAP_EINVAL);
    CHECK(f2 == NULL);

    for (int i = 0; i < 3; i++) cap_release(batch[i]);
    cap_release(cn);
    cap_release(other);
    cap_backend_free(f); /* frees mem too (own_inner) */
    CHECK(test_alloc_clean(&ta));
}

/* Allocation failures ----------------------------------------------------------------------------- */

static void test_alloc_failures(void)
{
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(NULL, &b), CAP_OK); /* libc: only the caller's allocator fails */
    cap_t *caps[3] = {make_cnode(cap_alloc_libc()), make_data(cap_alloc_libc(), 3000),
                      make_type(cap_alloc_libc())};
    cap_hash_t hs[3];
    for (int i = 0; i < 3; i++) CHECK_EQ_INT(cap_hash(caps[i], &hs[i]), CAP_OK);

    /* put_batch: its scratch block comes from the allocator given. */
    int failures = 0;
    for (long k = 1; k < 100; k++) {
        test_alloc_fail_at(&ta, k);
        int rc = cap_persist_put_batch(b, caps, hs, 3, A, NULL, NULL);
        test_alloc_fail_at(&ta, 0);
        CHECK(rc == CAP_OK || rc == CAP_ENOMEM);
        CHECK(test_alloc_clean(&ta));
        if (rc == CAP_OK) break;
        failures++;
        CHECK_EQ_INT(cap_mem_backend_count(b), 0);
    }
    CHECK(failures >= 1);
    CHECK_EQ_INT(cap_mem_backend_count(b), 3);

    /* fetch: fail each allocation in turn until it succeeds. */
    for (int i = 0; i < 3; i++) {
        failures = 0;
        for (long k = 1; k < 1000; k++) {
            cap_t *c = (cap_t *)1;
            test_alloc_fail_at(&ta, k);
            int rc = cap_persist_fetch(b, &hs[i], A, true, &c, NULL);
            test_alloc_fail_at(&ta, 0);
            if (rc == CAP_OK) {
                CHECK(cap_equal(c, caps[i]));
                cap_release(c);
                CHECK(test_alloc_clean(&ta));
                break;
            }
            CHECK_EQ_INT(rc, CAP_ENOMEM);
            CHECK(c == NULL);
            CHECK(test_alloc_clean(&ta));
            failures++;
        }
        CHECK(failures >= 2); /* at least the read buffer and the cap */
    }
    for (int i = 0; i < 3; i++) cap_release(caps[i]);
    cap_backend_free(b);

    /* The mem backend's own allocations failing: nothing half-written. */
    CHECK_EQ_INT(cap_mem_backend_new(A, &b), CAP_OK);
    cap_backend_item_t items[4];
    uint8_t store[4][16];
    for (int i = 0; i < 4; i++) item(&items[i], (uint8_t)i, 16, store[i]);
    for (long k = 1; k < 20; k++) {
        test_alloc_fail_at(&ta, k);
        int rc = cap_backend_write_batch(b, items, 4, NULL);
        test_alloc_fail_at(&ta, 0);
        if (rc == CAP_OK) break;
        CHECK_EQ_INT(rc, CAP_ENOMEM);
        CHECK_EQ_INT(cap_mem_backend_count(b), 0);
    }
    CHECK_EQ_INT(cap_mem_backend_count(b), 4);
    cap_backend_free(b);
    CHECK(test_alloc_clean(&ta));
}

/* The version-2 wrappers over a backend without the version-2 entries
 * (and over a table that says version 1): read_many / exists_many fall back
 * on one call per item with per-item codes, write_many on write_batch with
 * `written` = n, and roots are refused; root names are checked first. */
static void test_v2_fallbacks(void)
{
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(A, &b), CAP_OK);
    if (!b) return;
    for (unsigned version = 1; version <= 2; version++) {
        cap_backend_t t = *b; /* the same entries, with the version under test */
        t.version = version;
        if (version == 1) {
            t.read_many = NULL;
            t.exists_many = NULL;
            t.write_many = NULL;
        }
        cap_hash_t hs[3] = {test_rng_hash(&rng), test_rng_hash(&rng), test_rng_hash(&rng)};
        uint8_t v[2][5] = {{1, 2, 3, 4, 5}, {9, 8, 7, 6, 5}};
        cap_backend_item_t items[2] = {{hs[0], v[0], 5}, {hs[2], v[1], 5}};
        cap_backend_write_result_t res = {77, 77};
        cap_err_t e;
        memset(&e, 0x5a, sizeof e);
        CHECK_EQ_INT(cap_backend_write_many(&t, items, 2, NULL, 0, &res, &e), CAP_OK);
        CHECK_EQ_INT(res.written, 2);
        CHECK_EQ_INT(res.repaired, 0);
        int codes[3] = {1, 1, 1};
        CHECK_EQ_INT(cap_backend_exists_many(&t, hs, 3, codes, &e), CAP_OK);
        CHECK(codes[0] == CAP_OK && codes[1] == CAP_ENOTFOUND && codes[2] == CAP_OK);
        uint8_t *bytes[3];
        size_t lens[3];
        CHECK_EQ_INT(cap_backend_read_many(&t, hs, 3, A, bytes, lens, codes, &e), CAP_OK);
        CHECK(codes[0] == CAP_OK && codes[1] == CAP_ENOTFOUND && codes[2] == CAP_OK);
        CHECK(lens[0] == 5 && bytes[0] && memcmp(bytes[0], v[0], 5) == 0);
        CHECK(lens[1] == 0 && bytes[1] == NULL);
        CHECK(lens[2] == 5 && bytes[2] && memcmp(bytes[2], v[1], 5) == 0);
        for (int i = 0; i < 3; i++)
            if (bytes[i]) A->deallocate(A->ctx, bytes[i], lens[i]);
        /* Roots: names checked before anything else, then refused. */
        cap_backend_root_t r = {"main", hs[0]};
        memset(&e, 0x5a, sizeof e);
        CHECK_EQ_INT(cap_backend_write_many(&t, items, 1, &r, 1, NULL, &e), CAP_EBACKEND);
        CHECK(e.code == CAP_EBACKEND && e.what && strcmp(e.what, "roots not supported") == 0);
        r.name = "abc123";
        CHECK_EQ_INT(cap_backend_write_many(&t, items, 1, &r, 1, NULL, &e), CAP_EINVAL);
        CHECK(!cap_backend_has_roots(&t));
        cap_hash_t got;
        CHECK_EQ_INT(cap_backend_root_get(&t, "main", &got, &e), CAP_EBACKEND);
        CHECK_EQ_INT(cap_backend_root_set(&t, "main", &hs[0], &e), CAP_EBACKEND);
        CHECK_EQ_INT(cap_backend_root_delete(&t, "main", &e), CAP_EBACKEND);
        CHECK_EQ_INT(cap_backend_root_set(&t, "no space", &hs[0], &e), CAP_EINVAL);
        CHECK(e.code == CAP_EINVAL);
    }
    cap_backend_free(b);

    /* The root-name rule. */
    char longest[CAP_ROOT_NAME_MAX + 2];
    memset(longest, 'r', sizeof longest);
    longest[CAP_ROOT_NAME_MAX] = 0;
    CHECK(cap_root_name_valid(longest));
    longest[CAP_ROOT_NAME_MAX] = 'r';
    longest[CAP_ROOT_NAME_MAX + 1] = 0;
    CHECK(!cap_root_name_valid(longest));
    CHECK(cap_root_name_valid("demo"));
    CHECK(cap_root_name_valid("hosts/a-1.snap_2"));
    CHECK(cap_root_name_valid("deadbeefg"));
    CHECK(!cap_root_name_valid("deadbeef"));
    CHECK(!cap_root_name_valid("DEADBEEF01"));
    CHECK(!cap_root_name_valid(""));
    CHECK(!cap_root_name_valid(NULL));
    CHECK(!cap_root_name_valid("a b"));
    CHECK(!cap_root_name_valid("caf\xc3\xa9"));
    CHECK(!cap_root_name_valid("a:b"));
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_alloc_init(&ta);
    test_mem_basics();
    test_table_checks();
    test_v2_fallbacks();
    test_roundtrip();
    test_faults();
    test_alloc_failures();
    return check_done("test_backend");
}
