/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore — caps: the five kinds, handles, targets, cap_hash, wire codec.
 *
 * A cap_t is a reference-counted value of one of five kinds (cap-schema.md).
 * Ownership rules:
 *   - Constructors (cap_*_new, cap_copy, cap_wire_decode) return a new
 *     reference through an out-parameter; the caller releases it.
 *   - Getters that return `cap_t *` or `cap_ref_t *` say whether they return
 *     a new reference or borrow one.
 *   - A cap is writable only while its holder has the only reference and it
 *     has not been frozen (published). Setters on a cap that is not writable
 *     return CAP_EBUSY and change nothing. cap_make_mut gives a writable cap.
 *   - Each cap records the allocator it was made with and is freed through
 *     it; the allocator must outlive the cap.
 * Reference counts are atomic: caps may be shared between threads; a cap's
 * lazily computed values (page roots) are written once, atomically.
 * NULL: a function returning int refuses a NULL pointer argument with
 * CAP_EINVAL (unless it says NULL is allowed); accessors of a NULL cap
 * return 0, false or NULL; cap_kind and cap_hash_is_zero, which have no
 * such answer, say NULL is undefined, and debug builds trap on it. */
#ifndef CAPSTORE_CAP_H
#define CAPSTORE_CAP_H

#include "capstore/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cap cap_t;
/** A handle to one instance entry of a store (see store.h). */
typedef struct cap_ref cap_ref_t;

/** Kinds: the value is the SSZ Union selector. */
typedef enum cap_kind {
    CAP_KIND_INSTANCE = 0,
    CAP_KIND_IMAGE = 1,
    CAP_KIND_DATA = 2,
    CAP_KIND_CNODE = 3,
    CAP_KIND_TYPE = 4
} cap_kind_t;

#define CAP_NUM_REGS 13
#define CAP_MAX_ENDPOINTS 64
#define CAP_MAX_SOURCE_DEPTH 8
#define CAP_CNODE_MAX_SIZE_LOG 16
#define CAP_PAGE_SIZE_DEFAULT 4096u
#define CAP_PAGE_SIZE_MIN 32u
#define CAP_PAGE_SIZE_MAX 65536u

/* Handles ---------------------------------------------------------------------------- */

/** New reference to the same handle. Returns `r`. */
cap_ref_t *cap_ref_retain(cap_ref_t *r);
/** Drop a reference. Safe after the handle's store is gone (see store.h). NULL is a no-op.
 * Releasing a reference not held is undefined (debug builds trap). */
void cap_ref_release(cap_ref_t *r);
/** The instance id (>= 1). */
uint64_t cap_ref_id(const cap_ref_t *r);
/** Strong count: every reference to the handle, the store's own included
 * (the seed's Arc::strong_count). */
uint64_t cap_ref_strong_count(const cap_ref_t *r);

/* Targets (CapHashOrRef) -------------------------------------------------------------- */

typedef enum cap_target_kind {
    CAP_TARGET_NONE = 0, /**< empty slot */
    CAP_TARGET_HASH = 1,
    CAP_TARGET_REF = 2
} cap_target_kind_t;

/** A slot or field target: a hash, or a handle. A target read out of a cap
 * borrows its `ref` (valid while the cap is held); a target passed in is
 * retained by the callee where it keeps it. */
typedef struct cap_target {
    cap_target_kind_t kind;
    cap_hash_t hash;    /**< CAP_TARGET_HASH */
    cap_ref_t *ref;     /**< CAP_TARGET_REF */
} cap_target_t;

static inline cap_target_t cap_target_of_hash(const cap_hash_t *h)
{
    cap_target_t t;
    t.kind = CAP_TARGET_HASH;
    t.hash = *h;
    t.ref = (cap_ref_t *)0;
    return t;
}

static inline cap_target_t cap_target_of_ref(cap_ref_t *r)
{
    cap_target_t t;
    t.kind = CAP_TARGET_REF;
    for (unsigned i = 0; i < 32; i++)
        t.hash.bytes[i] = 0;
    t.ref = r;
    return t;
}

/** True when all 32 bytes are zero (the empty slot; not a valid target).
 * `h` must not be NULL (undefined; debug builds trap). */
bool cap_hash_is_zero(const cap_hash_t *h);

/* Common ------------------------------------------------------------------------------ */

/** New reference to `c`. Returns `c`. */
cap_t *cap_retain(cap_t *c);
/** Drop a reference; the last one frees the cap, releasing the handles and
 * pages it holds. NULL is a no-op. Releasing a reference not held is
 * undefined (debug builds trap when they can still see it). */
void cap_release(cap_t *c);
/** The cap's kind. `c` must not be NULL (undefined; debug builds trap):
 * there is no kind to return for it. */
cap_kind_t cap_kind(const cap_t *c);
/** The allocator the cap was made with (borrowed). */
const cap_alloc_t *cap_allocator(const cap_t *c);
/** Current reference count (racy when shared; for tests and diagnostics). */
uint32_t cap_refcount(const cap_t *c);
/** Freeze for good: setters then return CAP_EBUSY. Publishing freezes. */
void cap_freeze(cap_t *c);
bool cap_is_frozen(const cap_t *c);
/** Writable: the caller's is the only reference and the cap is not frozen. */
bool cap_is_writable(const cap_t *c);

/** Deep copy for copy-on-write: a new, writable cap (refcount 1, not frozen)
 * with the same content, made with the source's allocator. Nested handles are
 * retained, Data pages are shared (copied only when one copy writes a page). */
int cap_copy(const cap_t *src, cap_t **out);

/** Arc::make_mut: if *c is writable, leave it; else replace *c with a copy
 * and release the caller's reference to the original. On error *c is
 * unchanged (CAP_ENOMEM). */
int cap_make_mut(cap_t **c);

/** Structural equality of content (targets compare by hash, or by handle
 * identity for Refs). Page states count: Loaded zeros != Empty here, although
 * they hash the same. */
bool cap_equal(const cap_t *a, const cap_t *b);

/** Whether any target of the cap is a Ref. */
bool cap_has_refs(const cap_t *c);

/** cap_hash: mix_in_selector(hash_tree_root(payload), kind). CAP_EUNSETTLED if
 * the cap holds a Ref; CAP_ENOMEM if scratch space for a large CNode could not
 * be had. Computes and caches page roots of Data caps. */
int cap_hash(const cap_t *c, cap_hash_t *out);

/* Type ------------------------------------------------------------------------------- */

int cap_type_new(cap_t **out, const cap_alloc_t *a, const cap_hash_t *image_hash_chain);
const cap_hash_t *cap_type_image_hash_chain(const cap_t *c);
int cap_type_set_image_hash_chain(cap_t *c, const cap_hash_t *h);

/* CNode ------------------------------------------------------------------------------ */

/** An empty cnode of 2^size_log slots; CAP_EINVAL if size_log > 16. Memory
 * grows with occupied slots only. */
int cap_cnode_new(cap_t **out, const cap_alloc_t *a, unsigned size_log);
unsigned cap_cnode_size_log(const cap_t *c);
/** Number of occupied slots. */
size_t cap_cnode_count(const cap_t *c);
/** Set slot `slot` to target `t` (a NONE target clears the slot). Refs are
 * retained by the cnode. Errors: CAP_ESLOTRANGE (slot >= 2^size_log),
 * CAP_EINVAL (zero hash, NULL ref), CAP_EBUSY, CAP_ENOMEM. */
int cap_cnode_set(cap_t *c, uint32_t slot, const cap_target_t *t);
int cap_cnode_clear(cap_t *c, uint32_t slot);
/** Read a slot: *out gets the target (NONE if empty; a Ref is borrowed).
 * CAP_ESLOTRANGE when out of range. */
int cap_cnode_get(const cap_t *c, uint32_t slot, cap_target_t *out);
/** The i-th occupied slot in increasing slot order (i < cap_cnode_count). */
int cap_cnode_entry(const cap_t *c, size_t i, uint32_t *slot, cap_target_t *out);

/* Data ------------------------------------------------------------------------------- */

typedef enum cap_page_state {
    CAP_PAGE_EMPTY = 0,   /**< all zero, not stored */
    CAP_PAGE_LOADED = 1,  /**< the bytes are held */
    CAP_PAGE_MISSING = 2  /**< only the page root is known */
} cap_page_state_t;

/** A Data cap with no pages. page_size must be a power of two in 32..65536
 * (else CAP_EINVAL). */
int cap_data_new(cap_t **out, const cap_alloc_t *a, uint32_t page_size);
/** The inline form: `n` bytes split into ceil(n / page_size) Loaded pages,
 * the last zero-padded. */
int cap_data_new_inline(cap_t **out, const cap_alloc_t *a, uint32_t page_size, const void *bytes,
                        size_t n);
uint32_t cap_data_page_size(const cap_t *c);
uint64_t cap_data_page_count(const cap_t *c);
/** Grow (new pages Empty) or shrink the page list. */
int cap_data_resize(cap_t *c, uint64_t page_count);
/** Page `index` becomes Loaded with a copy of `bytes`; n must equal the page
 * size, else CAP_EPAGESIZE with err->expected / err->got. */
int cap_data_set_page(cap_t *c, uint64_t index, const void *bytes, size_t n, cap_err_t *err);
int cap_data_set_page_empty(cap_t *c, uint64_t index);
int cap_data_set_page_missing(cap_t *c, uint64_t index, const cap_hash_t *root);
/** Write bytes at a byte offset within the existing pages (copy-on-write per
 * page; an Empty page becomes Loaded). A Missing page in the range is
 * CAP_EINVAL (its bytes are unknown). */
int cap_data_write(cap_t *c, uint64_t offset, const void *bytes, size_t n);
cap_page_state_t cap_data_page_state(const cap_t *c, uint64_t index);
/** Borrowed page bytes (page_size of them) for a Loaded page, else NULL. */
const uint8_t *cap_data_page_bytes(const cap_t *c, uint64_t index);
/** The page's root (cached once per page content). */
int cap_data_page_root(const cap_t *c, uint64_t index, cap_hash_t *out);

/* Instance ---------------------------------------------------------------------------- */

/** An instance with every field zero but root_cnode (not NONE, not a zero hash). */
int cap_instance_new(cap_t **out, const cap_alloc_t *a, const cap_target_t *root_cnode);
const cap_hash_t *cap_instance_image_hash_chain(const cap_t *c);
const cap_hash_t *cap_instance_image_hash(const cap_t *c);
/** Borrowed target (a Ref is not retained). */
cap_target_t cap_instance_root_cnode(const cap_t *c);
uint32_t cap_instance_mem_size(const cap_t *c);
uint64_t cap_instance_reg(const cap_t *c, unsigned i);
uint64_t cap_instance_pc(const cap_t *c);
uint64_t cap_instance_gas_remaining(const cap_t *c);
size_t cap_instance_overlay_count(const cap_t *c);
/** Borrowed view of overlay i. */
int cap_instance_overlay(const cap_t *c, size_t i, uint32_t *start, const uint8_t **bytes,
                         size_t *len);
int cap_instance_set_image_hash_chain(cap_t *c, const cap_hash_t *h);
int cap_instance_set_image_hash(cap_t *c, const cap_hash_t *h);
int cap_instance_set_root_cnode(cap_t *c, const cap_target_t *t);
int cap_instance_set_mem_size(cap_t *c, uint32_t v);
int cap_instance_set_reg(cap_t *c, unsigned i, uint64_t v);
int cap_instance_set_pc(cap_t *c, uint64_t v);
int cap_instance_set_gas_remaining(cap_t *c, uint64_t v);
/** Append an overlay (the bytes are copied). */
int cap_instance_add_overlay(cap_t *c, uint32_t start, const void *bytes, size_t len);
int cap_instance_clear_overlays(cap_t *c);

/* Image -------------------------------------------------------------------------------- */

typedef struct cap_endpoint {
    uint64_t entry_pc;
    uint64_t stack_top;
    uint32_t arg_cnode_slot;
    uint8_t arg_cnode_size;
    uint64_t initial_regs[CAP_NUM_REGS];
} cap_endpoint_t;

typedef struct cap_mapping {
    uint64_t start;
    uint64_t size;
    uint32_t source_path[CAP_MAX_SOURCE_DEPTH];
    uint8_t source_path_len;
} cap_mapping_t;

typedef struct cap_slot_entry {
    uint32_t slot;
    cap_hash_t cap_hash;
} cap_slot_entry_t;

/** Everything an Image holds. cap_image_new copies it; cap_image_view fills
 * it with pointers borrowed from the cap. */
typedef struct cap_image_desc {
    const uint8_t *code;
    size_t code_len;
    const uint8_t *bitmask;
    size_t bitmask_len;
    const uint32_t *jump_table;
    size_t jump_table_len;
    const cap_endpoint_t *endpoints;
    size_t endpoints_len;
    const cap_mapping_t *mappings;
    size_t mappings_len;
    const cap_slot_entry_t *pinned;
    size_t pinned_len;
    const cap_slot_entry_t *initial;
    size_t initial_len;
    bool has_yield_marker;
    uint32_t yield_marker_slot;
} cap_image_desc_t;

/** Build and validate an Image. A violation is CAP_EIMAGE with err->what
 * naming it (EndpointIndexOutOfRange, SourcePathTooDeep, ...). */
int cap_image_new(cap_t **out, const cap_alloc_t *a, const cap_image_desc_t *d, cap_err_t *err);
/** Validate a description without building (the rules of cap-schema.md). */
int cap_image_validate(const cap_image_desc_t *d, cap_err_t *err);
void cap_image_view(const cap_t *c, cap_image_desc_t *out);

/* Children: the caps a cap names -------------------------------------------------------- */

/** The field of a cap that names another cap (docs/graph.md). The one
 * definition: trim, the DOT writer, checkpoint and walks all use it. */
typedef enum cap_child_field {
    CAP_CHILD_SLOT = 0,       /**< a CNode slot; `index` is the slot */
    CAP_CHILD_IMAGE = 1,      /**< an Instance's image_hash (only when not zero) */
    CAP_CHILD_ROOT_CNODE = 2, /**< an Instance's root_cnode */
    CAP_CHILD_PINNED = 3,     /**< an Image's pinned entry; `index` is its slot */
    CAP_CHILD_INITIAL = 4     /**< an Image's initial entry; `index` is its slot */
} cap_child_field_t;

/** One child: the field that names it and the target there. The target is
 * a Hash, or a Ref (borrowed) in a CNode slot or root_cnode of a cap not
 * yet settled. */
typedef struct cap_child {
    cap_child_field_t field;
    uint32_t index; /**< the slot (CAP_CHILD_SLOT, _PINNED, _INITIAL); else 0 */
    cap_target_t target;
} cap_child_t;

/** Called once per child; return 0 to go on, anything else stops the
 * enumeration, which returns that value. */
typedef int (*cap_child_fn)(void *arg, const cap_child_t *child);

/** Call `fn` for every child of `c`: a CNode's occupied slots in slot
 * order; an Instance's image_hash (when not zero), then its root_cnode; an
 * Image's pinned entries, then its initial entries, each in slot order.
 * Data and Type caps have none. Returns CAP_OK, what `fn` returned to stop,
 * or CAP_EINVAL (NULL `c` or `fn`). */
int cap_for_each_child(const cap_t *c, cap_child_fn fn, void *arg);

/** The same children, in the same order, read from a cap's wire form
 * without decoding it (no allocation; every target a Hash). Only the parts
 * that hold children are read and checked (bounds, offsets, slot order,
 * no zero target): CAP_EDECODE (err->what, err->offset) when they are
 * malformed, before `fn` is called at all. This is not a validation of the
 * rest: cap_wire_decode is. CAP_EINVAL for NULL `fn` (or NULL `b` with n > 0). */
int cap_wire_for_each_child(const uint8_t *b, size_t n, cap_child_fn fn, void *arg,
                            cap_err_t *err);

/** Static name of a field: "slot", "image", "root_cnode", "pinned", "initial". */
const char *cap_child_field_name(cap_child_field_t f);

/* Wire codec ---------------------------------------------------------------------------- */

/** Size of the wire form. CAP_EUNSETTLED if the cap holds a Ref. */
int cap_wire_size(const cap_t *c, size_t *n);
/** Encode into buf (cap bytes); *written = size. CAP_EINVAL if too small. */
int cap_wire_encode(const cap_t *c, uint8_t *buf, size_t cap, size_t *written);
/** Encode into a new buffer from `a`; free it with a->deallocate(a->ctx, *buf, *n)
 * (an empty encoding cannot happen: there is always a selector byte). */
int cap_wire_encode_alloc(const cap_t *c, const cap_alloc_t *a, uint8_t **buf, size_t *n);
/** Decode strictly (every rule of cap-schema.md). CAP_EDECODE with err->what
 * (the rule) and err->offset (the byte) on bad input; CAP_ENOMEM. The cap is
 * new and writable. Never reads outside [b, b+n); allocates at most a small
 * multiple of n. */
int cap_wire_decode(const uint8_t *b, size_t n, const cap_alloc_t *a, cap_t **out, cap_err_t *err);

#ifdef __cplusplus
}
#endif

#endif
