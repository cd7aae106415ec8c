/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* libFuzzer target: the wire decoder (cap-schema.md, "Wire form").
 *
 * Properties checked on every input (abort() on a violation, so libFuzzer
 * saves the input):
 *   - decoding either fails with CAP_EDECODE (a rule name, an offset within
 *     the input, nothing returned) or succeeds;
 *   - an accepted input is canonical: cap_wire_size is its length and
 *     re-encoding gives the same bytes;
 *   - decode(encode(x)) == x, a copy is equal, and cap_hash succeeds and
 *     agrees between the cap, its copy and its re-decoding;
 *   - decoding allocates at most a small multiple of the input length;
 *   - the children read from the wire bytes (cap_wire_for_each_child) are
 *     those of the decoded cap (cap_for_each_child), in the same order, and
 *     the wire scan never refuses an input the decoder accepts.
 * AddressSanitizer/UBSan catch out-of-bounds reads and undefined behaviour,
 * LeakSanitizer any leak (everything is released per input). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/capstore.h"
#include "fuzz_alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void violated(const char *what)
{
    fprintf(stderr, "fuzz_decode: property violated: %s\n", what);
    abort();
}

/* A fingerprint of a child sequence (FNV-1a over field, slot, hash). */
typedef struct kids {
    uint64_t n, fp;
} kids_t;

static int kid(void *arg, const cap_child_t *ch)
{
    kids_t *k = arg;
    uint8_t rec[40];
    uint32_t f = (uint32_t)ch->field;
    memcpy(rec, &f, 4);
    memcpy(rec + 4, &ch->index, 4);
    memcpy(rec + 8, ch->target.hash.bytes, 32);
    for (size_t i = 0; i < sizeof rec; i++) k->fp = (k->fp ^ rec[i]) * 0x100000001b3ull;
    k->n++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cap_t *c = NULL;
    cap_err_t err;
    fuzz_alloc_reset();
    int rc = cap_wire_decode(data, size, &fuzz_alloc, &c, &err);
    if (fuzz_alloc_peak() > 8 * size + 4096) violated("decode allocated more than 8x the input");
    kids_t wk = {0, 0xcbf29ce484222325ull};
    int wrc = cap_wire_for_each_child(data, size, kid, &wk, NULL);
    if (wrc != CAP_OK && wrc != CAP_EDECODE) violated("wire children: neither CAP_OK nor CAP_EDECODE");
    if (wrc == CAP_EDECODE && wk.n) violated("wire children reported before a refusal");
    if (rc == CAP_OK) {
        kids_t ck = {0, 0xcbf29ce484222325ull};
        if (wrc != CAP_OK) violated("wire children refuse what the decoder accepts");
        if (cap_for_each_child(c, kid, &ck) != CAP_OK) violated("cap_for_each_child failed");
        if (ck.n != wk.n || ck.fp != wk.fp) violated("wire and cap children differ");
    }
    if (rc != CAP_OK) {
        if (rc != CAP_EDECODE) violated("decode failed with something other than CAP_EDECODE");
        if (err.code != CAP_EDECODE || !err.what || err.offset > size) violated("bad error detail");
        if (c) violated("a cap returned on failure");
        if (fuzz_alloc_live()) violated("memory left after a rejection");
        return 0;
    }
    if (!c || size == 0 || (uint8_t)cap_kind(c) != data[0]) violated("decoded cap of the wrong kind");

    size_t n = 0;
    if (cap_wire_size(c, &n) != CAP_OK || n != size) violated("wire size differs from the input");
    uint8_t *buf = malloc(size);
    size_t written = 0;
    if (!buf) abort();
    if (cap_wire_encode(c, buf, size, &written) != CAP_OK || written != size ||
        memcmp(buf, data, size) != 0)
        violated("re-encoding differs from the input");

    cap_hash_t h1, h2, h3;
    if (cap_hash(c, &h1) != CAP_OK) violated("cap_hash failed");

    cap_t *again = NULL;
    if (cap_wire_decode(buf, size, &fuzz_alloc, &again, NULL) != CAP_OK) violated("re-decoding failed");
    if (!cap_equal(c, again)) violated("decode(encode(x)) != x");
    if (cap_hash(again, &h2) != CAP_OK || memcmp(h1.bytes, h2.bytes, 32) != 0)
        violated("hash of the re-decoded cap differs");
    cap_release(again);
    free(buf);

    cap_t *copy = NULL;
    if (cap_copy(c, &copy) != CAP_OK) violated("cap_copy failed");
    if (!cap_equal(c, copy)) violated("copy differs");
    if (cap_hash(copy, &h3) != CAP_OK || memcmp(h1.bytes, h3.bytes, 32) != 0)
        violated("hash of the copy differs");
    cap_release(copy);
    cap_release(c);
    if (fuzz_alloc_live()) violated("memory left after releasing everything");
    return 0;
}
