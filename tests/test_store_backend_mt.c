/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The store's backends under threads (label "thread"; CI also runs it under
 * ThreadSanitizer):
 *   - single flight: many threads missing the same hashes at once cause one
 *     backend read per hash (a counting wrapper backend whose reads are slow
 *     enough for the threads to pile up), and all get the blob;
 *   - a failing fetch: every waiter gets an error, nothing is published;
 *   - puts, lookups (refetching what trim dropped), pins, flushes and trims
 *     from several threads at once, then a check that every blob put is in
 *     the backend and comes back with the right hash;
 *   - the lock-free probe: pinned blobs never look absent to contains_blob
 *     while tables grow and trims delete around them;
 *   - lock-free hits against trim: lookups take references to the very
 *     blobs trims are dropping, and each must come back with the right hash
 *     (test_store_readers_mt checks deterministically that trim waits for
 *     the lookups in flight).
 * Each part runs with the pthread hooks and with the built-in spin lock. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_rng.h"

static int use_spin;

static cap_store_t *new_store(void)
{
    cap_store_options_t o = cap_store_options_host();
    if (use_spin) o.locks = NULL;
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_OK);
    return s;
}

static void sleep_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* A counting wrapper: counts reads per hash (of the `n` it knows), sleeps in
 * each read, and can fail every read. */
#define MAXK 64
typedef struct counting {
    cap_backend_t table;
    cap_backend_t *inner;
    cap_hash_t keys[MAXK];
    int n;
    _Atomic long reads[MAXK];
    _Atomic long other_reads;
    _Atomic int fail;
    long delay_us;
} counting_t;

static int cnt_read(void *ctx, const cap_hash_t *h, const cap_alloc_t *a, uint8_t **bytes,
                    size_t *n, cap_err_t *err)
{
    counting_t *c = ctx;
    int k;
    for (k = 0; k < c->n; k++)
        if (memcmp(c->keys[k].bytes, h->bytes, 32) == 0) break;
    if (k < c->n)
        atomic_fetch_add(&c->reads[k], 1);
    else
        atomic_fetch_add(&c->other_reads, 1);
    if (c->delay_us) sleep_us(c->delay_us);
    if (atomic_load(&c->fail)) return cap_backend_fail(err, CAP_EBACKEND, "counting: failing");
    return cap_backend_read(c->inner, h, a, bytes, n, err);
}

static int cnt_write(void *ctx, const cap_hash_t *h, const uint8_t *b, size_t n, cap_err_t *err)
{
    counting_t *c = ctx;
    return cap_backend_write(c->inner, h, b, n, err);
}

static int cnt_batch(void *ctx, const cap_backend_item_t *items, size_t n, cap_err_t *err)
{
    counting_t *c = ctx;
    return cap_backend_write_batch(c->inner, items, n, err);
}

static void counting_init(counting_t *c, cap_backend_t *inner, long delay_us)
{
    memset(c, 0, sizeof *c);
    cap_backend_t t = CAP_BACKEND_INIT;
    t.name = "counting";
    t.ctx = c;
    t.read = cnt_read;
    t.write = cnt_write;
    t.write_batch = cnt_batch;
    c->table = t;
    c->inner = inner;
    c->delay_us = delay_us;
}

/* Failures seen inside threads (CHECK is not thread-safe: they are
 * counted here and checked by the main thread). */
static _Atomic long thread_failures;

static void expect_ok(int rc, const char *what)
{
    if (rc != CAP_OK) {
        atomic_fetch_add(&thread_failures, 1);
        fprintf(stderr, "%s: %d\n", what, rc);
    }
}

static cap_t *make_cnode(test_rng_t *r, int n)
{
    cap_t *c = NULL;
    expect_ok(cap_cnode_new(&c, cap_alloc_libc(), 8), "cap_cnode_new");
    for (int i = 0; i < n; i++) {
        cap_hash_t h = test_rng_hash(r);
        cap_target_t t = cap_target_of_hash(&h);
        expect_ok(cap_cnode_set(c, (uint32_t)i, &t), "cap_cnode_set");
    }
    return c;
}

/* A store with a fresh memory backend and `n` CNodes of `slots` slots put
 * (their hashes in hs). */
static cap_store_t *store_with_cnodes(cap_backend_t **mb, uint64_t seed, int n, int slots,
                                      cap_hash_t *hs)
{
    CHECK_EQ_INT(cap_mem_backend_new(NULL, mb), CAP_OK);
    cap_store_t *s = new_store();
    CHECK_EQ_INT(cap_store_add_backend(s, *mb, NULL), CAP_OK);
    test_rng_t rng = {seed};
    for (int i = 0; i < n; i++) {
        cap_t *c = make_cnode(&rng, slots);
        CHECK_EQ_INT(cap_store_put_cap(s, c, &hs[i]), CAP_OK);
        cap_release(c);
    }
    return s;
}

/* Single flight --------------------------------------------------------------------------------- */

#define THREADS 8

typedef struct sf_arg {
    cap_store_t *s;
    counting_t *cb;
    pthread_barrier_t *bar;
    int seed;
    int ok, errors;
} sf_arg_t;

static void *sf_thread(void *p)
{
    sf_arg_t *a = p;
    pthread_barrier_wait(a->bar);
    for (int i = 0; i < a->cb->n; i++) {
        int k = (i + a->seed) % a->cb->n; /* different starting points, same hashes */
        if (i % 2) k = i;                 /* and the same hash at the same time */
        cap_t *c = NULL;
        cap_err_t e;
        int rc = cap_store_fetch_blob(a->s, &a->cb->keys[k], &c, &e);
        if (rc == CAP_OK) {
            cap_hash_t got;
            if (cap_hash(c, &got) == CAP_OK && memcmp(got.bytes, a->cb->keys[k].bytes, 32) == 0)
                a->ok++;
            cap_release(c);
        } else {
            if (rc == CAP_EBACKEND && e.code == CAP_EBACKEND) a->errors++;
        }
    }
    return NULL;
}

static void run_sf(cap_store_t *s, counting_t *cb, sf_arg_t *args)
{
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, THREADS);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (sf_arg_t){s, cb, &bar, t * 7, 0, 0};
        CHECK_EQ_INT(pthread_create(&th[t], NULL, sf_thread, &args[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&bar);
}

static void test_single_flight(void)
{
    test_rng_t rng = {0x1234567ull};
    cap_backend_t *mb = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(NULL, &mb), CAP_OK);
    counting_t cb;
    counting_init(&cb, mb, 300);
    cb.n = 24;
    for (int i = 0; i < cb.n; i++) {
        cap_t *c = make_cnode(&rng, i % 5 + 1);
        CHECK_EQ_INT(cap_persist_put(mb, c, &cb.keys[i], NULL), CAP_OK);
        cap_release(c);
    }
    cap_store_t *s = new_store();
    CHECK_EQ_INT(cap_store_add_backend(s, &cb.table, NULL), CAP_OK);
    sf_arg_t args[THREADS];
    run_sf(s, &cb, args);
    int ok = 0;
    for (int t = 0; t < THREADS; t++) ok += args[t].ok;
    CHECK_EQ_INT(ok, THREADS * cb.n);
    for (int i = 0; i < cb.n; i++) CHECK_EQ_INT(atomic_load(&cb.reads[i]), 1);
    CHECK_EQ_INT(atomic_load(&cb.other_reads), 0);
    CHECK_EQ_INT(cap_store_blob_count(s), (size_t)cb.n);
    cap_store_free(s);

    /* Failing reads: every thread gets the error (the fetcher's, or its
     * own), nothing is published. */
    s = new_store();
    CHECK_EQ_INT(cap_store_add_backend(s, &cb.table, NULL), CAP_OK);
    atomic_store(&cb.fail, 1);
    for (int i = 0; i < cb.n; i++) atomic_store(&cb.reads[i], 0);
    run_sf(s, &cb, args);
    int errors = 0;
    for (int t = 0; t < THREADS; t++) errors += args[t].errors;
    CHECK_EQ_INT(errors, THREADS * cb.n);
    long reads = 0;
    for (int i = 0; i < cb.n; i++) reads += atomic_load(&cb.reads[i]);
    CHECK(reads >= cb.n && reads <= THREADS * cb.n);
    CHECK_EQ_INT(cap_store_blob_count(s), 0);
    atomic_store(&cb.fail, 0);
    cap_store_free(s);
    cap_backend_free(mb);
}

/* Everything at once ---------------------------------------------------------------------------- */

#define PUTTERS 3
#define PER_PUTTER 300

typedef struct mix_shared {
    cap_store_t *s;
    cap_hash_t hashes[PUTTERS][PER_PUTTER];
    _Atomic int published[PUTTERS]; /* how many of each putter's hashes are in */
    _Atomic int stop;
    _Atomic long lookups, failures, trims, flushes;
} mix_shared_t;

typedef struct mix_arg {
    mix_shared_t *m;
    int id;
} mix_arg_t;

static void *putter(void *p)
{
    mix_arg_t *a = p;
    mix_shared_t *m = a->m;
    test_rng_t rng = {0xABCDEF01ull + (uint64_t)a->id};
    for (int i = 0; i < PER_PUTTER; i++) {
        cap_t *c = make_cnode(&rng, 8);
        cap_hash_t h;
        expect_ok(cap_store_put_cap(m->s, c, &h), "put_cap");
        cap_release(c);
        m->hashes[a->id][i] = h;
        atomic_store_explicit(&m->published[a->id], i + 1, memory_order_release);
        if (i % 32 == 0) sleep_us(300); /* let flushes and trims interleave */
        if (i % 64 == 0) { /* pin and unpin now and then */
            expect_ok(cap_store_pin(m->s, &h, NULL), "pin");
            expect_ok(cap_store_unpin(m->s, &h), "unpin");
        }
    }
    return NULL;
}

/* Looks up what was published: always found (in memory, or refetched
 * after a trim dropped it once it was flushed). */
static void *looker(void *p)
{
    mix_arg_t *a = p;
    mix_shared_t *m = a->m;
    test_rng_t rng = {0x5151ull + (uint64_t)a->id};
    while (!atomic_load(&m->stop)) {
        int who = (int)test_rng_below(&rng, PUTTERS);
        int n = atomic_load_explicit(&m->published[who], memory_order_acquire);
        if (!n) continue;
        int i = (int)test_rng_below(&rng, (uint64_t)n);
        cap_t *c = NULL;
        cap_err_t e;
        int rc = cap_store_fetch_blob(m->s, &m->hashes[who][i], &c, &e);
        if (rc != CAP_OK) {
            atomic_fetch_add(&m->failures, 1);
            fprintf(stderr, "looker: %d (%s)\n", rc, e.what ? e.what : "");
        }
        cap_release(c);
        atomic_fetch_add(&m->lookups, 1);
    }
    return NULL;
}

static void *flusher(void *p)
{
    mix_arg_t *a = p;
    mix_shared_t *m = a->m;
    while (!atomic_load(&m->stop)) {
        size_t w;
        cap_err_t e;
        expect_ok(cap_store_flush(m->s, &w, &e), "flush");
        size_t d;
        expect_ok(cap_store_trim(m->s, &d), "trim");
        atomic_fetch_add(&m->flushes, 1);
        atomic_fetch_add(&m->trims, 1);
        sleep_us(200);
    }
    return NULL;
}

static void test_mixed(void)
{
    cap_backend_t *mb = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(NULL, &mb), CAP_OK);
    static counting_t cb; /* counts the refetches */
    counting_init(&cb, mb, 0);
    static mix_shared_t m;
    memset(&m, 0, sizeof m);
    m.s = new_store();
    CHECK_EQ_INT(cap_store_add_backend(m.s, &cb.table, NULL), CAP_OK);
    /* A budget of roughly 150 of the 900 blobs: trims run all the time. */
    cap_store_set_budget(m.s, 150 * 700);
    enum { LOOKERS = 2 };
    pthread_t pt[PUTTERS], lt[LOOKERS], ft;
    mix_arg_t pa[PUTTERS], la[LOOKERS], fa = {&m, 0};
    for (int i = 0; i < PUTTERS; i++) {
        pa[i] = (mix_arg_t){&m, i};
        CHECK_EQ_INT(pthread_create(&pt[i], NULL, putter, &pa[i]), 0);
    }
    for (int i = 0; i < LOOKERS; i++) {
        la[i] = (mix_arg_t){&m, i};
        CHECK_EQ_INT(pthread_create(&lt[i], NULL, looker, &la[i]), 0);
    }
    CHECK_EQ_INT(pthread_create(&ft, NULL, flusher, &fa), 0);
    for (int i = 0; i < PUTTERS; i++) pthread_join(pt[i], NULL);
    /* Run on until the lookers have refetched something a trim dropped (at
     * most ten seconds: a loaded machine may not have let that happen while
     * the putters ran; never happening is a failure below). */
    for (int ms = 0; ms < 10000; ms++) {
        if (atomic_load(&m.flushes) >= 5 && atomic_load(&cb.other_reads) > 0) break;
        sleep_us(1000);
    }
    atomic_store(&m.stop, 1);
    for (int i = 0; i < LOOKERS; i++) pthread_join(lt[i], NULL);
    pthread_join(ft, NULL);
    CHECK_EQ_INT(atomic_load(&m.failures), 0);
    CHECK(atomic_load(&m.lookups) > 0);
    fprintf(stderr,
            "mixed (%s): %ld lookups, %ld refetched, %ld flush+trim rounds, %zu blobs in memory "
            "of %d\n",
            use_spin ? "spin" : "pthread", atomic_load(&m.lookups), atomic_load(&cb.other_reads),
            atomic_load(&m.flushes), cap_store_blob_count(m.s), PUTTERS * PER_PUTTER);
    CHECK(atomic_load(&cb.other_reads) > 0);

    size_t w;
    CHECK_EQ_INT(cap_store_flush(m.s, &w, NULL), CAP_OK);
    CHECK_EQ_INT(cap_mem_backend_count(mb), PUTTERS * PER_PUTTER);
    size_t d;
    CHECK_EQ_INT(cap_store_trim(m.s, &d), CAP_OK);
    CHECK(cap_store_blob_bytes(m.s) <= 150 * 700);
    cap_store_set_budget(m.s, 0);
    for (int p = 0; p < PUTTERS; p++) {
        for (int i = 0; i < PER_PUTTER; i++) {
            cap_t *c = NULL;
            CHECK_EQ_INT(cap_store_get_blob(m.s, &m.hashes[p][i], &c), CAP_OK);
            cap_hash_t got;
            CHECK_EQ_INT(cap_hash(c, &got), CAP_OK);
            CHECK_MEM(got.bytes, m.hashes[p][i].bytes, 32);
            cap_release(c);
        }
    }
    CHECK_EQ_INT(cap_store_blob_count(m.s), PUTTERS * PER_PUTTER);
    cap_store_free(m.s);
    cap_backend_free(mb);
}

/* The thread that changes the store waits until its readers run, so that
 * the changes overlap their reads however the threads get scheduled (on a
 * loaded machine the changes could otherwise all be over before a reader
 * starts). */
static void wait_started(_Atomic int *started, int workers)
{
    while (atomic_load(started) < workers) sched_yield();
}

/* Start n reader threads on fn(arg); returns how many started (the ones to
 * wait for and join), each failure counted as a failed check. */
static int start_readers(pthread_t *t, int n, void *(*fn)(void *), void *arg)
{
    int started = 0;
    for (int i = 0; i < n; i++) {
        int rc = pthread_create(&t[started], NULL, fn, arg);
        CHECK_EQ_INT(rc, 0);
        if (rc == 0) started++;
    }
    return started;
}

/* Lock-free probes against growth and deletion ---------------------------------------------------- */

#define PINNED 200

typedef struct probe_shared {
    cap_store_t *s;
    cap_hash_t pinned[PINNED];
    _Atomic int stop;
    _Atomic int started; /* probers running; the churner waits for `workers` */
    int workers;
    _Atomic long probes, false_misses;
} probe_shared_t;

/* contains_blob answers a miss without the lock: a pinned blob must never
 * look absent, whatever moves around it. */
static void *prober(void *p)
{
    probe_shared_t *m = p;
    long n = 0, bad = 0;
    atomic_fetch_add(&m->started, 1);
    do {
        for (int i = 0; i < PINNED; i++) {
            if (!cap_store_contains_blob(m->s, &m->pinned[i])) bad++;
            n++;
        }
    } while (!atomic_load(&m->stop));
    atomic_fetch_add(&m->probes, n);
    atomic_fetch_add(&m->false_misses, bad);
    return NULL;
}

/* Puts (growing every shard's table), flushes and trims (deleting from the
 * middle of probe runs). */
static void *churner(void *p)
{
    probe_shared_t *m = p;
    test_rng_t rng = {0xC0FFEEull};
    wait_started(&m->started, m->workers);
    for (int round = 0; round < 12; round++) {
        for (int i = 0; i < 400; i++) {
            cap_t *c = make_cnode(&rng, 3);
            expect_ok(cap_store_put_cap(m->s, c, NULL), "put_cap");
            cap_release(c);
        }
        size_t w, d;
        expect_ok(cap_store_flush(m->s, &w, NULL), "flush");
        expect_ok(cap_store_trim(m->s, &d), "trim");
    }
    atomic_store(&m->stop, 1);
    return NULL;
}

static void test_probe_during_changes(void)
{
    cap_backend_t *mb = NULL;
    static probe_shared_t m;
    memset(&m, 0, sizeof m);
    m.s = store_with_cnodes(&mb, 0xFEEDull, PINNED, 2, m.pinned);
    for (int i = 0; i < PINNED; i++) CHECK_EQ_INT(cap_store_pin(m.s, &m.pinned[i], NULL), CAP_OK);
    cap_store_set_budget(m.s, 64 * 1024); /* far below what the churn puts */
    pthread_t pr[2], ch;
    m.workers = start_readers(pr, 2, prober, &m);
    CHECK_EQ_INT(pthread_create(&ch, NULL, churner, &m), 0);
    pthread_join(ch, NULL);
    for (int i = 0; i < m.workers; i++) pthread_join(pr[i], NULL);
    CHECK_EQ_INT(atomic_load(&m.false_misses), 0);
    CHECK(atomic_load(&m.probes) > 0);
    CHECK(cap_store_blob_count(m.s) < PINNED + 12 * 400); /* the trims dropped blobs */
    for (int i = 0; i < PINNED; i++) CHECK(cap_store_contains_blob(m.s, &m.pinned[i]));
    cap_store_free(m.s);
    cap_backend_free(mb);
}

/* Lock-free hits against trim ---------------------------------------------------------------------- */

#define HIT_BLOBS 64
#define HIT_ROUNDS 3000

typedef struct hit_shared {
    cap_store_t *s;
    cap_hash_t hashes[HIT_BLOBS];
    _Atomic int stop;
    _Atomic int started; /* hitters running; the trimmer waits for `workers` */
    int workers;
    _Atomic long hits, bad;
} hit_shared_t;

static void *hitter(void *p)
{
    hit_shared_t *m = p;
    test_rng_t rng = {(uint64_t)(uintptr_t)&rng | 1u};
    long n = 0, bad = 0;
    atomic_fetch_add(&m->started, 1);
    do {
        const cap_hash_t *h = &m->hashes[test_rng_below(&rng, HIT_BLOBS)];
        cap_t *c = NULL;
        cap_hash_t got;
        if (cap_store_get_blob(m->s, h, &c) != CAP_OK || cap_hash(c, &got) != CAP_OK ||
            memcmp(got.bytes, h->bytes, 32) != 0)
            bad++;
        cap_release(c);
        n++;
    } while (!atomic_load(&m->stop));
    atomic_fetch_add(&m->hits, n);
    atomic_fetch_add(&m->bad, bad);
    return NULL;
}

/* Trims down to nothing, over and over: every blob not referenced at that
 * moment leaves memory (and comes back through the backend on the next
 * lookup). */
static void *trimmer(void *p)
{
    hit_shared_t *m = p;
    wait_started(&m->started, m->workers);
    for (int round = 0; round < HIT_ROUNDS; round++) {
        size_t d;
        expect_ok(cap_store_trim(m->s, &d), "trim");
    }
    atomic_store(&m->stop, 1);
    return NULL;
}

static void test_hits_during_trim(void)
{
    cap_backend_t *mb = NULL;
    static hit_shared_t m;
    memset(&m, 0, sizeof m);
    m.s = store_with_cnodes(&mb, 0xB10Bull, HIT_BLOBS, 4, m.hashes);
    size_t w;
    CHECK_EQ_INT(cap_store_flush(m.s, &w, NULL), CAP_OK);
    cap_store_set_budget(m.s, 1); /* every trim drops all it may */
    pthread_t hs[2], tr;
    m.workers = start_readers(hs, 2, hitter, &m);
    CHECK_EQ_INT(pthread_create(&tr, NULL, trimmer, &m), 0);
    pthread_join(tr, NULL);
    for (int i = 0; i < m.workers; i++) pthread_join(hs[i], NULL);
    CHECK_EQ_INT(atomic_load(&m.bad), 0);
    CHECK(atomic_load(&m.hits) > 0);
    cap_store_free(m.s);
    cap_backend_free(mb);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    for (use_spin = 0; use_spin < 2; use_spin++) {
        test_single_flight();
        test_mixed();
        test_probe_during_changes();
        test_hits_during_trim();
    }
    CHECK_EQ_INT(atomic_load(&thread_failures), 0);
    return check_done("test_store_backend_mt");
}
