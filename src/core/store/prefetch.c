/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* cap_store_prefetch: bring a settled graph into memory a level at a time.
 *
 * Each level (every child of the level before that was not seen yet) is
 * one cap_store_get_blobs call, so the memory misses of a level go to a
 * backend as one read_many: for a remote backend the round trips grow with
 * the graph's depth, not its size. The seen set makes a DAG's shared
 * children one fetch. Nothing recurses; the store's allocator holds the
 * set and the two levels. Freestanding. */
#include "store/store_internal.h"

/* The set of hashes reached: open addressing, load <= 1/2. */
typedef struct seen {
    cap_hash_t *v;
    uint8_t *used;
    size_t cap, n;
} seen_t;

typedef struct level {
    cap_hash_t *v;
    size_t n, cap;
} level_t;

typedef struct prefetch {
    const cap_alloc_t *a;
    seen_t seen;
    level_t next;
} prefetch_t;

static size_t seen_pos(const cap_hash_t *h, size_t cap)
{
    /* SHA-256 outputs: any 8 bytes spread well. */
    return (size_t)(cap_load_le64(h->bytes) * 0x9E3779B97F4A7C15ull >> 7) & (cap - 1);
}

static void seen_place(seen_t *s, const cap_hash_t *h)
{
    size_t i = seen_pos(h, s->cap);
    while (s->used[i])
        i = (i + 1) & (s->cap - 1);
    s->used[i] = 1;
    s->v[i] = *h;
    s->n++;
}

static void seen_free(const cap_alloc_t *a, seen_t *s)
{
    if (s->v)
        a->deallocate(a->ctx, s->v, s->cap * sizeof(cap_hash_t));
    if (s->used)
        a->deallocate(a->ctx, s->used, s->cap);
    cap_memset(s, 0, sizeof *s);
}

/* 1 if added, 0 if already there, CAP_ENOMEM. */
static int seen_add(const cap_alloc_t *a, seen_t *s, const cap_hash_t *h)
{
    if (s->cap) {
        for (size_t i = seen_pos(h, s->cap); s->used[i]; i = (i + 1) & (s->cap - 1))
            if (cap_memcmp(s->v[i].bytes, h->bytes, 32) == 0)
                return 0;
    }
    if ((s->n + 1) * 2 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 1024;
        if (ncap > SIZE_MAX / sizeof(cap_hash_t))
            return CAP_ENOMEM;
        seen_t ns = {(cap_hash_t *)a->allocate(a->ctx, ncap * sizeof(cap_hash_t)),
                     (uint8_t *)a->allocate(a->ctx, ncap), ncap, 0};
        if (!ns.v || !ns.used) {
            seen_free(a, &ns);
            return CAP_ENOMEM;
        }
        cap_memset(ns.used, 0, ncap);
        for (size_t i = 0; i < s->cap; i++)
            if (s->used[i])
                seen_place(&ns, &s->v[i]);
        seen_free(a, s);
        *s = ns;
    }
    seen_place(s, h);
    return 1;
}

static int level_push(const cap_alloc_t *a, level_t *l, const cap_hash_t *h)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        if (ncap > SIZE_MAX / sizeof(cap_hash_t))
            return CAP_ENOMEM;
        cap_hash_t *nv = l->v ? (cap_hash_t *)a->reallocate(a->ctx, l->v, l->cap * sizeof *nv,
                                                            ncap * sizeof *nv)
                              : (cap_hash_t *)a->allocate(a->ctx, ncap * sizeof *nv);
        if (!nv)
            return CAP_ENOMEM;
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = *h;
    return CAP_OK;
}

static void level_free(const cap_alloc_t *a, level_t *l)
{
    if (l->v)
        a->deallocate(a->ctx, l->v, l->cap * sizeof(cap_hash_t));
    cap_memset(l, 0, sizeof *l);
}

static int add_child(void *arg, const cap_child_t *c)
{
    prefetch_t *p = arg;
    if (c->target.kind != CAP_TARGET_HASH)
        return CAP_OK; /* a published cap holds no Ref; nothing to fetch anyway */
    int added = seen_add(p->a, &p->seen, &c->target.hash);
    if (added < 0)
        return added;
    return added ? level_push(p->a, &p->next, &c->target.hash) : CAP_OK;
}

int cap_store_prefetch(cap_store_t *s, const cap_hash_t *root, cap_err_t *err)
{
    if (!s || !root)
        return store_fail(err, CAP_EINVAL, "NULL argument");
    const cap_alloc_t *a = s->alloc;
    prefetch_t p;
    cap_memset(&p, 0, sizeof p);
    p.a = a;
    level_t cur = {(cap_hash_t *)0, 0, 0};
    cap_t **out = (cap_t **)0;
    int *codes = (int *)0;
    size_t room = 0; /* entries of out[] and codes[] */
    int rc = seen_add(a, &p.seen, root);
    if (rc >= 0)
        rc = level_push(a, &cur, root);
    while (rc == CAP_OK && cur.n) {
        if (cur.n > room) {
            if (out)
                a->deallocate(a->ctx, out, room * sizeof *out);
            if (codes)
                a->deallocate(a->ctx, codes, room * sizeof *codes);
            room = cur.n;
            out = (cap_t **)a->allocate(a->ctx, room * sizeof *out);
            codes = (int *)a->allocate(a->ctx, room * sizeof *codes);
            if (!out || !codes) {
                rc = CAP_ENOMEM;
                break;
            }
        }
        /* The whole level at once: memory first, the misses to the
         * backends together, verified and published. */
        rc = cap_store_get_blobs(s, cur.v, cur.n, out, codes, err);
        if (rc != CAP_OK && err) { /* a place in our level: nothing to the caller */
            err->has_index = false;
            err->index = 0;
        }
        p.next.n = 0;
        for (size_t i = 0; i < cur.n; i++) {
            if (rc == CAP_OK && out[i]) {
                int crc = cap_for_each_child(out[i], add_child, &p);
                if (crc != CAP_OK)
                    rc = crc;
            }
            cap_release(out[i]);
        }
        level_t t = cur;
        cur = p.next;
        p.next = t;
    }
    if (out)
        a->deallocate(a->ctx, out, room * sizeof *out);
    if (codes)
        a->deallocate(a->ctx, codes, room * sizeof *codes);
    level_free(a, &cur);
    level_free(a, &p.next);
    seen_free(a, &p.seen);
    if (rc == CAP_ENOMEM && (!err || err->code != CAP_ENOMEM))
        return store_fail(err, CAP_ENOMEM, "out of memory");
    if (rc == CAP_OK)
        store_fail(err, CAP_OK, (const char *)0);
    return rc;
}
