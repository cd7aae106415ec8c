/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Blob retention: pins, the byte budget and trim.
 *
 * A blob may leave memory only if it can come back: a backend is attached
 * and the blob is clean (fetched from a backend, or written by a flush or a
 * write-through put). Among those, trim keeps what is pinned, referenced
 * from outside the store (a cap reference count above the store's own one),
 * or reachable from an instance entry (a mark pass over the instance tier,
 * then through the Hash children, as cap_for_each_child defines them, of
 * blobs in memory), and drops the rest in CLOCK order: a lookup sets a
 * blob's USED bit, the first pass clears it (a second chance), a later pass
 * drops it.
 *
 * Trim runs only when over the budget, one at a time, and drops down to 7/8
 * of it, so that the puts just past the budget do not each pay a mark pass;
 * when it cannot get under the budget, puts do not trim again until the
 * tier has grown by another eighth (or a flush, an unpin or a new backend
 * may have made blobs droppable). */
#include "store/store_internal.h"

/* Estimate ------------------------------------------------------------------------------------ */

size_t store_cap_bytes(const cap_t *c)
{
    size_t n = sizeof(struct cap) + sizeof(blob_slot_t) + sizeof(blob_meta_t) + 1;
    switch ((cap_kind_t)c->kind) {
    case CAP_KIND_CNODE:
        n += c->u.cnode.capacity * sizeof(cap_cnode_entry_t);
        break;
    case CAP_KIND_DATA: {
        const cap_data_body_t *d = &c->u.data;
        n += (size_t)d->page_capacity * sizeof(cap_page_t *);
        for (uint64_t i = 0; i < d->page_count; i++)
            if (d->pages[i])
                n += sizeof(cap_page_t) + d->pages[i]->size;
        break;
    }
    case CAP_KIND_INSTANCE: {
        const cap_instance_body_t *in = &c->u.instance;
        n += in->overlay_capacity * sizeof(cap_overlay_t);
        for (size_t i = 0; i < in->overlay_count; i++)
            n += in->overlays[i].len;
        break;
    }
    case CAP_KIND_IMAGE:
        n += c->u.image.block_size;
        break;
    default:
        break;
    }
    return n;
}

size_t cap_store_blob_bytes(cap_store_t *s)
{
    return s ? atomic_load_explicit(&s->blob_bytes, memory_order_relaxed) : 0;
}

void cap_store_set_budget(cap_store_t *s, size_t bytes)
{
    if (!s)
        return;
    atomic_store_explicit(&s->budget, bytes, memory_order_relaxed);
    atomic_store_explicit(&s->next_trim_at, 0, memory_order_relaxed);
}

/* Pins ----------------------------------------------------------------------------------------- */

int cap_store_pin(cap_store_t *s, const cap_hash_t *h, cap_err_t *err)
{
    if (!s || !h)
        return store_fail(err, CAP_EINVAL, "NULL argument");
    cap_t *c;
    int rc = store_blob_get(s, h, &c, err);
    if (rc)
        return rc;
    /* Our reference keeps the blob from being trimmed until it is pinned. */
    uint64_t mix = store_blob_mix(s, h);
    store_shard_t *sh = store_shard(s, store_blob_shard(mix));
    store_lock(s, sh->lock);
    size_t b = store_blob_find(sh, h, mix);
    blob_meta_t *m = b == SIZE_MAX ? (blob_meta_t *)0 : &store_blob_table(sh)->meta[b];
    if (!m)
        rc = CAP_EBLOBMISSING; /* only if the store was closed meanwhile */
    else if (m->pins == UINT32_MAX)
        rc = CAP_EINVAL;
    else
        m->pins++;
    store_unlock(s, sh->lock);
    cap_release(c);
    if (rc == CAP_EBLOBMISSING)
        return store_missing(err, h); /* only if the store was closed meanwhile */
    if (rc)
        return store_fail(err, rc, "too many pins");
    return store_fail(err, CAP_OK, (const char *)0);
}

int cap_store_unpin(cap_store_t *s, const cap_hash_t *h)
{
    if (!s || !h || !store_is_ready(s))
        return CAP_EINVAL;
    uint64_t mix = store_blob_mix(s, h);
    store_shard_t *sh = store_shard(s, store_blob_shard(mix));
    int rc = CAP_EINVAL;
    store_lock(s, sh->lock);
    size_t b = store_blob_find(sh, h, mix);
    blob_meta_t *m = b == SIZE_MAX ? (blob_meta_t *)0 : &store_blob_table(sh)->meta[b];
    if (m && m->pins) {
        m->pins--;
        rc = CAP_OK;
    }
    store_unlock(s, sh->lock);
    if (rc == CAP_OK)
        atomic_store_explicit(&s->next_trim_at, 0, memory_order_relaxed);
    return rc;
}

/* Mark: blobs reachable from the instance tier ------------------------------------------------ */

typedef struct hash_vec {
    cap_hash_t *v;
    size_t n, cap;
} hash_vec_t;

/* May run under a shard lock: it allocates, but calls no backend and
 * releases no cap. */
static int vec_push(const cap_alloc_t *a, hash_vec_t *w, const cap_hash_t *h)
{
    if (w->n == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 64;
        if (ncap > SIZE_MAX / sizeof(cap_hash_t))
            return CAP_ENOMEM;
        cap_hash_t *nv = cap_mem_realloc(a, w->v, w->cap * sizeof *nv, ncap * sizeof *nv);
        if (!nv)
            return CAP_ENOMEM;
        w->v = nv;
        w->cap = ncap;
    }
    w->v[w->n++] = *h;
    return CAP_OK;
}

typedef struct push_ctx {
    const cap_alloc_t *a;
    hash_vec_t *w;
} push_ctx_t;

static int push_child(void *arg, const cap_child_t *ch)
{
    const push_ctx_t *p = arg;
    if (ch->target.kind != CAP_TARGET_HASH)
        return CAP_OK; /* a Ref leads to an instance entry: marked from there */
    return vec_push(p->a, p->w, &ch->target.hash);
}

/* The Hash targets among the children of `c` (cap_for_each_child). */
static int push_targets(const cap_alloc_t *a, hash_vec_t *w, const cap_t *c)
{
    push_ctx_t p = {a, w};
    return cap_for_each_child(c, push_child, &p);
}

static int mark_reachable(cap_store_t *s)
{
    const cap_alloc_t *a = s->alloc;
    for (unsigned i = 0; i < STORE_SHARDS; i++) {
        store_shard_t *sh = store_shard(s, i);
        store_lock(s, sh->lock);
        blob_table_t *t = store_blob_table(sh);
        size_t slots = store_table_size(t);
        for (size_t j = 0; j < slots; j++)
            t->meta[j].flags &= (uint8_t)~STORE_BLOB_MARK;
        store_unlock(s, sh->lock);
    }
    hash_vec_t w = {(cap_hash_t *)0, 0, 0};
    int rc = CAP_OK;
    for (unsigned i = 0; i < STORE_SHARDS && rc == CAP_OK; i++) {
        store_shard_t *sh = store_shard(s, i);
        store_lock(s, sh->lock);
        for (store_entry_t *e = sh->head; e && rc == CAP_OK; e = e->next)
            if (e->cap)
                rc = push_targets(a, &w, e->cap);
        store_unlock(s, sh->lock);
    }
    while (rc == CAP_OK && w.n) {
        cap_hash_t h = w.v[--w.n];
        uint64_t mix = store_blob_mix(s, &h);
        store_shard_t *sh = store_shard(s, store_blob_shard(mix));
        store_lock(s, sh->lock);
        size_t b = store_blob_find(sh, &h, mix);
        blob_table_t *t = store_blob_table(sh);
        if (b != SIZE_MAX && !(t->meta[b].flags & STORE_BLOB_MARK)) {
            t->meta[b].flags |= STORE_BLOB_MARK;
            rc = push_targets(a, &w, store_slot_cap(&t->slots[b]));
        }
        store_unlock(s, sh->lock);
    }
    if (w.v)
        a->deallocate(a->ctx, w.v, w.cap * sizeof *w.v);
    return rc;
}

/* Sweep --------------------------------------------------------------------------------------- */

#define TRIM_BATCH 32

static bool droppable(blob_table_t *t, size_t i)
{
    blob_meta_t *b = &t->meta[i];
    if (b->pins || (b->flags & (STORE_BLOB_DIRTY | STORE_BLOB_MARK)))
        return false;
    /* Only the store's reference. A lock-free hit may take one right after
     * this check: it keeps a live cap (trim releases the store's reference
     * only after store_read_sync), and the blob leaves memory all the same. */
    cap_t *c = store_slot_cap(&t->slots[i]);
    if (atomic_load_explicit(&c->refs, memory_order_acquire) > 1)
        return false;
    bool hit = atomic_load_explicit(&c->flags, memory_order_relaxed) & CAP_FLAG_USED;
    if (hit || (b->flags & STORE_BLOB_USED)) { /* second chance */
        b->flags &= (uint8_t)~STORE_BLOB_USED;
        if (hit)
            atomic_fetch_and_explicit(&c->flags, ~(uint32_t)CAP_FLAG_USED, memory_order_relaxed);
        return false;
    }
    return true;
}

/* Visit one shard's slots in order, dropping until the tier is at `target`
 * bytes. Returns true once it is. Caps are released in batches, unlocked. */
static bool sweep_shard(cap_store_t *s, store_shard_t *sh, size_t target, size_t *dropped)
{
    size_t i = 0;
    for (;;) {
        cap_t *batch[TRIM_BATCH];
        unsigned nb = 0;
        bool reached = false, end = false;
        store_lock(s, sh->lock);
        blob_table_t *t = store_blob_table(sh); /* may have grown between batches */
        size_t slots = store_table_size(t);
        while (nb < TRIM_BATCH) {
            if (atomic_load_explicit(&s->blob_bytes, memory_order_relaxed) <= target) {
                reached = true;
                break;
            }
            if (i >= slots) {
                end = true;
                break;
            }
            if (store_table_used(t, i) && droppable(t, i))
                batch[nb++] = store_blob_remove_at(s, sh, i); /* another may move into i */
            else
                i++;
        }
        store_unlock(s, sh->lock);
        if (nb)
            store_read_sync(s); /* a lock-free hit may still be reading them */
        for (unsigned k = 0; k < nb; k++)
            cap_release(batch[k]);
        *dropped += nb;
        if (reached)
            return true;
        if (end)
            return false;
    }
}

static int trim(cap_store_t *s, size_t *dropped)
{
    *dropped = 0;
    size_t budget = atomic_load_explicit(&s->budget, memory_order_relaxed);
    if (!budget || !store_backend_count(s) || !store_is_ready(s))
        return CAP_OK;
    if (atomic_load_explicit(&s->blob_bytes, memory_order_relaxed) <= budget)
        return CAP_OK;
    uint32_t idle = 0;
    if (!atomic_compare_exchange_strong_explicit(&s->trim_busy, &idle, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        return CAP_OK; /* another trim is at work */
    int rc = mark_reachable(s);
    if (rc == CAP_OK) {
        size_t target = budget - budget / 8;
        bool reached = false;
        for (unsigned pass = 0; pass < 2 && !reached; pass++) {
            for (unsigned k = 0; k < STORE_SHARDS && !reached; k++) {
                unsigned idx = (s->trim_hand + k) % STORE_SHARDS;
                reached = sweep_shard(s, store_shard(s, idx), target, dropped);
                if (reached)
                    s->trim_hand = idx; /* the next trim goes on from here */
            }
        }
    }
    size_t bytes = atomic_load_explicit(&s->blob_bytes, memory_order_relaxed);
    size_t next = 0;
    if (bytes > budget) {
        size_t step = budget / 8 + 1;
        next = bytes > SIZE_MAX - step ? SIZE_MAX : bytes + step;
    }
    atomic_store_explicit(&s->next_trim_at, next, memory_order_relaxed);
    atomic_store_explicit(&s->trim_busy, 0, memory_order_release);
    return rc;
}

void store_maybe_trim(cap_store_t *s)
{
    size_t budget = atomic_load_explicit(&s->budget, memory_order_relaxed);
    if (CAP_LIKELY(!budget))
        return;
    size_t bytes = atomic_load_explicit(&s->blob_bytes, memory_order_relaxed);
    if (bytes <= budget || bytes < atomic_load_explicit(&s->next_trim_at, memory_order_relaxed))
        return;
    size_t dropped;
    (void)trim(s, &dropped); /* the put or fetch itself succeeded */
}

int cap_store_trim(cap_store_t *s, size_t *dropped)
{
    size_t n = 0;
    if (dropped)
        *dropped = 0;
    if (!s)
        return CAP_EINVAL;
    int rc = trim(s, &n);
    if (dropped)
        *dropped = n;
    return rc;
}
