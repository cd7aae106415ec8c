/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* LMDB file format 2 and named roots (docs/persistence.md, "The file"):
 *   - a format-1 file, built here with the LMDB API as the old code wrote
 *     it (the unnamed database, 32-byte keys), is read as before when
 *     opened read-only and migrated by the first writable open, every blob
 *     kept; the unnamed database then holds only the three named ones;
 *   - four processes opening one format-1 file writable at once migrate it
 *     once;
 *   - a later format, a missing named database, a foreign file are refused;
 *   - roots: set only over a complete closure (stored, or in the same
 *     batch), names checked, get / list (sorted) / delete, a damaged blob
 *     under a root, the stats. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "lmdb_raw.h"
#include "test_graph.h"

static char dir[256];

static const char *path_in(const char *name, char *buf)
{
    snprintf(buf, 512, "%s/%s", dir, name);
    return buf;
}

/* The old layout: every blob in the unnamed database. */
static void write_format1(const char *p, const test_graph_t *g)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int ok = mdb_env_create(&env) == 0 && mdb_env_set_mapsize(env, 64u << 20) == 0 &&
             mdb_env_open(env, p, MDB_NOSUBDIR, 0644) == 0 && mdb_txn_begin(env, NULL, 0, &txn) == 0 &&
             mdb_dbi_open(txn, NULL, 0, &dbi) == 0;
    for (size_t i = 0; ok && i < g->n; i++) {
        MDB_val k = {32, (void *)g->items[i].hash.bytes}, v = {g->items[i].n, (void *)g->items[i].bytes};
        ok = mdb_put(txn, dbi, &k, &v, 0) == 0;
    }
    ok = ok && mdb_txn_commit(txn) == 0;
    CHECK(ok);
    mdb_env_close(env);
}

/* The keys of the unnamed database, as LMDB sees them: count, and whether
 * each is one of the three names. */
static int main_keys(const char *p, int *names)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_cursor *cur;
    int n = -1;
    *names = 0;
    if (mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 4) == 0 &&
        mdb_env_open(env, p, MDB_NOSUBDIR | MDB_RDONLY, 0644) == 0 &&
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0 && mdb_dbi_open(txn, NULL, 0, &dbi) == 0 &&
        mdb_cursor_open(txn, dbi, &cur) == 0) {
        MDB_val k, v;
        n = 0;
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            n++;
            if ((k.mv_size == 5 && (!memcmp(k.mv_data, "blobs", 5) || !memcmp(k.mv_data, "roots", 5))) ||
                (k.mv_size == 4 && !memcmp(k.mv_data, "meta", 4)))
                (*names)++;
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return n;
}

/* Every item of g stored, decoding and hashing to its key. */
static bool holds(cap_backend_t *b, const test_graph_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        cap_t *c = NULL;
        if (cap_persist_fetch(b, &g->items[i].hash, cap_alloc_libc(), true, &c, NULL) != CAP_OK) return false;
        cap_release(c);
    }
    return true;
}

static uint64_t blob_count(cap_backend_t *b, uint32_t *format)
{
    cap_lmdb_stats_t st;
    memset(&st, 0, sizeof st);
    CHECK_EQ_INT(cap_lmdb_stats(b, &st, NULL), CAP_OK);
    if (format) *format = st.format;
    return st.blobs;
}

static int count_roots(void *arg, const char *name, const cap_hash_t *h)
{
    (void)name;
    (void)h;
    (*(int *)arg)++;
    return 0;
}

static void test_migration(void)
{
    char p[512];
    path_in("old.lmdb", p);
    test_graph_t g;
    test_graph_make(&g, 1, 400);
    write_format1(p, &g);

    /* Read-only: format 1, read as before, no roots. */
    cap_lmdb_options_t ro = {CAP_LMDB_READONLY, 0, 0, 0};
    cap_backend_t *b = NULL;
    cap_err_t e;
    CHECK_EQ_INT(cap_lmdb_open(p, &ro, &b, &e), CAP_OK);
    if (!b) return;
    uint32_t format = 0;
    CHECK_EQ_INT(blob_count(b, &format), g.n);
    CHECK_EQ_INT(format, 1);
    CHECK(holds(b, &g));
    int nroots = 0;
    CHECK_EQ_INT(cap_backend_root_list(b, count_roots, &nroots, &e), CAP_OK);
    CHECK_EQ_INT(nroots, 0);
    cap_hash_t h;
    CHECK_EQ_INT(cap_backend_root_get(b, "x", &h, &e), CAP_ENOTFOUND);
    cap_backend_free(b);
    int names;
    CHECK_EQ_INT(main_keys(p, &names), (int)g.n); /* untouched */

    /* Writable: migrated in the open; every blob kept. */
    CHECK_EQ_INT(cap_lmdb_open(p, NULL, &b, &e), CAP_OK);
    if (!b) return;
    CHECK_EQ_INT(blob_count(b, &format), g.n);
    CHECK_EQ_INT(format, 2);
    CHECK(holds(b, &g));
    cap_backend_root_t r = {"old/root", g.root};
    CHECK_EQ_INT(cap_backend_write_many(b, NULL, 0, &r, 1, NULL, &e), CAP_OK);
    cap_backend_free(b);
    CHECK_EQ_INT(main_keys(p, &names), 3);
    CHECK_EQ_INT(names, 3);

    /* Opened again, either way: format 2, the root there. */
    CHECK_EQ_INT(cap_lmdb_open(p, &ro, &b, &e), CAP_OK);
    if (b) {
        CHECK_EQ_INT(blob_count(b, &format), g.n);
        CHECK_EQ_INT(format, 2);
        CHECK(holds(b, &g));
        memset(&h, 0, sizeof h);
        CHECK_EQ_INT(cap_backend_root_get(b, "old/root", &h, &e), CAP_OK);
        CHECK_MEM(h.bytes, g.root.bytes, 32);
        cap_backend_free(b);
    }
    test_graph_free(&g);
}

/* Four processes open one format-1 file writable at once: each succeeds,
 * the blobs are all there once, the unnamed database holds three keys. */
static void test_migration_race(void)
{
    char p[512];
    path_in("race.lmdb", p);
    test_graph_t g;
    test_graph_make(&g, 2, 3000);
    write_format1(p, &g);
    pid_t kids[4];
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            cap_backend_t *b = NULL;
            if (cap_lmdb_open(p, NULL, &b, NULL) != CAP_OK) _exit(3);
            cap_lmdb_stats_t st;
            if (cap_lmdb_stats(b, &st, NULL) != CAP_OK || st.format != 2 || st.blobs != g.n) _exit(4);
            cap_backend_free(b);
            _exit(0);
        }
    }
    for (int i = 0; i < 4; i++) {
        int status = 0;
        waitpid(kids[i], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    int names;
    CHECK_EQ_INT(main_keys(p, &names), 3);
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_lmdb_open(p, NULL, &b, NULL), CAP_OK);
    if (b) {
        CHECK_EQ_INT(blob_count(b, NULL), g.n);
        CHECK(holds(b, &g));
        cap_backend_free(b);
    }
    test_graph_free(&g);
}

/* A format record that says 3, and a format-2 file without "blobs". */
static void test_refusals(void)
{
    char p[512], q[512];
    path_in("future.lmdb", p);
    path_in("nameless.lmdb", q);
    for (int which = 0; which < 2; which++) {
        MDB_env *env = NULL;
        MDB_txn *txn = NULL;
        MDB_dbi meta, other;
        uint8_t three[4] = {3, 0, 0, 0}, two[4] = {2, 0, 0, 0};
        MDB_val k = {6, (void *)"format"}, v = {4, which == 0 ? three : two};
        int ok = mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 4) == 0 &&
                 mdb_env_open(env, which == 0 ? p : q, MDB_NOSUBDIR, 0644) == 0 &&
                 mdb_txn_begin(env, NULL, 0, &txn) == 0 && mdb_dbi_open(txn, "meta", MDB_CREATE, &meta) == 0 &&
                 mdb_put(txn, meta, &k, &v, 0) == 0 && mdb_dbi_open(txn, "roots", MDB_CREATE, &other) == 0 &&
                 (which == 1 || mdb_dbi_open(txn, "blobs", MDB_CREATE, &other) == 0) && mdb_txn_commit(txn) == 0;
        CHECK(ok);
        mdb_env_close(env);
    }
    cap_backend_t *b = NULL;
    cap_err_t e;
    cap_lmdb_options_t ro = {CAP_LMDB_READONLY, 0, 0, 0};
    for (int rw = 0; rw < 2; rw++) {
        memset(&e, 0, sizeof e);
        CHECK_EQ_INT(cap_lmdb_open(p, rw ? NULL : &ro, &b, &e), CAP_EBACKEND);
        CHECK(e.what && strstr(e.what, "newer") != NULL);
        CHECK(strstr(e.detail, "format 3") != NULL);
        memset(&e, 0, sizeof e);
        CHECK_EQ_INT(cap_lmdb_open(q, rw ? NULL : &ro, &b, &e), CAP_EBACKEND);
        CHECK(e.what && strstr(e.what, "damaged") != NULL);
    }
}

typedef struct name_list {
    char names[8][300];
    int n;
} name_list_t;

static int add_name(void *arg, const char *name, const cap_hash_t *h)
{
    name_list_t *acc = arg;
    (void)h;
    if (acc->n < 8) snprintf(acc->names[acc->n], 300, "%s", name);
    acc->n++;
    return 0;
}

static void test_roots(void)
{
    char p[512];
    path_in("roots.lmdb", p);
    cap_backend_t *b = NULL;
    cap_err_t e;
    CHECK_EQ_INT(cap_lmdb_open(p, NULL, &b, &e), CAP_OK);
    if (!b) return;
    CHECK(cap_backend_has_roots(b));
    test_graph_t g, g2;
    test_graph_make(&g, 3, 200);
    test_graph_make(&g2, 4, 50);

    /* Nothing stored: refused, naming a hash that is missing. */
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_backend_root_set(b, "main", &g.root, &e), CAP_EBLOBMISSING);
    CHECK(e.has_hash && memcmp(e.hash.bytes, g.root.bytes, 32) == 0);
    CHECK(strstr(e.detail, "root main") != NULL);

    /* The blobs and the root in one batch. */
    cap_backend_root_t r = {"main", g.root};
    cap_backend_write_result_t res;
    CHECK_EQ_INT(cap_backend_write_many(b, g.items, g.n, &r, 1, &res, &e), CAP_OK);
    CHECK_EQ_INT(res.written, g.n);
    cap_hash_t h;
    CHECK_EQ_INT(cap_backend_root_get(b, "main", &h, &e), CAP_OK);
    CHECK_MEM(h.bytes, g.root.bytes, 32);

    /* A batch missing one blob of the closure writes nothing at all. */
    size_t drop = g2.n / 3;
    cap_backend_item_t *part = malloc(g2.n * sizeof *part);
    size_t np = 0;
    for (size_t i = 0; i < g2.n; i++)
        if (i != drop) part[np++] = g2.items[i];
    cap_backend_root_t r2 = {"second", g2.root};
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_backend_write_many(b, part, np, &r2, 1, &res, &e), CAP_EBLOBMISSING);
    CHECK(e.has_hash && memcmp(e.hash.bytes, g2.items[drop].hash.bytes, 32) == 0);
    CHECK(strstr(e.detail, "named by") != NULL);
    CHECK_EQ_INT(blob_count(b, NULL), g.n);
    CHECK_EQ_INT(cap_backend_root_get(b, "second", &h, &e), CAP_ENOTFOUND);
    /* Stored without a root, then rooted: the closure is found stored. */
    CHECK_EQ_INT(cap_backend_write_many(b, g2.items, g2.n, NULL, 0, &res, &e), CAP_OK);
    CHECK_EQ_INT(cap_backend_root_set(b, "second", &g2.root, &e), CAP_OK);
    /* A root may name any cap of a closure; the same hash under two names. */
    CHECK_EQ_INT(cap_backend_root_set(b, "a/b.c-d_e", &g2.items[g2.n - 2].hash, &e), CAP_OK);
    CHECK_EQ_INT(cap_backend_root_set(b, "Alias", &g.root, &e), CAP_OK);

    /* Names. */
    const char *bad[] = {"", "abc123", "dead", "has space", "semi;colon", "ünï"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&e, 0, sizeof e);
        CHECK_EQ_INT(cap_backend_root_set(b, bad[i], &g.root, &e), CAP_EINVAL);
    }
    char longname[300];
    memset(longname, 'x', sizeof longname);
    longname[255] = 0;
    CHECK_EQ_INT(cap_backend_root_set(b, longname, &g.root, &e), CAP_OK);
    longname[255] = 'x';
    longname[256] = 0;
    CHECK_EQ_INT(cap_backend_root_set(b, longname, &g.root, &e), CAP_EINVAL);
    longname[255] = 0;

    /* The list: sorted by name, over one snapshot. */
    name_list_t acc;
    memset(&acc, 0, sizeof acc);
    CHECK_EQ_INT(cap_backend_root_list(b, add_name, &acc, &e), CAP_OK);
    CHECK_EQ_INT(acc.n, 5);
    if (acc.n == 5) {
        CHECK(strcmp(acc.names[0], "Alias") == 0);
        CHECK(strcmp(acc.names[1], "a/b.c-d_e") == 0);
        CHECK(strcmp(acc.names[2], "main") == 0);
        CHECK(strcmp(acc.names[3], "second") == 0);
        CHECK(strcmp(acc.names[4], longname) == 0);
    }
    cap_lmdb_stats_t st;
    CHECK_EQ_INT(cap_lmdb_stats(b, &st, &e), CAP_OK);
    CHECK_EQ_INT(st.roots, 5);
    CHECK_EQ_INT(st.blobs, g.n + g2.n);

    /* Delete. */
    CHECK_EQ_INT(cap_backend_root_delete(b, "Alias", &e), CAP_OK);
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_backend_root_delete(b, "Alias", &e), CAP_ENOTFOUND);
    CHECK(strstr(e.detail, "Alias") != NULL);
    CHECK_EQ_INT(cap_backend_root_get(b, "Alias", &h, &e), CAP_ENOTFOUND);

    /* A root over a damaged blob (its children cannot be read) is refused. */
    cap_backend_item_t dam = g.items[g.n - 1]; /* a CNode */
    uint8_t *junk = malloc(dam.n);
    memcpy(junk, dam.bytes, dam.n);
    junk[2] ^= 0xff; /* the CNode's entry offset: its entry list unreadable */
    dam.bytes = junk;
    /* A backend write keeps the sound value (sys/backend.h): damage it past
     * the backend. */
    CHECK_EQ_INT(cap_backend_write_many(b, &dam, 1, NULL, 0, &res, &e), CAP_OK);
    CHECK_EQ_INT(res.repaired, 0);
    cap_backend_free(b);
    CHECK_EQ_INT(test_lmdb_raw_put(p, &dam.hash, dam.bytes, dam.n), 0);
    b = NULL;
    CHECK_EQ_INT(cap_lmdb_open(p, NULL, &b, &e), CAP_OK);
    if (!b) return;
    memset(&e, 0, sizeof e);
    int rc = cap_backend_root_set(b, "broken", &g.root, &e);
    CHECK_EQ_INT(rc, CAP_EDECODE);
    CHECK(e.has_hash && memcmp(e.hash.bytes, g.root.bytes, 32) == 0);
    free(junk);
    free(part);
    cap_backend_free(b);

    /* Read-only: roots readable, not writable. */
    cap_lmdb_options_t ro = {CAP_LMDB_READONLY, 0, 0, 0};
    CHECK_EQ_INT(cap_lmdb_open(p, &ro, &b, &e), CAP_OK);
    if (b) {
        CHECK_EQ_INT(cap_backend_root_get(b, "main", &h, &e), CAP_OK);
        CHECK_EQ_INT(cap_backend_root_set(b, "x.y", &g.root, &e), CAP_EBACKEND);
        CHECK_EQ_INT(cap_backend_root_delete(b, "main", &e), CAP_EBACKEND);
        cap_backend_free(b);
    }
    test_graph_free(&g);
    test_graph_free(&g2);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/capstore_test_format_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    test_migration();
    test_migration_race();
    test_refusals();
    test_roots();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("test_lmdb_format");
}
