/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* A fault-injecting backend wrapper (persist.h: cap_fault_backend_*): passes
 * calls to an inner backend, and by plan fails them (I/O error, full disk,
 * not found) or damages what reads return (a flipped bit, a truncation, the
 * bytes of another hash). For testing the error paths of whoever uses a
 * backend. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/host.h"
#include "capstore/persist.h"

typedef struct fault_backend {
    cap_backend_t table; /* first */
    cap_backend_t *inner;
    bool own_inner;
    pthread_mutex_t mu;
    cap_fault_plan_t plan;
    uint64_t seen;     /* affected calls since the plan was set */
    uint64_t injected; /* faults injected, ever */
    uint64_t calls;    /* calls, ever */
} fault_backend_t;

static void fault_free(void *ctx);

static unsigned applicable(cap_fault_kind_t k)
{
    switch (k) {
    case CAP_FAULT_IO: return CAP_FAULT_ALL;
    case CAP_FAULT_DISK_FULL: return CAP_FAULT_WRITE | CAP_FAULT_BATCH | CAP_FAULT_FLUSH;
    case CAP_FAULT_CORRUPT:
    case CAP_FAULT_TRUNCATE:
    case CAP_FAULT_SWAP: return CAP_FAULT_READ;
    case CAP_FAULT_NOTFOUND: return CAP_FAULT_READ | CAP_FAULT_EXISTS;
    case CAP_FAULT_NONE:
    default: return 0;
    }
}

/* The fault to inject into this call of kind `op`, or CAP_FAULT_NONE. */
static cap_fault_kind_t decide(fault_backend_t *f, unsigned op, cap_fault_plan_t *plan)
{
    cap_fault_kind_t k = CAP_FAULT_NONE;
    pthread_mutex_lock(&f->mu);
    f->calls++;
    if ((f->plan.ops & op) && (applicable(f->plan.kind) & op)) {
        f->seen++;
        if (f->seen > f->plan.after && (f->plan.count == 0 || f->seen - f->plan.after <= f->plan.count)) {
            k = f->plan.kind;
            f->injected++;
            *plan = f->plan;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return k;
}

static int injected_error(cap_fault_kind_t k, cap_err_t *err)
{
    switch (k) {
    case CAP_FAULT_DISK_FULL:
        return cap_backend_fail(err, CAP_EBACKEND, "no space left on device (simulated)");
    case CAP_FAULT_NOTFOUND: return cap_backend_fail(err, CAP_ENOTFOUND, "not stored (simulated)");
    default: return cap_backend_fail(err, CAP_EBACKEND, "simulated I/O error");
    }
}

static int fault_read(void *ctx, const cap_hash_t *h, const cap_alloc_t *a, uint8_t **bytes, size_t *n,
                      cap_err_t *err)
{
    fault_backend_t *f = ctx;
    cap_fault_plan_t plan;
    cap_fault_kind_t k = decide(f, CAP_FAULT_READ, &plan);
    if (k == CAP_FAULT_IO || k == CAP_FAULT_NOTFOUND) return injected_error(k, err);
    int rc = cap_backend_read(f->inner, k == CAP_FAULT_SWAP ? &plan.swap_with : h, a, bytes, n, err);
    if (rc != CAP_OK || *n == 0) return rc;
    if (k == CAP_FAULT_CORRUPT) {
        size_t off = plan.corrupt_offset < *n ? plan.corrupt_offset : *n - 1;
        (*bytes)[*n - 1 - off] ^= 0x01;
    } else if (k == CAP_FAULT_TRUNCATE) {
        size_t half = *n / 2;
        uint8_t *p = NULL;
        if (half) {
            p = a->allocate(a->ctx, half);
            if (!p) {
                a->deallocate(a->ctx, *bytes, *n);
                *bytes = NULL;
                *n = 0;
                return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
            }
            memcpy(p, *bytes, half);
        }
        a->deallocate(a->ctx, *bytes, *n);
        *bytes = p;
        *n = half;
    }
    return CAP_OK;
}

static int fault_write(void *ctx, const cap_hash_t *h, const uint8_t *bytes, size_t n, cap_err_t *err)
{
    fault_backend_t *f = ctx;
    cap_fault_plan_t plan;
    cap_fault_kind_t k = decide(f, CAP_FAULT_WRITE, &plan);
    if (k != CAP_FAULT_NONE) return injected_error(k, err);
    return cap_backend_write(f->inner, h, bytes, n, err);
}

static int fault_write_batch(void *ctx, const cap_backend_item_t *items, size_t n, cap_err_t *err)
{
    fault_backend_t *f = ctx;
    cap_fault_plan_t plan;
    cap_fault_kind_t k = decide(f, CAP_FAULT_BATCH, &plan);
    if (k != CAP_FAULT_NONE) return injected_error(k, err);
    return cap_backend_write_batch(f->inner, items, n, err);
}

static int fault_write_many(void *ctx, const cap_backend_item_t *items, size_t n, const cap_backend_root_t *roots,
                            size_t nroots, cap_backend_write_result_t *res, cap_err_t *err)
{
    fault_backend_t *f = ctx;
    cap_fault_plan_t plan;
    cap_fault_kind_t k = decide(f, CAP_FAULT_BATCH, &plan); /* a batch, as write_batch */
    if (k != CAP_FAULT_NONE) return injected_error(k, err);
    return cap_backend_write_many(f->inner, items, n, roots, nroots, res, err);
}

static int fault_flush(void *ctx, cap_err_t *err)
{
    fault_backend_t *f = ctx;
    cap_fault_plan_t plan;
    cap_fault_kind_t k = decide(f, CAP_FAULT_FLUSH, &plan);
    if (k != CAP_FAULT_NONE) return injected_error(k, err);
    return cap_backend_flush(f->inner, err);
}

static int fault_exists(void *ctx, const cap_hash_t *h, cap_err_t *err)
{
    fault_backend_t *f = ctx;
    cap_fault_plan_t plan;
    cap_fault_kind_t k = decide(f, CAP_FAULT_EXISTS, &plan);
    if (k != CAP_FAULT_NONE) return injected_error(k, err);
    return cap_backend_exists(f->inner, h, err);
}

static int fault_iterate(void *ctx, cap_backend_iter_fn fn, void *arg, cap_err_t *err)
{
    fault_backend_t *f = ctx;
    cap_fault_plan_t plan;
    cap_fault_kind_t k = decide(f, CAP_FAULT_ITERATE, &plan);
    if (k != CAP_FAULT_NONE) return injected_error(k, err);
    return cap_backend_iterate(f->inner, fn, arg, err);
}

static void fault_free(void *ctx)
{
    fault_backend_t *f = ctx;
    if (f->own_inner) cap_backend_free(f->inner);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

int cap_fault_backend_new(cap_backend_t *inner, bool own_inner, cap_backend_t **out)
{
    if (!out) return CAP_EINVAL;
    *out = NULL;
    if (cap_backend_check(inner, NULL) != CAP_OK) return CAP_EINVAL;
    fault_backend_t *f = calloc(1, sizeof *f);
    if (!f) return CAP_ENOMEM;
    if (pthread_mutex_init(&f->mu, NULL) != 0) {
        free(f);
        return CAP_ENOMEM;
    }
    f->inner = inner;
    f->own_inner = own_inner;
    cap_backend_t t = CAP_BACKEND_INIT;
    t.name = "fault";
    t.flags = inner->flags;
    t.ctx = f;
    t.read = fault_read;
    t.write = fault_write; /* the inner backend's wrapper picks write or a batch of one */
    t.write_batch = fault_write_batch;
    t.write_many = fault_write_many; /* counts pass through */
    t.flush = fault_flush;
    t.exists = fault_exists;
    t.iterate = fault_iterate;
    t.free = fault_free;
    f->table = t;
    *out = &f->table;
    return CAP_OK;
}

static fault_backend_t *as_fault(const cap_backend_t *b)
{
    return (b && b->free == fault_free) ? b->ctx : NULL;
}

void cap_fault_backend_set(cap_backend_t *fb, const cap_fault_plan_t *plan)
{
    fault_backend_t *f = as_fault(fb);
    if (!f) return;
    pthread_mutex_lock(&f->mu);
    if (plan) {
        f->plan = *plan;
    } else {
        memset(&f->plan, 0, sizeof f->plan);
    }
    f->seen = 0;
    pthread_mutex_unlock(&f->mu);
}

uint64_t cap_fault_backend_injected(const cap_backend_t *fb)
{
    fault_backend_t *f = as_fault(fb);
    if (!f) return 0;
    pthread_mutex_lock(&f->mu);
    uint64_t v = f->injected;
    pthread_mutex_unlock(&f->mu);
    return v;
}

uint64_t cap_fault_backend_calls(const cap_backend_t *fb)
{
    fault_backend_t *f = as_fault(fb);
    if (!f) return 0;
    pthread_mutex_lock(&f->mu);
    uint64_t v = f->calls;
    pthread_mutex_unlock(&f->mu);
    return v;
}
