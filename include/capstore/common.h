/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore — common types: versions, errors, hashes, allocator hooks.
 *
 * Everything in this header is freestanding: it needs only <stdint.h>,
 * <stddef.h> and <stdbool.h>, so the guest kernel can include it. */
#ifndef CAPSTORE_COMMON_H
#define CAPSTORE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CAPSTORE_VERSION_MAJOR 0
#define CAPSTORE_VERSION_MINOR 9
#define CAPSTORE_VERSION_PATCH 0
#define CAPSTORE_VERSION "0.9.0"

/** A 32-byte SSZ hash_tree_root (SHA-256). Wrapped in a struct so it can be
 * passed and assigned by value. */
typedef struct cap_hash {
    uint8_t bytes[32];
} cap_hash_t;

/** Error codes. Every fallible function returns CAP_OK (0) or one of these
 * negative values. What a caller should do about each is in docs/API.md. */
enum cap_error {
    CAP_OK = 0,
    CAP_ENOMEM = -1,            /**< an allocation failed; nothing changed */
    CAP_EINVAL = -2,            /**< bad argument: NULL, out of domain, a handle of another store */
    CAP_EBLOBMISSING = -3,      /**< seed BlobMissing: no blob under that hash */
    CAP_EINSTANCEMISSING = -4,  /**< seed InstanceMissing(id): the handle's entry is gone */
    CAP_EIMAGE = -5,            /**< seed ImageConvertFailed(reason) */
    CAP_EPAGESIZE = -6,         /**< seed PageSizeMismatch{expected, got} */
    CAP_ESLOTRANGE = -7,        /**< seed SlotOutOfRange */
    CAP_EBUSY = -8,             /**< the cap is shared or frozen: make_mut first */
    CAP_EUNSETTLED = -9,        /**< the cap still holds a Ref: settle first */
    CAP_EDECODE = -10,          /**< malformed wire bytes (detail: rule and offset) */
    CAP_EMISMATCH = -11,        /**< a claimed hash does not match the content */
    CAP_ECYCLE = -12,           /**< settle found a Ref back to an entry on its path */
    CAP_EIDSPACE = -13,         /**< the store's instance ids are exhausted */
    CAP_EBACKEND = -14,         /**< a persistence backend failed (I/O, full disk, ...) */
    CAP_ENOTFOUND = -15         /**< generic absence (e.g. a backend has no such key) */
};

/** Size of cap_err_t.detail, the terminating NUL included. */
#define CAP_ERR_DETAIL_SIZE 96

/** Detail of an error, for messages. Every function that takes a
 * `cap_err_t *err` argument (which may be NULL when the detail is not
 * wanted) fills it on every failure: `code` is the value it returned, and
 * the fields meaningful for that code are set; the others are 0 (empty for
 * `detail`). On success the struct's content is unspecified unless the
 * function says otherwise. */
typedef struct cap_err {
    int code;            /**< the same value the function returned */
    const char *what;    /**< static text: the rule broken or the reason (may be NULL) */
    uint64_t offset;     /**< CAP_EDECODE: byte offset of what was rejected */
    uint64_t id;         /**< CAP_EINSTANCEMISSING: the instance id */
    uint64_t expected;   /**< CAP_EPAGESIZE: the page size */
    uint64_t got;        /**< CAP_EPAGESIZE: the length given */
    bool has_index;      /**< a batch call: `index` names the item the error concerns */
    uint64_t index;      /**< a batch call: the index of that item in the caller's array */
    bool has_hash;       /**< `hash` names what the error concerns */
    cap_hash_t hash;     /**< a missing blob, a bad record, a mismatch: its hash */
    char detail[CAP_ERR_DETAIL_SIZE]; /**< text the library filled in (a node, a key,
                                           a page, a path); "" when none */
} cap_err_t;

/** Reset `e` to `code` and the static `what`, every other field cleared.
 * Returns `code`. `e` may be NULL (then only returns `code`). For backend
 * authors and wrappers; the library's own failures go through it too. */
int cap_err_set(cap_err_t *e, int code, const char *what);
/** Record the hash the error concerns (e->has_hash). NULL `e` or `h`: no-op. */
void cap_err_set_hash(cap_err_t *e, const cap_hash_t *h);
/** Append `text` to e->detail, truncated to fit (always NUL-terminated).
 * NULL `e` or `text`: no-op. */
void cap_err_add_detail(cap_err_t *e, const char *text);
/** Append the decimal form of `v` to e->detail, as cap_err_add_detail. */
void cap_err_add_detail_u64(cap_err_t *e, uint64_t v);

/** Static English text for an error code ("out of memory", ...). Never NULL. */
const char *cap_strerror(int code);

/** Format a full message for `e` into `buf` (always NUL-terminated when
 * `n > 0`): the code's text, its numbers, then ": what", ": detail" and
 * " (hash HEX)" where set. Returns the length the full message needs,
 * excluding the NUL, like snprintf. A NULL `e` formats as "no error detail";
 * a NULL `buf` is taken as `n == 0`. */
size_t cap_err_format(const cap_err_t *e, char *buf, size_t n);

/** Allocator hooks. Every object that allocates records the allocator it was
 * made with and frees through it, so the struct (and `ctx`) must outlive
 * every object made with it (normally it is static).
 *
 * `allocate` returns memory aligned for any object (like malloc) or NULL.
 * `reallocate` may return NULL, leaving `ptr` untouched. `deallocate` is
 * given the size the block was last allocated with. Sizes are never 0. */
typedef struct cap_alloc {
    void *(*allocate)(void *ctx, size_t size);
    void *(*reallocate)(void *ctx, void *ptr, size_t old_size, size_t new_size);
    void (*deallocate)(void *ctx, void *ptr, size_t size);
    void *ctx;
} cap_alloc_t;

#ifdef __cplusplus
}
#endif

#endif
