/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Sparse merkleization: a tree of 2^depth leaves of which only n are
 * non-zero (CNode slot lists). Each level is a sorted list of (index, node);
 * siblings that are both present pair up, a lone node pairs with the zero
 * subtree of its level. Every level's messages are hashed with one batch
 * call, which is what makes cnode hashing fast. */
#include "base.h"
#include "capstore/sha256.h"
#include "capstore/ssz.h"

/* Scratch layout for n leaves: n 64-byte messages (hashed in place, so the
 * level's nodes end up packed at its front), n 32-bit parent indices, n
 * message kinds. 69 bytes per leaf; 72 are asked for, leaving room. */
#define SPARSE_BYTES_PER_LEAF 72u

enum { SPARSE_PAIR = 0, SPARSE_LEFT = 1, SPARSE_RIGHT = 2 };

size_t cap_ssz_sparse_scratch_size(size_t n)
{
    if (n > SIZE_MAX / SPARSE_BYTES_PER_LEAF) return SIZE_MAX; /* no allocation can satisfy it */
    return n * SPARSE_BYTES_PER_LEAF;
}

int cap_ssz_merkleize_sparse(uint8_t out[32], const uint32_t *indices, const uint8_t *leaves,
                             size_t n, unsigned depth, void *scratch)
{
    if (out == NULL || depth > CAP_SSZ_MAX_DEPTH) return CAP_EINVAL;
    if (n > 0 && (indices == NULL || leaves == NULL || scratch == NULL)) return CAP_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (depth < 32 && (indices[i] >> depth) != 0) return CAP_EINVAL;
        if (i > 0 && indices[i] <= indices[i - 1]) return CAP_EINVAL;
    }
    if (n == 0) {
        cap_memcpy(out, cap_ssz_zero_hash(depth), 32);
        return CAP_OK;
    }

    uint8_t *msg = scratch;
    uint8_t *idx = msg + n * 64; /* unaligned-safe: accessed with memcpy */
    uint8_t *kind = idx + n * 4;
    const uint8_t *src = leaves; /* this level's nodes, 32 bytes each */
    size_t m = n;

    for (unsigned level = 0; level < depth; level++) {
        /* Forward: decide the pairing and the parents' indices. The parent
         * list is written over the child list (k <= i, so nothing unread is
         * overwritten); level 0 reads the caller's indices. */
        size_t k = 0;
        for (size_t i = 0; i < m; k++) {
            uint32_t x, next = 0;
            if (level == 0) {
                x = indices[i];
                if (i + 1 < m) next = indices[i + 1];
            } else {
                x = cap_load_le32(idx + i * 4);
                if (i + 1 < m) next = cap_load_le32(idx + (i + 1) * 4);
            }
            if ((x & 1u) == 0 && i + 1 < m && next == x + 1) {
                kind[k] = SPARSE_PAIR;
                i += 2;
            } else {
                kind[k] = (x & 1u) ? SPARSE_RIGHT : SPARSE_LEFT;
                i += 1;
            }
            cap_store_le32(idx + k * 4, x >> 1);
        }
        /* Backward: build the 64-byte messages. Going from the last message
         * down, message j (written at 64j) only overwrites nodes >= 2j+2,
         * and every node still to be read by messages < j+1 is below that,
         * so the level is gathered within the one buffer. */
        size_t s = m;
        const uint8_t *zero = cap_ssz_zero_hash(level);
        for (size_t j = k; j-- > 0;) {
            uint8_t pair[64];
            if (kind[j] == SPARSE_PAIR) {
                s -= 2;
                cap_memcpy(pair, src + s * 32, 64);
            } else if (kind[j] == SPARSE_LEFT) {
                s -= 1;
                cap_memcpy(pair, src + s * 32, 32);
                cap_memcpy(pair + 32, zero, 32);
            } else {
                s -= 1;
                cap_memcpy(pair, zero, 32);
                cap_memcpy(pair + 32, src + s * 32, 32);
            }
            cap_memcpy(msg + j * 64, pair, 64);
        }
        cap_sha256_nodes(msg, msg, k);
        src = msg;
        m = k;
    }
    /* depth 0: the single leaf is the root. */
    cap_memcpy(out, src, 32);
    return CAP_OK;
}
