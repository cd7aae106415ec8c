/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* libFuzzer target: the JSON form of a cap (tools/cap_json.c, docs/cap-json.md),
 * the input the command's `encode` reads from users.
 *
 * Properties checked on every input (abort() on a violation, so libFuzzer
 * saves the input):
 *   - parsing either fails with a message (NUL-terminated, non-empty),
 *     returning no cap and leaving nothing allocated, or succeeds;
 *   - an accepted cap hashes, and its JSON form is a fixed point: dumping
 *     it and parsing the dump gives an equal cap with the same hash, whose
 *     dump is the same text;
 *   - its wire form decodes to an equal cap.
 * AddressSanitizer/UBSan catch out-of-bounds access and undefined
 * behaviour, LeakSanitizer any leak (everything is released per input). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_json.h"
#include "capstore/capstore.h"
#include "fuzz_alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void violated(const char *what)
{
    fprintf(stderr, "fuzz_json: property violated: %s\n", what);
    abort();
}

/* The wire form of `c`, decoded again, equals `c`. */
static void check_wire(const cap_t *c)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    if (cap_wire_encode_alloc(c, &fuzz_alloc, &buf, &n) != CAP_OK) violated("cap_wire_encode failed");
    cap_t *back = NULL;
    if (cap_wire_decode(buf, n, &fuzz_alloc, &back, NULL) != CAP_OK)
        violated("the wire form of an accepted cap does not decode");
    if (!cap_equal(c, back)) violated("decode(encode(x)) != x");
    cap_release(back);
    fuzz_alloc.deallocate(fuzz_alloc.ctx, buf, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char msg[256];
    cap_t *c = NULL;
    fuzz_alloc_reset();
    memset(msg, 'x', sizeof msg);
    int rc = capjson_parse((const char *)data, size, &fuzz_alloc, &c, msg, sizeof msg);
    if (rc != CAP_OK) {
        if (c) violated("a cap returned on failure");
        if (!memchr(msg, '\0', sizeof msg) || msg[0] == '\0') violated("no error message");
        if (fuzz_alloc_live()) violated("memory left after a rejection");
        return 0;
    }
    if (!c) violated("success without a cap");

    cap_hash_t h1, h2;
    if (cap_hash(c, &h1) != CAP_OK) violated("cap_hash of an accepted cap failed");

    char *text = NULL;
    if (capjson_dump(c, &text) != CAP_OK || !text) violated("capjson_dump failed");
    cap_t *again = NULL;
    if (capjson_parse(text, strlen(text), &fuzz_alloc, &again, msg, sizeof msg) != CAP_OK) {
        fprintf(stderr, "fuzz_json: %s\n%s", msg, text);
        violated("the dump of an accepted cap does not parse");
    }
    if (!cap_equal(c, again)) violated("parse(dump(x)) != x");
    if (cap_hash(again, &h2) != CAP_OK || memcmp(h1.bytes, h2.bytes, 32) != 0)
        violated("parse(dump(x)) hashes differently");
    char *text2 = NULL;
    if (capjson_dump(again, &text2) != CAP_OK || !text2 || strcmp(text, text2) != 0)
        violated("dump(parse(dump(x))) != dump(x)");
    free(text2);
    free(text);
    cap_release(again);

    check_wire(c);
    cap_release(c);
    if (fuzz_alloc_live()) violated("memory left after releasing everything");
    return 0;
}
