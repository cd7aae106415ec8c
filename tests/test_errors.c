/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Error texts and messages (common.h): every code has a text of its own,
 * unknown codes say so, cap_err_format carries each code's detail (the
 * instance id, expected and got page sizes, the decoder's rule and offset,
 * a backend's reason) and truncates like snprintf. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "check.h"

static const int codes[] = {
    CAP_OK,          CAP_ENOMEM,    CAP_EINVAL,   CAP_EBLOBMISSING, CAP_EINSTANCEMISSING,
    CAP_EIMAGE,      CAP_EPAGESIZE, CAP_ESLOTRANGE, CAP_EBUSY,      CAP_EUNSETTLED,
    CAP_EDECODE,     CAP_EMISMATCH, CAP_ECYCLE,   CAP_EIDSPACE,     CAP_EBACKEND,
    CAP_ENOTFOUND,
};
#define NCODES (sizeof codes / sizeof codes[0])

static void test_texts(void)
{
    const char *unknown = cap_strerror(12345);
    CHECK(unknown && *unknown);
    CHECK(strcmp(cap_strerror(-9999), unknown) == 0);
    for (size_t i = 0; i < NCODES; i++) {
        const char *t = cap_strerror(codes[i]);
        CHECK(t && *t);
        CHECK(strcmp(t, unknown) != 0);
        for (size_t j = 0; j < i; j++) CHECK(strcmp(t, cap_strerror(codes[j])) != 0);
    }
}

static cap_err_t err_of(int code)
{
    cap_err_t e;
    memset(&e, 0, sizeof e);
    e.code = code;
    return e;
}

/* The formatted message of e, checked to start with the code's text. */
static const char *message(const cap_err_t *e)
{
    static char buf[256];
    size_t n = cap_err_format(e, buf, sizeof buf);
    CHECK_EQ_INT(n, strlen(buf));
    const char *t = cap_strerror(e->code);
    CHECK(strncmp(buf, t, strlen(t)) == 0);
    return buf;
}

static void test_details(void)
{
    cap_err_t e = err_of(CAP_EINSTANCEMISSING);
    e.id = 18446744073709551615ull;
    CHECK(strstr(message(&e), " 18446744073709551615") != NULL);

    e = err_of(CAP_EDECODE);
    e.what = "offset out of order";
    e.offset = 37;
    CHECK(strstr(message(&e), ": offset out of order at byte 37") != NULL);
    e.what = NULL;
    e.offset = 0;
    CHECK(strstr(message(&e), " at byte 0") != NULL);

    e = err_of(CAP_EBACKEND);
    e.what = "map full";
    CHECK(strstr(message(&e), ": map full") != NULL);

    /* The page size detail, as cap_data_set_page reports it. */
    cap_t *d = NULL;
    CHECK_EQ_INT(cap_data_new_inline(&d, cap_alloc_libc(), 4096, "x", 1), CAP_OK);
    uint8_t page[100] = {0};
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_data_set_page(d, 0, page, sizeof page, &e), CAP_EPAGESIZE);
    CHECK_EQ_INT(e.code, CAP_EPAGESIZE);
    CHECK_EQ_INT(e.expected, 4096);
    CHECK_EQ_INT(e.got, 100);
    CHECK(strstr(message(&e), "(expected=4096, got=100)") != NULL);
    cap_release(d);

    /* A code without detail: just its text. */
    e = err_of(CAP_ECYCLE);
    CHECK(strcmp(message(&e), cap_strerror(CAP_ECYCLE)) == 0);
}

static void test_truncation(void)
{
    cap_err_t e = err_of(CAP_EINSTANCEMISSING);
    e.id = 42;
    char full[128];
    size_t need = cap_err_format(&e, full, sizeof full);
    CHECK_EQ_INT(need, strlen(full));
    for (size_t n = 1; n <= need + 1; n++) {
        char small[128];
        memset(small, 'Z', sizeof small);
        CHECK_EQ_INT(cap_err_format(&e, small, n), need);
        CHECK_EQ_INT(strlen(small), n - 1 < need ? n - 1 : need);
        CHECK(strncmp(small, full, n - 1) == 0);
        CHECK(small[n] == 'Z'); /* nothing written past n */
    }
    char untouched = 'Z';
    CHECK_EQ_INT(cap_err_format(&e, &untouched, 0), need);
    CHECK(untouched == 'Z');
}

/* The hash and the library's inline detail text reach the message; the
 * detail never overflows its array; NULL arguments are safe. */
static void test_hash_and_detail(void)
{
    cap_err_t e;
    memset(&e, 0x5a, sizeof e); /* poisoned: cap_err_set clears every field */
    CHECK_EQ_INT(cap_err_set(&e, CAP_EBLOBMISSING, "in no tier"), CAP_EBLOBMISSING);
    CHECK(!e.has_hash && e.detail[0] == 0 && e.offset == 0 && e.id == 0);
    cap_hash_t h;
    for (int i = 0; i < 32; i++) h.bytes[i] = (uint8_t)(i * 17);
    cap_err_set_hash(&e, &h);
    cap_err_add_detail(&e, "page ");
    cap_err_add_detail_u64(&e, 12345);
    char buf[256];
    cap_err_format(&e, buf, sizeof buf);
    CHECK(strstr(buf, "blob not found for hash: in no tier: page 12345 (hash 00112233") != NULL);
    CHECK(strstr(buf, "0f)") != NULL); /* the last byte: 31 * 17 mod 256 = 0x0f */
    for (int i = 0; i < 40; i++) cap_err_add_detail(&e, "0123456789");
    CHECK_EQ_INT(strlen(e.detail), CAP_ERR_DETAIL_SIZE - 1);
    /* A caller's struct whose detail is not terminated is read within bounds. */
    memset(e.detail, 'x', sizeof e.detail);
    CHECK(cap_err_format(&e, buf, sizeof buf) < sizeof buf);
    /* NULL safety. */
    CHECK_EQ_INT(cap_err_set(NULL, CAP_EINVAL, "x"), CAP_EINVAL);
    cap_err_set_hash(NULL, &h);
    cap_err_add_detail(NULL, "x");
    cap_err_add_detail(&e, NULL);
    cap_err_add_detail_u64(NULL, 1);
    CHECK_EQ_INT(cap_err_format(NULL, NULL, 0), strlen("no error detail"));
    CHECK_EQ_INT(cap_err_format(NULL, buf, sizeof buf), strlen("no error detail"));
    CHECK(strcmp(buf, "no error detail") == 0);
    cap_err_set(&e, CAP_EBACKEND, "x");
    CHECK_EQ_INT(cap_err_format(&e, NULL, 10), strlen("backend failure: x"));
}

int main(void)
{
    test_texts();
    test_details();
    test_truncation();
    test_hash_and_detail();
    return check_done("test_errors");
}
