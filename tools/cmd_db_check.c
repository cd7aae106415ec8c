/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore db check: cap_lmdb_check in a child process. Its LMDB part maps
 * the file and may fault on damage no bound check can foresee; run apart,
 * such a fault becomes "damaged database PATH: the check stopped at ..."
 * and exit status 1, never a signal of this process. The child records
 * each step in a page shared with the parent before taking it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capstore/host.h"
#include "capstore/persist.h"
#include "cli.h"
#include "cmd_db.h"
#include "db_guard.h"
#include "db_redis.h"

#define CHILD_FAULT 70 /* the child's status after a fault it caught */

typedef struct shared {
    char step[160];
    char assertion[200];
    int sig;
} shared_t;

static shared_t *shared;

typedef struct child_state {
    db_progress_t pr;
    uint64_t keys;
} child_state_t;

static void copy_text(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++) dst[i] = src[i];
    dst[i] = 0;
}

/* In the child, from the signal handler or LMDB's assertion: note what
 * happened and leave (async-signal-safe). */
static void child_fault(int sig, const char *assertion)
{
    shared->sig = sig;
    copy_text(shared->assertion, sizeof shared->assertion, assertion);
    _exit(CHILD_FAULT);
}

static void on_finding(void *arg, const cap_lmdb_finding_t *f)
{
    child_state_t *cs = arg;
    char hex[65] = "";
    if (f->has_key) cli_hex(hex, f->key.bytes, 32);
    switch (f->kind) {
    case CAP_LMDB_STEP:
        if (f->has_key) {
            snprintf(shared->step, sizeof shared->step, "%s (%s)", f->text, hex);
            db_progress_tick(&cs->pr, "checked", ++cs->keys, 0);
        } else {
            copy_text(shared->step, sizeof shared->step, f->text);
        }
        return;
    case CAP_LMDB_NOTE: printf("%s\n", f->text); break;
    case CAP_LMDB_BAD_BLOB: printf("bad %s: %s\n", hex, f->text); break;
    case CAP_LMDB_PROBLEM:
        if (f->has_key) printf("problem: %s (key %s)\n", f->text, hex);
        else printf("problem: %s\n", f->text);
        break;
    }
    fflush(stdout); /* what was found survives a fault later on */
}

static int child(const char *path)
{
    db_guard_set_handler(child_fault);
    db_guard_arm(path);
    child_state_t cs;
    memset(&cs, 0, sizeof cs);
    db_progress_init(&cs.pr);
    cap_lmdb_check_result_t res;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = cap_lmdb_check(path, on_finding, &cs, &res, &e);
    db_progress_end(&cs.pr);
    if (rc != CAP_OK) {
        db_error("db check", path, rc, &e);
        return 2;
    }
    printf("%llu blobs checked, %llu bad\n", (unsigned long long)res.blobs, (unsigned long long)res.bad);
    if (res.problems)
        printf("%llu problem%s: the database is damaged (LMDB keeps no checksums; restore it from a backup or an "
               "export, see docs/persistence.md)\n",
               (unsigned long long)res.problems, res.problems == 1 ? "" : "s");
    /* The report is the child's to write: its write errors are its own
     * (the parent's standard output is checked at exit as usual). */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (errno != EPIPE) fprintf(stderr, "capstore: error writing standard output: %s\n", strerror(errno));
        return 1;
    }
    return res.bad || res.problems ? 1 : 0;
}

int db_check(const char *path)
{
    if (db_is_redis(path)) return db_redis_check(path);
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT) {
        cli_error("db check", "no database at %s", path);
        return CLI_EBADINPUT;
    }
    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        cli_error("db check", "cannot map memory: %s", strerror(errno));
        return CLI_EBADINPUT;
    }
    memset(shared, 0, sizeof *shared);
    copy_text(shared->step, sizeof shared->step, "starting");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        cli_error("db check", "cannot start the check: %s", strerror(errno));
        return CLI_EBADINPUT;
    }
    if (pid == 0) {
        int st = child(path);
        _exit(st); /* the parent's atexit work is its own */
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            cli_error("db check", "lost the check: %s", strerror(errno));
            return CLI_EBADINPUT;
        }
    }
    int rc;
    if (WIFEXITED(status) && WEXITSTATUS(status) != CHILD_FAULT) {
        rc = WEXITSTATUS(status) == 0 ? CLI_OK : CLI_EBADINPUT;
    } else {
        char why[260];
        int sig = WIFSIGNALED(status) ? WTERMSIG(status) : shared->sig;
        if (shared->assertion[0])
            snprintf(why, sizeof why, "LMDB assertion: %s", shared->assertion);
        else
            snprintf(why, sizeof why, "%s", sig ? strsignal(sig) : "a fault");
        printf("damaged database %s: the check stopped at %s (%s)\n", path, shared->step, why);
        rc = CLI_EBADINPUT;
    }
    munmap(shared, sizeof *shared);
    shared = NULL;
    return rc;
}
