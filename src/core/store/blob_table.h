/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The blob table's probe primitives (src/core/store only): where a key's
 * probe starts, its tag, tag words tested four at a time, the miss filter,
 * and a slot's fields. Shared by the table itself (blobs.c) and the batched
 * lookups (batch_get.c), which run the same probe in stages. */
#ifndef CAPSTORE_BLOB_TABLE_H
#define CAPSTORE_BLOB_TABLE_H

#include "store/store_internal.h"

static inline size_t slot_index(uint64_t mix, unsigned log)
{
    return (size_t)((mix << STORE_SHARD_BITS) >> (64u - log));
}

/* A tag is the full bit and 15 bits of the mix (the low ones: the slot
 * index takes the high ones), so a tag matches another key's by chance
 * once in 32768. */
static inline uint16_t slot_tag(uint64_t mix)
{
    return (uint16_t)(0x8000u | (mix & 0x7fffu));
}

static inline uint16_t tag_at(const blob_table_t *t, size_t i)
{
    return store_tag_at(t, i);
}

/* Tags are written under the shard lock only, so read-modify-write of the
 * word is safe; readers load whole words. */
static inline void set_tag(blob_table_t *t, size_t i, uint16_t v)
{
    _Atomic uint64_t *w = &t->tags[i >> STORE_TAG_WORD_LOG];
    unsigned sh = (unsigned)(i & (STORE_TAGS_PER_WORD - 1u)) * 16u;
    uint64_t x = atomic_load_explicit(w, memory_order_relaxed);
    x = (x & ~((uint64_t)0xffff << sh)) | ((uint64_t)v << sh);
    atomic_store_explicit(w, x, memory_order_relaxed);
}

/* The miss filter: a blocked Bloom filter after the tags in the same block,
 * one 64-bit word per 16 slots (four bits a slot); a key sets two bits of
 * one word. Most misses stop at it: the filter is half the size of the
 * tags, so more of it stays in cache. Bits are set under the shard lock
 * before the key's tag; deletions leave them (stale bits cost only a tag
 * probe) until the table is rebuilt or grown (blobs.c). Mix bits: the word
 * from bits 7 up (above the tag's), the bits from 44-55 (apart from the
 * word's for any table of up to 2^41 slots). */
#define FILTER_SLOTS_LOG 4u
static inline size_t filter_words(unsigned log)
{
    return ((size_t)1 << log) >> FILTER_SLOTS_LOG;
}
static inline _Atomic uint64_t *table_filter(const blob_table_t *t)
{
    return (_Atomic uint64_t *)&t->tags[((size_t)1 << t->log) >> STORE_TAG_WORD_LOG];
}
static inline _Atomic uint64_t *filter_word(const blob_table_t *t, uint64_t mix)
{
    return &table_filter(t)[(size_t)(mix >> 7) & (filter_words(t->log) - 1)];
}
static inline uint64_t filter_bits(uint64_t mix)
{
    return ((uint64_t)1 << ((mix >> 44) & 63u)) | ((uint64_t)1 << ((mix >> 50) & 63u));
}
/* False: `mix` is in no slot of `t` (as far as the tags are concerned). */
static inline bool filter_maybe(const blob_table_t *t, uint64_t mix)
{
    uint64_t b = filter_bits(mix);
    return (atomic_load_explicit(filter_word(t, mix), memory_order_relaxed) & b) == b;
}
/* Shard lock held. */
static inline void filter_add(blob_table_t *t, uint64_t mix)
{
    _Atomic uint64_t *w = filter_word(t, mix);
    uint64_t x = atomic_load_explicit(w, memory_order_relaxed) | filter_bits(mix);
    atomic_store_explicit(w, x, memory_order_relaxed);
}

static inline uint64_t slot_mix(const blob_slot_t *b)
{
    return atomic_load_explicit((_Atomic uint64_t *)&b->mix, memory_order_relaxed);
}

/* Release: a lock-free hit reads the cap's key through this pointer. */
static inline void slot_set(blob_slot_t *b, uint64_t mix, cap_t *c)
{
    atomic_store_explicit(&b->mix, mix, memory_order_relaxed);
    atomic_store_explicit(&b->cap, c, memory_order_release);
}

/* Four tags at a time: the high bit of every 16-bit lane of `w` whose
 * value is zero (exact: no carry crosses a lane). Lanes are bits of a word,
 * not bytes in memory, so this is the same on any byte order. */
#define TAG_LOW15 0x7fff7fff7fff7fffull
#define TAG_HIGH 0x8000800080008000ull
#define TAG_ONES 0x0001000100010001ull
static inline uint64_t zero_lanes(uint64_t w)
{
    return ~(((w & TAG_LOW15) + TAG_LOW15) | w) & TAG_HIGH;
}
/* The lowest lane whose high bit is set in `m` (m != 0, only lane high bits
 * set): the lowest bit isolated, moved to bit 16 * lane, then a multiply
 * puts the lane number in the top 16 bits (no count-trailing-zeros, which
 * some targets take from a runtime library). */
static inline unsigned low_lane(uint64_t m)
{
    uint64_t b = (m & (0 - m)) >> 15;
    return (unsigned)((b * 0x0000000100020003ull) >> 48);
}

/* A probe of `t` for `mix` in probe order: calls `visit(i)` for each slot
 * whose tag matches, up to the first empty slot, until it returns true.
 * Returns the index it stopped at, or SIZE_MAX (reached an empty slot).
 * Tables always keep an empty slot (load <= 0.8), so it ends. */
#define PROBE_TAGS(t, mix, i_out, visit_expr)                                                     \
    PROBE_TAGS_FROM(t, slot_index((mix), (t)->log), mix, i_out, visit_expr)

/* The same from slot `from` on (a probe resumed after a tag that matched
 * by chance). */
#define PROBE_TAGS_FROM(t, from, mix, i_out, visit_expr)                                          \
    do {                                                                                          \
        size_t nw_ = ((size_t)1 << (t)->log) >> STORE_TAG_WORD_LOG;                               \
        size_t i0_ = (from) & (((size_t)1 << (t)->log) - 1);                                      \
        size_t wi_ = i0_ >> STORE_TAG_WORD_LOG;                                                   \
        uint64_t pat_ = (uint64_t)slot_tag(mix) * TAG_ONES;                                       \
        uint64_t valid_ = TAG_HIGH & (~(uint64_t)0 << ((i0_ & (STORE_TAGS_PER_WORD - 1u)) * 16u)); \
        (i_out) = SIZE_MAX;                                                                       \
        for (;;) {                                                                                \
            uint64_t w_ = atomic_load_explicit(&(t)->tags[wi_], memory_order_relaxed);            \
            uint64_t empty_ = ~w_ & valid_;                                                       \
            uint64_t match_ = zero_lanes(w_ ^ pat_) & valid_;                                     \
            if (empty_)                                                                           \
                match_ &= (empty_ & (0 - empty_)) - 1;                                            \
            int hit_ = 0;                                                                         \
            while (match_) {                                                                      \
                size_t i = (wi_ << STORE_TAG_WORD_LOG) + low_lane(match_);                        \
                if (visit_expr) {                                                                 \
                    (i_out) = i;                                                                  \
                    hit_ = 1;                                                                     \
                    break;                                                                        \
                }                                                                                 \
                match_ &= match_ - 1;                                                             \
            }                                                                                     \
            if (hit_ || empty_)                                                                   \
                break;                                                                            \
            wi_ = (wi_ + 1) & (nw_ - 1);                                                          \
            valid_ = TAG_HIGH;                                                                    \
        }                                                                                         \
    } while (0)

static inline bool key_is(const blob_slot_t *b, const cap_hash_t *h)
{
    return cap_memcmp(store_slot_cap(b)->key.bytes, h->bytes, 32) == 0;
}

/* A slot's cap for a lock-free hit: NULL if the slot is empty or its key is
 * not `h` (seq_cst, see readers.c). */
static inline cap_t *cap_if_key(const blob_slot_t *b, const cap_hash_t *h)
{
    cap_t *c = atomic_load_explicit((_Atomic(cap_t *) *)&b->cap, memory_order_seq_cst);
    return c && cap_memcmp(c->key.bytes, h->bytes, 32) == 0 ? c : (cap_t *)0;
}

/* The CLOCK bit of a lock-free hit; it matters only to trim, which needs a
 * budget. */
static inline void blob_mark_used(cap_store_t *s, cap_t *c)
{
    if (atomic_load_explicit(&s->budget, memory_order_relaxed) &&
        !(atomic_load_explicit(&c->flags, memory_order_relaxed) & CAP_FLAG_USED))
        atomic_fetch_or_explicit(&c->flags, (uint8_t)CAP_FLAG_USED, memory_order_relaxed);
}

#endif
