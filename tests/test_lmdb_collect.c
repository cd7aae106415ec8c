/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Collection of an LMDB database (persist.h: cap_lmdb_collect):
 *   - what stays: the graphs of the named roots and of the hashes given,
 *     blobs they share with garbage included; everything else goes, in
 *     transactions of `batch` deletions; a dry run deletes nothing and
 *     lists exactly what would go, in key order;
 *   - refusals that delete nothing: a given hash not stored, a damaged blob
 *     under a root, a read-only backend (a dry run is allowed);
 *   - a writer in another process setting roots (on garbage the sweep has
 *     not reached yet, and on graphs written in the same batch) while the
 *     collector runs: afterwards every root's graph is whole. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

static cap_backend_t *open_db(const char *p, bool ro)
{
    cap_lmdb_options_t o = {CAP_LMDB_NOSYNC | (ro ? CAP_LMDB_READONLY : 0u), 0, 0, 0};
    cap_backend_t *b = NULL;
    cap_err_t e;
    int rc = cap_lmdb_open(p, &o, &b, &e);
    CHECK_EQ_INT(rc, CAP_OK);
    return b;
}

static void put_graph(cap_backend_t *b, const test_graph_t *g, const char *root)
{
    cap_backend_root_t r = {root, g->root};
    cap_err_t e;
    CHECK_EQ_INT(cap_backend_write_many(b, g->items, g->n, &r, root ? 1 : 0, NULL, &e), CAP_OK);
}

static uint64_t blobs(cap_backend_t *b)
{
    cap_lmdb_stats_t st;
    memset(&st, 0, sizeof st);
    CHECK_EQ_INT(cap_lmdb_stats(b, &st, NULL), CAP_OK);
    return st.blobs;
}

static bool has(cap_backend_t *b, const cap_hash_t *h) { return cap_backend_exists(b, h, NULL) == CAP_OK; }

/* Every root's graph stored and every blob of it verified. */
typedef struct roots_ok {
    cap_backend_t *b;
    int roots, bad;
} roots_ok_t;

static int check_root(void *arg, const char *name, const cap_hash_t *h)
{
    roots_ok_t *r = arg;
    cap_walk_options_t o = CAP_WALK_OPTIONS_INIT;
    o.flags = CAP_WALK_VERIFY;
    cap_walk_result_t res;
    cap_err_t e;
    int rc = cap_backend_walk(r->b, h, 1, &o, cap_alloc_libc(), NULL, NULL, &res, &e);
    r->roots++;
    if (rc != CAP_OK) {
        r->bad++;
        fprintf(stderr, "  root %s: walk %d, %llu missing, %llu bad\n", name, rc, (unsigned long long)res.missing,
                (unsigned long long)res.bad);
    }
    return 0;
}

static int roots_whole(cap_backend_t *b, int *nroots)
{
    roots_ok_t r = {b, 0, 0};
    CHECK_EQ_INT(cap_backend_root_list(b, check_root, &r, NULL), CAP_OK);
    if (nroots) *nroots = r.roots;
    return r.bad;
}

typedef struct listed {
    cap_hash_t prev;
    uint64_t n, bytes;
    bool ordered;
} listed_t;

static void on_each(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    listed_t *l = arg;
    (void)bytes;
    if (l->n && memcmp(l->prev.bytes, h->bytes, 32) >= 0) l->ordered = false;
    l->prev = *h;
    l->n++;
    l->bytes += n;
}

static void test_basic(void)
{
    char p[512];
    path_in("basic.lmdb", p);
    cap_backend_t *b = open_db(p, false);
    if (!b) return;
    test_graph_t a, g, c, loose;
    test_graph_make(&a, 11, 300);   /* named root */
    test_graph_make(&g, 12, 200);   /* garbage, sharing a few of a's blobs */
    test_graph_make(&c, 13, 100);   /* given as a hash */
    test_graph_make(&loose, 14, 50); /* garbage */
    put_graph(b, &a, "keep/a");
    put_graph(b, &g, NULL);
    put_graph(b, &c, NULL);
    put_graph(b, &loose, NULL);
    /* Sharing: a blob of `a` under a garbage cnode. */
    cap_t *cn = NULL;
    cap_hash_t shared_parent;
    cap_cnode_new(&cn, cap_alloc_libc(), 1);
    cap_target_t t = cap_target_of_hash(&a.items[3].hash);
    cap_cnode_set(cn, 0, &t);
    CHECK_EQ_INT(cap_persist_put(b, cn, &shared_parent, NULL), CAP_OK);
    cap_release(cn);
    uint64_t total = blobs(b);
    CHECK_EQ_INT(total, a.n + g.n + c.n + loose.n + 1);

    /* Dry run: nothing deleted; `each` lists the garbage, in key order. */
    cap_lmdb_collect_options_t o = CAP_LMDB_COLLECT_OPTIONS_INIT;
    listed_t l;
    memset(&l, 0, sizeof l);
    l.ordered = true;
    o.flags = CAP_LMDB_COLLECT_DRY_RUN;
    o.each = on_each;
    o.arg = &l;
    cap_lmdb_collect_result_t res;
    cap_err_t e;
    CHECK_EQ_INT(cap_lmdb_collect(b, &c.root, 1, &o, &res, &e), CAP_OK);
    CHECK_EQ_INT(blobs(b), total);
    uint64_t garbage = g.n + loose.n + 1;
    CHECK_EQ_INT(res.deleted, garbage);
    CHECK_EQ_INT(l.n, garbage);
    CHECK(l.ordered);
    CHECK_EQ_INT(res.deleted_bytes, l.bytes);
    CHECK_EQ_INT(res.marked, a.n + c.n);
    CHECK_EQ_INT(res.roots, 2);
    CHECK_EQ_INT(res.scanned, total);

    /* The real thing, 7 at a time. */
    cap_lmdb_collect_options_t o2 = CAP_LMDB_COLLECT_OPTIONS_INIT;
    o2.batch = 7;
    CHECK_EQ_INT(cap_lmdb_collect(b, &c.root, 1, &o2, &res, &e), CAP_OK);
    CHECK_EQ_INT(res.deleted, garbage);
    CHECK_EQ_INT(res.deleted_bytes, l.bytes);
    CHECK(res.transactions >= garbage / 7);
    CHECK_EQ_INT(blobs(b), a.n + c.n);
    for (size_t i = 0; i < a.n; i++) CHECK(has(b, &a.items[i].hash));
    for (size_t i = 0; i < c.n; i++) CHECK(has(b, &c.items[i].hash));
    CHECK(!has(b, &shared_parent));
    CHECK(!has(b, &g.items[0].hash));
    CHECK(!has(b, &loose.root));
    CHECK_EQ_INT(roots_whole(b, NULL), 0);

    /* Again, without the given hash: c goes. */
    CHECK_EQ_INT(cap_lmdb_collect(b, NULL, 0, NULL, &res, &e), CAP_OK);
    CHECK_EQ_INT(res.deleted, c.n);
    CHECK_EQ_INT(blobs(b), a.n);

    /* Refusals: a given hash not stored; a damaged blob under a root. */
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_lmdb_collect(b, &g.root, 1, NULL, &res, &e), CAP_EBLOBMISSING);
    CHECK(e.has_hash && memcmp(e.hash.bytes, g.root.bytes, 32) == 0);
    put_graph(b, &loose, NULL);
    cap_backend_item_t dam = a.items[a.n - 1]; /* the root cnode */
    uint8_t *junk = malloc(dam.n);
    memcpy(junk, dam.bytes, dam.n);
    junk[2] ^= 0xff;
    dam.bytes = junk;
    cap_backend_write_result_t wr;
    /* Past the backend: its writes keep a sound value (sys/backend.h). */
    cap_backend_free(b);
    CHECK_EQ_INT(test_lmdb_raw_put(p, &dam.hash, dam.bytes, dam.n), 0);
    b = open_db(p, false);
    if (!b) return;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_lmdb_collect(b, NULL, 0, NULL, &res, &e), CAP_EDECODE);
    CHECK(e.has_hash && memcmp(e.hash.bytes, a.root.bytes, 32) == 0);
    CHECK_EQ_INT(blobs(b), a.n + loose.n);
    /* Repaired (a write of the right bytes), it collects again. */
    CHECK_EQ_INT(cap_backend_write_many(b, &a.items[a.n - 1], 1, NULL, 0, &wr, &e), CAP_OK);
    CHECK_EQ_INT(wr.repaired, 1);
    CHECK_EQ_INT(cap_lmdb_collect(b, NULL, 0, NULL, &res, &e), CAP_OK);
    CHECK_EQ_INT(blobs(b), a.n);
    free(junk);
    cap_backend_free(b);

    /* Read-only: a dry run only. */
    b = open_db(p, true);
    if (b) {
        memset(&e, 0, sizeof e);
        CHECK_EQ_INT(cap_lmdb_collect(b, NULL, 0, NULL, &res, &e), CAP_EBACKEND);
        CHECK_EQ_INT(cap_lmdb_collect(b, NULL, 0, &o, &res, &e), CAP_OK);
        CHECK_EQ_INT(res.deleted, 0);
        cap_backend_free(b);
    }
    cap_mem_backend_new(NULL, &b);
    CHECK_EQ_INT(cap_lmdb_collect(b, NULL, 0, NULL, &res, &e), CAP_EINVAL);
    cap_backend_free(b);
    test_graph_free(&a);
    test_graph_free(&g);
    test_graph_free(&c);
    test_graph_free(&loose);
}

/* A writer sets roots while the collector sweeps. The garbage is many small
 * graphs spread over the key space, so some lie ahead of the sweep when
 * their root is set: the sweep must mark them before it reaches them. */
enum { SMALL = 400, ROUNDS = 6 };

static void writer(const char *p, const test_graph_t *small, int round, int fd)
{
    cap_backend_t *b = open_db(p, false);
    if (!b) _exit(3);
    int set = 0;
    for (int i = 0; i < SMALL; i++) {
        char name[64];
        snprintf(name, sizeof name, "late/%d/%d", round, i);
        cap_err_t e;
        int rc = cap_backend_root_set(b, name, &small[i].root, &e);
        if (rc == CAP_OK) set++;
        else if (rc != CAP_EBLOBMISSING) _exit(4);
        if (i % 50 == 0) { /* a graph written with its root: never refused */
            test_graph_t w;
            test_graph_make(&w, 100000u + (unsigned)round * 1000u + (unsigned)i, 12);
            cap_backend_root_t r = {name, w.root};
            snprintf(name, sizeof name, "new/%d/%d", round, i);
            r.name = name;
            rc = cap_backend_write_many(b, w.items, w.n, &r, 1, NULL, &e);
            test_graph_free(&w);
            if (rc != CAP_OK) _exit(5);
        }
    }
    cap_backend_free(b);
    if (write(fd, &set, sizeof set) != (ssize_t)sizeof set) _exit(6);
    _exit(0);
}

static void test_concurrent_roots(void)
{
    char p[512];
    path_in("concurrent.lmdb", p);
    test_graph_t keep;
    test_graph_make(&keep, 21, 200);
    static test_graph_t small[SMALL];
    uint64_t late_total = 0;
    int set_total = 0, bad_total = 0;
    for (int round = 0; round < ROUNDS; round++) {
        unlink(p);
        cap_backend_t *b = open_db(p, false);
        if (!b) return;
        put_graph(b, &keep, "keep");
        for (int i = 0; i < SMALL; i++) {
            test_graph_make(&small[i], 1000u + (unsigned)round * SMALL + (unsigned)i, 3);
            put_graph(b, &small[i], NULL);
        }
        int fds[2];
        if (pipe(fds) != 0) return;
        pid_t kid = fork();
        if (kid == 0) {
            close(fds[0]);
            writer(p, small, round, fds[1]);
        }
        close(fds[1]);
        cap_lmdb_collect_options_t o = CAP_LMDB_COLLECT_OPTIONS_INIT;
        o.batch = 2;
        cap_lmdb_collect_result_t res;
        cap_err_t e;
        CHECK_EQ_INT(cap_lmdb_collect(b, NULL, 0, &o, &res, &e), CAP_OK);
        int status = 0, set = 0;
        waitpid(kid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (read(fds[0], &set, sizeof set) != (ssize_t)sizeof set) set = 0;
        close(fds[0]);
        late_total += res.late_roots;
        set_total += set;
        int nroots = 0;
        bad_total += roots_whole(b, &nroots);
        CHECK(nroots >= 1 + set);
        for (int i = 0; i < SMALL; i++) test_graph_free(&small[i]);
        cap_backend_free(b);
    }
    printf("test_lmdb_collect: %d rounds: the writer set %d roots on garbage, the sweep marked %llu roots set "
           "after its mark; %d roots found incomplete\n",
           ROUNDS, set_total, (unsigned long long)late_total, bad_total);
    CHECK_EQ_INT(bad_total, 0);
    CHECK(late_total > 0); /* the interleaving did happen */
    test_graph_free(&keep);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/capstore_test_collect_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    test_basic();
    test_concurrent_roots();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("test_lmdb_collect");
}
