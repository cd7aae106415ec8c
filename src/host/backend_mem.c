/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* An in-memory blob backend (persist.h: cap_mem_backend_new): an
 * open-addressing table of (hash, bytes) under a reader-writer lock. Bytes
 * are copied in with the backend's allocator and out with the caller's.
 * Writes repair, as every backend's (sys/backend.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/host.h"
#include "capstore/persist.h"

typedef struct mem_entry {
    cap_hash_t hash;
    uint8_t *bytes; /* NULL when n == 0 */
    size_t n;
    int used;
    uint64_t batch; /* the write that last stored it */
} mem_entry_t;

typedef struct mem_backend {
    cap_backend_t table; /* first: the backend's ctx is this struct */
    const cap_alloc_t *alloc;
    pthread_rwlock_t lock;
    mem_entry_t *slots;
    size_t cap;   /* power of two, or 0 */
    size_t count;
    uint64_t batches; /* writes so far */
} mem_backend_t;

static void mem_free(void *ctx);

static size_t slot_of(const cap_hash_t *h, size_t cap)
{
    uint64_t v;
    memcpy(&v, h->bytes, 8);
    v ^= v >> 29;
    v *= 0xbf58476d1ce4e5b9ull;
    v ^= v >> 32;
    return (size_t)v & (cap - 1);
}

/* Index of h's entry, or of the free slot where it would go. cap > 0. */
static size_t find(const mem_entry_t *slots, size_t cap, const cap_hash_t *h)
{
    size_t i = slot_of(h, cap);
    while (slots[i].used && memcmp(slots[i].hash.bytes, h->bytes, 32) != 0) i = (i + 1) & (cap - 1);
    return i;
}

/* Make room for `extra` more entries (load <= 1/2). Called with the write lock. */
static int reserve(mem_backend_t *m, size_t extra)
{
    size_t need = m->count + extra;
    if (need <= m->cap / 2) return CAP_OK;
    size_t ncap = m->cap ? m->cap : 16;
    while (need > ncap / 2) {
        if (ncap > ((size_t)-1) / 2 / sizeof(mem_entry_t)) return CAP_ENOMEM;
        ncap *= 2;
    }
    mem_entry_t *ns = m->alloc->allocate(m->alloc->ctx, ncap * sizeof(mem_entry_t));
    if (!ns) return CAP_ENOMEM;
    memset(ns, 0, ncap * sizeof(mem_entry_t));
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].used) ns[find(ns, ncap, &m->slots[i].hash)] = m->slots[i];
    if (m->slots) m->alloc->deallocate(m->alloc->ctx, m->slots, m->cap * sizeof(mem_entry_t));
    m->slots = ns;
    m->cap = ncap;
    return CAP_OK;
}

static int mem_read(void *ctx, const cap_hash_t *h, const cap_alloc_t *a, uint8_t **bytes, size_t *n,
                    cap_err_t *err)
{
    mem_backend_t *m = ctx;
    *bytes = NULL;
    *n = 0;
    int rc = CAP_OK;
    pthread_rwlock_rdlock(&m->lock);
    if (m->cap == 0) {
        rc = CAP_ENOTFOUND;
    } else {
        const mem_entry_t *e = &m->slots[find(m->slots, m->cap, h)];
        if (!e->used) {
            rc = CAP_ENOTFOUND;
        } else if (e->n) {
            uint8_t *p = a->allocate(a->ctx, e->n);
            if (!p) {
                rc = CAP_ENOMEM;
            } else {
                memcpy(p, e->bytes, e->n);
                *bytes = p;
                *n = e->n;
            }
        }
    }
    pthread_rwlock_unlock(&m->lock);
    if (rc == CAP_ENOTFOUND) return cap_backend_fail(err, rc, "not stored");
    if (rc == CAP_ENOMEM) return cap_backend_fail(err, rc, "out of memory");
    return rc;
}

static int mem_exists(void *ctx, const cap_hash_t *h, cap_err_t *err)
{
    mem_backend_t *m = ctx;
    pthread_rwlock_rdlock(&m->lock);
    int found = m->cap && m->slots[find(m->slots, m->cap, h)].used;
    pthread_rwlock_unlock(&m->lock);
    return found ? CAP_OK : cap_backend_fail(err, CAP_ENOTFOUND, "not stored");
}

/* Copies of every item's bytes, made before taking the lock so that a failure
 * changes nothing. copies[i] is NULL for an empty item. */
static void free_copies(mem_backend_t *m, uint8_t **copies, const cap_backend_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (copies[i]) m->alloc->deallocate(m->alloc->ctx, copies[i], items[i].n);
}

/* Store the items: a hash not held is added (written); one held with other
 * bytes gets the new ones when cap_backend_replaces says so (damage, or a
 * copy with more pages missing: repaired), else keeps its own; one held
 * with the same bytes is left alone. All or nothing: every copy is made before the table changes. */
static int mem_put(mem_backend_t *m, const cap_backend_item_t *items, size_t n, cap_backend_write_result_t *res,
                   cap_err_t *err)
{
    res->written = res->repaired = 0;
    if (n == 0) return CAP_OK;
    if (n > ((size_t)-1) / sizeof(uint8_t *)) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    uint8_t **copies = m->alloc->allocate(m->alloc->ctx, n * sizeof(uint8_t *));
    if (!copies) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        copies[i] = NULL;
        if (items[i].n == 0) continue;
        copies[i] = m->alloc->allocate(m->alloc->ctx, items[i].n);
        if (!copies[i]) {
            free_copies(m, copies, items, i);
            m->alloc->deallocate(m->alloc->ctx, copies, n * sizeof(uint8_t *));
            return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
        }
        memcpy(copies[i], items[i].bytes, items[i].n);
    }
    /* Replaced bytes are freed after the lock, in the copies' slots. */
    size_t *old_n = m->alloc->allocate(m->alloc->ctx, n * sizeof(size_t));
    if (!old_n) {
        free_copies(m, copies, items, n);
        m->alloc->deallocate(m->alloc->ctx, copies, n * sizeof(uint8_t *));
        return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) old_n[i] = items[i].n;
    uint8_t *keep = m->alloc->allocate(m->alloc->ctx, n); /* keep[i]: the stored bytes stay */
    if (!keep) {
        free_copies(m, copies, items, n);
        m->alloc->deallocate(m->alloc->ctx, copies, n * sizeof(uint8_t *));
        m->alloc->deallocate(m->alloc->ctx, old_n, n * sizeof(size_t));
        return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    }
    pthread_rwlock_wrlock(&m->lock);
    int rc = reserve(m, n);
    /* Every decision first, so that a failure changes nothing. */
    for (size_t i = 0; i < n && rc == CAP_OK; i++) {
        const mem_entry_t *e = &m->slots[find(m->slots, m->cap, &items[i].hash)];
        bool replace = true;
        keep[i] = 0;
        if (!e->used || (e->n == items[i].n && (e->n == 0 || memcmp(e->bytes, items[i].bytes, e->n) == 0)))
            continue;
        if (cap_backend_replaces(&items[i].hash, e->bytes, e->n, items[i].bytes, items[i].n, m->alloc, &replace) !=
            CAP_OK)
            rc = CAP_ENOMEM;
        keep[i] = !replace;
    }
    uint64_t batch = ++m->batches;
    if (rc == CAP_OK) {
        for (size_t i = 0; i < n; i++) {
            mem_entry_t *e = &m->slots[find(m->slots, m->cap, &items[i].hash)];
            if (e->used && e->batch == batch) { /* named twice in the batch: the fuller copy stays */
                bool replace = false;
                if ((e->n != items[i].n || (e->n && memcmp(e->bytes, items[i].bytes, e->n) != 0)) &&
                    cap_backend_replaces(&items[i].hash, e->bytes, e->n, items[i].bytes, items[i].n, m->alloc,
                                         &replace) == CAP_OK &&
                    replace) {
                    uint8_t *old = e->bytes;
                    old_n[i] = e->n;
                    e->bytes = copies[i];
                    e->n = items[i].n;
                    copies[i] = old;
                }
                continue;
            }
            e->batch = batch;
            if (e->used) {
                if (e->n == items[i].n && (e->n == 0 || memcmp(e->bytes, items[i].bytes, e->n) == 0))
                    continue; /* content addressed: already there */
                if (keep[i]) continue; /* a sound encoding that knows as much */
                uint8_t *old = e->bytes; /* damaged, or fewer pages known: replace */
                old_n[i] = e->n;
                e->bytes = copies[i];
                e->n = items[i].n;
                copies[i] = old;
                res->repaired++;
                continue;
            }
            e->used = 1;
            e->hash = items[i].hash;
            e->bytes = copies[i];
            e->n = items[i].n;
            copies[i] = NULL;
            m->count++;
            res->written++;
        }
    }
    pthread_rwlock_unlock(&m->lock);
    /* Duplicates and replaced bytes, or everything on failure. */
    for (size_t i = 0; i < n; i++)
        if (copies[i] && old_n[i]) m->alloc->deallocate(m->alloc->ctx, copies[i], old_n[i]);
    m->alloc->deallocate(m->alloc->ctx, old_n, n * sizeof(size_t));
    m->alloc->deallocate(m->alloc->ctx, copies, n * sizeof(uint8_t *));
    m->alloc->deallocate(m->alloc->ctx, keep, n);
    if (rc != CAP_OK) {
        res->written = res->repaired = 0;
        return cap_backend_fail(err, rc, "out of memory");
    }
    return CAP_OK;
}

static int mem_write_batch(void *ctx, const cap_backend_item_t *items, size_t n, cap_err_t *err)
{
    cap_backend_write_result_t res;
    return mem_put(ctx, items, n, &res, err);
}

static int mem_write_many(void *ctx, const cap_backend_item_t *items, size_t n, const cap_backend_root_t *roots,
                          size_t nroots, cap_backend_write_result_t *res, cap_err_t *err)
{
    (void)roots;
    cap_backend_write_result_t local;
    if (!res) res = &local;
    res->written = res->repaired = 0;
    if (nroots) return cap_backend_fail(err, CAP_EBACKEND, "roots not supported");
    return mem_put(ctx, items, n, res, err);
}

/* read_many and exists_many: one look under one read lock (one snapshot). */
static int mem_many(mem_backend_t *m, const cap_hash_t *hashes, size_t n, const cap_alloc_t *a, uint8_t **bytes,
                    size_t *lens, int *codes, cap_err_t *err)
{
    pthread_rwlock_rdlock(&m->lock);
    for (size_t i = 0; i < n; i++) {
        if (bytes) {
            bytes[i] = NULL;
            lens[i] = 0;
        }
        const mem_entry_t *e = m->cap ? &m->slots[find(m->slots, m->cap, &hashes[i])] : NULL;
        if (!e || !e->used) {
            codes[i] = CAP_ENOTFOUND;
            continue;
        }
        codes[i] = CAP_OK;
        if (bytes && e->n) {
            uint8_t *p = a->allocate(a->ctx, e->n);
            if (!p) {
                codes[i] = CAP_ENOMEM;
                continue;
            }
            memcpy(p, e->bytes, e->n);
            bytes[i] = p;
            lens[i] = e->n;
        }
    }
    pthread_rwlock_unlock(&m->lock);
    cap_backend_fail(err, CAP_OK, NULL);
    return CAP_OK;
}

static int mem_read_many(void *ctx, const cap_hash_t *hashes, size_t n, const cap_alloc_t *a, uint8_t **bytes,
                         size_t *lens, int *codes, cap_err_t *err)
{
    return mem_many(ctx, hashes, n, a, bytes, lens, codes, err);
}

static int mem_exists_many(void *ctx, const cap_hash_t *hashes, size_t n, int *codes, cap_err_t *err)
{
    return mem_many(ctx, hashes, n, NULL, NULL, NULL, codes, err);
}

static int mem_iterate(void *ctx, cap_backend_iter_fn fn, void *arg, cap_err_t *err)
{
    (void)err;
    mem_backend_t *m = ctx;
    int rc = CAP_OK;
    pthread_rwlock_rdlock(&m->lock);
    for (size_t i = 0; i < m->cap && rc == 0; i++)
        if (m->slots[i].used) rc = fn(arg, &m->slots[i].hash, m->slots[i].bytes, m->slots[i].n);
    pthread_rwlock_unlock(&m->lock);
    return rc;
}

static void mem_free(void *ctx)
{
    mem_backend_t *m = ctx;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].used && m->slots[i].bytes)
            m->alloc->deallocate(m->alloc->ctx, m->slots[i].bytes, m->slots[i].n);
    if (m->slots) m->alloc->deallocate(m->alloc->ctx, m->slots, m->cap * sizeof(mem_entry_t));
    pthread_rwlock_destroy(&m->lock);
    const cap_alloc_t *a = m->alloc;
    a->deallocate(a->ctx, m, sizeof *m);
}

int cap_mem_backend_new(const cap_alloc_t *a, cap_backend_t **out)
{
    if (!out) return CAP_EINVAL;
    *out = NULL;
    if (!a) a = cap_alloc_libc();
    mem_backend_t *m = a->allocate(a->ctx, sizeof *m);
    if (!m) return CAP_ENOMEM;
    memset(m, 0, sizeof *m);
    if (pthread_rwlock_init(&m->lock, NULL) != 0) {
        a->deallocate(a->ctx, m, sizeof *m);
        return CAP_ENOMEM;
    }
    m->alloc = a;
    cap_backend_t t = CAP_BACKEND_INIT;
    t.name = "mem";
    t.ctx = m;
    t.read = mem_read;
    t.write_batch = mem_write_batch;
    t.exists = mem_exists;
    t.iterate = mem_iterate;
    t.free = mem_free;
    t.read_many = mem_read_many;
    t.exists_many = mem_exists_many;
    t.write_many = mem_write_many;
    m->table = t;
    *out = &m->table;
    return CAP_OK;
}

size_t cap_mem_backend_count(const cap_backend_t *b)
{
    if (!b || b->free != mem_free) return 0;
    mem_backend_t *m = b->ctx;
    pthread_rwlock_rdlock(&m->lock);
    size_t n = m->count;
    pthread_rwlock_unlock(&m->lock);
    return n;
}
