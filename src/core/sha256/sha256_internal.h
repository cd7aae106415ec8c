/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Internals of the SHA-256 node kernel: shared constants and the kernels the
 * dispatcher (sha256_dispatch.c) chooses between. */
#ifndef CAPSTORE_CORE_SHA256_INTERNAL_H
#define CAPSTORE_CORE_SHA256_INTERNAL_H

#include "capstore/sha256.h"

/* SHA-NI is built on x86 unless the build forces the portable kernel. */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(CAP_SHA256_FORCE_PORTABLE)
#define CAP_SHA256_HAVE_SHANI 1
#else
#define CAP_SHA256_HAVE_SHANI 0
#endif

/* Round constants K[t] (FIPS 180-4 section 4.2.2). 16-aligned so the SIMD
 * kernel can load four at a time. */
extern _Alignas(16) const uint32_t cap_sha256_k[64];

/* Initial hash value H(0) (FIPS 180-4 section 5.3.3), in order A..H. */
extern const uint32_t cap_sha256_iv[8];

/* The second block of a 64-byte message is always the same padding (0x80,
 * zeros, bit length 512), so its schedule is a constant: W[t] + K[t]. */
extern _Alignas(16) const uint32_t cap_sha256_pad_wk[64];

/* The kernels: out[32*i..] = SHA256(in[64*i..]) for i < n, with out == in
 * allowed (each node's input is read before its digest is written). Hidden:
 * the dispatcher takes their addresses, which would otherwise go through the
 * GOT in position-independent builds. */
__attribute__((visibility("hidden"))) void cap_sha256_nodes_portable(uint8_t *out, const uint8_t *in, size_t n);
#if CAP_SHA256_HAVE_SHANI
__attribute__((visibility("hidden"))) void cap_sha256_nodes_shani(uint8_t *out, const uint8_t *in, size_t n);
__attribute__((visibility("hidden"))) void cap_sha256_nodes_shani_avx(uint8_t *out, const uint8_t *in, size_t n);
#endif

/* Block compression for the streaming hash (sha256_stream.c): `n`
 * consecutive 64-byte blocks of a message into the state s (A..H). */
__attribute__((visibility("hidden"))) void cap_sha256_blocks_portable(uint32_t s[8], const uint8_t *in, size_t n);
#if CAP_SHA256_HAVE_SHANI
__attribute__((visibility("hidden"))) void cap_sha256_blocks_shani(uint32_t s[8], const uint8_t *in, size_t n);
#endif

#endif
