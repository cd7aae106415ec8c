/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The LMDB backend (persist.h: cap_lmdb_open):
 *   - open creates a single file (+ "-lock"); blobs survive close and reopen;
 *     stats count them;
 *   - read-only opens: a missing file is an error, writes are refused, and a
 *     read-write open of a file open read-only is refused;
 *   - the registry: one environment per file, whatever the path's spelling
 *     (./, a symlink), shared until the last handle goes; a fork()ed child
 *     opens its own;
 *   - growth: a tiny map grows by itself under single puts, batches and a
 *     value larger than the map; a max_map_size limit fails the batch
 *     cleanly (nothing of it stored, the database still usable); a map
 *     that another process grew while the file was open here is adopted;
 *   - iterate: every entry, early stop, a nested read from the callback, and
 *     a nested write that would need growth fails instead of deadlocking;
 *   - a file that is not LMDB is refused; an LMDB file that is not a capstore
 *     database (other keys) opens, but iterating it fails with a reason, and
 *     bytes under a hash key that are not a cap do not decode; verification
 *     catches bytes stored under the wrong hash;
 *   - version 2: bytes that are no encoding of a stored hash replace
 *     nothing (test_backend_encodings has the repairs), a batch naming a
 *     hash twice keeps the first, read_many and exists_many
 *     answer each hash from one snapshot, an empty value reads back. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_rng.h"

static const cap_alloc_t *L;
static char dir[256];

static test_rng_t rng = {0x13198A2E03707344ull};

static cap_t *make_cnode(void)
{
    cap_t *c = NULL;
    if (cap_cnode_new(&c, L, 8) != CAP_OK) return NULL;
    for (int i = 0; i < 16; i++) {
        cap_hash_t h = test_rng_hash(&rng);
        cap_target_t t = cap_target_of_hash(&h);
        cap_cnode_set(c, (uint32_t)(test_rng_next(&rng) % 256), &t);
    }
    return c;
}

static cap_t *make_data(size_t n)
{
    uint8_t *buf = malloc(n);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)test_rng_next(&rng);
    cap_t *c = NULL;
    cap_data_new_inline(&c, L, 4096, buf, n);
    free(buf);
    return c;
}

/* Options for a database that starts with a 64 KiB map (so that it grows),
 * without fsync. */
static cap_lmdb_options_t small_map(void)
{
    cap_lmdb_options_t o;
    memset(&o, 0, sizeof o);
    o.initial_map_size = 64 * 1024;
    o.flags = CAP_LMDB_NOSYNC;
    return o;
}

static const char *path_in(const char *name, char *buf)
{
    snprintf(buf, 512, "%s/%s", dir, name);
    return buf;
}

/* Open (creating) the database `name` in the test folder with small_map();
 * its path goes to path[512]. NULL (a failed check) if it does not open. */
static cap_backend_t *open_small(const char *name, char *path)
{
    cap_lmdb_options_t o = small_map();
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_lmdb_open(path_in(name, path), &o, &b, NULL), CAP_OK);
    return b;
}

/* Wait for a fork()ed child, which must have exited with 0. */
static void expect_child_ok(pid_t pid)
{
    int status = 0;
    CHECK(pid > 0);
    CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static bool file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Fetch with verification; true when it comes back equal to `c`. */
static bool fetch_equals(cap_backend_t *b, const cap_hash_t *h, const cap_t *c)
{
    cap_t *got = NULL;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = cap_persist_fetch(b, h, L, true, &got, &e);
    if (rc != CAP_OK) {
        fprintf(stderr, "fetch failed: %s (%s)\n", cap_strerror(rc), e.what ? e.what : "-");
        return false;
    }
    bool eq = c ? cap_equal(got, c) : true;
    cap_release(got);
    return eq;
}

static void test_open_and_persist(void)
{
    char p[512], lockp[600];
    path_in("basic.lmdb", p);
    snprintf(lockp, sizeof lockp, "%s-lock", p);
    cap_backend_t *b = NULL;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_lmdb_open(p, NULL, &b, &e), CAP_OK);
    CHECK(b != NULL);
    if (!b) return;
    CHECK(cap_backend_is_lmdb(b));
    CHECK(strcmp(b->name, "lmdb") == 0);
    CHECK(file_exists(p));    /* a file, not a directory */
    CHECK(file_exists(lockp));
    CHECK_EQ_INT(cap_backend_check(b, NULL), CAP_OK);

    enum { N = 50 };
    cap_t *caps[N];
    cap_hash_t hs[N];
    for (int i = 0; i < N; i++) {
        caps[i] = i % 10 == 9 ? make_data(5000) : make_cnode();
        CHECK_EQ_INT(cap_hash(caps[i], &hs[i]), CAP_OK);
    }
    /* Write-through singles, then a batch. */
    for (int i = 0; i < 10; i++) CHECK_EQ_INT(cap_persist_put(b, caps[i], NULL, &e), CAP_OK);
    CHECK_EQ_INT(cap_persist_put_batch(b, caps + 10, hs + 10, N - 10, L, NULL, &e), CAP_OK);
    CHECK_EQ_INT(cap_persist_put_batch(b, caps, hs, N, L, NULL, &e), CAP_OK); /* idempotent */
    CHECK_EQ_INT(cap_backend_flush(b, &e), CAP_OK);
    for (int i = 0; i < N; i++) CHECK_EQ_INT(cap_backend_exists(b, &hs[i], NULL), CAP_OK);
    cap_hash_t missing = test_rng_hash(&rng);
    CHECK_EQ_INT(cap_backend_exists(b, &missing, NULL), CAP_ENOTFOUND);
    cap_t *none = (cap_t *)1;
    CHECK_EQ_INT(cap_persist_fetch(b, &missing, L, true, &none, NULL), CAP_ENOTFOUND);
    CHECK(none == NULL);

    cap_lmdb_stats_t st;
    CHECK_EQ_INT(cap_lmdb_stats(b, &st, &e), CAP_OK);
    CHECK_EQ_INT(st.blobs, N);
    uint64_t bytes = 0;
    for (int i = 0; i < N; i++) {
        size_t sz;
        cap_wire_size(caps[i], &sz);
        bytes += sz;
    }
    CHECK_EQ_INT(st.bytes, bytes);
    CHECK(st.map_size >= st.used_bytes);
    CHECK(st.page_size >= 512);
    cap_backend_free(b);

    /* Reopen: everything is still there and verifies. */
    CHECK_EQ_INT(cap_lmdb_open(p, NULL, &b, &e), CAP_OK);
    for (int i = 0; i < N; i++) CHECK(fetch_equals(b, &hs[i], caps[i]));
    cap_backend_free(b);

    /* Read-only reopen. */
    cap_lmdb_options_t o;
    memset(&o, 0, sizeof o);
    o.flags = CAP_LMDB_READONLY;
    CHECK_EQ_INT(cap_lmdb_open(p, &o, &b, &e), CAP_OK);
    CHECK(b->flags & CAP_BACKEND_READONLY);
    for (int i = 0; i < N; i++) CHECK(fetch_equals(b, &hs[i], caps[i]));
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_persist_put(b, caps[0], NULL, &e), CAP_EBACKEND);
    CHECK(e.what && strcmp(e.what, "read-only") == 0);
    /* A read-write open while the environment is read-only in this process. */
    cap_backend_t *rw = NULL;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_lmdb_open(p, NULL, &rw, &e), CAP_EBACKEND);
    CHECK(rw == NULL);
    CHECK(e.what && strstr(e.what, "read-only") != NULL);
    cap_backend_free(b);
    /* Read-write first, then read-only shares it and refuses writes. */
    CHECK_EQ_INT(cap_lmdb_open(p, NULL, &rw, &e), CAP_OK);
    CHECK_EQ_INT(cap_lmdb_open(p, &o, &b, &e), CAP_OK);
    CHECK(fetch_equals(b, &hs[0], caps[0]));
    CHECK_EQ_INT(cap_persist_put(b, caps[0], NULL, NULL), CAP_EBACKEND);
    cap_backend_free(b);
    cap_backend_free(rw);

    /* Trusted flag passes through. */
    o.flags = CAP_LMDB_TRUSTED;
    CHECK_EQ_INT(cap_lmdb_open(p, &o, &b, &e), CAP_OK);
    CHECK(b->flags & CAP_BACKEND_TRUSTED);
    cap_backend_free(b);

    /* Missing file, read-only: an error, and no file is created. */
    char q[512];
    path_in("missing.lmdb", q);
    o.flags = CAP_LMDB_READONLY;
    memset(&e, 0, sizeof e);
    b = (cap_backend_t *)1;
    CHECK_EQ_INT(cap_lmdb_open(q, &o, &b, &e), CAP_EBACKEND);
    CHECK(b == NULL);
    CHECK(e.what && strcmp(e.what, "no such file") == 0);
    CHECK(!file_exists(q));
    CHECK_EQ_INT(cap_lmdb_open(NULL, NULL, &b, &e), CAP_EINVAL);
    /* A directory. */
    CHECK_EQ_INT(cap_lmdb_open(dir, NULL, &b, &e), CAP_EBACKEND);

    for (int i = 0; i < N; i++) cap_release(caps[i]);
}

static void test_registry(void)
{
    char p[512], alt[512], link[512];
    path_in("shared.lmdb", p);
    snprintf(alt, sizeof alt, "%s/./shared.lmdb", dir);
    path_in("link.lmdb", link);
    CHECK_EQ_INT(symlink(p, link), 0);

    cap_backend_t *a = NULL, *b = NULL, *c = NULL;
    CHECK_EQ_INT(cap_lmdb_open(p, NULL, &a, NULL), CAP_OK);
    CHECK_EQ_INT(cap_lmdb_open(alt, NULL, &b, NULL), CAP_OK);
    CHECK_EQ_INT(cap_lmdb_open(link, NULL, &c, NULL), CAP_OK);
    if (!a || !b || !c) return;
    CHECK(a->ctx != b->ctx); /* separate handles ... */
    cap_t *x = make_cnode();
    cap_hash_t hx;
    CHECK_EQ_INT(cap_persist_put(a, x, &hx, NULL), CAP_OK);
    CHECK(fetch_equals(b, &hx, x)); /* ... on one environment */
    CHECK(fetch_equals(c, &hx, x));
    cap_backend_free(a);
    CHECK(fetch_equals(b, &hx, x)); /* still open for the others */
    cap_t *y = make_cnode();
    cap_hash_t hy;
    CHECK_EQ_INT(cap_persist_put(c, y, &hy, NULL), CAP_OK);
    cap_backend_free(b);
    cap_backend_free(c);
    /* All closed; a new open finds both. */
    CHECK_EQ_INT(cap_lmdb_open(p, NULL, &a, NULL), CAP_OK);
    CHECK(fetch_equals(a, &hx, x));
    CHECK(fetch_equals(a, &hy, y));

    /* A fork()ed child must open its own environment, and can. */
    cap_t *z = make_cnode();
    cap_hash_t hz;
    cap_hash(z, &hz);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        cap_backend_t *cb = NULL;
        int ok = cap_lmdb_open(p, NULL, &cb, NULL) == CAP_OK && cb->ctx != a->ctx &&
                 cap_persist_put(cb, z, NULL, NULL) == CAP_OK;
        cap_t *back = NULL;
        ok = ok && cap_persist_fetch(cb, &hx, L, true, &back, NULL) == CAP_OK;
        cap_release(back);
        cap_backend_free(cb);
        _exit(ok ? 0 : 3);
    }
    expect_child_ok(pid);
    CHECK(fetch_equals(a, &hz, z)); /* the parent sees the child's commit */
    cap_backend_free(a);
    cap_release(x);
    cap_release(y);
    cap_release(z);
}

static void test_growth(void)
{
    char p[512];
    path_in("grow.lmdb", p);
    cap_lmdb_options_t o = small_map();
    cap_backend_t *b = NULL;
    cap_err_t e;
    CHECK_EQ_INT(cap_lmdb_open(p, &o, &b, &e), CAP_OK);
    if (!b) return;
    cap_lmdb_stats_t st0, st;
    CHECK_EQ_INT(cap_lmdb_stats(b, &st0, NULL), CAP_OK);
    CHECK(st0.map_size <= 64 * 1024 + 4096);

    enum { N = 3000 };
    cap_t **caps = calloc(N, sizeof *caps);
    cap_hash_t *hs = calloc(N, sizeof *hs);
    for (int i = 0; i < N; i++) {
        caps[i] = make_cnode();
        cap_hash(caps[i], &hs[i]);
    }
    /* Singles: they fill the map one at a time (reactive growth). */
    for (int i = 0; i < 300; i++) {
        memset(&e, 0, sizeof e);
        int rc = cap_persist_put(b, caps[i], NULL, &e);
        if (rc != CAP_OK) fprintf(stderr, "put %d: %s\n", i, e.what ? e.what : "?");
        CHECK_EQ_INT(rc, CAP_OK);
    }
    /* Batches of 100, then one big one. */
    for (int i = 300; i < 1500; i += 100) CHECK_EQ_INT(cap_persist_put_batch(b, caps + i, hs + i, 100, L, NULL, &e), CAP_OK);
    CHECK_EQ_INT(cap_persist_put_batch(b, caps + 1500, hs + 1500, N - 1500, L, NULL, &e), CAP_OK);
    /* A single value far larger than the map. */
    cap_t *big = make_data(4u << 20);
    cap_hash_t hbig;
    CHECK_EQ_INT(cap_persist_put(b, big, &hbig, &e), CAP_OK);
    CHECK_EQ_INT(cap_lmdb_stats(b, &st, NULL), CAP_OK);
    CHECK_EQ_INT(st.blobs, N + 1);
    CHECK(st.map_size > (4u << 20));
    CHECK(st.map_size >= 2 * st0.map_size);
    for (int i = 0; i < N; i += 7) CHECK(fetch_equals(b, &hs[i], caps[i]));
    CHECK(fetch_equals(b, &hbig, big));
    cap_backend_free(b);

    /* Reopen with a small initial size: the file's larger map is adopted. */
    CHECK_EQ_INT(cap_lmdb_open(p, &o, &b, &e), CAP_OK);
    CHECK_EQ_INT(cap_lmdb_stats(b, &st0, NULL), CAP_OK);
    CHECK(st0.map_size >= st.used_bytes);
    CHECK(fetch_equals(b, &hs[N - 1], caps[N - 1]));
    CHECK(fetch_equals(b, &hbig, big));
    cap_backend_free(b);

    /* A limit: a batch past it fails whole, and the database stays usable. */
    char q[512];
    path_in("limit.lmdb", q);
    o.initial_map_size = 64 * 1024;
    o.max_map_size = 256 * 1024;
    CHECK_EQ_INT(cap_lmdb_open(q, &o, &b, &e), CAP_OK);
    CHECK_EQ_INT(cap_persist_put_batch(b, caps, hs, 100, L, NULL, &e), CAP_OK); /* ~60 KB */
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_persist_put_batch(b, caps + 100, hs + 100, 1000, L, NULL, &e), CAP_EBACKEND); /* ~600 KB */
    CHECK(e.what && strstr(e.what, "limit") != NULL);
    for (int i = 100; i < 1100; i += 50) CHECK_EQ_INT(cap_backend_exists(b, &hs[i], NULL), CAP_ENOTFOUND);
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_persist_put(b, big, NULL, &e), CAP_EBACKEND);
    CHECK_EQ_INT(cap_persist_put_batch(b, caps + 100, hs + 100, 20, L, NULL, &e), CAP_OK);
    CHECK_EQ_INT(cap_lmdb_stats(b, &st, NULL), CAP_OK);
    CHECK_EQ_INT(st.blobs, 120);
    CHECK(st.map_size <= 256 * 1024);
    for (int i = 0; i < 120; i++) CHECK(fetch_equals(b, &hs[i], caps[i]));
    cap_backend_free(b);

    cap_release(big);
    for (int i = 0; i < N; i++) cap_release(caps[i]);
    free(caps);
    free(hs);
}

/* Another process grows the map while this one has the file open with a
 * smaller map: LMDB then refuses this process's transactions (map resized)
 * until it adopts the new size, which the backend does by itself, for reads
 * and writes alike. */
static void test_growth_by_another_process(void)
{
    char p[512];
    cap_lmdb_options_t o = small_map();
    cap_backend_t *b = open_small("shared-growth.lmdb", p);
    if (!b) return;
    cap_t *mine = make_cnode(), *big = make_data(2u << 20), *later = make_cnode();
    cap_hash_t hmine, hbig, hlater;
    CHECK_EQ_INT(cap_persist_put(b, mine, &hmine, NULL), CAP_OK);
    cap_hash(big, &hbig);
    cap_lmdb_stats_t st0, st;
    CHECK_EQ_INT(cap_lmdb_stats(b, &st0, NULL), CAP_OK);
    CHECK(st0.map_size < (2u << 20));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        cap_backend_t *cb = NULL;
        int ok = cap_lmdb_open(p, &o, &cb, NULL) == CAP_OK && cap_persist_put(cb, big, NULL, NULL) == CAP_OK;
        cap_backend_free(cb);
        _exit(ok ? 0 : 3);
    }
    expect_child_ok(pid);
    /* A read, a write and the stats, all on the grown file. */
    CHECK(fetch_equals(b, &hbig, big));
    CHECK(fetch_equals(b, &hmine, mine));
    cap_err_t e;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_persist_put(b, later, &hlater, &e), CAP_OK);
    CHECK(fetch_equals(b, &hlater, later));
    CHECK_EQ_INT(cap_lmdb_stats(b, &st, NULL), CAP_OK);
    CHECK_EQ_INT(st.blobs, 3);
    CHECK(st.map_size >= (2u << 20));
    cap_backend_free(b);
    cap_release(mine);
    cap_release(big);
    cap_release(later);
}

typedef struct iter_state {
    cap_backend_t *b;
    int count, bad, stop_after;
    int nested_write_rc;
    cap_t **big;
    cap_hash_t *big_h;
    int big_n;
} iter_state_t;

static int iter_cb(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    iter_state_t *s = arg;
    s->count++;
    cap_t *c = NULL;
    if (cap_persist_decode(h, bytes, n, L, true, &c, NULL) != CAP_OK) s->bad++;
    cap_release(c);
    /* A nested read on the same environment. */
    if (s->count == 1 && !fetch_equals(s->b, h, NULL)) s->bad++;
    /* A nested write that needs the map to grow: refused, not a deadlock. */
    if (s->count == 1 && s->big)
        s->nested_write_rc = cap_persist_put_batch(s->b, s->big, s->big_h, s->big_n, L, NULL, NULL);
    if (s->stop_after && s->count == s->stop_after) return 42;
    return 0;
}

static void test_iterate(void)
{
    char p[512];
    cap_backend_t *b = open_small("iter.lmdb", p);
    if (!b) return;
    enum { N = 40, BIG = 600 };
    cap_t *caps[N];
    cap_hash_t hs[N];
    for (int i = 0; i < N; i++) caps[i] = make_cnode();
    CHECK_EQ_INT(cap_persist_put_batch(b, caps, NULL, N, L, hs, NULL), CAP_OK);

    iter_state_t s;
    memset(&s, 0, sizeof s);
    s.b = b;
    CHECK_EQ_INT(cap_backend_iterate(b, iter_cb, &s, NULL), CAP_OK);
    CHECK_EQ_INT(s.count, N);
    CHECK_EQ_INT(s.bad, 0);
    memset(&s, 0, sizeof s);
    s.b = b;
    s.stop_after = 5;
    CHECK_EQ_INT(cap_backend_iterate(b, iter_cb, &s, NULL), 42);
    CHECK_EQ_INT(s.count, 5);

    cap_t **big = calloc(BIG, sizeof *big);
    cap_hash_t *big_h = calloc(BIG, sizeof *big_h);
    for (int i = 0; i < BIG; i++) {
        big[i] = make_cnode();
        cap_hash(big[i], &big_h[i]);
    }
    memset(&s, 0, sizeof s);
    s.b = b;
    s.big = big;
    s.big_h = big_h;
    s.big_n = BIG;
    CHECK_EQ_INT(cap_backend_iterate(b, iter_cb, &s, NULL), CAP_OK);
    CHECK_EQ_INT(s.nested_write_rc, CAP_EBACKEND);
    CHECK_EQ_INT(cap_backend_exists(b, &big_h[0], NULL), CAP_ENOTFOUND);
    /* Outside an iteration the same batch grows the map and goes in. */
    CHECK_EQ_INT(cap_persist_put_batch(b, big, big_h, BIG, L, NULL, NULL), CAP_OK);
    CHECK_EQ_INT(cap_backend_exists(b, &big_h[BIG - 1], NULL), CAP_OK);

    /* Bytes stored under the wrong hash: fetch refuses them. */
    cap_hash_t wrong = test_rng_hash(&rng);
    uint8_t *wire;
    size_t wn;
    CHECK_EQ_INT(cap_wire_encode_alloc(caps[0], L, &wire, &wn), CAP_OK);
    CHECK_EQ_INT(cap_backend_write(b, &wrong, wire, wn, NULL), CAP_OK);
    L->deallocate(L->ctx, wire, wn);
    cap_t *c = (cap_t *)1;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_persist_fetch(b, &wrong, L, true, &c, &e), CAP_EMISMATCH);
    CHECK(c == NULL);
    CHECK_EQ_INT(cap_persist_fetch(b, &wrong, L, false, &c, &e), CAP_OK); /* trusted: not checked */
    cap_release(c);
    /* Garbage bytes: EDECODE with a rule and an offset. */
    cap_hash_t junk_h = test_rng_hash(&rng);
    uint8_t junk[7] = {9, 1, 2, 3, 4, 5, 6};
    CHECK_EQ_INT(cap_backend_write(b, &junk_h, junk, sizeof junk, NULL), CAP_OK);
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_persist_fetch(b, &junk_h, L, true, &c, &e), CAP_EDECODE);
    CHECK(e.what != NULL);
    memset(&s, 0, sizeof s);
    s.b = b;
    CHECK_EQ_INT(cap_backend_iterate(b, iter_cb, &s, NULL), CAP_OK);
    CHECK_EQ_INT(s.count, N + BIG + 2);
    CHECK_EQ_INT(s.bad, 2);

    cap_backend_free(b);
    for (int i = 0; i < N; i++) cap_release(caps[i]);
    for (int i = 0; i < BIG; i++) cap_release(big[i]);
    free(big);
    free(big_h);
}

static void test_not_lmdb(void)
{
    char p[512];
    path_in("junk.lmdb", p);
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL);
    if (!f) return;
    for (int i = 0; i < 16384; i++) fputc((int)(test_rng_next(&rng) & 0xff), f);
    fclose(f);
    cap_backend_t *b = (cap_backend_t *)1;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_lmdb_open(p, NULL, &b, &e), CAP_EBACKEND);
    CHECK(b == NULL);
    CHECK(e.what != NULL);
    /* An empty file is a new database. */
    path_in("empty.lmdb", p);
    f = fopen(p, "wb");
    fclose(f);
    CHECK_EQ_INT(cap_lmdb_open(p, NULL, &b, &e), CAP_OK);
    cap_lmdb_stats_t st;
    CHECK_EQ_INT(cap_lmdb_stats(b, &st, NULL), CAP_OK);
    CHECK_EQ_INT(st.blobs, 0);
    CHECK_EQ_INT(cap_lmdb_stats(NULL, &st, NULL), CAP_EINVAL);
    cap_backend_t *mem = NULL;
    cap_mem_backend_new(NULL, &mem);
    CHECK_EQ_INT(cap_lmdb_stats(mem, &st, NULL), CAP_EINVAL);
    CHECK(!cap_backend_is_lmdb(mem));
    cap_backend_free(mem);
    cap_backend_free(b);
}

static int count_entries(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    (void)h;
    (void)bytes;
    (void)n;
    (*(int *)arg)++;
    return 0;
}

/* An LMDB file written by someone else: a key that is no hash, and under a
 * 32-byte key bytes that are no cap. */
static void test_foreign_lmdb(void)
{
    char p[512];
    path_in("foreign.lmdb", p);
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    uint8_t hk[32];
    memset(hk, 0xab, sizeof hk);
    MDB_val k1 = {5, (void *)"hello"}, v1 = {5, (void *)"world"};
    MDB_val k2 = {32, hk}, v2 = {3, (void *)"\x09\x09\x09"};
    int ok = mdb_env_create(&env) == 0 && mdb_env_open(env, p, MDB_NOSUBDIR, 0644) == 0 &&
             mdb_txn_begin(env, NULL, 0, &txn) == 0 && mdb_dbi_open(txn, NULL, 0, &dbi) == 0 &&
             mdb_put(txn, dbi, &k1, &v1, 0) == 0 && mdb_put(txn, dbi, &k2, &v2, 0) == 0 &&
             mdb_txn_commit(txn) == 0;
    CHECK(ok);
    mdb_env_close(env);
    if (!ok) return;
    cap_backend_t *b = NULL;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    /* Not migrated to file format 2 (a key that is no hash): refused
     * writable, read as a format-1 file read-only. */
    CHECK_EQ_INT(cap_lmdb_open(p, NULL, &b, &e), CAP_EBACKEND);
    CHECK(e.what && strstr(e.what, "not a capstore database") != NULL);
    cap_lmdb_options_t ro = {CAP_LMDB_READONLY, 0, 0, 0};
    CHECK_EQ_INT(cap_lmdb_open(p, &ro, &b, &e), CAP_OK);
    if (!b) return;
    /* Keys sort byte-wise: "hello" (0x68...) comes before the 0xab.. key, so
     * the iteration stops at it before the callback sees anything. */
    int seen = 0;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_backend_iterate(b, count_entries, &seen, &e), CAP_EBACKEND);
    CHECK(e.what && strstr(e.what, "not a capstore database") != NULL);
    CHECK_EQ_INT(seen, 0);
    cap_hash_t h;
    memcpy(h.bytes, hk, 32);
    cap_t *c = NULL;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_persist_fetch(b, &h, L, true, &c, &e), CAP_EDECODE);
    CHECK(c == NULL);
    cap_backend_free(b);
}

/* Batches are put in key order (a radix sort on the first 8 bytes, then the
 * whole key): keys that share prefixes, duplicates, and every value read
 * back under its own key. */
static void test_batch_order(void)
{
    char p[512];
    path_in("order.lmdb", p);
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_lmdb_open(p, NULL, &b, NULL), CAP_OK);
    if (!b) return;
    enum { N = 300 };
    static cap_backend_item_t items[N];
    static uint8_t vals[N][24];
    for (int i = 0; i < N; i++) {
        items[i].hash = test_rng_hash(&rng);
        if (i % 3 == 1) memcpy(items[i].hash.bytes, items[i - 1].hash.bytes, 8); /* same prefix */
        if (i % 7 == 2) memcpy(items[i].hash.bytes, items[0].hash.bytes, 8 + (size_t)(i % 20));
        if (i % 50 == 49) items[i].hash = items[i - 10].hash; /* a duplicate key */
        for (int j = 0; j < 24; j++) vals[i][j] = (uint8_t)(i + j);
        items[i].bytes = vals[i];
        items[i].n = 1 + (size_t)(i % 24);
    }
    /* Duplicates carry the same bytes (content addressing). */
    for (int i = 49; i < N; i += 50) {
        items[i].bytes = items[i - 10].bytes;
        items[i].n = items[i - 10].n;
    }
    CHECK_EQ_INT(cap_backend_write_batch(b, items, N, NULL), CAP_OK);
    for (int i = 0; i < N; i++) {
        uint8_t *got = NULL;
        size_t n = 0;
        CHECK_EQ_INT(cap_backend_read(b, &items[i].hash, L, &got, &n, NULL), CAP_OK);
        CHECK(n == items[i].n && got && memcmp(got, items[i].bytes, n) == 0);
        if (got) L->deallocate(L->ctx, got, n);
    }
    cap_lmdb_stats_t st;
    CHECK_EQ_INT(cap_lmdb_stats(b, &st, NULL), CAP_OK);
    CHECK_EQ_INT(st.blobs, N - N / 50);
    cap_backend_free(b);
}

static void remove_dir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* Writes repair, reads come many at once, an empty value reads back: the
 * version-2 entries of the LMDB backend. */
static void test_v2_entries(void)
{
    char path[512];
    cap_backend_t *b = open_small("v2.lmdb", path);
    if (!b) return;
    /* An empty value first: its node ends exactly at the end of its page,
     * where LMDB points the (empty) data. */
    cap_hash_t he;
    memset(he.bytes, 0xee, 32);
    CHECK_EQ_INT(cap_backend_write(b, &he, NULL, 0, NULL), CAP_OK);
    uint8_t *bytes = (uint8_t *)1;
    size_t n = 9;
    CHECK_EQ_INT(cap_backend_read(b, &he, L, &bytes, &n, NULL), CAP_OK);
    CHECK(bytes == NULL && n == 0);
    CHECK_EQ_INT(cap_backend_exists(b, &he, NULL), CAP_OK);

    uint8_t a[300], c[500];
    memset(a, 0xaa, sizeof a);
    memset(c, 0xcc, sizeof c);
    cap_hash_t h;
    memset(h.bytes, 0x11, 32);
    cap_backend_item_t it = {h, a, sizeof a};
    cap_backend_write_result_t r = {9, 9};
    CHECK_EQ_INT(cap_backend_write_many(b, &it, 1, NULL, 0, &r, NULL), CAP_OK);
    CHECK(r.written == 1 && r.repaired == 0);
    CHECK_EQ_INT(cap_backend_write_many(b, &it, 1, NULL, 0, &r, NULL), CAP_OK);
    CHECK(r.written == 0 && r.repaired == 0);
    /* Other bytes under the hash that are no encoding of it replace nothing
     * (cap_backend_replaces; test_backend_encodings repairs with caps). */
    cap_backend_item_t other = {h, c, sizeof c};
    CHECK_EQ_INT(cap_backend_write_many(b, &other, 1, NULL, 0, &r, NULL), CAP_OK);
    CHECK(r.written == 0 && r.repaired == 0);
    CHECK_EQ_INT(cap_backend_read(b, &h, L, &bytes, &n, NULL), CAP_OK);
    CHECK(n == sizeof a && bytes && memcmp(bytes, a, n) == 0);
    free(bytes);
    /* A batch naming a hash twice keeps the first (the second is no encoding of it). */
    cap_hash_t h2;
    memset(h2.bytes, 0x22, 32);
    cap_backend_item_t two[3] = {{h2, a, 10}, {h, a, sizeof a}, {h2, c, 20}};
    CHECK_EQ_INT(cap_backend_write_many(b, two, 3, NULL, 0, &r, NULL), CAP_OK);
    CHECK(r.written == 1 && r.repaired == 0);
    CHECK_EQ_INT(cap_backend_read(b, &h2, L, &bytes, &n, NULL), CAP_OK);
    CHECK(n == 10 && bytes && memcmp(bytes, a, 10) == 0);
    free(bytes);
    /* A root over bytes that are no cap (their children cannot be read) is
     * refused (test_lmdb_format.c has the roots). */
    cap_backend_root_t root = {"main", h};
    CHECK_EQ_INT(cap_backend_write_many(b, NULL, 0, &root, 1, &r, NULL), CAP_EDECODE);

    /* read_many / exists_many: one snapshot, a code each. */
    cap_hash_t hs[4] = {h, h2, he, h};
    memset(hs[3].bytes, 0x99, 32);
    uint8_t *bs[4];
    size_t ls[4];
    int codes[4];
    CHECK_EQ_INT(cap_backend_read_many(b, hs, 4, L, bs, ls, codes, NULL), CAP_OK);
    CHECK(codes[0] == CAP_OK && ls[0] == sizeof a && bs[0] && memcmp(bs[0], a, sizeof a) == 0);
    CHECK(codes[1] == CAP_OK && ls[1] == 10);
    CHECK(codes[2] == CAP_OK && ls[2] == 0 && bs[2] == NULL);
    CHECK(codes[3] == CAP_ENOTFOUND && bs[3] == NULL);
    for (int i = 0; i < 4; i++) free(bs[i]);
    CHECK_EQ_INT(cap_backend_exists_many(b, hs, 4, codes, NULL), CAP_OK);
    CHECK(codes[0] == CAP_OK && codes[1] == CAP_OK && codes[2] == CAP_OK && codes[3] == CAP_ENOTFOUND);
    cap_lmdb_stats_t st;
    CHECK_EQ_INT(cap_lmdb_stats(b, &st, NULL), CAP_OK);
    CHECK_EQ_INT(st.blobs, 3);
    cap_backend_free(b);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    L = cap_alloc_libc();
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/capstore-test-lmdb-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_open_and_persist();
    test_registry();
    test_growth();
    test_growth_by_another_process();
    test_iterate();
    test_not_lmdb();
    test_foreign_lmdb();
    test_batch_order();
    test_v2_entries();
    remove_dir();
    return check_done("test_lmdb");
}
