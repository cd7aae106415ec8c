/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Hostile surroundings of a database (issue 18, items 2 and 7), through the
 * command (CAPSTORE_CLI, set by CMake) and the library:
 *   - a FIFO at the database path: no action blocks (an alarm would end
 *     it), each says "not a regular file";
 *   - standard output on /dev/full: every command exits 1 with "error
 *     writing standard output";
 *   - a stray lock file (no database; a directory; garbage) and a failed
 *     open, which leaves no lock file behind;
 *   - an empty file, a directory and a symlink loop at the path, each with
 *     its own message; every LMDB error code has its own text. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/host/lmdb_internal.h"
#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_files.h"

static char dir[256], err_path[320], out_path[320], cap_file[320], data_dir[512];
static const char *cli;

static bool exists(const char *p)
{
    struct stat sb;
    return lstat(p, &sb) == 0;
}

static bool err_has(const char *needle) { return test_file_has(err_path, needle); }

/* Run the command with stdout to `out` (NULL: a file), stderr to a file,
 * and an alarm of 20 s: its exit status, or 1000 + the signal. */
static int run(const char *out, ...)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)cli;
    va_list ap;
    va_start(ap, out);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && argc < 15;) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int fo = open(out ? out : out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0) _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        alarm(20); /* survives exec: a blocked command dies of SIGALRM */
        execv(cli, argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) ? 1000 + WTERMSIG(st) : WEXITSTATUS(st);
}

static const char *path_in(const char *name, char *buf)
{
    snprintf(buf, 320, "%s/%s", dir, name);
    return buf;
}

static const char HASH[] = "1a508af3af849d303feaed8ba006d3cb668c7926210a243840518282220ede1c";

static void test_fifo(void)
{
    char p[320];
    path_in("fifo.lmdb", p);
    CHECK_EQ_INT(mkfifo(p, 0644), 0);
    CHECK_EQ_INT(run(NULL, "db", "stats", "--db", p, NULL), 1);
    CHECK(err_has("not a regular file: a FIFO"));
    CHECK_EQ_INT(run(NULL, "db", "check", "--db", p, NULL), 1);
    CHECK(err_has("not a regular file"));
    CHECK_EQ_INT(run(NULL, "db", "get", "--db", p, HASH, NULL), 1);
    CHECK(err_has("not a regular file"));
    CHECK_EQ_INT(run(NULL, "db", "put", "--db", p, cap_file, NULL), 1);
    CHECK(err_has("not a regular file"));
    /* The library, both ways. */
    cap_backend_t *b = NULL;
    cap_err_t e;
    cap_lmdb_options_t o;
    memset(&o, 0, sizeof o);
    o.flags = CAP_LMDB_READONLY;
    CHECK_EQ_INT(cap_lmdb_open(p, &o, &b, &e), CAP_EBACKEND);
    CHECK(e.what && strcmp(e.what, "not a regular file") == 0);
    CHECK_EQ_INT(cap_lmdb_open(p, NULL, &b, &e), CAP_EBACKEND);
    CHECK(!exists(path_in("fifo.lmdb-lock", p)));
}

/* Every command checks standard output at exit. */
static void test_dev_full(void)
{
    if (access("/dev/full", W_OK) != 0) {
        printf("test_lmdb_hostile: no /dev/full here, skipping its part\n");
        return;
    }
    char db[320], vectors[600];
    path_in("full.lmdb", db);
    snprintf(vectors, sizeof vectors, "%s/vectors/caps.txt", data_dir);
    CHECK_EQ_INT(run(NULL, "db", "put", "--db", db, cap_file, NULL), 0);
    const char *F = "/dev/full";
    struct {
        const char *what;
        int rc;
    } runs[12];
    int n = 0;
#define RUN(label, ...) (runs[n].what = label, runs[n].rc = run(F, __VA_ARGS__, NULL), n++)
    RUN("hash", "hash", cap_file);
    RUN("inspect", "inspect", cap_file);
    RUN("decode", "decode", cap_file);
    RUN("dot", "dot", cap_file);
    RUN("db stats", "db", "stats", "--db", db);
    RUN("db stats --json", "db", "stats", "--json", "--db", db);
    RUN("db check", "db", "check", "--db", db);
    RUN("db put", "db", "put", "--db", db, cap_file);
    RUN("db get", "db", "get", "--db", db, HASH);
    RUN("vectors", "vectors", vectors);
    RUN("--help", "--help");
    RUN("--version", "--version");
#undef RUN
    for (int i = 0; i < n; i++) {
        if (runs[i].rc != 1) fprintf(stderr, "  %s > /dev/full: status %d\n", runs[i].what, runs[i].rc);
        CHECK_EQ_INT(runs[i].rc, 1);
    }
    CHECK(err_has("error writing standard output")); /* the last one's message */
    CHECK_EQ_INT(run(F, "hash", cap_file, NULL), 1);
    CHECK(err_has("capstore: error writing standard output: No space left on device"));
}

static void test_stray_lock(void)
{
    char db[320], lock[340];
    path_in("stray.lmdb", db);
    snprintf(lock, sizeof lock, "%s-lock", db);
    /* A lock file left without its database. */
    FILE *f = fopen(lock, "w");
    if (f) {
        fputs("left over", f);
        fclose(f);
    }
    CHECK_EQ_INT(run(NULL, "db", "stats", "--db", db, NULL), 1);
    CHECK(err_has("no database at"));
    CHECK(!exists(db));
    CHECK_EQ_INT(run(NULL, "db", "put", "--db", db, cap_file, NULL), 0);
    CHECK_EQ_INT(run(NULL, "db", "stats", "--db", db, NULL), 0);
    /* Garbage in the lock file of a sound database: LMDB sets it up again. */
    f = fopen(lock, "w");
    if (f) {
        for (int i = 0; i < 5000; i++) fputc(i * 7, f);
        fclose(f);
    }
    CHECK_EQ_INT(run(NULL, "db", "get", "--db", db, HASH, NULL), 0);
    CHECK_EQ_INT(run(NULL, "db", "check", "--db", db, NULL), 0);
    /* A directory where the lock file goes. */
    CHECK_EQ_INT(unlink(lock), 0);
    CHECK_EQ_INT(mkdir(lock, 0755), 0);
    CHECK_EQ_INT(run(NULL, "db", "stats", "--db", db, NULL), 1);
    CHECK(err_has("the lock file is not a regular file: a directory"));
    rmdir(lock);
}

static void test_failed_open(void)
{
    char junk[320], lock[340], buf[320];
    path_in("junk.lmdb", junk);
    snprintf(lock, sizeof lock, "%s-lock", junk);
    FILE *f = fopen(junk, "w");
    if (f) {
        fputs("this is not a database, just some text that is long enough to look at", f);
        fclose(f);
    }
    CHECK_EQ_INT(run(NULL, "db", "put", "--db", junk, cap_file, NULL), 1);
    CHECK(err_has("not an LMDB file"));
    CHECK(!exists(lock));
    CHECK_EQ_INT(run(NULL, "db", "stats", "--db", junk, NULL), 1);
    CHECK(!exists(lock));
    cap_backend_t *b = NULL;
    cap_err_t e;
    CHECK_EQ_INT(cap_lmdb_open(junk, NULL, &b, &e), CAP_EBACKEND);
    CHECK(!exists(lock));

    /* An empty file (a creation that failed), read-only. */
    path_in("empty.lmdb", buf);
    f = fopen(buf, "w");
    if (f) fclose(f);
    CHECK_EQ_INT(run(NULL, "db", "stats", "--db", buf, NULL), 1);
    CHECK(err_has("empty file"));
    CHECK(!exists(path_in("empty.lmdb-lock", buf)));
    /* A directory. */
    CHECK_EQ_INT(mkdir(path_in("dir.lmdb", buf), 0755), 0);
    CHECK_EQ_INT(run(NULL, "db", "stats", "--db", buf, NULL), 1);
    CHECK(err_has("not a regular file: a directory"));
    /* A symbolic link to itself. */
    path_in("loop.lmdb", buf);
    CHECK_EQ_INT(symlink("loop.lmdb", buf), 0);
    CHECK_EQ_INT(run(NULL, "db", "stats", "--db", buf, NULL), 1);
    CHECK(err_has("too many levels of symbolic links"));
    CHECK_EQ_INT(run(NULL, "db", "put", "--db", buf, cap_file, NULL), 1);
    CHECK(err_has("too many levels of symbolic links"));
    /* A missing folder. */
    path_in("no/such/folder.lmdb", buf);
    CHECK_EQ_INT(run(NULL, "db", "put", "--db", buf, cap_file, NULL), 1);
    CHECK(err_has("no such file"));
}

static void test_error_texts(void)
{
    const char *seen[64];
    int n = 0;
    for (int rc = MDB_KEYEXIST; rc <= MDB_LAST_ERRCODE; rc++) {
        const char *t = cap_lmdb_error_text(rc);
        CHECK(t != NULL);
        if (!t) continue;
        for (int i = 0; i < n; i++) CHECK(strcmp(seen[i], t) != 0);
        if (n < 64) seen[n++] = t;
    }
    CHECK_EQ_INT(n, MDB_LAST_ERRCODE - MDB_KEYEXIST + 1);
    int errnos[] = {ENOSPC, EDQUOT, EIO, EACCES, EPERM, ENOENT, EROFS, EISDIR, ENOTDIR, ELOOP, ENAMETOOLONG,
                    EAGAIN, EBUSY, EINVAL, EFBIG, EMFILE, ENFILE, ENXIO, ENODEV, ETXTBSY, EOVERFLOW, EINTR};
    for (size_t k = 0; k < sizeof errnos / sizeof errnos[0]; k++) {
        const char *t = cap_lmdb_error_text(errnos[k]);
        CHECK(t != NULL);
        if (!t) continue;
        for (int i = 0; i < n; i++) CHECK(strcmp(seen[i], t) != 0);
        if (n < 64) seen[n++] = t;
    }
    /* Another errno value: its own text in the detail. */
    cap_err_t e;
    CHECK_EQ_INT(cap_lm_fail(&e, ECONNRESET), CAP_EBACKEND);
    CHECK(strstr(e.detail, "errno") != NULL);
    CHECK_EQ_INT(cap_lm_fail(&e, ENOMEM), CAP_ENOMEM);
}

int main(int argc, char **argv)
{
    snprintf(data_dir, sizeof data_dir, "%s", argc > 1 ? argv[1] : "tests");
    cli = getenv("CAPSTORE_CLI");
    if (!cli || access(cli, X_OK) != 0) {
        fprintf(stderr, "test_lmdb_hostile: CAPSTORE_CLI does not name the capstore command\n");
        return 1;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/capstore-test-hostile-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(err_path, sizeof err_path, "%s/err", dir);
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    snprintf(cap_file, sizeof cap_file, "%s/one.cap", dir);
    /* The vector cnode_sl0_slot0, whose hash is HASH. */
    static const char wire[] = "030005000000000000001111111111111111111111111111111111111111111111111111111111111111";
    FILE *f = fopen(cap_file, "wb");
    for (size_t i = 0; f && i + 1 < sizeof wire; i += 2) {
        unsigned v;
        sscanf(wire + i, "%2x", &v);
        fputc((int)v, f);
    }
    if (f) fclose(f);

    test_fifo();
    test_dev_full();
    test_stray_lock();
    test_failed_open();
    test_error_texts();

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("test_lmdb_hostile");
}
