/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Four processes grow one database's map at once, and every put succeeds
 * (issue 18, item 3). Each process, in rounds, either opens the database
 * through the library (a 64 KiB initial map: it grows, and the file's map
 * decides) and writes a batch, or runs `capstore db put` (the command's
 * default 16 MiB map) on a few files; together they grow the map past
 * 16 MiB while the others open, begin transactions and commit. Before the
 * fix, an open whose first transaction met MDB_MAP_RESIZED failed ("map
 * resized by another process"). At the end every hash any process was told
 * was stored reads back and hashes right, and the map is past 16 MiB.
 * The command is found through CAPSTORE_CLI (set by CMake). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_rng.h"

#define PROCS 4
#define ROUNDS 24
#define PER_BATCH 4
#define BLOB_BYTES (48 * 1024)

static char dir[256], db[320];
static const char *cli;

static cap_t *make_data(test_rng_t *r)
{
    static uint8_t buf[BLOB_BYTES];
    for (size_t i = 0; i < sizeof buf; i += 8) {
        uint64_t v = test_rng_next(r);
        memcpy(buf + i, &v, 8);
    }
    cap_t *c = NULL;
    cap_data_new_inline(&c, cap_alloc_libc(), 4096, buf, sizeof buf);
    return c;
}

static void hex(char out[65], const cap_hash_t *h)
{
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", h->bytes[i]);
}

/* One process: ROUNDS rounds; each stored hash goes to its hash file once
 * the put reported success. Exit status: the number of failed puts. */
static int worker(int id)
{
    test_rng_t r = {0x9E3779B97F4A7C15ull * (uint64_t)(id + 1)};
    char hpath[340];
    snprintf(hpath, sizeof hpath, "%s/hashes.%d", dir, id);
    FILE *hf = fopen(hpath, "w");
    if (!hf) return 100;
    int failed = 0;
    for (int round = 0; round < ROUNDS; round++) {
        cap_t *caps[PER_BATCH];
        cap_hash_t hs[PER_BATCH];
        for (int i = 0; i < PER_BATCH; i++) {
            caps[i] = make_data(&r);
            cap_hash(caps[i], &hs[i]);
        }
        bool ok;
        if (round % 2 == 0 || !cli) {
            cap_lmdb_options_t o;
            memset(&o, 0, sizeof o);
            o.initial_map_size = 64 * 1024;
            o.flags = CAP_LMDB_NOSYNC;
            cap_backend_t *b = NULL;
            cap_err_t e;
            memset(&e, 0, sizeof e);
            int rc = cap_lmdb_open(db, &o, &b, &e);
            if (rc == CAP_OK) rc = cap_persist_put_many(b, caps, hs, PER_BATCH, cap_alloc_libc(), NULL, &e);
            if (rc == CAP_OK) rc = cap_backend_flush(b, &e);
            cap_backend_free(b);
            ok = rc == CAP_OK;
            if (!ok) {
                char msg[256];
                cap_err_format(&e, msg, sizeof msg);
                fprintf(stderr, "process %d round %d: %s\n", id, round, msg);
            }
        } else {
            char files[PER_BATCH][360];
            for (int i = 0; i < PER_BATCH; i++) {
                snprintf(files[i], sizeof files[i], "%s/p%d.%d.cap", dir, id, i);
                uint8_t *w;
                size_t n;
                cap_wire_encode_alloc(caps[i], cap_alloc_libc(), &w, &n);
                FILE *f = fopen(files[i], "wb");
                if (f) {
                    fwrite(w, 1, n, f);
                    fclose(f);
                }
                free(w);
            }
            pid_t pid = fork();
            if (pid == 0) {
                int null = open("/dev/null", O_WRONLY);
                dup2(null, 1);
                execl(cli, cli, "db", "put", "--db", db, files[0], files[1], files[2], files[3], (char *)NULL);
                _exit(127);
            }
            int st = 0;
            waitpid(pid, &st, 0);
            ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
            if (!ok) fprintf(stderr, "process %d round %d: capstore db put: status %d\n", id, round, st);
        }
        for (int i = 0; i < PER_BATCH; i++) cap_release(caps[i]);
        if (!ok) {
            failed++;
            continue;
        }
        for (int i = 0; i < PER_BATCH; i++) {
            char h[65];
            hex(h, &hs[i]);
            fprintf(hf, "%s\n", h);
        }
        fflush(hf);
    }
    fclose(hf);
    return failed;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli = getenv("CAPSTORE_CLI");
    if (cli && access(cli, X_OK) != 0) cli = NULL;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/capstore-test-procs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(db, sizeof db, "%s/grow.lmdb", dir);
    time_t t0 = time(NULL);
    fflush(stdout);
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        if (pids[p] == 0) _exit(worker(p));
    }
    int failed = 0;
    for (int p = 0; p < PROCS; p++) {
        int st = 0;
        waitpid(pids[p], &st, 0);
        CHECK(WIFEXITED(st));
        if (WIFEXITED(st)) failed += WEXITSTATUS(st);
    }
    CHECK_EQ_INT(failed, 0);

    /* Everything any process was told is stored reads back right. */
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_lmdb_open(db, NULL, &b, NULL), CAP_OK);
    size_t hashes = 0, bad = 0;
    for (int p = 0; p < PROCS && b; p++) {
        char hpath[340], line[128];
        snprintf(hpath, sizeof hpath, "%s/hashes.%d", dir, p);
        FILE *hf = fopen(hpath, "r");
        CHECK(hf != NULL);
        while (hf && fgets(line, sizeof line, hf)) {
            cap_hash_t h;
            for (int i = 0; i < 32; i++) sscanf(line + 2 * i, "%2hhx", &h.bytes[i]);
            cap_t *c = NULL;
            if (cap_persist_fetch(b, &h, cap_alloc_libc(), true, &c, NULL) != CAP_OK) bad++;
            cap_release(c);
            hashes++;
        }
        if (hf) fclose(hf);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(hashes, (size_t)PROCS * ROUNDS * PER_BATCH);
    cap_lmdb_stats_t st;
    memset(&st, 0, sizeof st);
    if (b) CHECK_EQ_INT(cap_lmdb_stats(b, &st, NULL), CAP_OK);
    CHECK(st.map_size > ((uint64_t)16 << 20)); /* they grew it past the command's 16 MiB */
    cap_backend_free(b);
    printf("test_lmdb_procs: %d processes x %d rounds (%s), %zu blobs, map %llu bytes, %d failed puts, %llu s\n",
           PROCS, ROUNDS, cli ? "library and command alternating" : "library only: CAPSTORE_CLI not set", hashes,
           (unsigned long long)st.map_size, failed, (unsigned long long)(time(NULL) - t0));

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("test_lmdb_procs");
}
