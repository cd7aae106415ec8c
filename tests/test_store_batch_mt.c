/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Threads and the batch calls (run under ThreadSanitizer in CI):
 *  - the host pool runs every index once, inline when busy or nested;
 *  - a settle on workers gives the same hashes and the same store contents
 *    as a serial one, on random layered graphs (CNodes and Instances, shared
 *    children);
 *  - concurrent get_blobs batches over one backend fetch each hash once and
 *    agree on the caps;
 *  - concurrent put_caps batches with overlapping content and batched
 *    readers leave each content stored once. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capstore/host.h"
#include "capstore/persist.h"
#include "capstore/store.h"
#include "check.h"
#include "test_alloc.h"
#include "test_caps.h"
#include "test_rng.h"

static pthread_mutex_t check_mu = PTHREAD_MUTEX_INITIALIZER; /* CHECK from threads */

/* The pool ------------------------------------------------------------------------------------ */

typedef struct hits {
    cap_workers_t *w;
    _Atomic int *count;
    size_t n;
    int nest;
} hits_t;

static void bump(void *p, size_t i)
{
    hits_t *h = p;
    if (i % 97 == 3) usleep(2000); /* a slow call: run must wait for it */
    atomic_fetch_add(&h->count[i], 1);
    if (h->nest && i % 50 == 0) { /* a run from inside a run: inline */
        _Atomic int inner[8];
        for (int k = 0; k < 8; k++) atomic_init(&inner[k], 0);
        hits_t in = {h->w, inner, 8, 0};
        h->w->run(h->w->ctx, 8, bump, &in);
        for (int k = 0; k < 8; k++) {
            pthread_mutex_lock(&check_mu);
            CHECK_EQ_INT(atomic_load(&inner[k]), 1);
            pthread_mutex_unlock(&check_mu);
        }
    }
}

static void run_and_check(cap_workers_t *w, size_t n, int nest)
{
    _Atomic int *count = calloc(n, sizeof *count);
    for (size_t i = 0; i < n; i++) atomic_init(&count[i], 0);
    hits_t h = {w, count, n, nest};
    w->run(w->ctx, n, bump, &h);
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&check_mu);
        CHECK_EQ_INT(atomic_load(&count[i]), 1);
        pthread_mutex_unlock(&check_mu);
    }
    free(count);
}

static void *pool_user(void *p)
{
    cap_workers_t *w = p;
    for (int r = 0; r < 50; r++) run_and_check(w, (size_t)(1 + r * 7), r & 1);
    return NULL;
}

static void test_pool(void)
{
    cap_workers_t *w = cap_host_workers_new(3);
    CHECK(w != NULL);
    CHECK_EQ_INT(w->threads, 3);
    for (size_t n = 0; n < 40; n++) run_and_check(w, n, 0);
    run_and_check(w, 1000, 1);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, pool_user, w);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    cap_host_workers_free(w);
    cap_workers_t *one = cap_host_workers_new(1); /* no thread: all inline */
    CHECK(one != NULL);
    run_and_check(one, 100, 0);
    cap_host_workers_free(one);
    cap_host_workers_free(NULL);
}

/* Parallel settle = serial settle ----------------------------------------------------------- */

typedef struct graph {
    cap_store_t *s;
    cap_ref_t **inst; /* handles of the Instance nodes (they stay entries) */
    size_t ninst;
    cap_ref_t *root;
} graph_t;

/* A layered random graph in `s`, the same for the same seed: each node
 * holds hashes and Refs to random nodes of the layer below (shared). */
static void build_graph(graph_t *g, cap_store_t *s, uint64_t seed)
{
    static const size_t layers[] = {1400, 700, 300, 40, 1}; /* >= 512 a height: cut into parts */
    const size_t nl = sizeof layers / sizeof layers[0];
    const cap_alloc_t *a = cap_alloc_libc();
    test_rng_t r = {seed};
    g->s = s;
    g->inst = calloc(2000, sizeof *g->inst);
    g->ninst = 0;
    cap_ref_t **below = NULL;
    size_t nbelow = 0;
    for (size_t l = 0; l < nl; l++) {
        cap_ref_t **cur = calloc(layers[l], sizeof *cur);
        for (size_t i = 0; i < layers[l]; i++) {
            cap_t *c = NULL;
            int instance = l > 0 && l + 1 < nl && test_rng_below(&r, 8) == 0;
            if (instance) {
                cap_target_t t = cap_target_of_ref(below[test_rng_below(&r, nbelow)]);
                CHECK_EQ_INT(cap_instance_new(&c, a, &t), CAP_OK);
                CHECK_EQ_INT(cap_instance_set_pc(c, test_rng_next(&r)), CAP_OK);
            } else {
                CHECK_EQ_INT(cap_cnode_new(&c, a, 10), CAP_OK);
                uint32_t slot = 0;
                for (unsigned k = 0; k < 2; k++)
                    test_set_hash_of(c, slot++, (unsigned)test_rng_below(&r, 1000));
                /* Every node below has a parent (but for the few under an
                 * Instance's place), some have several. */
                for (size_t j = i; l > 0 && j < nbelow; j += layers[l])
                    test_set_ref(c, slot++, below[j]);
                for (size_t k = l ? (size_t)test_rng_below(&r, 3) : 0; k > 0; k--)
                    test_set_ref(c, slot++, below[test_rng_below(&r, nbelow)]);
            }
            CHECK_EQ_INT(cap_store_put_instance(s, c, &cur[i]), CAP_OK);
            cap_release(c);
            if (instance) g->inst[g->ninst++] = cap_ref_retain(cur[i]);
        }
        for (size_t i = 0; i < nbelow; i++) cap_ref_release(below[i]);
        free(below);
        below = cur;
        nbelow = layers[l];
    }
    g->root = below[0];
    free(below);
}

static void free_graph(graph_t *g)
{
    for (size_t i = 0; i < g->ninst; i++) cap_ref_release(g->inst[i]);
    free(g->inst);
    cap_ref_release(g->root);
}

static test_alloc_t ta; /* the stores' allocator: nothing may be left */

static cap_store_t *store_with(const cap_workers_t *w)
{
    cap_store_options_t o = cap_store_options_host();
    o.alloc = &ta.alloc;
    o.workers = w;
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_OK);
    return s;
}

static void test_settle_parallel(void)
{
    cap_workers_t *w = cap_host_workers_new(3);
    for (uint64_t seed = 1; seed <= 4; seed++) {
        cap_store_t *par = store_with(w), *ser = store_with(NULL);
        graph_t gp, gs;
        build_graph(&gp, par, seed);
        build_graph(&gs, ser, seed);
        cap_target_t tp = cap_target_of_ref(gp.root), ts = cap_target_of_ref(gs.root);
        cap_hash_t hp, hs;
        CHECK_EQ_INT(cap_store_settle(par, &tp, &hp, NULL), CAP_OK);
        CHECK_EQ_INT(cap_store_settle(ser, &ts, &hs, NULL), CAP_OK);
        CHECK_MEM(hp.bytes, hs.bytes, 32);
        CHECK_EQ_INT(cap_store_blob_count(par), cap_store_blob_count(ser));
        CHECK_EQ_INT(cap_store_instance_count(par), cap_store_instance_count(ser));
        CHECK_EQ_INT(gp.ninst, gs.ninst);
        cap_blob_entry_t *ep = NULL, *es = NULL;
        size_t np = 0, ns = 0;
        CHECK_EQ_INT(cap_store_iter_blobs_sorted(par, &ep, &np), CAP_OK);
        CHECK_EQ_INT(cap_store_iter_blobs_sorted(ser, &es, &ns), CAP_OK);
        for (size_t i = 0; i < np && i < ns; i++) {
            CHECK_MEM(ep[i].hash.bytes, es[i].hash.bytes, 32);
            CHECK(cap_equal(ep[i].cap, es[i].cap));
            cap_hash_t real = test_hash_cap(ep[i].cap);
            CHECK_MEM(real.bytes, ep[i].hash.bytes, 32);
        }
        cap_store_blobs_free(par, ep, np);
        cap_store_blobs_free(ser, es, ns);
        size_t settled = 0;
        for (size_t i = 0; i < gp.ninst && i < gs.ninst; i++) {
            cap_t *a = NULL, *b = NULL;
            CHECK_EQ_INT(cap_store_get_instance(par, gp.inst[i], &a), CAP_OK);
            CHECK_EQ_INT(cap_store_get_instance(ser, gs.inst[i], &b), CAP_OK);
            settled += !cap_has_refs(a);
            /* Unreachable from the root: not settled, in both. */
            CHECK(a && b && cap_has_refs(a) == cap_has_refs(b));
            if (a && b && !cap_has_refs(a)) CHECK(cap_equal(a, b));
            cap_release(a);
            cap_release(b);
        }
        CHECK(settled > gp.ninst / 2);
        CHECK(cap_store_blob_count(par) > 1000); /* equal leaves share a blob */
        CHECK(cap_store_instance_count(par) < 800); /* of 2441 entries */
        free_graph(&gp);
        free_graph(&gs);
        cap_store_free(par);
        cap_store_free(ser);
    }
    cap_host_workers_free(w);
}

/* Concurrent batches ------------------------------------------------------------------------ */

typedef struct counted {
    cap_backend_t table;
    cap_backend_t *inner;
    _Atomic size_t asked;
} counted_t;

static int cb_read(void *ctx, const cap_hash_t *h, const cap_alloc_t *a, uint8_t **bytes,
                   size_t *n, cap_err_t *err)
{
    counted_t *c = ctx;
    atomic_fetch_add(&c->asked, 1);
    return cap_backend_read(c->inner, h, a, bytes, n, err);
}

static int cb_write(void *ctx, const cap_hash_t *h, const uint8_t *bytes, size_t n, cap_err_t *err)
{
    counted_t *c = ctx;
    return cap_backend_write(c->inner, h, bytes, n, err);
}

static int cb_read_many(void *ctx, const cap_hash_t *hashes, size_t n, const cap_alloc_t *a,
                        uint8_t **bytes, size_t *lens, int *codes, cap_err_t *err)
{
    counted_t *c = ctx;
    atomic_fetch_add(&c->asked, n);
    return cap_backend_read_many(c->inner, hashes, n, a, bytes, lens, codes, err);
}

enum { FAR = 300, READERS = 3 };

typedef struct reader {
    cap_store_t *s;
    const cap_hash_t *far;
    uint64_t seed;
    cap_t *seen[FAR]; /* the cap each hash gave (a reference) */
} reader_t;

static void *batch_reader(void *p)
{
    reader_t *r = p;
    test_rng_t rng = {r->seed};
    for (int round = 0; round < 40; round++) {
        cap_hash_t q[24];
        size_t k[24];
        for (int i = 0; i < 24; i++) {
            k[i] = (size_t)test_rng_below(&rng, FAR);
            q[i] = r->far[k[i]];
        }
        cap_t *out[24];
        int codes[24];
        int rc = cap_store_get_blobs(r->s, q, 24, out, codes, NULL);
        pthread_mutex_lock(&check_mu);
        CHECK_EQ_INT(rc, CAP_OK);
        for (int i = 0; i < 24; i++) {
            CHECK_EQ_INT(codes[i], CAP_OK);
            if (!r->seen[k[i]]) r->seen[k[i]] = cap_retain(out[i]);
            CHECK(r->seen[k[i]] == out[i]); /* published once: one cap per hash */
        }
        pthread_mutex_unlock(&check_mu);
        for (int i = 0; i < 24; i++) cap_release(out[i]);
    }
    return NULL;
}

static void test_get_blobs_single_flight(void)
{
    cap_backend_t *mem = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(NULL, &mem), CAP_OK);
    counted_t cb;
    cap_backend_t init = CAP_BACKEND_INIT;
    cb.table = init;
    cb.table.ctx = &cb;
    cb.table.read = cb_read;
    cb.table.write = cb_write;
    cb.table.read_many = cb_read_many;
    cb.inner = mem;
    atomic_init(&cb.asked, 0);
    static cap_hash_t far[FAR];
    for (unsigned i = 0; i < FAR; i++) {
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_cnode_new(&c, cap_alloc_libc(), 5), CAP_OK);
        test_set_hash_of(c, i % 32, 50000 + i);
        CHECK_EQ_INT(cap_persist_put(mem, c, &far[i], NULL), CAP_OK);
        cap_release(c);
    }
    cap_store_t *s = store_with(NULL);
    CHECK_EQ_INT(cap_store_add_backend(s, &cb.table, NULL), CAP_OK);
    reader_t rd[READERS];
    pthread_t t[READERS];
    for (int i = 0; i < READERS; i++) {
        memset(&rd[i], 0, sizeof rd[i]);
        rd[i].s = s;
        rd[i].far = far;
        rd[i].seed = 100 + (uint64_t)i;
        pthread_create(&t[i], NULL, batch_reader, &rd[i]);
    }
    for (int i = 0; i < READERS; i++) pthread_join(t[i], NULL);
    /* Each hash asked of the backend once (nothing is trimmed: no budget). */
    CHECK_EQ_INT(atomic_load(&cb.asked), cap_store_blob_count(s));
    for (int i = 0; i < READERS; i++)
        for (int k = 0; k < FAR; k++) {
            if (rd[i].seen[k] && rd[0].seen[k]) CHECK(rd[i].seen[k] == rd[0].seen[k]);
            cap_release(rd[i].seen[k]);
        }
    cap_store_free(s);
    cap_backend_free(mem);
}

typedef struct putter {
    cap_store_t *s;
    uint64_t seed;
    int writer;
} putter_t;

static void *put_or_read(void *p)
{
    putter_t *u = p;
    test_rng_t r = {u->seed};
    for (int round = 0; round < 60; round++) {
        cap_t *caps[20];
        cap_hash_t h[20];
        pthread_mutex_lock(&check_mu); /* CHECK counts */
        for (int i = 0; i < 20; i++) {
            CHECK_EQ_INT(cap_cnode_new(&caps[i], cap_alloc_libc(), 4), CAP_OK);
            test_set_hash_of(caps[i], (uint32_t)test_rng_below(&r, 16), (unsigned)test_rng_below(&r, 400));
        }
        pthread_mutex_unlock(&check_mu);
        if (u->writer) {
            int rc = cap_store_put_caps(u->s, caps, 20, h, NULL);
            pthread_mutex_lock(&check_mu);
            CHECK_EQ_INT(rc, CAP_OK);
            pthread_mutex_unlock(&check_mu);
        } else {
            for (int i = 0; i < 20; i++) cap_hash(caps[i], &h[i]);
        }
        cap_t *out[20];
        uint8_t bits[3];
        cap_store_get_blobs(u->s, h, 20, out, NULL, NULL);
        cap_store_contains_blobs(u->s, h, 20, bits);
        pthread_mutex_lock(&check_mu);
        for (int i = 0; i < 20; i++) {
            if (u->writer) CHECK(out[i] != NULL && ((bits[i / 8] >> (i % 8)) & 1u));
            if (out[i]) CHECK(cap_equal(out[i], caps[i]));
        }
        pthread_mutex_unlock(&check_mu);
        for (int i = 0; i < 20; i++) {
            cap_release(out[i]);
            cap_release(caps[i]);
        }
    }
    return NULL;
}

static void test_put_caps_concurrent(void)
{
    cap_workers_t *w = cap_host_workers_new(2);
    cap_store_t *s = store_with(w);
    putter_t u[4] = {{s, 1, 1}, {s, 2, 1}, {s, 1, 0}, {s, 3, 0}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, put_or_read, &u[i]);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    cap_blob_entry_t *e = NULL;
    size_t n = 0;
    CHECK_EQ_INT(cap_store_iter_blobs_sorted(s, &e, &n), CAP_OK);
    for (size_t i = 0; i < n; i++) {
        if (i) CHECK(memcmp(e[i - 1].hash.bytes, e[i].hash.bytes, 32) != 0);
        cap_hash_t real = test_hash_cap(e[i].cap);
        CHECK_MEM(real.bytes, e[i].hash.bytes, 32);
    }
    cap_store_blobs_free(s, e, n);
    cap_store_free(s);
    cap_host_workers_free(w);
}

int main(void)
{
    test_alloc_init(&ta);
    test_pool();
    test_settle_parallel();
    test_get_blobs_single_flight();
    test_put_caps_concurrent();
    CHECK(test_alloc_clean(&ta)); /* every entry and table freed: no reference leaked */
    return check_done("test_store_batch_mt");
}
