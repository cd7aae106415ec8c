/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The hash set (hash_set.h). Cap hashes are SHA-256 outputs, so their first
 * eight bytes are already uniform; a per-set seed folded in keeps a chosen
 * set of hashes (an archive's, say) from lining up in one run of slots. */
#include <stdlib.h>
#include <string.h>

#include "hash_set.h"

#define MIN_LOG 10

void cap_hset_init(cap_hset_t *s)
{
    memset(s, 0, sizeof *s);
    s->seed = (uint64_t)(uintptr_t)s * 0x9E3779B97F4A7C15ull ^ 0xD6E8FEB86659FD93ull;
}

void cap_hset_free(cap_hset_t *s)
{
    free(s->keys);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

static size_t slot_of(const cap_hset_t *s, const cap_hash_t *h)
{
    uint64_t v;
    memcpy(&v, h->bytes, 8);
    v ^= s->seed;
    v *= 0xFF51AFD7ED558CCDull;
    v ^= v >> 33;
    return (size_t)(v >> (64 - s->log));
}

size_t cap_hset_find(const cap_hset_t *s, const cap_hash_t *h)
{
    if (!s->slots) return SIZE_MAX;
    size_t mask = ((size_t)1 << s->log) - 1;
    for (size_t i = slot_of(s, h);; i = (i + 1) & mask) {
        uint32_t v = s->slots[i];
        if (!v) return SIZE_MAX;
        if (memcmp(s->keys[v - 1].bytes, h->bytes, 32) == 0) return v - 1;
    }
}

/* Double the table (or make the first one) and place every key again. */
static int grow_table(cap_hset_t *s)
{
    unsigned log = s->slots ? s->log + 1 : MIN_LOG;
    if (log > 33) return -1;
    uint32_t *t = calloc((size_t)1 << log, sizeof *t);
    if (!t) return -1;
    free(s->slots);
    s->slots = t;
    s->log = log;
    size_t mask = ((size_t)1 << log) - 1;
    for (size_t k = 0; k < s->n; k++) {
        size_t i = slot_of(s, &s->keys[k]);
        while (t[i]) i = (i + 1) & mask;
        t[i] = (uint32_t)(k + 1);
    }
    return 0;
}

int cap_hset_add(cap_hset_t *s, const cap_hash_t *h, size_t *idx)
{
    /* At most half full: short probe runs. */
    if (!s->slots || (s->n + 1) * 2 > ((size_t)1 << s->log)) {
        if (grow_table(s) != 0) return -1;
    }
    size_t mask = ((size_t)1 << s->log) - 1, i = slot_of(s, h);
    for (;; i = (i + 1) & mask) {
        uint32_t v = s->slots[i];
        if (!v) break;
        if (memcmp(s->keys[v - 1].bytes, h->bytes, 32) == 0) {
            if (idx) *idx = v - 1;
            return 0;
        }
    }
    if (s->n >= UINT32_MAX - 1) return -1;
    if (s->n == s->room) {
        size_t room = s->room ? s->room * 2 : 1024;
        cap_hash_t *k = realloc(s->keys, room * sizeof *k);
        if (!k) return -1;
        s->keys = k;
        s->room = room;
    }
    s->keys[s->n] = *h;
    s->slots[i] = (uint32_t)(s->n + 1);
    if (idx) *idx = s->n;
    s->n++;
    return 1;
}
