/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* A bump allocator over a static arena (guest_arena.h). Blocks are 16-byte
 * aligned. Freeing or growing the newest block works in place (the store's
 * tables and scratch are often freed in the order they came); any other
 * block freed stays used until the program ends, which a short guest run
 * can afford. */
#include "guest_arena.h"

#define ARENA_SIZE (1u << 20) /* the scenario peaks near 24 KiB */
#define ALIGN 16u

static _Alignas(64) unsigned char arena[ARENA_SIZE];
static size_t top, last, peak; /* last: offset of the newest block */

static size_t round_up(size_t n) { return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

static void *arena_allocate(void *ctx, size_t n)
{
    (void)ctx;
    size_t need = round_up(n ? n : 1);
    if (need > ARENA_SIZE - top) return (void *)0;
    last = top;
    top += need;
    if (top > peak) peak = top;
    return arena + last;
}

static void arena_deallocate(void *ctx, void *p, size_t n)
{
    (void)ctx;
    (void)n;
    if (p && (unsigned char *)p == arena + last && last < top) top = last;
}

static void *arena_reallocate(void *ctx, void *p, size_t old_n, size_t new_n)
{
    if (!p) return arena_allocate(ctx, new_n);
    if ((unsigned char *)p == arena + last && last < top) {
        size_t need = round_up(new_n ? new_n : 1);
        if (need > ARENA_SIZE - last) return (void *)0;
        top = last + need;
        if (top > peak) peak = top;
        return p;
    }
    void *q = arena_allocate(ctx, new_n);
    if (q) __builtin_memcpy(q, p, old_n < new_n ? old_n : new_n);
    return q;
}

static const cap_alloc_t arena_alloc = {arena_allocate, arena_reallocate, arena_deallocate, (void *)0};

const cap_alloc_t *cap_guest_arena(void) { return &arena_alloc; }
size_t cap_guest_arena_used(void) { return top; }
size_t cap_guest_arena_peak(void) { return peak; }
size_t cap_guest_arena_size(void) { return ARENA_SIZE; }
