/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore — host-build helpers: libc allocator, pthread lock hooks, CPU and
 * environment-driven kernel selection, random seeds. Not available in the
 * freestanding guest build. */
#ifndef CAPSTORE_HOST_H
#define CAPSTORE_HOST_H

#include "capstore/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/** malloc/realloc/free as a cap_alloc_t (static; never freed). */
const cap_alloc_t *cap_alloc_libc(void);

/** Lock hooks on a pthread mutex + condition variable (static). */
const cap_lock_hooks_t *cap_lock_pthread(void);

/** Select the SHA-256 kernel from the environment variable CAPSTORE_SHA256:
 * "portable" forces the portable kernel, "shani" and "shani-avx" ask for a
 * SHA-NI kernel (CAP_SHA256_SHANI, CAP_SHA256_SHANI_AVX; when the CPU lacks
 * it, the best kernel it has runs and the call returns CAP_EINVAL), unset or
 * "auto" probes the CPU for the best one. Returns CAP_OK or CAP_EINVAL
 * (unknown value or unsupported). */
int cap_sha256_select_from_env(void);

/** 16 random bytes from the OS (getrandom), for table-hash seeds. */
int cap_random_seed(uint64_t seed[2]);

/** Options for a host store: libc allocator, pthread locks, a random seed. */
cap_store_options_t cap_store_options_host(void);

/** cap_store_new with cap_store_options_host(). */
int cap_store_new_host(cap_store_t **out);

/** A thread pool as the store's worker hook (cap_store_options_t.workers):
 * `nthreads` threads in all, the caller of `run` included, so nthreads - 1
 * threads are started (0: one per online CPU; 1: a pool that runs
 * everything on the calling thread). One parallel-for runs at a time: a
 * `run` that finds the pool busy (another store's, or one called from
 * inside a `fn`) makes all of its calls on its own thread. Several stores
 * may share a pool. NULL when memory or a thread could not be had. */
cap_workers_t *cap_host_workers_new(unsigned nthreads);

/** Stop the pool's threads and free it. No `run` may be in progress: free
 * (or stop using) the stores that use it first. NULL is a no-op. */
void cap_host_workers_free(cap_workers_t *w);

#ifdef __cplusplus
}
#endif

#endif
