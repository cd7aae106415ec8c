/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Between the JSON reader's two halves: tools/cap_json_stream.c parses the
 * text (yajl, in chunks) into a jansson tree of everything but the top-level
 * "pages" list, whose elements it hands one at a time to capjson_pages_add
 * (tools/cap_json.c) and then frees; capjson_tree_to_cap then builds the cap
 * from the tree and those records, checking fields in the same order as for
 * a whole tree, so a document with several errors reports the same one. */
#ifndef CAPSTORE_CAP_JSON_STREAM_H
#define CAPSTORE_CAP_JSON_STREAM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "capstore/cap.h"

/* The top-level "pages" array as compact records, in order, each a state
 * byte (a cap_page_state_t) then: nothing (Empty), a u64 length and that
 * many bytes (Loaded; any length: the page size may come later in the text,
 * so the length is checked when the cap is built), or a 32-byte root
 * (Missing). An Empty page costs one byte, a Loaded one its bytes and 9. */
typedef struct capjson_pages {
    const json_t *placeholder; /* the empty array standing for the list in the tree */
    uint8_t *rec;
    size_t len, cap;
    uint64_t count; /* elements read, the bad one and those after it included */
    /* The first element that is not a valid page (its message has the path,
     * e.g. "pages[7].bytes: not a hex digit at character 3"): reported when
     * the cap is built and reaches it, so earlier errors still come first.
     * The elements after it are counted only. */
    bool bad;
    int bad_rc;
    uint64_t bad_index;
    char bad_msg[512];
} capjson_pages_t;

/* Read element number pages->count into a record (or note it as the bad
 * one), and count it. CAP_ENOMEM if the records cannot grow, else CAP_OK. */
int capjson_pages_add(capjson_pages_t *pages, const json_t *page);

void capjson_pages_free(capjson_pages_t *pages);

/* Build a cap from the tree of a document whose "pages" array (if any) is
 * pages->placeholder, its elements in `pages`. Errors as capjson_read. */
int capjson_tree_to_cap(const json_t *j, const capjson_pages_t *pages, const cap_alloc_t *a,
                        cap_t **out, char *msg, size_t msg_len);

/* capjson_parse, feeding the parser `piece` bytes at a time (the fuzz target
 * checks that where the input is cut changes nothing). */
int capjson_parse_pieces(const char *text, size_t n, size_t piece, const cap_alloc_t *a, cap_t **out,
                         char *msg, size_t msg_len);

#endif
