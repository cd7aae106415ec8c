/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore — the two-tier store (the seed's CacheDirectory).
 *
 *  blobs      hash -> shared immutable cap (frozen when published)
 *  instances  id   -> (the store's own handle, the current cap)
 *
 * Thread safety: every function may be called from many threads on one
 * store. No store lock is held while a cap is freed (freeing cascades into
 * handle releases). A blob lookup that hits takes no lock; a trim that drops
 * blobs spins until the lookups in flight are done before it releases them.
 *
 * Handles: put_instance and promote return a new handle reference
 * (cap_ref_t). The store keeps its own reference for as long as the entry
 * exists. When every reference but the store's is gone, the entry is dead
 * and the next sweep reclaims it; the store learns of the death at that
 * release, so a sweep costs what it reclaims, never a scan.
 * Releasing a handle after its store is gone is safe: every handle keeps the
 * small store header alive (a count in it), and cap_store_free only marks the
 * store closed and releases what the store held; the header itself is freed
 * by whichever comes last, the store's free or the last handle's release.
 * The allocator and lock hooks must therefore outlive every handle.
 *
 * Cycles: two instances whose caps hold each other's handles keep each
 * other alive; sweep cannot reclaim such garbage (as with any reference
 * count) and settle reports CAP_ECYCLE. */
#ifndef CAPSTORE_STORE_H
#define CAPSTORE_STORE_H

#include "capstore/cap.h"
#include "capstore/sys/backend.h"
#include "capstore/walk.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cap_store cap_store_t;

/** Lock hooks. The store reserves `lock_size` bytes (aligned as the
 * allocator aligns) for each lock it needs and calls `init` on them before
 * use and `destroy` after. `wait` is called with the lock held: it releases
 * it, sleeps until notify_all (or spuriously) and re-acquires it (a
 * condition variable; a guest may unlock, spin a little and relock).
 * A NULL hooks pointer in the options selects the core's built-in spin lock
 * (no OS needed). */
typedef struct cap_lock_hooks {
    size_t lock_size;
    void (*init)(void *ctx, void *lock);
    void (*destroy)(void *ctx, void *lock);
    void (*lock)(void *ctx, void *lock);
    void (*unlock)(void *ctx, void *lock);
    void (*wait)(void *ctx, void *lock);
    void (*notify_all)(void *ctx, void *lock);
    void *ctx;
} cap_lock_hooks_t;

/** Store flags. */
#define CAP_STORE_VERIFY 1u        /**< put_cap_with_hash re-hashes and checks the claim */
#define CAP_STORE_WRITE_THROUGH 2u /**< every put of a new blob is also written to the first
                                        writable backend before the put returns (see
                                        cap_store_add_backend) */

/** Worker hook: a parallel-for. `run` calls fn(arg, i) for every i in
 * [0, n), on any threads (the calling one included), and returns when all
 * calls have returned. The store splits work into about `threads` parts
 * (the caller counts as one). The host provides a thread pool
 * (host.h: cap_host_workers_new); a guest passes none. */
typedef struct cap_workers {
    void (*run)(void *ctx, size_t n, void (*fn)(void *arg, size_t i), void *arg);
    unsigned threads;
    void *ctx;
} cap_workers_t;

/** Store options. Set `size` to sizeof(cap_store_options_t) (or start from
 * CAP_STORE_OPTIONS_INIT): fields that a later version adds at the end are
 * read only when `size` covers them, so a caller built against this header
 * keeps working with a later library. `size` 0 is taken as the size of this
 * layout (that of 0.9.0). A `size` larger than the library knows is accepted
 * when the bytes past what it knows are all zero, else refused (CAP_EINVAL). */
typedef struct cap_store_options {
    size_t size;                   /**< sizeof(cap_store_options_t), or 0 (see above) */
    const cap_alloc_t *alloc;      /**< required; must outlive the store and its handles */
    const cap_lock_hooks_t *locks; /**< NULL: built-in spin locks */
    uint64_t hash_seed[2];         /**< table-hash seed (host: random per store by default) */
    uint64_t first_id;             /**< first instance id; 0 means 1 */
    unsigned flags;                /**< CAP_STORE_VERIFY ... */
    const cap_workers_t *workers;  /**< NULL: every phase on the calling thread */
} cap_store_options_t;

/** An initialiser with `size` filled in and every other field zero. */
#define CAP_STORE_OPTIONS_INIT {sizeof(cap_store_options_t), 0, 0, {0, 0}, 0, 0u, 0}

/** Create a store (allocates the store header). CAP_EINVAL on bad options
 * (no allocator, incomplete lock or worker hooks, an unknown `size`). */
int cap_store_new(cap_store_t **out, const cap_store_options_t *opt);

/** Storage for an in-place store (the seed's new_const): a static or
 * caller-owned block. cap_store_init_in_place allocates nothing; the tables
 * are allocated on first use. */
#define CAP_STORE_STORAGE_SIZE 512
#ifdef __cplusplus
#define CAP_ALIGNAS_64 alignas(64) /* C++11 spells C11's _Alignas so */
#else
#define CAP_ALIGNAS_64 _Alignas(64)
#endif
typedef struct cap_store_storage {
    CAP_ALIGNAS_64 unsigned char opaque[CAP_STORE_STORAGE_SIZE];
} cap_store_storage_t;
/** Initialise a store in `storage`. The storage must outlive every handle of
 * the store. Returns CAP_EINVAL on bad options. */
int cap_store_init_in_place(cap_store_storage_t *storage, const cap_store_options_t *opt,
                            cap_store_t **out);

/** Close the store: release every blob and instance it holds (outside the
 * lock) and the tables. Handles still held elsewhere stay valid to release;
 * the header goes with the last of them. NULL is a no-op. Must not race with
 * other calls on the same store. Attached backends are not freed, nor
 * written to: blobs not flushed are gone (cap_store_flush first). */
void cap_store_free(cap_store_t *s);

/* Counts (memory only; never ask a backend) ------------------------------------------------ */

size_t cap_store_blob_count(cap_store_t *s);
/** Instance entries, live or dead but not yet swept. */
size_t cap_store_instance_count(cap_store_t *s);
bool cap_store_contains_blob(cap_store_t *s, const cap_hash_t *h);

/* Lookups ------------------------------------------------------------------------------------ */

/** *out = new reference to the blob cap, or CAP_EBLOBMISSING (*out = NULL).
 * With backends attached, a memory miss asks them (cap_store_add_backend);
 * a failed fetch returns its code (CAP_EMISMATCH, CAP_EDECODE, CAP_EBACKEND,
 * CAP_ENOMEM); cap_store_fetch_blob gives its detail. A hit marks the blob
 * recently used (for trim). */
int cap_store_get_blob(cap_store_t *s, const cap_hash_t *h, cap_t **out);
/** *out = new reference to the entry's current cap; CAP_EINSTANCEMISSING if
 * the entry is gone; CAP_EINVAL for a handle of another store. */
int cap_store_get_instance(cap_store_t *s, cap_ref_t *r, cap_t **out);
/** Dispatch on the target's arm (NONE is CAP_EINVAL); Hash as get_blob. */
int cap_store_get(cap_store_t *s, const cap_target_t *t, cap_t **out);

/** n lookups in one call: out[i] = a new reference to the blob of
 * hashes[i], or NULL, and codes[i] (`codes` may be NULL) its code as
 * cap_store_fetch_blob would give it: CAP_OK, CAP_EBLOBMISSING or a fetch
 * failure. The lookups of a batch overlap their cache misses (each stage of
 * the probe is started for the whole batch before it is used), so a batch
 * costs much less than n calls of cap_store_get_blob. With backends
 * attached, the memory misses go on to them together: one read_many per
 * backend for the whole batch, single flight per hash as for one lookup.
 * Duplicates in `hashes` each get their reference. Returns CAP_OK when
 * every lookup found its blob, else the code of the lowest failing index,
 * whose detail goes to `err` (may be NULL; err->hash names the blob);
 * CAP_EINVAL (nothing looked up, every out[i] NULL) for NULL arguments. */
int cap_store_get_blobs(cap_store_t *s, const cap_hash_t *hashes, size_t n, cap_t **out,
                        int *codes, cap_err_t *err);
/** Which of n hashes the memory tier holds, as cap_store_contains_blob
 * (backends are not asked: cap_store_exists does that), batched as
 * cap_store_get_blobs: bit i % 8 of bits[i / 8] is set when hashes[i] is in
 * memory, clear when not; `bits` holds (n + 7) / 8 bytes, all written.
 * CAP_OK, or CAP_EINVAL for NULL arguments. */
int cap_store_contains_blobs(cap_store_t *s, const cap_hash_t *hashes, size_t n, uint8_t *bits);

typedef struct cap_blob_entry {
    cap_hash_t hash;
    cap_t *cap; /* a reference owned by the array */
} cap_blob_entry_t;
/** Snapshot of the blob tier: *out is an array of *n entries, allocated with
 * the store's allocator, each holding a reference; free with
 * cap_store_blobs_free. Order unspecified; the _sorted form sorts by hash. */
int cap_store_iter_blobs(cap_store_t *s, cap_blob_entry_t **out, size_t *n);
int cap_store_iter_blobs_sorted(cap_store_t *s, cap_blob_entry_t **out, size_t *n);
void cap_store_blobs_free(cap_store_t *s, cap_blob_entry_t *entries, size_t n);

/* Writes ------------------------------------------------------------------------------------- */

/** Replace the entry's cap (the store takes a new reference to `cap`; the
 * caller keeps its own). The old cap is released after the lock is dropped.
 * CAP_EINSTANCEMISSING (err->id) if the entry is gone; CAP_EINVAL if `r` or a
 * handle inside `cap` belongs to another store. */
int cap_store_set_instance(cap_store_t *s, cap_ref_t *r, cap_t *cap, cap_err_t *err);

/** Hash then insert into the blob tier; idempotent (re-putting equal content
 * keeps the first cap). The store keeps a reference to `cap` (no copy) and
 * freezes it. *out (may be NULL) gets the hash. CAP_EUNSETTLED if the cap
 * holds a Ref. */
int cap_store_put_cap(cap_store_t *s, cap_t *cap, cap_hash_t *out);

/** Publish n caps in one call, with the effect of n calls of put_cap in
 * order (idempotent, equal content keeps the first cap, every cap frozen,
 * hashes_out[i] (may be NULL) its hash), but faster: the caps are hashed
 * side by side (a tree level of every CNode per SHA-256 batch, on the
 * store's workers when the batch is large) and inserted with each shard's
 * lock taken once. All or nothing: on an error nothing of the batch is
 * published (caps may have been frozen, as a failed put_cap may leave one,
 * unless the error is one of the argument checks or a write-through
 * failure, which come first). CAP_EUNSETTLED if a cap holds a Ref and
 * CAP_EINVAL if one is NULL: err->index (err->has_index) is then the index
 * of the first such cap (also named in err->detail, "caps[i]"). CAP_ENOMEM; with
 * CAP_STORE_WRITE_THROUGH, the new blobs are written to the backend in one
 * batch first, and its failure is returned. */
int cap_store_put_caps(cap_store_t *s, cap_t *const *caps, size_t n, cap_hash_t *hashes_out,
                       cap_err_t *err);

/** Insert under a caller-supplied hash. The claim is checked in debug builds
 * and when the store has CAP_STORE_VERIFY; a mismatch is CAP_EMISMATCH.
 * A cap holding a Ref is always refused (CAP_EUNSETTLED). Freezes the cap. */
int cap_store_put_cap_with_hash(cap_store_t *s, const cap_hash_t *h, cap_t *cap);

/** New instance entry with a fresh id holding `cap` (the store takes a new
 * reference). *out = a new handle reference (the store keeps its own).
 * CAP_EIDSPACE when ids are exhausted; CAP_EINVAL if `cap` holds a handle of
 * another store. */
int cap_store_put_instance(cap_store_t *s, cap_t *cap, cap_ref_t **out);

/** New instance entry sharing the blob's cap (no copy), fetched from the
 * backends if not in memory. CAP_EBLOBMISSING if absent (or a fetch error as
 * for get_blob). *out = a new handle reference. */
int cap_store_promote_blob_to_instance(cap_store_t *s, const cap_hash_t *h, cap_ref_t **out);

/** Edit an instance's cap on a private copy, then commit the copy as the
 * instance's cap; readers never see a cap while it changes. `edit` gets a
 * writable cap and returns CAP_OK to commit or an error to abandon the edit
 * (that error is returned; the entry keeps its cap). `edit` runs with no
 * lock held, so it may call the store. If the entry's cap was replaced while
 * `edit` ran, the copy is dropped and `edit` runs again on a copy of the new
 * cap, so that no writer's change is lost: `edit` may be called more than
 * once and should change nothing but the cap it is given. CAP_EINSTANCEMISSING
 * (err->id) if the entry is gone, also when it left the instance tier (was
 * settled into a blob) while `edit` ran; CAP_EINVAL if `r`, or a handle the
 * edit put into the cap, belongs to another store. */
int cap_store_edit_instance(cap_store_t *s, cap_ref_t *r, int (*edit)(cap_t *c, void *arg),
                            void *arg, cap_err_t *err);

/* Sweep and settle ------------------------------------------------------------------------------ */

/** Remove every dead entry, cascading until none is left. *removed (may be
 * NULL) gets the number removed. Costs what it reclaims. */
int cap_store_sweep_instances(cap_store_t *s, size_t *removed);

/** Bounded sweep: remove at most `budget` dead entries; *more tells whether
 * dead entries remain (a kernel that must bound its pauses calls it again). */
int cap_store_sweep_budget(cap_store_t *s, size_t budget, size_t *removed, bool *more);

/** Settle a target. Hash: *out = it, unchanged. Ref: settle nested Refs
 * bottom-up (each shared child once), rewrite them to hashes in the entries,
 * hash the cap; non-Instance entries move to the blob tier and leave the
 * instance tier; Instance entries stay (the hash is a snapshot, stored
 * nowhere: a settled graph with Instance caps in it is NOT closed, and a
 * store or backend cannot follow it past them; cap_store_checkpoint
 * publishes the snapshots too). Iterative
 * (no recursion on the C stack). Atomic: on failure the store is unchanged.
 * Consistent under concurrent writers: commits only if no entry it read
 * changed, else starts again. Errors: CAP_ECYCLE, CAP_EINSTANCEMISSING
 * (err->id), CAP_EINVAL (foreign handle), CAP_ENOMEM. */
int cap_store_settle(cap_store_t *s, const cap_target_t *t, cap_hash_t *out, cap_err_t *err);

/** Settle, and make the result a closed graph: cap_store_settle, plus, in
 * the same atomic step, every Instance cap the graph reaches published as a
 * blob under its snapshot hash (settle alone keeps them only as instances,
 * so a settled graph with Instances in it names hashes nothing stores). On
 * CAP_OK every hash reachable from *out is in the blob tier or a backend,
 * and the new blobs reach the first writable backend on the next flush.
 * The instances stay and keep running: each one's cap is shared with its
 * blob, frozen, so its next edit copies away from the snapshot (as for any
 * published cap). A Hash target is returned unchanged once its graph is
 * found closed. Errors as cap_store_settle, and CAP_EBLOBMISSING when a Hash
 * child (of the graph, or of a blob it reaches) exists nowhere (err->hash:
 * that hash; err->detail: the field and cap that name it); CAP_EDECODE /
 * CAP_EMISMATCH / CAP_EBACKEND when a backend's blob in the closure could
 * not be read. On failure the store is unchanged. The closure check reads
 * every blob of the graph that memory lacks from the backends (publishing
 * nothing): its cost grows with the whole graph, not with what changed. */
int cap_store_checkpoint(cap_store_t *s, const cap_target_t *t, cap_hash_t *out, cap_err_t *err);

/* Backends: the missing-blob provider and persistence (docs/persistence.md) ---------------- */

/** Most backends one store asks. */
#define CAP_STORE_MAX_BACKENDS 4

/** Attach a backend (the store borrows `b`: it must outlive the store;
 * cap_store_free does not free it). Backends may be attached at any time,
 * also while other threads use the store.
 *
 * Provider: a blob missing from memory is asked of the backends in the
 * order attached by cap_store_get_blob, cap_store_get(Hash),
 * cap_store_promote_blob_to_instance, cap_store_fetch_blob and
 * cap_store_pin. A backend that answers CAP_ENOTFOUND passes the question
 * on; the first other answer decides: the bytes are decoded, verified
 * (unless the backend is CAP_BACKEND_TRUSTED) and published as a clean
 * blob, or the error is returned and nothing is published (a corrupt or
 * failing backend is reported, not skipped). Concurrent misses on one hash
 * fetch once: the other threads wait through the lock hooks' wait /
 * notify_all and get the published cap or the fetcher's error. No store
 * lock is held while a backend is called.
 *
 * Writing: the first writable (not CAP_BACKEND_READONLY) backend receives
 * flushes and write-through puts.
 *
 * Errors: CAP_EINVAL (bad table, err->what; CAP_STORE_MAX_BACKENDS already
 * attached; `b` already attached). */
int cap_store_add_backend(cap_store_t *s, const cap_backend_t *b, cap_err_t *err);

/** Like cap_store_get_blob, with the error detail of a failed fetch:
 * CAP_EBLOBMISSING (in no tier and no backend), CAP_EMISMATCH (a backend's
 * bytes hash to another hash; nothing published), CAP_EDECODE (err->offset),
 * CAP_EBACKEND (err->what), CAP_ENOMEM. */
int cap_store_fetch_blob(cap_store_t *s, const cap_hash_t *h, cap_t **out, cap_err_t *err);

/** Whether `h` exists anywhere: CAP_OK if in memory or in a backend,
 * CAP_ENOTFOUND if nowhere, or the error of the first backend that failed
 * to answer (CAP_EBACKEND). Fetches nothing. */
int cap_store_exists(cap_store_t *s, const cap_hash_t *h, cap_err_t *err);

/** Write every blob not yet written (dirty: published by a put or by settle
 * and not yet flushed; fetched and written-through blobs are clean) to the
 * first writable backend in one batch (one transaction for LMDB), then the
 * backend's flush: on CAP_OK they are durable and clean; on an error none is
 * marked clean and a later flush retries them. Blobs put while a flush runs
 * may wait for the next one. *written (may be NULL) gets how many the
 * backend wrote: blobs it did not hold, plus blobs it held with damaged
 * bytes, now replaced (cap_backend_write_many's counts; a version-1
 * backend counts them all). CAP_OK with *written = 0 when no backend is attached or nothing
 * is dirty; CAP_EBACKEND ("no writable backend attached") when only
 * read-only backends are attached and blobs are dirty.
 *
 * CAP_STORE_WRITE_THROUGH: a put (put_cap, put_cap_with_hash) of a blob not
 * in memory writes it to the first writable backend before publishing it
 * clean; if the write fails the put returns the backend's error
 * (CAP_EBACKEND, CAP_ENOMEM), publishes nothing and leaves the cap
 * unfrozen. A put of a blob already in memory writes nothing. Without a
 * writable backend the flag has no effect (blobs stay dirty). Blobs that
 * settle publishes are not written through: the next flush writes them. */
int cap_store_flush(cap_store_t *s, size_t *written, cap_err_t *err);

/** cap_store_flush that also sets `nroots` named roots (sys/backend.h:
 * name -> hash) on the first writable backend, in the same transaction as
 * the blobs it writes (cap_persist_put_roots), so a crash never leaves a
 * root whose graph was not written. The backend sets a root only when the
 * root's whole graph is stored or in the batch; when it reports a hash
 * missing (a collection removed blobs this store still holds in memory,
 * clean), the blobs of the roots' graphs that memory holds and the backend
 * lacks are added to the batch and the write tried again (a few times).
 * A backend flagged CAP_BACKEND_NONATOMIC_BATCH gets the blobs first
 * (written and flushed), then the roots in a second call. Errors as
 * cap_store_flush, and CAP_EBLOBMISSING (a hash of a root's graph exists
 * nowhere: err->hash; nothing is marked clean, no root set), CAP_EINVAL (a
 * bad root name, NULL roots with nroots > 0), CAP_EBACKEND ("no writable
 * backend attached", "roots not supported"). nroots == 0 is
 * cap_store_flush. */
int cap_store_flush_roots(cap_store_t *s, const cap_backend_root_t *roots, size_t nroots,
                          size_t *written, cap_err_t *err);

/* Walking a graph (walk.h, docs/graph.md) ------------------------------------------------------ */

/** cap_backend_walk through the store: every cap reachable from `roots`,
 * once each, breadth first. A hash is looked up in memory first (the
 * visitor gets the cap, bytes NULL; never re-verified); what memory lacks is
 * asked of the backends in the order attached, a batch per call (the first
 * answer other than CAP_ENOTFOUND decides; the visitor gets the bytes, and
 * the cap with CAP_WALK_DECODE or _VERIFY). Nothing read is published and
 * nothing is kept once visited but the set of hashes seen, allocated with
 * the store's allocator. Instance entries are not roots: settle or
 * checkpoint them first. Returns as cap_backend_walk (CAP_EBLOBMISSING:
 * some reachable hash exists nowhere). CAP_EINVAL for a NULL store. */
int cap_store_walk(cap_store_t *s, const cap_hash_t *roots, size_t nroots,
                   const cap_walk_options_t *opt, cap_walk_fn fn, void *arg,
                   cap_walk_result_t *res, cap_err_t *err);

/** Bring the settled graph of `root` into memory, a level at a time: the
 * root, then all its children, then all of theirs, each level one
 * cap_store_get_blobs call (memory first; the misses to the backends
 * together, one read_many per backend, verified and published as clean
 * blobs). A remote backend is thus asked a number of times that grows with
 * the graph's depth, not its size (docs/redis.md). A child shared by
 * several caps is fetched once. CAP_OK when every cap of the graph is in
 * memory (a budget may drop some again at the next trim: pin what must
 * stay); else the first failure of the level that failed, as
 * cap_store_get_blobs gives it (CAP_EBLOBMISSING, CAP_EMISMATCH,
 * CAP_EDECODE, CAP_EBACKEND: err->hash names the blob), with what earlier
 * levels fetched kept; CAP_ENOMEM; CAP_EINVAL for NULL arguments. */
int cap_store_prefetch(cap_store_t *s, const cap_hash_t *root, cap_err_t *err);

/* Blob retention ----------------------------------------------------------------------------- */

/** Pin a blob (counted: n pins need n unpins). A pinned blob is never dropped
 * from memory (its children are not pinned by it). Fetches it from a backend
 * if needed; CAP_EBLOBMISSING (or a fetch error) if it is nowhere. */
int cap_store_pin(cap_store_t *s, const cap_hash_t *h, cap_err_t *err);
/** Remove one pin. CAP_EINVAL if the blob is not pinned (or not in memory). */
int cap_store_unpin(cap_store_t *s, const cap_hash_t *h);

/** Memory budget for the blob tier in bytes (0, the default: no limit).
 * When the tier is over it, a put or fetch that adds a blob, a flush, or
 * cap_store_trim drops blobs from memory down to 7/8 of the budget, least
 * recently used first (CLOCK: a lookup marks a blob used; a trim pass
 * clears the mark before it may drop it). Dropped are only blobs that can
 * come back: a backend is attached and the blob is clean (fetched, flushed
 * or written through). Kept are blobs pinned, referenced from outside the
 * store (a reference held by a caller or an instance entry), or reachable
 * from an instance entry through Hash children (cap_for_each_child: the
 * entry's cap, then the blobs in memory it names, transitively; a blob that becomes reachable
 * while a trim runs may still go, and comes back through the provider).
 * Without a backend nothing is dropped. When a trim cannot get under the
 * budget, puts try again only once the tier has grown by another eighth of
 * it (or after a flush, an unpin or a new backend). Takes effect at the
 * next of those calls. */
void cap_store_set_budget(cap_store_t *s, size_t bytes);
/** Bytes the blob tier accounts for now: an estimate per blob of its cap
 * (the struct, CNode slots, Data pages, overlays, Image arrays) and table
 * slot. Shared Data pages count once per blob. */
size_t cap_store_blob_bytes(cap_store_t *s);
/** Drop what the budget allows now (as above); *dropped (may be NULL) gets
 * the count. CAP_OK with nothing dropped when under the budget, without a
 * backend, or while another trim runs; CAP_ENOMEM (nothing dropped) if the
 * reachability pass could not get its work list. */
int cap_store_trim(cap_store_t *s, size_t *dropped);

#ifdef __cplusplus
}
#endif

#endif
