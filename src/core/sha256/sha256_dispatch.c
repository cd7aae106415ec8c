/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Kernel selection: the process-wide choice of SHA-256 kernel (spec section
 * 5) and the public hashing calls that go through it. */
#include <stdatomic.h>

#include "base.h"
#include "sha256/sha256_internal.h"

#if CAP_SHA256_HAVE_SHANI && defined(CAP_SHA256_PROBE_CPU)
#include <cpuid.h>
#endif

typedef void (*nodes_fn)(uint8_t *out, const uint8_t *in, size_t n);

static void nodes_resolve(uint8_t *out, const uint8_t *in, size_t n);

/* The kernel in use. It starts as a resolver that settles the default on the
 * first hash; a hash then costs one relaxed load and an indirect call. Any
 * kernel's output is the same, so no ordering beyond atomicity is needed. */
static _Atomic(nodes_fn) current = nodes_resolve;

bool cap_sha256_cpu_has_shani(void)
{
#if CAP_SHA256_HAVE_SHANI && defined(CAP_SHA256_PROBE_CPU)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    bool ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    bool sha = (b >> 29) & 1;
    return sha && ssse3 && sse41;
#else
    return false;
#endif
}

bool cap_sha256_cpu_has_shani_avx(void)
{
#if CAP_SHA256_HAVE_SHANI && defined(CAP_SHA256_PROBE_CPU)
    unsigned a, b, c, d;
    if (!cap_sha256_cpu_has_shani() || !__get_cpuid(1, &a, &b, &c, &d)) return false;
    bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return false;
    /* The OS must save the SSE and AVX state (XCR0 bits 1 and 2), or every
     * VEX instruction faults. */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    return (lo & 6u) == 6u;
#else
    return false;
#endif
}

cap_sha256_kernel_t cap_sha256_cpu_best(void)
{
    return cap_sha256_cpu_has_shani_avx() ? CAP_SHA256_SHANI_AVX
           : cap_sha256_cpu_has_shani()   ? CAP_SHA256_SHANI
                                          : CAP_SHA256_PORTABLE;
}

static nodes_fn kernel_fn(cap_sha256_kernel_t k)
{
    switch (k) {
    case CAP_SHA256_PORTABLE:
        return cap_sha256_nodes_portable;
#if CAP_SHA256_HAVE_SHANI
    case CAP_SHA256_SHANI:
        return cap_sha256_nodes_shani;
    case CAP_SHA256_SHANI_AVX:
        return cap_sha256_nodes_shani_avx;
#endif
    default:
        return NULL;
    }
}

/* The current kernel, settling the default first if nothing chose one. An
 * explicit selection made meanwhile wins (the exchange only replaces the
 * resolver). */
static nodes_fn current_resolved(void)
{
    nodes_fn f = atomic_load_explicit(&current, memory_order_relaxed);
    if (CAP_LIKELY(f != nodes_resolve)) return f;
    nodes_fn def = kernel_fn(cap_sha256_cpu_best());
    if (atomic_compare_exchange_strong_explicit(&current, &f, def, memory_order_relaxed,
                                                memory_order_relaxed))
        return def;
    return f;
}

static void nodes_resolve(uint8_t *out, const uint8_t *in, size_t n) { current_resolved()(out, in, n); }

int cap_sha256_select(cap_sha256_kernel_t k)
{
    nodes_fn f = kernel_fn(k);
    if (!f) return CAP_EINVAL;
    atomic_store_explicit(&current, f, memory_order_relaxed);
    return CAP_OK;
}

cap_sha256_kernel_t cap_sha256_selected(void)
{
    nodes_fn f = current_resolved();
#if CAP_SHA256_HAVE_SHANI
    if (f == cap_sha256_nodes_shani) return CAP_SHA256_SHANI;
    if (f == cap_sha256_nodes_shani_avx) return CAP_SHA256_SHANI_AVX;
#endif
    (void)f;
    return CAP_SHA256_PORTABLE;
}

int cap_sha256_nodes_with(cap_sha256_kernel_t k, uint8_t *out, const uint8_t *in, size_t n)
{
    nodes_fn f = kernel_fn(k);
    if (!f) return CAP_EINVAL;
    if (n) f(out, in, n);
    return CAP_OK;
}

void cap_sha256_nodes(uint8_t *out, const uint8_t *in, size_t n)
{
    if (n == 0) return;
    atomic_load_explicit(&current, memory_order_relaxed)(out, in, n);
}

void cap_sha256_node(uint8_t out[32], const uint8_t in[64])
{
    atomic_load_explicit(&current, memory_order_relaxed)(out, in, 1);
}

void cap_sha256_pair(uint8_t out[32], const uint8_t left[32], const uint8_t right[32])
{
    /* The copy makes any aliasing of out with left or right harmless. */
    uint8_t buf[64];
    cap_memcpy(buf, left, 32);
    cap_memcpy(buf + 32, right, 32);
    atomic_load_explicit(&current, memory_order_relaxed)(out, buf, 1);
}
