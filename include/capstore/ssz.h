/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore — SSZ merkleization and serialization primitives.
 *
 * Terms mean what the Ethereum SimpleSerialize specification says. All
 * hashing goes through cap_sha256_nodes, a tree level at a time. Nothing
 * here allocates: the streaming merkleizer keeps O(log n) state in the
 * caller's struct. These are the hashing inner loops: pointer arguments
 * must not be NULL (undefined behaviour; not checked). */
#ifndef CAPSTORE_SSZ_H
#define CAPSTORE_SSZ_H

#include "capstore/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CAP_SSZ_MAX_DEPTH 64u

/** zero_hash(depth): root of a perfect tree of 2^depth zero chunks.
 * depth <= CAP_SSZ_MAX_DEPTH. Returns a pointer into a static table. */
const uint8_t *cap_ssz_zero_hash(unsigned depth);

/** Depth of the tree for a chunk limit: ceil(log2(limit)), 0 for limit <= 1. */
unsigned cap_ssz_depth_for_limit(uint64_t limit_chunks);

/** mix_in_length(root, len) = hash_pair(root, len as 32-byte LE). out may alias root. */
void cap_ssz_mix_in_length(uint8_t out[32], const uint8_t root[32], uint64_t length);
/** mix_in_selector(root, s) = hash_pair(root, s as 32-byte LE). out may alias root. */
void cap_ssz_mix_in_selector(uint8_t out[32], const uint8_t root[32], uint64_t selector);

/** Streaming merkleizer: push chunks left to right, then finish into the
 * root of the tree of the given depth (missing chunks are zero). Leaves are
 * hashed in blocks of CAP_SSZ_BLOCK_CHUNKS through the batch kernel, and
 * whole zero subtrees are never hashed leaf by leaf. State is O(depth). */
#define CAP_SSZ_BLOCK_CHUNKS 64u
typedef struct cap_merkle {
    unsigned depth;          /* tree depth (limit = 2^depth chunks) */
    uint64_t count;          /* chunks pushed so far */
    uint32_t buffered;       /* bytes in block[] not yet folded (push_bytes may leave a partial chunk) */
    uint64_t stack_mask;     /* bit k set: stack[k] holds a left subtree root of height k */
    uint8_t stack[CAP_SSZ_MAX_DEPTH + 1][32];
    uint8_t block[CAP_SSZ_BLOCK_CHUNKS * 32];
} cap_merkle_t;

/** Start a tree of depth `depth` (<= CAP_SSZ_MAX_DEPTH). */
void cap_merkle_init(cap_merkle_t *m, unsigned depth);
/** Push n chunks (32 bytes each, contiguous). Returns CAP_EINVAL (and pushes
 * nothing) if that would exceed 2^depth chunks. */
int cap_merkle_push(cap_merkle_t *m, const uint8_t *chunks, uint64_t n);
/** Push n bytes of packed basic data; the last partial chunk is zero-padded
 * at finish. Calls may split bytes anywhere. CAP_EINVAL past the limit. */
int cap_merkle_push_bytes(cap_merkle_t *m, const uint8_t *bytes, uint64_t n);
/** Finish: write the root of the depth-`depth` tree. The state is spent. */
void cap_merkle_finish(cap_merkle_t *m, uint8_t out[32]);

/** merkleize(chunks, limit): n contiguous chunks, limit in chunks (n <= limit,
 * else CAP_EINVAL; limit 0 is treated as 1). */
int cap_ssz_merkleize(uint8_t out[32], const uint8_t *chunks, uint64_t n, uint64_t limit_chunks);

/** merkleize of packed bytes (basic types serialized back to back). */
int cap_ssz_merkleize_bytes(uint8_t out[32], const uint8_t *bytes, uint64_t n, uint64_t limit_chunks);

/** Sparse merkleize: `n` leaves at strictly increasing `indices` (< 2^depth)
 * with chunk values `leaves` (32 bytes each); every other leaf is zero.
 * Cost is about depth hashes per leaf at most, never 2^depth. `scratch` must
 * hold n * 72 bytes (ask cap_ssz_sparse_scratch_size); returns CAP_EINVAL on
 * unsorted or out-of-range indices. */
size_t cap_ssz_sparse_scratch_size(size_t n);
int cap_ssz_merkleize_sparse(uint8_t out[32], const uint32_t *indices, const uint8_t *leaves,
                             size_t n, unsigned depth, void *scratch);

/* hash_tree_root of basic shapes -------------------------------------------------- */

/** uintN (N <= 64) and Bytes32: their chunk (value little-endian, zero-padded). */
void cap_ssz_chunk_u64(uint8_t out[32], uint64_t v);

/** hash_tree_root(List[uint8, limit_bytes]) of `n` bytes. */
int cap_ssz_root_list_u8(uint8_t out[32], const uint8_t *bytes, uint64_t n, uint64_t limit_bytes);
/** hash_tree_root(List[uint32, limit]) of `n` values. */
int cap_ssz_root_list_u32(uint8_t out[32], const uint32_t *v, uint64_t n, uint64_t limit);
/** hash_tree_root(Vector[uint64, n]) (n >= 1). */
void cap_ssz_root_vector_u64(uint8_t out[32], const uint64_t *v, size_t n);
/** hash_tree_root(List[Bytes32, limit]) / List of composite roots. */
int cap_ssz_root_list_roots(uint8_t out[32], const uint8_t *roots, uint64_t n, uint64_t limit);
/** hash_tree_root(ByteVector[n]) (n >= 1). */
void cap_ssz_root_bytevector(uint8_t out[32], const uint8_t *bytes, uint64_t n);

/* Serialization ---------------------------------------------------------------------- */

/** Little-endian stores and loads. */
void cap_ssz_put_u8(uint8_t *p, uint8_t v);
void cap_ssz_put_u32(uint8_t *p, uint32_t v);
void cap_ssz_put_u64(uint8_t *p, uint64_t v);
uint32_t cap_ssz_get_u32(const uint8_t *p);
uint64_t cap_ssz_get_u64(const uint8_t *p);

/** Bounded writer over a caller buffer. Writes past the end are not done and
 * set `overflow`; `pos` still advances so a dry run (buf NULL, cap 0) sizes
 * the output. */
typedef struct cap_ssz_writer {
    uint8_t *buf;
    size_t cap;
    size_t pos;
    bool overflow;
} cap_ssz_writer_t;

void cap_ssz_writer_init(cap_ssz_writer_t *w, uint8_t *buf, size_t cap);
void cap_ssz_write_bytes(cap_ssz_writer_t *w, const void *p, size_t n);
void cap_ssz_write_u8(cap_ssz_writer_t *w, uint8_t v);
void cap_ssz_write_u32(cap_ssz_writer_t *w, uint32_t v);
void cap_ssz_write_u64(cap_ssz_writer_t *w, uint64_t v);
/** Reserve a 4-byte offset slot; returns its position for cap_ssz_patch_offset. */
size_t cap_ssz_write_offset_slot(cap_ssz_writer_t *w);
/** Write into a reserved slot the distance from `base` to the current position. */
void cap_ssz_patch_offset(cap_ssz_writer_t *w, size_t slot, size_t base);

/** Strict reader over one SSZ object [base, base+len) of a larger input. It
 * never reads outside its range; every failure records the absolute byte
 * offset and a static rule name and is sticky. */
typedef struct cap_ssz_reader {
    const uint8_t *data;  /* start of the whole input (for absolute offsets) */
    size_t start;         /* absolute start of this object */
    size_t end;           /* absolute end (exclusive) */
    size_t pos;           /* absolute read position */
    cap_err_t *err;       /* where failures go (may be NULL) */
    bool failed;
} cap_ssz_reader_t;

void cap_ssz_reader_init(cap_ssz_reader_t *r, const uint8_t *data, size_t len, cap_err_t *err);
/** A sub-reader for [abs_start, abs_end) (must lie within r; else r fails). */
int cap_ssz_reader_sub(cap_ssz_reader_t *r, cap_ssz_reader_t *sub, size_t abs_start, size_t abs_end);
/** Record a failure (first one wins) at absolute offset `at`; returns CAP_EDECODE. */
int cap_ssz_reader_fail(cap_ssz_reader_t *r, size_t at, const char *rule);
size_t cap_ssz_reader_remaining(const cap_ssz_reader_t *r);
int cap_ssz_read_u8(cap_ssz_reader_t *r, uint8_t *v);
int cap_ssz_read_u32(cap_ssz_reader_t *r, uint32_t *v);
int cap_ssz_read_u64(cap_ssz_reader_t *r, uint64_t *v);
/** Borrow n bytes at the position and advance (no copy). */
int cap_ssz_read_bytes(cap_ssz_reader_t *r, const uint8_t **p, size_t n);
/** Fail with rule "trailing_bytes" unless the reader is exactly at its end. */
int cap_ssz_reader_expect_end(cap_ssz_reader_t *r);

/** Resolve the variable parts of a container: `n` offsets already read from
 * the fixed part (relative to the object start), whose fixed part is
 * `fixed_size` bytes. Checks: offsets[0] == fixed_size, non-decreasing,
 * <= object length. On success, parts[i] = [start, end) absolute ranges. */
int cap_ssz_resolve_offsets(cap_ssz_reader_t *r, const uint32_t *offsets, size_t n,
                            size_t fixed_size, size_t (*parts)[2]);

/** List of fixed-size elements: the object's length must be a multiple of
 * `elem_size` and the count <= `limit`. Returns the count through *count. */
int cap_ssz_list_fixed_count(cap_ssz_reader_t *r, size_t elem_size, uint64_t limit, size_t *count);

/** List of variable-size elements: read the offset table at the start of the
 * reader's range. *count = first_offset / 4 (0 when the range is empty);
 * checks first offset is a multiple of 4 and >= 4, offsets non-decreasing and
 * in range, count <= limit. Then cap_ssz_list_var_element gives element i's
 * absolute range. Does not allocate. */
int cap_ssz_list_var_count(cap_ssz_reader_t *r, uint64_t limit, size_t *count);
int cap_ssz_list_var_element(cap_ssz_reader_t *r, size_t count, size_t i, size_t *abs_start,
                             size_t *abs_end);

#ifdef __cplusplus
}
#endif

#endif
