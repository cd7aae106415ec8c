/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* A set of cap hashes for the LMDB backend's graph work (lmdb_closure.c,
 * lmdb_collect.c, the archive import): the hashes in an array in insertion
 * order — which is also a breadth-first walk's queue — and an
 * open-addressed table of indices into it, each beside a tag of its key so
 * that a probe reads the key itself only when the tags agree (one cache
 * miss a lookup, not two). About 50 bytes a hash at the table's fullest,
 * so a mark of 10^6 blobs takes some 50 MB and no cap or bytes. */
#ifndef CAPSTORE_HASH_SET_H
#define CAPSTORE_HASH_SET_H

#include <stddef.h>
#include <stdint.h>

#include "capstore/common.h"

typedef struct cap_hset {
    cap_hash_t *keys; /* keys[0..n): insertion order */
    size_t n, room;
    uint64_t *slots;  /* a 32-bit tag of the key, then index + 1; 0 for an empty slot */
    unsigned log;     /* 2^log slots */
    uint64_t seed;
} cap_hset_t;

void cap_hset_init(cap_hset_t *s);
void cap_hset_free(cap_hset_t *s);
/* Room for `n` hashes without growing (a hint; 0 or -1 out of memory). */
int cap_hset_reserve(cap_hset_t *s, size_t n);
/* The index of `h`, or SIZE_MAX. */
size_t cap_hset_find(const cap_hset_t *s, const cap_hash_t *h);
/* Add `h`: 1 when new, 0 when already there, -1 out of memory (or past
 * 2^32 - 2 hashes). *idx (may be NULL) gets its index either way. */
int cap_hset_add(cap_hset_t *s, const cap_hash_t *h, size_t *idx);

#endif
