/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* cap_store_put_caps: n puts in one call.
 *
 * Hashing: cap_hash_many hashes the caps together, a tree level of every
 * CNode per SHA-256 batch, so the serial top of one CNode's tree runs beside
 * the others' and the kernel's lanes stay full; a large batch is cut into
 * parts for the store's workers.
 * Inserting: the caps are ordered by shard, every shard involved is locked
 * (in increasing index, the store's lock order) and each is visited once.
 * All or nothing: whatever can fail (room in the tables, a copy for a cap
 * keyed under another hash) is done under the locks before the first blob
 * is inserted, so a failure leaves nothing of the batch published. */
#include "capstore/persist.h"
#include "store/store_internal.h"

/* Batches up to this many caps need no allocation for their bookkeeping. */
#define SMALL 32u
/* Caps a hashing part takes at least, when the batch is cut for workers. */
#define HASH_PART_MIN 64u

enum { P_ABSENT = 1u, P_WRITTEN = 2u };

typedef struct put_batch {
    cap_store_t *s;
    cap_t *const *caps;
    size_t n;
    cap_hash_t *h;   /* n hashes */
    size_t *order;   /* indexes by shard */
    uint8_t *shard;  /* shard of each cap */
    uint8_t *state;  /* P_* */
    cap_t **copy;    /* a keyed copy to publish instead (NULL until needed) */
    size_t count[STORE_SHARDS]; /* caps per shard */
    size_t absent[STORE_SHARDS];
    uint64_t mask;   /* shards involved */
    /* Hashing parts. */
    size_t parts;
    _Atomic int rc;
} put_batch_t;

static void hash_part(void *p, size_t i)
{
    put_batch_t *B = p;
    size_t lo, hi;
    store_part_range(B->n, B->parts, i, &lo, &hi);
    int rc = cap_hash_many((const cap_t *const *)B->caps + lo, hi - lo, B->h + lo,
                           (cap_ref_hash_fn)0, (void *)0);
    if (rc) {
        int expect = CAP_OK;
        atomic_compare_exchange_strong_explicit(&B->rc, &expect, rc, memory_order_relaxed,
                                                memory_order_relaxed);
    }
}

static int hash_batch(put_batch_t *B)
{
    B->parts = store_parts(B->s, B->n, HASH_PART_MIN);
    atomic_init(&B->rc, CAP_OK);
    store_parallel(B->s, B->parts, hash_part, B);
    return atomic_load_explicit(&B->rc, memory_order_relaxed);
}

/* Counting sort of the indexes by shard. */
static void order_by_shard(put_batch_t *B)
{
    cap_store_t *s = B->s;
    size_t start[STORE_SHARDS];
    cap_memset(B->count, 0, sizeof B->count);
    B->mask = 0;
    for (size_t i = 0; i < B->n; i++) {
        uint64_t mix = store_blob_mix(s, &B->h[i]);
        unsigned k = store_blob_shard(mix);
        B->shard[i] = (uint8_t)k;
        B->count[k]++;
        B->mask |= (uint64_t)1 << k;
        store_blob_prefetch_unlocked(s, mix); /* the first pass under the locks probes it */
    }
    size_t at = 0;
    for (unsigned k = 0; k < STORE_SHARDS; k++) {
        start[k] = at;
        at += B->count[k];
    }
    for (size_t i = 0; i < B->n; i++)
        B->order[start[B->shard[i]]++] = i;
}

static void lock_mask(const cap_store_t *s, uint64_t mask)
{
    for (unsigned i = 0; i < STORE_SHARDS; i++)
        if (mask & ((uint64_t)1 << i))
            store_lock(s, store_shard(s, i)->lock);
}

static void unlock_mask(const cap_store_t *s, uint64_t mask)
{
    for (unsigned i = STORE_SHARDS; i-- > 0;)
        if (mask & ((uint64_t)1 << i))
            store_unlock(s, store_shard(s, i)->lock);
}

/* Under every lock: which caps are new, room for them, and a keyed copy
 * for each whose key another hash holds. Changes nothing visible; on
 * CAP_ENOMEM the caller unlocks and fails. */
static int prepare_locked(put_batch_t *B)
{
    cap_store_t *s = B->s;
    cap_memset(B->absent, 0, sizeof B->absent);
    for (size_t q = 0; q < B->n; q++) {
        size_t i = B->order[q];
        B->state[i] &= (uint8_t)~P_ABSENT;
        uint64_t mix = store_blob_mix(s, &B->h[i]);
        if (store_blob_find(store_shard(s, B->shard[i]), &B->h[i], mix) == SIZE_MAX) {
            B->state[i] |= P_ABSENT;
            B->absent[B->shard[i]]++;
        }
    }
    for (unsigned k = 0; k < STORE_SHARDS; k++) {
        if (!B->absent[k])
            continue;
        int rc = store_blob_reserve(s, store_shard(s, k), B->absent[k]);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < B->n; i++) {
        if (!(B->state[i] & P_ABSENT) || B->copy[i])
            continue;
        cap_t *c = B->caps[i];
        if (!cap_key_conflicts(c, &B->h[i])) {
            cap_freeze(c);
            if (CAP_LIKELY(cap_claim_key(c, &B->h[i])))
                continue;
        }
        /* Published elsewhere under another hash (a wrong unverified
         * claim): this blob gets its own copy, as store_keyed_ref does. */
        cap_t *d;
        int rc = cap_copy(c, &d);
        if (rc)
            return rc;
        cap_freeze(d);
        (void)cap_claim_key(d, &B->h[i]); /* private: cannot fail */
        B->copy[i] = d;
    }
    return CAP_OK;
}

/* Under every lock, after prepare_locked: insert what is new (nothing can
 * fail). A duplicate inside the batch finds its first occurrence. */
static bool apply_locked(put_batch_t *B)
{
    cap_store_t *s = B->s;
    store_blob_tally_t tally = {0, 0, 0};
    for (size_t q = 0; q < B->n; q++) {
        size_t i = B->order[q];
        if (q + 4 < B->n)
            store_blob_prefetch(s, store_blob_mix(s, &B->h[B->order[q + 4]]));
        cap_freeze(B->caps[i]);
        if (!(B->state[i] & P_ABSENT))
            continue;
        uint64_t mix = store_blob_mix(s, &B->h[i]);
        store_shard_t *sh = store_shard(s, B->shard[i]);
        if (store_blob_find(sh, &B->h[i], mix) != SIZE_MAX)
            continue; /* a duplicate of an earlier cap of the batch */
        cap_t *c = B->copy[i];
        if (c)
            B->copy[i] = (cap_t *)0; /* its reference passes to the table */
        else
            c = cap_retain(B->caps[i]);
        unsigned flags = STORE_BLOB_USED | (B->state[i] & P_WRITTEN ? 0u : STORE_BLOB_DIRTY);
        store_blob_insert_tallied_flags(sh, mix, c, flags, &tally);
    }
    store_blob_tally_add(s, &tally);
    return tally.count != 0;
}

/* Write-through: the caps not in memory now go to the writable backend in
 * one batch before anything is published (as put_cap does for one). */
static int write_through(put_batch_t *B, const cap_backend_t *wb, cap_err_t *err)
{
    cap_store_t *s = B->s;
    size_t k = 0;
    for (size_t i = 0; i < B->n; i++)
        if (!cap_store_contains_blob(s, &B->h[i]))
            k++;
    if (!k)
        return CAP_OK;
    const cap_alloc_t *a = s->alloc;
    size_t bytes = k * (sizeof(cap_t *) + sizeof(cap_hash_t));
    unsigned char *mem = a->allocate(a->ctx, bytes);
    if (!mem)
        return store_fail(err, CAP_ENOMEM, "out of memory");
    cap_t **caps = (cap_t **)(void *)mem;
    cap_hash_t *hs = (cap_hash_t *)(void *)(mem + k * sizeof(cap_t *));
    size_t m = 0;
    for (size_t i = 0; i < B->n && m < k; i++) {
        if (cap_store_contains_blob(s, &B->h[i]))
            continue;
        caps[m] = B->caps[i];
        hs[m++] = B->h[i];
        B->state[i] |= P_WRITTEN;
    }
    int rc = cap_persist_put_batch(wb, caps, hs, m, a, (cap_hash_t *)0, err);
    a->deallocate(a->ctx, mem, bytes);
    return rc;
}

/* Everything after the argument checks; fills `err` on failure. */
static int put_sorted(put_batch_t *B, cap_err_t *err)
{
    cap_store_t *s = B->s;
    int rc = hash_batch(B);
    if (rc)
        return store_fail(err, rc, rc == CAP_ENOMEM ? "out of memory" : "hashing failed");
    const cap_backend_t *wb = (cap_backend_t *)0;
    if (CAP_UNLIKELY(s->flags & CAP_STORE_WRITE_THROUGH))
        wb = store_writable_backend(s);
    if (wb && (rc = write_through(B, wb, err)) != CAP_OK)
        return rc;
    order_by_shard(B);
    lock_mask(s, B->mask);
    rc = prepare_locked(B);
    bool added = false;
    if (rc == CAP_OK)
        added = apply_locked(B);
    unlock_mask(s, B->mask);
    for (size_t i = 0; i < B->n; i++) { /* copies not published: a failure */
        cap_release(B->copy[i]);
        B->copy[i] = (cap_t *)0;
    }
    if (added)
        store_maybe_trim(s);
    return rc ? store_fail(err, rc, "out of memory") : CAP_OK;
}

static int fail_at(cap_err_t *err, int code, const char *what, size_t i)
{
    if (err) {
        cap_err_set(err, code, what);
        err->has_index = true;
        err->index = i;
        cap_err_add_detail(err, "caps[");
        cap_err_add_detail_u64(err, i);
        cap_err_add_detail(err, "]");
    }
    return code;
}

int cap_store_put_caps(cap_store_t *s, cap_t *const *caps, size_t n, cap_hash_t *hashes_out,
                       cap_err_t *err)
{
    if (!s || (n && !caps))
        return store_fail(err, CAP_EINVAL, "NULL argument");
    for (size_t i = 0; i < n; i++) {
        if (!caps[i])
            return fail_at(err, CAP_EINVAL, "NULL cap", i);
        if (cap_has_refs(caps[i]))
            return fail_at(err, CAP_EUNSETTLED, "the cap holds a Ref: settle first", i);
    }
    if (n == 0)
        return store_fail(err, CAP_OK, (const char *)0);
    int rc = store_ensure_ready(s);
    if (rc)
        return store_fail(err, rc, rc == CAP_ENOMEM ? "out of memory" : "store closed");
    put_batch_t B;
    B.s = s;
    B.caps = caps;
    B.n = n;
    /* Bookkeeping: on the stack for a small batch, else one block. */
    cap_hash_t h_small[SMALL];
    size_t order_small[SMALL];
    uint8_t shard_small[SMALL], state_small[SMALL];
    cap_t *copy_small[SMALL];
    size_t per = sizeof(size_t) + 2 + sizeof(cap_t *) + (hashes_out ? 0 : sizeof(cap_hash_t));
    size_t bytes = 0;
    unsigned char *mem = (unsigned char *)0;
    if (n <= SMALL) {
        B.h = hashes_out ? hashes_out : h_small;
        B.order = order_small;
        B.shard = shard_small;
        B.state = state_small;
        B.copy = copy_small;
    } else {
        if (n > SIZE_MAX / per)
            return store_fail(err, CAP_ENOMEM, "out of memory");
        bytes = n * per;
        mem = s->alloc->allocate(s->alloc->ctx, bytes);
        if (!mem)
            return store_fail(err, CAP_ENOMEM, "out of memory");
        unsigned char *p = mem;
        B.order = (size_t *)(void *)p;
        p += n * sizeof(size_t);
        B.copy = (cap_t **)(void *)p;
        p += n * sizeof(cap_t *);
        B.h = hashes_out ? hashes_out : (cap_hash_t *)(void *)p;
        p += hashes_out ? 0 : n * sizeof(cap_hash_t);
        B.shard = p;
        B.state = p + n;
    }
    for (size_t i = 0; i < n; i++) {
        B.state[i] = 0;
        B.copy[i] = (cap_t *)0;
    }
    rc = put_sorted(&B, err);
    if (mem)
        s->alloc->deallocate(s->alloc->ctx, mem, bytes);
    return rc ? rc : store_fail(err, CAP_OK, (const char *)0);
}
