/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Counting allocator hooks for the fuzz targets (fuzz_alloc.h). */
#include "fuzz_alloc.h"

#include <stdlib.h>

static size_t live, peak;

static void *fz_allocate(void *ctx, size_t n)
{
    (void)ctx;
    void *p = malloc(n);
    if (p) {
        live += n;
        if (live > peak) peak = live;
    }
    return p;
}

static void *fz_reallocate(void *ctx, void *ptr, size_t old_n, size_t n)
{
    (void)ctx;
    void *p = realloc(ptr, n);
    if (p) {
        if (live + n > peak) peak = live + n; /* both blocks may exist for a moment */
        live = live - (ptr ? old_n : 0) + n;
    }
    return p;
}

static void fz_deallocate(void *ctx, void *ptr, size_t n)
{
    (void)ctx;
    if (ptr) live -= n;
    free(ptr);
}

const cap_alloc_t fuzz_alloc = {fz_allocate, fz_reallocate, fz_deallocate, NULL};

size_t fuzz_alloc_live(void) { return live; }
size_t fuzz_alloc_peak(void) { return peak; }
void fuzz_alloc_reset(void) { live = peak = 0; }
