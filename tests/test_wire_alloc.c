/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The decoder under allocation failure, and its memory bound.
 *
 * For a sample of caps.txt lines of every kind (a large Data cap included),
 * fail the 1st, 2nd, ... allocation of decode in turn (and, separately, every
 * allocation from the n-th on): each failing run returns CAP_ENOMEM with
 * nothing returned and nothing leaked, until a run meets no failure and
 * succeeds. encode_alloc likewise.
 *
 * The memory bound: the peak of live bytes while decoding every vector line,
 * and some adversarial inputs (many tiny elements), stays within a small
 * multiple of the input length. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/capstore.h"
#include "check.h"
#include "test_alloc.h"

static test_alloc_t ta;

/* A wrapper over the counting allocator that records the peak of live bytes. */
typedef struct peak {
    cap_alloc_t alloc;
    long long live, peak;
} peak_t;
static peak_t pk;

static void *pk_allocate(void *ctx, size_t n)
{
    peak_t *p = ctx;
    void *r = ta.alloc.allocate(ta.alloc.ctx, n);
    if (r) {
        p->live += (long long)n;
        if (p->live > p->peak) p->peak = p->live;
    }
    return r;
}
static void *pk_reallocate(void *ctx, void *ptr, size_t old_n, size_t n)
{
    peak_t *p = ctx;
    void *r = ta.alloc.reallocate(ta.alloc.ctx, ptr, old_n, n);
    if (r) {
        /* Count the moment both blocks may exist. */
        long long both = p->live + (long long)n;
        if (both > p->peak) p->peak = both;
        p->live += (long long)n - (long long)(ptr ? old_n : 0);
    }
    return r;
}
static void pk_deallocate(void *ctx, void *ptr, size_t n)
{
    peak_t *p = ctx;
    if (ptr) p->live -= (long long)n;
    ta.alloc.deallocate(ta.alloc.ctx, ptr, n);
}

typedef struct sample {
    char *name;
    unsigned char *wire;
    size_t n;
    int reject;
} sample_t;

#define MAX_LINES 512
static sample_t lines[MAX_LINES];
static int n_lines;

static void load(const char *path)
{
    line_reader_t lr;
    if (line_reader_open(&lr, path) != 0) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    char *line;
    while ((line = line_reader_next(&lr)) != NULL && n_lines < MAX_LINES) {
        if (line[0] == '#' || line[strspn(line, " \t")] == 0) continue;
        char *save = NULL;
        char *name = strtok_r(line, " \t", &save);
        char *expect = strtok_r(NULL, " \t", &save);
        char *hex = strtok_r(NULL, " \t", &save);
        if (!name || !expect || !hex) continue;
        size_t cap = strlen(hex) / 2 + 1;
        unsigned char *b = malloc(cap);
        long got = hex_decode(hex, b, cap);
        CHECK(got >= 0);
        if (got < 0) {
            free(b);
            continue;
        }
        lines[n_lines].name = strdup(name);
        lines[n_lines].wire = b;
        lines[n_lines].n = (size_t)got;
        lines[n_lines].reject = strcmp(expect, "reject") == 0;
        n_lines++;
    }
    line_reader_close(&lr);
}

static int is_sampled(const sample_t *s, int index)
{
    static const char *const picks[] = {
        "type_ff_chain", "cnode_sl8_full", "cnode_sl16_64_spread", "cnode_sl0_empty",
        "data_ps65536_one_loaded", "data_ps4096_mixed_L_E_M", "data_inline_len5000_ps4096",
        "data_inline_len5000_ps4096_as_missing_roots", "data_ps32_three_empty", "instance_minimal",
        "instance_overlays_3", "instance_overlay_1000_bytes", "image_full", "image_endpoints_64",
        "image_pinned_initial", "image_empty_yield_some_max"};
    if (s->reject) return 0;
    for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++)
        if (strcmp(s->name, picks[i]) == 0) return 1;
    return strncmp(s->name, "rand_", 5) == 0 && index % 9 == 0;
}

/* Every allocation failure point of decoding `s`. Returns the number of
 * allocations a successful decode made. */
static long fail_every_point(const sample_t *s, int all_after)
{
    ta.fail_all_after = all_after;
    for (long k = 1; k < 100000; k++) {
        test_alloc_fail_at(&ta, k);
        cap_t *c = NULL;
        cap_err_t e;
        int rc = cap_wire_decode(s->wire, s->n, &ta.alloc, &c, &e);
        long made = ta.count;
        if (rc == CAP_OK) {
            CHECK(c != NULL);
            /* Success means the failure point was never reached. */
            CHECK(made < k);
            cap_hash_t h;
            test_alloc_fail_at(&ta, 0);
            CHECK_EQ_INT(cap_hash(c, &h), CAP_OK);
            cap_release(c);
            CHECK(test_alloc_clean(&ta));
            ta.fail_all_after = 0;
            return made;
        }
        if (rc != CAP_ENOMEM) fprintf(stderr, "%s: fail_at %ld: rc %d\n", s->name, k, rc);
        CHECK_EQ_INT(rc, CAP_ENOMEM);
        CHECK_EQ_INT(e.code, CAP_ENOMEM);
        CHECK(c == NULL);
        if (!test_alloc_clean(&ta)) {
            fprintf(stderr, "%s: leak after failing allocation %ld\n", s->name, k);
            CHECK(0);
            break;
        }
    }
    ta.fail_all_after = 0;
    CHECK(0); /* never succeeded */
    return -1;
}

static void test_alloc_failures(void)
{
    int sampled = 0, kinds[5] = {0};
    long total_points = 0;
    for (int i = 0; i < n_lines; i++) {
        const sample_t *s = &lines[i];
        if (!is_sampled(s, i)) continue;
        sampled++;
        if (s->n && s->wire[0] < 5) kinds[s->wire[0]]++;
        long made = fail_every_point(s, 0);
        long made2 = fail_every_point(s, 1);
        CHECK_EQ_INT(made, made2);
        CHECK(made >= 1);
        total_points += made;

        /* encode_alloc: its one allocation fails cleanly. */
        cap_t *c = NULL;
        test_alloc_fail_at(&ta, 0);
        CHECK_EQ_INT(cap_wire_decode(s->wire, s->n, &ta.alloc, &c, NULL), CAP_OK);
        if (c) {
            uint8_t *buf = NULL;
            size_t n = 0;
            test_alloc_fail_at(&ta, 1);
            CHECK_EQ_INT(cap_wire_encode_alloc(c, &ta.alloc, &buf, &n), CAP_ENOMEM);
            CHECK(buf == NULL);
            test_alloc_fail_at(&ta, 0);
            CHECK_EQ_INT(cap_wire_encode_alloc(c, &ta.alloc, &buf, &n), CAP_OK);
            CHECK(n == s->n && buf && memcmp(buf, s->wire, n) == 0);
            if (buf) ta.alloc.deallocate(ta.alloc.ctx, buf, n);
            cap_release(c);
        }
        CHECK(test_alloc_clean(&ta));
    }
    printf("allocation failures: %d vector lines, %ld failure points each run twice\n", sampled,
           total_points);
    CHECK(sampled >= 20);
    for (int k = 0; k < 5; k++) CHECK(kinds[k] >= 2);
}

/* Rejections must not depend on the allocator: with every allocation failing,
 * a reject line still gets CAP_EDECODE (the input is checked before anything
 * is built). */
static void test_rejects_need_no_memory(void)
{
    int n = 0;
    for (int i = 0; i < n_lines; i++) {
        if (!lines[i].reject) continue;
        ta.fail_all_after = 1;
        test_alloc_fail_at(&ta, 1);
        cap_t *c = NULL;
        int rc = cap_wire_decode(lines[i].wire, lines[i].n, &ta.alloc, &c, NULL);
        if (rc != CAP_EDECODE) fprintf(stderr, "%s: rc %d with no memory\n", lines[i].name, rc);
        CHECK_EQ_INT(rc, CAP_EDECODE);
        CHECK(c == NULL);
        n++;
    }
    ta.fail_all_after = 0;
    test_alloc_fail_at(&ta, 0);
    CHECK(test_alloc_clean(&ta));
    CHECK_EQ_INT(n, 64);
}

static double worst_ratio;
static const char *worst_name;

static void measure(const char *name, const unsigned char *b, size_t n, int expect_ok)
{
    pk.live = pk.peak = 0;
    cap_t *c = NULL;
    int rc = cap_wire_decode(b, n, &pk.alloc, &c, NULL);
    if (expect_ok) CHECK_EQ_INT(rc, CAP_OK);
    /* Allowance for the cap header and the first small blocks. */
    double ratio = (double)pk.peak / (double)(n + 256);
    if (ratio > worst_ratio) {
        worst_ratio = ratio;
        worst_name = name;
    }
    if (pk.peak > 8 * (long long)n + 2048)
        fprintf(stderr, "%s: decoding %zu bytes peaked at %lld live bytes\n", name, n, pk.peak);
    CHECK(pk.peak <= 8 * (long long)n + 2048);
    cap_release(c);
    CHECK_EQ_INT(pk.live, 0);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void test_memory_bound(void)
{
    pk.alloc.allocate = pk_allocate;
    pk.alloc.reallocate = pk_reallocate;
    pk.alloc.deallocate = pk_deallocate;
    pk.alloc.ctx = &pk;
    test_alloc_fail_at(&ta, 0);
    for (int i = 0; i < n_lines; i++) measure(lines[i].name, lines[i].wire, lines[i].n, !lines[i].reject);

    /* Adversarial shapes: the most elements per input byte. */
    enum { K = 20000 };
    /* Data, K Empty pages of page_size 32: 5 input bytes each. */
    size_t n = 9 + 5 * (size_t)K;
    unsigned char *b = calloc(1, n);
    b[0] = 2;
    put32(b + 1, 32);
    put32(b + 5, 8);
    for (uint32_t i = 0; i < K; i++) put32(b + 9 + 4 * i, 4 * K + i);
    measure("adversarial: empty pages", b, n, 1);
    /* ... and Missing pages: 37 bytes each. */
    free(b);
    n = 9 + 37 * (size_t)K;
    b = calloc(1, n);
    b[0] = 2;
    put32(b + 1, 32);
    put32(b + 5, 8);
    for (uint32_t i = 0; i < K; i++) {
        put32(b + 9 + 4 * i, 4 * K + 33 * i);
        b[9 + 4 * K + 33 * i] = 2;
    }
    measure("adversarial: missing pages", b, n, 1);
    free(b);
    /* Instance with K empty overlays: 12 bytes each. */
    n = 225 + 12 * (size_t)K;
    b = calloc(1, n);
    b[0] = 0;
    b[65] = 1; /* root_cnode */
    put32(b + 97, 224);
    for (uint32_t i = 0; i < K; i++) {
        put32(b + 225 + 4 * i, 4 * K + 8 * i);
        put32(b + 225 + 4 * K + 8 * i + 4, 8);
    }
    measure("adversarial: empty overlays", b, n, 1);
    free(b);
    /* CNode of 65536 entries. */
    n = 6 + 36 * (size_t)65536;
    b = calloc(1, n);
    b[0] = 3;
    b[1] = 16;
    put32(b + 2, 5);
    for (uint32_t i = 0; i < 65536; i++) {
        put32(b + 6 + 36 * i, i);
        b[6 + 36 * i + 4] = 1;
    }
    measure("adversarial: full cnode", b, n, 1);
    free(b);
    /* Image of 64 endpoints and many mappings/slot entries. */
    n = 1 + 32 + 64 * 125 + 49 * (size_t)K + 1;
    b = calloc(1, n);
    b[0] = 1;
    uint32_t offs[8] = {32, 32, 32, 32, 32 + 64 * 125, 32 + 64 * 125 + 49 * K, 0, 0};
    offs[6] = offs[5];
    offs[7] = offs[5];
    for (int i = 0; i < 8; i++) put32(b + 1 + 4 * i, offs[i]);
    measure("adversarial: image mappings", b, n, 1);
    free(b);
    /* Claims that do not fit: a page table announcing 2^30 pages in 16 bytes. */
    unsigned char small[25] = {2, 32, 0, 0, 0, 8, 0, 0, 0};
    put32(small + 9, 0xfffffffcu);
    measure("adversarial: huge page count", small, sizeof small, 0);

    printf("memory bound: worst peak/(n+256) = %.2f (%s)\n", worst_ratio, worst_name ? worst_name : "-");
    CHECK(worst_ratio <= 8.0);
    CHECK(test_alloc_clean(&ta));
}

int main(int argc, char **argv)
{
    char path[4096];
    check_data_path(argc, argv, "vectors/caps.txt", path, sizeof path);
    test_alloc_init(&ta);
    load(path);
    CHECK_EQ_INT(n_lines, 367);
    test_alloc_failures();
    test_rejects_need_no_memory();
    test_memory_bound();
    for (int i = 0; i < n_lines; i++) {
        free(lines[i].name);
        free(lines[i].wire);
    }
    return check_done("test_wire_alloc");
}
