/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Core-internal basics: memory primitives without libc headers, and small
 * helpers every core module uses. The core is freestanding: it may call only
 * memcpy, memmove, memset and memcmp, which the compiler emits itself. */
#ifndef CAPSTORE_CORE_BASE_H
#define CAPSTORE_CORE_BASE_H

#include <stddef.h>
#include <stdint.h>

#define cap_memcpy __builtin_memcpy
#define cap_memmove __builtin_memmove
#define cap_memset __builtin_memset
#define cap_memcmp __builtin_memcmp

/* Debug builds stop at a broken contract that the API documents as
 * undefined (a NULL where none may be, a reference released once too
 * often): a trap, since the freestanding core has no assert(). Release
 * builds (NDEBUG) compile the check away. */
#ifdef NDEBUG
#define CAP_DEBUG_CHECK(cond) ((void)0)
#else
#define CAP_DEBUG_CHECK(cond) ((cond) ? (void)0 : __builtin_trap())
#endif

#define CAP_LIKELY(x) __builtin_expect(!!(x), 1)
#define CAP_UNLIKELY(x) __builtin_expect(!!(x), 0)

static inline uint32_t cap_load_le32(const uint8_t *p)
{
    uint32_t v;
    cap_memcpy(&v, p, 4);
    return v; /* x86 and the guest are little-endian */
}

static inline uint64_t cap_load_le64(const uint8_t *p)
{
    uint64_t v;
    cap_memcpy(&v, p, 8);
    return v;
}

static inline void cap_store_le32(uint8_t *p, uint32_t v) { cap_memcpy(p, &v, 4); }
static inline void cap_store_le64(uint8_t *p, uint64_t v) { cap_memcpy(p, &v, 8); }

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "capstore assumes a little-endian target"
#endif

#endif
