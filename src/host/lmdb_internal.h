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
    MDB_dbi dbi;
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

#endif
