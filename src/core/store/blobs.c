/* The blob tier: per-shard open-addressing tables (linear probing over a
 * byte array of tags, grown at 0.8 load) keyed by the cap hash. Keys are
 * uniform digests, so the index is one multiply of their first word with the
 * store's seed: the top bits pick the shard, the next ones the slot, the low
 * ones the tag. */
#include "store/store_internal.h"

static size_t slot_index(uint64_t mix, unsigned log)
{
    return (size_t)((mix << STORE_SHARD_BITS) >> (64u - log));
}

static uint8_t slot_tag(uint64_t mix)
{
    return (uint8_t)(0x80u | (mix & 0x7fu));
}

static size_t table_bytes(unsigned log)
{
    return ((size_t)1 << log) * (1 + sizeof(blob_slot_t));
}

blob_slot_t *store_blob_find(store_shard_t *sh, const cap_hash_t *h, uint64_t mix)
{
    if (!sh->tags)
        return (blob_slot_t *)0;
    size_t mask = ((size_t)1 << sh->log) - 1;
    size_t i = slot_index(mix, sh->log);
    uint8_t tag = slot_tag(mix);
    for (;;) {
        uint8_t t = sh->tags[i];
        if (!t)
            return (blob_slot_t *)0;
        if (t == tag && cap_memcmp(sh->slots[i].key.bytes, h->bytes, 32) == 0)
            return &sh->slots[i];
        i = (i + 1) & mask;
    }
}

static void place(uint8_t *tags, blob_slot_t *slots, unsigned log, const cap_hash_t *h,
                  uint64_t mix, cap_t *c)
{
    size_t mask = ((size_t)1 << log) - 1;
    size_t i = slot_index(mix, log);
    while (tags[i])
        i = (i + 1) & mask;
    tags[i] = slot_tag(mix);
    slots[i].key = *h;
    slots[i].cap = c;
}

static bool fits(size_t n, unsigned log)
{
    return n * 5 <= (((size_t)1 << log) * 4);
}

bool store_blob_has_room(const store_shard_t *sh, size_t extra)
{
    size_t need = sh->count + extra;
    return need == 0 || (sh->tags && fits(need, sh->log));
}

int store_blob_reserve(const cap_store_t *s, store_shard_t *sh, size_t extra)
{
    size_t need = sh->count + extra;
    if (need == 0 || (sh->tags && fits(need, sh->log)))
        return CAP_OK;
    unsigned log = sh->tags ? sh->log + 1 : STORE_BLOB_MIN_LOG;
    while (!fits(need, log)) {
        if (log >= 40u)
            return CAP_ENOMEM;
        log++;
    }
    const cap_alloc_t *a = s->alloc;
    uint8_t *tags = a->allocate(a->ctx, table_bytes(log));
    if (!tags)
        return CAP_ENOMEM;
    /* log >= 4: the slots start 16-aligned after the tags. */
    blob_slot_t *slots = (blob_slot_t *)(void *)(tags + ((size_t)1 << log));
    cap_memset(tags, 0, (size_t)1 << log);
    if (sh->tags) {
        size_t old_n = (size_t)1 << sh->log;
        for (size_t i = 0; i < old_n; i++)
            if (sh->tags[i])
                place(tags, slots, log, &sh->slots[i].key, store_blob_mix(s, &sh->slots[i].key),
                      sh->slots[i].cap);
        a->deallocate(a->ctx, sh->tags, table_bytes(sh->log));
    }
    sh->tags = tags;
    sh->slots = slots;
    sh->log = log;
    return CAP_OK;
}

void store_blob_insert_new(cap_store_t *s, store_shard_t *sh, const cap_hash_t *h, uint64_t mix,
                           cap_t *c)
{
    place(sh->tags, sh->slots, sh->log, h, mix, c);
    sh->count++;
    atomic_fetch_add_explicit(&s->blob_count, 1, memory_order_relaxed);
}

void store_blobs_release_all(cap_store_t *s)
{
    const cap_alloc_t *a = s->alloc;
    for (unsigned i = 0; i < STORE_SHARDS; i++) {
        store_shard_t *sh = store_shard(s, i);
        store_lock(s, sh->lock);
        uint8_t *tags = sh->tags;
        blob_slot_t *slots = sh->slots;
        unsigned log = sh->log;
        size_t count = sh->count;
        sh->tags = (uint8_t *)0;
        sh->slots = (blob_slot_t *)0;
        sh->log = 0;
        sh->count = 0;
        atomic_fetch_sub_explicit(&s->blob_count, count, memory_order_relaxed);
        store_unlock(s, sh->lock);
        if (!tags)
            continue;
        size_t n = (size_t)1 << log;
        for (size_t k = 0; k < n; k++)
            if (tags[k])
                cap_release(slots[k].cap);
        a->deallocate(a->ctx, tags, table_bytes(log));
    }
}

/* Lookups ---------------------------------------------------------------------------------------- */

int cap_store_get_blob(cap_store_t *s, const cap_hash_t *h, cap_t **out)
{
    if (!out)
        return CAP_EINVAL;
    *out = (cap_t *)0;
    if (!s || !h)
        return CAP_EINVAL;
    if (!store_is_ready(s))
        return CAP_EBLOBMISSING;
    uint64_t mix = store_blob_mix(s, h);
    store_shard_t *sh = store_shard(s, store_blob_shard(mix));
    cap_t *c = (cap_t *)0;
    store_lock(s, sh->lock);
    blob_slot_t *b = store_blob_find(sh, h, mix);
    if (b)
        c = cap_retain(b->cap);
    store_unlock(s, sh->lock);
    if (!c)
        return CAP_EBLOBMISSING;
    *out = c;
    return CAP_OK;
}

bool cap_store_contains_blob(cap_store_t *s, const cap_hash_t *h)
{
    if (!s || !h || !store_is_ready(s))
        return false;
    uint64_t mix = store_blob_mix(s, h);
    store_shard_t *sh = store_shard(s, store_blob_shard(mix));
    store_lock(s, sh->lock);
    bool found = store_blob_find(sh, h, mix) != (blob_slot_t *)0;
    store_unlock(s, sh->lock);
    return found;
}

/* Puts ------------------------------------------------------------------------------------------- */

/* Insert `c` under `h` unless present; freezes `c` either way on success. */
static int insert_blob(cap_store_t *s, const cap_hash_t *h, cap_t *c)
{
    int rc = store_ensure_ready(s);
    if (rc)
        return rc;
    uint64_t mix = store_blob_mix(s, h);
    store_shard_t *sh = store_shard(s, store_blob_shard(mix));
    store_lock(s, sh->lock);
    if (!store_blob_find(sh, h, mix)) {
        rc = store_blob_reserve(s, sh, 1);
        if (rc == CAP_OK) {
            cap_freeze(c);
            store_blob_insert_new(s, sh, h, mix, cap_retain(c));
        }
    } else {
        cap_freeze(c);
    }
    store_unlock(s, sh->lock);
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
            store_shard_t *sh = store_shard(s, i);
            if (!sh->tags)
                continue;
            size_t cap_n = (size_t)1 << sh->log;
            for (size_t j = 0; j < cap_n; j++) {
                if (sh->tags[j]) {
                    arr[k].hash = sh->slots[j].key;
                    arr[k].cap = cap_retain(sh->slots[j].cap);
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
