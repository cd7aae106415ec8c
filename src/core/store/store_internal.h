/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Internal layout of the store (src/core/store only). Not installed.
 *
 * Layout
 *   header      struct cap_store: options, counters, the dead list. Lives in
 *               the caller's storage (in place) or in one allocation, and
 *               outlives cap_store_free until the last handle is gone.
 *   shards      STORE_SHARDS shards, allocated with their locks on first use:
 *               each has a lock, an open-addressing blob table (linear
 *               probing) and the intrusive list of the instance entries whose
 *               id maps to it (id % STORE_SHARDS).
 *   dead lock   guards the dead list and every change of a handle's IN_STORE
 *               or QUEUED bit; allocated on first use, freed with the header.
 *
 * Lock order: shard locks in increasing index, then the dead lock. No cap is
 * released and no handle freed while any store lock is held.
 *
 * Handle protocol (state word, see cap_internal.h): an entry is dead when no
 * outside reference is left while IN_STORE is set. The release that takes the
 * outside count from 1 to 0 while IN_STORE pushes the entry on the dead list
 * under the dead lock (setting QUEUED); store-side removals clear IN_STORE
 * under the dead lock; whoever leaves the state at exactly 0 frees the
 * handle, except that a QUEUED entry is freed only by whoever pops it. */
#ifndef CAPSTORE_STORE_INTERNAL_H
#define CAPSTORE_STORE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "cap/cap_internal.h"
#include "capstore/store.h"

#define STORE_SHARD_BITS 6u
#define STORE_SHARDS (1u << STORE_SHARD_BITS)
#define STORE_LINE 64u
#define STORE_BLOB_MIN_LOG 4u

/* An instance entry; its first member is the handle callers hold. */
typedef struct store_entry {
    struct cap_ref ref;
    cap_t *cap;                    /* guarded by the shard lock; NULL once removed */
    uint64_t version;              /* bumped on every change of `cap` (shard lock) */
    struct store_entry *prev;      /* shard list (shard lock) */
    struct store_entry *next;
    struct store_entry *dead_next; /* dead list (dead lock) */
    uint8_t linked;                /* in its shard's list (shard lock) */
} store_entry_t;

/* A blob's slot: what a lookup reads. `mix` (store_blob_mix of the key)
 * lets lock-free probes reject tag collisions and lets growth and deletion
 * re-home slots without touching the caps; the key itself is compared
 * against cap->key, in the line the lookup's reference touches anyway.
 * Both fields are written under the shard lock only; `mix` and `cap` are
 * atomics so that lock-free probes may read them (a cap is dereferenced
 * only under the lock or inside a read section, see readers.c). */
typedef struct blob_slot {
    _Atomic uint64_t mix;
    _Atomic(cap_t *) cap; /* the store's reference */
} blob_slot_t;

/* What only pins, flush and trim need (shard lock), apart from the slots so
 * that a lookup does not pull it in. */
typedef struct blob_meta {
    uint32_t pins; /* cap_store_pin count */
    uint8_t flags; /* STORE_BLOB_* */
} blob_meta_t;

static inline cap_t *store_slot_cap(const blob_slot_t *b)
{
    return atomic_load_explicit((_Atomic(cap_t *) *)&b->cap, memory_order_relaxed);
}

/* Blob flags (shard lock). */
#define STORE_BLOB_USED 1u  /* looked up since the last trim pass (CLOCK bit) */
#define STORE_BLOB_DIRTY 2u /* published here, not yet written to a backend */
#define STORE_BLOB_MARK 4u  /* trim: reachable from a live instance */

/* A fetch from the backends in flight (single flight): the fetching thread's
 * stack record, on its shard's list while the backends are asked. Threads
 * that miss the same hash register as waiters and sleep on the shard lock;
 * the fetcher fills in the outcome, sets `done`, wakes them and leaves only
 * once every waiter has read it (all fields under the shard lock). */
typedef struct store_fetch {
    cap_hash_t key;
    struct store_fetch *next;
    const void *batch; /* the batch fetch it belongs to (provider.c); NULL: a single one */
    unsigned waiters;
    int done;
    int rc;
    cap_err_t err;
} store_fetch_t;

/* A shard's blob table: `1 << log` 16-bit tags (0: empty slot, else
 * 0x8000 | 15 bits of the key's mix), four to a word (tag i in bits
 * 16*(i%4) of word i/4, so a probe tests four at a time), and a miss filter
 * (four bits a slot), in this block; the slots and the metadata in their
 * own blocks. A probe reads the tags (after the filter, while lookups
 * mostly miss: blobs.c) and looks at a slot only on a tag match, so a miss
 * touches a filter word, or a tag word, and no slot.
 *
 * Lock-free reads: lookups take no lock (blobs.c, probe_lockfree). For that,
 * the tags are atomics, the table is published with a release store, and a
 * table replaced by growth is not freed but kept on the `retired` chain until
 * the store closes (tags and slots: their sum is below the current table's).
 * Deletions, which move tags backward, are bracketed by the shard's `seq`
 * (odd while one runs), and a lock-free miss counts only if `seq` did not
 * change meanwhile. Inserts need no bracket: they only fill an empty tag,
 * and a probe that missed before it is ordered before the insert. Slots are
 * written under the shard lock only; a hit goes from a slot to its cap
 * inside a read section (readers.c), which trim waits out before it
 * releases what it removed. */
#define STORE_TAG_WORD_LOG 2u
#define STORE_TAGS_PER_WORD (1u << STORE_TAG_WORD_LOG)
typedef struct blob_table {
    struct blob_table *retired; /* the table this one replaced (kept for readers) */
    blob_slot_t *slots;         /* 1 << log; kept with the retired tags */
    blob_meta_t *meta;          /* 1 << log; freed as soon as replaced */
    unsigned log;
    size_t removed;             /* deletions since the miss filter was built */
    _Atomic uint64_t tags[];    /* (1 << log) / STORE_TAGS_PER_WORD words, then the
                                   miss filter's (1 << log) / 16 (blob_table.h) */
} blob_table_t;

typedef struct store_shard {
    void *lock;
    _Atomic(blob_table_t *) table; /* NULL until the first insert */
    size_t count;                  /* blobs in this shard */
    size_t dirty;                  /* of which STORE_BLOB_DIRTY */
    store_entry_t *head;
    store_fetch_t *fetching;       /* fetches in flight for this shard's hashes */
    uint64_t fetch_gen;            /* records ever put on `fetching` (a batch's check) */
    _Atomic uint32_t seq;          /* odd while a deletion moves tags */
} store_shard_t;

/* The shard's table (shard lock held, or a racy read that only prefetches). */
static inline blob_table_t *store_blob_table(const store_shard_t *sh)
{
    return atomic_load_explicit((_Atomic(blob_table_t *) *)&sh->table, memory_order_relaxed);
}
static inline size_t store_table_size(const blob_table_t *t)
{
    return t ? (size_t)1 << t->log : 0;
}
static inline uint16_t store_tag_at(const blob_table_t *t, size_t i)
{
    uint64_t w = atomic_load_explicit((_Atomic uint64_t *)&t->tags[i >> STORE_TAG_WORD_LOG],
                                      memory_order_relaxed);
    return (uint16_t)(w >> ((i & (STORE_TAGS_PER_WORD - 1u)) * 16u));
}
static inline bool store_table_used(const blob_table_t *t, size_t i)
{
    return store_tag_at(t, i) != 0;
}

/* Read sections (readers.c): counters on their own lines, striped by the
 * caller's stack address. */
#define STORE_READ_STRIPES_LOG 3u
#define STORE_READ_STRIPES (1u << STORE_READ_STRIPES_LOG)
typedef union store_read_count {
    _Atomic uint32_t n;
    unsigned char pad[STORE_LINE];
} store_read_count_t;
typedef struct store_readers {
    store_read_count_t count[2][STORE_READ_STRIPES];
    _Atomic uint32_t epoch; /* low bit: the set new readers count on */
    _Atomic uint32_t sync_busy;
} store_readers_t;

/* One shard per cache line, so readers of different shards do not contend. */
typedef union store_shard_slot {
    store_shard_t sh;
    unsigned char pad[STORE_LINE];
} store_shard_slot_t;

_Static_assert(sizeof(store_shard_t) <= STORE_LINE, "shard fits a line");

enum { STORE_UNINIT = 0, STORE_INITIALISING = 1, STORE_READY = 2, STORE_CLOSED = 3 };

struct cap_store {
    /* Read-mostly: every lookup reads these. */
    const cap_alloc_t *alloc;
    const cap_lock_hooks_t *hooks; /* NULL: built-in spin locks */
    uint64_t seed0, seed1;
    unsigned flags;
    uint8_t in_place;
    /* 1 while lookups mostly miss: probe_lockfree then asks the miss filter
     * first (blobs.c). Written only when a sampled lookup changes it. */
    _Atomic uint8_t miss_mode;
    _Atomic uint32_t init_state;
    store_shard_slot_t *shards; /* STORE_SHARDS of them (first use) */
    store_readers_t *readers;   /* read sections of lock-free hits (first use) */
    void *block;                /* shards, readers and shard locks, one allocation */
    size_t block_size;
    void *dead_lock;            /* its own allocation; freed with the header */
    size_t lock_size;           /* bytes reserved per lock */
    /* Backends: slot i is written once, before nbackends is raised past i
     * (release), so a reader that loads the count (acquire) may read slots
     * below it without a lock. */
    _Atomic unsigned nbackends;
    _Atomic uint32_t attach_busy; /* serialises cap_store_add_backend */
    const cap_backend_t *backends[CAP_STORE_MAX_BACKENDS];
    _Atomic size_t budget;      /* 0: no limit */
    const cap_workers_t *workers; /* NULL: every phase on the caller's thread */
    unsigned char pad0[STORE_LINE];
    /* Written by puts, handle creation and frees (never by lookups). */
    _Atomic uint64_t live;      /* 1 while open + one per live handle */
    _Atomic uint64_t next_id;   /* UINT64_MAX: exhausted */
    _Atomic size_t blob_count;
    _Atomic size_t instance_count;
    _Atomic size_t blob_bytes;   /* estimate of the blob tier (store_cap_bytes) */
    _Atomic size_t dirty_count;  /* blobs flagged STORE_BLOB_DIRTY */
    _Atomic size_t next_trim_at; /* puts trim only past this many bytes (hysteresis) */
    _Atomic uint32_t trim_busy;  /* one trim at a time */
    unsigned trim_hand;          /* shard the next trim pass starts at (trim_busy) */
    unsigned char pad1[STORE_LINE];
    /* Guarded by the dead lock. */
    store_entry_t *dead_head;
    size_t dead_count;
};

_Static_assert(sizeof(struct cap_store) <= CAP_STORE_STORAGE_SIZE, "store header fits its storage");

/* lock.c ------------------------------------------------------------------------------------ */

size_t store_lock_size(const cap_lock_hooks_t *hooks);
void store_lock_init(const cap_store_t *s, void *l);
void store_lock_destroy(const cap_store_t *s, void *l);
void store_lock(const cap_store_t *s, void *l);
void store_unlock(const cap_store_t *s, void *l);
/* Called with the lock held: releases it, waits a little (or for a notify),
 * re-acquires it. */
void store_wait(const cap_store_t *s, void *l);
void store_notify_all(const cap_store_t *s, void *l);
void store_spin_pause(void);

/* readers.c --------------------------------------------------------------------------------- */

void store_readers_init(store_readers_t *r);

/* The caller's stripe: threads' stacks lie apart, so mostly its own. */
static inline unsigned store_read_stripe(void)
{
    unsigned char here;
    uint64_t a = (uint64_t)(uintptr_t)&here >> 12;
    return (unsigned)((a * 0x9E3779B97F4A7C15ull) >> (64u - STORE_READ_STRIPES_LOG));
}

/* Enter a read section on stripe k (store_read_stripe); pass what it
 * returns to store_read_exit. Loads that must see trim's removals (the
 * table, a slot's cap) are seq_cst. */
static inline _Atomic uint32_t *store_read_enter_at(const cap_store_t *s, unsigned k)
{
    unsigned e = atomic_load_explicit(&s->readers->epoch, memory_order_relaxed) & 1u;
    _Atomic uint32_t *n = &s->readers->count[e][k].n;
    atomic_fetch_add_explicit(n, 1, memory_order_seq_cst);
    return n;
}

static inline _Atomic uint32_t *store_read_enter(const cap_store_t *s)
{
    return store_read_enter_at(s, store_read_stripe());
}

static inline void store_read_exit(_Atomic uint32_t *n)
{
    atomic_fetch_sub_explicit(n, 1, memory_order_release);
}

/* Wait until every read section that began before the call has ended. Call
 * it after removing blobs and before releasing the store's references to
 * them. Read sections never wait for a lock, so shard locks may be held. */
void store_read_sync(cap_store_t *s);

/* store.c ----------------------------------------------------------------------------------- */

/* CAP_OK once the tables exist (allocating them on first use), else CAP_ENOMEM. */
int store_ensure_ready(cap_store_t *s);
static inline bool store_is_ready(const cap_store_t *s)
{
    return atomic_load_explicit((_Atomic uint32_t *)&s->init_state, memory_order_acquire) ==
           STORE_READY;
}
static inline store_shard_t *store_shard(const cap_store_t *s, unsigned i)
{
    return &s->shards[i].sh;
}
static inline unsigned store_entry_shard(const store_entry_t *e)
{
    return (unsigned)(e->ref.id & (STORE_SHARDS - 1));
}
/* A new entry holding `c` (the caller's reference passes to it), state
 * IN_STORE | ONE, not yet linked nor counted in the header; NULL: no memory. */
store_entry_t *store_entry_new(cap_store_t *s, cap_t *c);
/* Free an entry store_entry_new made that never became a handle. */
void store_entry_discard(cap_store_t *s, store_entry_t *e);
/* Link a new entry into its shard's list (shard lock held). */
void store_entry_link_locked(cap_store_t *s, store_entry_t *e);
/* Free a handle whose state reached 0 (no store lock held). */
void store_entry_free(cap_store_t *s, store_entry_t *e);
/* Clear `bits` of the handle's state; the caller holds the dead lock. Returns
 * true when the state became 0 (the caller frees the entry after unlocking). */
bool store_entry_clear_bits_locked(store_entry_t *e, uint64_t bits);
/* Unlink a linked entry from its shard list (shard lock held). Returns its
 * cap (the entry's reference, now the caller's). */
cap_t *store_entry_unlink_locked(cap_store_t *s, store_entry_t *e);
/* The same without decrementing instance_count (the caller subtracts a
 * batch's total once, before its locks go). */
cap_t *store_entry_unlink_uncounted(cap_store_t *s, store_entry_t *e);
/* Whether every Ref target `c` holds directly is a handle of store `s`. */
bool store_cap_refs_owned(const cap_store_t *s, const cap_t *c);
/* The handle as an entry of `s`, or NULL when it is NULL or foreign. */
store_entry_t *store_entry_of(const cap_store_t *s, cap_ref_t *r);
/* A new reference to the entry's current cap and its version, read under
 * the shard lock; NULL when the entry is gone. */
cap_t *store_entry_read(cap_store_t *s, store_entry_t *e, uint64_t *version);

/* blobs.c ----------------------------------------------------------------------------------- */

static inline uint64_t store_blob_mix(const cap_store_t *s, const cap_hash_t *h)
{
    return (cap_load_le64(h->bytes) ^ s->seed0) * (s->seed1 | 1u);
}
static inline unsigned store_blob_shard(uint64_t mix)
{
    return (unsigned)(mix >> (64u - STORE_SHARD_BITS));
}
/* The index of `h` in the shard's table, or SIZE_MAX (shard lock held). */
size_t store_blob_find(store_shard_t *sh, const cap_hash_t *h, uint64_t mix);
/* Make room for `extra` more blobs (shard lock held). CAP_ENOMEM changes nothing. */
int store_blob_reserve(const cap_store_t *s, store_shard_t *sh, size_t extra);
/* Whether `extra` more blobs fit without growing (shard lock held). */
bool store_blob_has_room(const store_shard_t *sh, size_t extra);
/* Insert an absent key; room must have been reserved (shard lock held). Takes
 * over the caller's reference to `c`, which must be frozen and keyed `h`
 * (store_keyed_ref). The blob is dirty (made here, not yet written): what
 * settle and puts publish. */
void store_blob_insert_new(cap_store_t *s, store_shard_t *sh, const cap_hash_t *h, uint64_t mix,
                           cap_t *c);
/* Header counters of a batch of inserts, added once (store_blob_tally_add):
 * a locked add per insert would wait for each insert's cache misses in
 * turn instead of letting them overlap. */
typedef struct store_blob_tally {
    size_t count, bytes, dirty;
} store_blob_tally_t;
/* store_blob_insert_new without the header counters, which go to `tally`. */
void store_blob_insert_tallied(cap_store_t *s, store_shard_t *sh, uint64_t mix, cap_t *c,
                               store_blob_tally_t *tally);
/* The same with explicit STORE_BLOB_* flags. */
void store_blob_insert_tallied_flags(store_shard_t *sh, uint64_t mix, cap_t *c, unsigned flags,
                                     store_blob_tally_t *tally);
/* Add a batch's counters to the header (before the shard locks go). */
void store_blob_tally_add(cap_store_t *s, const store_blob_tally_t *tally);
/* Start the cache misses of inserting `mix` (its shard lock held). */
void store_blob_prefetch(const cap_store_t *s, uint64_t mix);
/* The same without the lock (the metadata is not fetched). */
void store_blob_prefetch_unlocked(const cap_store_t *s, uint64_t mix);
/* The same with explicit STORE_BLOB_* flags (a fetched blob is clean). */
void store_blob_insert_flags(cap_store_t *s, store_shard_t *sh, const cap_hash_t *h, uint64_t mix,
                             cap_t *c, unsigned flags);
/* Freeze `c` and give it key `h` (cap_claim_key); *out = a new reference
 * to it. When it already carries another key (an unverified put with a
 * wrong hash), *out is a new frozen copy keyed `h` instead. CAP_ENOMEM (the
 * copy): nothing changed. May run under a shard lock (allocates only). */
int store_keyed_ref(cap_t *c, const cap_hash_t *h, cap_t **out);
/* Remove the blob in slot `i` (shard lock held); returns the store's
 * reference for the caller to release after unlocking. Later slots of the
 * probe run may move into `i`. */
cap_t *store_blob_remove_at(cap_store_t *s, store_shard_t *sh, size_t i);
/* Lookup with the provider path: *out = a new reference, fetched from the
 * backends on a memory miss. `err` may be NULL. */
int store_blob_get(cap_store_t *s, const cap_hash_t *h, cap_t **out, cap_err_t *err);
/* Close: release every blob and free the tables. */
void store_blobs_release_all(cap_store_t *s);

/* Fill `err` (may be NULL) with `code` and the static `what`; returns `code`.
 * Inline so that a miss without a detail costs a test, not a call. */
static inline int store_fail(cap_err_t *err, int code, const char *what)
{
    if (err)
        return cap_err_set(err, code, what);
    return code;
}

/* A blob the store has nowhere: neither in memory nor in any backend. */
static inline int store_missing(cap_err_t *err, const cap_hash_t *h)
{
    if (err) {
        cap_err_set(err, CAP_EBLOBMISSING, "in no tier and no backend");
        cap_err_set_hash(err, h);
    }
    return CAP_EBLOBMISSING;
}

/* batch_get.c ------------------------------------------------------------------------------- */

/* A batch call's error detail: that of its lowest failing index. */
typedef struct store_batch_err {
    cap_err_t *err; /* the caller's (may be NULL) */
    size_t first;   /* the lowest failing index so far; SIZE_MAX: none */
    int code;       /* its code; CAP_OK: none */
} store_batch_err_t;
/* Item i failed with `code`: keep it if it is the lowest so far, with
 * `detail` (NULL: made from the code and `h`). */
void store_batch_fail(store_batch_err_t *b, size_t i, int code, const cap_err_t *detail,
                      const cap_hash_t *h);

/* settle.c, checkpoint.c, walk.c ------------------------------------------------------------ */

/* cap_store_settle; with `checkpoint`, cap_store_checkpoint's graph part. */
int store_settle_run(cap_store_t *s, const cap_target_t *t, cap_hash_t *out, bool checkpoint,
                     cap_err_t *err);
/* In a checkpoint's commit (the shard locks of its blob and entry held,
 * room reserved, `c` keyed `h`): freeze the Instance cap `c` and publish it
 * as the blob `h` unless that blob is there (the entry keeps its reference). */
void store_checkpoint_publish_locked(cap_store_t *s, cap_t *c, const cap_hash_t *h,
                                     store_blob_tally_t *tally);
/* Check that the Hash children of the `ngiven` caps given(ctx, i, &hash)
 * (with hashes of their own: the nodes of a settle) exist in memory or in a
 * backend, transitively: CAP_OK, or CAP_EBLOBMISSING (err: the first
 * missing hash and what names it), CAP_EDECODE / CAP_EMISMATCH, CAP_EBACKEND,
 * CAP_ENOMEM. Publishes nothing. */
int store_walk_closure(cap_store_t *s, size_t ngiven,
                       const cap_t *(*given)(void *ctx, size_t i, cap_hash_t *h), void *ctx,
                       cap_err_t *err);

/* provider.c -------------------------------------------------------------------------------- */

static inline unsigned store_backend_count(const cap_store_t *s)
{
    return atomic_load_explicit((_Atomic unsigned *)&s->nbackends, memory_order_acquire);
}
/* A memory miss of `h` with backends attached, called with the shard lock
 * held (the probe just missed); returns with it released. Single flight. */
int store_fetch_locked(cap_store_t *s, store_shard_t *sh, const cap_hash_t *h, uint64_t mix,
                       cap_t **out, cap_err_t *err);
/* The memory misses hashes[idx[0..m)] from the backends, in one batch per
 * backend (cap_backend_read_many), single flight per hash as
 * store_fetch_locked. Sets out[idx[j]] (a new reference or NULL) and
 * codes[idx[j]] (when `codes`), and reports failures to `be`. */
void store_fetch_many(cap_store_t *s, const cap_hash_t *hashes, const size_t *idx, size_t m,
                      cap_t **out, int *codes, store_batch_err_t *be);
/* The first writable backend, or NULL. */
const cap_backend_t *store_writable_backend(const cap_store_t *s);

/* The caps of the graphs of `roots` that memory holds and backend `b`
 * lacks (held.c), for cap_store_flush_roots: new references in *caps and
 * their hashes in *hashes (one block from s->alloc of *size bytes, caps
 * after hashes), *n of them. CAP_OK (possibly none), CAP_ENOMEM, or the
 * backend's error. */
int cap_store_held_missing(cap_store_t *s, const cap_backend_t *b, const cap_backend_root_t *roots,
                           size_t nroots, cap_hash_t **hashes, cap_t ***caps, size_t *n,
                           size_t *size, cap_err_t *err);

/* parallel.c -------------------------------------------------------------------------------- */

/* How many parts to cut `items` into for store_parallel: a few per worker
 * thread, none smaller than `min_items`; 1 without workers. */
size_t store_parts(const cap_store_t *s, size_t items, size_t min_items);
/* fn(arg, i) for every part i in [0, parts), on the store's workers when it
 * has them and parts > 1, else on this thread in order. Returns when all
 * have returned (their writes are then visible to the caller). */
void store_parallel(const cap_store_t *s, size_t parts, void (*fn)(void *arg, size_t i),
                    void *arg);
/* Part i of `items` cut into `parts` near-equal ranges: [*lo, *hi). */
void store_part_range(size_t items, size_t parts, size_t i, size_t *lo, size_t *hi);

/* retain.c ---------------------------------------------------------------------------------- */

/* Bytes the blob tier accounts for `c` (an estimate; a function of the frozen
 * content, so it is the same when the blob leaves as when it came). */
size_t store_cap_bytes(const cap_t *c);
/* After a put, fetch or flush: trim if over the budget (cheap when not). */
void store_maybe_trim(cap_store_t *s);

#endif
