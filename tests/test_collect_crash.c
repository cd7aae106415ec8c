/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Crash safety of collection (persist.h: cap_lmdb_collect). 50 rounds on
 * one database: the parent adds garbage (small unrooted graphs), now and
 * then a rooted graph, and drops a root (its graph turns to garbage); then
 * it forks a collector (transactions of one deletion, each reported through
 * a pipe once committed) and SIGKILLs it at once (one round in eight) or
 * after a random delay in [T/4, 5T/4], T adapting so that most kills land
 * in the sweep: in the open, the mark, between sweep transactions, inside
 * them, or after the end.
 * After each kill: the file opens cleanly, every named root's graph is
 * stored and every blob of it decodes and hashes to its key, every graph
 * the parent rooted is all there, and (every tenth round and the last)
 * cap_lmdb_check finds no problem. At the end a collection that runs to
 * its end leaves exactly the rooted graphs. The collector does not fsync
 * (CAP_LMDB_NOSYNC): a killed process loses nothing the kernel holds, so
 * what is tested is LMDB's commit order and our transactions' bounds.
 * The seed is printed (CAPSTORE_CRASH_SEED repeats a run). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_graph.h"
#include "test_rng.h"

#define ROUNDS 50
#define MAX_ROOTED 8

static char dir[256], db[320];

static cap_backend_t *open_db(void)
{
    cap_lmdb_options_t o = {CAP_LMDB_NOSYNC, 0, 0, 0};
    cap_backend_t *b = NULL;
    cap_err_t e;
    int rc = cap_lmdb_open(db, &o, &b, &e);
    if (rc != CAP_OK) {
        char msg[256];
        cap_err_format(&e, msg, sizeof msg);
        fprintf(stderr, "open: %s\n", msg);
    }
    CHECK_EQ_INT(rc, CAP_OK);
    return b;
}

static void on_progress(void *arg, const char *phase, uint64_t count, uint64_t bytes)
{
    (void)count;
    (void)bytes;
    int fd = *(int *)arg;
    char c = phase[0]; /* 'm'ark or 's'weep */
    if (write(fd, &c, 1) != 1) _exit(7);
}

static void collector(int fd)
{
    cap_backend_t *b = NULL;
    cap_lmdb_options_t o = {CAP_LMDB_NOSYNC, 0, 0, 0};
    if (cap_lmdb_open(db, &o, &b, NULL) != CAP_OK) _exit(3);
    cap_lmdb_collect_options_t co = CAP_LMDB_COLLECT_OPTIONS_INIT;
    co.batch = 1;
    co.progress = on_progress;
    co.arg = &fd;
    if (cap_lmdb_collect(b, NULL, 0, &co, NULL, NULL) != CAP_OK) _exit(4);
    cap_backend_free(b);
    char d = 'd';
    if (write(fd, &d, 1) != 1) _exit(5);
    _exit(0);
}

typedef struct walk_state {
    cap_backend_t *b;
    int bad;
} walk_state_t;

static int root_whole(void *arg, const char *name, const cap_hash_t *h)
{
    walk_state_t *w = arg;
    cap_walk_options_t o = CAP_WALK_OPTIONS_INIT;
    o.flags = CAP_WALK_VERIFY;
    cap_walk_result_t res;
    if (cap_backend_walk(w->b, h, 1, &o, cap_alloc_libc(), NULL, NULL, &res, NULL) != CAP_OK) {
        fprintf(stderr, "  root %s: %llu missing, %llu bad\n", name, (unsigned long long)res.missing,
                (unsigned long long)res.bad);
        w->bad++;
    }
    return 0;
}

int main(void)
{
    alarm(240); /* a hang fails the test */
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/capstore-test-collect-crash-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return 2;
    snprintf(db, sizeof db, "%s/gc.lmdb", dir);
    uint64_t seed0 = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    const char *env_seed = getenv("CAPSTORE_CRASH_SEED");
    if (env_seed) seed0 = strtoull(env_seed, NULL, 0);
    printf("test_collect_crash: seed 0x%llx (set CAPSTORE_CRASH_SEED to repeat)\n", (unsigned long long)seed0);
    test_rng_t r = {seed0 | 1};

    test_graph_t rooted[MAX_ROOTED];
    char names[MAX_ROOTED][32];
    int nrooted = 0, next_graph = 0;
    unsigned max_delay = 20000; /* µs; adapts to a whole collection's time */
    int killed_mark = 0, killed_sweep = 0, finished = 0, checks_run = 0;
    time_t t0 = time(NULL);
    for (int round = 0; round < ROUNDS; round++) {
        cap_backend_t *b = open_db();
        if (!b) break;
        cap_err_t e;
        /* Garbage, a root now and then, a root dropped now and then. */
        for (int i = 0; i < 50; i++) {
            test_graph_t g;
            test_graph_make(&g, seed0 + 1000003u * (uint64_t)(++next_graph), 6);
            CHECK_EQ_INT(cap_backend_write_many(b, g.items, g.n, NULL, 0, NULL, &e), CAP_OK);
            test_graph_free(&g);
        }
        if (round % 5 == 0 && nrooted < MAX_ROOTED) {
            test_graph_t *g = &rooted[nrooted];
            test_graph_make(g, seed0 + 1000003u * (uint64_t)(++next_graph), 150);
            snprintf(names[nrooted], sizeof names[nrooted], "g/%d", round);
            cap_backend_root_t rt = {names[nrooted], g->root};
            CHECK_EQ_INT(cap_backend_write_many(b, g->items, g->n, &rt, 1, NULL, &e), CAP_OK);
            nrooted++;
        }
        if (round % 7 == 6 && nrooted > 1) {
            int k = (int)test_rng_below(&r, (uint64_t)nrooted);
            CHECK_EQ_INT(cap_backend_root_delete(b, names[k], &e), CAP_OK);
            test_graph_free(&rooted[k]);
            rooted[k] = rooted[nrooted - 1];
            memcpy(names[k], names[nrooted - 1], sizeof names[k]);
            nrooted--;
        }
        cap_backend_free(b);

        int fds[2];
        if (pipe(fds) != 0) return 2;
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            collector(fds[1]);
        }
        close(fds[1]);
        unsigned delay = test_rng_below(&r, 8) == 0 ? 0 : max_delay / 4 + (unsigned)test_rng_below(&r, max_delay);
        if (delay) usleep(delay);
        kill(pid, SIGKILL);
        int status = 0;
        CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
        int marks = 0, sweeps = 0, done = 0;
        char buf[256];
        ssize_t got;
        while ((got = read(fds[0], buf, sizeof buf)) > 0 || (got < 0 && errno == EINTR))
            for (ssize_t i = 0; i < got; i++) {
                marks += buf[i] == 'm';
                sweeps += buf[i] == 's';
                done += buf[i] == 'd';
            }
        close(fds[0]);
        CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
        /* Aim the next delays at the sweep. */
        if (done) {
            finished++;
            max_delay = max_delay * 8 / 10 + 500;
        } else if (sweeps) {
            killed_sweep++;
        } else {
            killed_mark++;
            if (delay) max_delay = max_delay * 12 / 10;
        }
        (void)marks;

        /* The database after the kill. */
        b = open_db();
        if (!b) break;
        walk_state_t w = {b, 0};
        CHECK_EQ_INT(cap_backend_root_list(b, root_whole, &w, &e), CAP_OK);
        CHECK_EQ_INT(w.bad, 0);
        for (int k = 0; k < nrooted; k++) {
            cap_hash_t h;
            CHECK_EQ_INT(cap_backend_root_get(b, names[k], &h, &e), CAP_OK);
            for (size_t i = 0; i < rooted[k].n; i++)
                CHECK_EQ_INT(cap_backend_exists(b, &rooted[k].items[i].hash, NULL), CAP_OK);
        }
        cap_backend_free(b);
        if (round % 10 == 9 || round == ROUNDS - 1) {
            cap_lmdb_check_result_t cr;
            CHECK_EQ_INT(cap_lmdb_check(db, NULL, NULL, &cr, &e), CAP_OK);
            CHECK_EQ_INT(cr.problems, 0);
            CHECK_EQ_INT(cr.bad, 0);
            checks_run++;
        }
    }

    /* A collection to its end: exactly the rooted graphs stay. */
    cap_backend_t *b = open_db();
    if (b) {
        cap_lmdb_collect_result_t res;
        CHECK_EQ_INT(cap_lmdb_collect(b, NULL, 0, NULL, &res, NULL), CAP_OK);
        cap_lmdb_stats_t st;
        CHECK_EQ_INT(cap_lmdb_stats(b, &st, NULL), CAP_OK);
        uint64_t want = 0;
        for (int k = 0; k < nrooted; k++) want += rooted[k].n;
        CHECK_EQ_INT(st.blobs, want);
        cap_backend_free(b);
    }
    for (int k = 0; k < nrooted; k++) test_graph_free(&rooted[k]);
    printf("test_collect_crash: %d rounds: killed in the mark %d, in the sweep %d, finished %d; %d checks of the "
           "file, %lld s\n",
           ROUNDS, killed_mark, killed_sweep, finished, checks_run, (long long)(time(NULL) - t0));
    CHECK(killed_sweep >= ROUNDS / 5); /* the kills did land while it deleted */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("test_collect_crash");
}
