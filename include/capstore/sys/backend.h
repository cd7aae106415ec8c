/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore — the interface for blob backend authors.
 *
 * A backend keeps blobs outside memory: wire-form bytes (cap-schema.md,
 * "Wire form") keyed by their 32-byte cap hash. The store asks its backends
 * for a hash it does not hold and hands them the blobs it flushes; users
 * normally only open one (persist.h: cap_lmdb_open, cap_mem_backend_new) and
 * attach it. This header is for those who write a backend, as libgit2 keeps
 * git2/sys/odb_backend.h apart from git2/odb.h.
 *
 * A backend is a versioned table of functions that all receive the table's
 * `ctx`. Whoever creates the table fills `version` with CAP_BACKEND_VERSION
 * (use CAP_BACKEND_INIT), so that a library built against a later version
 * can recognise an older table. Optional entries may be NULL; the
 * cap_backend_* wrappers below supply the fallbacks, and are what callers
 * (the store, the tools) use rather than the raw pointers.
 *
 * Rules every backend follows:
 *   - Content addressing: `write` of a hash already held with the same
 *     bytes changes nothing. Equal hashes need not mean equal bytes (a Data
 *     page hashes alike loaded, empty or missing), so a hash held with
 *     *other* bytes is decided by cap_backend_replaces: when the new bytes
 *     are an encoding of the hash, stored bytes that are not (damaged,
 *     poisoned) are overwritten with them in the same transaction, as is an
 *     encoding that leaves more pages missing than the new one; any other
 *     stored value is kept.
 *     Writers hand over verified bytes. A replacement is counted as repaired
 *     where the backend reports counts (write_many). A backend does not hash
 *     what it is given otherwise; readers verify (cap_persist_fetch), unless
 *     the backend is flagged CAP_BACKEND_TRUSTED.
 *   - Errors are returned, never raised: CAP_ENOTFOUND for an absent hash,
 *     CAP_ENOMEM when the caller's allocator fails, CAP_EBACKEND for anything
 *     else (I/O, full disk, closed, read-only) with err->what set to static
 *     text naming the reason. A backend never aborts the process and never
 *     leaves a partial batch behind when it reports failure.
 *   - Thread safety: every entry may be called from several threads at once
 *     (the store calls its backends without holding its own lock).
 *   - `err` arguments may be NULL.
 *
 * Freestanding: this header needs only common.h, so a guest kernel can
 * implement a backend over its own transport. */
#ifndef CAPSTORE_SYS_BACKEND_H
#define CAPSTORE_SYS_BACKEND_H

#include "capstore/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The table version this header describes. Version 1 tables (the fields
 * up to `free`) keep working: the wrappers read the version-2 entries only
 * from tables that say version >= 2, and fall back as documented. */
#define CAP_BACKEND_VERSION 2u

/** Backend flags (cap_backend_t.flags). */
#define CAP_BACKEND_TRUSTED 1u  /**< reads need no hash verification (decode still strict) */
#define CAP_BACKEND_READONLY 2u /**< writes fail with CAP_EBACKEND ("read-only") */
/** A failed batch write may have stored part of the batch (a sharded
 * engine cannot make it all-or-nothing). For such a backend a flush writes
 * the blobs first, waits until they are durable (flush), and only then sets
 * roots, in a second call. */
#define CAP_BACKEND_NONATOMIC_BATCH 4u

/** Longest root name, in bytes (names: 1..255 of [A-Za-z0-9._/-], not made
 * of hex digits only; cap_root_name_valid checks). */
#define CAP_ROOT_NAME_MAX 255

/** One blob of a batch: its hash and its wire bytes (borrowed for the call). */
typedef struct cap_backend_item {
    cap_hash_t hash;
    const uint8_t *bytes;
    size_t n;
} cap_backend_item_t;

/** A named root of a batch write: `name` -> `hash` (both borrowed). */
typedef struct cap_backend_root {
    const char *name;
    cap_hash_t hash;
} cap_backend_root_t;

/** What a write_many did (filled on CAP_OK). */
typedef struct cap_backend_write_result {
    size_t written;  /**< items that were not stored before */
    size_t repaired; /**< items stored with other (damaged) bytes, now replaced */
} cap_backend_write_result_t;

/** Root listing callback: one root, `name` borrowed for the call. Return 0
 * to go on; any other value stops the listing, which returns that value. */
typedef int (*cap_backend_root_fn)(void *arg, const char *name, const cap_hash_t *h);

/** Iteration callback: one stored blob, its bytes borrowed for the call.
 * Return 0 to go on; any other value stops the iteration, which then
 * returns that value. */
typedef int (*cap_backend_iter_fn)(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n);

typedef struct cap_backend cap_backend_t;

struct cap_backend {
    /** CAP_BACKEND_VERSION when the table was written (checked first). */
    unsigned version;
    /** CAP_BACKEND_TRUSTED, CAP_BACKEND_READONLY. */
    unsigned flags;
    /** Short static name for messages ("lmdb", "mem", "fault"). May be NULL. */
    const char *name;
    /** Passed to every function below. */
    void *ctx;

    /** Required. Look `h` up. Found: *bytes = a new buffer of *n bytes from
     * `a` (the caller frees it with a->deallocate(a->ctx, *bytes, *n)), or
     * *bytes = NULL when *n == 0 (nothing to free). Absent: CAP_ENOTFOUND,
     * *bytes = NULL, *n = 0. Also CAP_ENOMEM, CAP_EBACKEND. */
    int (*read)(void *ctx, const cap_hash_t *h, const cap_alloc_t *a, uint8_t **bytes, size_t *n,
                cap_err_t *err);

    /** Store `n` bytes under `h` (write-through: durable when it returns
     * CAP_OK, if the backend is durable at all). Idempotent. A writable
     * backend has `write`, `write_batch` or both; NULL here: the wrapper
     * writes one item as a batch of one. */
    int (*write)(void *ctx, const cap_hash_t *h, const uint8_t *bytes, size_t n, cap_err_t *err);

    /** Store `n` items in one transaction: on CAP_OK all of them are
     * stored (and durable), on failure none of them is. NULL: the wrapper
     * writes the items one by one with `write` (not atomic). */
    int (*write_batch)(void *ctx, const cap_backend_item_t *items, size_t n, cap_err_t *err);

    /** Optional. Make every write that returned CAP_OK durable (for backends
     * that buffer). NULL: nothing to do. */
    int (*flush)(void *ctx, cap_err_t *err);

    /** Optional. CAP_OK if `h` is stored, CAP_ENOTFOUND if not, or an error.
     * NULL: the wrapper calls `read` with an allocator that refuses every
     * block and notes whether it was asked (a backend asks for the buffer
     * only once it has found the blob). */
    int (*exists)(void *ctx, const cap_hash_t *h, cap_err_t *err);

    /** Optional. Call `fn` once per stored blob, in an order of the
     * backend's choosing, over a consistent snapshot. `fn` may call `read`
     * and `exists` on the same backend. Returns CAP_OK after the last blob,
     * or what `fn` returned when it stopped early, or an error.
     * NULL: cap_backend_iterate returns CAP_EBACKEND ("iterate not supported"). */
    int (*iterate)(void *ctx, cap_backend_iter_fn fn, void *arg, cap_err_t *err);

    /** Optional. Release the backend: `ctx` and, if the backend allocated
     * it, this table. Called once, by cap_backend_free, when no other call
     * is in flight. */
    void (*free)(void *ctx);

    /* Version 2 ------------------------------------------------------------------------- */

    /** Optional. Look up `n` hashes at once (one round trip, one snapshot).
     * For each i: codes[i] = CAP_OK with bytes[i]/lens[i] as `read` gives
     * them (allocated from `a`), or CAP_ENOTFOUND, or a per-item error, with
     * bytes[i] = NULL, lens[i] = 0. Returns CAP_OK when every item has its
     * code, or an error of the whole call (then every item that has no
     * CAP_OK code has that error; items already CAP_OK stay, and the caller
     * frees them). NULL: the wrapper calls `read` n times. */
    int (*read_many)(void *ctx, const cap_hash_t *hashes, size_t n, const cap_alloc_t *a,
                     uint8_t **bytes, size_t *lens, int *codes, cap_err_t *err);

    /** Optional. codes[i] = CAP_OK (stored), CAP_ENOTFOUND, or an error, for
     * `n` hashes at once. Returns as read_many. NULL: cap_backend_exists n
     * times. */
    int (*exists_many)(void *ctx, const cap_hash_t *hashes, size_t n, int *codes, cap_err_t *err);

    /** Optional. Store `n` items and then set `nroots` roots, as one
     * transaction unless CAP_BACKEND_NONATOMIC_BATCH. Writing a root checks
     * that its graph is complete (every hash reachable from it stored, or
     * among the items): CAP_EBLOBMISSING (err->hash: the first missing one)
     * otherwise, and nothing is written. `res` (may be NULL) gets the counts.
     * NULL: the wrapper uses write_batch (or write) for the items, and
     * fails with CAP_EBACKEND ("roots not supported") when nroots > 0. */
    int (*write_many)(void *ctx, const cap_backend_item_t *items, size_t n,
                      const cap_backend_root_t *roots, size_t nroots,
                      cap_backend_write_result_t *res, cap_err_t *err);

    /** Optional (all four, or none). Named roots: name -> hash.
     * root_get: CAP_OK with *h, or CAP_ENOTFOUND. root_set: as a write_many
     * of no items and one root (closure checked). root_delete: CAP_OK, or
     * CAP_ENOTFOUND if no such root. root_list: `fn` once per root, sorted
     * by name, over one snapshot; returns as `iterate`. NULL: the wrappers
     * return CAP_EBACKEND ("roots not supported"). */
    int (*root_get)(void *ctx, const char *name, cap_hash_t *h, cap_err_t *err);
    int (*root_set)(void *ctx, const char *name, const cap_hash_t *h, cap_err_t *err);
    int (*root_delete)(void *ctx, const char *name, cap_err_t *err);
    int (*root_list)(void *ctx, cap_backend_root_fn fn, void *arg, cap_err_t *err);
};

/** Static initialiser for a table: the version filled in, the rest zero. */
#define CAP_BACKEND_INIT                                                                        \
    {CAP_BACKEND_VERSION, 0u, (const char *)0, (void *)0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

/** CAP_OK if the table is usable: version 1..CAP_BACKEND_VERSION and `read`
 * set (and `write` or `write_batch` unless CAP_BACKEND_READONLY). Else CAP_EINVAL with
 * err->what naming the problem. The store checks this when a backend is
 * attached. */
int cap_backend_check(const cap_backend_t *b, cap_err_t *err);

/* Wrappers: argument checks, fallbacks for optional entries, and the error
 * detail filled in (a backend that returns CAP_EBACKEND without a reason
 * gets "backend error"). They are freestanding. */

int cap_backend_read(const cap_backend_t *b, const cap_hash_t *h, const cap_alloc_t *a,
                     uint8_t **bytes, size_t *n, cap_err_t *err);
int cap_backend_write(const cap_backend_t *b, const cap_hash_t *h, const uint8_t *bytes, size_t n,
                      cap_err_t *err);
/** One transaction when the backend has write_batch, else item by item
 * (stops at the first failure; earlier items stay written). n == 0 is CAP_OK. */
int cap_backend_write_batch(const cap_backend_t *b, const cap_backend_item_t *items, size_t n,
                            cap_err_t *err);
int cap_backend_flush(const cap_backend_t *b, cap_err_t *err);
/** CAP_OK (present), CAP_ENOTFOUND (absent) or an error. */
int cap_backend_exists(const cap_backend_t *b, const cap_hash_t *h, cap_err_t *err);
int cap_backend_iterate(const cap_backend_t *b, cap_backend_iter_fn fn, void *arg, cap_err_t *err);
/** Version 2 entries, with the fallbacks described at each entry. A table
 * of version 1 gets the fallbacks. codes[] always gets one code per item.
 * read_many's caller frees each bytes[i] with a->deallocate(ctx, bytes[i],
 * lens[i]) where it is not NULL. */
int cap_backend_read_many(const cap_backend_t *b, const cap_hash_t *hashes, size_t n,
                          const cap_alloc_t *a, uint8_t **bytes, size_t *lens, int *codes,
                          cap_err_t *err);
int cap_backend_exists_many(const cap_backend_t *b, const cap_hash_t *hashes, size_t n, int *codes,
                            cap_err_t *err);
/** `res` may be NULL. Without write_many: counts `written` as n (a version-1
 * backend does not tell new from present) and `repaired` as 0. */
int cap_backend_write_many(const cap_backend_t *b, const cap_backend_item_t *items, size_t n,
                           const cap_backend_root_t *roots, size_t nroots,
                           cap_backend_write_result_t *res, cap_err_t *err);
/** Root names are checked here (CAP_EINVAL, "bad root name") before the
 * backend sees them. */
int cap_backend_root_get(const cap_backend_t *b, const char *name, cap_hash_t *h, cap_err_t *err);
int cap_backend_root_set(const cap_backend_t *b, const char *name, const cap_hash_t *h,
                         cap_err_t *err);
int cap_backend_root_delete(const cap_backend_t *b, const char *name, cap_err_t *err);
int cap_backend_root_list(const cap_backend_t *b, cap_backend_root_fn fn, void *arg,
                          cap_err_t *err);
/** Whether the backend has the root entries (version 2 and all four set). */
bool cap_backend_has_roots(const cap_backend_t *b);

/** The content-addressing rule above, for a write that finds `h` stored
 * with other bytes (or a batch naming `h` twice): *replace = true when the
 * new bytes are an encoding of a cap of hash `h` and either the stored bytes
 * are not (damage: the new bytes repair it) or the new ones leave fewer Data
 * pages missing (a fuller copy); false otherwise: new bytes that are no
 * encoding of `h` replace nothing, and a sound stored value that knows as
 * many pages is kept. Decodes and verifies both with `a` (a hash of each,
 * on this rare path only). CAP_OK, CAP_EINVAL (NULL), CAP_ENOMEM (*replace
 * unset). Freestanding. */
int cap_backend_replaces(const cap_hash_t *h, const uint8_t *stored, size_t stored_n, const uint8_t *incoming,
                         size_t incoming_n, const cap_alloc_t *a, bool *replace);

/** A valid root name: 1..CAP_ROOT_NAME_MAX bytes of [A-Za-z0-9._/-], not
 * all hex digits (so a name never reads as a hash or a hash prefix), and
 * NUL-terminated within that length. */
bool cap_root_name_valid(const char *name);

/** Release the backend (calls its `free`). NULL is a no-op. The backend must
 * not be attached to a live store or in use by another thread. */
void cap_backend_free(cap_backend_t *b);

/** Fill `err` (if not NULL) with `code` and the static `what`; returns `code`.
 * For backend authors. */
int cap_backend_fail(cap_err_t *err, int code, const char *what);

#ifdef __cplusplus
}
#endif

#endif
