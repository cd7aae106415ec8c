/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The store: creation, first-use set-up, close, counts, the handle release
 * protocol and the O(dead) sweep. See store_internal.h for the layout and
 * the protocol. */
#include "store/store_internal.h"

static void entry_release(struct cap_ref *r);
static const struct cap_ref_ops store_ref_ops = {entry_release};

/* Creation -------------------------------------------------------------------------------- */

/* The caller's options as this library knows them: `size` says how much of
 * the struct the caller's header had (0: this layout). Bytes a newer header
 * added must be zero, since this library cannot honour them. */
static int read_options(const cap_store_options_t *in, cap_store_options_t *o)
{
    if (!in)
        return CAP_EINVAL;
    size_t n = in->size ? in->size : sizeof *o;
    if (n < sizeof in->size)
        return CAP_EINVAL;
    cap_memset(o, 0, sizeof *o);
    if (n <= sizeof *o) {
        cap_memcpy(o, in, n);
    } else {
        cap_memcpy(o, in, sizeof *o);
        const unsigned char *extra = (const unsigned char *)in + sizeof *o;
        for (size_t i = 0; i < n - sizeof *o; i++)
            if (extra[i])
                return CAP_EINVAL;
    }
    if (!o->alloc || !o->alloc->allocate || !o->alloc->deallocate)
        return CAP_EINVAL;
    const cap_lock_hooks_t *h = o->locks;
    if (h && (!h->lock_size || !h->init || !h->destroy || !h->lock || !h->unlock))
        return CAP_EINVAL;
    if (o->workers && !o->workers->run)
        return CAP_EINVAL;
    return CAP_OK;
}

static void init_header(cap_store_t *s, const cap_store_options_t *opt, bool in_place)
{
    cap_memset(s, 0, sizeof *s);
    s->alloc = opt->alloc;
    s->hooks = opt->locks;
    s->seed0 = opt->hash_seed[0];
    s->seed1 = opt->hash_seed[1];
    s->flags = opt->flags;
    s->workers = opt->workers;
    s->in_place = in_place ? 1 : 0;
    s->lock_size = store_lock_size(opt->locks);
    atomic_init(&s->init_state, STORE_UNINIT);
    atomic_init(&s->miss_mode, 0);
    atomic_init(&s->live, 1);
    atomic_init(&s->next_id, opt->first_id ? opt->first_id : 1);
    atomic_init(&s->blob_count, 0);
    atomic_init(&s->instance_count, 0);
}

int cap_store_new(cap_store_t **out, const cap_store_options_t *opt)
{
    if (!out)
        return CAP_EINVAL;
    *out = (cap_store_t *)0;
    cap_store_options_t o;
    int rc = read_options(opt, &o);
    if (rc)
        return rc;
    cap_store_t *s = o.alloc->allocate(o.alloc->ctx, sizeof *s);
    if (!s)
        return CAP_ENOMEM;
    init_header(s, &o, false);
    *out = s;
    return CAP_OK;
}

int cap_store_init_in_place(cap_store_storage_t *storage, const cap_store_options_t *opt,
                            cap_store_t **out)
{
    if (!storage || !out)
        return CAP_EINVAL;
    *out = (cap_store_t *)0;
    cap_store_options_t o;
    int rc = read_options(opt, &o);
    if (rc)
        return rc;
    cap_store_t *s = (cap_store_t *)(void *)storage->opaque;
    init_header(s, &o, true);
    *out = s;
    return CAP_OK;
}

/* First use: the shards, their locks and the dead lock. */
static size_t lock_stride(const cap_store_t *s)
{
    return (s->lock_size + STORE_LINE - 1) / STORE_LINE * STORE_LINE;
}

static int setup_tables(cap_store_t *s)
{
    const cap_alloc_t *a = s->alloc;
    size_t stride = lock_stride(s);
    size_t shards_bytes = STORE_SHARDS * sizeof(store_shard_slot_t);
    size_t readers_bytes = (sizeof(store_readers_t) + STORE_LINE - 1) / STORE_LINE * STORE_LINE;
    size_t size = shards_bytes + readers_bytes + STORE_SHARDS * stride;
    unsigned char *block = a->allocate(a->ctx, size);
    if (!block)
        return CAP_ENOMEM;
    void *dead = a->allocate(a->ctx, s->lock_size);
    if (!dead) {
        a->deallocate(a->ctx, block, size);
        return CAP_ENOMEM;
    }
    cap_memset(block, 0, shards_bytes);
    s->shards = (store_shard_slot_t *)(void *)block;
    s->readers = (store_readers_t *)(void *)(block + shards_bytes);
    store_readers_init(s->readers);
    for (unsigned i = 0; i < STORE_SHARDS; i++) {
        store_shard_t *sh = store_shard(s, i);
        sh->lock = block + shards_bytes + readers_bytes + (size_t)i * stride;
        store_lock_init(s, sh->lock);
    }
    store_lock_init(s, dead);
    s->block = block;
    s->block_size = size;
    s->dead_lock = dead;
    return CAP_OK;
}

int store_ensure_ready(cap_store_t *s)
{
    for (;;) {
        uint32_t st = atomic_load_explicit(&s->init_state, memory_order_acquire);
        if (st == STORE_READY)
            return CAP_OK;
        if (st == STORE_CLOSED)
            return CAP_EINVAL;
        if (st == STORE_UNINIT) {
            uint32_t expect = STORE_UNINIT;
            if (atomic_compare_exchange_strong_explicit(&s->init_state, &expect,
                                                        STORE_INITIALISING, memory_order_acquire,
                                                        memory_order_acquire)) {
                int rc = setup_tables(s);
                atomic_store_explicit(&s->init_state, rc ? STORE_UNINIT : STORE_READY,
                                      memory_order_release);
                return rc;
            }
            continue;
        }
        store_spin_pause(); /* another thread is setting up */
    }
}

/* Header lifetime ---------------------------------------------------------------------------- */

static void header_unref(cap_store_t *s)
{
    if (atomic_fetch_sub_explicit(&s->live, 1, memory_order_acq_rel) != 1)
        return;
    const cap_alloc_t *a = s->alloc;
    if (s->dead_lock) {
        store_lock_destroy(s, s->dead_lock);
        a->deallocate(a->ctx, s->dead_lock, s->lock_size);
        s->dead_lock = (void *)0;
    }
    if (!s->in_place)
        a->deallocate(a->ctx, s, sizeof *s);
}

void store_entry_free(cap_store_t *s, store_entry_t *e)
{
    s->alloc->deallocate(s->alloc->ctx, e, sizeof *e);
    header_unref(s);
}

/* Handles ------------------------------------------------------------------------------------- */

store_entry_t *store_entry_of(const cap_store_t *s, cap_ref_t *r)
{
    if (!r || r->owner != (const void *)s || r->ops != &store_ref_ops)
        return (store_entry_t *)0;
    return (store_entry_t *)(void *)r;
}

store_entry_t *store_entry_new(cap_store_t *s, cap_t *c)
{
    store_entry_t *e = s->alloc->allocate(s->alloc->ctx, sizeof *e);
    if (!e)
        return e;
    cap_memset(e, 0, sizeof *e);
    atomic_init(&e->ref.state, CAP_REF_IN_STORE | CAP_REF_ONE);
    e->ref.ops = &store_ref_ops;
    e->ref.owner = s;
    e->cap = c;
    return e;
}

void store_entry_discard(cap_store_t *s, store_entry_t *e)
{
    s->alloc->deallocate(s->alloc->ctx, e, sizeof *e);
}

bool store_entry_clear_bits_locked(store_entry_t *e, uint64_t bits)
{
    uint64_t old = atomic_fetch_and_explicit(&e->ref.state, ~bits, memory_order_acq_rel);
    return (old & ~bits) == 0;
}

cap_t *store_entry_unlink_locked(cap_store_t *s, store_entry_t *e)
{
    cap_t *c = store_entry_unlink_uncounted(s, e);
    atomic_fetch_sub_explicit(&s->instance_count, 1, memory_order_relaxed);
    return c;
}

cap_t *store_entry_unlink_uncounted(cap_store_t *s, store_entry_t *e)
{
    store_shard_t *sh = store_shard(s, store_entry_shard(e));
    if (e->prev)
        e->prev->next = e->next;
    else
        sh->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    e->prev = e->next = (store_entry_t *)0;
    e->linked = 0;
    cap_t *c = e->cap;
    e->cap = (cap_t *)0;
    return c;
}

void store_entry_link_locked(cap_store_t *s, store_entry_t *e)
{
    store_shard_t *sh = store_shard(s, store_entry_shard(e));
    e->prev = (store_entry_t *)0;
    e->next = sh->head;
    if (sh->head)
        sh->head->prev = e;
    sh->head = e;
    e->linked = 1;
    atomic_fetch_add_explicit(&s->instance_count, 1, memory_order_relaxed);
}

/* The last outside reference of an entry still in the store queues it on the
 * dead list; any other release is a lock-free decrement. */
static void entry_release(struct cap_ref *r)
{
    store_entry_t *e = (store_entry_t *)(void *)r;
    cap_store_t *s = r->owner;
    uint64_t st = atomic_load_explicit(&r->state, memory_order_relaxed);
    for (;;) {
        if ((st & CAP_REF_IN_STORE) && (st >> 2) == 1)
            break; /* slow path */
        if (atomic_compare_exchange_weak_explicit(&r->state, &st, st - CAP_REF_ONE,
                                                  memory_order_acq_rel, memory_order_relaxed)) {
            if (st - CAP_REF_ONE == 0)
                store_entry_free(s, e);
            return;
        }
    }
    bool free_it = false;
    store_lock(s, s->dead_lock);
    st = atomic_load_explicit(&r->state, memory_order_relaxed);
    for (;;) {
        uint64_t next;
        bool queue = (st & CAP_REF_IN_STORE) && (st >> 2) == 1;
        next = queue ? ((st - CAP_REF_ONE) | CAP_REF_QUEUED) : st - CAP_REF_ONE;
        if (atomic_compare_exchange_weak_explicit(&r->state, &st, next, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            if (queue) {
                e->dead_next = s->dead_head;
                s->dead_head = e;
                s->dead_count++;
            } else {
                free_it = next == 0;
            }
            break;
        }
    }
    store_unlock(s, s->dead_lock);
    if (free_it)
        store_entry_free(s, e);
}

bool store_cap_refs_owned(const cap_store_t *s, const cap_t *c)
{
    if (!cap_has_refs(c))
        return true;
    cap_target_t t;
    switch (cap_kind(c)) {
    case CAP_KIND_CNODE: {
        size_t n = cap_cnode_count(c);
        for (size_t i = 0; i < n; i++) {
            if (cap_cnode_entry(c, i, (uint32_t *)0, &t) == CAP_OK && t.kind == CAP_TARGET_REF &&
                !store_entry_of(s, t.ref))
                return false;
        }
        return true;
    }
    case CAP_KIND_INSTANCE:
        t = cap_instance_root_cnode(c);
        return t.kind != CAP_TARGET_REF || store_entry_of(s, t.ref) != (store_entry_t *)0;
    default:
        return true;
    }
}

/* Close ---------------------------------------------------------------------------------------- */

static void close_instances(cap_store_t *s)
{
    /* Detach every entry; they keep IN_STORE, so nobody frees them meanwhile. */
    store_entry_t *victims = (store_entry_t *)0;
    for (unsigned i = 0; i < STORE_SHARDS; i++) {
        store_shard_t *sh = store_shard(s, i);
        store_lock(s, sh->lock);
        store_entry_t *e = sh->head;
        sh->head = (store_entry_t *)0;
        while (e) {
            store_entry_t *next = e->next;
            e->linked = 0;
            e->prev = (store_entry_t *)0;
            e->next = victims;
            victims = e;
            atomic_fetch_sub_explicit(&s->instance_count, 1, memory_order_relaxed);
            e = next;
        }
        store_unlock(s, sh->lock);
    }
    /* Drop the store's reference of each, then its cap (no lock held: the
     * cascade may queue entries not yet visited). */
    while (victims) {
        store_entry_t *e = victims;
        victims = e->next;
        cap_t *c = e->cap;
        e->cap = (cap_t *)0;
        e->next = (store_entry_t *)0;
        store_lock(s, s->dead_lock);
        bool zero = store_entry_clear_bits_locked(e, CAP_REF_IN_STORE);
        store_unlock(s, s->dead_lock);
        if (zero)
            store_entry_free(s, e);
        cap_release(c);
    }
    /* Whatever was queued is now out of the store: free what nobody holds. */
    store_lock(s, s->dead_lock);
    store_entry_t *dead = s->dead_head, *gone = (store_entry_t *)0;
    s->dead_head = (store_entry_t *)0;
    s->dead_count = 0;
    while (dead) {
        store_entry_t *e = dead;
        dead = e->dead_next;
        if (store_entry_clear_bits_locked(e, CAP_REF_IN_STORE | CAP_REF_QUEUED)) {
            e->dead_next = gone;
            gone = e;
        }
    }
    store_unlock(s, s->dead_lock);
    while (gone) {
        store_entry_t *e = gone;
        gone = e->dead_next;
        store_entry_free(s, e);
    }
}

void cap_store_free(cap_store_t *s)
{
    if (!s)
        return;
    if (atomic_load_explicit(&s->init_state, memory_order_acquire) == STORE_READY) {
        store_blobs_release_all(s);
        close_instances(s);
        for (unsigned i = 0; i < STORE_SHARDS; i++)
            store_lock_destroy(s, store_shard(s, i)->lock);
        s->alloc->deallocate(s->alloc->ctx, s->block, s->block_size);
        s->block = (void *)0;
        s->shards = (store_shard_slot_t *)0;
        s->readers = (store_readers_t *)0;
    }
    atomic_store_explicit(&s->init_state, STORE_CLOSED, memory_order_release);
    header_unref(s);
}

/* Counts --------------------------------------------------------------------------------------- */

size_t cap_store_blob_count(cap_store_t *s)
{
    return s ? atomic_load_explicit(&s->blob_count, memory_order_relaxed) : 0;
}

size_t cap_store_instance_count(cap_store_t *s)
{
    return s ? atomic_load_explicit(&s->instance_count, memory_order_relaxed) : 0;
}

/* Sweep ---------------------------------------------------------------------------------------- */

int cap_store_sweep_budget(cap_store_t *s, size_t budget, size_t *removed, bool *more)
{
    if (removed)
        *removed = 0;
    if (more)
        *more = false;
    if (!s)
        return CAP_EINVAL;
    if (!store_is_ready(s))
        return CAP_OK;
    size_t done = 0, n = 0;
    while (done < budget) {
        store_lock(s, s->dead_lock);
        store_entry_t *e = s->dead_head;
        if (e) {
            s->dead_head = e->dead_next;
            s->dead_count--;
            e->dead_next = (store_entry_t *)0;
        }
        store_unlock(s, s->dead_lock);
        if (!e)
            break;
        done++;
        /* QUEUED is still set: this sweeper alone frees the entry. */
        store_shard_t *sh = store_shard(s, store_entry_shard(e));
        cap_t *c = (cap_t *)0;
        store_lock(s, sh->lock);
        if (e->linked) {
            c = store_entry_unlink_locked(s, e);
            n++;
        }
        store_lock(s, s->dead_lock);
        bool zero = store_entry_clear_bits_locked(e, CAP_REF_IN_STORE | CAP_REF_QUEUED);
        store_unlock(s, s->dead_lock);
        store_unlock(s, sh->lock);
        if (zero)
            store_entry_free(s, e);
        cap_release(c); /* may queue more entries (the cascade) */
    }
    if (more) {
        store_lock(s, s->dead_lock);
        *more = s->dead_head != (store_entry_t *)0;
        store_unlock(s, s->dead_lock);
    }
    if (removed)
        *removed = n;
    return CAP_OK;
}

int cap_store_sweep_instances(cap_store_t *s, size_t *removed)
{
    return cap_store_sweep_budget(s, SIZE_MAX, removed, (bool *)0);
}

cap_t *store_entry_read(cap_store_t *s, store_entry_t *e, uint64_t *version)
{
    store_shard_t *sh = store_shard(s, store_entry_shard(e));
    cap_t *c = (cap_t *)0;
    store_lock(s, sh->lock);
    if (e->linked) {
        c = cap_retain(e->cap);
        *version = e->version;
    }
    store_unlock(s, sh->lock);
    return c;
}
