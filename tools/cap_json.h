/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The JSON form of a cap (docs/cap-json.md, docs/cap.schema.json): a
 * readable, editable rendering of exactly what the wire form holds, so that
 * encode(decode(wire)) == wire byte for byte.
 *
 * Conversions go through the public API only: reading uses the cap getters,
 * building uses the constructors and setters, so the library's validation
 * (slot range, zero targets, page sizes, Image rules) applies, and its errors
 * are reported with the JSON field path (e.g. "slots[2].target: ..."). */
#ifndef CAPSTORE_CAP_JSON_H
#define CAPSTORE_CAP_JSON_H

#include <jansson.h>

#include "capstore/cap.h"

/* u64 values up to this bound are written as JSON numbers, larger ones as
 * decimal strings (JSON readers that use doubles stay exact). */
#define CAPJSON_U64_NUMBER_MAX (1ull << 53)

/* The JSON form of a settled cap: *out is a new json_t (json_decref it).
 * CAP_EUNSETTLED if the cap holds a Ref (the JSON form has hashes only),
 * CAP_ENOMEM. */
int capjson_from_cap(const cap_t *c, json_t **out);

/* The same, serialized: pretty-printed (two-space indent), ending in a
 * newline. *text is malloc'd (free it). */
int capjson_dump(const cap_t *c, char **text);

/* Build a cap from its JSON form; *out is a new, writable cap made with `a`.
 * On error returns a cap error code (CAP_EINVAL for a shape or type error,
 * else the library's code) and writes "<field path>: <what is wrong>" into
 * msg (always NUL-terminated when msg_len > 0). */
int capjson_to_cap(const json_t *j, const cap_alloc_t *a, cap_t **out, char *msg, size_t msg_len);

/* Parse JSON text and build the cap. A syntax error is reported as
 * "line L, column C: <jansson's message>". */
int capjson_parse(const char *text, size_t n, const cap_alloc_t *a, cap_t **out, char *msg,
                  size_t msg_len);

#endif
