/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* SSZ serialization primitives: LE fields, the bounded writer (and its dry
 * run), and the strict reader: bounds, truncation, offset rules, hostile
 * offsets, and the absolute offset + rule recorded for the first failure.
 * Inputs live in exactly-sized heap blocks so ASan sees any overread. */
#include "capstore/host.h"
#include "capstore/ssz.h"
#include "check.h"
#include "test_rng.h"

static test_rng_t rng = {0x6a09e667f3bcc909ull};
static uint64_t rng_next(void) { return test_rng_next(&rng); }

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    if (!q) exit(2);
    if (n) memcpy(q, p, n);
    return q;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

#define CHECK_ERR(e, rule, off)                                                          \
    do {                                                                                 \
        CHECK_EQ_INT((e).code, CAP_EDECODE);                                             \
        CHECK((e).what != NULL && strcmp((e).what, (rule)) == 0);                        \
        if ((e).what && strcmp((e).what, (rule)) != 0)                                   \
            fprintf(stderr, "  rule was %s, expected %s\n", (e).what, (rule));          \
        CHECK_EQ_INT((e).offset, (off));                                                 \
    } while (0)

static void test_le(void)
{
    uint8_t b[8];
    cap_ssz_put_u32(b, 0x11223344u);
    CHECK(b[0] == 0x44 && b[1] == 0x33 && b[2] == 0x22 && b[3] == 0x11);
    CHECK_EQ_INT(cap_ssz_get_u32(b), 0x11223344u);
    cap_ssz_put_u64(b, 0x0102030405060708ull);
    CHECK(b[0] == 8 && b[7] == 1);
    CHECK(cap_ssz_get_u64(b) == 0x0102030405060708ull);
    cap_ssz_put_u8(b, 0xfe);
    CHECK_EQ_INT(b[0], 0xfe);
}

static void test_writer(void)
{
    uint8_t buf[32];
    cap_ssz_writer_t w;

    /* a container { a: u8, b: var, c: u64, d: var } written for real and dry */
    for (int dry = 0; dry < 2; dry++) {
        memset(buf, 0xcc, sizeof buf);
        cap_ssz_writer_init(&w, dry ? NULL : buf, dry ? 0 : 24);
        cap_ssz_write_u8(&w, 7);
        size_t s1 = cap_ssz_write_offset_slot(&w);
        cap_ssz_write_u64(&w, 0x1122334455667788ull);
        size_t s2 = cap_ssz_write_offset_slot(&w);
        CHECK_EQ_INT(s1, 1);
        CHECK_EQ_INT(s2, 13);
        cap_ssz_patch_offset(&w, s1, 0);
        cap_ssz_write_bytes(&w, "abc", 3);
        cap_ssz_patch_offset(&w, s2, 0);
        cap_ssz_write_u32(&w, 0xdeadbeef);
        CHECK_EQ_INT(w.pos, 24);
        CHECK_EQ_INT(w.overflow, dry ? 1 : 0);
        if (!dry) {
            static const uint8_t want[24] = {7,    17,   0,    0,    0,    0x88, 0x77, 0x66,
                                             0x55, 0x44, 0x33, 0x22, 0x11, 20,   0,    0,
                                             0,    'a',  'b',  'c',  0xef, 0xbe, 0xad, 0xde};
            CHECK_MEM(buf, want, 24);
            CHECK_EQ_INT(buf[24], 0xcc);
        }
    }

    /* a write past the end is not done, sets overflow and still counts */
    memset(buf, 0xcc, sizeof buf);
    cap_ssz_writer_init(&w, buf, 6);
    cap_ssz_write_u32(&w, 0x01020304);
    cap_ssz_write_u32(&w, 0x05060708);
    CHECK(w.overflow);
    CHECK_EQ_INT(w.pos, 8);
    CHECK_EQ_INT(buf[4], 0xcc);
    CHECK_EQ_INT(buf[5], 0xcc);
    cap_ssz_write_u8(&w, 1); /* sticky: would fit in the 2 left, still refused */
    CHECK_EQ_INT(buf[4], 0xcc);
    CHECK_EQ_INT(w.pos, 9);
    /* patching a slot that lies past the end writes nothing */
    size_t far = cap_ssz_write_offset_slot(&w);
    cap_ssz_patch_offset(&w, far, 0);
    for (size_t i = 6; i < sizeof buf; i++) CHECK_EQ_INT(buf[i], 0xcc);

    /* exactly full is fine; zero-length writes are fine even into NULL */
    cap_ssz_writer_init(&w, buf, 4);
    cap_ssz_write_u32(&w, 1);
    cap_ssz_write_bytes(&w, NULL, 0);
    CHECK(!w.overflow);
    CHECK_EQ_INT(w.pos, 4);
    cap_ssz_writer_init(&w, NULL, 100); /* NULL buf: capacity is 0 whatever is said */
    cap_ssz_write_bytes(&w, NULL, 0);
    CHECK(!w.overflow);
    cap_ssz_write_u8(&w, 1);
    CHECK(w.overflow);

    /* an offset SSZ cannot express is an error */
    cap_ssz_writer_init(&w, buf, sizeof buf);
    size_t slot = cap_ssz_write_offset_slot(&w);
    cap_ssz_patch_offset(&w, slot, 10); /* base after pos: negative */
    CHECK(w.overflow);
    cap_ssz_writer_init(&w, NULL, 0);
    slot = cap_ssz_write_offset_slot(&w);
    w.pos = (size_t)UINT32_MAX + 10; /* dry run of a huge object */
    w.overflow = false;
    cap_ssz_patch_offset(&w, slot, 0);
    CHECK(w.overflow);
    /* pos saturates instead of wrapping */
    cap_ssz_writer_init(&w, NULL, 0);
    w.pos = SIZE_MAX - 2;
    cap_ssz_write_u64(&w, 0);
    CHECK_EQ_INT(w.pos == SIZE_MAX, 1);
}

static void test_reader_basics(void)
{
    static const uint8_t src[] = {1, 0x44, 0x33, 0x22, 0x11, 8, 7, 6, 5, 4, 3, 2, 1, 0xaa, 0xbb};
    uint8_t *in = dup_exact(src, sizeof src);
    cap_err_t err;
    cap_ssz_reader_t r;
    uint8_t u8;
    uint32_t u32;
    uint64_t u64;
    const uint8_t *p;

    err.code = 123; /* init must reset a stale error */
    cap_ssz_reader_init(&r, in, sizeof src, &err);
    CHECK_EQ_INT(err.code, CAP_OK);
    CHECK_EQ_INT(cap_ssz_read_u8(&r, &u8), CAP_OK);
    CHECK_EQ_INT(u8, 1);
    CHECK_EQ_INT(cap_ssz_read_u32(&r, &u32), CAP_OK);
    CHECK_EQ_INT(u32, 0x11223344);
    CHECK_EQ_INT(cap_ssz_read_u64(&r, &u64), CAP_OK);
    CHECK(u64 == 0x0102030405060708ull);
    CHECK_EQ_INT(cap_ssz_reader_remaining(&r), 2);
    CHECK_EQ_INT(cap_ssz_reader_expect_end(&r), CAP_EDECODE);
    CHECK_ERR(err, "trailing_bytes", 13);
    /* sticky: everything fails now, and the first error stays */
    CHECK_EQ_INT(cap_ssz_read_u8(&r, &u8), CAP_EDECODE);
    CHECK_EQ_INT(cap_ssz_reader_remaining(&r), 0);
    CHECK_EQ_INT(cap_ssz_reader_fail(&r, 99, "other"), CAP_EDECODE);
    CHECK_ERR(err, "trailing_bytes", 13);

    /* truncation at every width, at the exact position */
    cap_ssz_reader_init(&r, in, sizeof src, &err);
    CHECK_EQ_INT(cap_ssz_read_bytes(&r, &p, 12), CAP_OK);
    CHECK(p == in);
    CHECK_EQ_INT(cap_ssz_read_u64(&r, &u64), CAP_EDECODE);
    CHECK(u64 == 0);
    CHECK_ERR(err, "truncated", 12);
    cap_ssz_reader_init(&r, in, sizeof src, &err);
    CHECK_EQ_INT(cap_ssz_read_bytes(&r, &p, 14), CAP_OK);
    CHECK_EQ_INT(cap_ssz_read_u32(&r, &u32), CAP_EDECODE);
    CHECK_ERR(err, "truncated", 14);
    cap_ssz_reader_init(&r, in, sizeof src, &err);
    CHECK_EQ_INT(cap_ssz_read_bytes(&r, &p, SIZE_MAX), CAP_EDECODE); /* no wrap */
    CHECK_ERR(err, "truncated", 0);
    cap_ssz_reader_init(&r, in, sizeof src, &err);
    CHECK_EQ_INT(cap_ssz_read_bytes(&r, &p, 15), CAP_OK);
    CHECK_EQ_INT(cap_ssz_reader_expect_end(&r), CAP_OK);
    CHECK_EQ_INT(cap_ssz_read_u8(&r, &u8), CAP_EDECODE);
    CHECK_ERR(err, "truncated", 15);

    /* empty input, including a NULL pointer */
    cap_ssz_reader_init(&r, NULL, 0, &err);
    CHECK_EQ_INT(cap_ssz_read_bytes(&r, &p, 0), CAP_OK);
    CHECK_EQ_INT(cap_ssz_reader_expect_end(&r), CAP_OK);
    CHECK_EQ_INT(cap_ssz_read_u8(&r, &u8), CAP_EDECODE);
    CHECK_ERR(err, "truncated", 0);
    /* err may be NULL */
    cap_ssz_reader_init(&r, in, 2, NULL);
    CHECK_EQ_INT(cap_ssz_read_u32(&r, &u32), CAP_EDECODE);
    CHECK(r.failed);

    /* sub-readers: absolute positions, shared error, bounds */
    cap_ssz_reader_t s, t;
    cap_ssz_reader_init(&r, in, sizeof src, &err);
    CHECK_EQ_INT(cap_ssz_reader_sub(&r, &s, 5, 13), CAP_OK);
    CHECK_EQ_INT(cap_ssz_reader_remaining(&s), 8);
    CHECK_EQ_INT(cap_ssz_read_u64(&s, &u64), CAP_OK);
    CHECK(u64 == 0x0102030405060708ull);
    CHECK_EQ_INT(cap_ssz_reader_sub(&s, &t, 5, 14), CAP_EDECODE); /* past s's end */
    CHECK_ERR(err, "offset_out_of_bounds", 5);
    CHECK_EQ_INT(cap_ssz_reader_remaining(&t), 0);
    CHECK_EQ_INT(cap_ssz_read_u8(&t, &u8), CAP_EDECODE);
    CHECK_ERR(err, "offset_out_of_bounds", 5);
    cap_ssz_reader_init(&r, in, sizeof src, &err);
    CHECK_EQ_INT(cap_ssz_reader_sub(&r, &s, 9, 7), CAP_EDECODE); /* reversed */
    CHECK_ERR(err, "offset_out_of_bounds", 9);
    cap_ssz_reader_init(&r, in, sizeof src, &err);
    CHECK_EQ_INT(cap_ssz_reader_sub(&r, &s, 3, SIZE_MAX), CAP_EDECODE);
    CHECK_EQ_INT(err.code, CAP_EDECODE);
    cap_ssz_reader_init(&r, in, sizeof src, &err);
    CHECK_EQ_INT(cap_ssz_reader_sub(&r, &s, 10, 12), CAP_OK);
    CHECK_EQ_INT(cap_ssz_reader_sub(&s, &t, 2, 11), CAP_EDECODE); /* before s's start */
    CHECK_ERR(err, "offset_out_of_bounds", 2);
    cap_ssz_reader_init(&r, in, sizeof src, &err);
    CHECK_EQ_INT(cap_ssz_reader_sub(&r, &s, 10, 12), CAP_OK);
    CHECK_EQ_INT(cap_ssz_read_u32(&s, &u32), CAP_EDECODE); /* truncated in the sub */
    CHECK_ERR(err, "truncated", 10);
    CHECK_EQ_INT(cap_ssz_reader_expect_end(&r), CAP_EDECODE); /* parent fails later: first wins */
    CHECK_ERR(err, "truncated", 10);
    free(in);
}

/* A container: fixed part of 9 bytes (u8 + two offsets), placed at 3 in a
 * larger input so that offsets are relative and errors absolute. */
static void test_resolve_offsets(void)
{
    enum { BASE = 3 };
    uint8_t raw[BASE + 20];
    cap_err_t err;
    cap_ssz_reader_t r, obj;
    size_t parts[3][2];
    memset(raw, 0x5a, sizeof raw);

    struct {
        uint32_t off[3];
        size_t n;
        int ok;
        const char *rule;
        size_t at;
    } cases[] = {
        {{9, 12, 0}, 2, 1, NULL, 0},
        {{9, 20, 0}, 2, 1, NULL, 0},                          /* last part empty */
        {{9, 9, 20}, 3, 1, NULL, 0},                          /* empty parts */
        {{8, 12, 0}, 2, 0, "first_offset_mismatch", BASE + 8},
        {{10, 12, 0}, 2, 0, "first_offset_mismatch", BASE + 10},
        {{0xFFFFFFFF, 12, 0}, 2, 0, "first_offset_mismatch", BASE + 20},
        {{9, 21, 0}, 2, 0, "offset_out_of_bounds", BASE + 20},
        {{9, 0xFFFFFFFF, 0}, 2, 0, "offset_out_of_bounds", BASE + 20},
        {{9, 15, 12}, 3, 0, "offset_out_of_order", BASE + 12},
        {{9, 8, 0}, 2, 0, "offset_out_of_order", BASE + 8},
    };
    uint8_t *in = dup_exact(raw, sizeof raw);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cap_ssz_reader_init(&r, in, sizeof raw, &err);
        CHECK_EQ_INT(cap_ssz_reader_sub(&r, &obj, BASE, sizeof raw), CAP_OK);
        int rc = cap_ssz_resolve_offsets(&obj, cases[c].off, cases[c].n, 9, parts);
        if (cases[c].ok) {
            CHECK_EQ_INT(rc, CAP_OK);
            for (size_t i = 0; i < cases[c].n; i++) {
                CHECK_EQ_INT(parts[i][0], BASE + cases[c].off[i]);
                CHECK_EQ_INT(parts[i][1], i + 1 < cases[c].n ? BASE + cases[c].off[i + 1] : sizeof raw);
            }
        } else {
            CHECK_EQ_INT(rc, CAP_EDECODE);
            CHECK_ERR(err, cases[c].rule, cases[c].at);
        }
    }
    /* the fixed part alone is longer than the object */
    uint32_t off = 30;
    cap_ssz_reader_init(&r, in, sizeof raw, &err);
    CHECK_EQ_INT(cap_ssz_resolve_offsets(&r, &off, 1, 30, NULL), CAP_EDECODE);
    CHECK_ERR(err, "offset_out_of_bounds", sizeof raw);
    /* no variable parts: nothing to check */
    cap_ssz_reader_init(&r, in, sizeof raw, &err);
    CHECK_EQ_INT(cap_ssz_resolve_offsets(&r, NULL, 0, 5, NULL), CAP_OK);
    free(in);
}

static void test_list_fixed(void)
{
    uint8_t raw[40];
    memset(raw, 1, sizeof raw);
    uint8_t *in = dup_exact(raw, sizeof raw);
    cap_err_t err;
    cap_ssz_reader_t r, l;
    size_t count;

    cap_ssz_reader_init(&r, in, sizeof raw, &err);
    CHECK_EQ_INT(cap_ssz_reader_sub(&r, &l, 4, 40), CAP_OK);
    CHECK_EQ_INT(cap_ssz_list_fixed_count(&l, 36, 1, &count), CAP_OK);
    CHECK_EQ_INT(count, 1);
    CHECK_EQ_INT(cap_ssz_list_fixed_count(&l, 4, 9, &count), CAP_OK);
    CHECK_EQ_INT(count, 9);
    CHECK_EQ_INT(cap_ssz_list_fixed_count(&l, 4, 8, &count), CAP_EDECODE);
    CHECK_EQ_INT(count, 0);
    CHECK_ERR(err, "list_too_long", 4 + 32);

    cap_ssz_reader_init(&r, in, sizeof raw, &err);
    CHECK_EQ_INT(cap_ssz_reader_sub(&r, &l, 4, 40), CAP_OK);
    CHECK_EQ_INT(cap_ssz_list_fixed_count(&l, 5, 100, &count), CAP_EDECODE);
    CHECK_ERR(err, "list_length_not_multiple", 4 + 35);

    cap_ssz_reader_init(&r, in, sizeof raw, &err);
    CHECK_EQ_INT(cap_ssz_reader_sub(&r, &l, 7, 7), CAP_OK);
    CHECK_EQ_INT(cap_ssz_list_fixed_count(&l, 36, 0, &count), CAP_OK);
    CHECK_EQ_INT(count, 0);
    CHECK_EQ_INT(cap_ssz_list_fixed_count(&l, 0, 10, &count), CAP_EINVAL);
    cap_ssz_reader_init(&r, in, sizeof raw, &err);
    CHECK_EQ_INT(cap_ssz_list_fixed_count(&r, 1, 0, &count), CAP_EDECODE); /* limit 0 */
    CHECK_ERR(err, "list_too_long", 0);
    free(in);
}

/* List of variable-size elements ["ab", "", "xyz"] at absolute 5. */
static void test_list_var(void)
{
    enum { BASE = 5 };
    uint8_t raw[BASE + 17];
    cap_err_t err;
    cap_ssz_reader_t r, l;
    size_t count, a, b;
    memset(raw, 0xee, BASE);
    put32(raw + BASE, 12);
    put32(raw + BASE + 4, 14);
    put32(raw + BASE + 8, 14);
    memcpy(raw + BASE + 12, "abxyz", 5);
    uint8_t *in = dup_exact(raw, sizeof raw);

    cap_ssz_reader_init(&r, in, sizeof raw, &err);
    CHECK_EQ_INT(cap_ssz_reader_sub(&r, &l, BASE, sizeof raw), CAP_OK);
    CHECK_EQ_INT(cap_ssz_list_var_count(&l, 3, &count), CAP_OK);
    CHECK_EQ_INT(count, 3);
    CHECK_EQ_INT(cap_ssz_list_var_element(&l, count, 0, &a, &b), CAP_OK);
    CHECK(a == BASE + 12 && b == BASE + 14);
    CHECK_EQ_INT(cap_ssz_list_var_element(&l, count, 1, &a, &b), CAP_OK);
    CHECK(a == BASE + 14 && b == BASE + 14);
    CHECK_EQ_INT(cap_ssz_list_var_element(&l, count, 2, &a, &b), CAP_OK);
    CHECK(a == BASE + 14 && b == sizeof raw);
    CHECK(memcmp(in + a, "xyz", 3) == 0);
    CHECK_EQ_INT(cap_ssz_list_var_element(&l, count, 3, &a, &b), CAP_EINVAL);
    /* a count the table cannot hold is refused, not read */
    CHECK_EQ_INT(cap_ssz_list_var_element(&l, 100, 50, &a, &b), CAP_EDECODE);
    CHECK_ERR(err, "offset_out_of_bounds", BASE);

    cap_ssz_reader_init(&r, in, sizeof raw, &err);
    CHECK_EQ_INT(cap_ssz_reader_sub(&r, &l, BASE, sizeof raw), CAP_OK);
    CHECK_EQ_INT(cap_ssz_list_var_count(&l, 2, &count), CAP_EDECODE);
    CHECK_ERR(err, "list_too_long", BASE);

    /* empty range: zero elements */
    cap_ssz_reader_init(&r, in, sizeof raw, &err);
    CHECK_EQ_INT(cap_ssz_reader_sub(&r, &l, 9, 9), CAP_OK);
    CHECK_EQ_INT(cap_ssz_list_var_count(&l, 0, &count), CAP_OK);
    CHECK_EQ_INT(count, 0);

    struct {
        uint32_t o0, o1, o2;
        const char *rule;
        size_t at;
    } bad[] = {
        {0, 14, 14, "first_offset_mismatch", BASE},
        {13, 14, 14, "first_offset_mismatch", BASE},
        {2, 14, 14, "first_offset_mismatch", BASE},
        {0xFFFFFFFC, 14, 14, "offset_out_of_bounds", BASE},
        {0xFFFFFFFF, 14, 14, "first_offset_mismatch", BASE},
        {20, 14, 14, "offset_out_of_bounds", BASE},
        {12, 11, 14, "offset_out_of_order", BASE + 4},
        {12, 14, 13, "offset_out_of_order", BASE + 8},
        {12, 18, 18, "offset_out_of_bounds", BASE + 4},
        {12, 14, 0xFFFFFFFF, "offset_out_of_bounds", BASE + 8},
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        put32(in + BASE, bad[c].o0);
        put32(in + BASE + 4, bad[c].o1);
        put32(in + BASE + 8, bad[c].o2);
        cap_ssz_reader_init(&r, in, sizeof raw, &err);
        CHECK_EQ_INT(cap_ssz_reader_sub(&r, &l, BASE, sizeof raw), CAP_OK);
        CHECK_EQ_INT(cap_ssz_list_var_count(&l, 100, &count), CAP_EDECODE);
        CHECK_EQ_INT(count, 0);
        CHECK_ERR(err, bad[c].rule, bad[c].at);
    }
    /* a one-element list whose offset is exactly the end: one empty element */
    put32(in + BASE, 17);
    cap_ssz_reader_init(&r, in, sizeof raw, &err);
    CHECK_EQ_INT(cap_ssz_reader_sub(&r, &l, BASE, sizeof raw), CAP_OK);
    CHECK_EQ_INT(cap_ssz_list_var_count(&l, 100, &count), CAP_EDECODE); /* 17 % 4 */
    put32(in + BASE, 4);
    cap_ssz_reader_init(&r, in, sizeof raw, &err);
    CHECK_EQ_INT(cap_ssz_reader_sub(&r, &l, BASE, sizeof raw), CAP_OK);
    CHECK_EQ_INT(cap_ssz_list_var_count(&l, 100, &count), CAP_OK);
    CHECK_EQ_INT(count, 1);
    CHECK_EQ_INT(cap_ssz_list_var_element(&l, count, 0, &a, &b), CAP_OK);
    CHECK(a == BASE + 4 && b == sizeof raw);
    /* 1..3 bytes cannot hold an offset */
    for (size_t n = 1; n < 4; n++) {
        cap_ssz_reader_init(&r, in, sizeof raw, &err);
        CHECK_EQ_INT(cap_ssz_reader_sub(&r, &l, BASE, BASE + n), CAP_OK);
        CHECK_EQ_INT(cap_ssz_list_var_count(&l, 100, &count), CAP_EDECODE);
        CHECK_ERR(err, "truncated", BASE);
    }
    free(in);
}

/* Random tables of random offsets: whatever is accepted stays in range. */
static void test_var_random(void)
{
    int accepted = 0;
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(rng_next() % 40);
        uint8_t *in = malloc(len ? len : 1);
        if (!in) exit(2);
        for (size_t i = 0; i < len; i++) in[i] = (uint8_t)rng_next();
        /* bias the offsets towards plausible values */
        for (size_t i = 0; i + 4 <= len && i < 16; i += 4)
            if (rng_next() % 4) put32(in + i, (uint32_t)(rng_next() % (len + 3)));
        cap_err_t err;
        cap_ssz_reader_t r;
        size_t count, a, b, prev = 0;
        cap_ssz_reader_init(&r, in, len, &err);
        int rc = cap_ssz_list_var_count(&r, 1000, &count);
        if (rc == CAP_OK) {
            accepted++;
            prev = count ? count * 4 : 0;
            for (size_t i = 0; i < count; i++) {
                CHECK_EQ_INT(cap_ssz_list_var_element(&r, count, i, &a, &b), CAP_OK);
                CHECK(a <= b && b <= len && a >= prev && a >= count * 4);
                prev = b;
                for (size_t k = a; k < b; k++) (void)*(volatile uint8_t *)&in[k];
            }
        } else {
            CHECK_EQ_INT(rc, CAP_EDECODE);
            CHECK_EQ_INT(err.code, CAP_EDECODE);
            CHECK(err.what != NULL);
            CHECK(err.offset <= len);
        }
        free(in);
    }
    CHECK(accepted > 100);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cap_sha256_select_from_env();
    test_le();
    test_writer();
    test_reader_basics();
    test_resolve_offsets();
    test_list_fixed();
    test_list_var();
    test_var_random();
    return check_done("test_ssz_codec");
}
