/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The JSON form of `capstore inspect --json`: one object per cap with what
 * the text summary shows, every list whole. */
#ifndef CAPSTORE_INSPECT_JSON_H
#define CAPSTORE_INSPECT_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "capstore/cap.h"

/* The summary of `c`, read from `file` (`wire_len` bytes), as a new JSON
 * object, or NULL when out of memory. `hash_hex` is its cap hash. */
json_t *inspect_json(const cap_t *c, const char *file, const char *hash_hex, size_t wire_len);

#endif
