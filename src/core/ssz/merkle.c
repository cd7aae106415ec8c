/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Streaming merkleizer: chunks go into a 64-chunk block that is reduced a
 * level at a time through the batch SHA-256 kernel; each block's root joins
 * a stack of left subtree roots (one per height, like a binary counter).
 * Finishing folds the partial block, then climbs to the tree's depth
 * pairing with zero_hash, so empty subtrees cost one hash per level. */
#include "base.h"
#include "capstore/sha256.h"
#include "capstore/ssz.h"

#define BLOCK_BYTES (CAP_SSZ_BLOCK_CHUNKS * 32u)
#define BLOCK_HEIGHT 6u

_Static_assert(CAP_SSZ_BLOCK_CHUNKS == (1u << BLOCK_HEIGHT), "block height must match");

unsigned cap_ssz_depth_for_limit(uint64_t limit_chunks)
{
    /* A loop rather than __builtin_clzll: some guest targets would turn the
     * builtin into a libgcc call, which the freestanding core cannot make. */
    unsigned d = 0;
    if (limit_chunks <= 1) return 0;
    for (uint64_t v = limit_chunks - 1; v != 0; v >>= 1) d++;
    return d;
}

void cap_merkle_init(cap_merkle_t *m, unsigned depth)
{
    m->depth = depth > CAP_SSZ_MAX_DEPTH ? CAP_SSZ_MAX_DEPTH : depth;
    m->count = 0;
    m->buffered = 0;
    m->stack_mask = 0;
}

/* Whether `more` further chunks still fit under the limit 2^depth. At depth
 * 64 the limit is not representable; 2^64 - 1 chunks is the cap there. */
static bool merkle_fits(const cap_merkle_t *m, uint64_t more)
{
    if (m->depth >= 64) return more <= UINT64_MAX - m->count;
    return more <= (((uint64_t)1 << m->depth) - m->count);
}

/* Add a finished subtree root of height h: equal-height neighbours combine
 * like carries in a binary counter. */
static void merkle_merge(cap_merkle_t *m, const uint8_t root[32], unsigned h)
{
    uint8_t node[32];
    cap_memcpy(node, root, 32);
    while (h < 64 && (m->stack_mask >> h) & 1u) {
        cap_sha256_pair(node, m->stack[h], node);
        m->stack_mask &= ~((uint64_t)1 << h);
        h++;
    }
    cap_memcpy(m->stack[h], node, 32);
    if (h < 64) m->stack_mask |= (uint64_t)1 << h;
}

/* Reduce the 32 level-1 nodes in block[] to the block root, in place. */
static void merkle_reduce_upper(cap_merkle_t *m)
{
    for (size_t k = CAP_SSZ_BLOCK_CHUNKS / 4; k >= 1; k /= 2) cap_sha256_nodes(m->block, m->block, k);
    merkle_merge(m, m->block, BLOCK_HEIGHT);
}

/* Feed packed bytes (the limit was checked by the caller). Whole blocks
 * arriving while the buffer is empty are hashed straight from the caller's
 * memory: level 0 lands in block[], so the leaves are never copied. */
static void merkle_absorb(cap_merkle_t *m, const uint8_t *src, uint64_t nbytes)
{
    while (nbytes > 0) {
        if (m->buffered == 0 && nbytes >= BLOCK_BYTES) {
            cap_sha256_nodes(m->block, src, CAP_SSZ_BLOCK_CHUNKS / 2);
            merkle_reduce_upper(m);
            src += BLOCK_BYTES;
            nbytes -= BLOCK_BYTES;
            m->count += CAP_SSZ_BLOCK_CHUNKS;
            continue;
        }
        size_t room = BLOCK_BYTES - m->buffered;
        size_t take = nbytes < room ? (size_t)nbytes : room;
        uint32_t full_before = m->buffered / 32u;
        cap_memcpy(m->block + m->buffered, src, take);
        m->buffered += (uint32_t)take;
        m->count += m->buffered / 32u - full_before;
        src += take;
        nbytes -= take;
        if (m->buffered == BLOCK_BYTES) {
            cap_sha256_nodes(m->block, m->block, CAP_SSZ_BLOCK_CHUNKS / 2);
            merkle_reduce_upper(m);
            m->buffered = 0;
        }
    }
}

int cap_merkle_push(cap_merkle_t *m, const uint8_t *chunks, uint64_t n)
{
    if (m == NULL) return CAP_EINVAL;
    if (n == 0) return CAP_OK;
    if (chunks == NULL || n == UINT64_MAX) return CAP_EINVAL;
    /* After a push_bytes that left a partial chunk, chunks are packed after
     * it, so they occupy one chunk more. */
    uint64_t more = n + (m->buffered % 32u != 0);
    if (!merkle_fits(m, more)) return CAP_EINVAL;
    while (n > 0) {
        uint64_t slice = n < UINT64_MAX / 32 ? n : UINT64_MAX / 32; /* n * 32 must not wrap */
        merkle_absorb(m, chunks, slice * 32);
        chunks += slice * 32;
        n -= slice;
    }
    return CAP_OK;
}

int cap_merkle_push_bytes(cap_merkle_t *m, const uint8_t *bytes, uint64_t n)
{
    if (m == NULL) return CAP_EINVAL;
    if (n == 0) return CAP_OK;
    if (bytes == NULL) return CAP_EINVAL;
    /* Chunks in use afterwards beyond count: ceil((partial + n) / 32), split
     * so the sum cannot wrap. */
    uint64_t partial = m->buffered % 32u;
    uint64_t more = n / 32 + (partial + n % 32 + 31) / 32;
    if (!merkle_fits(m, more)) return CAP_EINVAL;
    merkle_absorb(m, bytes, n);
    return CAP_OK;
}

void cap_merkle_finish(cap_merkle_t *m, uint8_t out[32])
{
    unsigned depth = m->depth;
    unsigned top = depth < BLOCK_HEIGHT ? depth : BLOCK_HEIGHT;
    size_t bytes = m->buffered;
    size_t nodes = (bytes + 31) / 32;
    uint8_t *blk = m->block;
    uint8_t node[32];
    bool have = nodes > 0; /* false: everything right of the stack is zero */

    if (bytes % 32 != 0) cap_memset(blk + bytes, 0, 32 - bytes % 32);
    /* Fold the partial block up to its subtree height (or the whole tree,
     * when it is shallower than a block); an odd level gets a zero sibling. */
    for (unsigned level = 0; level < top && nodes > 0; level++) {
        if (nodes & 1u) {
            cap_memcpy(blk + nodes * 32, cap_ssz_zero_hash(level), 32);
            nodes++;
        }
        nodes /= 2;
        cap_sha256_nodes(blk, blk, nodes);
    }
    if (have) cap_memcpy(node, blk, 32);
    /* Climb: a stacked left subtree pairs with what is right of it; a lone
     * right-frontier node pairs with an empty subtree. */
    for (unsigned h = top; h < depth; h++) {
        if ((m->stack_mask >> h) & 1u) {
            if (!have) cap_memcpy(node, cap_ssz_zero_hash(h), 32);
            cap_sha256_pair(node, m->stack[h], node);
            have = true;
        } else if (have) {
            cap_sha256_pair(node, node, cap_ssz_zero_hash(h));
        }
    }
    if (!have) {
        /* Either nothing was pushed or the tree is exactly full. */
        if (depth < 64 && ((m->stack_mask >> depth) & 1u))
            cap_memcpy(node, m->stack[depth], 32);
        else
            cap_memcpy(node, cap_ssz_zero_hash(depth), 32);
    }
    cap_memcpy(out, node, 32);
}

int cap_ssz_merkleize(uint8_t out[32], const uint8_t *chunks, uint64_t n, uint64_t limit_chunks)
{
    cap_merkle_t m;
    if (out == NULL || (n > 0 && chunks == NULL)) return CAP_EINVAL;
    if (limit_chunks == 0) limit_chunks = 1;
    if (n > limit_chunks) return CAP_EINVAL;
    cap_merkle_init(&m, cap_ssz_depth_for_limit(limit_chunks));
    int rc = cap_merkle_push(&m, chunks, n);
    if (rc != CAP_OK) return rc;
    cap_merkle_finish(&m, out);
    return CAP_OK;
}

int cap_ssz_merkleize_bytes(uint8_t out[32], const uint8_t *bytes, uint64_t n, uint64_t limit_chunks)
{
    cap_merkle_t m;
    if (out == NULL || (n > 0 && bytes == NULL)) return CAP_EINVAL;
    if (limit_chunks == 0) limit_chunks = 1;
    if (n / 32 + (n % 32 != 0) > limit_chunks) return CAP_EINVAL;
    cap_merkle_init(&m, cap_ssz_depth_for_limit(limit_chunks));
    int rc = cap_merkle_push_bytes(&m, bytes, n);
    if (rc != CAP_OK) return rc;
    cap_merkle_finish(&m, out);
    return CAP_OK;
}
