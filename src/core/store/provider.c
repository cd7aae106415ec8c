/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Backends attached to a store: the missing-blob provider (single-flight
 * fetches), cap_store_exists and cap_store_flush.
 *
 * No store lock is held while a backend is called or a cap released: a
 * backend may be slow (disk) and releasing may cascade. */
#include "capstore/persist.h"
#include "store/store_internal.h"

int cap_store_add_backend(cap_store_t *s, const cap_backend_t *b, cap_err_t *err)
{
    if (!s)
        return store_fail(err, CAP_EINVAL, "NULL store");
    int rc = cap_backend_check(b, err);
    if (rc)
        return rc;
    if (atomic_load_explicit(&s->init_state, memory_order_acquire) == STORE_CLOSED)
        return store_fail(err, CAP_EINVAL, "store closed");
    /* Attaching is rare: a flag serialises it; readers need no lock (the
     * slot is written before the count that publishes it). */
    uint32_t expect = 0;
    while (!atomic_compare_exchange_weak_explicit(&s->attach_busy, &expect, 1,
                                                  memory_order_acquire, memory_order_relaxed)) {
        expect = 0;
        store_spin_pause();
    }
    unsigned n = atomic_load_explicit(&s->nbackends, memory_order_relaxed);
    const char *why = (const char *)0;
    for (unsigned i = 0; i < n; i++)
        if (s->backends[i] == b)
            why = "backend already attached";
    if (!why && n >= CAP_STORE_MAX_BACKENDS)
        why = "too many backends (CAP_STORE_MAX_BACKENDS)";
    if (!why) {
        s->backends[n] = b;
        atomic_store_explicit(&s->nbackends, n + 1, memory_order_release);
    }
    atomic_store_explicit(&s->attach_busy, 0, memory_order_release);
    if (why)
        return store_fail(err, CAP_EINVAL, why);
    /* Blobs may now be droppable: let the next put trim again. */
    atomic_store_explicit(&s->next_trim_at, 0, memory_order_relaxed);
    return CAP_OK;
}

const cap_backend_t *store_writable_backend(const cap_store_t *s)
{
    unsigned n = store_backend_count(s);
    for (unsigned i = 0; i < n; i++)
        if (!(s->backends[i]->flags & CAP_BACKEND_READONLY))
            return s->backends[i];
    return (const cap_backend_t *)0;
}

/* Provider ------------------------------------------------------------------------------------ */

/* Ask the backends in order; the first that answers anything but "not
 * stored" decides (a corrupt or failing backend is reported, not skipped:
 * falling through would hide the damage). */
static int ask_backends(cap_store_t *s, const cap_hash_t *h, cap_t **out, cap_err_t *e)
{
    unsigned n = store_backend_count(s);
    for (unsigned i = 0; i < n; i++) {
        const cap_backend_t *b = s->backends[i];
        bool verify = !(b->flags & CAP_BACKEND_TRUSTED);
        int rc = cap_persist_fetch(b, h, s->alloc, verify, out, e);
        if (rc != CAP_ENOTFOUND)
            return rc;
    }
    return store_missing(e, h);
}

/* A new reference to the blob in slot `b` of the shard's table, marked used
 * (a trim keeps what was just asked for). Shard lock held. */
static cap_t *take_found(store_shard_t *sh, size_t b)
{
    blob_table_t *t = store_blob_table(sh);
    t->meta[b].flags |= STORE_BLOB_USED;
    return cap_retain(store_slot_cap(&t->slots[b]));
}

static store_fetch_t *find_fetch(store_shard_t *sh, const cap_hash_t *h)
{
    for (store_fetch_t *f = sh->fetching; f; f = f->next)
        if (cap_memcmp(f->key.bytes, h->bytes, 32) == 0)
            return f;
    return (store_fetch_t *)0;
}

/* find_fetch among other threads' records only (not batch `own`'s). */
static store_fetch_t *find_foreign_fetch(store_shard_t *sh, const cap_hash_t *h, const void *own)
{
    for (store_fetch_t *f = sh->fetching; f; f = f->next)
        if (f->batch != own && cap_memcmp(f->key.bytes, h->bytes, 32) == 0)
            return f;
    return (store_fetch_t *)0;
}

static void unlink_fetch(store_shard_t *sh, store_fetch_t *me)
{
    store_fetch_t **p = &sh->fetching;
    while (*p != me)
        p = &(*p)->next;
    *p = me->next;
}

int store_fetch_locked(cap_store_t *s, store_shard_t *sh, const cap_hash_t *h, uint64_t mix,
                       cap_t **out, cap_err_t *err)
{
    for (;;) {
        size_t b = store_blob_find(sh, h, mix);
        if (b != SIZE_MAX) {
            cap_t *c = take_found(sh, b);
            store_unlock(s, sh->lock);
            *out = c;
            return CAP_OK;
        }
        store_fetch_t *f = find_fetch(sh, h);
        if (!f)
            break;
        /* Someone is fetching it: wait for the outcome. */
        f->waiters++;
        while (!f->done)
            store_wait(s, sh->lock);
        int rc = f->rc;
        cap_err_t e = f->err;
        if (--f->waiters == 0)
            store_notify_all(s, sh->lock); /* the fetcher may leave */
        if (rc == CAP_OK)
            continue; /* published: probe again (fetch again if trimmed meanwhile) */
        store_unlock(s, sh->lock);
        if (err)
            *err = e;
        return rc;
    }
    store_fetch_t me;
    cap_memset(&me, 0, sizeof me);
    me.key = *h;
    me.next = sh->fetching;
    sh->fetching = &me;
    sh->fetch_gen++;
    store_unlock(s, sh->lock);

    cap_t *c = (cap_t *)0, *drop = (cap_t *)0;
    cap_err_t e;
    cap_memset(&e, 0, sizeof e);
    int rc = ask_backends(s, h, &c, &e);
    bool added = false;
    if (rc == CAP_OK)
        cap_freeze(c);
    store_lock(s, sh->lock);
    if (rc == CAP_OK) {
        size_t b = store_blob_find(sh, h, mix);
        cap_t *k = (cap_t *)0;
        if (b != SIZE_MAX) { /* a put raced us: keep the first cap */
            drop = c;
            c = take_found(sh, b);
        } else if (store_blob_reserve(s, sh, 1) == CAP_OK && store_keyed_ref(c, h, &k) == CAP_OK) {
            /* Fetched blobs are clean: a backend has them. */
            store_blob_insert_flags(s, sh, h, mix, k, STORE_BLOB_USED);
            if (k != c) { /* keyed copy: hand out the stored cap */
                drop = c;
                c = cap_retain(k);
            }
            added = true;
        } else {
            drop = c;
            c = (cap_t *)0;
            rc = cap_backend_fail(&e, CAP_ENOMEM, "out of memory");
        }
    }
    me.rc = rc;
    me.err = e;
    me.done = 1;
    unlink_fetch(sh, &me);
    if (me.waiters) {
        store_notify_all(s, sh->lock);
        while (me.waiters) /* they read `me`, which lives on this stack */
            store_wait(s, sh->lock);
    }
    store_unlock(s, sh->lock);
    cap_release(drop);
    if (rc) {
        if (err)
            *err = e;
        return rc;
    }
    *out = c;
    if (added)
        store_maybe_trim(s);
    return CAP_OK;
}

/* Batched provider ----------------------------------------------------------------------------- */

enum { F_MINE, F_DUP, F_WAIT, F_HIT };

_Static_assert(STORE_SHARDS <= 64, "store_fetch_many keeps a bit a shard in a uint64_t");

/* One block from the allocator, carved into the per-miss arrays. */
typedef struct fetch_many {
    store_fetch_t *rec; /* our single-flight records (F_MINE) */
    cap_t **cap;        /* decoded caps, then the references handed out */
    size_t *dup;        /* F_DUP: the miss whose record fetches the same hash */
    size_t *pend;       /* records the next backend is asked for */
    uint8_t **bytes;    /* read_many's answers */
    size_t *lens;
    size_t *index;      /* 2m slots: j + 1 of the first miss of each hash; 0 empty */
    cap_hash_t *keys;
    int *rc;
    uint8_t *kind; /* F_* */
    void *block;
    size_t size;
    size_t index_mask;
} fetch_many_t;

static bool fetch_many_alloc(cap_store_t *s, fetch_many_t *F, size_t m)
{
    size_t slots = 1;
    while (slots < 2 * m)
        slots *= 2;
    size_t per = sizeof(store_fetch_t) + sizeof(cap_t *) + 4 * sizeof(size_t) +
                 sizeof(cap_hash_t) + sizeof(int) + 1;
    if (m > (SIZE_MAX - slots * sizeof(size_t)) / per)
        return false;
    F->size = m * per + slots * sizeof(size_t);
    unsigned char *p = s->alloc->allocate(s->alloc->ctx, F->size);
    if (!p)
        return false;
    F->block = p;
    /* Largest alignment first: every part stays aligned. */
    F->rec = (store_fetch_t *)(void *)p;
    p += m * sizeof(store_fetch_t);
    F->cap = (cap_t **)(void *)p;
    p += m * sizeof(cap_t *);
    F->dup = (size_t *)(void *)p;
    p += m * sizeof(size_t);
    F->pend = (size_t *)(void *)p;
    p += m * sizeof(size_t);
    F->bytes = (uint8_t **)(void *)p;
    p += m * sizeof(size_t);
    F->lens = (size_t *)(void *)p;
    p += m * sizeof(size_t);
    F->index = (size_t *)(void *)p;
    p += slots * sizeof(size_t);
    F->keys = (cap_hash_t *)(void *)p;
    p += m * sizeof(cap_hash_t);
    F->rc = (int *)(void *)p;
    p += m * sizeof(int);
    F->kind = p;
    for (size_t j = 0; j < m; j++)
        F->cap[j] = (cap_t *)0;
    cap_memset(F->index, 0, slots * sizeof(size_t));
    F->index_mask = slots - 1;
    return true;
}

/* The first miss j0 < j of the batch with the same hash as miss j (then
 * true, *first = j0), else j is recorded as the first (false). Found
 * through the batch's own index: the shard lists are not walked for the
 * batch's own records, which would make a batch of m misses cost m^2. */
static bool batch_first(fetch_many_t *F, const cap_hash_t *hashes, const size_t *idx, size_t j,
                        size_t *first)
{
    const cap_hash_t *h = &hashes[idx[j]];
    size_t i = (size_t)(cap_load_le64(h->bytes + 8) * 0x9E3779B97F4A7C15ull >> 17) & F->index_mask;
    for (;; i = (i + 1) & F->index_mask) {
        size_t v = F->index[i];
        if (!v) {
            F->index[i] = j + 1;
            return false;
        }
        if (cap_memcmp(hashes[idx[v - 1]].bytes, h->bytes, 32) == 0) {
            *first = v - 1;
            return true;
        }
    }
}

/* Ask every backend in order, one read_many each, for the records in
 * F->pend[0..np); the first answer other than "not stored" decides, as in
 * ask_backends. */
static void ask_backends_many(cap_store_t *s, fetch_many_t *F, size_t np)
{
    unsigned nb = store_backend_count(s);
    for (unsigned bi = 0; bi < nb && np; bi++) {
        const cap_backend_t *b = s->backends[bi];
        bool verify = !(b->flags & CAP_BACKEND_TRUSTED);
        for (size_t k = 0; k < np; k++)
            F->keys[k] = F->rec[F->pend[k]].key;
        cap_err_t ce;
        cap_memset(&ce, 0, sizeof ce);
        int call = cap_backend_read_many(b, F->keys, np, s->alloc, F->bytes, F->lens, F->rc, &ce);
        size_t left = 0;
        for (size_t k = 0; k < np; k++) {
            store_fetch_t *r = &F->rec[F->pend[k]];
            int rc = F->rc[k];
            if (rc == CAP_ENOTFOUND) {
                F->pend[left++] = F->pend[k];
                continue;
            }
            if (rc == CAP_OK) {
                rc = cap_persist_decode(&r->key, F->bytes[k], F->lens[k], s->alloc, verify,
                                        &F->cap[F->pend[k]], &r->err);
                if (F->bytes[k])
                    s->alloc->deallocate(s->alloc->ctx, F->bytes[k], F->lens[k]);
            } else if (call != CAP_OK) {
                r->err = ce; /* the whole call's failure */
                r->err.code = rc;
                cap_err_set_hash(&r->err, &r->key);
            } else {
                cap_backend_fail(&r->err, rc, "backend read failed");
                cap_err_set_hash(&r->err, &r->key);
            }
            r->rc = rc;
        }
        np = left;
    }
    for (size_t k = 0; k < np; k++) {
        store_fetch_t *r = &F->rec[F->pend[k]];
        r->rc = store_missing(&r->err, &r->key);
    }
}

/* Publish a record's outcome as store_fetch_locked does, wake its waiters
 * and wait until they have read it. Returns whether a blob was added; the
 * reference handed out is left in *c (NULL on failure). */
static bool publish_fetched(cap_store_t *s, store_fetch_t *r, cap_t **c)
{
    uint64_t mix = store_blob_mix(s, &r->key);
    store_shard_t *sh = store_shard(s, store_blob_shard(mix));
    cap_t *got = *c, *drop = (cap_t *)0;
    bool added = false;
    int rc = r->rc;
    if (rc == CAP_OK)
        cap_freeze(got);
    store_lock(s, sh->lock);
    if (rc == CAP_OK) {
        size_t b = store_blob_find(sh, &r->key, mix);
        cap_t *k = (cap_t *)0;
        if (b != SIZE_MAX) { /* a put raced us: keep the first cap */
            drop = got;
            got = take_found(sh, b);
        } else if (store_blob_reserve(s, sh, 1) == CAP_OK &&
                   store_keyed_ref(got, &r->key, &k) == CAP_OK) {
            store_blob_insert_flags(s, sh, &r->key, mix, k, STORE_BLOB_USED);
            if (k != got) {
                drop = got;
                got = cap_retain(k);
            }
            added = true;
        } else {
            drop = got;
            got = (cap_t *)0;
            rc = cap_backend_fail(&r->err, CAP_ENOMEM, "out of memory");
        }
    }
    r->rc = rc;
    r->done = 1;
    unlink_fetch(sh, r);
    if (r->waiters) {
        store_notify_all(s, sh->lock);
        while (r->waiters)
            store_wait(s, sh->lock);
    }
    store_unlock(s, sh->lock);
    cap_release(drop);
    *c = got;
    return added;
}

void store_fetch_many(cap_store_t *s, const cap_hash_t *hashes, const size_t *idx, size_t m,
                      cap_t **out, int *codes, store_batch_err_t *be)
{
    fetch_many_t F;
    if (!fetch_many_alloc(s, &F, m)) {
        /* No memory for the batch: each miss on its own. */
        for (size_t j = 0; j < m; j++) {
            size_t i = idx[j];
            cap_err_t e;
            int rc = store_blob_get(s, &hashes[i], &out[i], &e);
            if (codes)
                codes[i] = rc;
            if (rc)
                store_batch_fail(be, i, rc, &e, &hashes[i]);
        }
        return;
    }
    /* Register a record for every hash nobody fetches yet. A hash another
     * thread fetches is waited for only at the end, once none of ours is
     * registered any more: waiting while holding records could deadlock
     * two batches that wait on each other's. First every miss is classed
     * (a hash twice in the batch is fetched once, found through the batch's
     * own index), then the batch's records are registered: so the shard
     * lists searched hold other threads' fetches only, never the batch's
     * own, which would make a batch of m misses cost m^2. A record
     * another thread registers in between is noticed by the shard's
     * registration count (fetch_gen): only then are the shard's remaining
     * misses looked up again before they are registered, so a hash is
     * still fetched once. */
    uint64_t expect[STORE_SHARDS]; /* fetch_gen if only this batch registered since */
    uint64_t classified = 0;       /* bit x: expect[x] is set */
    cap_memset(expect, 0, sizeof expect);
    size_t np = 0;
    for (size_t j = 0; j < m; j++) {
        size_t i = idx[j];
        const cap_hash_t *h = &hashes[i];
        size_t first;
        if (batch_first(&F, hashes, idx, j, &first) && F.kind[first] != F_HIT) {
            /* Fetched by the batch (or waited for) once, as its first. */
            F.kind[j] = F.kind[first] == F_MINE ? F_DUP : F_WAIT;
            F.dup[j] = first;
            continue;
        }
        uint64_t mix = store_blob_mix(s, h);
        store_shard_t *sh = store_shard(s, store_blob_shard(mix));
        store_lock(s, sh->lock);
        size_t b = store_blob_find(sh, h, mix);
        if (b != SIZE_MAX) { /* published since the lock-free probe */
            out[i] = take_found(sh, b);
            store_unlock(s, sh->lock);
            F.kind[j] = F_HIT;
            if (codes)
                codes[i] = CAP_OK;
            continue;
        }
        F.kind[j] = find_fetch(sh, h) ? F_WAIT : F_MINE;
        unsigned x = store_blob_shard(mix);
        if (F.kind[j] == F_MINE && !(classified >> x & 1)) {
            expect[x] = sh->fetch_gen;
            classified |= (uint64_t)1 << x;
        }
        store_unlock(s, sh->lock);
        if (F.kind[j] == F_MINE)
            F.pend[np++] = j;
    }
    size_t kept = 0;
    for (size_t k = 0; k < np; k++) {
        size_t j = F.pend[k];
        size_t i = idx[j];
        const cap_hash_t *h = &hashes[i];
        uint64_t mix = store_blob_mix(s, h);
        unsigned x = store_blob_shard(mix);
        store_shard_t *sh = store_shard(s, x);
        store_fetch_t *r = &F.rec[j];
        cap_memset(r, 0, sizeof *r);
        r->key = *h;
        r->batch = &F;
        store_lock(s, sh->lock);
        if (sh->fetch_gen != expect[x]) {
            /* Another thread registered since this shard's first miss was
             * classified: this hash may be fetched or published by now. */
            size_t b = store_blob_find(sh, h, mix);
            if (b != SIZE_MAX) {
                out[i] = take_found(sh, b);
                store_unlock(s, sh->lock);
                F.kind[j] = F_HIT;
                if (codes)
                    codes[i] = CAP_OK;
                continue;
            }
            if (find_foreign_fetch(sh, h, &F)) {
                store_unlock(s, sh->lock);
                F.kind[j] = F_WAIT;
                continue;
            }
        } else {
            expect[x]++; /* our own registration, below */
        }
        r->next = sh->fetching;
        sh->fetching = r;
        sh->fetch_gen++;
        store_unlock(s, sh->lock);
        F.pend[kept++] = j;
    }
    np = kept;
    /* A repeat whose first is not fetched by the batch after all (found
     * published, or fetched by another thread) waits as its first does. */
    for (size_t j = 0; j < m; j++)
        if (F.kind[j] == F_DUP && F.kind[F.dup[j]] != F_MINE)
            F.kind[j] = F_WAIT;
    ask_backends_many(s, &F, np);
    bool added = false;
    /* Newest first: a record is then near the head of its shard's list,
     * which is where unlink_fetch starts looking. */
    for (size_t j = m; j-- > 0;) {
        if (F.kind[j] != F_MINE)
            continue;
        size_t i = idx[j];
        added |= publish_fetched(s, &F.rec[j], &F.cap[j]);
        out[i] = F.cap[j];
        if (codes)
            codes[i] = F.rec[j].rc;
        if (F.rec[j].rc)
            store_batch_fail(be, i, F.rec[j].rc, &F.rec[j].err, &hashes[i]);
    }
    for (size_t j = 0; j < m; j++) {
        size_t i = idx[j];
        int rc;
        cap_err_t e;
        const cap_err_t *detail = &e;
        if (F.kind[j] == F_DUP) {
            const store_fetch_t *r = &F.rec[F.dup[j]];
            rc = r->rc;
            detail = &r->err;
            if (rc == CAP_OK)
                out[i] = cap_retain(F.cap[F.dup[j]]);
        } else if (F.kind[j] == F_WAIT) {
            uint64_t mix = store_blob_mix(s, &hashes[i]);
            store_shard_t *sh = store_shard(s, store_blob_shard(mix));
            store_lock(s, sh->lock);
            rc = store_fetch_locked(s, sh, &hashes[i], mix, &out[i], &e);
        } else {
            continue;
        }
        if (codes)
            codes[i] = rc;
        if (rc)
            store_batch_fail(be, i, rc, detail, &hashes[i]);
    }
    s->alloc->deallocate(s->alloc->ctx, F.block, F.size);
    if (added)
        store_maybe_trim(s);
}

/* Exists ----------------------------------------------------------------------------------------- */

int cap_store_exists(cap_store_t *s, const cap_hash_t *h, cap_err_t *err)
{
    if (!s || !h)
        return store_fail(err, CAP_EINVAL, "NULL argument");
    if (cap_store_contains_blob(s, h))
        return store_fail(err, CAP_OK, (const char *)0);
    unsigned n = store_backend_count(s);
    for (unsigned i = 0; i < n; i++) {
        int rc = cap_backend_exists(s->backends[i], h, err);
        if (rc != CAP_ENOTFOUND)
            return rc;
    }
    return store_fail(err, CAP_ENOTFOUND, "in no tier and no backend");
}

/* Flush ------------------------------------------------------------------------------------------ */

typedef struct flush_set {
    cap_t **caps;
    cap_hash_t *hashes;
    size_t n, cap;
    void *block;
    size_t block_size;
} flush_set_t;

static void flush_set_free(cap_store_t *s, flush_set_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        cap_release(f->caps[i]);
    if (f->block)
        s->alloc->deallocate(s->alloc->ctx, f->block, f->block_size);
    cap_memset(f, 0, sizeof *f);
}

/* Take a reference to every dirty blob. Sized from dirty_count outside the
 * locks; if puts raced past that size, start again larger (so every blob
 * dirty when the flush began is in the set). */
static int collect_dirty(cap_store_t *s, flush_set_t *f)
{
    size_t want = atomic_load_explicit(&s->dirty_count, memory_order_relaxed);
    for (;;) {
        cap_memset(f, 0, sizeof *f);
        if (want == 0)
            return CAP_OK;
        size_t per = sizeof(cap_t *) + sizeof(cap_hash_t);
        if (want > SIZE_MAX / per)
            return CAP_ENOMEM;
        f->block_size = want * per;
        f->block = s->alloc->allocate(s->alloc->ctx, f->block_size);
        if (!f->block)
            return CAP_ENOMEM;
        f->hashes = (cap_hash_t *)f->block;
        f->caps = (cap_t **)(void *)((unsigned char *)f->block + want * sizeof(cap_hash_t));
        f->cap = want;
        bool overflow = false;
        for (unsigned i = 0; i < STORE_SHARDS && !overflow; i++) {
            store_shard_t *sh = store_shard(s, i);
            store_lock(s, sh->lock);
            if (sh->dirty) {
                blob_table_t *t = store_blob_table(sh);
                size_t slots = store_table_size(t);
                for (size_t j = 0; j < slots; j++) {
                    if (!store_table_used(t, j) || !(t->meta[j].flags & STORE_BLOB_DIRTY))
                        continue;
                    if (f->n == f->cap) {
                        overflow = true;
                        break;
                    }
                    cap_t *c = store_slot_cap(&t->slots[j]);
                    f->hashes[f->n] = c->key;
                    f->caps[f->n++] = cap_retain(c);
                }
            }
            store_unlock(s, sh->lock);
        }
        if (!overflow)
            return CAP_OK;
        flush_set_free(s, f);
        size_t now = atomic_load_explicit(&s->dirty_count, memory_order_relaxed);
        want = now > want ? now : want + want / 2 + 1;
    }
}

static void mark_clean(cap_store_t *s, const flush_set_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        uint64_t mix = store_blob_mix(s, &f->hashes[i]);
        store_shard_t *sh = store_shard(s, store_blob_shard(mix));
        store_lock(s, sh->lock);
        size_t b = store_blob_find(sh, &f->hashes[i], mix);
        blob_table_t *t = store_blob_table(sh);
        if (b != SIZE_MAX && (t->meta[b].flags & STORE_BLOB_DIRTY)) {
            t->meta[b].flags &= (uint8_t)~STORE_BLOB_DIRTY;
            sh->dirty--;
            atomic_fetch_sub_explicit(&s->dirty_count, 1, memory_order_relaxed);
        }
        store_unlock(s, sh->lock);
    }
}

/* The end of a flush: the set freed, and on success the count handed out
 * and a trim let loose (clean blobs may be dropped now). */
static int flush_finish(cap_store_t *s, flush_set_t *f, int rc, size_t n, size_t *written)
{
    flush_set_free(s, f);
    if (rc)
        return rc;
    if (written)
        *written = n;
    atomic_store_explicit(&s->next_trim_at, 0, memory_order_relaxed);
    store_maybe_trim(s);
    return CAP_OK;
}

int cap_store_flush(cap_store_t *s, size_t *written, cap_err_t *err)
{
    if (written)
        *written = 0;
    if (!s)
        return store_fail(err, CAP_EINVAL, "NULL store");
    store_fail(err, CAP_OK, (const char *)0);
    const cap_backend_t *wb = store_writable_backend(s);
    if (!wb) {
        if (store_backend_count(s) && atomic_load_explicit(&s->dirty_count, memory_order_relaxed))
            return store_fail(err, CAP_EBACKEND, "no writable backend attached");
        return CAP_OK;
    }
    if (!store_is_ready(s))
        return CAP_OK;
    flush_set_t f;
    int rc = collect_dirty(s, &f);
    if (rc)
        return store_fail(err, rc, "out of memory");
    if (f.n == 0)
        return CAP_OK;
    /* The backend's counts: blobs it did not hold, and blobs it held with
     * damaged bytes that it has now replaced (a version-1 backend counts
     * every blob). */
    cap_backend_write_result_t res;
    rc = cap_persist_put_many(wb, f.caps, f.hashes, f.n, s->alloc, &res, err);
    if (rc == CAP_OK)
        rc = cap_backend_flush(wb, err);
    size_t n = res.written + res.repaired;
    if (rc == CAP_OK)
        mark_clean(s, &f); /* only now: a failed write leaves every blob dirty */
    return flush_finish(s, &f, rc, n, written);
}

/* Flush with roots ------------------------------------------------------------------------------ */

/* f with the `k` extra caps appended (their references move into f). */
static int flush_set_append(cap_store_t *s, flush_set_t *f, cap_hash_t *hashes, cap_t **caps, size_t k)
{
    size_t n = f->n + k, per = sizeof(cap_t *) + sizeof(cap_hash_t);
    if (n > SIZE_MAX / per)
        return CAP_ENOMEM;
    void *block = s->alloc->allocate(s->alloc->ctx, n * per);
    if (!block)
        return CAP_ENOMEM;
    cap_hash_t *nh = (cap_hash_t *)block;
    cap_t **nc = (cap_t **)(void *)((unsigned char *)block + n * sizeof(cap_hash_t));
    if (f->n) {
        cap_memcpy(nh, f->hashes, f->n * sizeof *nh);
        cap_memcpy(nc, f->caps, f->n * sizeof *nc);
    }
    cap_memcpy(nh + f->n, hashes, k * sizeof *nh);
    cap_memcpy(nc + f->n, caps, k * sizeof *nc);
    if (f->block)
        s->alloc->deallocate(s->alloc->ctx, f->block, f->block_size);
    f->block = block;
    f->block_size = n * per;
    f->hashes = nh;
    f->caps = nc;
    f->n = f->cap = n;
    return CAP_OK;
}

/* How often a root refused for a missing hash is tried again with the
 * blobs memory still holds: each try follows a collection that ran in
 * between, so this bound is not reached in practice. */
#define ROOT_TRIES 4

int cap_store_flush_roots(cap_store_t *s, const cap_backend_root_t *roots, size_t nroots,
                          size_t *written, cap_err_t *err)
{
    if (nroots == 0)
        return cap_store_flush(s, written, err);
    if (written)
        *written = 0;
    if (!s || !roots)
        return store_fail(err, CAP_EINVAL, "NULL argument");
    for (size_t i = 0; i < nroots; i++)
        if (!cap_root_name_valid(roots[i].name))
            return store_fail(err, CAP_EINVAL, "bad root name");
    store_fail(err, CAP_OK, (const char *)0);
    const cap_backend_t *wb = store_writable_backend(s);
    if (!wb)
        return store_fail(err, CAP_EBACKEND, "no writable backend attached");
    if (!cap_backend_has_roots(wb))
        return store_fail(err, CAP_EBACKEND, "roots not supported");
    flush_set_t f;
    int rc = collect_dirty(s, &f);
    if (rc)
        return store_fail(err, rc, "out of memory");
    bool split = (wb->flags & CAP_BACKEND_NONATOMIC_BATCH) != 0;
    size_t n = 0;
    for (int attempt = 0;; attempt++) {
        cap_backend_write_result_t res = {0, 0};
        if (split) {
            rc = cap_persist_put_many(wb, f.caps, f.hashes, f.n, s->alloc, &res, err);
            if (rc == CAP_OK)
                rc = cap_backend_flush(wb, err);
            n += res.written + res.repaired;
            if (rc == CAP_OK) {
                mark_clean(s, &f); /* durable: clean whatever the roots do */
                res.written = res.repaired = 0;
                rc = cap_backend_write_many(wb, (const cap_backend_item_t *)0, 0, roots, nroots,
                                            (cap_backend_write_result_t *)0, err);
            }
        } else {
            rc = cap_persist_put_roots(wb, f.caps, f.hashes, f.n, s->alloc, roots, nroots, &res,
                                       err);
            if (rc == CAP_OK)
                n = res.written + res.repaired;
        }
        if (rc != CAP_EBLOBMISSING || attempt + 1 >= ROOT_TRIES)
            break;
        /* Blobs of the graphs that memory holds and the backend lost. */
        cap_err_t keep;
        if (err)
            keep = *err;
        cap_hash_t *hs;
        cap_t **cs;
        size_t k, size;
        int hrc = cap_store_held_missing(s, wb, roots, nroots, &hs, &cs, &k, &size, err);
        if (hrc != CAP_OK || k == 0) {
            if (hrc == CAP_OK && err)
                *err = keep; /* nothing to add: the hash is missing everywhere */
            rc = hrc == CAP_OK ? CAP_EBLOBMISSING : hrc;
            break;
        }
        if (split) { /* those written already are clean now: only the lost ones */
            flush_set_free(s, &f);
            cap_memset(&f, 0, sizeof f);
        }
        hrc = flush_set_append(s, &f, hs, cs, k);
        if (hrc != CAP_OK)
            for (size_t i = 0; i < k; i++)
                cap_release(cs[i]);
        s->alloc->deallocate(s->alloc->ctx, hs, size);
        if (hrc != CAP_OK) {
            rc = store_fail(err, hrc, "out of memory");
            break;
        }
    }
    if (rc == CAP_OK && !split)
        rc = cap_backend_flush(wb, err);
    if (rc == CAP_OK && !split)
        mark_clean(s, &f); /* only now: a failed write leaves every blob dirty */
    return flush_finish(s, &f, rc, n, written);
}
