/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The blob tier: per-shard open-addressing tables (linear probing over an
 * array of 16-bit tags, with a miss filter beside them, grown at 0.8 load,
 * backward-shift deletion) keyed by
 * the cap hash. Keys are uniform digests, so the index is one multiply of
 * their first word with the store's seed: the top bits pick the shard, the
 * next ones the slot, the low ones the tag. Lookups probe the tags without
 * the lock (store_internal.h, blob_table_t). */
#include "capstore/persist.h"
#include "store/store_internal.h"
#include "store/blob_table.h"

/* The table block: header, tags, miss filter. */
static size_t tags_bytes(unsigned log)
{
    return sizeof(blob_table_t) + ((size_t)1 << log) * 2u + filter_words(log) * sizeof(uint64_t);
}

static size_t slots_bytes(unsigned log)
{
    return ((size_t)1 << log) * sizeof(blob_slot_t);
}

static size_t meta_bytes(unsigned log)
{
    return ((size_t)1 << log) * sizeof(blob_meta_t);
}

/* Index of `h` in `t`, or SIZE_MAX (shard lock held). */
static size_t find_index(const blob_table_t *t, const cap_hash_t *h, uint64_t mix)
{
    size_t r = SIZE_MAX;
    if (filter_maybe(t, mix))
        PROBE_TAGS(t, mix, r, slot_mix(&t->slots[i]) == mix && key_is(&t->slots[i], h));
    return r;
}

size_t store_blob_find(store_shard_t *sh, const cap_hash_t *h, uint64_t mix)
{
    blob_table_t *t = store_blob_table(sh);
    if (!t)
        return SIZE_MAX;
    return find_index(t, h, mix);
}

/* Into the first empty slot of the probe run (shard lock held). */
static size_t place(blob_table_t *t, uint64_t mix, cap_t *c)
{
    size_t mask = ((size_t)1 << t->log) - 1;
    size_t i = slot_index(mix, t->log);
    while (tag_at(t, i))
        i = (i + 1) & mask;
    slot_set(&t->slots[i], mix, c);
    filter_add(t, mix); /* before the tag: a probe that finds the tag passes the filter */
    set_tag(t, i, slot_tag(mix));
    return i;
}

static bool fits(size_t n, unsigned log)
{
    return n * 5 <= (((size_t)1 << log) * 4);
}

bool store_blob_has_room(const store_shard_t *sh, size_t extra)
{
    size_t need = sh->count + extra;
    const blob_table_t *t = store_blob_table(sh);
    return need == 0 || (t && fits(need, t->log));
}

int store_blob_reserve(const cap_store_t *s, store_shard_t *sh, size_t extra)
{
    size_t need = sh->count + extra;
    blob_table_t *old = store_blob_table(sh);
    if (need == 0 || (old && fits(need, old->log)))
        return CAP_OK;
    unsigned log = old ? old->log + 1 : STORE_BLOB_MIN_LOG;
    while (!fits(need, log)) {
        if (log >= 40u)
            return CAP_ENOMEM;
        log++;
    }
    const cap_alloc_t *a = s->alloc;
    blob_table_t *t = a->allocate(a->ctx, tags_bytes(log));
    if (!t)
        return CAP_ENOMEM;
    t->slots = a->allocate(a->ctx, slots_bytes(log));
    t->meta = t->slots ? a->allocate(a->ctx, meta_bytes(log)) : (blob_meta_t *)0;
    if (!t->meta) {
        if (t->slots)
            a->deallocate(a->ctx, t->slots, slots_bytes(log));
        a->deallocate(a->ctx, t, tags_bytes(log));
        return CAP_ENOMEM;
    }
    t->log = log;
    t->retired = old;
    t->removed = 0;
    size_t n = (size_t)1 << log;
    for (size_t i = 0; i < (n >> STORE_TAG_WORD_LOG) + filter_words(log); i++)
        atomic_init(&t->tags[i], 0); /* tags and filter */
    for (size_t i = 0; i < n; i++) {
        atomic_init(&t->slots[i].mix, 0);
        atomic_init(&t->slots[i].cap, (cap_t *)0);
    }
    if (old) {
        size_t old_n = (size_t)1 << old->log;
        for (size_t i = 0; i < old_n; i++) {
            if (tag_at(old, i)) {
                size_t j = place(t, slot_mix(&old->slots[i]), store_slot_cap(&old->slots[i]));
                t->meta[j] = old->meta[i];
            }
        }
        /* Lock-free readers may still probe the old tags and slots: they stay
         * (on the retired chain) until close. Its metadata only lock holders
         * read. */
        a->deallocate(a->ctx, old->meta, meta_bytes(old->log));
        old->meta = (blob_meta_t *)0;
    }
    atomic_store_explicit(&sh->table, t, memory_order_release);
    return CAP_OK;
}

static void insert_tally(store_shard_t *sh, uint64_t mix, cap_t *c, unsigned flags,
                         store_blob_tally_t *tally)
{
    blob_table_t *t = store_blob_table(sh);
    size_t i = place(t, mix, c);
    t->meta[i].pins = 0;
    t->meta[i].flags = (uint8_t)flags;
    sh->count++;
    tally->count++;
    tally->bytes += store_cap_bytes(c);
    if (flags & STORE_BLOB_DIRTY) {
        sh->dirty++;
        tally->dirty++;
    }
}

void store_blob_tally_add(cap_store_t *s, const store_blob_tally_t *tally)
{
    if (!tally->count)
        return;
    atomic_fetch_add_explicit(&s->blob_count, tally->count, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->blob_bytes, tally->bytes, memory_order_relaxed);
    if (tally->dirty)
        atomic_fetch_add_explicit(&s->dirty_count, tally->dirty, memory_order_relaxed);
}

void store_blob_insert_flags(cap_store_t *s, store_shard_t *sh, const cap_hash_t *h, uint64_t mix,
                             cap_t *c, unsigned flags)
{
    (void)h;
    store_blob_tally_t tally = {0, 0, 0};
    insert_tally(sh, mix, c, flags, &tally);
    store_blob_tally_add(s, &tally);
}

void store_blob_insert_new(cap_store_t *s, store_shard_t *sh, const cap_hash_t *h, uint64_t mix,
                           cap_t *c)
{
    store_blob_insert_flags(s, sh, h, mix, c, STORE_BLOB_DIRTY | STORE_BLOB_USED);
}

void store_blob_insert_tallied(cap_store_t *s, store_shard_t *sh, uint64_t mix, cap_t *c,
                               store_blob_tally_t *tally)
{
    (void)s;
    insert_tally(sh, mix, c, STORE_BLOB_DIRTY | STORE_BLOB_USED, tally);
}

void store_blob_insert_tallied_flags(store_shard_t *sh, uint64_t mix, cap_t *c, unsigned flags,
                                     store_blob_tally_t *tally)
{
    insert_tally(sh, mix, c, flags, tally);
}

void store_blob_prefetch(const cap_store_t *s, uint64_t mix)
{
    const blob_table_t *t = store_blob_table(store_shard(s, store_blob_shard(mix)));
    if (!t)
        return;
    size_t i = slot_index(mix, t->log);
    __builtin_prefetch(filter_word(t, mix));
    __builtin_prefetch(&t->tags[i >> STORE_TAG_WORD_LOG]);
    __builtin_prefetch(&t->slots[i], 1);
    if (t->meta)
        __builtin_prefetch(&t->meta[i], 1);
}

void store_blob_prefetch_unlocked(const cap_store_t *s, uint64_t mix)
{
    store_shard_t *sh = store_shard(s, store_blob_shard(mix));
    /* Acquire: the table's fields were written before it was published,
     * and log and slots never change after (meta may: not fetched). */
    const blob_table_t *t = atomic_load_explicit(&sh->table, memory_order_acquire);
    if (!t)
        return;
    size_t i = slot_index(mix, t->log);
    __builtin_prefetch(filter_word(t, mix));
    __builtin_prefetch(&t->tags[i >> STORE_TAG_WORD_LOG]);
    __builtin_prefetch(&t->slots[i]);
}

int store_keyed_ref(cap_t *c, const cap_hash_t *h, cap_t **out)
{
    if (!cap_key_conflicts(c, h)) {
        cap_freeze(c);
        if (CAP_LIKELY(cap_claim_key(c, h))) {
            *out = cap_retain(c);
            return CAP_OK;
        }
    }
    /* Published elsewhere under another hash (a wrong unverified claim):
     * this blob gets its own copy. */
    cap_t *d;
    int rc = cap_copy(c, &d);
    if (rc)
        return rc;
    cap_freeze(c);
    cap_freeze(d);
    (void)cap_claim_key(d, h); /* private: cannot fail */
    *out = d;
    return CAP_OK;
}

/* Seqlock bracket for changes that move tags (shard lock held): readers
 * that overlap one discard what they saw. */
static void write_begin(store_shard_t *sh)
{
    uint32_t v = atomic_load_explicit(&sh->seq, memory_order_relaxed);
    atomic_store_explicit(&sh->seq, v + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void write_end(store_shard_t *sh)
{
    uint32_t v = atomic_load_explicit(&sh->seq, memory_order_relaxed);
    atomic_store_explicit(&sh->seq, v + 1, memory_order_release);
}

static void filter_rebuild(blob_table_t *t)
{
    _Atomic uint64_t *f = table_filter(t);
    size_t n = (size_t)1 << t->log;
    for (size_t i = 0; i < filter_words(t->log); i++)
        atomic_store_explicit(&f[i], 0, memory_order_relaxed);
    for (size_t i = 0; i < n; i++)
        if (tag_at(t, i))
            filter_add(t, slot_mix(&t->slots[i]));
    t->removed = 0;
}

/* Backward-shift deletion (linear probing keeps no tombstones): every later
 * slot of the run whose home is not in (hole, j] moves into the hole. */
cap_t *store_blob_remove_at(cap_store_t *s, store_shard_t *sh, size_t i)
{
    blob_table_t *t = store_blob_table(sh);
    size_t mask = ((size_t)1 << t->log) - 1;
    cap_t *c = store_slot_cap(&t->slots[i]);
    if (t->meta[i].flags & STORE_BLOB_DIRTY) {
        sh->dirty--;
        atomic_fetch_sub_explicit(&s->dirty_count, 1, memory_order_relaxed);
    }
    atomic_fetch_sub_explicit(&s->blob_bytes, store_cap_bytes(c), memory_order_relaxed);
    atomic_fetch_sub_explicit(&s->blob_count, 1, memory_order_relaxed);
    sh->count--;
    write_begin(sh);
    size_t hole = i;
    for (size_t j = (i + 1) & mask; tag_at(t, j); j = (j + 1) & mask) {
        uint64_t mix = slot_mix(&t->slots[j]);
        size_t home = slot_index(mix, t->log);
        /* Stays if its home lies cyclically in (hole, j]. */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays)
            continue;
        set_tag(t, hole, tag_at(t, j));
        slot_set(&t->slots[hole], mix, store_slot_cap(&t->slots[j]));
        t->meta[hole] = t->meta[j];
        hole = j;
    }
    set_tag(t, hole, 0);
    slot_set(&t->slots[hole], 0, (cap_t *)0);
    /* The filter keeps the removed key's bits; once deletions reach a
     * quarter of the slots, rebuild it from the keys present (inside the
     * bracket: a miss the filter answered meanwhile is retried). */
    if (++t->removed > ((size_t)1 << t->log) / 4)
        filter_rebuild(t);
    write_end(sh);
    return c;
}

void store_blobs_release_all(cap_store_t *s)
{
    const cap_alloc_t *a = s->alloc;
    for (unsigned i = 0; i < STORE_SHARDS; i++) {
        store_shard_t *sh = store_shard(s, i);
        store_lock(s, sh->lock);
        blob_table_t *t = store_blob_table(sh);
        size_t count = sh->count;
        write_begin(sh);
        atomic_store_explicit(&sh->table, (blob_table_t *)0, memory_order_relaxed);
        write_end(sh);
        sh->count = 0;
        atomic_fetch_sub_explicit(&s->dirty_count, sh->dirty, memory_order_relaxed);
        sh->dirty = 0;
        atomic_fetch_sub_explicit(&s->blob_count, count, memory_order_relaxed);
        store_unlock(s, sh->lock);
        if (!t)
            continue;
        size_t n = (size_t)1 << t->log;
        for (size_t k = 0; k < n; k++) {
            if (tag_at(t, k)) {
                cap_t *c = store_slot_cap(&t->slots[k]);
                atomic_fetch_sub_explicit(&s->blob_bytes, store_cap_bytes(c), memory_order_relaxed);
                cap_release(c);
            }
        }
        a->deallocate(a->ctx, t->meta, meta_bytes(t->log));
        while (t) {
            blob_table_t *older = t->retired;
            a->deallocate(a->ctx, t->slots, slots_bytes(t->log));
            a->deallocate(a->ctx, t, tags_bytes(t->log));
            t = older;
        }
    }
}

/* Lookups ---------------------------------------------------------------------------------------- */

enum { PROBE_ABSENT, PROBE_FOUND, PROBE_UNSURE };

/* A lookup whose mix has these bits clear updates the store's miss_mode:
 * one in 16, so that a mix of hits and misses from several threads seldom
 * writes the header line they all read. */
#define MODE_SAMPLE(mix) ((((mix) >> 8) & 15u) == 0)

/* The step from a candidate slot to its cap, inside a read section: the
 * table must still be current once inside the section (a retired table's
 * slots may point at caps trimmed since). */
static inline __attribute__((always_inline)) int take_candidate(cap_store_t *s, store_shard_t *sh,
                                                                 blob_table_t *t, size_t at,
                                                                 const cap_hash_t *h, cap_t **out)
{
    _Atomic uint32_t *rd = store_read_enter(s);
    cap_t *c = (cap_t *)0;
    if (atomic_load_explicit(&sh->table, memory_order_seq_cst) == t)
        c = cap_if_key(&t->slots[at], h);
    if (c && out) {
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed); /* cap_retain */
        *out = c;
        blob_mark_used(s, c);
    }
    store_read_exit(rd);
    return c ? PROBE_FOUND : PROBE_UNSURE;
}

/* probe_lockfree while lookups mostly miss: the miss filter first, nothing
 * fetched ahead. Out of line, so that the probe of hits keeps its code. */
static __attribute__((noinline)) int probe_filter_first(cap_store_t *s, store_shard_t *sh,
                                                        const cap_hash_t *h, uint64_t mix,
                                                        cap_t **out)
{
    uint32_t v = atomic_load_explicit(&sh->seq, memory_order_acquire);
    if (CAP_UNLIKELY(v & 1u))
        return PROBE_UNSURE;
    blob_table_t *t = atomic_load_explicit(&sh->table, memory_order_acquire);
    size_t at = SIZE_MAX;
    if (t && filter_maybe(t, mix))
        PROBE_TAGS(t, mix, at, slot_mix(&t->slots[i]) == mix);
    if (at != SIZE_MAX) {
        int r = take_candidate(s, sh, t, at, h, out);
        if (MODE_SAMPLE(mix))
            atomic_store_explicit(&s->miss_mode, 0, memory_order_relaxed);
        return r;
    }
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&sh->seq, memory_order_relaxed) != v)
        return PROBE_UNSURE;
    return PROBE_ABSENT;
}

/* A lookup without the shard lock. PROBE_FOUND: `h` is there, and *out (if
 * `out` is not NULL) is a new reference to its cap; PROBE_ABSENT: a
 * linearizable miss (no deletion overlapped the probe); PROBE_UNSURE: ask
 * under the lock. Tables are never freed while the store is open, so the tags
 * and mixes are read freely; only the step from a slot to its cap runs in a
 * read section (readers.c), which keeps trim from freeing the cap before the
 * reference is taken, and a miss, which matches no mix, enters none.
 *
 * Two ways to probe, chosen by what sampled recent lookups found (the
 * store's miss_mode): while they hit, the home slot is fetched while the
 * tags are read, so a hit waits for one line of the table, not two; while
 * they miss, the miss filter is asked first (a line of an array half the
 * size of the tags) and nothing is fetched ahead (probe_filter_first, which
 * callers pick with probe_any). Asking the filter on every lookup cost hits
 * 12-14% (one more line to wait for before the read section's atomic);
 * fetching the slot ahead costs a miss the slot line. */
static inline __attribute__((always_inline)) int probe_lockfree(cap_store_t *s, store_shard_t *sh,
                                                                 const cap_hash_t *h, uint64_t mix,
                                                                 cap_t **out)
{
    uint32_t v = atomic_load_explicit(&sh->seq, memory_order_acquire);
    if (CAP_UNLIKELY(v & 1u))
        return PROBE_UNSURE;
    blob_table_t *t = atomic_load_explicit(&sh->table, memory_order_acquire);
    if (t) {
        size_t at;
        __builtin_prefetch(&t->slots[slot_index(mix, t->log)]);
        PROBE_TAGS(t, mix, at, slot_mix(&t->slots[i]) == mix);
        if (at != SIZE_MAX)
            return take_candidate(s, sh, t, at, h, out);
    }
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&sh->seq, memory_order_relaxed) != v)
        return PROBE_UNSURE;
    if (MODE_SAMPLE(mix))
        atomic_store_explicit(&s->miss_mode, 1, memory_order_relaxed);
    return PROBE_ABSENT;
}

/* The probe the store's miss_mode picks (read first, so that the probe of
 * hits keeps its code and registers). */
static inline __attribute__((always_inline)) int probe_any(cap_store_t *s, store_shard_t *sh,
                                                            const cap_hash_t *h, uint64_t mix,
                                                            cap_t **out)
{
    if (CAP_UNLIKELY(atomic_load_explicit(&s->miss_mode, memory_order_relaxed)))
        return probe_filter_first(s, sh, h, mix, out);
    return probe_lockfree(s, sh, h, mix, out);
}

/* What the lock-free probe could not answer: a store not yet set up (only
 * a backend can have anything then), a probe that overlapped a deletion,
 * or a miss for the backends. Apart from the fast path so that a plain hit
 * or miss saves no registers for it. */
static __attribute__((noinline)) int blob_get_slow(cap_store_t *s, const cap_hash_t *h,
                                                   cap_t **out, cap_err_t *err)
{
    if (!store_is_ready(s)) {
        if (!store_backend_count(s))
            goto missing;
        int rc = store_ensure_ready(s);
        if (rc)
            return store_fail(err, rc, rc == CAP_ENOMEM ? "out of memory" : "store closed");
    }
    uint64_t mix = store_blob_mix(s, h);
    store_shard_t *sh = store_shard(s, store_blob_shard(mix));
    store_lock(s, sh->lock);
    size_t i = store_blob_find(sh, h, mix);
    if (i != SIZE_MAX) {
        blob_table_t *t = store_blob_table(sh);
        cap_t *c = cap_retain(store_slot_cap(&t->slots[i]));
        if (atomic_load_explicit(&s->budget, memory_order_relaxed))
            t->meta[i].flags |= STORE_BLOB_USED;
        store_unlock(s, sh->lock);
        *out = c;
        return CAP_OK;
    }
    if (store_backend_count(s))
        return store_fetch_locked(s, sh, h, mix, out, err);
    store_unlock(s, sh->lock);
missing:
    return store_missing(err, h);
}

static inline __attribute__((always_inline)) int blob_get(cap_store_t *s, const cap_hash_t *h,
                                                          cap_t **out, cap_err_t *err)
{
    if (CAP_LIKELY(store_is_ready(s))) {
        uint64_t mix = store_blob_mix(s, h);
        int probe = probe_any(s, store_shard(s, store_blob_shard(mix)), h, mix, out);
        if (CAP_LIKELY(probe == PROBE_FOUND))
            return CAP_OK;
        if (probe == PROBE_ABSENT && CAP_LIKELY(!store_backend_count(s)))
            return store_missing(err, h);
    }
    return blob_get_slow(s, h, out, err);
}

int store_blob_get(cap_store_t *s, const cap_hash_t *h, cap_t **out, cap_err_t *err)
{
    return blob_get(s, h, out, err);
}

int cap_store_get_blob(cap_store_t *s, const cap_hash_t *h, cap_t **out)
{
    if (!out)
        return CAP_EINVAL;
    *out = (cap_t *)0;
    if (!s || !h)
        return CAP_EINVAL;
    return blob_get(s, h, out, (cap_err_t *)0);
}

int cap_store_fetch_blob(cap_store_t *s, const cap_hash_t *h, cap_t **out, cap_err_t *err)
{
    if (out)
        *out = (cap_t *)0;
    if (!s || !h || !out)
        return store_fail(err, CAP_EINVAL, "NULL argument");
    return store_blob_get(s, h, out, err);
}

bool cap_store_contains_blob(cap_store_t *s, const cap_hash_t *h)
{
    if (!s || !h || !store_is_ready(s))
        return false;
    uint64_t mix = store_blob_mix(s, h);
    store_shard_t *sh = store_shard(s, store_blob_shard(mix));
    int probe = probe_any(s, sh, h, mix, (cap_t **)0);
    if (probe != PROBE_UNSURE)
        return probe == PROBE_FOUND;
    store_lock(s, sh->lock);
    bool found = store_blob_find(sh, h, mix) != SIZE_MAX;
    store_unlock(s, sh->lock);
    return found;
}

/* Puts ------------------------------------------------------------------------------------------- */

/* Insert `c` under `h` unless present; freezes `c` either way on success.
 * `flags`: STORE_BLOB_DIRTY for a put not yet written. */
static int insert_locked_path(cap_store_t *s, const cap_hash_t *h, cap_t *c, unsigned flags,
                              bool *added)
{
    uint64_t mix = store_blob_mix(s, h);
    store_shard_t *sh = store_shard(s, store_blob_shard(mix));
    int rc = CAP_OK;
    store_lock(s, sh->lock);
    if (store_blob_find(sh, h, mix) == SIZE_MAX) {
        rc = store_blob_reserve(s, sh, 1);
        cap_t *k = (cap_t *)0;
        if (rc == CAP_OK)
            rc = store_keyed_ref(c, h, &k);
        if (rc == CAP_OK) {
            store_blob_insert_flags(s, sh, h, mix, k, flags | STORE_BLOB_USED);
            *added = true;
        }
    } else {
        cap_freeze(c);
    }
    store_unlock(s, sh->lock);
    return rc;
}

/* Write-through: a new blob is written to the first writable backend before
 * it is published; a failed write publishes nothing (the put returns the
 * backend's error), so the store never holds a blob the caller was told
 * failed. A blob already present is not written again. */
static int insert_write_through(cap_store_t *s, const cap_backend_t *wb, const cap_hash_t *h,
                                cap_t *c, bool *added)
{
    uint64_t mix = store_blob_mix(s, h);
    store_shard_t *sh = store_shard(s, store_blob_shard(mix));
    store_lock(s, sh->lock);
    bool present = store_blob_find(sh, h, mix) != SIZE_MAX;
    store_unlock(s, sh->lock);
    if (present) {
        cap_freeze(c);
        return CAP_OK;
    }
    cap_t *one[1] = {c};
    int rc = cap_persist_put_batch(wb, one, h, 1, s->alloc, (cap_hash_t *)0, (cap_err_t *)0);
    if (rc)
        return rc;
    return insert_locked_path(s, h, c, 0, added);
}

static int insert_blob(cap_store_t *s, const cap_hash_t *h, cap_t *c)
{
    int rc = store_ensure_ready(s);
    if (rc)
        return rc;
    bool added = false;
    const cap_backend_t *wb = (cap_backend_t *)0;
    if (CAP_UNLIKELY(s->flags & CAP_STORE_WRITE_THROUGH))
        wb = store_writable_backend(s);
    if (wb)
        rc = insert_write_through(s, wb, h, c, &added);
    else
        rc = insert_locked_path(s, h, c, STORE_BLOB_DIRTY, &added);
    if (added)
        store_maybe_trim(s);
    return rc;
}

int cap_store_put_cap(cap_store_t *s, cap_t *cap, cap_hash_t *out)
{
    if (!s || !cap)
        return CAP_EINVAL;
    cap_hash_t h;
    int rc = cap_hash(cap, &h);
    if (rc)
        return rc;
    rc = insert_blob(s, &h, cap);
    if (rc == CAP_OK && out)
        *out = h;
    return rc;
}

int cap_store_put_cap_with_hash(cap_store_t *s, const cap_hash_t *h, cap_t *cap)
{
    if (!s || !h || !cap)
        return CAP_EINVAL;
    if (cap_has_refs(cap))
        return CAP_EUNSETTLED;
#ifdef NDEBUG
    bool verify = (s->flags & CAP_STORE_VERIFY) != 0;
#else
    bool verify = true;
#endif
    if (verify) {
        cap_hash_t real;
        int rc = cap_hash(cap, &real);
        if (rc)
            return rc;
        if (cap_memcmp(real.bytes, h->bytes, 32) != 0)
            return CAP_EMISMATCH;
    }
    return insert_blob(s, h, cap);
}

/* Snapshots -------------------------------------------------------------------------------------- */

static void lock_all(const cap_store_t *s)
{
    for (unsigned i = 0; i < STORE_SHARDS; i++)
        store_lock(s, store_shard(s, i)->lock);
}

static void unlock_all(const cap_store_t *s)
{
    for (unsigned i = STORE_SHARDS; i-- > 0;)
        store_unlock(s, store_shard(s, i)->lock);
}

int cap_store_iter_blobs(cap_store_t *s, cap_blob_entry_t **out, size_t *n)
{
    if (out)
        *out = (cap_blob_entry_t *)0;
    if (n)
        *n = 0;
    if (!s || !out || !n)
        return CAP_EINVAL;
    if (!store_is_ready(s))
        return CAP_OK;
    const cap_alloc_t *a = s->alloc;
    for (;;) {
        /* Allocate exactly what the tier holds, outside the locks; recount
         * under every shard lock and retry if puts raced in between. */
        size_t want = atomic_load_explicit(&s->blob_count, memory_order_relaxed);
        cap_blob_entry_t *arr = (cap_blob_entry_t *)0;
        if (want) {
            arr = a->allocate(a->ctx, want * sizeof *arr);
            if (!arr)
                return CAP_ENOMEM;
        }
        lock_all(s);
        if (atomic_load_explicit(&s->blob_count, memory_order_relaxed) != want) {
            unlock_all(s);
            if (arr)
                a->deallocate(a->ctx, arr, want * sizeof *arr);
            continue;
        }
        size_t k = 0;
        for (unsigned i = 0; i < STORE_SHARDS && k < want; i++) {
            blob_table_t *t = store_blob_table(store_shard(s, i));
            size_t cap_n = store_table_size(t);
            for (size_t j = 0; j < cap_n; j++) {
                if (tag_at(t, j)) {
                    cap_t *c = store_slot_cap(&t->slots[j]);
                    arr[k].hash = c->key;
                    arr[k].cap = cap_retain(c);
                    k++;
                }
            }
        }
        unlock_all(s);
        *out = arr;
        *n = want;
        return CAP_OK;
    }
}

static int entry_cmp(const cap_blob_entry_t *x, const cap_blob_entry_t *y)
{
    return cap_memcmp(x->hash.bytes, y->hash.bytes, 32);
}

static void sift_down(cap_blob_entry_t *v, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && entry_cmp(&v[child], &v[child + 1]) < 0)
            child++;
        if (entry_cmp(&v[root], &v[child]) >= 0)
            return;
        cap_blob_entry_t t = v[root];
        v[root] = v[child];
        v[child] = t;
        root = child;
    }
}

/* In-place heap sort by hash bytes (no allocation, O(n log n)). */
static void sort_entries(cap_blob_entry_t *v, size_t n)
{
    if (n < 2)
        return;
    for (size_t i = n / 2; i-- > 0;)
        sift_down(v, i, n);
    for (size_t end = n - 1; end > 0; end--) {
        cap_blob_entry_t t = v[0];
        v[0] = v[end];
        v[end] = t;
        sift_down(v, 0, end);
    }
}

int cap_store_iter_blobs_sorted(cap_store_t *s, cap_blob_entry_t **out, size_t *n)
{
    int rc = cap_store_iter_blobs(s, out, n);
    if (rc == CAP_OK)
        sort_entries(*out, *n);
    return rc;
}

void cap_store_blobs_free(cap_store_t *s, cap_blob_entry_t *entries, size_t n)
{
    if (!s || !entries)
        return;
    for (size_t i = 0; i < n; i++)
        cap_release(entries[i].cap);
    s->alloc->deallocate(s->alloc->ctx, entries, n * sizeof *entries);
}
