/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The host build's default allocator: libc malloc/realloc/free. */
#include <stdlib.h>

#include "capstore/host.h"

static void *libc_allocate(void *ctx, size_t n)
{
    (void)ctx;
    return malloc(n);
}

static void *libc_reallocate(void *ctx, void *p, size_t old_n, size_t n)
{
    (void)ctx;
    (void)old_n;
    return realloc(p, n);
}

static void libc_deallocate(void *ctx, void *p, size_t n)
{
    (void)ctx;
    (void)n;
    free(p);
}

static const cap_alloc_t libc_alloc = {libc_allocate, libc_reallocate, libc_deallocate, NULL};

const cap_alloc_t *cap_alloc_libc(void) { return &libc_alloc; }
