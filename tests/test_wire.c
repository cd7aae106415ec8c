/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The wire codec on caps built through the API:
 *   - round trips of random settled caps of every kind (decode(encode(x)) == x,
 *     same hash, encode(decode(b)) == b), and random mutations of their
 *     encodings (rejected, or accepted only as a canonical encoding);
 *   - hand-made reject cases for every rule, with the rule and the offset;
 *   - CAP_EUNSETTLED for caps holding a Ref, CAP_EINVAL for a short buffer and
 *     bad arguments. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap/cap_internal.h"
#include "capstore/capstore.h"
#include "check.h"
#include "test_rng.h"
#include "test_alloc.h"

static test_alloc_t ta;
#define A (&ta.alloc)

/* xorshift64* */
static test_rng_t rng = {0x9E3779B97F4A7C15ull};
static uint64_t rnd(void) { return test_rng_next(&rng); }
static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }
static void rnd_bytes(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd();
}
static cap_hash_t rnd_hash(int nonzero)
{
    cap_hash_t h;
    /* Some hashes are sparse, to exercise "zero but for one byte". */
    if (below(4) == 0) {
        memset(h.bytes, 0, 32);
        h.bytes[below(32)] = (uint8_t)(1 + below(255));
    } else {
        rnd_bytes(h.bytes, 32);
    }
    if (!nonzero && below(8) == 0) memset(h.bytes, 0, 32);
    if (nonzero && cap_hash_is_zero(&h)) h.bytes[0] = 1;
    return h;
}

/* Random caps --------------------------------------------------------------------- */

static cap_t *gen_type(void)
{
    cap_t *c = NULL;
    cap_hash_t h = rnd_hash(0);
    CHECK_EQ_INT(cap_type_new(&c, A, &h), CAP_OK);
    return c;
}

static cap_t *gen_cnode(void)
{
    cap_t *c = NULL;
    unsigned sl = (unsigned)below(17);
    CHECK_EQ_INT(cap_cnode_new(&c, A, sl), CAP_OK);
    if (!c) return NULL;
    uint64_t slots = 1ull << sl;
    size_t k = below(4) == 0 ? 0 : (size_t)below(slots < 40 ? slots + 1 : 40);
    for (size_t i = 0; i < k; i++) {
        cap_hash_t h = rnd_hash(1);
        cap_target_t t = cap_target_of_hash(&h);
        uint32_t slot = below(3) == 0 ? (uint32_t)(slots - 1) : (uint32_t)below(slots);
        CHECK_EQ_INT(cap_cnode_set(c, slot, &t), CAP_OK);
        if (below(6) == 0) CHECK_EQ_INT(cap_cnode_clear(c, (uint32_t)below(slots)), CAP_OK);
    }
    return c;
}

static cap_t *gen_data(void)
{
    cap_t *c = NULL;
    uint32_t ps = 32u << below(12);
    CHECK_EQ_INT(cap_data_new(&c, A, ps), CAP_OK);
    if (!c) return NULL;
    uint64_t pages = below(ps >= 16384 ? 3 : 7);
    CHECK_EQ_INT(cap_data_resize(c, pages), CAP_OK);
    uint8_t *buf = malloc(ps);
    for (uint64_t i = 0; i < pages; i++) {
        switch (below(4)) {
        case 0: break; /* Empty */
        case 1:
            memset(buf, 0, ps);
            if (below(2)) buf[below(ps)] = (uint8_t)rnd();
            CHECK_EQ_INT(cap_data_set_page(c, i, buf, ps, NULL), CAP_OK);
            break;
        case 2:
            rnd_bytes(buf, ps);
            CHECK_EQ_INT(cap_data_set_page(c, i, buf, ps, NULL), CAP_OK);
            break;
        default: {
            cap_hash_t h = rnd_hash(0);
            CHECK_EQ_INT(cap_data_set_page_missing(c, i, &h), CAP_OK);
        }
        }
    }
    free(buf);
    return c;
}

static cap_t *gen_instance(void)
{
    cap_t *c = NULL;
    cap_hash_t root = rnd_hash(1);
    cap_target_t t = cap_target_of_hash(&root);
    CHECK_EQ_INT(cap_instance_new(&c, A, &t), CAP_OK);
    if (!c || below(5) == 0) return c; /* sometimes all zero but root */
    cap_hash_t h = rnd_hash(0);
    CHECK_EQ_INT(cap_instance_set_image_hash_chain(c, &h), CAP_OK);
    h = rnd_hash(0);
    CHECK_EQ_INT(cap_instance_set_image_hash(c, &h), CAP_OK);
    CHECK_EQ_INT(cap_instance_set_mem_size(c, (uint32_t)rnd()), CAP_OK);
    for (unsigned r = 0; r < CAP_NUM_REGS; r++)
        CHECK_EQ_INT(cap_instance_set_reg(c, r, below(2) ? rnd() : below(3)), CAP_OK);
    CHECK_EQ_INT(cap_instance_set_pc(c, rnd()), CAP_OK);
    CHECK_EQ_INT(cap_instance_set_gas_remaining(c, rnd()), CAP_OK);
    size_t k = below(5);
    uint8_t bytes[80];
    for (size_t i = 0; i < k; i++) {
        size_t len = below(3) == 0 ? 0 : below(sizeof bytes + 1);
        rnd_bytes(bytes, len);
        CHECK_EQ_INT(cap_instance_add_overlay(c, (uint32_t)rnd(), bytes, len), CAP_OK);
    }
    return c;
}

static size_t gen_slot_entries(cap_slot_entry_t *v, size_t max)
{
    size_t n = below(max + 1);
    uint32_t slot = (uint32_t)below(4);
    for (size_t i = 0; i < n; i++) {
        v[i].slot = slot;
        v[i].cap_hash = rnd_hash(1);
        slot += 1 + (uint32_t)below(below(2) ? 3 : 100000);
    }
    return n;
}

static cap_t *gen_image(void)
{
    static uint8_t code[200], bitmask[25];
    static uint32_t jt[10];
    static cap_endpoint_t ep[CAP_MAX_ENDPOINTS];
    static cap_mapping_t map[4];
    static cap_slot_entry_t pin[5], ini[5];
    cap_image_desc_t d;
    memset(&d, 0, sizeof d);
    d.code_len = below(4) == 0 ? 0 : below(sizeof code + 1);
    rnd_bytes(code, d.code_len);
    d.code = code;
    d.bitmask_len = (d.code_len + 7) / 8;
    rnd_bytes(bitmask, d.bitmask_len);
    d.bitmask = bitmask;
    d.jump_table_len = d.code_len ? below(11) : 0;
    for (size_t i = 0; i < d.jump_table_len; i++)
        jt[i] = below(2) ? (uint32_t)(d.code_len - 1) : (uint32_t)below(d.code_len);
    d.jump_table = jt;
    d.endpoints_len = below(10) == 0 ? CAP_MAX_ENDPOINTS : below(4);
    for (size_t i = 0; i < d.endpoints_len; i++) {
        memset(&ep[i], 0, sizeof ep[i]);
        ep[i].entry_pc = rnd();
        ep[i].stack_top = rnd();
        ep[i].arg_cnode_slot = (uint32_t)rnd();
        ep[i].arg_cnode_size = (uint8_t)rnd();
        for (unsigned r = 0; r < CAP_NUM_REGS; r++) ep[i].initial_regs[r] = below(2) ? rnd() : 0;
    }
    d.endpoints = ep;
    d.mappings_len = below(5);
    for (size_t i = 0; i < d.mappings_len; i++) {
        memset(&map[i], 0, sizeof map[i]);
        map[i].start = rnd();
        map[i].size = rnd();
        map[i].source_path_len = (uint8_t)below(CAP_MAX_SOURCE_DEPTH + 1);
        for (unsigned k = 0; k < map[i].source_path_len; k++)
            map[i].source_path[k] = below(2) ? (uint32_t)rnd() : 0;
    }
    d.mappings = map;
    d.pinned_len = gen_slot_entries(pin, 5);
    d.pinned = pin;
    d.initial_len = gen_slot_entries(ini, 5);
    d.initial = ini;
    d.has_yield_marker = below(2);
    d.yield_marker_slot = d.has_yield_marker ? (below(2) ? (uint32_t)rnd() : 0xffffffffu) : 0;
    cap_t *c = NULL;
    cap_err_t e;
    int rc = cap_image_new(&c, A, &d, &e);
    CHECK_EQ_INT(rc, CAP_OK);
    if (rc) fprintf(stderr, "gen_image: %s\n", e.what ? e.what : "?");
    return c;
}

static cap_t *gen(int kind)
{
    switch (kind) {
    case CAP_KIND_INSTANCE: return gen_instance();
    case CAP_KIND_IMAGE: return gen_image();
    case CAP_KIND_DATA: return gen_data();
    case CAP_KIND_CNODE: return gen_cnode();
    default: return gen_type();
    }
}

/* Decoding b is rejected (with a rule and an offset within b), or accepted
 * only if b is its canonical encoding. Returns 1 if accepted. */
static long mut_accepted, mut_rejected;
static int canonical_or_reject(const uint8_t *b, size_t n)
{
    cap_t *c = NULL;
    cap_err_t e;
    int rc = cap_wire_decode(b, n, A, &c, &e);
    if (rc != CAP_OK) {
        CHECK_EQ_INT(rc, CAP_EDECODE);
        CHECK_EQ_INT(e.code, CAP_EDECODE);
        CHECK(e.what != NULL);
        CHECK(e.offset <= n);
        CHECK(c == NULL);
        mut_rejected++;
        return 0;
    }
    uint8_t *re = NULL;
    size_t rn = 0;
    CHECK_EQ_INT(cap_wire_encode_alloc(c, A, &re, &rn), CAP_OK);
    CHECK(rn == n && re && memcmp(re, b, n) == 0);
    if (re) A->deallocate(A->ctx, re, rn);
    cap_hash_t h;
    CHECK_EQ_INT(cap_hash(c, &h), CAP_OK);
    cap_release(c);
    mut_accepted++;
    return 1;
}

static void mutate_and_check(const uint8_t *wire, size_t n)
{
    uint8_t *m = malloc(n + 8);
    for (int round = 0; round < 24; round++) {
        size_t mn = n;
        memcpy(m, wire, n);
        switch (below(6)) {
        case 0: /* flip a bit */
            m[below(n)] ^= (uint8_t)(1u << below(8));
            break;
        case 1: /* set a byte */
            m[below(n)] = (uint8_t)rnd();
            break;
        case 2: /* truncate */
            mn = below(n);
            break;
        case 3: { /* insert a byte */
            size_t at = below(n + 1);
            memmove(m + at + 1, m + at, n - at);
            m[at] = (uint8_t)rnd();
            mn = n + 1;
            break;
        }
        case 4: { /* delete a byte */
            size_t at = below(n);
            memmove(m + at, m + at + 1, n - at - 1);
            mn = n - 1;
            break;
        }
        default: { /* nudge a 32-bit little-endian word (offsets, counts) */
            if (n < 5) break;
            size_t at = 1 + below(n - 4);
            uint32_t v = (uint32_t)m[at] | (uint32_t)m[at + 1] << 8 | (uint32_t)m[at + 2] << 16 |
                         (uint32_t)m[at + 3] << 24;
            v += (uint32_t)(int32_t)(below(9) - 4);
            m[at] = (uint8_t)v;
            m[at + 1] = (uint8_t)(v >> 8);
            m[at + 2] = (uint8_t)(v >> 16);
            m[at + 3] = (uint8_t)(v >> 24);
        }
        }
        canonical_or_reject(m, mn);
    }
    free(m);
}

static void test_round_trips(void)
{
    int per_kind[5] = {0};
    for (int iter = 0; iter < 1500; iter++) {
        int kind = iter % 5;
        cap_t *c = gen(kind);
        if (!c) continue;
        size_t n = 0;
        CHECK_EQ_INT(cap_wire_size(c, &n), CAP_OK);
        uint8_t *buf = malloc(n + 16);
        size_t w = 0;
        CHECK_EQ_INT(cap_wire_encode(c, buf, n + 16, &w), CAP_OK);
        CHECK_EQ_INT(w, n);
        CHECK_EQ_INT(buf[0], kind);
        uint8_t *buf2 = NULL;
        size_t n2 = 0;
        CHECK_EQ_INT(cap_wire_encode_alloc(c, A, &buf2, &n2), CAP_OK);
        CHECK(n2 == n && buf2 && memcmp(buf, buf2, n) == 0);
        if (buf2) A->deallocate(A->ctx, buf2, n2);

        cap_t *d = NULL;
        cap_err_t e;
        int rc = cap_wire_decode(buf, n, A, &d, &e);
        CHECK_EQ_INT(rc, CAP_OK);
        if (rc) {
            char msg[200];
            cap_err_format(&e, msg, sizeof msg);
            fprintf(stderr, "round trip of kind %d: %s\n", kind, msg);
        } else {
            CHECK(cap_equal(c, d));
            CHECK(cap_is_writable(d));
            cap_hash_t h1, h2;
            CHECK_EQ_INT(cap_hash(c, &h1), CAP_OK);
            CHECK_EQ_INT(cap_hash(d, &h2), CAP_OK);
            CHECK_MEM(h1.bytes, h2.bytes, 32);
            size_t w2 = 0;
            uint8_t *buf3 = malloc(n);
            CHECK_EQ_INT(cap_wire_encode(d, buf3, n, &w2), CAP_OK);
            CHECK(w2 == n && memcmp(buf, buf3, n) == 0);
            free(buf3);
            per_kind[kind]++;
        }
        cap_release(d);
        if (n < 20000) mutate_and_check(buf, n);
        free(buf);
        cap_release(c);
        CHECK(test_alloc_clean(&ta));
    }
    for (int k = 0; k < 5; k++) CHECK_EQ_INT(per_kind[k], 300);
    printf("round trips: 1500 caps; mutations: %ld accepted (canonical), %ld rejected\n", mut_accepted,
           mut_rejected);
    CHECK(mut_rejected > 10000);
}

/* Page states and the decoded cap ----------------------------------------------- */

static void test_page_states_kept(void)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_data_new(&c, A, 32), CAP_OK);
    CHECK_EQ_INT(cap_data_resize(c, 4), CAP_OK);
    uint8_t zeros[32] = {0};
    CHECK_EQ_INT(cap_data_set_page(c, 1, zeros, 32, NULL), CAP_OK); /* Loaded zeros */
    cap_hash_t z;
    memset(z.bytes, 0, 32);
    CHECK_EQ_INT(cap_data_set_page_missing(c, 2, &z), CAP_OK); /* Missing(zero page root) */
    uint8_t *b = NULL;
    size_t n = 0;
    CHECK_EQ_INT(cap_wire_encode_alloc(c, A, &b, &n), CAP_OK);
    /* 1 + 8 + 16 offsets + (1) + (1+32) + (1+32) + (1) */
    CHECK_EQ_INT(n, 1 + 8 + 16 + 1 + 33 + 33 + 1);
    cap_t *d = NULL;
    CHECK_EQ_INT(cap_wire_decode(b, n, A, &d, NULL), CAP_OK);
    if (d) {
        CHECK_EQ_INT(cap_data_page_state(d, 0), CAP_PAGE_EMPTY);
        CHECK_EQ_INT(cap_data_page_state(d, 1), CAP_PAGE_LOADED);
        CHECK_EQ_INT(cap_data_page_state(d, 2), CAP_PAGE_MISSING);
        CHECK_EQ_INT(cap_data_page_state(d, 3), CAP_PAGE_EMPTY);
        CHECK(cap_equal(c, d));
    }
    cap_release(d);
    A->deallocate(A->ctx, b, n);
    cap_release(c);
    CHECK(test_alloc_clean(&ta));
}

/* Reject cases ----------------------------------------------------------------------- */

static int n_rejects;

static void expect_reject_at(const char *label, const uint8_t *b, size_t n, const char *rule, uint64_t at,
                             int line)
{
    cap_t *c = NULL;
    cap_err_t e;
    memset(&e, 0x77, sizeof e);
    int rc = cap_wire_decode(b, n, A, &c, &e);
    n_rejects++;
    int ok = rc == CAP_EDECODE && e.code == CAP_EDECODE && e.what && c == NULL && e.offset == at &&
             (!rule || strcmp(e.what, rule) == 0);
    if (!ok) {
        check_failures++;
        fprintf(stderr, "test_wire.c:%d: %s: rc %d, rule '%s' at %llu; want '%s' at %llu\n", line, label, rc,
                rc == CAP_EDECODE && e.what ? e.what : "-", (unsigned long long)(rc == CAP_EDECODE ? e.offset : 0),
                rule ? rule : "(image reason)", (unsigned long long)at);
    }
    check_count++;
    cap_release(c);
    CHECK(test_alloc_clean(&ta));
}
#define REJECT(label, b, n, rule, at) expect_reject_at(label, b, n, rule, at, __LINE__)

/* A little byte builder. */
typedef struct bb {
    uint8_t b[1 << 15];
    size_t n;
} bb_t;
static bb_t B;
static void bb_reset(uint8_t sel)
{
    B.n = 0;
    B.b[B.n++] = sel;
}
static void bb_u8(uint8_t v) { B.b[B.n++] = v; }
static void bb_u32(uint32_t v)
{
    for (int i = 0; i < 4; i++) B.b[B.n++] = (uint8_t)(v >> (8 * i));
}
static void bb_u64(uint64_t v)
{
    for (int i = 0; i < 8; i++) B.b[B.n++] = (uint8_t)(v >> (8 * i));
}
static void bb_fill(uint8_t v, size_t n)
{
    memset(B.b + B.n, v, n);
    B.n += n;
}
static void bb_set32(size_t at, uint32_t v)
{
    for (int i = 0; i < 4; i++) B.b[at + i] = (uint8_t)(v >> (8 * i));
}
static int accepts(void)
{
    cap_t *c = NULL;
    int rc = cap_wire_decode(B.b, B.n, A, &c, NULL);
    cap_release(c);
    return rc == CAP_OK;
}

static void test_rejects_basic(void)
{
    static const uint8_t one = 4;
    REJECT("empty", &one, 0, "empty_input", 0);
    REJECT("empty (NULL)", NULL, 0, "empty_input", 0);
    for (unsigned s = 5; s < 256; s += 50) {
        uint8_t x[33] = {(uint8_t)s};
        REJECT("selector", x, 33, "unknown_selector", 0);
        REJECT("selector alone", x, 1, "unknown_selector", 0);
    }
    /* Type */
    bb_reset(4);
    bb_fill(0x11, 32);
    CHECK(accepts());
    REJECT("type 31", B.b, 32, "truncated", 1);
    REJECT("type 0", B.b, 1, "truncated", 1);
    bb_u8(0);
    REJECT("type 33", B.b, B.n, "trailing_bytes", 33);
}

static void cnode_two(void)
{
    bb_reset(3);
    bb_u8(8);
    bb_u32(5);
    bb_u32(1);
    bb_fill(0x11, 32);
    bb_u32(2);
    bb_fill(0x22, 32);
}

static void test_rejects_cnode(void)
{
    cnode_two();
    CHECK(accepts());
    REJECT("cnode payload 0", B.b, 1, "truncated", 1);
    REJECT("cnode payload 1", B.b, 2, "truncated", 2);
    REJECT("cnode payload 4", B.b, 5, "truncated", 2);
    REJECT("cnode partial entry", B.b, B.n - 1, "list_partial_element", 42);
    REJECT("cnode partial entry 2", B.b, 7, "list_partial_element", 6);
    B.b[B.n++] = 0;
    REJECT("cnode trailing", B.b, B.n, "list_partial_element", 78);
    cnode_two();
    B.b[1] = 17;
    REJECT("size_log 17", B.b, B.n, "cnode_size_log_over_16", 1);
    B.b[1] = 16;
    CHECK(accepts());
    B.b[1] = 1;
    REJECT("slot 2 in size_log 1", B.b, B.n, "SlotOutOfRange", 42);
    B.b[1] = 0;
    REJECT("slot 1 in size_log 0", B.b, B.n, "SlotOutOfRange", 6);
    cnode_two();
    bb_set32(2, 4);
    REJECT("offset 4", B.b, B.n, "offset_not_at_fixed_end", 2);
    bb_set32(2, 6);
    REJECT("offset 6", B.b, B.n, "offset_not_at_fixed_end", 2);
    bb_set32(2, 78);
    REJECT("offset past end", B.b, B.n, "offset_out_of_bounds", 2);
    bb_set32(2, 77);
    REJECT("offset at end", B.b, B.n, "offset_not_at_fixed_end", 2);
    cnode_two();
    bb_set32(42, 1);
    REJECT("duplicate", B.b, B.n, "cnode_slots_not_increasing", 42);
    bb_set32(42, 0);
    REJECT("unsorted", B.b, B.n, "cnode_slots_not_increasing", 42);
    cnode_two();
    memset(B.b + 46, 0, 32);
    REJECT("zero target", B.b, B.n, "zero_target", 46);
    B.b[77] = 1;
    CHECK(accepts()); /* only the last byte set: not zero */
    B.b[46] = 1;
    B.b[77] = 0;
    CHECK(accepts());
    /* 65537 entries: over the list limit (size_log 16 allows 65536 slots). */
    {
        size_t n = 6 + 65537 * 36;
        uint8_t *b = calloc(1, n);
        b[0] = 3;
        b[1] = 16;
        b[2] = 5;
        for (size_t i = 0; i < 65537; i++) {
            b[6 + i * 36] = (uint8_t)i;
            b[6 + i * 36 + 1] = (uint8_t)(i >> 8);
            b[6 + i * 36 + 4] = 1;
        }
        REJECT("65537 entries", b, n, "list_over_limit", 6 + 65536 * 36);
        /* 65536 entries, slots 0..65535: the full cnode is fine. */
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_wire_decode(b, n - 36, A, &c, NULL), CAP_OK);
        if (c) CHECK_EQ_INT(cap_cnode_count(c), 65536);
        cap_release(c);
        free(b);
    }
}

/* page_size 32, three pages: Empty, Loaded(32 x 0xab), Missing(0x11..). */
static void data_three(void)
{
    bb_reset(2);
    bb_u32(32);
    bb_u32(8);
    bb_u32(12);
    bb_u32(13);
    bb_u32(46);
    bb_u8(0);
    bb_u8(1);
    bb_fill(0xab, 32);
    bb_u8(2);
    bb_fill(0x11, 32);
}

static void test_rejects_data(void)
{
    data_three();
    CHECK(accepts());
    REJECT("data payload 3", B.b, 4, "truncated", 1);
    REJECT("data payload 7", B.b, 8, "truncated", 5);
    REJECT("page table 3 bytes", B.b, 12, "truncated", 9);
    REJECT("missing root 31", B.b, B.n - 1, "truncated", 56);
    uint32_t bad_ps[] = {0, 1, 16, 31, 33, 48, 100, 4095, 4097, 65535, 131072, 0x80000000u};
    for (size_t i = 0; i < sizeof bad_ps / sizeof bad_ps[0]; i++) {
        bb_set32(1, bad_ps[i]);
        REJECT("page_size", B.b, B.n, "page_size_invalid", 1);
    }
    data_three();
    bb_set32(5, 9);
    REJECT("container offset 9", B.b, B.n, "offset_not_at_fixed_end", 5);
    bb_set32(5, 4000);
    REJECT("container offset past end", B.b, B.n, "offset_out_of_bounds", 5);
    data_three();
    bb_set32(9, 0);
    REJECT("first page offset 0", B.b, B.n, "offset_not_at_fixed_end", 9);
    bb_set32(9, 10);
    REJECT("first page offset 10", B.b, B.n, "offset_not_at_fixed_end", 9);
    bb_set32(9, 8); /* two pages: the first one starts inside the table, at byte 0x2e */
    REJECT("first page offset 8", B.b, B.n, "page_selector_unknown", 17);
    data_three();
    bb_set32(9, 1000);
    REJECT("first page offset past end", B.b, B.n, "offset_out_of_bounds", 9);
    data_three();
    bb_set32(13, 11);
    REJECT("decreasing", B.b, B.n, "offsets_out_of_order", 13);
    bb_set32(13, 200);
    REJECT("past end", B.b, B.n, "offset_out_of_bounds", 13);
    data_three();
    bb_set32(13, 12);
    REJECT("empty element", B.b, B.n, "truncated", 21);
    data_three();
    bb_set32(17, 47);
    REJECT("Loaded 33 bytes", B.b, B.n, "PageSizeMismatch", 23);
    bb_set32(17, 45);
    REJECT("Loaded 31 bytes", B.b, B.n, "PageSizeMismatch", 23);
    data_three();
    B.b[22] = 0;
    REJECT("Empty page with bytes", B.b, B.n, "trailing_bytes", 23);
    data_three();
    B.b[22] = 3;
    REJECT("page selector 3", B.b, B.n, "page_selector_unknown", 22);
    data_three();
    bb_u8(0);
    REJECT("missing root 33", B.b, B.n, "trailing_bytes", 88);
    /* Loaded of page_size 65536: the List[uint8, 65536] limit is exactly reached. */
    {
        size_t n = 1 + 8 + 4 + 1 + 65536;
        uint8_t *b = calloc(1, n + 1);
        b[0] = 2;
        b[3] = 1; /* 65536 */
        b[5] = 8;
        b[9] = 4;
        b[13] = 1;
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_wire_decode(b, n, A, &c, NULL), CAP_OK);
        cap_release(c);
        REJECT("Loaded 65537 of 65536", b, n + 1, "PageSizeMismatch", 14);
        free(b);
    }
}

static void instance_base(void)
{
    bb_reset(0);
    bb_fill(0xa1, 32);
    bb_fill(0xa2, 32);
    bb_fill(0xa3, 32);
    bb_u32(224);
    bb_u32(0x12345678);
    for (int r = 0; r < CAP_NUM_REGS; r++) bb_u64((uint64_t)r * 0x1111);
    bb_u64(7);
    bb_u64(9);
}

static void test_rejects_instance(void)
{
    instance_base();
    CHECK_EQ_INT(B.n, 225);
    CHECK(accepts());
    REJECT("instance 0", B.b, 1, "truncated", 1);
    REJECT("instance 50", B.b, 51, "truncated", 33);
    REJECT("instance 99", B.b, 100, "truncated", 97);
    REJECT("instance 100", B.b, 101, "truncated", 101);
    REJECT("instance 200", B.b, 201, "truncated", 105);
    REJECT("instance 223", B.b, 224, "truncated", 217);
    memset(B.b + 65, 0, 32);
    REJECT("zero root", B.b, B.n, "zero_target", 65);
    instance_base();
    bb_set32(97, 225);
    REJECT("offset past end", B.b, B.n, "offset_out_of_bounds", 97);
    bb_set32(97, 220);
    REJECT("offset 220", B.b, B.n, "offset_not_at_fixed_end", 97);
    instance_base();
    bb_u8(0);
    REJECT("trailing byte, no overlays", B.b, B.n, "truncated", 225);
    /* two overlays: {start 5, bytes 01 02 03}, {start 6, bytes -} */
    instance_base();
    bb_u32(8);
    bb_u32(19);
    bb_u32(5);
    bb_u32(8);
    bb_u8(1);
    bb_u8(2);
    bb_u8(3);
    bb_u32(6);
    bb_u32(8);
    CHECK_EQ_INT(B.n, 225 + 8 + 11 + 8);
    CHECK(accepts());
    bb_set32(225, 4);
    /* one overlay starting at 229: its start is 19, its inner offset 5 */
    REJECT("overlay list first offset 4", B.b, B.n, "offset_not_at_fixed_end", 233);
    bb_set32(225, 0);
    REJECT("overlay list first offset 0", B.b, B.n, "offset_not_at_fixed_end", 225);
    bb_set32(225, 6);
    REJECT("overlay list first offset 6", B.b, B.n, "offset_not_at_fixed_end", 225);
    bb_set32(225, 28);
    REJECT("overlay list first offset past end", B.b, B.n, "offset_out_of_bounds", 225);
    instance_base();
    bb_u32(8);
    bb_u32(19);
    bb_u32(5);
    bb_u32(9); /* inner offset 9 */
    bb_u8(1);
    bb_u8(2);
    bb_u8(3);
    bb_u32(6);
    bb_u32(8);
    REJECT("overlay inner offset 9", B.b, B.n, "offset_not_at_fixed_end", 237);
    bb_set32(237, 8);
    bb_set32(229, 15);
    REJECT("overlay 0 of 7 bytes", B.b, B.n, "truncated", 237);
    bb_set32(229, 7);
    REJECT("overlay offsets decreasing", B.b, B.n, "offsets_out_of_order", 229);
    bb_set32(229, 8);
    REJECT("overlay 0 empty", B.b, B.n, "truncated", 233);
    bb_set32(229, 19);
    CHECK(accepts());
    REJECT("last overlay cut", B.b, B.n - 1, "truncated", 248);
    bb_set32(248, 7);
    REJECT("last overlay inner offset 7", B.b, B.n, "offset_not_at_fixed_end", 248);
    bb_set32(248, 12);
    REJECT("last overlay inner offset past end", B.b, B.n, "offset_out_of_bounds", 248);
}

/* An empty Image, its 8 offsets all 32, then the yield None byte. */
static void image_empty(void)
{
    bb_reset(1);
    for (int i = 0; i < 8; i++) bb_u32(32);
    bb_u8(0);
}

/* An Image with parts of the given byte sizes (contents zero), yield None. */
static void image_parts(const size_t sz[7])
{
    bb_reset(1);
    size_t off = 32;
    for (int i = 0; i < 8; i++) {
        bb_u32((uint32_t)off);
        if (i < 7) off += sz[i];
    }
    for (int i = 0; i < 7; i++) bb_fill(0, sz[i]);
    bb_u8(0);
}

static const char *image_reason(const cap_image_desc_t *d)
{
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = cap_image_validate(d, &e);
    CHECK_EQ_INT(rc, CAP_EIMAGE);
    return rc == CAP_EIMAGE ? e.what : "?";
}

static void test_rejects_image(void)
{
    image_empty();
    CHECK_EQ_INT(B.n, 34);
    CHECK(accepts());
    REJECT("image 31", B.b, 32, "truncated", 29);
    REJECT("image 3", B.b, 4, "truncated", 1);
    REJECT("yield missing", B.b, 33, "truncated", 33);
    bb_set32(1, 34);
    REJECT("first offset 34", B.b, B.n, "offset_out_of_bounds", 1);
    bb_set32(1, 33);
    REJECT("first offset 33", B.b, B.n, "offset_not_at_fixed_end", 1);
    bb_set32(1, 31);
    REJECT("first offset 31", B.b, B.n, "offset_not_at_fixed_end", 1);
    image_empty();
    bb_set32(13, 34);
    REJECT("offset past end", B.b, B.n, "offset_out_of_bounds", 13);
    image_empty();
    bb_set32(13, 33);
    REJECT("offsets 32,..,33,32", B.b, B.n, "offsets_out_of_order", 17);
    image_empty();
    B.b[33] = 2;
    REJECT("yield selector 2", B.b, B.n, "yield_selector_unknown", 33);
    B.b[33] = 0;
    bb_u8(0);
    REJECT("yield None + byte", B.b, B.n, "trailing_bytes", 34);
    B.b[33] = 1;
    REJECT("yield Some short", B.b, B.n, "truncated", 34);
    bb_u32(7);
    REJECT("yield Some long", B.b, B.n, "trailing_bytes", 38);
    B.n--;
    CHECK(accepts());

    /* Partial elements of each fixed-size list. */
    static const size_t elem[7] = {1, 1, 4, 125, 49, 36, 36};
    for (int f = 2; f < 7; f++) {
        size_t sz[7] = {0};
        sz[f] = elem[f] + 1;
        image_parts(sz);
        REJECT("partial element", B.b, B.n, "list_partial_element", 33 + elem[f]);
    }
    {
        size_t sz[7] = {0};
        sz[1] = 1;
        image_parts(sz);
        CHECK(!accepts()); /* bitmask without code */
        bb_set32(5, 33);
        bb_set32(9, 32);
        REJECT("offsets decreasing", B.b, B.n, "offsets_out_of_order", 9);
    }

    /* Image rules: the reason cap_image_validate gives, at the offending byte. */
    cap_image_desc_t d;
    static cap_endpoint_t eps[CAP_MAX_ENDPOINTS + 1];
    {
        size_t sz[7] = {0};
        sz[3] = 65 * 125;
        image_parts(sz);
        memset(&d, 0, sizeof d);
        d.endpoints = eps;
        d.endpoints_len = 65;
        REJECT("65 endpoints", B.b, B.n, image_reason(&d), 33 + 64 * 125);
        sz[3] = 64 * 125;
        image_parts(sz);
        CHECK(accepts());
    }
    {
        size_t sz[7] = {0};
        sz[4] = 2 * 49;
        image_parts(sz);
        cap_mapping_t m[2];
        memset(m, 0, sizeof m);
        m[1].source_path_len = 9;
        memset(&d, 0, sizeof d);
        d.mappings = m;
        d.mappings_len = 2;
        B.b[33 + 49 + 48] = 9;
        REJECT("source_path_len 9", B.b, B.n, image_reason(&d), 33 + 49 + 48);
        B.b[33 + 49 + 48] = 8;
        B.b[33 + 49 + 16 + 28] = 1;
        CHECK(accepts());
        B.b[33 + 49 + 48] = 7;
        m[1].source_path_len = 7;
        m[1].source_path[7] = 1;
        REJECT("path entry past len", B.b, B.n, image_reason(&d), 33 + 49 + 16 + 28);
    }
    for (int which = 0; which < 2; which++) {
        size_t sz[7] = {0};
        sz[5 + which] = 3 * 36;
        image_parts(sz);
        size_t at = 33;
        cap_slot_entry_t se[3];
        memset(se, 0, sizeof se);
        for (int i = 0; i < 3; i++) {
            se[i].slot = (uint32_t)(10 * i);
            se[i].cap_hash.bytes[31] = 1;
            bb_set32(at + 36 * i, (uint32_t)(10 * i));
            B.b[at + 36 * i + 4 + 31] = 1;
        }
        CHECK(accepts());
        memset(&d, 0, sizeof d);
        if (which) {
            d.initial = se;
            d.initial_len = 3;
        } else {
            d.pinned = se;
            d.pinned_len = 3;
        }
        se[2].slot = 10;
        bb_set32(at + 72, 10);
        REJECT("slot duplicate", B.b, B.n, image_reason(&d), at + 72);
        se[2].slot = 5;
        bb_set32(at + 72, 5);
        REJECT("slot unsorted", B.b, B.n, image_reason(&d), at + 72);
        se[2].slot = 20;
        bb_set32(at + 72, 20);
        se[1].cap_hash.bytes[31] = 0;
        B.b[at + 36 + 4 + 31] = 0;
        REJECT("zero cap_hash", B.b, B.n, image_reason(&d), at + 36 + 4);
    }
    {
        /* code 9 bytes needs a 2-byte bitmask */
        size_t sz[7] = {9, 1, 0, 0, 0, 0, 0};
        image_parts(sz);
        uint8_t code[9] = {0}, bm[2] = {0};
        memset(&d, 0, sizeof d);
        d.code = code;
        d.code_len = 9;
        d.bitmask = bm;
        d.bitmask_len = 1;
        REJECT("bitmask 1 for code 9", B.b, B.n, image_reason(&d), 42);
        sz[1] = 3;
        image_parts(sz);
        REJECT("bitmask 3 for code 9", B.b, B.n, image_reason(&d), 42);
        sz[1] = 2;
        sz[2] = 8;
        image_parts(sz);
        bb_set32(44, 8);
        bb_set32(48, 9);
        uint32_t jt[2] = {8, 9};
        d.bitmask_len = 2;
        d.jump_table = jt;
        d.jump_table_len = 2;
        REJECT("jump entry == code len", B.b, B.n, image_reason(&d), 48);
        bb_set32(48, 0);
        CHECK(accepts());
    }
}

/* Encoding errors ------------------------------------------------------------------ */

static void dummy_release(struct cap_ref *r) { atomic_fetch_sub(&r->state, CAP_REF_ONE); }
static const struct cap_ref_ops dummy_ops = {dummy_release};

static void test_encode_errors(void)
{
    struct cap_ref r;
    atomic_init(&r.state, CAP_REF_IN_STORE | CAP_REF_ONE);
    r.id = 42;
    r.ops = &dummy_ops;
    r.owner = NULL;
    cap_target_t tr = cap_target_of_ref(&r);
    uint8_t buf[4096];
    size_t n = 12345;
    uint8_t *p = NULL;

    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, A, 4), CAP_OK);
    cap_hash_t h;
    memset(h.bytes, 5, 32);
    cap_target_t th = cap_target_of_hash(&h);
    CHECK_EQ_INT(cap_cnode_set(c, 1, &th), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(c, 3, &tr), CAP_OK);
    CHECK_EQ_INT(cap_wire_size(c, &n), CAP_EUNSETTLED);
    CHECK_EQ_INT(n, 12345);
    CHECK_EQ_INT(cap_wire_encode(c, buf, sizeof buf, &n), CAP_EUNSETTLED);
    CHECK_EQ_INT(cap_wire_encode_alloc(c, A, &p, &n), CAP_EUNSETTLED);
    CHECK(p == NULL);
    CHECK_EQ_INT(cap_cnode_clear(c, 3), CAP_OK);
    CHECK_EQ_INT(cap_wire_size(c, &n), CAP_OK);
    CHECK_EQ_INT(n, 1 + 5 + 36);
    /* too small a buffer */
    size_t w = 999;
    CHECK_EQ_INT(cap_wire_encode(c, buf, n - 1, &w), CAP_EINVAL);
    CHECK_EQ_INT(w, 999);
    CHECK_EQ_INT(cap_wire_encode(c, NULL, 0, &w), CAP_EINVAL);
    CHECK_EQ_INT(cap_wire_encode(c, NULL, 100, &w), CAP_EINVAL);
    CHECK_EQ_INT(cap_wire_encode(c, buf, n, &w), CAP_OK);
    CHECK_EQ_INT(w, n);
    CHECK_EQ_INT(cap_wire_encode(c, buf, n, NULL), CAP_OK);
    CHECK_EQ_INT(cap_wire_size(NULL, &n), CAP_EINVAL);
    CHECK_EQ_INT(cap_wire_size(c, NULL), CAP_EINVAL);
    CHECK_EQ_INT(cap_wire_encode_alloc(c, NULL, &p, &n), CAP_EINVAL);
    CHECK_EQ_INT(cap_wire_encode_alloc(c, A, NULL, &n), CAP_EINVAL);
    cap_release(c);

    CHECK_EQ_INT(cap_instance_new(&c, A, &tr), CAP_OK);
    CHECK_EQ_INT(cap_wire_size(c, &n), CAP_EUNSETTLED);
    CHECK_EQ_INT(cap_wire_encode(c, buf, sizeof buf, &n), CAP_EUNSETTLED);
    CHECK_EQ_INT(cap_wire_encode_alloc(c, A, &p, &n), CAP_EUNSETTLED);
    CHECK_EQ_INT(cap_instance_set_root_cnode(c, &th), CAP_OK);
    CHECK_EQ_INT(cap_wire_size(c, &n), CAP_OK);
    CHECK_EQ_INT(n, 225);
    cap_release(c);
    CHECK_EQ_INT(cap_ref_strong_count(&r), 2); /* everything given back */

    /* decode argument errors */
    cap_err_t e;
    cap_t *out = NULL;
    CHECK_EQ_INT(cap_wire_decode(buf, 10, NULL, &out, &e), CAP_EINVAL);
    CHECK_EQ_INT(e.code, CAP_EINVAL);
    CHECK_EQ_INT(cap_wire_decode(buf, 10, A, NULL, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_wire_decode(NULL, 10, A, &out, &e), CAP_EINVAL);
    CHECK(out == NULL);
    /* err may be NULL */
    uint8_t sel = 9;
    CHECK_EQ_INT(cap_wire_decode(&sel, 1, A, &out, NULL), CAP_EDECODE);
    CHECK(test_alloc_clean(&ta));
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_alloc_init(&ta);
    test_rejects_basic();
    test_rejects_cnode();
    test_rejects_data();
    test_rejects_instance();
    test_rejects_image();
    printf("reject cases: %d\n", n_rejects);
    test_page_states_kept();
    test_encode_errors();
    test_round_trips();
    CHECK(test_alloc_clean(&ta));
    return check_done("test_wire");
}
