/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The JSON form of a cap (docs/cap-json.md, docs/cap.schema.json): a
 * readable, editable rendering of exactly what the wire form holds, so that
 * encode(decode(wire)) == wire byte for byte.
 *
 * Conversions go through the public API only: reading uses the cap getters,
 * building uses the constructors and setters, so the library's validation
 * (slot range, zero targets, page sizes, Image rules) applies, and its errors
 * are reported with the JSON field path (e.g. "slots[2].target: ...").
 *
 * Both directions stream, so that memory stays in proportion to the input
 * (a Data cap has up to 2^32 pages, one JSON object each): the writer prints
 * as it walks the cap, and the reader (tools/cap_json_stream.c) parses its
 * input in chunks, turning the page list into compact records as it goes
 * and keeping a tree of the rest only, which is small. */
#ifndef CAPSTORE_CAP_JSON_H
#define CAPSTORE_CAP_JSON_H

#include <stdio.h>

#include "capstore/cap.h"

/* u64 values up to this bound are written as JSON numbers, larger ones as
 * decimal strings (JSON readers that use doubles stay exact). */
#define CAPJSON_U64_NUMBER_MAX (1ull << 53)

/* Returned by capjson_write when writing to the stream failed (errno or
 * ferror tell why); distinct from the cap error codes, which are negative. */
#define CAPJSON_EWRITE 1

/* Print the JSON form of a settled cap to f: pretty-printed (two-space
 * indent), ending in a newline. Returns CAP_OK, CAP_EUNSETTLED if the cap
 * holds a Ref (the JSON form has hashes only; nothing is printed then),
 * CAP_ENOMEM, or CAPJSON_EWRITE (output stops at the first failed write). */
int capjson_write(const cap_t *c, FILE *f);

/* The same text in memory: *text is malloc'd and NUL-terminated (free it). */
int capjson_dump(const cap_t *c, char **text);

/* Build a cap from its JSON form, read from f to its end in chunks; *out is
 * a new, writable cap made with `a`. On error returns a cap error code
 * (CAP_EINVAL for a syntax, shape or type error, else the library's code)
 * and writes into msg (always NUL-terminated when msg_len > 0) either
 * "line L, column C: <what is wrong>" for a syntax error, or
 * "<field path>: <what is wrong>". */
int capjson_read(FILE *f, const cap_alloc_t *a, cap_t **out, char *msg, size_t msg_len);

/* The same from n bytes of text in memory. */
int capjson_parse(const char *text, size_t n, const cap_alloc_t *a, cap_t **out, char *msg,
                  size_t msg_len);

#endif
