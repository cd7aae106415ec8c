/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Closures inside one LMDB transaction (lmdb_closure.c): the graph below a
 * set of hashes, read with mdb_get in the caller's transaction, so that what
 * it finds holds for exactly what that transaction commits or reads. A
 * root's check when it is set, a collection's mark and its marks again
 * during the sweep are all this walk; cap_backend_walk, by contrast, reads
 * a batch per transaction and suits a backend of any kind. */
#ifndef CAPSTORE_LMDB_CLOSURE_H
#define CAPSTORE_LMDB_CLOSURE_H

#include "hash_set.h"
#include "lmdb_internal.h"

typedef struct cap_lm_closure {
    cap_hset_t set;    /* every hash reached: the starts, then breadth first */
    uint32_t *parent;  /* per entry: 1 + the index of the cap that named it, 0 for a start */
    size_t parent_room;
    size_t done;       /* entries before this one have been read and followed */
    /* Optional overlay: blobs of a batch not yet put (found here first). */
    const cap_backend_item_t *items;
    cap_hset_t item_set;
    size_t *item_of;   /* item_set index -> items index */
    /* What the walk found. */
    uint64_t read;     /* blobs read (stored or in the overlay) */
    uint64_t bytes;    /* their bytes */
    uint64_t missing;  /* hashes stored nowhere */
    uint64_t bad;      /* blobs whose children cannot be read (damaged) */
    size_t first_missing, first_bad; /* entry indices (valid when the count is not 0) */
    /* Optional: called every 4096 blobs read (progress). */
    void (*tick)(void *arg, uint64_t read, uint64_t bytes);
    void *tick_arg;
} cap_lm_closure_t;

void cap_lm_closure_init(cap_lm_closure_t *c);
void cap_lm_closure_free(cap_lm_closure_t *c);
/* The overlay: `n` items, looked up before the database. 0 or ENOMEM. */
int cap_lm_closure_overlay(cap_lm_closure_t *c, const cap_backend_item_t *items, size_t n);
/* Add a start hash: 1 new, 0 already reached, -1 out of memory. */
int cap_lm_closure_add(cap_lm_closure_t *c, const cap_hash_t *h);
/* Read and follow every entry not yet done, in `txn` (of blob database
 * e->dbi), until none is left. 0, an LMDB code, or ENOMEM; the counts say
 * what was missing or bad. A value that lies outside the file counts as
 * bad (the read transaction must not have changed anything yet). */
int cap_lm_closure_run(lmdb_env_t *e, MDB_txn *txn, cap_lm_closure_t *c);
/* Fill *m for the first missing (or bad, `bad`) entry, tracing its parent
 * and the start it was reached from (the index of that start's hash among
 * `starts`, or 0). */
void cap_lm_closure_explain(const cap_lm_closure_t *c, bool bad, const cap_hash_t *starts, size_t nstarts,
                            cap_lm_missing_t *m);

#endif
