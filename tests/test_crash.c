/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Crash safety of the LMDB backend. 50 rounds on one database file:
 *   - a forked writer publishes random caps (CNodes, Types, Data caps large
 *     enough to need LMDB overflow pages) and writes them in batches, one
 *     transaction each, starting from a tiny map so that it also grows the
 *     map while it runs; only after a batch's commit has returned does it
 *     report the batch's hashes to the parent through a pipe;
 *   - the parent SIGKILLs it after a random delay (sometimes at once), reads
 *     every complete hash it reported, reopens the database and checks that
 *     it opens cleanly, that every hash reported in this round is there and
 *     decodes to a cap of that hash, plus a sample of earlier rounds', and
 *     that a new write goes through (the dead writer's lock is recovered);
 *   - at the end every hash ever reported is checked, and every entry of the
 *     file decodes and hashes to its key (no torn entry).
 * A watchdog alarm turns a hang into a failure. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
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
#include "test_rng.h"

#define ROUNDS 50
#define MAX_DELAY_US 120000
#define CHILD_MAX_BATCHES 400

static const cap_alloc_t *L;
static char dir[256], db[320];

static cap_t *random_cap(test_rng_t *r)
{
    cap_t *c = NULL;
    uint64_t kind = test_rng_next(r) % 10;
    if (kind < 6) {
        if (cap_cnode_new(&c, L, 8) != CAP_OK) return NULL;
        int slots = 1 + (int)(test_rng_next(r) % 24);
        for (int i = 0; i < slots; i++) {
            cap_hash_t h = test_rng_hash(r);
            cap_target_t t = cap_target_of_hash(&h);
            cap_cnode_set(c, (uint32_t)(test_rng_next(r) % 256), &t);
        }
    } else if (kind < 8) {
        cap_hash_t h = test_rng_hash(r);
        cap_type_new(&c, L, &h);
    } else {
        size_t n = 1 + (size_t)(test_rng_next(r) % 20000);
        uint8_t *buf = malloc(n);
        if (!buf) return NULL;
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)test_rng_next(r);
        cap_data_new_inline(&c, L, 1024, buf, n);
        free(buf);
    }
    return c;
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The writer: never returns. */
static void writer(int fd, uint64_t seed)
{
    test_rng_t r = {seed};
    cap_lmdb_options_t o;
    memset(&o, 0, sizeof o);
    o.initial_map_size = 64 * 1024; /* grows while it runs (the file keeps the larger map) */
    cap_backend_t *b = NULL;
    if (cap_lmdb_open(db, &o, &b, NULL) != CAP_OK) _exit(3);
    cap_t *caps[48];
    cap_hash_t hs[48];
    for (int batch = 0; batch < CHILD_MAX_BATCHES; batch++) {
        int k = 1 + (int)(test_rng_next(&r) % 48);
        for (int i = 0; i < k; i++) {
            caps[i] = random_cap(&r);
            if (!caps[i]) _exit(4);
        }
        cap_err_t e;
        memset(&e, 0, sizeof e);
        int rc = cap_persist_put_batch(b, caps, NULL, (size_t)k, L, hs, &e);
        if (rc != CAP_OK) {
            fprintf(stderr, "writer: batch failed: %s (%s)\n", cap_strerror(rc), e.what ? e.what : "-");
            _exit(5);
        }
        /* Durable now: report. */
        if (write_all(fd, hs, (size_t)k * sizeof(cap_hash_t)) != 0) _exit(6);
        for (int i = 0; i < k; i++) cap_release(caps[i]);
    }
    cap_backend_free(b);
    _exit(0);
}

typedef struct hash_set {
    cap_hash_t *v;
    size_t n, cap;
} hash_set_t;

static void set_add(hash_set_t *s, const cap_hash_t *h)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) abort();
    }
    s->v[s->n++] = *h;
}

static bool verify(cap_backend_t *b, const cap_hash_t *h)
{
    cap_t *c = NULL;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = cap_persist_fetch(b, h, L, true, &c, &e);
    cap_release(c);
    if (rc != CAP_OK) {
        char hex[65];
        hex_encode(h->bytes, 32, hex);
        fprintf(stderr, "durable hash %s: %s (%s)\n", hex, cap_strerror(rc), e.what ? e.what : "-");
    }
    return rc == CAP_OK;
}

typedef struct scan {
    uint64_t entries, bad;
} scan_t;

static int scan_cb(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    scan_t *s = arg;
    s->entries++;
    cap_t *c = NULL;
    if (cap_persist_decode(h, bytes, n, L, true, &c, NULL) != CAP_OK) s->bad++;
    cap_release(c);
    return 0;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    L = cap_alloc_libc();
    alarm(300); /* a hang (a lock never recovered) fails the test */
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/capstore-test-crash-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(db, sizeof db, "%s/crash.lmdb", dir);

    uint64_t seed0 = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    const char *env_seed = getenv("CAPSTORE_CRASH_SEED");
    if (env_seed) seed0 = strtoull(env_seed, NULL, 0);
    printf("test_crash: seed 0x%llx (set CAPSTORE_CRASH_SEED to repeat)\n", (unsigned long long)seed0);
    test_rng_t r = {seed0 | 1};

    /* An emulator (qemu-user) runs the writer many times slower: the
     * delays stretch by CAPSTORE_TEST_TIME_SCALE (a whole factor). */
    const char *env_scale = getenv("CAPSTORE_TEST_TIME_SCALE");
    uint64_t scale = env_scale && atoi(env_scale) > 1 ? (uint64_t)atoi(env_scale) : 1;

    hash_set_t all = {0};
    int killed_mid_run = 0, parent_writes = 0;
    uint64_t t0 = (uint64_t)time(NULL);
    uint64_t grew = 0, last_map = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int fds[2];
        if (pipe(fds) != 0) {
            perror("pipe");
            return 1;
        }
        fflush(NULL);
        uint64_t child_seed = test_rng_next(&r) | 1;
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            close(fds[0]);
            writer(fds[1], child_seed);
        }
        close(fds[1]);
        /* A random delay; one round in eight kills at once. */
        uint64_t delay = test_rng_next(&r) % 8 == 0 ? 0 : test_rng_next(&r) % (MAX_DELAY_US * scale);
        if (delay) usleep((useconds_t)delay);
        kill(pid, SIGKILL);

        /* Everything reported before the kill, complete records only. */
        size_t round_start = all.n;
        uint8_t buf[4096 + 32];
        size_t have = 0;
        for (;;) {
            ssize_t got = read(fds[0], buf + have, sizeof buf - have);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) break;
            have += (size_t)got;
            size_t whole = have / 32 * 32;
            for (size_t off = 0; off < whole; off += 32) {
                cap_hash_t h;
                memcpy(h.bytes, buf + off, 32);
                set_add(&all, &h);
            }
            memmove(buf, buf + whole, have - whole);
            have -= whole;
        }
        close(fds[0]);
        int status = 0;
        CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
        bool sig = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        bool done = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        CHECK(sig || done);
        if (!sig && !done)
            fprintf(stderr, "round %d: writer ended with status 0x%x\n", round, (unsigned)status);
        if (sig && all.n > round_start) killed_mid_run++;

        /* Restart: the database must open and hold what was durable. */
        cap_backend_t *b = NULL;
        cap_err_t e;
        memset(&e, 0, sizeof e);
        cap_lmdb_options_t o;
        memset(&o, 0, sizeof o);
        o.initial_map_size = 64 * 1024; /* as small as the writer's: the file's map decides */
        int rc = cap_lmdb_open(db, &o, &b, &e);
        CHECK_EQ_INT(rc, CAP_OK);
        if (rc != CAP_OK) {
            fprintf(stderr, "round %d: reopen failed: %s (%s)\n", round, cap_strerror(rc), e.what ? e.what : "-");
            break;
        }
        for (size_t i = round_start; i < all.n; i++) CHECK(verify(b, &all.v[i]));
        for (int i = 0; i < 100 && round_start; i++) CHECK(verify(b, &all.v[test_rng_next(&r) % round_start]));
        /* The dead writer's locks are recovered: the parent can write. */
        cap_t *c = random_cap(&r);
        cap_hash_t h;
        CHECK_EQ_INT(cap_persist_put(b, c, &h, NULL), CAP_OK);
        cap_release(c);
        set_add(&all, &h);
        parent_writes++;
        cap_lmdb_stats_t st;
        CHECK_EQ_INT(cap_lmdb_stats(b, &st, NULL), CAP_OK);
        if (st.map_size > last_map) grew++;
        last_map = st.map_size;
        cap_backend_free(b);
    }

    /* Everything, once more, and every entry of the file. */
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_lmdb_open(db, NULL, &b, NULL), CAP_OK);
    if (b) {
        size_t bad = 0;
        for (size_t i = 0; i < all.n; i++)
            if (!verify(b, &all.v[i])) bad++;
        CHECK_EQ_INT(bad, 0);
        scan_t s = {0, 0};
        CHECK_EQ_INT(cap_backend_iterate(b, scan_cb, &s, NULL), CAP_OK);
        CHECK_EQ_INT(s.bad, 0);
        CHECK(s.entries >= 1);
        cap_lmdb_stats_t st;
        CHECK_EQ_INT(cap_lmdb_stats(b, &st, NULL), CAP_OK);
        printf("test_crash: %d rounds (%d killed after reporting), %zu durable hashes reported "
               "(%d by the parent), %llu entries in the file, map %llu bytes (grew in %llu rounds), "
               "%llu s\n",
               ROUNDS, killed_mid_run, all.n, parent_writes, (unsigned long long)s.entries,
               (unsigned long long)st.map_size, (unsigned long long)grew,
               (unsigned long long)((uint64_t)time(NULL) - t0));
        cap_backend_free(b);
    }
    CHECK(killed_mid_run >= ROUNDS / 10); /* the kills did land while it wrote */
    CHECK(grew >= 3);                     /* and while the map grew */
    free(all.v);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("test_crash");
}
