/* SPDX-License-Identifier: MIT OR Apache-2.0 */
#include "test_alloc.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each block carries a header with its size so frees can be checked. */
#define HDR 16

static pthread_mutex_t ta_mu = PTHREAD_MUTEX_INITIALIZER;

static int should_fail(test_alloc_t *ta)
{
    ta->count++;
    if (ta->fail_at <= 0) return 0;
    if (ta->count == ta->fail_at) return 1;
    return ta->fail_all_after && ta->count > ta->fail_at;
}

static void *ta_allocate(void *ctx, size_t n)
{
    test_alloc_t *ta = ctx;
    if (ta->on_allocate) ta->on_allocate(ta->on_allocate_arg, n);
    pthread_mutex_lock(&ta_mu);
    int fail = should_fail(ta);
    pthread_mutex_unlock(&ta_mu);
    if (fail || n == 0) return NULL;
    unsigned char *p = malloc(n + HDR);
    if (!p) return NULL;
    memcpy(p, &n, sizeof n);
    pthread_mutex_lock(&ta_mu);
    ta->live_blocks++;
    ta->live_bytes += (long long)n;
    pthread_mutex_unlock(&ta_mu);
    return p + HDR;
}

static void check_size(test_alloc_t *ta, void *ptr, size_t n)
{
    size_t real;
    memcpy(&real, (unsigned char *)ptr - HDR, sizeof real);
    if (real != n) {
        fprintf(stderr, "test_alloc: size mismatch: block of %zu freed as %zu\n", real, n);
        ta->size_errors++;
    }
}

static void *ta_reallocate(void *ctx, void *ptr, size_t old_n, size_t n)
{
    test_alloc_t *ta = ctx;
    if (!ptr) return ta_allocate(ctx, n);
    if (ta->on_allocate && n > old_n) ta->on_allocate(ta->on_allocate_arg, n);
    pthread_mutex_lock(&ta_mu);
    check_size(ta, ptr, old_n);
    int fail = should_fail(ta);
    pthread_mutex_unlock(&ta_mu);
    if (fail || n == 0) return NULL;
    unsigned char *p = realloc((unsigned char *)ptr - HDR, n + HDR);
    if (!p) return NULL;
    memcpy(p, &n, sizeof n);
    pthread_mutex_lock(&ta_mu);
    ta->live_bytes += (long long)n - (long long)old_n;
    pthread_mutex_unlock(&ta_mu);
    return p + HDR;
}

static void ta_deallocate(void *ctx, void *ptr, size_t n)
{
    test_alloc_t *ta = ctx;
    if (!ptr) return;
    pthread_mutex_lock(&ta_mu);
    check_size(ta, ptr, n);
    ta->live_blocks--;
    ta->live_bytes -= (long long)n;
    pthread_mutex_unlock(&ta_mu);
    free((unsigned char *)ptr - HDR);
}

void test_alloc_init(test_alloc_t *ta)
{
    memset(ta, 0, sizeof *ta);
    ta->alloc.allocate = ta_allocate;
    ta->alloc.reallocate = ta_reallocate;
    ta->alloc.deallocate = ta_deallocate;
    ta->alloc.ctx = ta;
}

void test_alloc_fail_at(test_alloc_t *ta, long n)
{
    pthread_mutex_lock(&ta_mu);
    ta->count = 0;
    ta->fail_at = n;
    pthread_mutex_unlock(&ta_mu);
}

int test_alloc_clean(const test_alloc_t *ta)
{
    return ta->live_blocks == 0 && ta->live_bytes == 0 && ta->size_errors == 0;
}
