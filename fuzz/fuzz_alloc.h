/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The fuzz targets' allocator hooks: malloc with a count of live bytes and
 * their peak, so that a target can check what an input leaves allocated
 * and how much its decoding took. Single-threaded, as libFuzzer runs. */
#ifndef CAPSTORE_FUZZ_ALLOC_H
#define CAPSTORE_FUZZ_ALLOC_H

#include <stddef.h>

#include "capstore/capstore.h"

extern const cap_alloc_t fuzz_alloc;

/* Bytes allocated through fuzz_alloc now, and the most since the last reset. */
size_t fuzz_alloc_live(void);
size_t fuzz_alloc_peak(void);
/* Start counting afresh (live and peak 0): call with nothing allocated. */
void fuzz_alloc_reset(void);

#endif
