/* The blob tier: per-shard open-addressing tables (linear probing over a
 * byte array of tags, grown at 0.8 load, backward-shift deletion) keyed by
 * the cap hash. Keys are uniform digests, so the index is one multiply of
 * their first word with the store's seed: the top bits pick the shard, the
 * next ones the slot, the low ones the tag. Lookups probe the tags without
 * the lock (store_internal.h, blob_table_t). */
#include "capstore/persist.h"
#include "store/store_internal.h"

static size_t slot_index(uint64_t mix, unsigned log)
{
    return (size_t)((mix << STORE_SHARD_BITS) >> (64u - log));
}

static uint8_t slot_tag(uint64_t mix)
{
    return (uint8_t)(0x80u | (mix & 0x7fu));
}

static uint8_t tag_at(const blob_table_t *t, size_t i)
{
    return atomic_load_explicit((_Atomic uint8_t *)&t->tags[i], memory_order_relaxed);
}

static void set_tag(blob_table_t *t, size_t i, uint8_t v)
{
    atomic_store_explicit(&t->tags[i], v, memory_order_relaxed);
}

static size_t tags_bytes(unsigned log)
{
    return sizeof(blob_table_t) + ((size_t)1 << log);
}

static size_t slots_bytes(unsigned log)
{
    return ((size_t)1 << log) * sizeof(blob_slot_t);
}

/* Index of `h` in `t`, or SIZE_MAX (shard lock held). */
static size_t find_index(const blob_table_t *t, const cap_hash_t *h, uint64_t mix)
{
    size_t mask = ((size_t)1 << t->log) - 1;
    size_t i = slot_index(mix, t->log);
    uint8_t tag = slot_tag(mix);
    for (;;) {
        uint8_t v = tag_at(t, i);
        if (!v)
            return SIZE_MAX;
        if (v == tag && cap_memcmp(t->slots[i].key.bytes, h->bytes, 32) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

blob_slot_t *store_blob_find(store_shard_t *sh, const cap_hash_t *h, uint64_t mix)
{
    blob_table_t *t = store_blob_table(sh);
    if (!t)
        return (blob_slot_t *)0;
    size_t i = find_index(t, h, mix);
    return i == SIZE_MAX ? (blob_slot_t *)0 : &t->slots[i];
}

static void place(blob_table_t *t, const cap_hash_t *h, uint64_t mix, const blob_slot_t *src)
{
    size_t mask = ((size_t)1 << t->log) - 1;
    size_t i = slot_index(mix, t->log);
    while (tag_at(t, i))
        i = (i + 1) & mask;
    t->slots[i] = *src;
    t->slots[i].key = *h;
    set_tag(t, i, slot_tag(mix));
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
    if (!t->slots) {
        a->deallocate(a->ctx, t, tags_bytes(log));
        return CAP_ENOMEM;
    }
    t->log = log;
    t->retired = old;
    size_t n = (size_t)1 << log;
    for (size_t i = 0; i < n; i++)
        atomic_init(&t->tags[i], 0);
    if (old) {
        size_t old_n = (size_t)1 << old->log;
        for (size_t i = 0; i < old_n; i++)
            if (tag_at(old, i))
                place(t, &old->slots[i].key, store_blob_mix(s, &old->slots[i].key),
                      &old->slots[i]);
        /* Lock-free readers may still probe the old tags: they stay (on the
         * retired chain) until close. Its slots only lock holders read (a
         * reader may prefetch through the stale pointer, which is harmless;
         * it is left as it is, since readers load it without the lock). */
        a->deallocate(a->ctx, old->slots, slots_bytes(old->log));
    }
    atomic_store_explicit(&sh->table, t, memory_order_release);
    return CAP_OK;
}

void store_blob_insert_flags(cap_store_t *s, store_shard_t *sh, const cap_hash_t *h, uint64_t mix,
                             cap_t *c, unsigned flags)
{
    blob_slot_t v;
    v.cap = c;
    v.pins = 0;
    v.flags = (uint8_t)flags;
    place(store_blob_table(sh), h, mix, &v);
    sh->count++;
    atomic_fetch_add_explicit(&s->blob_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->blob_bytes, store_cap_bytes(c), memory_order_relaxed);
    if (flags & STORE_BLOB_DIRTY) {
        sh->dirty++;
        atomic_fetch_add_explicit(&s->dirty_count, 1, memory_order_relaxed);
    }
}

void store_blob_insert_new(cap_store_t *s, store_shard_t *sh, const cap_hash_t *h, uint64_t mix,
                           cap_t *c)
{
    store_blob_insert_flags(s, sh, h, mix, c, STORE_BLOB_DIRTY | STORE_BLOB_USED);
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

/* Backward-shift deletion (linear probing keeps no tombstones): every later
 * slot of the run whose home is not in (hole, j] moves into the hole. */
cap_t *store_blob_remove_at(cap_store_t *s, store_shard_t *sh, size_t i)
{
    blob_table_t *t = store_blob_table(sh);
    size_t mask = ((size_t)1 << t->log) - 1;
    blob_slot_t *slot = &t->slots[i];
    cap_t *c = slot->cap;
    if (slot->flags & STORE_BLOB_DIRTY) {
        sh->dirty--;
        atomic_fetch_sub_explicit(&s->dirty_count, 1, memory_order_relaxed);
    }
    atomic_fetch_sub_explicit(&s->blob_bytes, store_cap_bytes(c), memory_order_relaxed);
    atomic_fetch_sub_explicit(&s->blob_count, 1, memory_order_relaxed);
    sh->count--;
    write_begin(sh);
    size_t hole = i;
    for (size_t j = (i + 1) & mask; tag_at(t, j); j = (j + 1) & mask) {
        size_t home = slot_index(store_blob_mix(s, &t->slots[j].key), t->log);
        /* Stays if its home lies cyclically in (hole, j]. */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays)
            continue;
        set_tag(t, hole, tag_at(t, j));
        t->slots[hole] = t->slots[j];
        hole = j;
    }
    set_tag(t, hole, 0);
    t->slots[hole].cap = (cap_t *)0;
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
                atomic_fetch_sub_explicit(&s->blob_bytes, store_cap_bytes(t->slots[k].cap),
                                          memory_order_relaxed);
                cap_release(t->slots[k].cap);
            }
        }
        a->deallocate(a->ctx, t->slots, slots_bytes(t->log));
        while (t) {
            blob_table_t *older = t->retired;
            a->deallocate(a->ctx, t, tags_bytes(t->log));
            t = older;
        }
    }
}

/* Lookups ---------------------------------------------------------------------------------------- */

enum { PROBE_ABSENT, PROBE_CANDIDATE, PROBE_UNSURE };

/* Probe the tags without the lock. ABSENT is a linearizable miss (no
 * deletion overlapped the probe); CANDIDATE: `*ti` in `*tp` carries the tag
 * (the caller checks the key under the lock); UNSURE: ask under the lock.
 * A candidate's slot is prefetched, so that its cache miss overlaps the
 * lock. */
static inline __attribute__((always_inline)) int probe_unlocked(store_shard_t *sh, uint64_t mix,
                                                                 blob_table_t **tp, size_t *ti)
{
    uint32_t v = atomic_load_explicit(&sh->seq, memory_order_acquire);
    if (CAP_UNLIKELY(v & 1u))
        return PROBE_UNSURE;
    blob_table_t *t = atomic_load_explicit(&sh->table, memory_order_acquire);
    if (t) {
        size_t mask = ((size_t)1 << t->log) - 1;
        size_t i = slot_index(mix, t->log);
        uint8_t tag = slot_tag(mix);
        for (;;) {
            uint8_t x = tag_at(t, i);
            if (!x)
                break;
            if (x == tag) {
                /* Start the slot's cache miss now, to overlap the lock. It
                 * may name a retired table's freed slots: a prefetch never
                 * faults. */
                __builtin_prefetch(&t->slots[i]);
                *tp = t;
                *ti = i;
                return PROBE_CANDIDATE;
            }
            i = (i + 1) & mask;
        }
    }
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&sh->seq, memory_order_relaxed) != v)
        return PROBE_UNSURE;
    return PROBE_ABSENT;
}

/* The slot of `h` with the shard lock held, checking the lock-free probe's
 * candidate first (usually it is the one). */
static inline __attribute__((always_inline)) blob_slot_t *
find_locked(store_shard_t *sh, const cap_hash_t *h, uint64_t mix, int probe, blob_table_t *t,
            size_t i)
{
    if (probe == PROBE_CANDIDATE && store_blob_table(sh) == t && tag_at(t, i) == slot_tag(mix) &&
        cap_memcmp(t->slots[i].key.bytes, h->bytes, 32) == 0)
        return &t->slots[i];
    return store_blob_find(sh, h, mix);
}

int store_blob_get(cap_store_t *s, const cap_hash_t *h, cap_t **out, cap_err_t *err)
{
    if (!store_is_ready(s)) {
        /* An empty store: only a backend can have it (and then the tables
         * are needed to publish it). */
        if (!store_backend_count(s))
            goto missing;
        int rc = store_ensure_ready(s);
        if (rc)
            return store_fail(err, rc, rc == CAP_ENOMEM ? "out of memory" : "store closed");
    }
    uint64_t mix = store_blob_mix(s, h);
    store_shard_t *sh = store_shard(s, store_blob_shard(mix));
    blob_table_t *t = (blob_table_t *)0;
    size_t ti = 0;
    int probe = probe_unlocked(sh, mix, &t, &ti);
    if (probe == PROBE_ABSENT && !store_backend_count(s))
        goto missing;
    store_lock(s, sh->lock);
    blob_slot_t *b = find_locked(sh, h, mix, probe, t, ti);
    if (CAP_LIKELY(b != (blob_slot_t *)0)) {
        cap_t *c = cap_retain(b->cap);
        if (!(b->flags & STORE_BLOB_USED))
            b->flags |= STORE_BLOB_USED;
        store_unlock(s, sh->lock);
        *out = c;
        return CAP_OK;
    }
    if (store_backend_count(s))
        return store_fetch_locked(s, sh, h, mix, out, err);
    store_unlock(s, sh->lock);
missing:
    return store_fail(err, CAP_EBLOBMISSING, "in no tier and no backend");
}

int cap_store_get_blob(cap_store_t *s, const cap_hash_t *h, cap_t **out)
{
    if (!out)
        return CAP_EINVAL;
    *out = (cap_t *)0;
    if (!s || !h)
        return CAP_EINVAL;
    return store_blob_get(s, h, out, (cap_err_t *)0);
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
    blob_table_t *t = (blob_table_t *)0;
    size_t ti = 0;
    int probe = probe_unlocked(sh, mix, &t, &ti);
    if (probe == PROBE_ABSENT)
        return false;
    store_lock(s, sh->lock);
    bool found = find_locked(sh, h, mix, probe, t, ti) != (blob_slot_t *)0;
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
    if (!store_blob_find(sh, h, mix)) {
        rc = store_blob_reserve(s, sh, 1);
        if (rc == CAP_OK) {
            cap_freeze(c);
            store_blob_insert_flags(s, sh, h, mix, cap_retain(c), flags | STORE_BLOB_USED);
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
    bool present = store_blob_find(sh, h, mix) != (blob_slot_t *)0;
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
                    arr[k].hash = t->slots[j].key;
                    arr[k].cap = cap_retain(t->slots[j].cap);
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
