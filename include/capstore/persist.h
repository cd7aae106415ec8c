/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore — persistence: blob backends for users.
 *
 * A backend keeps blobs by hash in their wire form (cap-schema.md). The
 * store (store.h) asks its backends for a hash it does not hold and hands
 * them what it flushes; this header opens backends and moves caps in and
 * out of one directly. Writing a backend of your own: capstore/sys/backend.h.
 *
 *   cap_backend_t *db;
 *   cap_err_t e;
 *   if (cap_lmdb_open("capstore.lmdb", NULL, &db, &e) != CAP_OK) ...
 *   cap_persist_put(db, cap, &hash, &e);                   // encode + write
 *   cap_persist_fetch(db, &hash, alloc, true, &copy, &e);  // read + decode + verify
 *   cap_backend_free(db);
 *
 * The generic functions (cap_persist_*, cap_backend_free) are freestanding;
 * the LMDB and in-memory backends and the fault injector are host-only. */
#ifndef CAPSTORE_PERSIST_H
#define CAPSTORE_PERSIST_H

#include "capstore/cap.h"
#include "capstore/sys/backend.h"
#include "capstore/walk.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Moving caps through any backend --------------------------------------------------------- */

/** Read the blob `h` from `b`, decode it with allocator `a` and, when
 * `verify` is true, check that it hashes to `h`. *out = a new reference to a
 * new, writable cap (the caller publishes or releases it).
 * Errors (*out = NULL, nothing leaks): CAP_ENOTFOUND (not stored),
 * CAP_EDECODE (stored bytes malformed: err->what, err->offset),
 * CAP_EMISMATCH (stored bytes decode to a cap of another hash; nothing is
 * returned), CAP_ENOMEM, CAP_EBACKEND. The store calls this with
 * verify = !(b->flags & CAP_BACKEND_TRUSTED). */
int cap_persist_fetch(const cap_backend_t *b, const cap_hash_t *h, const cap_alloc_t *a, bool verify,
                      cap_t **out, cap_err_t *err);

/** The second half of cap_persist_fetch, for bytes already read (an
 * iterate callback, a raw read): decode the `n` bytes stored under `h` with
 * `a` and, when `verify` is true, check that they hash to `h`. Same *out and
 * errors as cap_persist_fetch (CAP_EDECODE for empty bytes too). */
int cap_persist_decode(const cap_hash_t *h, const uint8_t *bytes, size_t n, const cap_alloc_t *a,
                       bool verify, cap_t **out, cap_err_t *err);

/** Hash `c`, encode it and write it through (one `write`). *out (may be NULL)
 * gets the hash. The cap's own allocator holds the encoding meanwhile.
 * CAP_EUNSETTLED if it holds a Ref. */
int cap_persist_put(const cap_backend_t *b, const cap_t *c, cap_hash_t *out, cap_err_t *err);

/** Write `n` caps in one batch (one transaction where the backend has
 * write_batch: all stored or none). `hashes` gives their hashes (as the
 * store knows them); NULL hashes them here, writing the hashes to
 * `hashes_out` if that is not NULL. The encodings are made into one scratch
 * buffer from `a`, freed before returning. Goes through
 * cap_backend_write_many, so entries stored with damaged bytes are
 * repaired. */
int cap_persist_put_batch(const cap_backend_t *b, cap_t *const *caps, const cap_hash_t *hashes,
                          size_t n, const cap_alloc_t *a, cap_hash_t *hashes_out, cap_err_t *err);

/** cap_persist_put_batch with `hashes` given, reporting in `res` (may be
 * NULL) how many items were new and how many replaced damaged bytes
 * (cap_backend_write_many's counts). What the store's flush and
 * `capstore db put` call. */
int cap_persist_put_many(const cap_backend_t *b, cap_t *const *caps, const cap_hash_t *hashes,
                         size_t n, const cap_alloc_t *a, cap_backend_write_result_t *res,
                         cap_err_t *err);

/** cap_persist_put_many that also sets `nroots` named roots in the same
 * cap_backend_write_many: one transaction where the backend is atomic, so
 * a crash never leaves a root whose graph was not written. Each root's
 * graph must be stored already or among the caps: CAP_EBLOBMISSING
 * otherwise (err->hash: the first missing hash), and nothing is written.
 * n == 0 sets the roots alone. CAP_EINVAL for a bad root name;
 * CAP_EBACKEND ("roots not supported") for a backend without roots. */
int cap_persist_put_roots(const cap_backend_t *b, cap_t *const *caps, const cap_hash_t *hashes,
                          size_t n, const cap_alloc_t *a, const cap_backend_root_t *roots,
                          size_t nroots, cap_backend_write_result_t *res, cap_err_t *err);

/* Walking a graph in one backend (walk.h, docs/graph.md) --------------------------------- */

/** Visit every cap reachable from `roots` in `b`, once each, reading the
 * backend directly (cap_backend_read_many, `batch` hashes a call, breadth
 * first): nothing is published anywhere, and no cap or bytes are kept once
 * visited, only the set of hashes seen. `a` allocates that set, the batch
 * and the bytes read. `fn` (may be NULL) is called per cap found; `res`
 * (may be NULL) gets the counts and the first problems with their paths.
 * Returns CAP_OK when every reachable hash was found (and decoded or
 * verified, as asked); CAP_EBLOBMISSING when the walk went to the end but
 * res->missing hashes are stored nowhere (err->hash: the first; err->detail:
 * the field and cap that name it, its depth and root, the totals);
 * CAP_EDECODE or CAP_EMISMATCH when none is missing but res->bad blobs are
 * bad (err->hash: the first); what `fn` returned to stop; CAP_EBACKEND (a
 * read failed: err); CAP_ENOMEM; CAP_EINVAL (NULL backend or allocator,
 * NULL roots with nroots > 0, bad options). */
int cap_backend_walk(const cap_backend_t *b, const cap_hash_t *roots, size_t nroots,
                     const cap_walk_options_t *opt, const cap_alloc_t *a, cap_walk_fn fn,
                     void *arg, cap_walk_result_t *res, cap_err_t *err);

/* LMDB backend (host only) ------------------------------------------------------------------ */

/** cap_lmdb_options_t.flags */
#define CAP_LMDB_READONLY 1u /**< the file must exist; writes fail (CAP_EBACKEND "read-only") */
#define CAP_LMDB_TRUSTED 2u  /**< flag the backend CAP_BACKEND_TRUSTED (reads not re-hashed) */
#define CAP_LMDB_NOSYNC 4u   /**< no fsync at commit: a crash may lose the last commits
                                  (never corrupts); for benchmarks and scratch files */

typedef struct cap_lmdb_options {
    unsigned flags;          /**< CAP_LMDB_* */
    size_t initial_map_size; /**< 0: 16 MiB. The map doubles by itself when full */
    size_t max_map_size;     /**< 0: no limit but the address space. Past it a write
                                  fails with CAP_EBACKEND ("map size limit reached") */
    unsigned file_mode;      /**< permissions of a created file; 0: 0644 (umask applies) */
} cap_lmdb_options_t;

/** Open (creating it if missing, unless READONLY) the LMDB database file at
 * `path` — a single file plus "<path>-lock" beside it — as a backend. `opt`
 * may be NULL for the defaults. Several opens of one file in a process
 * (under any spelling of its path) share one LMDB environment, as LMDB
 * requires; the environment closes with the last cap_backend_free. After
 * fork(), a child must open its own: environments inherited from the parent
 * are ignored (never closed or used) in the child.
 * Blobs are keyed by their 32-byte hash; values are the wire form.
 * `write` commits one transaction per call; `write_batch` one per batch.
 * A committed write is durable (fsync) unless CAP_LMDB_NOSYNC. A hash
 * stored with other bytes than those written gets the new ones (repaired).
 * Before LMDB maps the file it is read with pread, and refused when it is
 * not a regular file (a FIFO does not block the open), empty (read-only),
 * damaged in its meta pages, or shorter than they claim; a missing lock
 * file is created (its space allocated) only by the database's owner or
 * root, with the database's mode and group (docs/persistence.md).
 * Errors: CAP_EBACKEND (err->what: "no such file", "permission denied",
 * "not an LMDB file", "not a regular file", "empty file", "damaged
 * database (run capstore db check)", "truncated database (...)", "no space
 * left on device", "no lock file, and only the database's owner may create
 * it ...", "already open read-only in this process", ...; err->detail:
 * the path, page or sizes concerned), CAP_ENOMEM, CAP_EINVAL (NULL path
 * or out). */
int cap_lmdb_open(const char *path, const cap_lmdb_options_t *opt, cap_backend_t **out,
                  cap_err_t *err);

typedef struct cap_lmdb_stats {
    uint64_t blobs;      /**< entries */
    uint64_t bytes;      /**< sum of the stored values' lengths */
    uint64_t map_size;   /**< current map size (the file's upper bound) */
    uint64_t used_bytes; /**< pages in use times the page size */
    uint32_t page_size;
    uint32_t depth;      /**< B-tree depth */
    uint64_t free_bytes; /**< pages on LMDB's free list times the page size: room the
                              file holds that writes will reuse before it grows
                              (capstore db compact gives it back) */
    uint64_t roots;      /**< named roots */
    uint32_t format;     /**< the file's format: 2, or 1 for a file not yet migrated
                              (opened read-only; docs/persistence.md) */
} cap_lmdb_stats_t;

/** Statistics of an LMDB backend (counting `bytes` walks every entry).
 * CAP_EINVAL if `b` is not an LMDB backend. */
int cap_lmdb_stats(const cap_backend_t *b, cap_lmdb_stats_t *st, cap_err_t *err);

/** Whether `b` was made by cap_lmdb_open. */
bool cap_backend_is_lmdb(const cap_backend_t *b);

/* Collection (host only; docs/persistence.md, "Collection") ------------------------------ */

/** Progress of a long operation over a database: `phase` names the step
 * ("mark", "sweep", "export", "import", ...), `count` the items done so
 * far and `bytes` their bytes. Called from the calling thread, every few
 * thousand items. */
typedef void (*cap_progress_fn)(void *arg, const char *phase, uint64_t count, uint64_t bytes);

/** cap_lmdb_collect_options_t.flags */
#define CAP_LMDB_COLLECT_DRY_RUN 1u /**< delete nothing; count (and list through `each`)
                                         what would go */

typedef struct cap_lmdb_collect_options {
    size_t size;        /**< sizeof(cap_lmdb_collect_options_t), or 0 for this layout */
    unsigned flags;     /**< CAP_LMDB_COLLECT_* */
    size_t batch;       /**< blobs deleted per write transaction; 0: 1024 */
    cap_progress_fn progress; /**< may be NULL */
    /** Dry run only (may be NULL): each blob that would be deleted, in key
     * order, its bytes borrowed for the call. */
    void (*each)(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n);
    void *arg;          /**< for progress and each */
} cap_lmdb_collect_options_t;

#define CAP_LMDB_COLLECT_OPTIONS_INIT {sizeof(cap_lmdb_collect_options_t), 0u, 0, 0, 0, 0}

typedef struct cap_lmdb_collect_result {
    uint64_t roots;         /**< distinct roots marked from: named roots and the hashes given */
    uint64_t marked;        /**< blobs reachable from them (kept) */
    uint64_t marked_bytes;  /**< their bytes */
    uint64_t scanned;       /**< blobs the sweep looked at */
    uint64_t deleted;       /**< blobs deleted (dry run: that would be) */
    uint64_t deleted_bytes; /**< their bytes */
    uint64_t transactions;  /**< write transactions the sweep committed */
    uint64_t late_roots;    /**< roots set while the sweep ran (marked then, kept) */
} cap_lmdb_collect_result_t;

/** Delete every blob of the LMDB backend `b` that no root reaches: mark
 * the graphs of its named roots and of the `nroots` hashes given (in one
 * read transaction), then sweep the blobs in key order, deleting the
 * unmarked ones `batch` at a time, each batch its own write transaction,
 * so that readers and writers of other processes go on meanwhile. Each
 * sweep transaction first marks the graph of every root it finds that the
 * mark has not reached (a root set meanwhile), before it deletes anything:
 * a root never loses a blob, whatever the interleaving (a root is only set
 * when its graph is stored: sys/backend.h). A crash (or a kill) between
 * transactions leaves a database that is whole and partly collected.
 * Blobs no root reaches are deleted even when written during the sweep:
 * set roots in the same write as the blobs (cap_store_flush_roots).
 * Nothing is deleted, and the result is an error, when a marked graph is
 * incomplete: a hash given or reached is not stored (CAP_EBLOBMISSING,
 * err->hash) or a blob's children cannot be read (CAP_EDECODE: damage;
 * run cap_lmdb_check) — a damaged graph must not lose the blobs below the
 * damage. `opt` may be NULL; `res` (may be NULL) gets the counts.
 * CAP_EINVAL for a backend not made by cap_lmdb_open or NULL roots with
 * nroots > 0; CAP_EBACKEND ("read-only") unless a dry run. */
int cap_lmdb_collect(const cap_backend_t *b, const cap_hash_t *roots, size_t nroots,
                     const cap_lmdb_collect_options_t *opt, cap_lmdb_collect_result_t *res,
                     cap_err_t *err);

/* Compaction and lookups by prefix (host only) ------------------------------------------- */

typedef struct cap_lmdb_compact_result {
    uint64_t bytes_before; /**< the file's size before */
    uint64_t bytes_after;  /**< and after */
} cap_lmdb_compact_result_t;

/** Rewrite the database file at `path` without its free pages (LMDB's
 * compacting copy, mdb_env_copyfd2 with MDB_CP_COMPACT, into a new file
 * beside it, checked, synced, given the file's owner, group and mode, and
 * renamed over it), only when no process has the database open: the
 * lock file's first byte is locked exclusively for the whole operation, so
 * a process that opens the database meanwhile waits, then sees the new
 * file. Refused (nothing changed) with CAP_EBACKEND when another process
 * has it open ("the database is open in another process"), when this
 * process has it open, when the owner cannot be kept (only root or the
 * owner may compact), and on any failure of the copy (full disk, ...).
 * No other thread of this process may open the file meanwhile. `res` (may
 * be NULL) gets the sizes. */
int cap_lmdb_compact(const char *path, cap_lmdb_compact_result_t *res, cap_err_t *err);

/** The blobs of the LMDB backend `b` whose hash begins with the `ndigits`
 * hex digits of `prefix` (0-9, a-f, A-F; 1..64 of them): the first `max`
 * in ascending order into `out` (may be NULL when max is 0), and the number
 * of them in all in *found. One read transaction (a range of keys, not a
 * scan). CAP_EINVAL for a prefix that is not hex digits or a backend not
 * made by cap_lmdb_open. */
int cap_lmdb_find_prefix(const cap_backend_t *b, const char *prefix, size_t ndigits, cap_hash_t *out,
                         size_t max, size_t *found, cap_err_t *err);

/** LMDB reads its file through a memory map and keeps no page checksums;
 * on some damage its own assertions fail, and then it aborts the process.
 * `fn` (NULL: none) is called first with LMDB's message, from the thread
 * that failed; it may end the process its own way (a command prints "run
 * capstore db check" and exits), else LMDB aborts when it returns.
 * Process-wide. */
typedef void (*cap_lmdb_assert_fn)(const char *msg);
void cap_lmdb_set_assert_hook(cap_lmdb_assert_fn fn);

/* Integrity check (host only) --------------------------------------------------------------- */

typedef enum cap_lmdb_finding_kind {
    CAP_LMDB_NOTE = 0,     /**< information: the meta pages, the file, page counts */
    CAP_LMDB_PROBLEM = 1,  /**< damage to the file's structure */
    CAP_LMDB_BAD_BLOB = 2, /**< an entry whose bytes do not decode or hash to its key */
    CAP_LMDB_STEP = 3      /**< what the check does next (for a report if it crashes) */
} cap_lmdb_finding_kind_t;

typedef struct cap_lmdb_finding {
    cap_lmdb_finding_kind_t kind;
    const char *text;   /**< one sentence, borrowed for the call */
    bool has_page;      /**< `page` names the page concerned */
    uint64_t page;
    bool has_key;       /**< `key` names the entry concerned */
    cap_hash_t key;
} cap_lmdb_finding_t;

typedef void (*cap_lmdb_check_fn)(void *arg, const cap_lmdb_finding_t *f);

typedef struct cap_lmdb_check_result {
    uint64_t blobs;    /**< entries decoded and re-hashed */
    uint64_t bad;      /**< of them, bad (CAP_LMDB_BAD_BLOB findings) */
    uint64_t problems; /**< CAP_LMDB_PROBLEM findings */
} cap_lmdb_check_result_t;

/** Check the database file at `path`, in the spirit of SQLite's
 * `PRAGMA integrity_check`: both meta pages (which one is in use, a page
 * LMDB would refuse, two pages that disagree, a snapshot older than the
 * other), the file's size against the pages the meta page claims, every
 * page of the B-trees and the free list read with pread (headers, bounds,
 * key order, overflow runs, every page used once), then LMDB's own view:
 * every key ascending, 32 bytes, found again by a lookup, LMDB's entry
 * count, each value bounds-checked against the mapping, decoded and
 * re-hashed. Each finding goes to `fn` (may be NULL). Returns CAP_OK when
 * the check ran (`res`, may be NULL, says what it found; the database is
 * sound when res->bad and res->problems are 0), or an error when it could
 * not (the file or its lock file cannot be opened: CAP_EBACKEND with the
 * reason; `res` then holds what the file part found).
 * The pread part cannot fault on a damaged file; LMDB's part can (it maps
 * the file), so a caller that must survive any file runs this in a child
 * process, as `capstore db check` does, and reports the last STEP. */
int cap_lmdb_check(const char *path, cap_lmdb_check_fn fn, void *arg, cap_lmdb_check_result_t *res,
                   cap_err_t *err);

/* In-memory backend (host only) ------------------------------------------------------------ */

/** An empty backend in memory (a hash table under a mutex; bytes copied with
 * `a`, NULL for libc). For tests, and as a shared second tier between
 * stores. */
int cap_mem_backend_new(const cap_alloc_t *a, cap_backend_t **out);
/** Entries held by a memory backend (0 for another backend). */
size_t cap_mem_backend_count(const cap_backend_t *b);

/* Redis backend (host only; docs/redis.md) ---------------------------------------------- */

/** cap_redis_options_t.flags */
#define CAP_REDIS_READONLY 1u      /**< writes fail (CAP_EBACKEND "read-only") */
#define CAP_REDIS_ALLOW_EVICTION 2u /**< accept a server whose maxmemory-policy evicts keys:
                                        the user accepts a cache that forgets blobs */

/** Defaults of cap_redis_options_t (a field left 0 takes them). */
#define CAP_REDIS_DEFAULT_PREFIX "capstore:"
#define CAP_REDIS_DEFAULT_CONNECT_TIMEOUT_MS 2000u
#define CAP_REDIS_DEFAULT_COMMAND_TIMEOUT_MS 10000u
#define CAP_REDIS_DEFAULT_RETRY_MS 5000u
#define CAP_REDIS_DEFAULT_WAIT_TIMEOUT_MS 2000u
#define CAP_REDIS_DEFAULT_MAX_BLOB_SIZE ((size_t)64 << 20)
/** wait_replicas: do not wait for replicas (a lone server's default). */
#define CAP_REDIS_NO_WAIT (-1)

/** Options of cap_redis_open. Set `size` to sizeof(cap_redis_options_t)
 * (CAP_REDIS_OPTIONS_INIT does): fields a later version adds at the end
 * are read only when `size` covers them. Zero fields take the defaults. */
typedef struct cap_redis_options {
    size_t size;                 /**< sizeof(cap_redis_options_t) */
    unsigned flags;              /**< CAP_REDIS_* */
    const char *password;        /**< NULL: the CAPSTORE_REDIS_PASSWORD environment
                                      variable, if set; never in the URI */
    const char *prefix;          /**< overrides the URI's ?prefix=; NULL: the URI's,
                                      else CAP_REDIS_DEFAULT_PREFIX */
    unsigned connect_timeout_ms; /**< 0: CAP_REDIS_DEFAULT_CONNECT_TIMEOUT_MS */
    unsigned command_timeout_ms; /**< a reply slower than this fails the connection;
                                      0: CAP_REDIS_DEFAULT_COMMAND_TIMEOUT_MS */
    unsigned retry_ms;           /**< how long a call keeps retrying TRYAGAIN, CLUSTERDOWN,
                                      LOADING and lost connections (backoff from 10 ms,
                                      doubling, at most 500 ms a step); 0: the default;
                                      use 1 for (almost) no retrying */
    int wait_replicas;           /**< a write returns CAP_OK only once this many replicas
                                      acknowledged it (Redis WAIT); 0: the default, 1
                                      when every master has a replica, else none;
                                      CAP_REDIS_NO_WAIT: never wait */
    unsigned wait_timeout_ms;    /**< WAIT's timeout; 0: CAP_REDIS_DEFAULT_WAIT_TIMEOUT_MS */
    size_t max_blob_size;        /**< larger values are refused unread (CAP_EBACKEND
                                      "blob larger than max_blob_size"), and not written;
                                      0: CAP_REDIS_DEFAULT_MAX_BLOB_SIZE */
} cap_redis_options_t;

/** Options with `size` set and every other field 0 (the defaults). */
#define CAP_REDIS_OPTIONS_INIT                                                                  \
    {sizeof(cap_redis_options_t), 0u, (const char *)0, (const char *)0, 0u, 0u, 0u, 0, 0u, 0}

/** Open a Redis server or Redis Cluster as a backend. `uri` is
 * redis://[user@]host[:port][,host[:port]...][/][?prefix=P][&wait=K] (port
 * 6379 by default; P percent-decoded; K as wait_replicas, 0 for none, when
 * the options leave it 0): the hosts are seeds, any one of which tells
 * the cluster's slot map (a server without cluster mode is used alone). A
 * password in the URI is refused: it would show in the process list.
 * Blobs are keys P + the 32 raw hash bytes holding the wire bytes, named
 * roots are fields of the hash P + "roots" (docs/redis.md). Every read is
 * verified by the store (the backend is never TRUSTED); a batch is not
 * atomic (CAP_BACKEND_NONATOMIC_BATCH): writes that returned CAP_OK are
 * stored (and acknowledged by wait_replicas replicas), a failed batch may
 * have stored part of its items. `opt` may be NULL for the defaults.
 * Errors: CAP_EINVAL (bad URI or options: err->what, err->detail),
 * CAP_EBACKEND (no seed answered, authentication failed, an evicting
 * maxmemory-policy without CAP_REDIS_ALLOW_EVICTION: err->what, and the
 * node host:port in err->detail), CAP_ENOMEM. Thread-safe as sys/backend.h
 * requires: connections are pooled per node and each call takes its own. */
int cap_redis_open(const char *uri, const cap_redis_options_t *opt, cap_backend_t **out,
                   cap_err_t *err);

/** Whether `b` was made by cap_redis_open. */
bool cap_backend_is_redis(const cap_backend_t *b);

typedef struct cap_redis_stats {
    uint64_t masters;        /**< nodes serving slots (1 for a lone server) */
    uint64_t replicas;       /**< replicas the slot map lists */
    int wait_replicas;       /**< what writes wait for */
    uint64_t blobs;          /**< keys of blob form under the prefix (a SCAN) */
    uint64_t bytes;          /**< sum of their lengths (STRLEN) */
    uint64_t roots;          /**< named roots */
} cap_redis_stats_t;

/** Statistics of a Redis backend (scans every master). CAP_EINVAL if `b`
 * is not a Redis backend; CAP_EBACKEND. */
int cap_redis_stats(const cap_backend_t *b, cap_redis_stats_t *st, cap_err_t *err);

/** cap_lmdb_find_prefix for a Redis backend: the blobs whose hash begins
 * with the `ndigits` hex digits of `prefix`, the first `max` in ascending
 * order into `out`, their number in *found. A SCAN of every master,
 * matched by the server on the prefix's whole bytes (an odd last digit is
 * checked here), so it costs a pass over the keyspace, not a range read.
 * CAP_EINVAL for a bad prefix or a backend not made by cap_redis_open;
 * CAP_EBACKEND; CAP_ENOMEM. */
int cap_redis_find_prefix(const cap_backend_t *b, const char *prefix, size_t ndigits, cap_hash_t *out,
                          size_t max, size_t *found, cap_err_t *err);

/** cap_redis_collect_options_t.flags */
#define CAP_REDIS_COLLECT_DRY_RUN 1u /**< delete nothing; count (and list through `each`)
                                          what would go */

typedef struct cap_redis_collect_options {
    size_t size;        /**< sizeof(cap_redis_collect_options_t), or 0 for this layout */
    unsigned flags;     /**< CAP_REDIS_COLLECT_* */
    size_t batch;       /**< blobs deleted per pipelined batch; 0: 1024; at most 65536 */
    cap_progress_fn progress; /**< phases "mark", "sweep"; may be NULL */
    /** Dry run only (may be NULL): each blob that would be deleted, in hash
     * order, its bytes borrowed for the call. */
    void (*each)(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n);
    void *arg;          /**< for progress and each */
} cap_redis_collect_options_t;

#define CAP_REDIS_COLLECT_OPTIONS_INIT {sizeof(cap_redis_collect_options_t), 0u, 0, 0, 0, 0}

typedef struct cap_redis_collect_result {
    uint64_t roots;         /**< distinct roots marked from: named roots and the hashes given */
    uint64_t marked;        /**< blobs reachable from them (kept) */
    uint64_t marked_bytes;  /**< their bytes */
    uint64_t scanned;       /**< distinct blobs the sweep's SCAN met */
    uint64_t deleted;       /**< blobs deleted (dry run: that would be) */
    uint64_t deleted_bytes; /**< their bytes */
    uint64_t batches;       /**< pipelined delete batches sent */
    uint64_t late_roots;    /**< roots set or moved while the sweep ran (marked then, kept) */
} cap_redis_collect_result_t;

/** Delete every blob of the Redis backend `b` (under its prefix) that no
 * root reaches: mark the graphs of its named roots and of the `nroots`
 * hashes given, walked in the server (cap_backend_walk), then SCAN every
 * master and DEL the unmarked blobs `batch` at a time, one pipeline per
 * batch. Before each batch the roots are read again and the graph of any
 * root set or moved since is marked first. Redis has no transaction
 * across a cluster, so a root set between that re-read and the batch's
 * DELs can still lose a blob no other root reaches (docs/redis.md, "gc":
 * run it when no host sets roots, and `capstore db check` finds such a
 * root). Blobs no root reaches are deleted even when written during the
 * sweep. Nothing is deleted, and the result is an error, when a marked
 * graph is incomplete: a hash given or reached is not stored
 * (CAP_EBLOBMISSING, err->hash) or a blob's children cannot be read
 * (CAP_EDECODE, err->hash). A late root's incomplete graph stops the sweep
 * the same way (what was deleted before stays deleted). `opt` may be
 * NULL; `res` (may be NULL) gets the counts. CAP_EINVAL for a backend not
 * made by cap_redis_open or NULL roots with nroots > 0; CAP_EBACKEND
 * ("read-only", a server error) unless a dry run; CAP_ENOMEM. */
int cap_redis_collect(const cap_backend_t *b, const cap_hash_t *roots, size_t nroots,
                      const cap_redis_collect_options_t *opt, cap_redis_collect_result_t *res,
                      cap_err_t *err);

/* Fault injection (host only; for testing error paths) ------------------------------------- */

/** Which calls a fault plan affects (bit mask). */
#define CAP_FAULT_READ 1u
#define CAP_FAULT_WRITE 2u
#define CAP_FAULT_BATCH 4u /* write_batch and write_many */
#define CAP_FAULT_EXISTS 8u
#define CAP_FAULT_ITERATE 16u
#define CAP_FAULT_FLUSH 32u
#define CAP_FAULT_ALL 63u

typedef enum cap_fault_kind {
    CAP_FAULT_NONE = 0,     /**< pass every call through */
    CAP_FAULT_IO = 1,       /**< CAP_EBACKEND "simulated I/O error"; nothing done */
    CAP_FAULT_DISK_FULL = 2,/**< CAP_EBACKEND "no space left on device (simulated)"; nothing written */
    CAP_FAULT_CORRUPT = 3,  /**< reads succeed but one bit of the bytes is flipped
                                 (byte n-1-corrupt_offset, clamped to the data) */
    CAP_FAULT_TRUNCATE = 4, /**< reads succeed but return only the first half of the bytes */
    CAP_FAULT_NOTFOUND = 5, /**< reads and exists report CAP_ENOTFOUND */
    CAP_FAULT_SWAP = 6      /**< reads return the bytes stored under `swap_with` */
} cap_fault_kind_t;

typedef struct cap_fault_plan {
    cap_fault_kind_t kind;
    unsigned ops;            /**< CAP_FAULT_READ | ...: the calls affected */
    uint64_t after;          /**< let this many affected calls pass first */
    uint64_t count;          /**< then fault this many (0: every one from then on) */
    size_t corrupt_offset;   /**< CAP_FAULT_CORRUPT: which byte, counted from the end */
    cap_hash_t swap_with;    /**< CAP_FAULT_SWAP */
} cap_fault_plan_t;

/** Wrap `inner` in a backend that injects faults by plan (initially none).
 * With `own_inner`, freeing the wrapper frees `inner`. Flags are copied from
 * `inner`. CAP_ENOMEM, CAP_EINVAL. */
int cap_fault_backend_new(cap_backend_t *inner, bool own_inner, cap_backend_t **out);
/** Replace the plan (and restart its counting). Thread-safe. */
void cap_fault_backend_set(cap_backend_t *fb, const cap_fault_plan_t *plan);
/** How many faults the wrapper has injected, and how many calls it has seen
 * (all kinds together) since it was made. */
uint64_t cap_fault_backend_injected(const cap_backend_t *fb);
uint64_t cap_fault_backend_calls(const cap_backend_t *fb);

#ifdef __cplusplus
}
#endif

#endif
