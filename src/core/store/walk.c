/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Walks through a store: cap_store_walk, and the closure check of
 * checkpoint (store_walk_closure). The engine is persist/walk.c; this file
 * is its source: a hash is looked up in the blob tier first, and the ones
 * memory lacks are asked of the backends in the order attached, a batch
 * per backend call (a backend answering CAP_ENOTFOUND passes the rest on,
 * the first other answer decides, as for the provider). Nothing read is
 * published: a walk does not fill memory. No store lock is held while a
 * backend is called or a cap released. */
#include "persist/walk_internal.h"
#include "store/store_internal.h"

typedef struct store_src {
    cap_store_t *s;
    /* The items memory lacks, asked of the backends: their batch positions,
     * and the arrays read_many fills (one batch's worth each). */
    size_t *pos;
    cap_hash_t *hashes;
    uint8_t **bytes;
    size_t *lens;
    int *codes;
    void *block;
    size_t size;
    /* Start nodes with their cap in hand (checkpoint), else none. */
    const cap_t *(*given)(void *ctx, size_t i, cap_hash_t *h);
    void *given_ctx;
} store_src_t;

/* The blob tier's cap for `h` (a new reference), or NULL. */
static cap_t *memory_get(cap_store_t *s, const cap_hash_t *h)
{
    if (!store_is_ready(s))
        return (cap_t *)0;
    uint64_t mix = store_blob_mix(s, h);
    store_shard_t *sh = store_shard(s, store_blob_shard(mix));
    store_lock(s, sh->lock);
    size_t b = store_blob_find(sh, h, mix);
    cap_t *c = b == SIZE_MAX ? (cap_t *)0 : cap_retain(store_slot_cap(&store_blob_table(sh)->slots[b]));
    store_unlock(s, sh->lock);
    return c;
}

static int store_read(void *ctx, walk_batch_t *bt, cap_err_t *err)
{
    store_src_t *x = ctx;
    cap_store_t *s = x->s;
    size_t m = 0;
    for (size_t i = 0; i < bt->n; i++) {
        bt->caps[i] = memory_get(s, &bt->hashes[i]);
        if (bt->caps[i]) {
            bt->codes[i] = CAP_OK;
        } else {
            bt->codes[i] = CAP_ENOTFOUND;
            x->pos[m] = i;
            x->hashes[m++] = bt->hashes[i];
        }
    }
    unsigned nb = store_backend_count(s);
    for (unsigned k = 0; k < nb && m; k++) {
        const cap_backend_t *b = s->backends[k];
        bt->calls++;
        int rc = cap_backend_read_many(b, x->hashes, m, s->alloc, x->bytes, x->lens, x->codes, err);
        size_t left = 0;
        for (size_t j = 0; j < m; j++) {
            size_t i = x->pos[j];
            if (rc == CAP_OK && x->codes[j] == CAP_ENOTFOUND) {
                x->pos[left] = i; /* ask the next backend */
                x->hashes[left++] = x->hashes[j];
                continue;
            }
            bt->codes[i] = x->codes[j];
            bt->bytes[i] = x->bytes[j];
            bt->lens[i] = x->lens[j];
        }
        if (rc != CAP_OK)
            return rc; /* the engine frees what was read */
        m = left;
    }
    return CAP_OK;
}

static const cap_t *src_given(void *ctx, size_t i, cap_hash_t *h)
{
    const store_src_t *x = ctx;
    return x->given(x->given_ctx, i, h);
}

static int walk(cap_store_t *s, const cap_hash_t *roots, size_t nroots, size_t ngiven,
                const cap_t *(*given)(void *, size_t, cap_hash_t *), void *given_ctx,
                const cap_walk_options_t *opt, cap_walk_fn fn, void *arg, cap_walk_result_t *res,
                cap_err_t *err)
{
    const cap_alloc_t *a = s->alloc;
    size_t k = walk_batch_size(opt);
    size_t per = sizeof(cap_hash_t) + sizeof(size_t) + sizeof(uint8_t *) + sizeof(size_t) +
                 sizeof(int);
    if (k > SIZE_MAX / per) {
        if (res)
            cap_memset(res, 0, sizeof *res);
        return store_fail(err, CAP_EINVAL, "walk options: batch too large");
    }
    store_src_t x;
    cap_memset(&x, 0, sizeof x);
    x.s = s;
    x.size = k * per;
    uint8_t *p = a->allocate(a->ctx, x.size);
    if (!p) {
        if (res)
            cap_memset(res, 0, sizeof *res);
        return store_fail(err, CAP_ENOMEM, "out of memory");
    }
    x.block = p;
    x.hashes = (cap_hash_t *)(void *)p;
    x.pos = (size_t *)(void *)(p + k * sizeof(cap_hash_t));
    x.bytes = (uint8_t **)(void *)(p + k * (sizeof(cap_hash_t) + sizeof(size_t)));
    x.lens = (size_t *)(void *)(p + k * (sizeof(cap_hash_t) + sizeof(size_t) + sizeof(uint8_t *)));
    x.codes = (int *)(void *)(p + k * (sizeof(cap_hash_t) + 2 * sizeof(size_t) + sizeof(uint8_t *)));
    x.given = given;
    x.given_ctx = given_ctx;
    walk_source_t src = {store_read, &x, ngiven, given ? src_given : 0};
    int rc = walk_run(&src, a, roots, nroots, opt, fn, arg, res, err);
    a->deallocate(a->ctx, p, x.size);
    return rc;
}

int cap_store_walk(cap_store_t *s, const cap_hash_t *roots, size_t nroots,
                   const cap_walk_options_t *opt, cap_walk_fn fn, void *arg,
                   cap_walk_result_t *res, cap_err_t *err)
{
    if (!s) {
        if (res)
            cap_memset(res, 0, sizeof *res);
        return store_fail(err, CAP_EINVAL, "NULL store");
    }
    return walk(s, roots, nroots, 0, 0, 0, opt, fn, arg, res, err);
}

int store_walk_closure(cap_store_t *s, size_t ngiven,
                       const cap_t *(*given)(void *ctx, size_t i, cap_hash_t *h), void *ctx,
                       cap_err_t *err)
{
    return walk(s, (const cap_hash_t *)0, 0, ngiven, given, ctx, (const cap_walk_options_t *)0,
                (cap_walk_fn)0, (void *)0, (cap_walk_result_t *)0, err);
}
