/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Damage for the tests: bytes put under a hash in a capstore LMDB file
 * with the LMDB API, past the backend (whose writes never replace a sound
 * value with bytes that do not decode to it: sys/backend.h). The caller
 * has closed every backend on the file (LMDB must not open one
 * environment twice in a process). */
#ifndef CAPSTORE_TEST_LMDB_RAW_H
#define CAPSTORE_TEST_LMDB_RAW_H

#include <stddef.h>

#include "capstore/common.h"

/* 0, or the LMDB error. Format 2 ("blobs" database). */
int test_lmdb_raw_put(const char *path, const cap_hash_t *h, const void *bytes, size_t n);

#endif
