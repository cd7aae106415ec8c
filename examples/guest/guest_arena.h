/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* A bump allocator over a static arena: all the memory the guest has. */
#ifndef CAPSTORE_GUEST_ARENA_H
#define CAPSTORE_GUEST_ARENA_H

#include <capstore/common.h>

/** The arena as a capstore allocator. */
const cap_alloc_t *cap_guest_arena(void);
/** Bytes in use now, and at most so far; the arena's size. */
size_t cap_guest_arena_used(void);
size_t cap_guest_arena_peak(void);
size_t cap_guest_arena_size(void);

#endif
