/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* hash_tree_root of the basic SSZ shapes the cap schema uses, and the
 * length/selector mix-ins. */
#include "base.h"
#include "capstore/sha256.h"
#include "capstore/ssz.h"

static void ssz_mix_in(uint8_t out[32], const uint8_t root[32], uint64_t v)
{
    /* Build the whole node first so out may alias root. */
    uint8_t node[64];
    cap_memcpy(node, root, 32);
    cap_memset(node + 32, 0, 32);
    cap_store_le64(node + 32, v);
    cap_sha256_node(out, node);
}

void cap_ssz_mix_in_length(uint8_t out[32], const uint8_t root[32], uint64_t length)
{
    ssz_mix_in(out, root, length);
}

void cap_ssz_mix_in_selector(uint8_t out[32], const uint8_t root[32], uint64_t selector)
{
    ssz_mix_in(out, root, selector);
}

void cap_ssz_chunk_u64(uint8_t out[32], uint64_t v)
{
    cap_memset(out, 0, 32);
    cap_store_le64(out, v);
}

/* ceil(n * elem_size / 32) without forming n * elem_size (elem_size <= 32
 * and divides 32, so it is ceil(n / (32 / elem_size))). */
static uint64_t ssz_packed_chunks(uint64_t n, unsigned elem_size)
{
    uint64_t per = 32u / elem_size;
    return n / per + (n % per != 0);
}

int cap_ssz_root_list_u8(uint8_t out[32], const uint8_t *bytes, uint64_t n, uint64_t limit_bytes)
{
    if (out == NULL || n > limit_bytes) return CAP_EINVAL;
    int rc = cap_ssz_merkleize_bytes(out, bytes, n, ssz_packed_chunks(limit_bytes, 1));
    if (rc != CAP_OK) return rc;
    cap_ssz_mix_in_length(out, out, n);
    return CAP_OK;
}

/* merkleize of n values of `size` bytes (4 or 8), packed little-endian.
 * On a little-endian target the array is its own serialization and is
 * hashed in place; elsewhere the values are serialized a few chunks at a
 * time into the streaming merkleizer. (Both arms are compiled everywhere.) */
static int ssz_merkleize_packed(uint8_t out[32], const void *v, uint64_t n, unsigned size,
                                uint64_t limit_chunks)
{
    if (CAP_NATIVE_LE) return cap_ssz_merkleize_bytes(out, (const uint8_t *)v, n * size, limit_chunks);
    if (n > 0 && v == NULL) return CAP_EINVAL;
    cap_merkle_t m;
    uint8_t buf[8 * 32];
    cap_merkle_init(&m, cap_ssz_depth_for_limit(limit_chunks ? limit_chunks : 1));
    for (uint64_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < sizeof buf / size && i < n; k++, i++) {
            if (size == 4)
                cap_store_le32(buf + 4 * k, ((const uint32_t *)v)[i]);
            else
                cap_store_le64(buf + 8 * k, ((const uint64_t *)v)[i]);
        }
        int rc = cap_merkle_push_bytes(&m, buf, k * size);
        if (rc != CAP_OK) return rc;
    }
    cap_merkle_finish(&m, out);
    return CAP_OK;
}

int cap_ssz_root_list_u32(uint8_t out[32], const uint32_t *v, uint64_t n, uint64_t limit)
{
    if (out == NULL || n > limit || n > UINT64_MAX / 4) return CAP_EINVAL;
    int rc = ssz_merkleize_packed(out, v, n, 4, ssz_packed_chunks(limit, 4));
    if (rc != CAP_OK) return rc;
    cap_ssz_mix_in_length(out, out, n);
    return CAP_OK;
}

void cap_ssz_root_vector_u64(uint8_t out[32], const uint64_t *v, size_t n)
{
    /* n * 8 cannot wrap: the n values are in memory. */
    if (out == NULL) return;
    if (ssz_merkleize_packed(out, v, n, 8, ssz_packed_chunks(n, 8)) != CAP_OK)
        cap_memcpy(out, cap_ssz_zero_hash(0), 32);
}

int cap_ssz_root_list_roots(uint8_t out[32], const uint8_t *roots, uint64_t n, uint64_t limit)
{
    if (out == NULL || n > limit) return CAP_EINVAL;
    int rc = cap_ssz_merkleize(out, roots, n, limit);
    if (rc != CAP_OK) return rc;
    cap_ssz_mix_in_length(out, out, n);
    return CAP_OK;
}

void cap_ssz_root_bytevector(uint8_t out[32], const uint8_t *bytes, uint64_t n)
{
    if (out == NULL) return;
    if (cap_ssz_merkleize_bytes(out, bytes, n, ssz_packed_chunks(n, 1)) != CAP_OK)
        cap_memcpy(out, cap_ssz_zero_hash(0), 32);
}
