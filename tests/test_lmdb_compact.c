/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* cap_lmdb_compact: after a collection the file shrinks to what it holds,
 * with the same blobs and roots, mode and (run as root) owner; a database
 * another process has open, or this one, is refused and left as it was;
 * the compacted file is used by other processes as any other. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_graph.h"

static char dir[256], db[320];

static int add_entry(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    uint64_t *sum = arg;
    sum[0]++;
    sum[1] += n;
    for (int i = 0; i < 32; i++) sum[2] = sum[2] * 31 + h->bytes[i];
    (void)bytes;
    return 0;
}

/* Blobs, bytes, a digest of the keys, and the roots. */
static void summary(uint64_t s[4])
{
    memset(s, 0, 4 * sizeof *s);
    cap_backend_t *b = NULL;
    cap_lmdb_options_t ro = {CAP_LMDB_READONLY, 0, 0, 0};
    CHECK_EQ_INT(cap_lmdb_open(db, &ro, &b, NULL), CAP_OK);
    if (!b) return;
    CHECK_EQ_INT(cap_backend_iterate(b, add_entry, s, NULL), CAP_OK);
    cap_lmdb_stats_t st;
    CHECK_EQ_INT(cap_lmdb_stats(b, &st, NULL), CAP_OK);
    s[3] = st.roots;
    cap_backend_free(b);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/capstore_test_compact_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    snprintf(db, sizeof db, "%s/c.lmdb", dir);
    cap_lmdb_options_t o = {CAP_LMDB_NOSYNC, 0, 0, 0600};
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_lmdb_open(db, &o, &b, NULL), CAP_OK);
    if (!b) return check_done("test_lmdb_compact");
    test_graph_t keep, junk;
    test_graph_make(&keep, 61, 600);
    test_graph_make(&junk, 62, 3000);
    cap_backend_root_t r = {"keep", keep.root};
    CHECK_EQ_INT(cap_backend_write_many(b, keep.items, keep.n, &r, 1, NULL, NULL), CAP_OK);
    CHECK_EQ_INT(cap_backend_write_many(b, junk.items, junk.n, NULL, 0, NULL, NULL), CAP_OK);
    CHECK_EQ_INT(cap_lmdb_collect(b, NULL, 0, NULL, NULL, NULL), CAP_OK);
    cap_lmdb_stats_t st;
    CHECK_EQ_INT(cap_lmdb_stats(b, &st, NULL), CAP_OK);
    CHECK(st.free_bytes > st.used_bytes / 2); /* the collection freed most pages */

    /* Open in this process: refused. */
    cap_lmdb_compact_result_t res;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_lmdb_compact(db, &res, &e), CAP_EBACKEND);
    CHECK(e.what && strstr(e.what, "in this process") != NULL);
    cap_backend_free(b);
    chmod(db, 0640);
    bool root = geteuid() == 0;
    if (root) CHECK_EQ_INT(chown(db, 4321, 4322), 0);
    struct stat before;
    stat(db, &before);
    uint64_t s0[4];
    summary(s0);

    /* Open in another process: refused, nothing changed. */
    int to_kid[2], from_kid[2];
    if (pipe(to_kid) != 0 || pipe(from_kid) != 0) return 2;
    pid_t kid = fork();
    if (kid == 0) {
        cap_backend_t *kb = NULL;
        char c = cap_lmdb_open(db, NULL, &kb, NULL) == CAP_OK ? 'y' : 'n';
        if (write(from_kid[1], &c, 1) != 1 || read(to_kid[0], &c, 1) != 1) _exit(3);
        cap_backend_free(kb);
        _exit(0);
    }
    char c = 0;
    CHECK(read(from_kid[0], &c, 1) == 1 && c == 'y');
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_lmdb_compact(db, &res, &e), CAP_EBACKEND);
    CHECK(e.what && strstr(e.what, "open in another process") != NULL);
    struct stat mid;
    stat(db, &mid);
    CHECK(mid.st_ino == before.st_ino && mid.st_size == before.st_size);
    CHECK(write(to_kid[1], "q", 1) == 1);
    int status = 0;
    waitpid(kid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* Nobody has it: compacted. */
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(cap_lmdb_compact(db, &res, &e), CAP_OK);
    struct stat after;
    stat(db, &after);
    CHECK_EQ_INT(res.bytes_before, before.st_size);
    CHECK_EQ_INT(res.bytes_after, after.st_size);
    CHECK(after.st_size < before.st_size / 2);
    CHECK(after.st_ino != before.st_ino);
    CHECK_EQ_INT(after.st_mode & 07777, 0640);
    if (root) CHECK(after.st_uid == 4321 && after.st_gid == 4322);
    uint64_t s1[4];
    summary(s1);
    CHECK_MEM(s0, s1, sizeof s0);
    printf("test_lmdb_compact: %llu -> %llu bytes, %llu blobs and %llu root kept%s\n",
           (unsigned long long)res.bytes_before, (unsigned long long)res.bytes_after, (unsigned long long)s1[0],
           (unsigned long long)s1[3], root ? ", owner kept" : "");

    /* Used by other processes as any database: a writer, then a reader. */
    kid = fork();
    if (kid == 0) {
        cap_backend_t *kb = NULL;
        if (cap_lmdb_open(db, NULL, &kb, NULL) != CAP_OK) _exit(3);
        cap_backend_root_t r2 = {"again", junk.root};
        if (cap_backend_write_many(kb, junk.items, junk.n, &r2, 1, NULL, NULL) != CAP_OK) _exit(4);
        cap_backend_free(kb);
        _exit(0);
    }
    waitpid(kid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    summary(s1);
    CHECK_EQ_INT(s1[0], keep.n + junk.n);
    CHECK_EQ_INT(s1[3], 2);
    cap_lmdb_check_result_t cr;
    CHECK_EQ_INT(cap_lmdb_check(db, NULL, NULL, &cr, NULL), CAP_OK);
    CHECK_EQ_INT(cr.problems + cr.bad, 0);

    memset(&e, 0, sizeof e);
    char missing[400];
    snprintf(missing, sizeof missing, "%s/none.lmdb", dir);
    CHECK_EQ_INT(cap_lmdb_compact(missing, &res, &e), CAP_EBACKEND);
    test_graph_free(&keep);
    test_graph_free(&junk);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("test_lmdb_compact");
}
