/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Walks (walk.h): cap_backend_walk straight from a backend and
 * cap_store_walk through a store.
 *   - a DAG: every cap visited once, children reached twice counted as
 *     edges, depths breadth first; a level is read in one batch;
 *   - missing hashes: counted once each, the first ones kept with the path
 *     (root, fields, slots) that led to them, err names the first;
 *   - bad blobs (DECODE / VERIFY), a visitor that skips or stops, a backend
 *     that fails, bad arguments;
 *   - a chain of 10^6 caps (from a backend that makes its blobs on demand)
 *     walked on a thread with a 256 KiB stack, holding only the seen set;
 *   - every allocation failing in turn: CAP_ENOMEM, nothing leaked;
 *   - through a store: memory first, then the backends in order, nothing
 *     published. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_alloc.h"
#include "test_caps.h"

static test_alloc_t ta;
#define A (&ta.alloc)

static cap_backend_t *mem_backend(void)
{
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(NULL, &b), CAP_OK);
    return b;
}

static cap_hash_t put(cap_backend_t *b, cap_t *c)
{
    cap_hash_t h;
    CHECK_EQ_INT(cap_persist_put(b, c, &h, NULL), CAP_OK);
    cap_release(c);
    return h;
}

/* A CNode naming `kids` in slots first_slot, first_slot+1, ... */
static cap_t *cnode_of(const cap_hash_t *kids, int n, uint32_t first_slot)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, cap_alloc_libc(), 8), CAP_OK);
    for (int i = 0; i < n; i++) test_set_hash(c, first_slot + (uint32_t)i, &kids[i]);
    return c;
}

static cap_t *leaf(unsigned v)
{
    cap_t *c = NULL;
    cap_hash_t h = test_hash_of(v);
    CHECK_EQ_INT(cap_type_new(&c, cap_alloc_libc(), &h), CAP_OK);
    return c;
}

/* A visitor that records what it saw. */
#define MAX_SEEN 64
typedef struct seen {
    int n;
    cap_hash_t h[MAX_SEEN];
    uint32_t depth[MAX_SEEN];
    int status[MAX_SEEN];
    int had_bytes, had_cap;
    cap_hash_t skip; /* return CAP_WALK_SKIP for this one */
    cap_hash_t stop; /* return 77 for this one */
} seen_t;

static int record(void *arg, const cap_walk_visit_t *v)
{
    seen_t *s = arg;
    if (s->n < MAX_SEEN) {
        s->h[s->n] = v->hash;
        s->depth[s->n] = v->depth;
        s->status[s->n] = v->status;
    }
    s->n++;
    if (v->bytes) s->had_bytes++;
    if (v->cap) s->had_cap++;
    if (v->status == CAP_OK && v->bytes) {
        /* Bytes are the blob's: they hash to the key when decoded. */
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_persist_decode(&v->hash, v->bytes, v->n, cap_alloc_libc(), true, &c, NULL), CAP_OK);
        cap_release(c);
    }
    if (!memcmp(&v->hash, &s->stop, 32)) return 77;
    if (!memcmp(&v->hash, &s->skip, 32)) return CAP_WALK_SKIP;
    return 0;
}

static int times_seen(const seen_t *s, const cap_hash_t *h)
{
    int k = 0;
    for (int i = 0; i < s->n && i < MAX_SEEN; i++)
        if (!memcmp(&s->h[i], h, 32)) k++;
    return k;
}

static uint32_t depth_of(const seen_t *s, const cap_hash_t *h)
{
    for (int i = 0; i < s->n && i < MAX_SEEN; i++)
        if (!memcmp(&s->h[i], h, 32)) return s->depth[i];
    return UINT32_MAX;
}

/* root -> {a, b, image}; a -> {l}; b -> {l, m}; image pins l, initial m. */
typedef struct dag {
    cap_hash_t root, a, b, image, l, m;
} dag_t;

static dag_t make_dag(cap_backend_t *be)
{
    dag_t d;
    d.l = put(be, leaf(1));
    d.m = put(be, leaf(2));
    d.a = put(be, cnode_of(&d.l, 1, 0));
    cap_hash_t lm[2] = {d.l, d.m};
    d.b = put(be, cnode_of(lm, 2, 3));
    cap_slot_entry_t pinned = {0, d.l}, initial = {4, d.m};
    cap_image_desc_t desc;
    memset(&desc, 0, sizeof desc);
    desc.pinned = &pinned;
    desc.pinned_len = 1;
    desc.initial = &initial;
    desc.initial_len = 1;
    cap_t *im = NULL;
    CHECK_EQ_INT(cap_image_new(&im, cap_alloc_libc(), &desc, NULL), CAP_OK);
    d.image = put(be, im);
    cap_hash_t top[3] = {d.a, d.b, d.image};
    d.root = put(be, cnode_of(top, 3, 0));
    return d;
}

static void test_dag(void)
{
    cap_backend_t *be = mem_backend();
    dag_t d = make_dag(be);
    for (unsigned flags = 0; flags <= CAP_WALK_VERIFY; flags++) {
        seen_t s;
        memset(&s, 0, sizeof s);
        cap_walk_options_t o = CAP_WALK_OPTIONS_INIT;
        o.flags = flags;
        cap_walk_result_t r;
        cap_err_t e;
        CHECK_EQ_INT(cap_backend_walk(be, &d.root, 1, &o, A, record, &s, &r, &e), CAP_OK);
        CHECK_EQ_INT(r.caps, 6);
        CHECK_EQ_INT(s.n, 6);
        CHECK_EQ_INT(r.edges, 3 + 1 + 2 + 2); /* l and m are reached three times each */
        CHECK_EQ_INT(r.missing, 0);
        CHECK_EQ_INT(r.bad, 0);
        CHECK_EQ_INT(r.nproblems, 0);
        CHECK_EQ_INT(r.depth, 2);
        CHECK_EQ_INT(r.reads, 3); /* one batch per level */
        CHECK(r.bytes > 0);
        const cap_hash_t *all[6] = {&d.root, &d.a, &d.b, &d.image, &d.l, &d.m};
        for (int i = 0; i < 6; i++) CHECK_EQ_INT(times_seen(&s, all[i]), 1);
        CHECK_EQ_INT(depth_of(&s, &d.root), 0);
        CHECK_EQ_INT(depth_of(&s, &d.image), 1);
        CHECK_EQ_INT(depth_of(&s, &d.l), 2);
        CHECK_EQ_INT(s.had_bytes, 6);
        CHECK_EQ_INT(s.had_cap, flags ? 6 : 0);
    }
    /* A small batch: more round trips, the same walk. */
    cap_walk_options_t o = CAP_WALK_OPTIONS_INIT;
    o.batch = 1;
    cap_walk_result_t r;
    CHECK_EQ_INT(cap_backend_walk(be, &d.root, 1, &o, A, NULL, NULL, &r, NULL), CAP_OK);
    CHECK_EQ_INT(r.caps, 6);
    CHECK_EQ_INT(r.reads, 6);
    /* Several roots, one of them twice, one reached from another. */
    cap_hash_t roots[3] = {d.b, d.a, d.b};
    CHECK_EQ_INT(cap_backend_walk(be, roots, 3, NULL, A, NULL, NULL, &r, NULL), CAP_OK);
    CHECK_EQ_INT(r.caps, 4);
    CHECK_EQ_INT(r.depth, 1);
    /* A visitor that skips a's children still reaches l through b; one
     * that skips the root sees nothing else; one that stops ends the walk. */
    seen_t s;
    memset(&s, 0, sizeof s);
    s.skip = d.a;
    CHECK_EQ_INT(cap_backend_walk(be, &d.root, 1, NULL, A, record, &s, &r, NULL), CAP_OK);
    CHECK_EQ_INT(r.caps, 6);
    memset(&s, 0, sizeof s);
    s.skip = d.root;
    CHECK_EQ_INT(cap_backend_walk(be, &d.root, 1, NULL, A, record, &s, &r, NULL), CAP_OK);
    CHECK_EQ_INT(r.caps, 1);
    CHECK_EQ_INT(r.edges, 0);
    memset(&s, 0, sizeof s);
    s.stop = d.b;
    CHECK_EQ_INT(cap_backend_walk(be, &d.root, 1, NULL, A, record, &s, &r, NULL), 77);
    CHECK(test_alloc_clean(&ta));
    cap_backend_free(be);
}

static void test_missing(void)
{
    cap_backend_t *be = mem_backend();
    /* root slot 2 -> mid; mid slots 5, 6 -> x, y (nowhere); root slot 3 -> x
     * again; an Instance whose image is nowhere. */
    cap_hash_t x = test_hash_of(100), y = test_hash_of(101), img = test_hash_of(102);
    cap_hash_t xy[2] = {x, y};
    cap_hash_t mid = put(be, cnode_of(xy, 2, 5));
    cap_t *in = NULL;
    cap_target_t t = cap_target_of_hash(&mid);
    CHECK_EQ_INT(cap_instance_new(&in, cap_alloc_libc(), &t), CAP_OK);
    CHECK_EQ_INT(cap_instance_set_image_hash(in, &img), CAP_OK);
    cap_hash_t inst = put(be, in);
    cap_t *rc = NULL;
    CHECK_EQ_INT(cap_cnode_new(&rc, cap_alloc_libc(), 4), CAP_OK);
    test_set_hash(rc, 2, &mid);
    test_set_hash(rc, 3, &x);
    test_set_hash(rc, 9, &inst);
    cap_hash_t root = put(be, rc);

    seen_t s;
    memset(&s, 0, sizeof s);
    cap_walk_options_t o = CAP_WALK_OPTIONS_INIT;
    o.flags = CAP_WALK_VISIT_PROBLEMS;
    cap_walk_result_t r;
    cap_err_t e;
    CHECK_EQ_INT(cap_backend_walk(be, &root, 1, &o, A, record, &s, &r, &e), CAP_EBLOBMISSING);
    CHECK_EQ_INT(r.caps, 3);
    CHECK_EQ_INT(r.missing, 3); /* x (twice reached), y, img */
    CHECK_EQ_INT(r.nproblems, 3);
    CHECK_EQ_INT(s.n, 6);
    CHECK_EQ_INT(times_seen(&s, &x), 1);
    /* Breadth first: x is first found at depth 1, from the root's slot 3. */
    const cap_walk_problem_t *p = &r.problems[0];
    CHECK_MEM(&p->hash, &x, 32);
    CHECK_EQ_INT(p->code, CAP_ENOTFOUND);
    CHECK_EQ_INT(p->depth, 1);
    CHECK_EQ_INT(p->npath, 1);
    CHECK_MEM(&p->root, &root, 32);
    CHECK_MEM(&p->path[0].hash, &root, 32);
    CHECK(p->path[0].field == CAP_CHILD_SLOT && p->path[0].index == 3);
    /* The Instance's image: root slot 9 -> inst -> image (found after y:
     * level 2 in the order of level 1, mid before inst). */
    p = &r.problems[2];
    CHECK_MEM(&p->hash, &img, 32);
    CHECK_EQ_INT(p->depth, 2);
    CHECK_EQ_INT(p->npath, 2);
    CHECK(p->path[0].field == CAP_CHILD_SLOT && p->path[0].index == 9);
    CHECK_MEM(&p->path[1].hash, &inst, 32);
    CHECK(p->path[1].field == CAP_CHILD_IMAGE);
    /* y: root slot 2 -> mid slot 6 -> y. */
    p = &r.problems[1];
    CHECK_MEM(&p->hash, &y, 32);
    CHECK_EQ_INT(p->depth, 2);
    CHECK_MEM(&p->path[0].hash, &root, 32);
    CHECK(p->path[0].index == 2);
    CHECK_MEM(&p->path[1].hash, &mid, 32);
    CHECK(p->path[1].field == CAP_CHILD_SLOT && p->path[1].index == 6);
    /* err: the first missing hash and what names it. */
    CHECK_EQ_INT(e.code, CAP_EBLOBMISSING);
    CHECK(e.has_hash);
    CHECK_MEM(&e.hash, &x, 32);
    char root8[9];
    hex_encode(root.bytes, 4, root8);
    CHECK(strstr(e.detail, "slot 3 of ") != NULL);
    CHECK(strstr(e.detail, root8) != NULL);
    CHECK(strstr(e.detail, "3 missing") != NULL);
    char msg[256];
    cap_err_format(&e, msg, sizeof msg);
    printf("missing: %s\n", msg);
    /* A missing root is a problem at depth 0. */
    CHECK_EQ_INT(cap_backend_walk(be, &x, 1, NULL, A, NULL, NULL, &r, &e), CAP_EBLOBMISSING);
    CHECK_EQ_INT(r.missing, 1);
    CHECK_EQ_INT(r.problems[0].depth, 0);
    CHECK_EQ_INT(r.problems[0].npath, 0);
    CHECK(strstr(e.detail, "a root") != NULL);
    CHECK(test_alloc_clean(&ta));
    cap_backend_free(be);
}

/* Bytes stored under a hash they are not: VERIFY sees it; garbage does
 * not decode (DECODE), nor give children (the wire scan). */
static void test_bad(void)
{
    cap_backend_t *be = mem_backend();
    cap_hash_t real = put(be, leaf(5));
    cap_t *other = leaf(6);
    uint8_t *w;
    size_t n;
    CHECK_EQ_INT(cap_wire_encode_alloc(other, cap_alloc_libc(), &w, &n), CAP_OK);
    cap_hash_t liar = test_hash_of(500);
    CHECK_EQ_INT(cap_backend_write(be, &liar, w, n, NULL), CAP_OK);
    free(w);
    cap_release(other);
    static const uint8_t junk[] = {3, 0, 9, 0, 0, 0}; /* a CNode whose offset is wrong */
    cap_hash_t garbage = test_hash_of(501);
    CHECK_EQ_INT(cap_backend_write(be, &garbage, junk, sizeof junk, NULL), CAP_OK);
    cap_hash_t kids[3] = {real, liar, garbage};
    cap_hash_t root = put(be, cnode_of(kids, 3, 0));

    cap_walk_result_t r;
    cap_err_t e;
    /* Default: the liar's bytes are a fine Type; the junk has no readable children. */
    CHECK_EQ_INT(cap_backend_walk(be, &root, 1, NULL, A, NULL, NULL, &r, &e), CAP_EDECODE);
    CHECK_EQ_INT(r.caps, 3);
    CHECK_EQ_INT(r.bad, 1);
    CHECK_EQ_INT(r.problems[0].code, CAP_EDECODE);
    CHECK_MEM(&e.hash, &garbage, 32);
    cap_walk_options_t o = CAP_WALK_OPTIONS_INIT;
    o.flags = CAP_WALK_VERIFY;
    CHECK_EQ_INT(cap_backend_walk(be, &root, 1, &o, A, NULL, NULL, &r, &e), CAP_EMISMATCH);
    CHECK_EQ_INT(r.caps, 2);
    CHECK_EQ_INT(r.bad, 2);
    CHECK_EQ_INT(r.problems[0].code, CAP_EMISMATCH);
    CHECK_MEM(&r.problems[0].hash, &liar, 32);
    CHECK_EQ_INT(r.problems[1].code, CAP_EDECODE);
    CHECK_MEM(&e.hash, &liar, 32);
    /* Missing outranks bad in the return code. */
    cap_hash_t two[2] = {root, test_hash_of(502)};
    CHECK_EQ_INT(cap_backend_walk(be, two, 2, &o, A, NULL, NULL, &r, &e), CAP_EBLOBMISSING);
    CHECK_EQ_INT(r.missing, 1);
    CHECK_EQ_INT(r.bad, 2);
    CHECK_MEM(&e.hash, &two[1], 32);
    CHECK(test_alloc_clean(&ta));
    cap_backend_free(be);
}

static void test_errors(void)
{
    cap_backend_t *be = mem_backend();
    dag_t d = make_dag(be);
    cap_walk_result_t r;
    cap_err_t e;
    CHECK_EQ_INT(cap_backend_walk(NULL, &d.root, 1, NULL, A, NULL, NULL, &r, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_backend_walk(be, NULL, 1, NULL, A, NULL, NULL, &r, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_backend_walk(be, &d.root, 1, NULL, NULL, NULL, NULL, &r, &e), CAP_EINVAL);
    cap_walk_options_t o = CAP_WALK_OPTIONS_INIT;
    o.flags = 64;
    CHECK_EQ_INT(cap_backend_walk(be, &d.root, 1, &o, A, NULL, NULL, &r, &e), CAP_EINVAL);
    o.flags = 0;
    o.size = 3;
    CHECK_EQ_INT(cap_backend_walk(be, &d.root, 1, &o, A, NULL, NULL, &r, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_backend_walk(be, NULL, 0, NULL, A, NULL, NULL, &r, &e), CAP_OK);
    CHECK_EQ_INT(r.caps, 0);
    /* A backend that fails to read: the walk stops with its error. */
    cap_backend_t *f = NULL;
    CHECK_EQ_INT(cap_fault_backend_new(be, false, &f), CAP_OK);
    cap_fault_plan_t p;
    memset(&p, 0, sizeof p);
    p.kind = CAP_FAULT_IO;
    p.ops = CAP_FAULT_READ;
    p.after = 2; /* the root's level passes */
    cap_fault_backend_set(f, &p);
    CHECK_EQ_INT(cap_backend_walk(f, &d.root, 1, NULL, A, NULL, NULL, &r, &e), CAP_EBACKEND);
    CHECK_EQ_INT(e.code, CAP_EBACKEND);
    CHECK(test_alloc_clean(&ta));
    cap_backend_free(f);
    cap_backend_free(be);
}

/* Every allocation of a walk failing in turn. */
static void test_alloc_failures(void)
{
    cap_backend_t *be = mem_backend();
    dag_t d = make_dag(be);
    cap_hash_t roots[2] = {d.root, test_hash_of(900)}; /* and a missing one */
    int failures = 0;
    for (unsigned flags = 0; flags <= CAP_WALK_VERIFY; flags++) {
        for (long k = 1;; k++) {
            cap_walk_options_t o = CAP_WALK_OPTIONS_INIT;
            o.flags = flags;
            o.batch = 2;
            test_alloc_fail_at(&ta, k);
            cap_walk_result_t r;
            cap_err_t e;
            int rc = cap_backend_walk(be, roots, 2, &o, A, NULL, NULL, &r, &e);
            test_alloc_fail_at(&ta, 0);
            CHECK(test_alloc_clean(&ta));
            if (rc == CAP_EBLOBMISSING) {
                CHECK_EQ_INT(r.caps, 6);
                break;
            }
            CHECK_EQ_INT(rc, CAP_ENOMEM);
            CHECK_EQ_INT(e.code, CAP_ENOMEM);
            failures++;
            if (k > 10000) break;
        }
    }
    CHECK(failures > 20);
    printf("allocation failures: %d runs, each clean\n", failures);
    cap_backend_free(be);
}

/* A chain of 10^6 caps ------------------------------------------------------------------------
 * A read-only backend that makes blob i on demand: a CNode whose slot 0
 * names blob i + 1 (keys are test_hash_of(i), which the walk does not check
 * without VERIFY); the last one names a hash it does not have. */
#define CHAIN 1000000u

typedef struct chain_be {
    unsigned n;
    uint64_t reads;
} chain_be_t;

static int chain_read(void *ctx, const cap_hash_t *h, const cap_alloc_t *a, uint8_t **bytes, size_t *n,
                      cap_err_t *err)
{
    chain_be_t *cb = ctx;
    unsigned i;
    memcpy(&i, h->bytes, sizeof i);
    cap_hash_t want = test_hash_of(i);
    if (memcmp(&want, h, 32) != 0 || i >= cb->n) return cap_backend_fail(err, CAP_ENOTFOUND, NULL);
    cb->reads++;
    uint8_t *b = a->allocate(a->ctx, 42);
    if (!b) return cap_backend_fail(err, CAP_ENOMEM, NULL);
    memset(b, 0, 42);
    b[0] = CAP_KIND_CNODE;
    b[2] = 5; /* size_log 0, offset 5, one entry: slot 0 */
    cap_hash_t next = test_hash_of(i + 1);
    memcpy(b + 10, next.bytes, 32);
    *bytes = b;
    *n = 42;
    return CAP_OK;
}

typedef struct chain_job {
    cap_backend_t *be;
    int rc;
    cap_walk_result_t r;
    cap_err_t e;
    long long live_max;
} chain_job_t;

static int chain_visit(void *arg, const cap_walk_visit_t *v)
{
    chain_job_t *j = arg;
    (void)v;
    if (ta.live_bytes > j->live_max) j->live_max = ta.live_bytes;
    return 0;
}

static void *chain_thread(void *arg)
{
    chain_job_t *j = arg;
    cap_hash_t root = test_hash_of(0);
    j->rc = cap_backend_walk(j->be, &root, 1, NULL, A, chain_visit, j, &j->r, &j->e);
    return NULL;
}

static void test_chain(void)
{
    chain_be_t cb = {CHAIN, 0};
    cap_backend_t be = CAP_BACKEND_INIT;
    be.flags = CAP_BACKEND_READONLY;
    be.name = "chain";
    be.ctx = &cb;
    be.read = chain_read;
    chain_job_t *j = calloc(1, sizeof *j);
    j->be = &be;
    pthread_attr_t at;
    pthread_attr_init(&at);
    CHECK_EQ_INT(pthread_attr_setstacksize(&at, 256 * 1024), 0);
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, &at, chain_thread, j), 0);
    pthread_join(th, NULL);
    pthread_attr_destroy(&at);
    CHECK_EQ_INT(j->rc, CAP_EBLOBMISSING);
    CHECK_EQ_INT(j->r.caps, CHAIN);
    CHECK_EQ_INT(cb.reads, CHAIN);
    CHECK_EQ_INT(j->r.missing, 1);
    CHECK_EQ_INT(j->r.depth, CHAIN);
    /* The missing tail's path: a million steps long, the last ones kept. */
    const cap_walk_problem_t *p = &j->r.problems[0];
    CHECK_EQ_INT(p->depth, CHAIN);
    CHECK_EQ_INT(p->npath, CAP_WALK_PATH);
    cap_hash_t last = test_hash_of(CHAIN - 1), zero = test_hash_of(0);
    CHECK_MEM(&p->path[CAP_WALK_PATH - 1].hash, &last, 32);
    CHECK_MEM(&p->root, &zero, 32);
    /* Only the seen set and a batch were held: well under 100 bytes a cap
     * (no cap, no blob bytes kept). */
    printf("chain: %u caps, at most %lld bytes held (%.1f per cap)\n", CHAIN, j->live_max,
           (double)j->live_max / CHAIN);
    CHECK(j->live_max < 100LL * CHAIN);
    CHECK(test_alloc_clean(&ta));
    free(j);
}

/* Through a store ------------------------------------------------------------------------------ */

static void test_store_walk(void)
{
    cap_backend_t *b1 = mem_backend(), *b2 = mem_backend();
    cap_store_options_t o = cap_store_options_host();
    o.alloc = A;
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(s, b1, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(s, b2, NULL), CAP_OK);
    /* l in the second backend only; a in the first; root in memory. */
    cap_hash_t l = put(b2, leaf(1));
    cap_hash_t a = put(b1, cnode_of(&l, 1, 0));
    cap_hash_t kids[2] = {a, test_hash_of(77)};
    cap_t *rc = cnode_of(kids, 2, 0);
    cap_hash_t root;
    CHECK_EQ_INT(cap_store_put_cap(s, rc, &root), CAP_OK);
    cap_release(rc);
    size_t blobs = cap_store_blob_count(s);
    seen_t sn;
    memset(&sn, 0, sizeof sn);
    cap_walk_result_t r;
    cap_err_t e;
    CHECK_EQ_INT(cap_store_walk(s, &root, 1, NULL, record, &sn, &r, &e), CAP_EBLOBMISSING);
    CHECK_EQ_INT(r.caps, 3);
    CHECK_EQ_INT(r.missing, 1);
    CHECK_MEM(&e.hash, &kids[1], 32);
    CHECK_EQ_INT(sn.had_cap, 1);   /* the root, from memory */
    CHECK_EQ_INT(sn.had_bytes, 2); /* a and l, read from the backends */
    CHECK_EQ_INT(cap_store_blob_count(s), blobs); /* nothing published */
    /* With DECODE every visit has a cap. */
    memset(&sn, 0, sizeof sn);
    cap_walk_options_t wo = CAP_WALK_OPTIONS_INIT;
    wo.flags = CAP_WALK_VERIFY;
    CHECK_EQ_INT(cap_store_walk(s, &a, 1, &wo, record, &sn, &r, &e), CAP_OK);
    CHECK_EQ_INT(r.caps, 2);
    CHECK_EQ_INT(sn.had_cap, 2);
    CHECK_EQ_INT(cap_store_walk(NULL, &a, 1, NULL, NULL, NULL, &r, &e), CAP_EINVAL);
    /* A store with no backend: memory only. */
    cap_store_t *s2 = NULL;
    CHECK_EQ_INT(cap_store_new(&s2, &o), CAP_OK);
    CHECK_EQ_INT(cap_store_walk(s2, &root, 1, NULL, NULL, NULL, &r, &e), CAP_EBLOBMISSING);
    CHECK_EQ_INT(r.caps, 0);
    cap_store_free(s2);
    /* Every allocation failing in turn, through the store too. */
    int failures = 0;
    for (long k = 1; k < 10000; k++) {
        test_alloc_fail_at(&ta, k);
        int rr = cap_store_walk(s, &root, 1, NULL, NULL, NULL, &r, &e);
        test_alloc_fail_at(&ta, 0);
        if (rr == CAP_EBLOBMISSING) break;
        CHECK_EQ_INT(rr, CAP_ENOMEM);
        failures++;
    }
    CHECK(failures > 3);
    cap_store_free(s);
    CHECK(test_alloc_clean(&ta));
    cap_backend_free(b1);
    cap_backend_free(b2);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_alloc_init(&ta);
    test_dag();
    test_missing();
    test_bad();
    test_errors();
    test_alloc_failures();
    test_store_walk();
    test_chain();
    return check_done("test_walk");
}
