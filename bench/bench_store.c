/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Store workloads of spec/capstore.md section 6: publish, lookup_hit,
 * lookup_miss, promote_cow, sweep_chain, sweep_few, settle_tree, lookup_mt;
 * and the batch ones of issue 15: publish_batch and lookup_batch (the
 * publish caps and lookup_hit's order in groups of 16), settle_tree_mt
 * (settle_tree's graph on two threads: the caller and one worker).
 *
 * Every workload resets the generator with its own name, builds its inputs
 * untimed, and times only the operation named in the spec. The lookup and
 * promote workloads run on a store built exactly as `publish` builds it
 * (rebuilt, untimed, for each of them). All stores are in-memory host
 * stores (cap_store_new_host).
 *
 * lookup_mt: the generator is reset once with "lookup_mt"; thread 0's
 * shuffle is drawn first and thread 1's continues the same stream, each
 * shuffling the published hashes from their publish order (as the Rust
 * peer does). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "capstore/capstore.h"
#include "capstore/host.h"

/* Caps or lookups per call of the batch workloads. */
#define BENCH_BATCH 16

static int fail(const char *workload, const char *what, int rc)
{
    fprintf(stderr, "%s: %s failed: %s (%d)\n", workload, what, cap_strerror(rc), rc);
    return 1;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) fprintf(stderr, "bench: out of memory (%zu x %zu bytes)\n", n, size);
    return p;
}

static void release_caps(cap_t **caps, size_t n)
{
    if (!caps) return;
    for (size_t i = 0; i < n; i++) cap_release(caps[i]);
    free(caps);
}

/* The publish inputs: N CNodes, size_log 8, 16 distinct slots, each drawn as
 * below(256) (redrawn when taken) and then given a random hash. */
static int build_publish_caps(const char *workload, uint64_t n, cap_t ***out)
{
    const cap_alloc_t *a = cap_alloc_libc();
    bench_rng_t rng;
    bench_rng_reset(&rng, "publish");
    cap_t **caps = xcalloc((size_t)n, sizeof *caps);
    if (!caps) return 1;
    for (uint64_t i = 0; i < n; i++) {
        int rc = cap_cnode_new(&caps[i], a, 8);
        if (rc != CAP_OK) {
            release_caps(caps, (size_t)i);
            return fail(workload, "cap_cnode_new", rc);
        }
        while (cap_cnode_count(caps[i]) < 16) {
            uint32_t slot = (uint32_t)bench_rng_below(&rng, 256);
            cap_target_t cur;
            if (cap_cnode_get(caps[i], slot, &cur) == CAP_OK && cur.kind != CAP_TARGET_NONE) continue;
            cap_hash_t h;
            bench_rng_hash(&rng, h.bytes);
            cap_target_t t = cap_target_of_hash(&h);
            rc = cap_cnode_set(caps[i], slot, &t);
            if (rc != CAP_OK) {
                release_caps(caps, (size_t)i + 1);
                return fail(workload, "cap_cnode_set", rc);
            }
        }
    }
    *out = caps;
    return 0;
}

/* A fresh host store holding the publish workload's N blobs, and their
 * hashes in publish order (untimed). */
static int publish_store(const char *workload, uint64_t n, cap_store_t **out, cap_hash_t **hashes)
{
    cap_t **caps = NULL;
    if (build_publish_caps(workload, n, &caps)) return 1;
    cap_store_t *s = NULL;
    int rc = cap_store_new_host(&s);
    if (rc != CAP_OK) {
        release_caps(caps, (size_t)n);
        return fail(workload, "cap_store_new_host", rc);
    }
    cap_hash_t *hs = xcalloc((size_t)n, sizeof *hs);
    if (!hs) {
        release_caps(caps, (size_t)n);
        cap_store_free(s);
        return 1;
    }
    for (uint64_t i = 0; i < n; i++) {
        rc = cap_store_put_cap(s, caps[i], &hs[i]);
        if (rc != CAP_OK) {
            release_caps(caps, (size_t)n);
            cap_store_free(s);
            free(hs);
            return fail(workload, "cap_store_put_cap", rc);
        }
    }
    release_caps(caps, (size_t)n); /* the store keeps its references */
    *out = s;
    *hashes = hs;
    return 0;
}

static uint32_t *identity(uint64_t n)
{
    uint32_t *v = xcalloc((size_t)n, sizeof *v);
    if (v)
        for (uint64_t i = 0; i < n; i++) v[i] = (uint32_t)i;
    return v;
}

/* ---- publish ------------------------------------------------------------------------ */

int bench_publish(const bench_opts_t *o)
{
    uint64_t n = o->n;
    cap_t **caps = NULL;
    if (build_publish_caps("publish", n, &caps)) return 1;
    cap_store_t *s = NULL;
    int rc = cap_store_new_host(&s);
    if (rc != CAP_OK) {
        release_caps(caps, (size_t)n);
        return fail("publish", "cap_store_new_host", rc);
    }
    cap_hash_t *hs = xcalloc((size_t)n, sizeof *hs);
    if (!hs) {
        release_caps(caps, (size_t)n);
        cap_store_free(s);
        return 1;
    }
    int bad = CAP_OK;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        rc = cap_store_put_cap(s, caps[i], &hs[i]);
        if (rc != CAP_OK) bad = rc;
    }
    uint64_t t1 = bench_now_ns();
    int status = 0;
    if (bad != CAP_OK)
        status = fail("publish", "cap_store_put_cap", bad);
    else if (cap_store_blob_count(s) != n)
        status = fail("publish", "blob_count check", CAP_EINVAL);
    else
        bench_report(o, "publish", n, (double)(t1 - t0), "capstore");
    release_caps(caps, (size_t)n);
    free(hs);
    cap_store_free(s);
    return status;
}

/* ---- publish_batch ------------------------------------------------------------------------ */

/* The publish caps, put 16 at a time with cap_store_put_caps; per cap. */
int bench_publish_batch(const bench_opts_t *o)
{
    uint64_t n = o->n;
    cap_t **caps = NULL;
    if (build_publish_caps("publish_batch", n, &caps)) return 1;
    cap_store_t *s = NULL;
    int rc = cap_store_new_host(&s);
    if (rc != CAP_OK) {
        release_caps(caps, (size_t)n);
        return fail("publish_batch", "cap_store_new_host", rc);
    }
    cap_hash_t *hs = xcalloc((size_t)n, sizeof *hs);
    if (!hs) {
        release_caps(caps, (size_t)n);
        cap_store_free(s);
        return 1;
    }
    int bad = CAP_OK;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i += BENCH_BATCH) {
        size_t k = n - i < BENCH_BATCH ? (size_t)(n - i) : BENCH_BATCH;
        rc = cap_store_put_caps(s, &caps[i], k, &hs[i], NULL);
        if (rc != CAP_OK) bad = rc;
    }
    uint64_t t1 = bench_now_ns();
    int status = 0;
    if (bad != CAP_OK)
        status = fail("publish_batch", "cap_store_put_caps", bad);
    else if (cap_store_blob_count(s) != n)
        status = fail("publish_batch", "blob_count check", CAP_EINVAL);
    else
        bench_report(o, "publish_batch", n, (double)(t1 - t0), "capstore");
    release_caps(caps, (size_t)n);
    free(hs);
    cap_store_free(s);
    return status;
}

/* ---- lookup_hit / lookup_miss -------------------------------------------------------- */

/* get_blob of each key, taking and dropping the reference; how many hit.
 * The timed body of lookup_hit, lookup_miss and each lookup_mt thread. */
static uint64_t lookup_all(cap_store_t *s, const cap_hash_t *keys, uint64_t n)
{
    uint64_t found = 0;
    for (uint64_t i = 0; i < n; i++) {
        cap_t *c = NULL;
        if (cap_store_get_blob(s, &keys[i], &c) == CAP_OK) {
            found++;
            cap_release(c);
        }
    }
    return found;
}

int bench_lookup_hit(const bench_opts_t *o)
{
    uint64_t n = o->n;
    cap_store_t *s = NULL;
    cap_hash_t *hs = NULL;
    if (publish_store("lookup_hit", n, &s, &hs)) return 1;
    bench_rng_t rng;
    bench_rng_reset(&rng, "lookup_hit");
    uint32_t *order = identity(n);
    cap_hash_t *keys = xcalloc((size_t)n, sizeof *keys);
    if (!order || !keys) {
        free(order);
        free(keys);
        free(hs);
        cap_store_free(s);
        return 1;
    }
    bench_shuffle_u32(&rng, order, (size_t)n);
    for (uint64_t i = 0; i < n; i++) keys[i] = hs[order[i]];
    uint64_t t0 = bench_now_ns();
    uint64_t found = lookup_all(s, keys, n);
    uint64_t t1 = bench_now_ns();
    int status = 0;
    if (found != n)
        status = fail("lookup_hit", "every lookup hits", CAP_EBLOBMISSING);
    else
        bench_report(o, "lookup_hit", n, (double)(t1 - t0), "capstore");
    free(order);
    free(keys);
    free(hs);
    cap_store_free(s);
    return status;
}

int bench_lookup_miss(const bench_opts_t *o)
{
    uint64_t n = o->n;
    cap_store_t *s = NULL;
    cap_hash_t *hs = NULL;
    if (publish_store("lookup_miss", n, &s, &hs)) return 1;
    free(hs);
    bench_rng_t rng;
    bench_rng_reset(&rng, "lookup_miss");
    cap_hash_t *keys = xcalloc((size_t)n, sizeof *keys);
    if (!keys) {
        cap_store_free(s);
        return 1;
    }
    for (uint64_t i = 0; i < n; i++) bench_rng_hash(&rng, keys[i].bytes);
    uint64_t t0 = bench_now_ns();
    uint64_t found = lookup_all(s, keys, n);
    uint64_t t1 = bench_now_ns();
    int status = 0;
    if (found != 0)
        status = fail("lookup_miss", "every lookup misses", CAP_EINVAL);
    else
        bench_report(o, "lookup_miss", n, (double)(t1 - t0), "capstore");
    free(keys);
    cap_store_free(s);
    return status;
}

/* ---- lookup_batch -------------------------------------------------------------------------- */

/* lookup_hit's store and shuffled order, looked up 16 at a time with
 * cap_store_get_blobs; per lookup. */

int bench_lookup_batch(const bench_opts_t *o)
{
    uint64_t n = o->n;
    cap_store_t *s = NULL;
    cap_hash_t *hs = NULL;
    if (publish_store("lookup_batch", n, &s, &hs)) return 1;
    bench_rng_t rng;
    bench_rng_reset(&rng, "lookup_hit"); /* lookup_hit's order */
    uint32_t *order = identity(n);
    cap_hash_t *keys = xcalloc((size_t)n, sizeof *keys);
    if (!order || !keys) {
        free(order);
        free(keys);
        free(hs);
        cap_store_free(s);
        return 1;
    }
    bench_shuffle_u32(&rng, order, (size_t)n);
    for (uint64_t i = 0; i < n; i++) keys[i] = hs[order[i]];
    uint64_t found = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i += BENCH_BATCH) {
        size_t k = n - i < BENCH_BATCH ? (size_t)(n - i) : BENCH_BATCH;
        cap_t *out[BENCH_BATCH];
        if (cap_store_get_blobs(s, &keys[i], k, out, NULL, NULL) == CAP_OK) found += k;
        for (size_t j = 0; j < k; j++) cap_release(out[j]);
    }
    uint64_t t1 = bench_now_ns();
    int status = 0;
    if (found != n)
        status = fail("lookup_batch", "every lookup hits", CAP_EBLOBMISSING);
    else
        bench_report(o, "lookup_batch", n, (double)(t1 - t0), "capstore");
    free(order);
    free(keys);
    free(hs);
    cap_store_free(s);
    return status;
}

/* ---- promote_cow ---------------------------------------------------------------------- */

int bench_promote_cow(const bench_opts_t *o)
{
    uint64_t n = o->n;
    cap_store_t *s = NULL;
    cap_hash_t *hs = NULL;
    if (publish_store("promote_cow", n, &s, &hs)) return 1;
    bench_rng_t rng;
    bench_rng_reset(&rng, "promote_cow");
    uint32_t *order = identity(n);
    cap_hash_t *keys = xcalloc((size_t)n, sizeof *keys);
    uint32_t *slots = xcalloc((size_t)n, sizeof *slots);
    cap_hash_t *vals = xcalloc((size_t)n, sizeof *vals);
    int status = 0;
    if (!order || !keys || !slots || !vals) {
        status = 1;
        goto out;
    }
    bench_shuffle_u32(&rng, order, (size_t)n);
    for (uint64_t i = 0; i < n; i++) keys[i] = hs[order[i]];
    for (uint64_t i = 0; i < n; i++) {
        slots[i] = (uint32_t)bench_rng_below(&rng, 256);
        bench_rng_hash(&rng, vals[i].bytes);
    }
    size_t before = cap_store_instance_count(s);
    int bad = CAP_OK;
    const char *what = "";
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        cap_ref_t *r = NULL;
        cap_t *c = NULL;
        int rc = cap_store_promote_blob_to_instance(s, &keys[i], &r);
        if (rc != CAP_OK) {
            bad = rc;
            what = "promote_blob_to_instance";
            continue;
        }
        rc = cap_store_get_instance(s, r, &c);
        if (rc == CAP_OK) rc = cap_make_mut(&c);
        if (rc == CAP_OK) {
            cap_target_t t = cap_target_of_hash(&vals[i]);
            rc = cap_cnode_set(c, slots[i], &t);
        }
        if (rc == CAP_OK) rc = cap_store_set_instance(s, r, c, NULL);
        if (rc != CAP_OK) {
            bad = rc;
            what = "get_instance/make_mut/set/set_instance";
        }
        cap_release(c);
        cap_ref_release(r);
    }
    uint64_t t1 = bench_now_ns();
    if (bad != CAP_OK) {
        status = fail("promote_cow", what, bad);
        goto out;
    }
    if (cap_store_instance_count(s) != before + n) {
        status = fail("promote_cow", "instance_count check", CAP_EINVAL);
        goto out;
    }
    bench_report(o, "promote_cow", n, (double)(t1 - t0), "capstore");
    size_t removed = 0;
    cap_store_sweep_instances(s, &removed); /* untimed cleanup */
    if (removed != n || cap_store_instance_count(s) != 0)
        status = fail("promote_cow", "sweep afterwards", CAP_EINVAL);
out:
    free(order);
    free(keys);
    free(slots);
    free(vals);
    free(hs);
    cap_store_free(s);
    return status;
}

/* ---- sweep_chain ------------------------------------------------------------------------ */

int bench_sweep_chain(const bench_opts_t *o)
{
    uint64_t chains = o->n / 8 ? o->n / 8 : 1;
    const cap_alloc_t *a = cap_alloc_libc();
    cap_store_t *s = NULL;
    int rc = cap_store_new_host(&s);
    if (rc != CAP_OK) return fail("sweep_chain", "cap_store_new_host", rc);
    cap_ref_t **heads = xcalloc((size_t)chains, sizeof *heads);
    if (!heads) {
        cap_store_free(s);
        return 1;
    }
    for (uint64_t c = 0; c < chains; c++) {
        cap_ref_t *next = NULL;
        for (int l = 0; l < 8; l++) {
            cap_t *cn = NULL;
            rc = cap_cnode_new(&cn, a, 8);
            if (rc == CAP_OK && next) {
                cap_target_t t = cap_target_of_ref(next);
                rc = cap_cnode_set(cn, 0, &t);
            }
            cap_ref_release(next); /* the cnode holds it now */
            next = NULL;
            if (rc == CAP_OK) rc = cap_store_put_instance(s, cn, &next);
            cap_release(cn);
            if (rc != CAP_OK) {
                for (uint64_t k = 0; k < c; k++) cap_ref_release(heads[k]);
                free(heads);
                cap_store_free(s);
                return fail("sweep_chain", "building the chains", rc);
            }
        }
        heads[c] = next;
    }
    size_t before = cap_store_instance_count(s);
    size_t removed = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t c = 0; c < chains; c++) cap_ref_release(heads[c]);
    rc = cap_store_sweep_instances(s, &removed);
    uint64_t t1 = bench_now_ns();
    int status = 0;
    size_t gone = before - cap_store_instance_count(s);
    if (rc != CAP_OK)
        status = fail("sweep_chain", "cap_store_sweep_instances", rc);
    else if (gone != chains * 8 || removed != gone)
        status = fail("sweep_chain", "everything reclaimed", CAP_EINVAL);
    else
        bench_report(o, "sweep_chain", gone, (double)(t1 - t0), "capstore");
    free(heads);
    cap_store_free(s);
    return status;
}

/* ---- sweep_few ------------------------------------------------------------------------- */

int bench_sweep_few(const bench_opts_t *o)
{
    uint64_t n = o->n;
    const cap_alloc_t *a = cap_alloc_libc();
    cap_store_t *s = NULL;
    int rc = cap_store_new_host(&s);
    if (rc != CAP_OK) return fail("sweep_few", "cap_store_new_host", rc);
    cap_ref_t **live = xcalloc((size_t)n, sizeof *live);
    if (!live) {
        cap_store_free(s);
        return 1;
    }
    int status = 0;
    uint64_t nlive = 0;
    for (; nlive < n; nlive++) {
        cap_t *cn = NULL;
        rc = cap_cnode_new(&cn, a, 8);
        if (rc == CAP_OK) rc = cap_store_put_instance(s, cn, &live[nlive]);
        cap_release(cn);
        if (rc != CAP_OK) {
            status = fail("sweep_few", "building the live instances", rc);
            goto out;
        }
    }
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        cap_t *cn = NULL;
        cap_ref_t *r = NULL;
        rc = cap_cnode_new(&cn, a, 8);
        if (rc == CAP_OK) rc = cap_store_put_instance(s, cn, &r);
        cap_release(cn);
        cap_ref_release(r);
        if (rc != CAP_OK) {
            status = fail("sweep_few", "put_instance", rc);
            goto out;
        }
        size_t removed = 0;
        uint64_t t0 = bench_now_ns();
        rc = cap_store_sweep_instances(s, &removed);
        uint64_t t1 = bench_now_ns();
        total += t1 - t0;
        if (rc != CAP_OK || removed != 1) {
            status = fail("sweep_few", "one dead entry reclaimed per sweep", rc ? rc : CAP_EINVAL);
            goto out;
        }
    }
    if (cap_store_instance_count(s) != n) {
        status = fail("sweep_few", "instance_count check", CAP_EINVAL);
        goto out;
    }
    bench_report(o, "sweep_few", n, (double)total, "capstore");
out:
    for (uint64_t i = 0; i < nlive; i++) cap_ref_release(live[i]);
    free(live);
    cap_store_free(s);
    return status;
}

/* ---- settle_tree -------------------------------------------------------------------------- */

/* The settle_tree graph, settled on a store with `workers` (NULL: none);
 * reported as `name`. The generator is reset with "settle_tree" for both
 * workloads, so that settle_tree_mt settles the same graph. */
static int settle_tree_on(const bench_opts_t *o, const char *name, const cap_workers_t *workers)
{
    uint64_t n = o->n;
    const cap_alloc_t *a = cap_alloc_libc();
    bench_rng_t rng;
    bench_rng_reset(&rng, "settle_tree");
    /* The most full levels whose node count (4^levels - 1) / 3 is <= N. */
    unsigned levels = 1;
    while (levels < 31 && ((1ull << (2 * (levels + 1))) - 1) / 3 <= n) levels++;
    uint64_t total = ((1ull << (2 * levels)) - 1) / 3;
    uint64_t width = 1ull << (2 * (levels - 1));
    cap_store_t *s = NULL;
    cap_store_options_t so = cap_store_options_host();
    so.workers = workers;
    int rc = cap_store_new(&s, &so);
    if (rc != CAP_OK) return fail(name, "cap_store_new", rc);
    cap_ref_t **layer = xcalloc((size_t)width, sizeof *layer);
    if (!layer) {
        cap_store_free(s);
        return 1;
    }
    int status = 0;
    for (uint64_t i = 0; i < width; i++) {
        cap_t *cn = NULL;
        cap_hash_t h;
        bench_rng_hash(&rng, h.bytes);
        cap_target_t t = cap_target_of_hash(&h);
        rc = cap_cnode_new(&cn, a, 2);
        if (rc == CAP_OK) rc = cap_cnode_set(cn, 0, &t);
        if (rc == CAP_OK) rc = cap_store_put_instance(s, cn, &layer[i]);
        cap_release(cn);
        if (rc != CAP_OK) {
            for (uint64_t k = 0; k < i; k++) cap_ref_release(layer[k]);
            status = fail(name, "building the leaves", rc);
            goto out;
        }
    }
    while (width > 1) {
        uint64_t up = width / 4;
        for (uint64_t i = 0; i < up; i++) {
            cap_t *cn = NULL;
            cap_ref_t *r = NULL;
            rc = cap_cnode_new(&cn, a, 2);
            for (uint32_t k = 0; k < 4 && rc == CAP_OK; k++) {
                cap_target_t t = cap_target_of_ref(layer[4 * i + k]);
                rc = cap_cnode_set(cn, k, &t);
            }
            if (rc == CAP_OK) rc = cap_store_put_instance(s, cn, &r);
            cap_release(cn);
            for (uint32_t k = 0; k < 4; k++) cap_ref_release(layer[4 * i + k]);
            layer[i] = r;
            if (rc != CAP_OK) {
                for (uint64_t k = 0; k < i; k++) cap_ref_release(layer[k]);
                for (uint64_t k = 4 * (i + 1); k < width; k++) cap_ref_release(layer[k]);
                status = fail(name, "building the inner nodes", rc);
                goto out;
            }
        }
        width = up;
    }
    cap_ref_t *root = layer[0];
    if (cap_store_instance_count(s) != total) {
        cap_ref_release(root);
        status = fail(name, "instance_count check", CAP_EINVAL);
        goto out;
    }
    cap_target_t t = cap_target_of_ref(root);
    cap_hash_t h;
    cap_err_t err;
    uint64_t t0 = bench_now_ns();
    rc = cap_store_settle(s, &t, &h, &err);
    uint64_t t1 = bench_now_ns();
    cap_ref_release(root);
    if (rc != CAP_OK)
        status = fail(name, "cap_store_settle", rc);
    else if (cap_store_instance_count(s) != 0 || cap_store_blob_count(s) != total)
        status = fail(name, "counts after settle", CAP_EINVAL);
    else
        bench_report(o, name, total, (double)(t1 - t0), "capstore");
out:
    free(layer);
    cap_store_free(s);
    return status;
}

int bench_settle_tree(const bench_opts_t *o)
{
    return settle_tree_on(o, "settle_tree", NULL);
}

/* Two threads in all: the caller and one worker. */
int bench_settle_tree_mt(const bench_opts_t *o)
{
    cap_workers_t *w = cap_host_workers_new(2);
    if (!w) {
        fprintf(stderr, "settle_tree_mt: cap_host_workers_new failed\n");
        return 1;
    }
    int status = settle_tree_on(o, "settle_tree_mt", w);
    cap_host_workers_free(w);
    return status;
}

/* ---- lookup_mt ------------------------------------------------------------------------------ */

typedef struct mt_arg {
    cap_store_t *s;
    const cap_hash_t *keys;
    uint64_t n;
    uint64_t found;
    pthread_barrier_t *start;
} mt_arg_t;

static void *lookup_thread(void *p)
{
    mt_arg_t *m = p;
    pthread_barrier_wait(m->start);
    m->found = lookup_all(m->s, m->keys, m->n);
    return NULL;
}

int bench_lookup_mt(const bench_opts_t *o)
{
    enum { THREADS = 2 };
    uint64_t n = o->n;
    cap_store_t *s = NULL;
    cap_hash_t *hs = NULL;
    if (publish_store("lookup_mt", n, &s, &hs)) return 1;
    bench_rng_t rng;
    bench_rng_reset(&rng, "lookup_mt");
    cap_hash_t *keys[THREADS] = {0};
    uint32_t *order = identity(n);
    int status = 0;
    if (!order) {
        status = 1;
        goto out;
    }
    for (int t = 0; t < THREADS; t++) {
        keys[t] = xcalloc((size_t)n, sizeof *keys[t]);
        if (!keys[t]) {
            status = 1;
            goto out;
        }
        for (uint64_t i = 0; i < n; i++) order[i] = (uint32_t)i; /* from publish order */
        bench_shuffle_u32(&rng, order, (size_t)n);                /* same stream, continued */
        for (uint64_t i = 0; i < n; i++) keys[t][i] = hs[order[i]];
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS + 1);
    mt_arg_t args[THREADS];
    pthread_t th[THREADS];
    int started = 0;
    for (int t = 0; t < THREADS; t++) {
        args[t] = (mt_arg_t){s, keys[t], n, 0, &start};
        if (pthread_create(&th[t], NULL, lookup_thread, &args[t]) != 0) break;
        started++;
    }
    if (started != THREADS) {
        /* Cannot happen in practice; release the barrier with dummy parties. */
        fprintf(stderr, "lookup_mt: pthread_create failed\n");
        abort();
    }
    pthread_barrier_wait(&start);
    uint64_t t0 = bench_now_ns();
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    uint64_t t1 = bench_now_ns();
    pthread_barrier_destroy(&start);
    uint64_t found = 0;
    for (int t = 0; t < THREADS; t++) found += args[t].found;
    if (found != THREADS * n)
        status = fail("lookup_mt", "every lookup hits", CAP_EBLOBMISSING);
    else
        bench_report(o, "lookup_mt", THREADS * n, (double)(t1 - t0), "capstore");
out:
    for (int t = 0; t < THREADS; t++) free(keys[t]);
    free(order);
    free(hs);
    cap_store_free(s);
    return status;
}
