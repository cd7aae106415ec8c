/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* A page-by-page walk of LMDB's B-trees with pread (lmdb_walk.c): every
 * page's header, bounds and nodes, key order against the parent's
 * separators, overflow runs, and — with accounting on — every page of the
 * file used once: by a tree, an overflow run, the free list or a meta page.
 * What `mdb_stat` and LMDB's debug audit look at, without trusting a byte. */
#ifndef CAPSTORE_LMDB_WALK_H
#define CAPSTORE_LMDB_WALK_H

#include "lmdb_file.h"

/* Key order of a tree. */
#define LMF_KEYS_MEMCMP 0 /* LMDB's default: bytes, then length */
#define LMF_KEYS_INTEGER 1 /* native unsigned integers (the free list's txn ids) */
#define LMF_KEYS_ANY 2    /* not checked (a named database of unknown flags) */

typedef struct cap_lmf_walk {
    const cap_lmf_file_t *f;
    uint64_t last_pg;
    uint8_t *seen; /* one bit per page 0..last_pg (accounting), or NULL */
    /* A problem found: its page (UINT64_MAX: none), the key concerned (NULL:
     * none), and a sentence. */
    void (*problem)(void *arg, uint64_t page, const uint8_t *key, size_t ksize, const char *text);
    /* Each page the free list names (cap_lmf_walk_free), once. May be NULL. */
    void (*free_page)(void *arg, uint64_t pgno);
    void *arg;
    uint64_t problems;
    /* What the last cap_lmf_walk_tree found. */
    uint64_t branch, leaf, overflow, entries;
    uint64_t free_pages; /* named by the free list (cap_lmf_walk_free) */
} cap_lmf_walk_t;

/* Set up a walk of the snapshot whose last page is `last_pg`; with
 * `account`, a bitmap of its pages (pages 0 and 1 marked). False when the
 * bitmap cannot be allocated. */
bool cap_lmf_walk_init(cap_lmf_walk_t *w, const cap_lmf_file_t *f, uint64_t last_pg, bool account);
void cap_lmf_walk_fini(cap_lmf_walk_t *w);

/* Walk the tree described by `db` (`name` for messages), its keys in
 * `keys` order, each `key_size` bytes unless 0. Problems go to w->problem;
 * the counts to w->branch ... w->entries, and are compared with the
 * record's. */
void cap_lmf_walk_tree(cap_lmf_walk_t *w, const cap_lmf_db_t *db, const char *name, int keys, size_t key_size);

/* Walk the free database and every page its lists name. */
void cap_lmf_walk_free(cap_lmf_walk_t *w, const cap_lmf_db_t *free_db);

/* With accounting: how many of pages 0..last_pg nothing uses, and the
 * first of them. */
uint64_t cap_lmf_walk_unaccounted(const cap_lmf_walk_t *w, uint64_t *first);

#endif
