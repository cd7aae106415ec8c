/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Conformance: every line of vectors/caps.txt through the library.
 *
 *   positive: decode, cap_hash == the listed hash, re-encoding is byte-identical
 *             (through all three encoders), the decoded cap is writable and a
 *             second decode of the re-encoding is cap_equal;
 *   reject:   CAP_EDECODE with a rule name and an offset inside the input,
 *             nothing returned, no leak (counting allocator); a _PageSizeMismatch
 *             line names PageSizeMismatch, an _ImageConvertFailed line names a
 *             reason cap_image_validate gives, other lines name neither;
 *   data_inline_*: the inline rule of vectors/README.md;
 *   every positive line with one byte appended or removed: rejected, or
 *             accepted only as a canonical encoding of itself.
 * The counts (303 positive, 64 reject) are asserted. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "check.h"
#include "test_alloc.h"

static test_alloc_t ta;

/* The reasons cap_image_validate gives, collected by asking it. */
#define MAX_REASONS 32
static const char *image_reasons[MAX_REASONS];
static int n_image_reasons;

static void add_reason(const cap_image_desc_t *d)
{
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = cap_image_validate(d, &e);
    CHECK_EQ_INT(rc, CAP_EIMAGE);
    CHECK(e.what != NULL);
    if (rc != CAP_EIMAGE || !e.what) return;
    for (int i = 0; i < n_image_reasons; i++)
        if (strcmp(image_reasons[i], e.what) == 0) return;
    if (n_image_reasons < MAX_REASONS) image_reasons[n_image_reasons++] = e.what;
}

static void collect_image_reasons(void)
{
    static cap_endpoint_t eps[CAP_MAX_ENDPOINTS + 1];
    static const uint8_t code[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    static const uint8_t bm[2] = {0xff, 1};
    cap_mapping_t map;
    cap_slot_entry_t se[2];
    uint32_t jt = 9;
    cap_image_desc_t d;

    memset(&d, 0, sizeof d);
    d.endpoints = eps;
    d.endpoints_len = CAP_MAX_ENDPOINTS + 1;
    add_reason(&d);

    memset(&d, 0, sizeof d);
    memset(&map, 0, sizeof map);
    map.source_path_len = CAP_MAX_SOURCE_DEPTH + 1;
    d.mappings = &map;
    d.mappings_len = 1;
    add_reason(&d);
    map.source_path_len = 2;
    map.source_path[5] = 7;
    add_reason(&d);

    memset(&se, 0, sizeof se);
    se[0].slot = 3;
    se[1].slot = 3;
    se[0].cap_hash.bytes[0] = 1;
    se[1].cap_hash.bytes[0] = 1;
    memset(&d, 0, sizeof d);
    d.pinned = se;
    d.pinned_len = 2;
    add_reason(&d);
    memset(&d, 0, sizeof d);
    d.initial = se;
    d.initial_len = 2;
    add_reason(&d);
    se[1].slot = 4;
    se[1].cap_hash.bytes[0] = 0;
    memset(&d, 0, sizeof d);
    d.pinned = se;
    d.pinned_len = 2;
    add_reason(&d);
    memset(&d, 0, sizeof d);
    d.initial = se;
    d.initial_len = 2;
    add_reason(&d);

    memset(&d, 0, sizeof d);
    d.code = code;
    d.code_len = 9;
    d.bitmask = bm;
    d.bitmask_len = 1;
    add_reason(&d);
    d.bitmask_len = 2;
    d.jump_table = &jt;
    d.jump_table_len = 1;
    add_reason(&d);
    CHECK(n_image_reasons >= 5);
}

static int is_image_reason(const char *w)
{
    for (int i = 0; i < n_image_reasons; i++)
        if (strcmp(image_reasons[i], w) == 0) return 1;
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static unsigned char *unhex(const char *hex, size_t *n)
{
    size_t cap = strlen(hex) / 2 + 1;
    unsigned char *b = malloc(cap);
    long got = hex_decode(hex, b, cap);
    if (got < 0) {
        free(b);
        return NULL;
    }
    *n = (size_t)got;
    return b;
}

/* Decoding b must be rejected, or accepted only if it re-encodes to b. */
static void check_canonical_or_reject(const char *name, const unsigned char *b, size_t n)
{
    cap_t *c = NULL;
    cap_err_t e;
    int rc = cap_wire_decode(b, n, &ta.alloc, &c, &e);
    if (rc != CAP_OK) {
        CHECK_EQ_INT(rc, CAP_EDECODE);
        CHECK(c == NULL);
        return;
    }
    uint8_t *re = NULL;
    size_t rn = 0;
    CHECK_EQ_INT(cap_wire_encode_alloc(c, &ta.alloc, &re, &rn), CAP_OK);
    if (rn != n || memcmp(re, b, n) != 0) {
        fprintf(stderr, "%s (mutated, %zu bytes): accepted but not canonical\n", name, n);
        CHECK(0);
    }
    if (re) ta.alloc.deallocate(ta.alloc.ctx, re, rn);
    cap_release(c);
}

static long inline_lengths_checked;

/* vectors/README.md: the inline form of the concatenated page bytes, for any
 * length from max(last non-zero byte + 1, (pages-1)*page_size + 1) to
 * pages*page_size, has the listed hash. Returns 1 if checked, 0 if skipped
 * (a Missing page). */
static int check_inline_rule(const char *name, const cap_t *c, const uint8_t want[32])
{
    uint32_t ps = cap_data_page_size(c);
    uint64_t pages = cap_data_page_count(c);
    for (uint64_t i = 0; i < pages; i++)
        if (cap_data_page_state(c, i) == CAP_PAGE_MISSING) return 0;
    CHECK(pages > 0);
    if (!pages) return 0;
    size_t total = (size_t)pages * ps;
    uint8_t *flat = calloc(1, total);
    for (uint64_t i = 0; i < pages; i++) {
        const uint8_t *p = cap_data_page_bytes(c, i);
        if (cap_data_page_state(c, i) == CAP_PAGE_LOADED) {
            CHECK(p != NULL);
            if (p) memcpy(flat + i * ps, p, ps);
        } else {
            CHECK(p == NULL);
        }
    }
    size_t nz = total;
    while (nz > 0 && flat[nz - 1] == 0) nz--;
    size_t lo = (size_t)(pages - 1) * ps + 1;
    if (nz > lo) lo = nz;
    size_t hi = total;
    /* Every length when the range is small, else both ends and a spread. */
    size_t step = (hi - lo) / 300 + 1;
    int bad = 0;
    for (size_t len = lo;; len = (len + step > hi && len != hi) ? hi : len + step) {
        cap_t *in = NULL;
        int rc = cap_data_new_inline(&in, &ta.alloc, ps, flat, len);
        CHECK_EQ_INT(rc, CAP_OK);
        if (rc == CAP_OK) {
            CHECK_EQ_INT(cap_data_page_count(in), pages);
            CHECK_EQ_INT(cap_data_page_state(in, pages - 1), CAP_PAGE_LOADED);
            cap_hash_t h;
            CHECK_EQ_INT(cap_hash(in, &h), CAP_OK);
            if (memcmp(h.bytes, want, 32) != 0 && bad++ < 3)
                fprintf(stderr, "%s: inline form of %zu bytes hashes differently\n", name, len);
            inline_lengths_checked++;
            cap_release(in);
        }
        if (len == hi) break;
    }
    CHECK_EQ_INT(bad, 0);
    /* One byte fewer than the range makes fewer pages (or another non-zero
     * byte set): must not claim the same identity when it drops a page. */
    if (lo == (size_t)(pages - 1) * ps + 1 && pages > 1) {
        cap_t *in = NULL;
        CHECK_EQ_INT(cap_data_new_inline(&in, &ta.alloc, ps, flat, lo - 1), CAP_OK);
        CHECK_EQ_INT(cap_data_page_count(in), pages - 1);
        cap_release(in);
    }
    free(flat);
    return 1;
}

int main(int argc, char **argv)
{
    /* CAP_EINVAL only for a SHA-NI request this CPU cannot run (the best
     * kernel it has runs instead). */
    int selected = cap_sha256_select_from_env();
    CHECK(selected == CAP_OK || !cap_sha256_cpu_has_shani_avx());
    char path[4096];
    check_data_path(argc, argv, "vectors/caps.txt", path, sizeof path);
    test_alloc_init(&ta);
    collect_image_reasons();

    line_reader_t lr;
    if (line_reader_open(&lr, path) != 0) {
        fprintf(stderr, "cannot open %s\n", path);
        return 2;
    }
    int positive = 0, reject = 0, inline_checked = 0, inline_skipped = 0, malformed = 0;
    int kinds[5] = {0};
    char *line;
    while ((line = line_reader_next(&lr)) != NULL) {
        if (line[0] == '#' || line[strspn(line, " \t")] == 0) continue;
        char *save = NULL;
        char *name = strtok_r(line, " \t", &save);
        char *expect = strtok_r(NULL, " \t", &save);
        char *hex = strtok_r(NULL, " \t", &save);
        if (!name || !expect || !hex || strtok_r(NULL, " \t", &save)) {
            malformed++;
            continue;
        }
        size_t n;
        unsigned char *wire = unhex(hex, &n);
        if (!wire) {
            fprintf(stderr, "%s: bad hex\n", name);
            malformed++;
            continue;
        }
        cap_t *c = NULL;
        cap_err_t e;
        memset(&e, 0x5a, sizeof e);
        int rc = cap_wire_decode(wire, n, &ta.alloc, &c, &e);

        if (strcmp(expect, "reject") == 0) {
            reject++;
            if (rc != CAP_EDECODE) fprintf(stderr, "%s: not rejected (rc %d)\n", name, rc);
            CHECK_EQ_INT(rc, CAP_EDECODE);
            CHECK(c == NULL);
            CHECK_EQ_INT(e.code, CAP_EDECODE);
            CHECK(e.what != NULL);
            CHECK(e.offset <= n);
            if (rc == CAP_EDECODE && e.what) {
                char msg[256];
                cap_err_format(&e, msg, sizeof msg);
                CHECK(strstr(msg, e.what) != NULL);
                if (ends_with(name, "_PageSizeMismatch")) {
                    CHECK(strcmp(e.what, "PageSizeMismatch") == 0);
                } else if (ends_with(name, "_ImageConvertFailed")) {
                    if (!is_image_reason(e.what))
                        fprintf(stderr, "%s: '%s' is not an image reason\n", name, e.what);
                    CHECK(is_image_reason(e.what));
                } else {
                    CHECK(!is_image_reason(e.what));
                    CHECK(strcmp(e.what, "PageSizeMismatch") != 0);
                }
            }
            cap_release(c);
            CHECK(test_alloc_clean(&ta));
            free(wire);
            continue;
        }

        positive++;
        unsigned char want[32];
        CHECK_EQ_INT(hex_decode(expect, want, sizeof want), 32);
        if (rc != CAP_OK) {
            char msg[256];
            cap_err_format(&e, msg, sizeof msg);
            fprintf(stderr, "%s: decode failed: %s\n", name, msg);
            CHECK_EQ_INT(rc, CAP_OK);
            free(wire);
            continue;
        }
        CHECK(n > 0 && (cap_kind_t)wire[0] == cap_kind(c));
        if (wire[0] < 5) kinds[wire[0]]++;
        CHECK(cap_is_writable(c));
        CHECK(!cap_has_refs(c));
        CHECK(cap_allocator(c) == &ta.alloc);

        cap_hash_t h;
        CHECK_EQ_INT(cap_hash(c, &h), CAP_OK);
        if (memcmp(h.bytes, want, 32) != 0) {
            char hx[65];
            hex_encode(h.bytes, 32, hx);
            fprintf(stderr, "%s: cap hash %s, want %s\n", name, hx, expect);
            CHECK(0);
        }

        size_t sz = 0;
        CHECK_EQ_INT(cap_wire_size(c, &sz), CAP_OK);
        CHECK_EQ_INT(sz, n);
        uint8_t *buf = malloc(n + 1);
        size_t written = 0;
        CHECK_EQ_INT(cap_wire_encode(c, buf, n - 1, &written), CAP_EINVAL);
        CHECK_EQ_INT(cap_wire_encode(c, buf, n + 1, &written), CAP_OK);
        CHECK_EQ_INT(written, n);
        if (written != n || memcmp(buf, wire, n) != 0) {
            fprintf(stderr, "%s: re-encoding differs\n", name);
            CHECK(0);
        }
        free(buf);
        uint8_t *re = NULL;
        size_t rn = 0;
        CHECK_EQ_INT(cap_wire_encode_alloc(c, &ta.alloc, &re, &rn), CAP_OK);
        CHECK_EQ_INT(rn, n);
        if (re && rn == n) CHECK_MEM(re, wire, n);

        /* decode(encode(x)) == x */
        cap_t *c2 = NULL;
        if (re) {
            CHECK_EQ_INT(cap_wire_decode(re, rn, &ta.alloc, &c2, NULL), CAP_OK);
            CHECK(c2 && cap_equal(c, c2));
            ta.alloc.deallocate(ta.alloc.ctx, re, rn);
        }
        cap_release(c2);

        if (strncmp(name, "data_inline_", 12) == 0) {
            CHECK_EQ_INT(cap_kind(c), CAP_KIND_DATA);
            if (check_inline_rule(name, c, want))
                inline_checked++;
            else
                inline_skipped++;
        }
        cap_release(c);

        /* One byte more, one byte less. */
        unsigned char *m = malloc(n + 1);
        memcpy(m, wire, n);
        m[n] = 0;
        check_canonical_or_reject(name, m, n + 1);
        m[n] = 0xff;
        check_canonical_or_reject(name, m, n + 1);
        check_canonical_or_reject(name, m, n - 1);
        free(m);

        CHECK(test_alloc_clean(&ta));
        free(wire);
    }
    line_reader_close(&lr);

    printf("caps.txt: %d positive, %d reject, %d malformed; data_inline: %d checked (%ld lengths), %d "
           "skipped (Missing pages)\n",
           positive, reject, malformed, inline_checked, inline_lengths_checked, inline_skipped);
    CHECK_EQ_INT(positive, 303);
    CHECK_EQ_INT(reject, 64);
    CHECK_EQ_INT(malformed, 0);
    CHECK(inline_checked >= 3);
    CHECK(inline_skipped >= 1);
    for (int k = 0; k < 5; k++) CHECK(kinds[k] >= 40);
    CHECK(test_alloc_clean(&ta));
    return check_done("test_vectors");
}
