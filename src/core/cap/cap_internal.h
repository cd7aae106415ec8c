/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Internal layout of caps and handles, shared by the cap modules and the
 * store (which sits above them). Not installed. */
#ifndef CAPSTORE_CAP_INTERNAL_H
#define CAPSTORE_CAP_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>

#include "capstore/cap.h"

/* Handles ---------------------------------------------------------------------------------
 * The cap layer owns the handle's reference count; the store that made the
 * handle owns the rest (it embeds struct cap_ref as the first member of its
 * entry and supplies `ops`). Holding `state`:
 *   bits 2..63  references other than the store's own ("outside" ones:
 *               callers and caps holding Ref targets)
 *   bit 1       CAP_REF_QUEUED: on the store's dead list
 *   bit 0       CAP_REF_IN_STORE: the store's own reference (entry present)
 * cap_ref_retain adds CAP_REF_ONE; cap_ref_release calls ops->release, which
 * decides what the last outside reference means. */
#define CAP_REF_IN_STORE 1ull
#define CAP_REF_QUEUED 2ull
#define CAP_REF_ONE 4ull

struct cap_ref;
struct cap_ref_ops {
    void (*release)(struct cap_ref *r);
};

struct cap_ref {
    _Atomic uint64_t state;
    uint64_t id;
    const struct cap_ref_ops *ops;
    void *owner; /* the store; compared for "handle of another store" */
};

/* Caps ------------------------------------------------------------------------------------ */

#define CAP_FLAG_FROZEN 1u
/* `key` holds the hash a store published this frozen cap under (set once:
 * KEY_BUSY claims the write, KEY_SET publishes it with release). */
#define CAP_FLAG_KEY_BUSY 2u
#define CAP_FLAG_KEY_SET 4u
/* Looked up without a lock since a store's trim last cleared it: the CLOCK
 * bit of lock-free hits (a heuristic; stores sharing the cap share it). */
#define CAP_FLAG_USED 8u

/* A target as stored inside a cap: the hash or a retained handle. A CNode
 * entry is this struct too, its slot number in `slot`, which sits where the
 * 8-aligned union would leave padding anyway: 40 bytes an entry, not 48
 * (elsewhere `slot` is unused; the target setters leave it alone). */
typedef struct cap_slot_target {
    uint8_t is_ref;
    uint32_t slot;
    union {
        cap_hash_t hash;
        struct cap_ref *ref;
    } u;
} cap_slot_target_t;

typedef cap_slot_target_t cap_cnode_entry_t;
_Static_assert(sizeof(cap_cnode_entry_t) <= 40, "a CNode entry packs its slot into the padding");

typedef struct cap_cnode_body {
    uint8_t size_log;
    size_t count;    /* occupied entries, sorted by slot, no duplicates */
    size_t capacity; /* allocated entries */
    cap_cnode_entry_t *entries;
    size_t ref_count; /* entries whose target is a Ref (kept by the cnode setters) */
    /* Entries allocated in the cap's own block, right after the struct (a
     * copy is one allocation with spare room, so make_mut + set costs one
     * malloc). `entries` points there while they suffice; a larger array is
     * allocated apart and the inline room stays unused until the cap goes. */
    size_t inline_capacity;
} cap_cnode_body_t;

/* A Data page shared between copies of a Data cap. Immutable once shared
 * (refs > 1); the root is computed lazily and published once:
 * root_state 0 = not computed, 1 = being written by one thread, 2 = ready. */
typedef struct cap_page {
    _Atomic uint32_t refs;
    uint8_t state;               /* CAP_PAGE_LOADED or CAP_PAGE_MISSING */
    _Atomic uint32_t root_state;
    cap_hash_t root;             /* valid when root_state == 2 (always for MISSING) */
    uint32_t size;               /* bytes allocated in data[] (page_size for LOADED, 0 for MISSING) */
    uint8_t data[];
} cap_page_t;

typedef struct cap_data_body {
    uint32_t page_size;
    uint64_t page_count;
    uint64_t page_capacity;
    cap_page_t **pages; /* NULL entry = Empty page */
} cap_data_body_t;

typedef struct cap_overlay {
    uint32_t start;
    size_t len;
    uint8_t *bytes; /* NULL when len == 0 */
} cap_overlay_t;

typedef struct cap_instance_body {
    cap_hash_t image_hash_chain;
    cap_hash_t image_hash;
    cap_slot_target_t root_cnode;
    size_t overlay_count;
    size_t overlay_capacity;
    cap_overlay_t *overlays;
    uint32_t mem_size;
    uint64_t regs[CAP_NUM_REGS];
    uint64_t pc;
    uint64_t gas_remaining;
} cap_instance_body_t;

typedef struct cap_image_body {
    /* One allocation holds the arrays; desc points into it. */
    void *block;
    size_t block_size;
    cap_image_desc_t desc;
} cap_image_body_t;

struct cap {
    _Atomic uint32_t refs;
    /* CAP_FLAG_*: a word, not a byte, because gcc (12) calls libatomic for
     * a 1- or 2-byte read-modify-write on RISC-V, which a guest lacks. */
    _Atomic uint32_t flags;
    /* Close to `refs`, so that a store lookup compares the key in the
     * cache line it must touch anyway to take its reference. */
    cap_hash_t key;
    uint8_t kind;
    const cap_alloc_t *alloc;
    union {
        cap_instance_body_t instance;
        cap_image_body_t image;
        cap_data_body_t data;
        cap_cnode_body_t cnode;
        cap_hash_t type_chain;
    } u;
};

/* A CNode's block holds only the head of struct cap up to the end of its
 * body (the union is sized by the much larger Instance body), rounded up so
 * inline entries after it stay aligned: copies stay small, and the entries
 * start close to the reference count. Code touching a CNode therefore never
 * reads or writes the whole struct (no memset/assignment of *c). */
#define CAP_CNODE_HEAD_SIZE                                                                       \
    ((offsetof(struct cap, u) + sizeof(cap_cnode_body_t) + 15u) & ~(size_t)15u)
/* Bytes allocated for a bare cap of a kind (CNode: no inline entries). */
#define CAP_BARE_SIZE(kind) ((kind) == CAP_KIND_CNODE ? CAP_CNODE_HEAD_SIZE : sizeof(struct cap))

/* Allocation helpers through a cap_alloc_t. */
static inline void *cap_mem_alloc(const cap_alloc_t *a, size_t n)
{
    return n ? a->allocate(a->ctx, n) : (void *)0;
}
static inline void cap_mem_free(const cap_alloc_t *a, void *p, size_t n)
{
    if (p)
        a->deallocate(a->ctx, p, n);
}

/* Used by the store's settle: enumerate and rewrite the Ref targets a cap
 * holds directly (CNode slots, Instance root_cnode). */

/** Number of Ref targets `c` holds directly. */
size_t cap_ref_target_count(const cap_t *c);
/** The i-th Ref target (borrowed), in slot order (Instance: its root_cnode). */
struct cap_ref *cap_ref_target_at(const cap_t *c, size_t i);
/** Replace every Ref target whose handle is `r` by Hash(h), releasing the
 * cnode's/instance's references to `r`. Requires a writable cap. */
int cap_ref_target_rewrite(cap_t *c, const struct cap_ref *r, const cap_hash_t *h);

/** The hash standing for Ref number `ordinal` (in slot order; an Instance's
 * root_cnode is 0) of caps[index] in cap_hash_many. Never NULL. */
typedef const cap_hash_t *(*cap_ref_hash_fn)(void *ctx, size_t index, size_t ordinal);

/** cap_hash of caps[0..n) into out[0..n), every Ref target hashing as `fn`
 * says (fn NULL: a Ref is CAP_EUNSETTLED). CNodes are hashed together, a
 * tree level of all of them per batch call, so narrow trees still fill the
 * kernel's lanes. Allocates scratch from the CNodes' allocator: CAP_ENOMEM.
 * On an error nothing useful is in out. */
int cap_hash_many(const cap_t *const *caps, size_t n, cap_hash_t *out, cap_ref_hash_fn fn,
                  void *ctx);

/** Replace every Ref target of `c` (CNode slots in slot order, an Instance's
 * root_cnode) by the hash fn(ctx, index, ordinal) gives, WITHOUT releasing
 * the handles: the references the cap held pass to the caller, who releases
 * them later (settle does this under the store's locks, where no handle may
 * be released). The caller must own `c` exclusively; not checked. */
void cap_ref_targets_to_hashes(cap_t *c, cap_ref_hash_fn fn, void *ctx, size_t index);

/** Record `h` as the key of the frozen cap `c` unless it has one; returns
 * whether c's key is `h` (false: it was published under another hash, which
 * only an unverified put with a wrong hash can cause). Thread-safe; after a
 * true return c->key may be read by anyone ordered after this call. */
bool cap_claim_key(cap_t *c, const cap_hash_t *h);
/** Whether `c` carries a key other than `h` (cap_claim_key would fail). */
static inline bool cap_key_conflicts(const cap_t *c, const cap_hash_t *h)
{
    return (atomic_load_explicit((_Atomic uint32_t *)&c->flags, memory_order_acquire) &
            CAP_FLAG_KEY_SET) &&
           __builtin_memcmp(c->key.bytes, h->bytes, 32) != 0;
}

/** Allocate a bare cap of a kind with refcount 1 (body zeroed). */
int cap_alloc_bare(cap_t **out, const cap_alloc_t *a, cap_kind_t kind);

/** The inline entry room of a CNode (right after the struct, see
 * cap_cnode_body_t), and the size of the cap's own block. */
static inline cap_cnode_entry_t *cap_cnode_inline(const cap_t *c)
{
    return (cap_cnode_entry_t *)(void *)((char *)(void *)(uintptr_t)c + CAP_CNODE_HEAD_SIZE);
}
/* Whether a CNode's entries are in its inline room (checked by capacity
 * first: a separate array could sit right after a cap without room). */
static inline bool cap_cnode_entries_inline(const cap_t *c)
{
    return c->u.cnode.inline_capacity && c->u.cnode.entries == cap_cnode_inline(c);
}
static inline size_t cap_block_size(const cap_t *c)
{
    return c->kind == CAP_KIND_CNODE
               ? CAP_CNODE_HEAD_SIZE + c->u.cnode.inline_capacity * sizeof(cap_cnode_entry_t)
               : sizeof(struct cap);
}

/* Pages (data.c). A new page has refs 1. NULL on allocation failure. */
cap_page_t *cap_page_new_loaded(const cap_alloc_t *a, const uint8_t *bytes, uint32_t size);
cap_page_t *cap_page_new_missing(const cap_alloc_t *a, const cap_hash_t *root);
void cap_page_release(const cap_alloc_t *a, cap_page_t *p);

/* Cap model internals (cap.c, data.c, image.c, hash.c) ------------------------------------ */

/** Grow or shrink a block through the hooks (p NULL: allocate; new_n 0: free). */
static inline void *cap_mem_realloc(const cap_alloc_t *a, void *p, size_t old_n, size_t new_n)
{
    if (!p)
        return cap_mem_alloc(a, new_n);
    if (!new_n) {
        a->deallocate(a->ctx, p, old_n);
        return (void *)0;
    }
    return a->reallocate(a->ctx, p, old_n, new_n);
}

/** CAP_EINVAL unless c is a cap of kind k; CAP_EBUSY unless it is writable. */
int cap_check_writable(const cap_t *c, cap_kind_t k);
/** CAP_OK when `t` may be stored (HASH non-zero or REF non-NULL); CAP_EINVAL
 * otherwise (NONE included). */
int cap_target_validate(const cap_target_t *t);
/** Store a validated target (retains a Ref). */
void cap_slot_target_set(cap_slot_target_t *dst, const cap_target_t *t);
/** Drop what a stored target holds (releases a Ref). */
void cap_slot_target_drop(cap_slot_target_t *st);
/** Borrowed public view of a stored target. */
cap_target_t cap_slot_target_view(const cap_slot_target_t *st);

/** A new reference to a page (atomic). */
void cap_page_retain(cap_page_t *p);
/** Root of a page of `page_size` bytes (p NULL: Empty). Loaded pages cache it
 * once (thread-safe). */
void cap_page_root(const cap_page_t *p, uint32_t page_size, uint8_t out[32]);
/** log2(page_size / 32): the depth of a page's chunk tree. */
unsigned cap_page_depth(uint32_t page_size);

/** Copy an Image description into c's body (one allocation); validates it. */
int cap_image_body_init(cap_t *c, const cap_image_desc_t *d, cap_err_t *err);

#endif
