/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Streaming SHA-256 (sha256.h: cap_sha256_init / update / final): whole
 * blocks go straight from the caller's bytes to the compression function,
 * the rest waits in the context. The compression follows the selected
 * node kernel's family, so CAPSTORE_SHA256=portable reaches it too. */
#include "base.h"
#include "sha256/sha256_internal.h"

typedef void (*blocks_fn)(uint32_t s[8], const uint8_t *in, size_t n);

static blocks_fn blocks(void)
{
#if CAP_SHA256_HAVE_SHANI
    if (cap_sha256_selected() != CAP_SHA256_PORTABLE) return cap_sha256_blocks_shani;
#endif
    return cap_sha256_blocks_portable;
}

void cap_sha256_init(cap_sha256_ctx_t *c)
{
    for (int i = 0; i < 8; i++) c->state[i] = cap_sha256_iv[i];
    c->length = 0;
    c->used = 0;
}

void cap_sha256_update(cap_sha256_ctx_t *c, const void *bytes, size_t n)
{
    const uint8_t *p = bytes;
    if (n == 0) return;
    blocks_fn f = blocks();
    c->length += n;
    if (c->used) {
        size_t take = 64 - c->used < n ? 64 - c->used : n;
        cap_memcpy(c->block + c->used, p, take);
        c->used += (uint32_t)take;
        p += take;
        n -= take;
        if (c->used < 64) return;
        f(c->state, c->block, 1);
        c->used = 0;
    }
    if (n >= 64) {
        f(c->state, p, n / 64);
        p += n & ~(size_t)63;
        n &= 63;
    }
    if (n) {
        cap_memcpy(c->block, p, n);
        c->used = (uint32_t)n;
    }
}

void cap_sha256_final(cap_sha256_ctx_t *c, uint8_t out[32])
{
    blocks_fn f = blocks();
    uint64_t bits = c->length * 8;
    c->block[c->used++] = 0x80;
    if (c->used > 56) {
        cap_memset(c->block + c->used, 0, 64 - c->used);
        f(c->state, c->block, 1);
        c->used = 0;
    }
    cap_memset(c->block + c->used, 0, 56 - c->used);
    cap_store_be32(c->block + 56, (uint32_t)(bits >> 32));
    cap_store_be32(c->block + 60, (uint32_t)bits);
    f(c->state, c->block, 1);
    for (int i = 0; i < 8; i++) cap_store_be32(out + 4 * i, c->state[i]);
    c->used = 0;
}

void cap_sha256(uint8_t out[32], const void *bytes, size_t n)
{
    cap_sha256_ctx_t c;
    cap_sha256_init(&c);
    cap_sha256_update(&c, bytes, n);
    cap_sha256_final(&c, out);
}
