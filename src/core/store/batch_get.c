/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Batched lookups: cap_store_get_blobs and cap_store_contains_blobs.
 *
 * One lookup is a chain of dependent cache misses: the tag word, then the
 * slot (fetched alongside the tags), then the cap's line for its key and
 * reference count. One at a time, each waits for the one before; here the
 * batch goes through the chain a stage at a time, every stage starting the
 * fetches of the next for the whole window before any result is used, so a
 * window's misses are in flight together. The probe is the lock-free one of
 * blobs.c (probe_lockfree), split at its loads; whatever it cannot answer
 * (a deletion overlapped, a store not yet set up) takes the single-lookup
 * path, and memory misses go to the backends as one batch (provider.c). */
#include "store/blob_table.h"

/* Lookups in flight together: enough to cover a DRAM miss with the others'
 * work, few enough that a window's lines stay in L1. */
#define WINDOW 16u

enum { L_PENDING, L_FOUND, L_ABSENT, L_UNSURE };

typedef struct look {
    blob_table_t *t;
    uint64_t mix;
    size_t at;    /* the candidate slot, SIZE_MAX: none */
    uint32_t seq; /* the shard's deletion count when the probe began */
    uint8_t state;
} look_t;

/* The first slot from the home one whose tag matches, or SIZE_MAX when an
 * empty slot comes first: the tag words alone, no slot read. */
static inline size_t first_tag_match(const blob_table_t *t, uint64_t mix)
{
    size_t at;
    PROBE_TAGS(t, mix, at, 1);
    return at;
}

/* Stage 1: the shard's state, and the fetch of the filter word, the tag
 * word and the home slot. */
static inline void stage_start(cap_store_t *s, const cap_hash_t *h, look_t *L)
{
    L->mix = store_blob_mix(s, h);
    L->at = SIZE_MAX;
    L->t = (blob_table_t *)0;
    store_shard_t *sh = store_shard(s, store_blob_shard(L->mix));
    L->seq = atomic_load_explicit(&sh->seq, memory_order_acquire);
    if (CAP_UNLIKELY(L->seq & 1u)) {
        L->state = L_UNSURE;
        return;
    }
    L->state = L_PENDING;
    blob_table_t *t = atomic_load_explicit(&sh->table, memory_order_acquire);
    L->t = t;
    if (!t)
        return;
    size_t home = slot_index(L->mix, t->log);
    __builtin_prefetch(&t->tags[home >> STORE_TAG_WORD_LOG]);
    __builtin_prefetch(&t->slots[home]);
}

/* Stage 2: the filter, then the tags; a candidate's slot is fetched if it
 * is not the home one. */
static inline void stage_tags(look_t *L)
{
    if (L->state != L_PENDING || !L->t)
        return;
    size_t at = first_tag_match(L->t, L->mix);
    L->at = at;
    if (at != SIZE_MAX && at != slot_index(L->mix, L->t->log))
        __builtin_prefetch(&L->t->slots[at]);
}

/* Stage 3: the candidate's mix, then the fetch of its cap's line. A tag
 * that matched by chance (one in 32768) moves the
 * candidate to the next matching tag, whose slot is fetched for another
 * round of this stage; returns whether the look needs one. */
static inline bool stage_slot(look_t *L)
{
    if (L->state != L_PENDING || L->at == SIZE_MAX)
        return false;
    const blob_table_t *t = L->t;
    if (CAP_UNLIKELY(slot_mix(&t->slots[L->at]) != L->mix)) {
        size_t at;
        PROBE_TAGS_FROM(t, L->at + 1, L->mix, at, 1);
        L->at = at;
        if (at != SIZE_MAX)
            __builtin_prefetch(&t->slots[at]);
        return at != SIZE_MAX;
    }
    /* Only fetched: the cap is dereferenced inside the read section. */
    __builtin_prefetch(store_slot_cap(&t->slots[L->at]), 1);
    return false;
}

/* Stage 4, inside a read section: the key check and the reference of a
 * candidate (blobs.c, probe_lockfree), or the deletion check of a miss. */
static inline void stage_finish(cap_store_t *s, const cap_hash_t *h, look_t *L, cap_t **out)
{
    if (L->state != L_PENDING)
        return;
    store_shard_t *sh = store_shard(s, store_blob_shard(L->mix));
    if (L->at != SIZE_MAX) {
        cap_t *c = (cap_t *)0;
        if (atomic_load_explicit(&sh->table, memory_order_seq_cst) == L->t)
            c = cap_if_key(&L->t->slots[L->at], h);
        if (!c) {
            L->state = L_UNSURE;
            return;
        }
        if (out) {
            atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed); /* cap_retain */
            *out = c;
            blob_mark_used(s, c);
        }
        L->state = L_FOUND;
        return;
    }
    atomic_thread_fence(memory_order_acquire);
    L->state = atomic_load_explicit(&sh->seq, memory_order_relaxed) == L->seq ? L_ABSENT : L_UNSURE;
}

/* One window of lookups: each look ends FOUND (out[i] set when `out`),
 * ABSENT or UNSURE. */
static void probe_window(cap_store_t *s, const cap_hash_t *h, size_t k, look_t *L, cap_t **out)
{
    for (size_t i = 0; i < k; i++)
        stage_start(s, &h[i], &L[i]);
    for (size_t i = 0; i < k; i++)
        stage_tags(&L[i]);
    bool again = false;
    for (size_t i = 0; i < k; i++)
        again |= stage_slot(&L[i]);
    while (again) { /* rare: chance tag matches */
        again = false;
        for (size_t i = 0; i < k; i++)
            again |= stage_slot(&L[i]);
    }
    _Atomic uint32_t *rd = store_read_enter(s);
    for (size_t i = 0; i < k; i++)
        stage_finish(s, &h[i], &L[i], out ? &out[i] : (cap_t **)0);
    store_read_exit(rd);
}

void store_batch_fail(store_batch_err_t *b, size_t i, int code, const cap_err_t *detail,
                      const cap_hash_t *h)
{
    if (i >= b->first)
        return;
    b->first = i;
    b->code = code;
    if (!b->err)
        return;
    if (detail) {
        *b->err = *detail;
        b->err->code = code;
    } else if (code == CAP_EBLOBMISSING) {
        store_missing(b->err, h);
    } else {
        cap_err_set(b->err, code, (const char *)0);
        cap_err_set_hash(b->err, h);
    }
    b->err->has_index = true; /* which item of the caller's array */
    b->err->index = i;
}

static void set_code(int *codes, size_t i, int code)
{
    if (codes)
        codes[i] = code;
}

int cap_store_get_blobs(cap_store_t *s, const cap_hash_t *hashes, size_t n, cap_t **out,
                        int *codes, cap_err_t *err)
{
    if (out)
        for (size_t i = 0; i < n; i++)
            out[i] = (cap_t *)0;
    if (!s || (n && (!hashes || !out))) {
        for (size_t i = 0; codes && i < n; i++)
            codes[i] = CAP_EINVAL;
        return store_fail(err, CAP_EINVAL, "NULL argument");
    }
    store_batch_err_t be = {err, SIZE_MAX, CAP_OK};
    if (err)
        cap_err_set(err, CAP_OK, (const char *)0);
    bool backends = store_backend_count(s) != 0;
    if (!store_is_ready(s)) {
        /* No tables yet: only a backend can have anything. */
        int rc = backends ? store_ensure_ready(s) : CAP_EBLOBMISSING;
        if (rc) {
            for (size_t i = 0; i < n; i++)
                set_code(codes, i, rc);
            if (n && rc == CAP_EBLOBMISSING)
                store_batch_fail(&be, 0, rc, (const cap_err_t *)0, &hashes[0]);
            else if (n)
                be.code = store_fail(err, rc, rc == CAP_ENOMEM ? "out of memory" : "store closed");
            return be.code;
        }
    }
    /* Memory misses for the backends: their indexes, gathered for one batch. */
    size_t *miss = (size_t *)0, nmiss = 0;
    if (backends) {
        miss = s->alloc->allocate(s->alloc->ctx, (n ? n : 1) * sizeof *miss);
        /* No memory for the list: each miss goes to the backends alone. */
    }
    look_t L[WINDOW];
    for (size_t base = 0; base < n; base += WINDOW) {
        size_t k = n - base < WINDOW ? n - base : WINDOW;
        probe_window(s, hashes + base, k, L, out + base);
        for (size_t j = 0; j < k; j++) {
            size_t i = base + j;
            if (L[j].state == L_FOUND) {
                set_code(codes, i, CAP_OK);
            } else if (L[j].state == L_ABSENT && !backends) {
                set_code(codes, i, CAP_EBLOBMISSING);
                store_batch_fail(&be, i, CAP_EBLOBMISSING, (const cap_err_t *)0, &hashes[i]);
            } else if (L[j].state == L_ABSENT && miss) {
                miss[nmiss++] = i;
            } else {
                /* Unsure, or a miss without the list: the single path. */
                cap_err_t e;
                int rc = store_blob_get(s, &hashes[i], &out[i], &e);
                set_code(codes, i, rc);
                if (rc)
                    store_batch_fail(&be, i, rc, &e, &hashes[i]);
            }
        }
    }
    if (nmiss)
        store_fetch_many(s, hashes, miss, nmiss, out, codes, &be);
    if (miss)
        s->alloc->deallocate(s->alloc->ctx, miss, (n ? n : 1) * sizeof *miss);
    return be.code;
}

int cap_store_contains_blobs(cap_store_t *s, const cap_hash_t *hashes, size_t n, uint8_t *bits)
{
    if (!s || (n && (!hashes || !bits)))
        return CAP_EINVAL;
    for (size_t i = 0; i < (n + 7) / 8; i++)
        bits[i] = 0;
    if (!store_is_ready(s))
        return CAP_OK;
    look_t L[WINDOW];
    for (size_t base = 0; base < n; base += WINDOW) {
        size_t k = n - base < WINDOW ? n - base : WINDOW;
        probe_window(s, hashes + base, k, L, (cap_t **)0);
        for (size_t j = 0; j < k; j++) {
            size_t i = base + j;
            bool found = L[j].state == L_FOUND;
            if (L[j].state == L_UNSURE)
                found = cap_store_contains_blob(s, &hashes[i]);
            if (found)
                bits[i / 8] |= (uint8_t)(1u << (i % 8));
        }
    }
    return CAP_OK;
}
