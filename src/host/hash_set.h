/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* A set of cap hashes for the LMDB backend's graph work (lmdb_closure.c,
 * lmdb_collect.c): the hashes in an array in insertion order — which is
 * also a breadth-first walk's queue — and an open-addressed table of
 * 32-bit indices into it. About 40 bytes a hash at the table's fullest,
 * so a mark of 10^6 blobs takes some 40 MB and no cap or bytes. */
#ifndef CAPSTORE_HASH_SET_H
#define CAPSTORE_HASH_SET_H

#include <stddef.h>
#include <stdint.h>

#include "capstore/common.h"

typedef struct cap_hset {
    cap_hash_t *keys; /* keys[0..n): insertion order */
    size_t n, room;
    uint32_t *slots;  /* index + 1, or 0 for an empty slot */
    unsigned log;     /* 2^log slots */
    uint64_t seed;
} cap_hset_t;

void cap_hset_init(cap_hset_t *s);
void cap_hset_free(cap_hset_t *s);
/* The index of `h`, or SIZE_MAX. */
size_t cap_hset_find(const cap_hset_t *s, const cap_hash_t *h);
/* Add `h`: 1 when new, 0 when already there, -1 out of memory (or past
 * 2^32 - 2 hashes). *idx (may be NULL) gets its index either way. */
int cap_hset_add(cap_hset_t *s, const cap_hash_t *h, size_t *idx);

#endif
