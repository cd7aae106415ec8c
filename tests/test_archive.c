/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Archives (archive.h, docs/archive.md):
 *   - a round trip between two LMDB databases gives the same blobs and the
 *     named roots (an unnamed root's graph arrives, not rooted); --all;
 *   - the format as docs/archive.md states it, read here independently
 *     (OpenSSL's SHA-256 for the checksum);
 *   - every single byte of an archive flipped, and every truncation: the
 *     import fails and writes nothing; a flip inside a record names that
 *     record;
 *   - archives built here by hand: a record missing from the closure, a
 *     record twice, a root the records lack, bytes after the end, a wrong
 *     count — each refused, nothing written;
 *   - roots that exist with another hash (refused unless forced), a dry
 *     run, the export's own errors (a graph not all stored, a writer that
 *     fails). */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capstore/archive.h"
#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_graph.h"

static char dir[256];

/* A growing buffer: the export's sink, the import's source. */
typedef struct buf {
    uint8_t *p;
    size_t n, room, at;
    int fail_after; /* sink: fail once this many calls passed (0: never) */
    int calls;
} buf_t;

static int buf_write(void *arg, const void *bytes, size_t n)
{
    buf_t *b = arg;
    if (b->fail_after && ++b->calls > b->fail_after) return 42;
    if (b->n + n > b->room) {
        b->room = (b->n + n) * 2;
        b->p = realloc(b->p, b->room);
        if (!b->p) exit(2);
    }
    memcpy(b->p + b->n, bytes, n);
    b->n += n;
    return 0;
}

/* Reads in uneven pieces, as a pipe gives them. */
static ptrdiff_t buf_read(void *arg, void *out, size_t n)
{
    buf_t *b = arg;
    size_t left = b->n - b->at, k = n < left ? n : left;
    if (k > 1000) k = 1000 - (b->at % 7);
    if (k) memcpy(out, b->p + b->at, k); /* an empty archive has no buffer */
    b->at += k;
    return (ptrdiff_t)k;
}

static cap_backend_t *fresh_db(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    unlink(p);
    cap_lmdb_options_t o = {CAP_LMDB_NOSYNC, 0, 0, 0};
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_lmdb_open(p, &o, &b, NULL), CAP_OK);
    return b;
}

static uint64_t nblobs(cap_backend_t *b)
{
    cap_lmdb_stats_t st;
    memset(&st, 0, sizeof st);
    cap_lmdb_stats(b, &st, NULL);
    return st.blobs;
}

static uint64_t nroots(cap_backend_t *b)
{
    cap_lmdb_stats_t st;
    memset(&st, 0, sizeof st);
    cap_lmdb_stats(b, &st, NULL);
    return st.roots;
}

/* Every (hash, bytes) of a backend, in key order, as one digest. */
static int digest_one(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    buf_write(arg, h->bytes, 32);
    buf_write(arg, bytes, n);
    return 0;
}

static void digest(cap_backend_t *b, uint8_t out[32])
{
    buf_t all;
    memset(&all, 0, sizeof all);
    CHECK_EQ_INT(cap_backend_iterate(b, digest_one, &all, NULL), CAP_OK);
    SHA256(all.p, all.n, out);
    free(all.p);
}

static int import_buf(cap_backend_t *b, buf_t *in, unsigned flags, cap_archive_result_t *res, cap_err_t *e)
{
    in->at = 0;
    cap_archive_options_t o = CAP_ARCHIVE_OPTIONS_INIT;
    o.flags = flags;
    memset(e, 0, sizeof *e);
    return cap_archive_import(b, buf_read, in, &o, res, e);
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* The layout of docs/archive.md, read independently: the start of each
 * record (starts[nrec] = the end record) and the checksum verified. */
static size_t parse(const buf_t *a, size_t *starts, size_t max)
{
    static const uint8_t magic[8] = {0x89, 'C', 'A', 'P', 'A', 'R', '\r', '\n'};
    CHECK(a->n > 20 + 40 + 48 && memcmp(a->p, magic, 8) == 0);
    CHECK_EQ_INT(a->p[8] | a->p[9] << 8, 1); /* version */
    size_t at = 20, roots = a->p[16] | (size_t)a->p[17] << 8;
    for (size_t i = 0; i < roots; i++) at += 2 + (a->p[at] | (size_t)a->p[at + 1] << 8) + 32;
    size_t n = 0;
    for (;;) {
        uint64_t len = get64(a->p + at + 32);
        if (n < max) starts[n] = at;
        if (len == 0) break;
        at += 40 + len;
        n++;
    }
    CHECK_EQ_INT(get64(a->p + at + 40), n);
    uint8_t sum[32];
    SHA256(a->p, at + 56, sum);
    CHECK_EQ_INT(at + 56 + 32, a->n);
    CHECK_MEM(sum, a->p + at + 56, 32);
    return n;
}

/* An archive by hand: the given roots and records (in that order). */
static void build(buf_t *out, const cap_backend_root_t *roots, size_t nroots, const cap_backend_item_t *items,
                  size_t n, uint64_t claim_records)
{
    memset(out, 0, sizeof *out);
    uint8_t h[20] = {0x89, 'C', 'A', 'P', 'A', 'R', '\r', '\n', 1, 0, 0, 0, 0, 0, 0, 0, (uint8_t)nroots, 0, 0, 0};
    buf_write(out, h, 20);
    for (size_t i = 0; i < nroots; i++) {
        uint8_t len[2] = {(uint8_t)strlen(roots[i].name), 0};
        buf_write(out, len, 2);
        buf_write(out, roots[i].name, len[0]);
        buf_write(out, roots[i].hash.bytes, 32);
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t l[8];
        for (int k = 0; k < 8; k++) l[k] = (uint8_t)(items[i].n >> (8 * k));
        buf_write(out, items[i].hash.bytes, 32);
        buf_write(out, l, 8);
        buf_write(out, items[i].bytes, items[i].n);
        bytes += items[i].n;
    }
    uint8_t tail[56];
    memset(tail, 0, sizeof tail);
    for (int k = 0; k < 8; k++) {
        tail[40 + k] = (uint8_t)(claim_records >> (8 * k));
        tail[48 + k] = (uint8_t)(bytes >> (8 * k));
    }
    buf_write(out, tail, 56);
    uint8_t sum[32];
    SHA256(out->p, out->n, sum);
    buf_write(out, sum, 32);
}

static void test_round_trip(void)
{
    cap_backend_t *a = fresh_db("a.lmdb"), *b = fresh_db("b.lmdb");
    if (!a || !b) return;
    test_graph_t g1, g2, g3;
    test_graph_make(&g1, 41, 400);
    test_graph_make(&g2, 42, 150);
    test_graph_make(&g3, 43, 60);
    cap_backend_root_t r1 = {"one", g1.root}, r2 = {"two/x", g2.root};
    CHECK_EQ_INT(cap_backend_write_many(a, g1.items, g1.n, &r1, 1, NULL, NULL), CAP_OK);
    CHECK_EQ_INT(cap_backend_write_many(a, g2.items, g2.n, &r2, 1, NULL, NULL), CAP_OK);
    CHECK_EQ_INT(cap_backend_write_many(a, g3.items, g3.n, NULL, 0, NULL, NULL), CAP_OK);

    cap_backend_root_t roots[3] = {{"one", g1.root}, {"two/x", g2.root}, {NULL, g3.root}};
    buf_t arc;
    memset(&arc, 0, sizeof arc);
    cap_archive_result_t res;
    cap_err_t e;
    CHECK_EQ_INT(cap_archive_export(a, roots, 3, NULL, buf_write, &arc, &res, &e), CAP_OK);
    CHECK_EQ_INT(res.records, g1.n + g2.n + g3.n);
    CHECK_EQ_INT(res.roots, 3);
    CHECK_EQ_INT(res.archive_bytes, arc.n);
    size_t starts[2000];
    CHECK_EQ_INT(parse(&arc, starts, 2000), g1.n + g2.n + g3.n);

    CHECK_EQ_INT(import_buf(b, &arc, CAP_ARCHIVE_DRY_RUN, &res, &e), CAP_OK);
    CHECK_EQ_INT(nblobs(b), 0);
    CHECK_EQ_INT(res.roots_set, 2);
    CHECK_EQ_INT(import_buf(b, &arc, 0, &res, &e), CAP_OK);
    CHECK_EQ_INT(res.written, g1.n + g2.n + g3.n);
    CHECK_EQ_INT(res.roots_set, 2);
    uint8_t da[32], db[32];
    digest(a, da);
    digest(b, db);
    CHECK_MEM(da, db, 32);
    CHECK_EQ_INT(nroots(b), 2);
    cap_hash_t h;
    CHECK_EQ_INT(cap_backend_root_get(b, "two/x", &h, NULL), CAP_OK);
    CHECK_MEM(h.bytes, g2.root.bytes, 32);
    /* Again: nothing new. */
    CHECK_EQ_INT(import_buf(b, &arc, 0, &res, &e), CAP_OK);
    CHECK_EQ_INT(res.written, 0);

    /* --all: the named roots' graphs only. */
    buf_t all;
    memset(&all, 0, sizeof all);
    cap_archive_options_t o = CAP_ARCHIVE_OPTIONS_INIT;
    o.flags = CAP_ARCHIVE_ALL;
    CHECK_EQ_INT(cap_archive_export(a, NULL, 0, &o, buf_write, &all, &res, &e), CAP_OK);
    CHECK_EQ_INT(res.records, g1.n + g2.n);
    CHECK_EQ_INT(res.roots, 2);

    /* A root here with another hash: refused, then forced. */
    CHECK_EQ_INT(cap_backend_root_set(b, "one", &g3.root, NULL), CAP_OK);
    CHECK_EQ_INT(import_buf(b, &arc, 0, &res, &e), CAP_EBACKEND);
    CHECK(strstr(e.detail, "one") != NULL);
    CHECK_EQ_INT(cap_backend_root_get(b, "one", &h, NULL), CAP_OK);
    CHECK_MEM(h.bytes, g3.root.bytes, 32);
    CHECK_EQ_INT(import_buf(b, &arc, CAP_ARCHIVE_FORCE, &res, &e), CAP_OK);
    CHECK_EQ_INT(cap_backend_root_get(b, "one", &h, NULL), CAP_OK);
    CHECK_MEM(h.bytes, g1.root.bytes, 32);

    /* The export's own failures. */
    buf_t failing;
    memset(&failing, 0, sizeof failing);
    failing.fail_after = 2;
    CHECK_EQ_INT(cap_archive_export(a, roots, 3, NULL, buf_write, &failing, &res, &e), CAP_EBACKEND);
    CHECK(strstr(e.detail, "42") != NULL);
    free(failing.p);
    cap_backend_t *c = fresh_db("c.lmdb");
    CHECK_EQ_INT(cap_backend_write_many(c, g1.items, g1.n - 1, NULL, 0, NULL, NULL), CAP_OK); /* not the root */
    buf_t part;
    memset(&part, 0, sizeof part);
    CHECK_EQ_INT(cap_archive_export(c, roots, 1, NULL, buf_write, &part, &res, &e), CAP_EBLOBMISSING);
    CHECK(e.has_hash && memcmp(e.hash.bytes, g1.root.bytes, 32) == 0);
    cap_backend_t *d = fresh_db("d.lmdb");
    CHECK(import_buf(d, &part, 0, &res, &e) != CAP_OK); /* no end: refused */
    CHECK_EQ_INT(nblobs(d), 0);
    cap_backend_root_t badname = {"no way", g1.root};
    CHECK_EQ_INT(cap_archive_export(a, &badname, 1, NULL, buf_write, &part, &res, &e), CAP_EINVAL);
    free(part.p);
    cap_backend_free(c);
    cap_backend_free(d);
    free(all.p);
    free(arc.p);
    cap_backend_free(a);
    cap_backend_free(b);
    test_graph_free(&g1);
    test_graph_free(&g2);
    test_graph_free(&g3);
}

/* Every byte flipped, every truncation: nothing written, ever; a flip in a
 * record names that record. */
static void test_damage(void)
{
    cap_backend_t *a = fresh_db("src.lmdb"), *b = fresh_db("dst.lmdb");
    if (!a || !b) return;
    test_graph_t g;
    test_graph_make(&g, 51, 14);
    cap_backend_root_t r = {"small", g.root};
    CHECK_EQ_INT(cap_backend_write_many(a, g.items, g.n, &r, 1, NULL, NULL), CAP_OK);
    buf_t arc;
    memset(&arc, 0, sizeof arc);
    CHECK_EQ_INT(cap_archive_export(a, &r, 1, NULL, buf_write, &arc, NULL, NULL), CAP_OK);
    size_t starts[64];
    size_t nrec = parse(&arc, starts, 64);
    CHECK_EQ_INT(nrec, g.n);
    unsigned failed = 0, named = 0, in_records = 0;
    cap_archive_result_t res;
    cap_err_t e;
    size_t tried = 0;
    for (size_t i = 0; i < arc.n; i++) {
        /* Every byte but the middle of long records (every 29th there). */
        bool mid = false;
        for (size_t q = 0; q < nrec; q++)
            mid |= i > starts[q] + 300 && i + 64 < starts[q + 1];
        if (mid && i % 29) continue;
        tried++;
        arc.p[i] ^= 0x10;
        int rc = import_buf(b, &arc, 0, &res, &e);
        arc.p[i] ^= 0x10;
        failed += rc != CAP_OK;
        size_t rec = SIZE_MAX;
        for (size_t k = 0; k < nrec; k++)
            if (i >= starts[k] && i < starts[k + 1]) rec = k;
        if (rec != SIZE_MAX) {
            in_records++;
            bool ok = res.has_record && res.record == rec;
            named += ok;
            if (!ok) fprintf(stderr, "  flip at %zu (record %zu): error names %s %llu\n", i, rec,
                             res.has_record ? "record" : "no record", (unsigned long long)res.record);
        }
    }
    CHECK_EQ_INT(failed, tried);
    CHECK_EQ_INT(named, in_records);
    size_t cuts = 0;
    for (size_t len = 0; len < arc.n; len += len < 2000 || len + 100 > arc.n ? 1 : 31, cuts++) {
        buf_t cut = arc;
        cut.n = len;
        CHECK(import_buf(b, &cut, 0, &res, &e) != CAP_OK);
    }
    CHECK_EQ_INT(nblobs(b), 0);
    CHECK_EQ_INT(nroots(b), 0);
    printf("test_archive: an archive of %zu bytes: %zu bytes flipped one at a time and %zu truncations, each "
           "refused, nothing written; the %u flips inside records each named their record\n",
           arc.n, tried, cuts, named);

    /* Archives built by hand. */
    buf_t x;
    cap_backend_root_t rr = {"small", g.root};
    build(&x, &rr, 1, g.items, g.n, g.n); /* sound */
    CHECK_EQ_INT(import_buf(b, &x, CAP_ARCHIVE_DRY_RUN, &res, &e), CAP_OK);
    free(x.p);
    cap_backend_item_t *some = malloc(g.n * sizeof *some);
    size_t k = 0, drop = 2;
    for (size_t i = 0; i < g.n; i++)
        if (i != drop) some[k++] = g.items[i];
    build(&x, &rr, 1, some, k, k); /* a record missing from the closure */
    CHECK_EQ_INT(import_buf(b, &x, 0, &res, &e), CAP_EBLOBMISSING);
    CHECK(e.has_hash && memcmp(e.hash.bytes, g.items[drop].hash.bytes, 32) == 0);
    free(x.p);
    cap_backend_root_t nameless = {"", g.root}; /* no root set: only the archive's own check sees it */
    build(&x, &nameless, 1, some, k, k);
    CHECK_EQ_INT(import_buf(b, &x, 0, &res, &e), CAP_EBLOBMISSING);
    CHECK(e.has_hash && memcmp(e.hash.bytes, g.items[drop].hash.bytes, 32) == 0);
    free(x.p);
    some[k] = g.items[0];
    build(&x, &rr, 1, g.items, g.n, g.n); /* fine */
    free(x.p);
    cap_backend_item_t twice[64];
    memcpy(twice, g.items, g.n * sizeof *twice);
    twice[g.n] = g.items[3];
    build(&x, &rr, 1, twice, g.n + 1, g.n + 1); /* a record twice */
    CHECK_EQ_INT(import_buf(b, &x, 0, &res, &e), CAP_EDECODE);
    CHECK(res.has_record && res.record == g.n);
    free(x.p);
    cap_backend_root_t stray = {"stray", g.items[0].hash};
    stray.hash.bytes[0] ^= 1;
    build(&x, &stray, 1, g.items, g.n, g.n); /* a root the records lack */
    CHECK_EQ_INT(import_buf(b, &x, 0, &res, &e), CAP_EBLOBMISSING);
    CHECK(strstr(e.detail, "stray") != NULL);
    free(x.p);
    build(&x, &rr, 1, g.items, g.n, g.n + 1); /* a wrong count, checksum right */
    CHECK_EQ_INT(import_buf(b, &x, 0, &res, &e), CAP_EDECODE);
    buf_write(&x, "x", 1); /* and bytes after the end */
    free(x.p);
    build(&x, &rr, 1, g.items, g.n, g.n);
    buf_write(&x, "x", 1);
    CHECK_EQ_INT(import_buf(b, &x, 0, &res, &e), CAP_EDECODE);
    CHECK(e.what && strstr(e.what, "after the end") != NULL);
    free(x.p);
    CHECK_EQ_INT(nblobs(b), 0);
    free(some);
    free(arc.p);
    cap_backend_free(a);
    cap_backend_free(b);
    test_graph_free(&g);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/capstore_test_archive_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    test_round_trip();
    test_damage();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("test_archive");
}
