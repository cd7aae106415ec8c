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
 *   - its wire form decodes to an equal cap;
 *   - the reader streams: fed in pieces of 1 to 16 bytes (a size taken from
 *     the input) it gives the same result, cap or message, as fed whole;
 *     and the printer gives the same text to a FILE as to memory.
 * AddressSanitizer/UBSan catch out-of-bounds access and undefined
 * behaviour, LeakSanitizer any leak (everything is released per input). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_json.h"
#include "cap_json_stream.h"
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

/* Whether two messages are the same. yajl places a syntax error (its "parse
 * error: ...") at the start of the offending token, except when that token
 * began in an earlier piece: then at the start of the piece, which is still
 * inside the token, on the same line. So the columns of those may differ. */
static bool same_message(const char *a, const char *b)
{
    if (strcmp(a, b) == 0) return true;
    const char *ca = strstr(a, ", column "), *cb = strstr(b, ", column ");
    if (!ca || !cb || ca - a != cb - b || memcmp(a, b, (size_t)(ca - a)) != 0) return false;
    const char *ra = strchr(ca, ':'), *rb = strchr(cb, ':');
    return ra && rb && strncmp(ra, ": parse error: ", 15) == 0 && strcmp(ra, rb) == 0;
}

/* Parsing in small pieces gives what parsing whole gave (rc, msg, c). */
static void check_pieces(const uint8_t *data, size_t size, int rc, const char *msg, const cap_t *c)
{
    char msg2[256];
    cap_t *c2 = NULL;
    size_t piece = 1 + (size ? data[size / 2] % 16 : 0);
    int rc2 = capjson_parse_pieces((const char *)data, size, piece, &fuzz_alloc, &c2, msg2, sizeof msg2);
    if (rc2 != rc) violated("parsing in pieces returns another code");
    if (rc != CAP_OK && !same_message(msg, msg2)) {
        fprintf(stderr, "fuzz_json: whole: %s\nfuzz_json: in pieces of %zu: %s\n", msg, piece, msg2);
        violated("parsing in pieces gives another message");
    }
    if (rc == CAP_OK && (!c2 || !cap_equal(c, c2))) violated("parsing in pieces gives another cap");
    cap_release(c2);
}

/* capjson_write to a FILE prints what capjson_dump returns. */
static void check_write(const cap_t *c, const char *text)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) violated("open_memstream failed");
    if (capjson_write(c, f) != CAP_OK) violated("capjson_write failed");
    if (fclose(f) != 0) violated("fclose of the memory stream failed");
    if (n != strlen(text) || memcmp(buf, text, n) != 0) violated("capjson_write and capjson_dump differ");
    free(buf);
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
        check_pieces(data, size, rc, msg, NULL);
        if (fuzz_alloc_live()) violated("memory left after a rejection");
        return 0;
    }
    if (!c) violated("success without a cap");
    check_pieces(data, size, rc, msg, c);

    cap_hash_t h1, h2;
    if (cap_hash(c, &h1) != CAP_OK) violated("cap_hash of an accepted cap failed");

    char *text = NULL;
    if (capjson_dump(c, &text) != CAP_OK || !text) violated("capjson_dump failed");
    check_write(c, text);
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
