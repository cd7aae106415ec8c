/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The blobs of some roots' graphs that memory holds and a backend lacks
 * (store_internal.h: cap_store_held_missing), which cap_store_flush_roots
 * writes again when the backend refuses a root for a missing hash: a
 * collection may have removed blobs that this store still holds clean
 * (fetched, or flushed earlier without a root). A store walk finds them
 * (memory first; nothing published), and the backend's exists_many says
 * which it lacks. */
#include "store/store_internal.h"

typedef struct held {
    cap_store_t *s;
    cap_hash_t *hashes;
    cap_t **caps;
    size_t n, room;
    bool nomem;
} held_t;

static void held_drop(held_t *h)
{
    const cap_alloc_t *a = h->s->alloc;
    for (size_t i = 0; i < h->n; i++)
        cap_release(h->caps[i]);
    if (h->room) {
        a->deallocate(a->ctx, h->hashes, h->room * sizeof(cap_hash_t));
        a->deallocate(a->ctx, h->caps, h->room * sizeof(cap_t *));
    }
    h->hashes = (cap_hash_t *)0;
    h->caps = (cap_t **)0;
    h->n = h->room = 0;
}

static int grow(held_t *h)
{
    const cap_alloc_t *a = h->s->alloc;
    size_t room = h->room ? h->room * 2 : 64;
    cap_hash_t *hs = a->allocate(a->ctx, room * sizeof *hs);
    cap_t **cs = a->allocate(a->ctx, room * sizeof *cs);
    if (!hs || !cs) {
        if (hs)
            a->deallocate(a->ctx, hs, room * sizeof *hs);
        if (cs)
            a->deallocate(a->ctx, cs, room * sizeof *cs);
        return CAP_ENOMEM;
    }
    if (h->room) {
        cap_memcpy(hs, h->hashes, h->n * sizeof *hs);
        cap_memcpy(cs, h->caps, h->n * sizeof *cs);
        a->deallocate(a->ctx, h->hashes, h->room * sizeof(cap_hash_t));
        a->deallocate(a->ctx, h->caps, h->room * sizeof(cap_t *));
    }
    h->hashes = hs;
    h->caps = cs;
    h->room = room;
    return CAP_OK;
}

/* A cap held in memory comes without bytes (walk.h). */
static int visit(void *arg, const cap_walk_visit_t *v)
{
    held_t *h = arg;
    if (!v->cap || v->bytes)
        return 0;
    if (h->n == h->room && grow(h) != CAP_OK) {
        h->nomem = true;
        return CAP_ENOMEM;
    }
    h->hashes[h->n] = v->hash;
    h->caps[h->n++] = cap_retain((cap_t *)v->cap);
    return 0;
}

#define PROBE 256

int cap_store_held_missing(cap_store_t *s, const cap_backend_t *b, const cap_backend_root_t *roots,
                           size_t nroots, cap_hash_t **hashes, cap_t ***caps, size_t *n,
                           size_t *size, cap_err_t *err)
{
    const cap_alloc_t *a = s->alloc;
    *hashes = (cap_hash_t *)0;
    *caps = (cap_t **)0;
    *n = *size = 0;
    if (nroots == 0)
        return CAP_OK;
    cap_hash_t *starts = a->allocate(a->ctx, nroots * sizeof *starts);
    if (!starts)
        return store_fail(err, CAP_ENOMEM, "out of memory");
    for (size_t i = 0; i < nroots; i++)
        starts[i] = roots[i].hash;
    held_t h = {s, (cap_hash_t *)0, (cap_t **)0, 0, 0, false};
    int rc = cap_store_walk(s, starts, nroots, (const cap_walk_options_t *)0, visit, &h,
                            (cap_walk_result_t *)0, err);
    a->deallocate(a->ctx, starts, nroots * sizeof *starts);
    if (h.nomem) {
        held_drop(&h);
        return store_fail(err, CAP_ENOMEM, "out of memory");
    }
    /* Missing elsewhere is what the caller is finding out about: only the
     * walk's own failures count. */
    if (rc != CAP_OK && rc != CAP_EBLOBMISSING && rc != CAP_EDECODE && rc != CAP_EMISMATCH) {
        held_drop(&h);
        return rc;
    }
    /* Keep those the backend lacks, in place. */
    size_t kept = 0;
    int codes[PROBE];
    for (size_t at = 0; at < h.n; at += PROBE) {
        size_t k = h.n - at < PROBE ? h.n - at : PROBE;
        rc = cap_backend_exists_many(b, h.hashes + at, k, codes, err);
        if (rc != CAP_OK) {
            held_drop(&h);
            return rc;
        }
        for (size_t j = 0; j < k; j++) {
            cap_t *c = h.caps[at + j];
            if (codes[j] == CAP_ENOTFOUND) {
                h.hashes[kept] = h.hashes[at + j];
                h.caps[kept++] = c;
            } else {
                cap_release(c);
            }
        }
    }
    if (kept == 0) {
        h.n = 0;
        held_drop(&h);
        return store_fail(err, CAP_OK, (const char *)0);
    }
    /* One block, as the caller frees it: hashes, then caps. */
    size_t bytes = kept * (sizeof(cap_hash_t) + sizeof(cap_t *));
    uint8_t *block = a->allocate(a->ctx, bytes);
    if (!block) {
        h.n = kept;
        held_drop(&h);
        return store_fail(err, CAP_ENOMEM, "out of memory");
    }
    cap_memcpy(block, h.hashes, kept * sizeof(cap_hash_t));
    cap_memcpy(block + kept * sizeof(cap_hash_t), h.caps, kept * sizeof(cap_t *));
    *hashes = (cap_hash_t *)(void *)block;
    *caps = (cap_t **)(void *)(block + kept * sizeof(cap_hash_t));
    *n = kept;
    *size = bytes;
    h.n = 0; /* the references moved to the block */
    held_drop(&h);
    return store_fail(err, CAP_OK, (const char *)0);
}
