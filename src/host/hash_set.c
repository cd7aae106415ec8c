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

/* The mixed first 8 bytes: the slot from the top bits, the tag from the
 * low ones. */
static uint64_t mix(const cap_hset_t *s, const cap_hash_t *h)
{
    uint64_t v;
    memcpy(&v, h->bytes, 8);
    v ^= s->seed;
    v *= 0xFF51AFD7ED558CCDull;
    v ^= v >> 33;
    return v;
}

#define TAG(m) ((m) & 0xffffffffull)
#define ENTRY(m, idx) (TAG(m) << 32 | (uint64_t)((idx) + 1))
#define IDX(slot) ((size_t)((slot) & 0xffffffffull) - 1)

size_t cap_hset_find(const cap_hset_t *s, const cap_hash_t *h)
{
    if (!s->slots) return SIZE_MAX;
    uint64_t m = mix(s, h);
    size_t mask = ((size_t)1 << s->log) - 1;
    for (size_t i = (size_t)(m >> (64 - s->log));; i = (i + 1) & mask) {
        uint64_t v = s->slots[i];
        if (!v) return SIZE_MAX;
        if (v >> 32 == TAG(m) && memcmp(s->keys[IDX(v)].bytes, h->bytes, 32) == 0) return IDX(v);
    }
}

/* A table of 2^log slots (or double it) and every key placed again. */
static int table_of(cap_hset_t *s, unsigned log)
{
    if (log > 33) return -1;
    uint64_t *t = calloc((size_t)1 << log, sizeof *t);
    if (!t) return -1;
    free(s->slots);
    s->slots = t;
    s->log = log;
    size_t mask = ((size_t)1 << log) - 1;
    for (size_t k = 0; k < s->n; k++) {
        uint64_t m = mix(s, &s->keys[k]);
        size_t i = (size_t)(m >> (64 - log));
        while (t[i]) i = (i + 1) & mask;
        t[i] = ENTRY(m, k);
    }
    return 0;
}

static int grow_table(cap_hset_t *s) { return table_of(s, s->slots ? s->log + 1 : MIN_LOG); }

int cap_hset_reserve(cap_hset_t *s, size_t n)
{
    unsigned log = MIN_LOG;
    while (log < 33 && ((size_t)1 << log) < 2 * n) log++;
    if (n > s->room) {
        cap_hash_t *k = realloc(s->keys, n * sizeof *k);
        if (!k) return -1;
        s->keys = k;
        s->room = n;
    }
    return s->slots && log <= s->log ? 0 : table_of(s, log);
}

int cap_hset_add(cap_hset_t *s, const cap_hash_t *h, size_t *idx)
{
    /* At most half full: short probe runs. */
    if (!s->slots || (s->n + 1) * 2 > ((size_t)1 << s->log)) {
        if (grow_table(s) != 0) return -1;
    }
    uint64_t m = mix(s, h);
    size_t mask = ((size_t)1 << s->log) - 1, i = (size_t)(m >> (64 - s->log));
    for (;; i = (i + 1) & mask) {
        uint64_t v = s->slots[i];
        if (!v) break;
        if (v >> 32 == TAG(m) && memcmp(s->keys[IDX(v)].bytes, h->bytes, 32) == 0) {
            if (idx) *idx = IDX(v);
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
    s->slots[i] = ENTRY(m, s->n);
    if (idx) *idx = s->n;
    s->n++;
    return 1;
}
