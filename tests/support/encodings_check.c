/* SPDX-License-Identifier: MIT OR Apache-2.0 */
#include "encodings_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/host.h"
#include "check.h"

/* A Data cap of three 32-byte pages, all loaded (`full`) and with page 1
 * missing (`thin`): same hash, other bytes. */
typedef struct pair {
    cap_hash_t h;
    uint8_t *full, *thin;
    size_t full_n, thin_n;
} pair_t;

static void make_pair(pair_t *p, unsigned salt)
{
    const cap_alloc_t *a = cap_alloc_libc();
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_data_new(&c, a, 32), CAP_OK);
    CHECK_EQ_INT(cap_data_resize(c, 3), CAP_OK);
    for (uint64_t i = 0; i < 3; i++) {
        uint8_t page[32];
        for (unsigned k = 0; k < 32; k++) page[k] = (uint8_t)(salt * 31u + i * 7u + k + 1u);
        CHECK_EQ_INT(cap_data_set_page(c, i, page, sizeof page, NULL), CAP_OK);
    }
    CHECK_EQ_INT(cap_hash(c, &p->h), CAP_OK);
    CHECK_EQ_INT(cap_wire_encode_alloc(c, a, &p->full, &p->full_n), CAP_OK);
    cap_hash_t root, again;
    CHECK_EQ_INT(cap_data_page_root(c, 1, &root), CAP_OK);
    CHECK_EQ_INT(cap_data_set_page_missing(c, 1, &root), CAP_OK);
    CHECK_EQ_INT(cap_hash(c, &again), CAP_OK);
    CHECK_MEM(again.bytes, p->h.bytes, 32); /* one cap, two encodings */
    CHECK_EQ_INT(cap_wire_encode_alloc(c, a, &p->thin, &p->thin_n), CAP_OK);
    CHECK(p->thin_n != p->full_n || memcmp(p->thin, p->full, p->full_n) != 0);
    cap_release(c);
}

static void put(const cap_backend_t *b, const cap_hash_t *h, const uint8_t *bytes, size_t n, size_t written,
                size_t repaired)
{
    cap_backend_item_t it = {*h, bytes, n};
    cap_backend_write_result_t res;
    memset(&res, 0xa5, sizeof res);
    CHECK_EQ_INT(cap_backend_write_many(b, &it, 1, NULL, 0, &res, NULL), CAP_OK);
    CHECK_EQ_INT((int)res.written, (int)written);
    CHECK_EQ_INT((int)res.repaired, (int)repaired);
}

static void holds(const cap_backend_t *b, const char *name, const char *what, const cap_hash_t *h,
                  const uint8_t *want, size_t want_n)
{
    uint8_t *got = NULL;
    size_t n = 0;
    CHECK_EQ_INT(cap_backend_read(b, h, cap_alloc_libc(), &got, &n, NULL), CAP_OK);
    if (n != want_n || memcmp(got, want, n) != 0) {
        fprintf(stderr, "%s: %s: the backend holds other bytes (%zu, want %zu)\n", name, what, n, want_n);
        CHECK(0);
    }
    free(got);
}

void encodings_check(const cap_backend_t *b, const char *name, unsigned salt)
{
    pair_t p, q;
    make_pair(&p, salt * 2);
    make_pair(&q, salt * 2 + 1);
    /* Full first: the thin copy changes nothing. */
    put(b, &p.h, p.full, p.full_n, 1, 0);
    put(b, &p.h, p.thin, p.thin_n, 0, 0);
    holds(b, name, "full, then thin", &p.h, p.full, p.full_n);
    /* Thin first: the full copy replaces it. */
    put(b, &q.h, q.thin, q.thin_n, 1, 0);
    put(b, &q.h, q.full, q.full_n, 0, 1);
    holds(b, name, "thin, then full", &q.h, q.full, q.full_n);
    put(b, &q.h, q.thin, q.thin_n, 0, 0);
    holds(b, name, "thin again", &q.h, q.full, q.full_n);
    /* One batch naming a hash twice: the fuller copy stays, either order. */
    pair_t u, v;
    make_pair(&u, salt * 2 + 2000);
    make_pair(&v, salt * 2 + 3000);
    cap_backend_item_t twice[4] = {{u.h, u.thin, u.thin_n}, {u.h, u.full, u.full_n},
                                   {v.h, v.full, v.full_n}, {v.h, v.thin, v.thin_n}};
    cap_backend_write_result_t res;
    CHECK_EQ_INT(cap_backend_write_many(b, twice, 4, NULL, 0, &res, NULL), CAP_OK);
    holds(b, name, "thin and full in one batch", &u.h, u.full, u.full_n);
    holds(b, name, "full and thin in one batch", &v.h, v.full, v.full_n);
    /* Bytes that do not decode never replace a sound value... */
    uint8_t junk[40];
    memset(junk, 0x5a, sizeof junk);
    put(b, &p.h, junk, sizeof junk, 0, 0);
    holds(b, name, "full, then junk", &p.h, p.full, p.full_n);
    /* ...and damaged bytes are still repaired, by either copy. */
    pair_t r;
    make_pair(&r, salt * 2 + 1000);
    put(b, &r.h, junk, sizeof junk, 1, 0);
    put(b, &r.h, r.thin, r.thin_n, 0, 1);
    holds(b, name, "damaged, then thin", &r.h, r.thin, r.thin_n);
    pair_t *all[5] = {&p, &q, &r, &u, &v};
    for (int i = 0; i < 5; i++) {
        free(all[i]->full);
        free(all[i]->thin);
    }
}
