/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The LMDB backend's shared parts: the environment (lmdb_env.c: registry,
 * opening, map growth), the backend functions (lmdb_backend.c), the
 * integrity check (lmdb_check.c) and the error texts (lmdb_errors.c). */
#ifndef CAPSTORE_LMDB_INTERNAL_H
#define CAPSTORE_LMDB_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "capstore/persist.h"

typedef struct lmdb_env {
    struct lmdb_env *next;
    dev_t dev;
    ino_t ino;
    pid_t pid;
    unsigned refs;   /* backends sharing this environment */
    bool rdonly;     /* the environment itself is MDB_RDONLY */
    MDB_env *env;
    MDB_dbi dbi;       /* the blobs: "blobs" (format 2) or the unnamed database (format 1) */
    MDB_dbi roots_dbi; /* format 2: name -> hash (lmdb_roots.c) */
    MDB_dbi meta_dbi;  /* format 2: the format record (lmdb_format.c) */
    unsigned format;   /* 2, or 1 for a format-1 file opened read-only */
    size_t max_map;  /* 0: unlimited */
    uint32_t psize;
    pthread_rwlock_t resize;
    uint64_t map_gen; /* bumped (under the exclusive lock) whenever the map changes */
    _Atomic uint64_t file_size; /* bytes known to exist (values past it are refused) */
    char *path;
    /* Where this process maps the file (lmdb_bounds.c), under regions_lock. */
    pthread_rwlock_t regions_lock;
    struct cap_lm_region {
        uintptr_t start, end;
        uint64_t offset;
    } regions[8];
    int nregions;
    bool regions_unknown; /* no /proc/self/maps here: bounds by file size only */
} lmdb_env_t;

typedef struct lmdb_backend {
    cap_backend_t table; /* first: ctx points here */
    lmdb_env_t *e;
    bool readonly;
} lmdb_backend_t;

/* Environments whose resize lock this thread holds shared (a stack). */
typedef struct cap_lm_held {
    lmdb_env_t *e; /* NULL: nested, nothing to release */
    struct cap_lm_held *next;
} cap_lm_held_t;

bool cap_lm_held_by_me(const lmdb_env_t *e);
void cap_lm_enter(lmdb_env_t *e, cap_lm_held_t *frame);
void cap_lm_leave(cap_lm_held_t *frame);
/* Begin a transaction with e's lock held shared through `frame`, adopting
 * a map another process grew (MDB_MAP_RESIZED) as often as that happens.
 * On failure the frame is released. */
int cap_lm_begin(lmdb_env_t *e, cap_lm_held_t *frame, unsigned flags, MDB_txn **txn, uint64_t *gen);
/* Grow the map (lmdb_env.c). */
int cap_lm_grow(lmdb_env_t *e, uint64_t gen, size_t want, cap_err_t *err);
size_t cap_lm_round_up(size_t v, size_t to);

/* Whether a key or value LMDB handed back (in a read transaction, or in a
 * write transaction before it changed anything) lies inside the file as
 * mapped: within a mapping of the file, the pages the file holds, and its
 * own page (an inline value) or overflow run. A damaged size or page
 * number makes LMDB hand back memory past the mapping; nothing reads it
 * before this says yes (lmdb_bounds.c). */
bool cap_lm_val_ok(lmdb_env_t *e, const MDB_val *v);

/* The text of an LMDB or errno code (every code its own) and the failure
 * it makes: CAP_ENOMEM for ENOMEM, else CAP_EBACKEND with what = the text
 * (unknown errno values: "system error", strerror in the detail). */
const char *cap_lmdb_error_text(int rc);
int cap_lm_fail(cap_err_t *err, int rc);
/* A failed write: EIO or ENOSPC while the file system has no room reads
 * "no space left on device" (LMDB reports a short write as EIO). */
int cap_lm_fail_write(lmdb_env_t *e, cap_err_t *err, int rc);

/* The backend's table, filled for `b` (lmdb_backend.c); its `free` is
 * cap_lm_free (lmdb_env.c), which also identifies an LMDB backend. */
void cap_lm_fill_table(lmdb_backend_t *b, bool readonly, unsigned flags);
void cap_lm_free(void *ctx);

/* The environment of an LMDB backend (NULL for another backend). */
lmdb_env_t *cap_lm_env_of(const cap_backend_t *b);

/* Whether this process has the file (device, inode) open (lmdb_env.c). */
bool cap_lm_open_here(dev_t dev, ino_t ino);

/* File format 2 (lmdb_format.c): in the environment's first transaction,
 * open (or create) the "blobs", "roots" and "meta" databases, migrating a
 * format-1 file when the open is writable. Sets e->dbi, e->roots_dbi,
 * e->meta_dbi, e->format. CAP_OK or a failure with err filled. */
#define CAP_LM_MAXDBS 4
int cap_lm_format_setup(lmdb_env_t *e, cap_err_t *err);

/* Private results of the graph checks, beside LMDB's and errno's codes. */
#define CAP_LM_MISSING 0x10001 /* a closure lacks a hash */
#define CAP_LM_BAD 0x10002     /* a blob of a closure has unreadable children */

/* What a closure check found wanting (lmdb_closure.c). */
typedef struct cap_lm_missing {
    cap_hash_t hash;    /* the first hash missing (or bad) */
    bool has_parent;
    cap_hash_t parent;  /* the cap that names it */
    size_t root;        /* the index of the root it was reached from */
    uint64_t count;     /* missing (or bad) hashes in all */
} cap_lm_missing_t;

/* Set `nroots` roots in the write transaction `txn` after checking, before
 * the transaction changes anything, that each root's closure is stored or
 * among `items` (lmdb_roots.c). 0, an LMDB or errno code, CAP_LM_MISSING /
 * CAP_LM_BAD with *miss filled. The checks happen in cap_lm_roots_check
 * (before any put), the puts in cap_lm_roots_put. */
int cap_lm_roots_check(lmdb_env_t *e, MDB_txn *txn, const cap_backend_item_t *items, size_t n,
                       const cap_backend_root_t *roots, size_t nroots, cap_lm_missing_t *miss);
int cap_lm_roots_put(lmdb_env_t *e, MDB_txn *txn, const cap_backend_root_t *roots, size_t nroots);
/* The failure for a closure check's CAP_LM_MISSING / CAP_LM_BAD. */
int cap_lm_missing_fail(cap_err_t *err, int rc, const cap_lm_missing_t *miss, const cap_backend_root_t *roots);

/* Store `n` items and set `nroots` roots (their closures checked) in one
 * transaction: the backend's write_batch and write_many (lmdb_backend.c). */
int cap_lm_put_items(lmdb_backend_t *b, const cap_backend_item_t *items, size_t n, const cap_backend_root_t *roots,
                     size_t nroots, cap_backend_write_result_t *res, cap_err_t *err);

/* The backend's root entries (lmdb_roots.c). */
int cap_lm_root_get(void *ctx, const char *name, cap_hash_t *h, cap_err_t *err);
int cap_lm_root_set(void *ctx, const char *name, const cap_hash_t *h, cap_err_t *err);
int cap_lm_root_delete(void *ctx, const char *name, cap_err_t *err);
int cap_lm_root_list(void *ctx, cap_backend_root_fn fn, void *arg, cap_err_t *err);

/* A write transaction run to its commit (lmdb_txn.c): `fn` does the work in
 * `txn` and returns 0 or a code; a full map is grown and the whole
 * transaction run again (fn must start over each time). Returns CAP_OK, or
 * the failure (LMDB and errno codes through cap_lm_fail_write; a private
 * code is left to `fail`, which fills err, when it is not NULL). */
typedef int (*cap_lm_txn_fn)(lmdb_env_t *e, MDB_txn *txn, void *arg);
typedef int (*cap_lm_fail_fn)(void *arg, int rc, cap_err_t *err);
int cap_lm_write_txn(lmdb_env_t *e, cap_lm_txn_fn fn, cap_lm_fail_fn fail, void *arg, cap_err_t *err);

/* Pages free in the snapshot of `txn` (LMDB's free list), for stats. */
int cap_lm_free_pages(MDB_txn *txn, uint64_t *pages);

#endif
