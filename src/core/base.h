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

/* Byte order. The wire format and SSZ are little-endian, SHA-256 words
 * big-endian. A load in the target's own order is one memcpy (one
 * instruction); the other order is assembled from bytes by shifts, which
 * gcc and clang turn into a byte-reversing load where the target has one
 * and which never need a runtime helper (__builtin_bswap32 is a libgcc call
 * on a RISC-V without Zbb). Both compilers define __BYTE_ORDER__. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define CAP_NATIVE_LE 1
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define CAP_NATIVE_LE 0
#else
#error "capstore: the target's byte order is unknown (__BYTE_ORDER__)"
#endif

static inline uint32_t cap_load_le32(const uint8_t *p)
{
#if CAP_NATIVE_LE
    uint32_t v;
    cap_memcpy(&v, p, 4);
    return v;
#else
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
#endif
}

static inline uint64_t cap_load_le64(const uint8_t *p)
{
#if CAP_NATIVE_LE
    uint64_t v;
    cap_memcpy(&v, p, 8);
    return v;
#else
    return (uint64_t)cap_load_le32(p) | (uint64_t)cap_load_le32(p + 4) << 32;
#endif
}

static inline void cap_store_le32(uint8_t *p, uint32_t v)
{
#if CAP_NATIVE_LE
    cap_memcpy(p, &v, 4);
#else
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
#endif
}

static inline void cap_store_le64(uint8_t *p, uint64_t v)
{
#if CAP_NATIVE_LE
    cap_memcpy(p, &v, 8);
#else
    cap_store_le32(p, (uint32_t)v);
    cap_store_le32(p + 4, (uint32_t)(v >> 32));
#endif
}

static inline uint32_t cap_load_be32(const uint8_t *p)
{
#if CAP_NATIVE_LE
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
#else
    uint32_t v;
    cap_memcpy(&v, p, 4);
    return v;
#endif
}

static inline void cap_store_be32(uint8_t *p, uint32_t v)
{
#if CAP_NATIVE_LE
    /* Swapped in a register, then stored whole: gcc vectorises four byte
     * stores badly. */
    v = (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
#endif
    cap_memcpy(p, &v, 4);
}

/* Index of the lowest set bit of v != 0, by a de Bruijn multiply: no
 * runtime helper on any target (tested apart, since few targets use it). */
static inline unsigned cap_ctz64_portable(uint64_t v)
{
    static const uint8_t pos[64] = {
        0,  1,  2,  53, 3,  7,  54, 27, 4,  38, 41, 8,  34, 55, 48, 28, 62, 5,  39, 46, 44, 42,
        22, 9,  24, 35, 59, 56, 49, 18, 29, 11, 63, 52, 6,  26, 37, 40, 33, 47, 61, 45, 43, 21,
        23, 58, 17, 10, 51, 25, 36, 32, 60, 20, 57, 16, 50, 31, 19, 15, 30, 14, 13, 12};
    return pos[((v & (0 - v)) * 0x022fdd63cc95386dull) >> 58];
}

/* __builtin_ctzll is one instruction on the targets listed; elsewhere gcc
 * may call libgcc's __ctzdi2, which a guest does not have. */
static inline unsigned cap_ctz64(uint64_t v)
{
#if defined(__x86_64__) || defined(__aarch64__) || defined(__s390x__) || defined(__wasm__) || \
    defined(__riscv_zbb)
    return (unsigned)__builtin_ctzll(v);
#else
    return cap_ctz64_portable(v);
#endif
}

#endif
