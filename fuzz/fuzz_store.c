/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* libFuzzer target: the store under sequences of operations the input picks
 * (puts, promotes, copy-on-write edits, set_instance with Refs that may form
 * cycles, releases, bounded and full sweeps, settles, edits that fail, and
 * with a memory backend attached: flushes, trims under a small budget, pins;
 * batched puts, lookups and membership checks, against the single calls).
 *
 * The store runs with CAP_STORE_VERIFY, so every blob must hash to its key.
 * Checked after every operation (abort() on a violation):
 *   - iter_blobs and iter_blobs_sorted list blob_count blobs, the sorted one
 *     in strictly increasing order, each frozen and hashing to its key, and
 *     contains_blob / get_blob agree with the listing;
 *   - every handle the test holds has a strong count of at least 2 while
 *     its entry is in the store (ours and the store's), and get_instance
 *     either returns its cap or reports it missing (settled away);
 *   - a failed operation left both counts as they were; a sweep leaves
 *     nothing for a second sweep; a settle of a Ref yields a hash that is in
 *     the store when the cap moved to the blob tier;
 *   - nothing is lost: every blob ever published (put, or graduated by a
 *     settle) still exists, in memory or in the backend, however trims
 *     dropped blobs, and a pinned blob stays in memory.
 * At the end every handle is released and the store freed: nothing may be
 * left allocated (cycles included, which the store's free breaks). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/capstore.h"
#include "capstore/persist.h"
#include "fuzz_alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HANDLES 8
#define HASHES 8
#define MAX_OPS 64
#define PUBLISHED 32 /* the most recent blobs published, which must never be lost */
#define PINS 4

static void violated(const char *what)
{
    fprintf(stderr, "fuzz_store: property violated: %s\n", what);
    abort();
}

/* The input, read a byte at a time (0 once it is used up). */
typedef struct input {
    const uint8_t *p;
    size_t n;
} input_t;

static unsigned next(input_t *in)
{
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

typedef struct world {
    cap_store_t *s;
    cap_backend_t *backend; /* attached by an operation, freed after the store */
    cap_ref_t *h[HANDLES];
    cap_hash_t hash[HASHES]; /* blob hashes seen (put, settled), or made up */
    cap_hash_t published[PUBLISHED];
    unsigned npublished;     /* ever; the last PUBLISHED are checked */
    cap_hash_t pinned[PINS];
    unsigned npinned;
} world_t;

static void note_published(world_t *w, const cap_hash_t *h)
{
    w->published[w->npublished++ % PUBLISHED] = *h;
}

static void make_hash(cap_hash_t *h, unsigned seed)
{
    memset(h->bytes, 0, sizeof h->bytes);
    h->bytes[0] = (uint8_t)(seed | 1u); /* never the zero hash */
    h->bytes[31] = (uint8_t)(seed >> 1);
}

/* A slot target the byte `b` picks: a Ref to a held handle (odd b, when
 * that handle is held) or a hash from the pool. */
static cap_target_t pick_target(world_t *w, unsigned b)
{
    cap_ref_t *r = w->h[(b >> 1) % HANDLES];
    return (b & 1) && r ? cap_target_of_ref(r) : cap_target_of_hash(&w->hash[(b >> 1) % HASHES]);
}

/* A small CNode of the input's choosing: up to three slots, each a hash from
 * the pool or a Ref to a held handle. NULL if the allocator failed. */
static cap_t *make_cnode(world_t *w, input_t *in)
{
    cap_t *c = NULL;
    if (cap_cnode_new(&c, &fuzz_alloc, next(in) % 3) != CAP_OK) return NULL;
    unsigned n = next(in) % 4;
    for (unsigned i = 0; i < n; i++) {
        cap_target_t t = pick_target(w, next(in));
        int rc = cap_cnode_set(c, next(in) % 4, &t);
        if (rc != CAP_OK && rc != CAP_ESLOTRANGE) violated("cnode_set failed unexpectedly");
    }
    return c;
}

static void keep_handle(world_t *w, unsigned i, cap_ref_t *r)
{
    cap_ref_release(w->h[i % HANDLES]);
    w->h[i % HANDLES] = r;
}

static void check_blobs(world_t *w)
{
    size_t count = cap_store_blob_count(w->s), n = 0, m = 0;
    cap_blob_entry_t *all = NULL, *sorted = NULL;
    if (cap_store_iter_blobs(w->s, &all, &n) != CAP_OK) violated("iter_blobs failed");
    if (cap_store_iter_blobs_sorted(w->s, &sorted, &m) != CAP_OK) violated("iter_blobs_sorted failed");
    if (n != count || m != count) violated("iter_blobs disagrees with blob_count");
    for (size_t i = 0; i < m; i++) {
        cap_hash_t h;
        if (i && memcmp(sorted[i - 1].hash.bytes, sorted[i].hash.bytes, 32) >= 0)
            violated("iter_blobs_sorted is not strictly increasing");
        if (!cap_is_frozen(sorted[i].cap)) violated("a blob is not frozen");
        if (cap_hash(sorted[i].cap, &h) != CAP_OK || memcmp(h.bytes, sorted[i].hash.bytes, 32) != 0)
            violated("a blob does not hash to its key");
        if (!cap_store_contains_blob(w->s, &sorted[i].hash)) violated("contains_blob misses a listed blob");
    }
    cap_store_blobs_free(w->s, all, n);
    cap_store_blobs_free(w->s, sorted, m);
    for (unsigned i = 0; i < HASHES; i++) {
        cap_t *c = NULL;
        int rc = cap_store_get_blob(w->s, &w->hash[i], &c);
        if ((rc == CAP_OK) != cap_store_contains_blob(w->s, &w->hash[i]))
            violated("get_blob and contains_blob disagree");
        if (rc != CAP_OK && (rc != CAP_EBLOBMISSING || c)) violated("get_blob failed oddly");
        cap_release(c);
    }
}

static void check_handles(world_t *w)
{
    for (unsigned i = 0; i < HANDLES; i++) {
        if (!w->h[i]) continue;
        cap_t *c = NULL;
        int rc = cap_store_get_instance(w->s, w->h[i], &c);
        if (rc == CAP_OK) {
            if (!c) violated("get_instance gave no cap");
            if (cap_ref_strong_count(w->h[i]) < 2) violated("a live entry's handle counts < 2");
        } else if (rc != CAP_EINSTANCEMISSING || c) {
            violated("get_instance failed oddly");
        }
        cap_release(c);
    }
}

/* Nothing published is lost; pinned blobs stay in memory. */
static void check_kept(world_t *w)
{
    unsigned k = w->npublished < PUBLISHED ? w->npublished : PUBLISHED;
    for (unsigned i = 0; i < k; i++)
        if (cap_store_exists(w->s, &w->published[i], NULL) != CAP_OK)
            violated("a published blob is lost");
    for (unsigned i = 0; i < w->npinned; i++)
        if (!cap_store_contains_blob(w->s, &w->pinned[i])) violated("a pinned blob left memory");
}

/* An edit that sets a slot, or fails halfway (after changing the copy). */
static int edit_cb(cap_t *c, void *arg)
{
    unsigned b = *(const unsigned *)arg;
    if (cap_kind(c) != CAP_KIND_CNODE) return CAP_EINVAL;
    cap_hash_t h;
    make_hash(&h, b);
    cap_target_t t = cap_target_of_hash(&h);
    int rc = cap_cnode_set(c, b % 4, &t);
    if (rc) return rc;
    return (b & 8) ? CAP_EINVAL : CAP_OK;
}

static void step(world_t *w, input_t *in)
{
    cap_store_t *s = w->s;
    unsigned op = next(in) % 20, a = next(in), b = next(in);
    size_t blobs = cap_store_blob_count(s), insts = cap_store_instance_count(s);
    int rc = CAP_OK;
    switch (op) {
    case 0: { /* put_cap of a settled CNode or a Type */
        cap_t *c = NULL;
        if (a & 1) {
            cap_hash_t chain;
            make_hash(&chain, b);
            rc = cap_type_new(&c, &fuzz_alloc, &chain);
        } else {
            c = make_cnode(w, in);
            rc = c ? CAP_OK : CAP_ENOMEM;
        }
        if (rc) violated("building a cap failed");
        cap_hash_t h;
        rc = cap_store_put_cap(s, c, &h);
        if (rc == CAP_OK) {
            w->hash[b % HASHES] = h;
            note_published(w, &h);
            if (!cap_store_contains_blob(s, &h)) violated("put_cap did not store the blob");
        } else if (rc != CAP_EUNSETTLED) {
            violated("put_cap failed unexpectedly");
        }
        cap_release(c);
        break;
    }
    case 1: { /* put_cap_with_hash under a claimed hash (verified: only the true one goes in) */
        cap_t *c = make_cnode(w, in);
        if (!c) violated("building a cap failed");
        cap_hash_t truth, claim = w->hash[a % HASHES];
        bool settled = cap_hash(c, &truth) == CAP_OK;
        if (b & 1 && settled) claim = truth;
        rc = cap_store_put_cap_with_hash(s, &claim, c);
        if (!settled && rc != CAP_EUNSETTLED) violated("an unsettled cap was not refused");
        if (settled && memcmp(claim.bytes, truth.bytes, 32) != 0 && rc != CAP_EMISMATCH)
            violated("a wrong claim was not refused");
        if (rc == CAP_OK) note_published(w, &claim);
        cap_release(c);
        break;
    }
    case 2: { /* put_instance */
        cap_t *c = make_cnode(w, in);
        if (!c) violated("building a cap failed");
        cap_ref_t *r = NULL;
        rc = cap_store_put_instance(s, c, &r);
        if (rc == CAP_OK) {
            if (!r || cap_ref_id(r) == 0) violated("put_instance gave no handle");
            keep_handle(w, a, r);
        }
        cap_release(c);
        break;
    }
    case 3: { /* promote */
        cap_ref_t *r = NULL;
        rc = cap_store_promote_blob_to_instance(s, &w->hash[a % HASHES], &r);
        if (rc == CAP_OK)
            keep_handle(w, b, r);
        else if (rc != CAP_EBLOBMISSING || r)
            violated("promote failed oddly");
        break;
    }
    case 4: { /* get_instance, make_mut, set a slot, set_instance (the seed's pattern) */
        cap_ref_t *r = w->h[a % HANDLES];
        cap_t *c = NULL;
        if (!r) break;
        rc = cap_store_get_instance(s, r, &c);
        if (rc != CAP_OK) break;
        if (cap_make_mut(&c) != CAP_OK) violated("make_mut failed");
        if (!cap_is_writable(c)) violated("make_mut gave a cap that is not writable");
        if (cap_kind(c) == CAP_KIND_CNODE) {
            cap_target_t t = pick_target(w, b);
            rc = cap_cnode_set(c, next(in) % 4, &t);
        }
        if (rc == CAP_OK) rc = cap_store_set_instance(s, r, c, NULL);
        cap_release(c);
        break;
    }
    case 5: /* drop a handle */
        keep_handle(w, a, NULL);
        break;
    case 6: { /* sweep, bounded or not */
        size_t removed = 0, again = 0;
        bool more = false;
        if (a & 1) {
            rc = cap_store_sweep_budget(s, b % 4, &removed, &more);
            if (rc == CAP_OK && removed > b % 4) violated("a bounded sweep went over its budget");
        } else {
            rc = cap_store_sweep_instances(s, &removed);
            if (rc == CAP_OK && (cap_store_sweep_instances(s, &again) != CAP_OK || again))
                violated("a second sweep found more");
        }
        if (rc == CAP_OK && cap_store_instance_count(s) != insts - removed)
            violated("instance_count does not match what the sweep removed");
        break;
    }
    case 7: { /* settle a handle's graph */
        cap_ref_t *r = w->h[a % HANDLES];
        if (!r) break;
        cap_t *before = NULL;
        bool is_instance = cap_store_get_instance(s, r, &before) == CAP_OK &&
                           cap_kind(before) == CAP_KIND_INSTANCE;
        cap_release(before);
        cap_target_t t = cap_target_of_ref(r);
        cap_hash_t out;
        rc = cap_store_settle(s, &t, &out, NULL);
        if (rc == CAP_OK) {
            w->hash[b % HASHES] = out;
            if (!is_instance) note_published(w, &out);
            if (!is_instance && !cap_store_contains_blob(s, &out))
                violated("a settled cap is not in the blob tier");
        } else if (rc != CAP_ECYCLE && rc != CAP_EINSTANCEMISSING) {
            violated("settle failed unexpectedly");
        }
        break;
    }
    case 8: { /* settle of a hash: returned unchanged */
        cap_target_t t = cap_target_of_hash(&w->hash[a % HASHES]);
        cap_hash_t out;
        if (cap_store_settle(s, &t, &out, NULL) != CAP_OK ||
            memcmp(out.bytes, w->hash[a % HASHES].bytes, 32) != 0)
            violated("settle of a hash changed it");
        break;
    }
    case 9: { /* edit_instance, which may fail after changing its copy */
        cap_ref_t *r = w->h[a % HANDLES];
        if (!r) break;
        cap_t *before = NULL, *after = NULL;
        if (cap_store_get_instance(s, r, &before) != CAP_OK) break;
        rc = cap_store_edit_instance(s, r, edit_cb, &b, NULL);
        if (rc != CAP_OK) {
            if (cap_store_get_instance(s, r, &after) != CAP_OK || after != before)
                violated("a failed edit changed the entry");
            cap_release(after);
        }
        cap_release(before);
        break;
    }
    case 10: { /* set_instance with a fresh cap, which may hold Refs (even to itself) */
        cap_ref_t *r = w->h[a % HANDLES];
        if (!r) break;
        cap_t *c = make_cnode(w, in);
        if (!c) violated("building a cap failed");
        rc = cap_store_set_instance(s, r, c, NULL);
        if (rc != CAP_OK && rc != CAP_EINSTANCEMISSING) violated("set_instance failed unexpectedly");
        cap_release(c);
        break;
    }
    case 11: /* a made-up hash into the pool */
        make_hash(&w->hash[a % HASHES], b);
        break;
    case 12: /* attach a memory backend (once) */
        if (w->backend) break;
        if (cap_mem_backend_new(&fuzz_alloc, &w->backend) != CAP_OK) violated("mem backend");
        if (cap_store_add_backend(s, w->backend, NULL) != CAP_OK) violated("add_backend failed");
        break;
    case 13: { /* flush: afterwards every blob in memory is in the backend too */
        size_t written = 0;
        rc = cap_store_flush(s, &written, NULL);
        if (rc != CAP_OK) violated("flush failed");
        if (w->backend && cap_mem_backend_count(w->backend) < cap_store_blob_count(s))
            violated("a flush left blobs only in memory");
        break;
    }
    case 14: { /* a small budget, then a trim */
        size_t dropped = 0;
        cap_store_set_budget(s, (size_t)(a % 8) * 256);
        rc = cap_store_trim(s, &dropped);
        if (rc != CAP_OK) violated("trim failed");
        if (dropped && !w->backend) violated("a trim dropped blobs without a backend");
        if (cap_store_blob_count(s) != blobs - dropped) violated("blob_count does not match the trim");
        break;
    }
    case 15: { /* pin a published blob (fetching it back if a trim dropped it) */
        if (!w->npublished || w->npinned == PINS) break;
        unsigned k = w->npublished < PUBLISHED ? w->npublished : PUBLISHED;
        const cap_hash_t *h = &w->published[a % k];
        if (cap_store_pin(s, h, NULL) != CAP_OK) violated("pin of a published blob failed");
        w->pinned[w->npinned++] = *h;
        break;
    }
    case 17: { /* put_caps of a few caps (some may hold Refs: then nothing goes in) */
        cap_t *caps[4];
        cap_hash_t hs[4];
        bool was[4];
        unsigned n = 1 + a % 4, unsettled = 4;
        for (unsigned i = 0; i < n; i++) {
            caps[i] = (b >> i) & 1 && i ? cap_retain(caps[i - 1]) : make_cnode(w, in);
            if (!caps[i]) violated("building a cap failed");
            if (cap_hash(caps[i], &hs[i]) != CAP_OK) {
                if (unsettled == 4) unsettled = i;
            } else {
                was[i] = cap_store_contains_blob(s, &hs[i]);
            }
        }
        cap_hash_t got[4];
        cap_err_t err;
        rc = cap_store_put_caps(s, caps, n, got, &err);
        if (unsettled < 4) {
            if (rc != CAP_EUNSETTLED || !err.has_index || err.index != unsettled) violated("put_caps did not name the unsettled cap");
            for (unsigned i = 0; i < n; i++)
                if (i != unsettled && cap_hash(caps[i], &hs[i]) == CAP_OK && !was[i] &&
                    cap_store_contains_blob(s, &hs[i]))
                    violated("a refused put_caps published a cap");
        } else if (rc != CAP_OK) {
            violated("put_caps failed unexpectedly");
        } else {
            for (unsigned i = 0; i < n; i++) {
                if (memcmp(got[i].bytes, hs[i].bytes, 32) != 0) violated("put_caps gave a wrong hash");
                /* Stored; a trim that a later cap's insert set off may have
                 * dropped it from memory again (as n put_cap calls would). */
                if (cap_store_exists(s, &hs[i], NULL) != CAP_OK) violated("put_caps did not store a blob");
                if (!cap_is_frozen(caps[i])) violated("put_caps left a cap unfrozen");
                note_published(w, &hs[i]);
                w->hash[(b + i) % HASHES] = hs[i];
            }
        }
        for (unsigned i = 0; i < n; i++) cap_release(caps[i]);
        break;
    }
    case 18: { /* get_blobs and contains_blobs of the hash pool, duplicates included */
        cap_hash_t q[HASHES + 2];
        for (unsigned i = 0; i < HASHES; i++) q[i] = w->hash[(a + i) % HASHES];
        q[HASHES] = q[b % HASHES];
        q[HASHES + 1] = q[(b >> 3) % HASHES];
        cap_t *out[HASHES + 2];
        int codes[HASHES + 2];
        uint8_t bits[2];
        if (cap_store_contains_blobs(s, q, HASHES + 2, bits) != CAP_OK) violated("contains_blobs failed");
        for (unsigned i = 0; i < HASHES + 2; i++)
            if (((bits[i / 8] >> (i % 8)) & 1u) != cap_store_contains_blob(s, &q[i]))
                violated("contains_blobs disagrees with contains_blob");
        cap_store_get_blobs(s, q, HASHES + 2, out, codes, NULL);
        for (unsigned i = 0; i < HASHES + 2; i++) {
            cap_t *one = NULL;
            int single = cap_store_get_blob(s, &q[i], &one);
            if (codes[i] != single && codes[i] != CAP_ENOMEM && single != CAP_ENOMEM)
                violated("get_blobs disagrees with get_blob");
            if (codes[i] == CAP_OK && single == CAP_OK && out[i] != one)
                violated("get_blobs gave another cap than get_blob");
            if ((codes[i] == CAP_OK) != (out[i] != NULL)) violated("get_blobs' code and cap disagree");
            cap_release(one);
            cap_release(out[i]);
        }
        break;
    }
    default: { /* unpin */
        if (!w->npinned) break;
        unsigned k = a % w->npinned;
        if (cap_store_unpin(s, &w->pinned[k]) != CAP_OK) violated("unpin of a pinned blob failed");
        w->pinned[k] = w->pinned[--w->npinned];
        break;
    }
    }
    if (rc != CAP_OK && (cap_store_blob_count(s) != blobs || cap_store_instance_count(s) != insts))
        violated("a failed operation changed the counts");
    check_blobs(w);
    check_handles(w);
    check_kept(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input_t in = {data, size};
    world_t w;
    memset(&w, 0, sizeof w);
    fuzz_alloc_reset();
    for (unsigned i = 0; i < HASHES; i++) make_hash(&w.hash[i], i * 37u);
    cap_store_options_t opt;
    memset(&opt, 0, sizeof opt);
    opt.alloc = &fuzz_alloc;
    opt.hash_seed[0] = 0x243F6A8885A308D3ull;
    opt.hash_seed[1] = 0x13198A2E03707344ull;
    opt.flags = CAP_STORE_VERIFY;
    if (cap_store_new(&w.s, &opt) != CAP_OK) violated("cap_store_new failed");
    for (unsigned k = 0; k < MAX_OPS && in.n; k++) step(&w, &in);
    for (unsigned i = 0; i < HANDLES; i++) cap_ref_release(w.h[i]);
    cap_store_free(w.s);
    cap_backend_free(w.backend);
    if (fuzz_alloc_live()) violated("memory left after freeing the store");
    return 0;
}
