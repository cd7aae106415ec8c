/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Multi-threaded stress test of the store (label "thread"; CI also runs it
 * under ThreadSanitizer).
 *
 * 1. Mixed stress: 4 threads on one store doing puts (of shared contents, so
 *    equal content is published concurrently), gets, misses, promotes,
 *    make_mut + set_instance, edit_instance, releases, sweeps, bounded
 *    sweeps, settles of small trees and snapshots of the blob tier. Each
 *    thread keeps its own handles and only ever builds DAGs (a cap may refer
 *    only to the thread's older handles). At the end: all handles released,
 *    a sweep, instance_count == 0, every blob's cap hashes to its key, no
 *    allocation left. Run on a store with the host's pthread lock hooks, one
 *    with the built-in spin locks (NULL hooks), and one made by
 *    cap_store_new_host itself.
 * 2. Release vs sweep: threads drop the last references of many entries
 *    (chains, so sweeps cascade) while another thread sweeps continuously;
 *    every entry is removed exactly once.
 * 3. Settle vs set_instance: settlers settle the same root over and over
 *    while a writer rewrites the entries below it in a fixed order; every
 *    settle must return the hash of a state the graph was in at one instant.
 *
 * Thread-side checks count into an atomic (check.h's counters are not
 * thread-safe); the totals are folded into check.h at the end.
 * Environment: CAPSTORE_MT_OPS overrides the operations per thread. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "check.h"
#include "test_alloc.h"

static atomic_long t_failures;
static atomic_long t_checks;

#define TCHECK(cond)                                                                   \
    do {                                                                               \
        atomic_fetch_add(&t_checks, 1);                                                \
        if (!(cond)) {                                                                 \
            if (atomic_fetch_add(&t_failures, 1) < 50)                                 \
                fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                              \
    } while (0)

#define TCHECK_RC(expr, want)                                                           \
    do {                                                                                \
        int tc_rc_ = (expr);                                                            \
        atomic_fetch_add(&t_checks, 1);                                                 \
        if (tc_rc_ != (want)) {                                                         \
            if (atomic_fetch_add(&t_failures, 1) < 50)                                  \
                fprintf(stderr, "%s:%d: CHECK failed: %s -> %d, want %s\n", __FILE__,    \
                        __LINE__, #expr, tc_rc_, #want);                                \
        }                                                                               \
    } while (0)

static test_alloc_t ta;
static const cap_alloc_t *A;

static uint64_t xs_next(uint64_t *x)
{
    uint64_t v = *x;
    v ^= v >> 12;
    v ^= v << 25;
    v ^= v >> 27;
    *x = v;
    return v * 0x2545F4914F6CDD1Dull;
}

static void xs_hash(uint64_t *x, cap_hash_t *h)
{
    do {
        for (int i = 0; i < 4; i++) {
            uint64_t v = xs_next(x);
            memcpy(h->bytes + 8 * i, &v, 8);
        }
    } while (cap_hash_is_zero(h));
}

static uint64_t name_seed(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static unsigned long env_ops(unsigned long dflt)
{
    const char *e = getenv("CAPSTORE_MT_OPS");
    if (e && *e) return strtoul(e, NULL, 10);
    return dflt;
}

/* ---- shared contents ------------------------------------------------------------------- */

#define NCONTENT 64
static cap_hash_t content_val[NCONTENT]; /* the slot value of content k */
static cap_hash_t content_hash[NCONTENT]; /* cap_hash of content k */

/* Content k: a cnode of 16 slots with slot k % 16 holding content_val[k]. */
static cap_t *make_content(unsigned k)
{
    cap_t *c = NULL;
    if (cap_cnode_new(&c, A, 4) != CAP_OK) return NULL;
    cap_target_t t = cap_target_of_hash(&content_val[k]);
    if (cap_cnode_set(c, k % 16, &t) != CAP_OK) {
        cap_release(c);
        return NULL;
    }
    return c;
}

static void init_contents(void)
{
    uint64_t x = 0x1234567887654321ull;
    for (unsigned k = 0; k < NCONTENT; k++) {
        xs_hash(&x, &content_val[k]);
        cap_t *c = make_content(k);
        CHECK(c != NULL);
        if (!c) continue;
        CHECK_EQ_INT(cap_hash(c, &content_hash[k]), CAP_OK);
        cap_release(c);
    }
}

/* ---- part 1: mixed stress --------------------------------------------------------------- */

#define TH 4
#define MAXOWN 48

typedef struct worker {
    cap_store_t *s;
    uint64_t x;
    unsigned long ops;
    cap_ref_t *h[MAXOWN]; /* own handles, oldest first: a cap refers only to older ones */
    unsigned nh;
    uint8_t published[NCONTENT]; /* contents this thread saw published */
    pthread_barrier_t *start;
} worker_t;

static unsigned below(worker_t *w, unsigned n) { return n ? (unsigned)(xs_next(&w->x) % n) : 0; }

static void w_keep(worker_t *w, cap_ref_t *r)
{
    if (w->nh < MAXOWN) {
        w->h[w->nh++] = r;
    } else {
        /* Full: drop the oldest reference held (keeps the order "older first"). */
        cap_ref_release(w->h[0]);
        memmove(w->h, w->h + 1, sizeof(w->h[0]) * (MAXOWN - 1));
        w->h[MAXOWN - 1] = r;
    }
}

static void w_drop(worker_t *w, unsigned i)
{
    cap_ref_release(w->h[i]);
    memmove(w->h + i, w->h + i + 1, sizeof(w->h[0]) * (w->nh - i - 1));
    w->nh--;
}

static void w_put(worker_t *w)
{
    unsigned k = below(w, NCONTENT);
    cap_t *c = make_content(k);
    TCHECK(c != NULL);
    if (!c) return;
    cap_hash_t h;
    if (below(w, 3) == 0) {
        TCHECK_RC(cap_store_put_cap_with_hash(w->s, &content_hash[k], c), CAP_OK);
    } else {
        TCHECK_RC(cap_store_put_cap(w->s, c, &h), CAP_OK);
        TCHECK(memcmp(h.bytes, content_hash[k].bytes, 32) == 0);
    }
    w->published[k] = 1;
    cap_release(c);
}

static void w_get(worker_t *w)
{
    unsigned k = below(w, NCONTENT);
    cap_t *c = NULL;
    int rc = cap_store_get_blob(w->s, &content_hash[k], &c);
    if (w->published[k]) TCHECK_RC(rc, CAP_OK);
    TCHECK(rc == CAP_OK || rc == CAP_EBLOBMISSING);
    if (rc == CAP_OK) {
        TCHECK(cap_is_frozen(c));
        TCHECK_RC((int)cap_cnode_count(c), 1);
        cap_target_t t;
        TCHECK_RC(cap_cnode_get(c, k % 16, &t), CAP_OK);
        TCHECK(t.kind == CAP_TARGET_HASH && memcmp(t.hash.bytes, content_val[k].bytes, 32) == 0);
        cap_release(c);
    } else {
        TCHECK(c == NULL);
    }
    /* A miss. */
    cap_hash_t h;
    xs_hash(&w->x, &h);
    TCHECK_RC(cap_store_get_blob(w->s, &h, &c), CAP_EBLOBMISSING);
    TCHECK(!cap_store_contains_blob(w->s, &h));
}

static void w_promote(worker_t *w)
{
    unsigned k = below(w, NCONTENT);
    cap_ref_t *r = NULL;
    int rc = cap_store_promote_blob_to_instance(w->s, &content_hash[k], &r);
    if (w->published[k]) TCHECK_RC(rc, CAP_OK);
    TCHECK(rc == CAP_OK || rc == CAP_EBLOBMISSING);
    if (rc == CAP_OK) w_keep(w, r);
}

/* A new cnode instance referring to up to 3 of the thread's handles. */
static void w_put_instance(worker_t *w)
{
    cap_t *c = NULL;
    TCHECK_RC(cap_cnode_new(&c, A, 3), CAP_OK);
    if (!c) return;
    unsigned nref = w->nh ? below(w, 4) : 0;
    for (unsigned i = 0; i < nref; i++) {
        cap_target_t t = cap_target_of_ref(w->h[below(w, w->nh)]);
        TCHECK_RC(cap_cnode_set(c, i, &t), CAP_OK);
    }
    cap_target_t t = cap_target_of_hash(&content_val[below(w, NCONTENT)]);
    TCHECK_RC(cap_cnode_set(c, 7, &t), CAP_OK);
    cap_ref_t *r = NULL;
    TCHECK_RC(cap_store_put_instance(w->s, c, &r), CAP_OK);
    if (r) w_keep(w, r);
    cap_release(c);
}

typedef struct wedit {
    worker_t *w;
    unsigned i; /* index of the edited handle */
} wedit_t;

/* Set a slot of a cnode to a hash or to an older handle; instances get a new pc. */
static int w_apply(cap_t *c, worker_t *w, unsigned i)
{
    if (cap_kind(c) != CAP_KIND_CNODE) return CAP_OK;
    unsigned cap_slots = 1u << cap_cnode_size_log(c);
    uint32_t slot = below(w, cap_slots);
    cap_target_t t;
    if (i > 0 && below(w, 2))
        t = cap_target_of_ref(w->h[below(w, i)]); /* older: no cycle */
    else
        t = cap_target_of_hash(&content_val[below(w, NCONTENT)]);
    return cap_cnode_set(c, slot, &t);
}

static void w_make_mut(worker_t *w)
{
    if (!w->nh) return;
    unsigned i = below(w, w->nh);
    cap_t *c = NULL;
    int rc = cap_store_get_instance(w->s, w->h[i], &c);
    TCHECK(rc == CAP_OK || rc == CAP_EINSTANCEMISSING); /* missing: settled earlier */
    if (rc != CAP_OK) return;
    TCHECK_RC(cap_make_mut(&c), CAP_OK);
    TCHECK(cap_is_writable(c));
    TCHECK_RC(w_apply(c, w, i), CAP_OK);
    cap_err_t err;
    rc = cap_store_set_instance(w->s, w->h[i], c, &err);
    TCHECK_RC(rc, CAP_OK);
    cap_release(c);
}

static int w_edit_cb(cap_t *c, void *arg)
{
    wedit_t *e = arg;
    return w_apply(c, e->w, e->i);
}

static void w_edit(worker_t *w)
{
    if (!w->nh) return;
    wedit_t e = {w, below(w, w->nh)};
    cap_err_t err;
    int rc = cap_store_edit_instance(w->s, w->h[e.i], w_edit_cb, &e, &err);
    TCHECK(rc == CAP_OK || rc == CAP_EINSTANCEMISSING);
}

static void w_sweep(worker_t *w)
{
    size_t removed;
    if (below(w, 2)) {
        TCHECK_RC(cap_store_sweep_instances(w->s, &removed), CAP_OK);
    } else {
        bool more;
        size_t budget = 1 + below(w, 8);
        TCHECK_RC(cap_store_sweep_budget(w->s, budget, &removed, &more), CAP_OK);
        TCHECK(removed <= budget);
    }
}

/* Settle a small tree: root cnode -> 3 cnodes -> 2 leaves each. The expected
 * hash is built on the side from plain hashes. */
static void w_settle_tree(worker_t *w)
{
    cap_ref_t *mid[3] = {0};
    cap_t *root = NULL, *eroot = NULL;
    TCHECK_RC(cap_cnode_new(&root, A, 2), CAP_OK);
    TCHECK_RC(cap_cnode_new(&eroot, A, 2), CAP_OK);
    if (!root || !eroot) {
        cap_release(root);
        cap_release(eroot);
        return;
    }
    for (unsigned m = 0; m < 3; m++) {
        cap_t *mc = NULL, *emc = NULL;
        TCHECK_RC(cap_cnode_new(&mc, A, 1), CAP_OK);
        TCHECK_RC(cap_cnode_new(&emc, A, 1), CAP_OK);
        for (unsigned l = 0; l < 2 && mc && emc; l++) {
            cap_t *leaf = make_content(below(w, NCONTENT));
            cap_hash_t lh;
            TCHECK_RC(cap_hash(leaf, &lh), CAP_OK);
            cap_ref_t *lr = NULL;
            TCHECK_RC(cap_store_put_instance(w->s, leaf, &lr), CAP_OK);
            cap_release(leaf);
            cap_target_t t = cap_target_of_ref(lr);
            TCHECK_RC(cap_cnode_set(mc, l, &t), CAP_OK);
            t = cap_target_of_hash(&lh);
            TCHECK_RC(cap_cnode_set(emc, l, &t), CAP_OK);
            cap_ref_release(lr); /* only the mid cnode refers to it now */
        }
        cap_hash_t mh;
        TCHECK_RC(cap_hash(emc, &mh), CAP_OK);
        TCHECK_RC(cap_store_put_instance(w->s, mc, &mid[m]), CAP_OK);
        cap_target_t t = cap_target_of_ref(mid[m]);
        TCHECK_RC(cap_cnode_set(root, m, &t), CAP_OK);
        t = cap_target_of_hash(&mh);
        TCHECK_RC(cap_cnode_set(eroot, m, &t), CAP_OK);
        cap_release(mc);
        cap_release(emc);
    }
    cap_hash_t want, got;
    TCHECK_RC(cap_hash(eroot, &want), CAP_OK);
    cap_ref_t *rr = NULL;
    TCHECK_RC(cap_store_put_instance(w->s, root, &rr), CAP_OK);
    cap_release(root);
    cap_release(eroot);
    for (unsigned m = 0; m < 3; m++) cap_ref_release(mid[m]);
    cap_target_t t = cap_target_of_ref(rr);
    cap_err_t err;
    TCHECK_RC(cap_store_settle(w->s, &t, &got, &err), CAP_OK);
    TCHECK(memcmp(got.bytes, want.bytes, 32) == 0);
    TCHECK(cap_store_contains_blob(w->s, &want));
    cap_t *c = NULL;
    TCHECK_RC(cap_store_get_instance(w->s, rr, &c), CAP_EINSTANCEMISSING); /* graduated */
    cap_ref_release(rr);
}

static void w_settle_own(worker_t *w)
{
    if (!w->nh) return;
    cap_target_t t = cap_target_of_ref(w->h[below(w, w->nh)]);
    cap_hash_t out;
    cap_err_t err;
    int rc = cap_store_settle(w->s, &t, &out, &err);
    /* Missing: this handle, or one below it, was settled (graduated) before. */
    TCHECK(rc == CAP_OK || rc == CAP_EINSTANCEMISSING);
}

static void w_iter(worker_t *w)
{
    cap_blob_entry_t *e = NULL;
    size_t n = 0;
    TCHECK_RC(cap_store_iter_blobs_sorted(w->s, &e, &n), CAP_OK);
    for (size_t i = 1; i < n; i++) TCHECK(memcmp(e[i - 1].hash.bytes, e[i].hash.bytes, 32) < 0);
    if (n) {
        size_t i = below(w, (unsigned)n);
        cap_hash_t h;
        TCHECK_RC(cap_hash(e[i].cap, &h), CAP_OK);
        TCHECK(memcmp(h.bytes, e[i].hash.bytes, 32) == 0);
    }
    cap_store_blobs_free(w->s, e, n);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    pthread_barrier_wait(w->start);
    for (unsigned long op = 0; op < w->ops; op++) {
        unsigned k = below(w, 100);
        if (k < 14) w_put(w);
        else if (k < 30) w_get(w);
        else if (k < 40) w_promote(w);
        else if (k < 54) w_put_instance(w);
        else if (k < 62) w_make_mut(w);
        else if (k < 68) w_edit(w);
        else if (k < 80) {
            if (w->nh) w_drop(w, below(w, w->nh));
        } else if (k < 87) w_sweep(w);
        else if (k < 91) w_settle_tree(w);
        else if (k < 97) w_settle_own(w);
        else if (k < 98) w_iter(w);
        else {
            /* counts are exact snapshots; just exercise them concurrently */
            (void)cap_store_blob_count(w->s);
            (void)cap_store_instance_count(w->s);
        }
    }
    while (w->nh) w_drop(w, w->nh - 1);
    return NULL;
}

/* Every blob's cap hashes to its key. */
static void check_blob_hashes(cap_store_t *s)
{
    cap_blob_entry_t *e = NULL;
    size_t n = 0;
    CHECK_EQ_INT(cap_store_iter_blobs(s, &e, &n), CAP_OK);
    CHECK_EQ_INT(n, cap_store_blob_count(s));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        cap_hash_t h;
        if (cap_hash(e[i].cap, &h) != CAP_OK || memcmp(h.bytes, e[i].hash.bytes, 32) != 0) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    cap_store_blobs_free(s, e, n);
}

static void stress(const char *name, cap_store_t *s, unsigned long ops)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, TH);
    worker_t w[TH];
    pthread_t t[TH];
    for (int i = 0; i < TH; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].s = s;
        w[i].x = 0xA0761D6478BD642Full * (uint64_t)(i + 1) ^ name_seed(name);
        w[i].ops = ops;
        w[i].start = &start;
    }
    for (int i = 0; i < TH; i++) CHECK_EQ_INT(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    for (int i = 0; i < TH; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    size_t removed = 0;
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(cap_store_instance_count(s), 0);
    check_blob_hashes(s);
    /* Everything published is still there. */
    for (unsigned k = 0; k < NCONTENT; k++) {
        int any = 0;
        for (int i = 0; i < TH; i++) any |= w[i].published[k];
        if (any) CHECK(cap_store_contains_blob(s, &content_hash[k]));
    }
    fprintf(stderr, "%s: %lu ops x %d threads, %zu blobs\n", name, ops, TH, cap_store_blob_count(s));
}

/* ---- part 2: releases racing a sweeper ----------------------------------------------------- */

#define CHAINS_PER_THREAD 400
#define CHAIN_LEN 4

typedef struct releaser {
    cap_store_t *s;
    cap_ref_t *heads[CHAINS_PER_THREAD];
    uint64_t x;
    pthread_barrier_t *start;
} releaser_t;

typedef struct sweeper {
    cap_store_t *s;
    atomic_int *stop;
    size_t removed;
    pthread_barrier_t *start;
} sweeper_t;

static void *releaser_main(void *arg)
{
    releaser_t *r = arg;
    pthread_barrier_wait(r->start);
    /* Release in a shuffled order, retaining/releasing some twice first. */
    uint32_t order[CHAINS_PER_THREAD];
    for (uint32_t i = 0; i < CHAINS_PER_THREAD; i++) order[i] = i;
    for (uint32_t i = CHAINS_PER_THREAD; i-- > 1;) {
        uint32_t j = (uint32_t)(xs_next(&r->x) % (i + 1));
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (uint32_t i = 0; i < CHAINS_PER_THREAD; i++) {
        cap_ref_t *h = r->heads[order[i]];
        if (i % 3 == 0) {
            cap_ref_retain(h);
            cap_ref_release(h);
        }
        if (i % 5 == 0) {
            cap_t *c = NULL;
            TCHECK_RC(cap_store_get_instance(r->s, h, &c), CAP_OK);
            cap_release(c);
        }
        cap_ref_release(h);
    }
    return NULL;
}

static void *sweeper_main(void *arg)
{
    sweeper_t *sw = arg;
    pthread_barrier_wait(sw->start);
    unsigned round = 0;
    while (!atomic_load(&sw->stop[0])) {
        size_t removed = 0;
        if (round++ % 2) {
            TCHECK_RC(cap_store_sweep_instances(sw->s, &removed), CAP_OK);
        } else {
            bool more = false;
            TCHECK_RC(cap_store_sweep_budget(sw->s, 16, &removed, &more), CAP_OK);
            TCHECK(removed <= 16);
        }
        sw->removed += removed;
    }
    return NULL;
}

static void release_vs_sweep(cap_store_t *s)
{
    enum { NREL = 3 };
    releaser_t r[NREL];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, NREL + 2); /* releasers, sweeper, main */
    size_t total = 0;
    for (int i = 0; i < NREL; i++) {
        r[i].s = s;
        r[i].x = 0x9E3779B97F4A7C15ull + (uint64_t)i * 77;
        r[i].start = &start;
        for (int c = 0; c < CHAINS_PER_THREAD; c++) {
            cap_ref_t *next = NULL;
            for (int l = 0; l < CHAIN_LEN; l++) {
                cap_t *cn = NULL;
                CHECK_EQ_INT(cap_cnode_new(&cn, A, 1), CAP_OK);
                if (next) {
                    cap_target_t t = cap_target_of_ref(next);
                    CHECK_EQ_INT(cap_cnode_set(cn, 0, &t), CAP_OK);
                    cap_ref_release(next);
                }
                next = NULL;
                CHECK_EQ_INT(cap_store_put_instance(s, cn, &next), CAP_OK);
                cap_release(cn);
                total++;
            }
            r[i].heads[c] = next;
        }
    }
    CHECK_EQ_INT(cap_store_instance_count(s), total);
    atomic_int stop = 0;
    sweeper_t sw = {s, &stop, 0, &start};
    pthread_t ts, tr[NREL];
    CHECK_EQ_INT(pthread_create(&ts, NULL, sweeper_main, &sw), 0);
    for (int i = 0; i < NREL; i++) CHECK_EQ_INT(pthread_create(&tr[i], NULL, releaser_main, &r[i]), 0);
    pthread_barrier_wait(&start);
    for (int i = 0; i < NREL; i++) pthread_join(tr[i], NULL);
    atomic_store(&stop, 1);
    pthread_join(ts, NULL);
    size_t removed = 0;
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(sw.removed + removed, total); /* each entry removed exactly once */
    CHECK_EQ_INT(cap_store_instance_count(s), 0);
    pthread_barrier_destroy(&start);
    fprintf(stderr, "release_vs_sweep: %zu entries, %zu by the concurrent sweeper\n", total, sw.removed);
}

/* ---- part 3: settle vs set_instance ------------------------------------------------------ */

/* R = Instance{root = Ref(C)}, C = Instance{pc = j, root = Ref(D)},
 * D = Instance{pc = i, root = Hash(base)}. All three are Instances, so they
 * stay in the instance tier and the root can be settled again and again.
 * The writer's round k writes D{pc=k}, then C{pc=k, root=Ref(D)}, then R
 * (restoring its Ref, which a settle rewrites to a hash). At every instant
 * the graph has C.pc = j and D.pc in {j, j+1}; a settle mixing a C read
 * before a round with a D read after it (D.pc >= j + 2, or < j) is torn. */
#define ROUNDS 400
#define SETTLERS 3

static cap_hash_t base_hash;
static cap_hash_t valid[ROUNDS + 1][2]; /* [j][i - j] */

static int mk_instance(cap_t **out, const cap_target_t *root, uint64_t pc)
{
    int rc = cap_instance_new(out, A, root);
    if (rc == CAP_OK) rc = cap_instance_set_pc(*out, pc);
    return rc;
}

static int chain_hash(uint64_t j, uint64_t i, cap_hash_t *out)
{
    cap_t *d = NULL, *c = NULL, *r = NULL;
    cap_hash_t hd, hc;
    cap_target_t t = cap_target_of_hash(&base_hash);
    int rc = mk_instance(&d, &t, i);
    if (rc == CAP_OK) rc = cap_hash(d, &hd);
    t = cap_target_of_hash(&hd);
    if (rc == CAP_OK) rc = mk_instance(&c, &t, j);
    if (rc == CAP_OK) rc = cap_hash(c, &hc);
    t = cap_target_of_hash(&hc);
    if (rc == CAP_OK) rc = mk_instance(&r, &t, 0);
    if (rc == CAP_OK) rc = cap_hash(r, out);
    cap_release(d);
    cap_release(c);
    cap_release(r);
    return rc;
}

typedef struct graph {
    cap_store_t *s;
    cap_ref_t *r, *c, *d;
    atomic_int done;
    atomic_long settles;
    atomic_long distinct_hint;
    atomic_long settler_errors;
    pthread_barrier_t start;
} graph_t;

static void *writer_main(void *arg)
{
    graph_t *g = arg;
    pthread_barrier_wait(&g->start);
    cap_err_t err;
    for (uint64_t k = 1; k <= ROUNDS; k++) {
        cap_t *x = NULL;
        cap_target_t t = cap_target_of_hash(&base_hash);
        TCHECK_RC(mk_instance(&x, &t, k), CAP_OK);
        TCHECK_RC(cap_store_set_instance(g->s, g->d, x, &err), CAP_OK);
        cap_release(x);
        t = cap_target_of_ref(g->d);
        TCHECK_RC(mk_instance(&x, &t, k), CAP_OK);
        TCHECK_RC(cap_store_set_instance(g->s, g->c, x, &err), CAP_OK);
        cap_release(x);
        t = cap_target_of_ref(g->c);
        TCHECK_RC(mk_instance(&x, &t, 0), CAP_OK);
        TCHECK_RC(cap_store_set_instance(g->s, g->r, x, &err), CAP_OK);
        cap_release(x);
        /* Pace the rounds so that settles overlap them all: wait until the
         * settlers have done about two settles per round so far. */
        while (atomic_load(&g->settles) < (long)(2 * k) && atomic_load(&g->settler_errors) == 0)
            sched_yield();
    }
    atomic_store(&g->done, 1);
    return NULL;
}

static int is_valid(const cap_hash_t *h)
{
    for (int j = 0; j <= ROUNDS; j++)
        for (int d = 0; d < 2; d++)
            if (memcmp(valid[j][d].bytes, h->bytes, 32) == 0) return 1;
    return 0;
}

static void *settler_main(void *arg)
{
    graph_t *g = arg;
    pthread_barrier_wait(&g->start);
    cap_hash_t last;
    memset(&last, 0, sizeof last);
    do {
        cap_target_t t = cap_target_of_ref(g->r);
        cap_hash_t out;
        cap_err_t err;
        int rc = cap_store_settle(g->s, &t, &out, &err);
        TCHECK_RC(rc, CAP_OK);
        if (rc != CAP_OK) {
            atomic_fetch_add(&g->settler_errors, 1);
            break;
        }
        TCHECK(is_valid(&out));
        if (memcmp(out.bytes, last.bytes, 32) != 0) atomic_fetch_add(&g->distinct_hint, 1);
        last = out;
        atomic_fetch_add(&g->settles, 1);
    } while (!atomic_load(&g->done));
    return NULL;
}

static void settle_vs_writer(cap_store_t *s)
{
    memset(base_hash.bytes, 0x42, 32);
    for (int j = 0; j <= ROUNDS; j++)
        for (int d = 0; d < 2; d++) CHECK_EQ_INT(chain_hash((uint64_t)j, (uint64_t)(j + d), &valid[j][d]), CAP_OK);
    graph_t *g = calloc(1, sizeof *g);
    if (!g) return;
    g->s = s;
    cap_t *x = NULL;
    cap_target_t t = cap_target_of_hash(&base_hash);
    CHECK_EQ_INT(mk_instance(&x, &t, 0), CAP_OK);
    CHECK_EQ_INT(cap_store_put_instance(s, x, &g->d), CAP_OK);
    cap_release(x);
    t = cap_target_of_ref(g->d);
    CHECK_EQ_INT(mk_instance(&x, &t, 0), CAP_OK);
    CHECK_EQ_INT(cap_store_put_instance(s, x, &g->c), CAP_OK);
    cap_release(x);
    t = cap_target_of_ref(g->c);
    CHECK_EQ_INT(mk_instance(&x, &t, 0), CAP_OK);
    CHECK_EQ_INT(cap_store_put_instance(s, x, &g->r), CAP_OK);
    cap_release(x);
    pthread_barrier_init(&g->start, NULL, SETTLERS + 1);
    pthread_t tw, tsl[SETTLERS];
    for (int i = 0; i < SETTLERS; i++) CHECK_EQ_INT(pthread_create(&tsl[i], NULL, settler_main, g), 0);
    CHECK_EQ_INT(pthread_create(&tw, NULL, writer_main, g), 0);
    /* The writer waits on the barrier as the last party. */
    pthread_join(tw, NULL);
    for (int i = 0; i < SETTLERS; i++) pthread_join(tsl[i], NULL);
    /* Quiet now: the settle of the final state is exact. */
    cap_hash_t out;
    cap_err_t err;
    t = cap_target_of_ref(g->r);
    CHECK_EQ_INT(cap_store_settle(s, &t, &out, &err), CAP_OK);
    CHECK_MEM(out.bytes, valid[ROUNDS][0].bytes, 32);
    CHECK_EQ_INT(cap_store_instance_count(s), 3);
    fprintf(stderr, "settle_vs_writer: %ld settles, %ld hash changes seen\n",
            atomic_load(&g->settles), atomic_load(&g->distinct_hint));
    cap_ref_release(g->r);
    cap_ref_release(g->c);
    cap_ref_release(g->d);
    size_t removed = 0;
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(removed, 3);
    CHECK_EQ_INT(cap_store_instance_count(s), 0);
    pthread_barrier_destroy(&g->start);
    free(g);
}

/* ---- main ----------------------------------------------------------------------------------- */

static cap_store_t *new_store(const cap_lock_hooks_t *locks)
{
    cap_store_options_t o = cap_store_options_host();
    o.alloc = A;
    o.locks = locks;
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_OK);
    return s;
}

static void leak_check(const char *what)
{
    if (!test_alloc_clean(&ta)) {
        fprintf(stderr, "%s: leak: %ld blocks, %lld bytes, %ld size errors\n", what, ta.live_blocks,
                ta.live_bytes, ta.size_errors);
        CHECK(test_alloc_clean(&ta));
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_alloc_init(&ta);
    A = &ta.alloc;
    init_contents();
    unsigned long ops = env_ops(3000);

    const cap_lock_hooks_t *variants[2] = {cap_lock_pthread(), NULL};
    const char *names[2] = {"pthread locks", "built-in spin locks"};
    for (int v = 0; v < 2; v++) {
        cap_store_t *s = new_store(variants[v]);
        if (!s) continue;
        fprintf(stderr, "--- %s\n", names[v]);
        stress(names[v], s, ops);
        release_vs_sweep(s);
        settle_vs_writer(s);
        cap_store_free(s);
        leak_check(names[v]);
    }

    /* cap_store_new_host itself (libc allocator for the store; caps on ours). */
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new_host(&s), CAP_OK);
    if (s) {
        stress("cap_store_new_host", s, ops / 3 + 1);
        cap_store_free(s);
        leak_check("cap_store_new_host");
    }

    check_count += (int)atomic_load(&t_checks);
    check_failures += (int)atomic_load(&t_failures);
    return check_done("test_store_mt");
}
