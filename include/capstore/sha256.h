/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore — SHA-256 of 64-byte inputs: the only hash merkleization needs.
 *
 * One node: out = SHA256(in[0..64]). The batch call hashes n independent
 * nodes (a whole tree level) and is where the speed is: the SHA-NI kernel
 * keeps several nodes in flight. Pointer arguments must not be NULL
 * (undefined behaviour; the inner loop does not check). */
#ifndef CAPSTORE_SHA256_H
#define CAPSTORE_SHA256_H

#include "capstore/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Kernel implementations. */
typedef enum cap_sha256_kernel {
    CAP_SHA256_PORTABLE = 0,  /**< plain C, always built, always available */
    CAP_SHA256_SHANI = 1,     /**< x86 SHA extensions (needs SHA, SSSE3, SSE4.1) */
    CAP_SHA256_SHANI_AVX = 2  /**< the same kernel in the VEX encoding (fewer
                                   instructions; needs also AVX, enabled by the
                                   OS): the default where the CPU has it */
} cap_sha256_kernel_t;

/** SHA-256 of one 64-byte input. `out` may alias `in`. */
void cap_sha256_node(uint8_t out[32], const uint8_t in[64]);

/** SHA-256 of one node given as two 32-byte halves: SHA256(left ‖ right).
 * `out` may alias either input. */
void cap_sha256_pair(uint8_t out[32], const uint8_t left[32], const uint8_t right[32]);

/** SHA-256 of `n` independent 64-byte inputs: out[32*i..] = SHA256(in[64*i..]).
 * In-place use is allowed: `out == in` (each digest lands in the first half
 * of the region its input occupied the lower half of, so a level can be
 * reduced within one buffer). Other overlaps are not allowed. */
void cap_sha256_nodes(uint8_t *out, const uint8_t *in, size_t n);

/** Select the kernel for the whole process (the one piece of process-wide
 * state; atomic). Returns CAP_EINVAL if the build cannot use `k` (a SHA-NI
 * kernel on a non-x86 build, or when the build forces portable). The guest
 * kernel, which cannot probe the CPU, calls this explicitly. It does not
 * check that the CPU supports the instructions: see cap_sha256_cpu_has_shani()
 * and cap_sha256_cpu_has_shani_avx(). */
int cap_sha256_select(cap_sha256_kernel_t k);

/** The kernel in use. Before any selection, the first hash resolves it to
 * cap_sha256_cpu_best() (the CPU is probed when the build defines
 * CAP_SHA256_PROBE_CPU, as the host build does). */
cap_sha256_kernel_t cap_sha256_selected(void);

/** Whether this CPU has the SHA extensions (cpuid). Always false when the
 * build does not probe (the guest). */
bool cap_sha256_cpu_has_shani(void);

/** Whether this CPU can run CAP_SHA256_SHANI_AVX: the SHA extensions, AVX,
 * and an OS that saves the AVX registers (cpuid, xgetbv). Always false when
 * the build does not probe. */
bool cap_sha256_cpu_has_shani_avx(void);

/** The fastest kernel this CPU can run, as the first hash picks it when
 * nothing was selected: CAP_SHA256_SHANI_AVX, else CAP_SHA256_SHANI, else
 * portable (always portable when the build does not probe). */
cap_sha256_kernel_t cap_sha256_cpu_best(void);

/** Direct access to one kernel regardless of the selection (tests and
 * benchmarks compare them). Returns CAP_EINVAL if `k` is not built. */
int cap_sha256_nodes_with(cap_sha256_kernel_t k, uint8_t *out, const uint8_t *in, size_t n);

#ifdef __cplusplus
}
#endif

#endif
