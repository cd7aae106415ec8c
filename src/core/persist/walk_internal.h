/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The walk engine (walk.c) behind cap_backend_walk and the store's walks
 * (store/walk.c: cap_store_walk, and checkpoint's closure check). A source
 * answers a batch of hashes; the engine keeps the set of hashes seen, the
 * breadth-first order and the result. Not installed. */
#ifndef CAPSTORE_WALK_INTERNAL_H
#define CAPSTORE_WALK_INTERNAL_H

#include "capstore/persist.h"

/* One batch asked of a source. On entry every codes[i] is CAP_EBACKEND,
 * bytes[i] NULL, lens[i] 0, caps[i] NULL. The source sets, per item:
 * CAP_OK with bytes[i]/lens[i] (allocated from the walk's allocator, which
 * the engine frees) or caps[i] (a reference, which the engine releases);
 * CAP_ENOTFOUND; or an item's own error (the walk stops on it). It counts
 * the backend calls it made in `calls` (0 on entry). */
typedef struct walk_batch {
    size_t n;
    const cap_hash_t *hashes;
    uint8_t **bytes;
    size_t *lens;
    int *codes;
    cap_t **caps;
    uint64_t calls; /* out: backend calls the source made (round trips) */
} walk_batch_t;

typedef struct walk_source {
    /* Answer a batch. Returns CAP_OK, or an error of the whole batch (err
     * filled), which stops the walk. */
    int (*read)(void *ctx, walk_batch_t *b, cap_err_t *err);
    void *ctx;
    /* Optional start nodes with their cap in hand (never read): given(ctx,
     * i, &h) for i < ngiven returns the cap (borrowed) and its hash. They
     * are in the seen set before anything is read, so no child equal to
     * one of them is ever asked for. Only their Hash children are followed. */
    size_t ngiven;
    const cap_t *(*given)(void *ctx, size_t i, cap_hash_t *h);
} walk_source_t;

/* The batch size the options ask for (the default when 0). */
size_t walk_batch_size(const cap_walk_options_t *opt);

/* Walk from the given nodes and `roots` (documented at cap_backend_walk).
 * `a` holds the seen set and the batch arrays. */
int walk_run(const walk_source_t *src, const cap_alloc_t *a, const cap_hash_t *roots,
             size_t nroots, const cap_walk_options_t *opt, cap_walk_fn fn, void *arg,
             cap_walk_result_t *res, cap_err_t *err);

#endif
