/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The LMDB backend under threads: on a map that starts tiny, writer threads
 * put batches and singles (so the map grows again and again), reader threads
 * fetch-and-verify known blobs and ask for absent ones, an iterating thread
 * walks the whole database repeatedly, and an opener thread opens and frees
 * its own handles on the same file (the registry). No call may fail (no
 * MDB_MAP_FULL reaches the caller), and afterwards every blob written is
 * there. Run under ThreadSanitizer by CI (the "thread" label). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"

#define WRITERS 2
#define BATCHES 30
#define BATCH 40
#define SINGLES 60
#define PER_WRITER (BATCHES * BATCH + SINGLES)
#define PRELOAD 200

static const cap_alloc_t *L;
static char dir[256], db[320];
static cap_backend_t *shared_b;
static cap_hash_t preload_h[PRELOAD];
static atomic_int writers_left = WRITERS;
static atomic_int failures;
static cap_hash_t written[WRITERS][PER_WRITER];

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static cap_t *make_cnode(uint64_t *s)
{
    cap_t *c = NULL;
    if (cap_cnode_new(&c, L, 8) != CAP_OK) return NULL;
    for (int i = 0; i < 16; i++) {
        cap_hash_t h;
        for (int j = 0; j < 4; j++) {
            uint64_t v = rnd(s);
            memcpy(h.bytes + 8 * j, &v, 8);
        }
        h.bytes[0] |= 1;
        cap_target_t t = cap_target_of_hash(&h);
        cap_cnode_set(c, (uint32_t)(rnd(s) % 256), &t);
    }
    return c;
}

static void fail(const char *what, int rc, const cap_err_t *e)
{
    fprintf(stderr, "%s: %s (%s)\n", what, cap_strerror(rc), e && e->what ? e->what : "-");
    atomic_fetch_add(&failures, 1);
}

static void *writer(void *arg)
{
    int w = (int)(intptr_t)arg;
    uint64_t s = 0x1234567ull * (uint64_t)(w + 1);
    int k = 0;
    for (int b = 0; b < BATCHES; b++) {
        cap_t *caps[BATCH];
        for (int i = 0; i < BATCH; i++) caps[i] = make_cnode(&s);
        cap_err_t e;
        memset(&e, 0, sizeof e);
        int rc = cap_persist_put_batch(shared_b, caps, NULL, BATCH, L, &written[w][k], &e);
        if (rc != CAP_OK) fail("batch", rc, &e);
        k += BATCH;
        for (int i = 0; i < BATCH; i++) cap_release(caps[i]);
        if (b % 5 == 0) {
            for (int i = 0; i < SINGLES / 6; i++) {
                cap_t *c = make_cnode(&s);
                rc = cap_persist_put(shared_b, c, &written[w][k++], &e);
                if (rc != CAP_OK) fail("single", rc, &e);
                cap_release(c);
            }
        }
    }
    atomic_fetch_sub(&writers_left, 1);
    return NULL;
}

static void *reader(void *arg)
{
    uint64_t s = 0xabcdefull + (uint64_t)(intptr_t)arg;
    long reads = 0;
    while (atomic_load(&writers_left) > 0 || reads < 200) {
        const cap_hash_t *h = &preload_h[rnd(&s) % PRELOAD];
        cap_t *c = NULL;
        cap_err_t e;
        memset(&e, 0, sizeof e);
        int rc = cap_persist_fetch(shared_b, h, L, true, &c, &e);
        if (rc != CAP_OK) fail("fetch", rc, &e);
        cap_release(c);
        cap_hash_t absent;
        memset(absent.bytes, 0xee, 32);
        absent.bytes[0] = (uint8_t)reads;
        rc = cap_backend_exists(shared_b, &absent, &e);
        if (rc != CAP_ENOTFOUND) fail("exists(absent)", rc, &e);
        reads++;
    }
    return NULL;
}

static int count_cb(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    (void)h;
    (void)bytes;
    (void)n;
    (*(long *)arg)++;
    return 0;
}

static void *iterator(void *arg)
{
    (void)arg;
    long last = 0;
    int passes = 0;
    while (atomic_load(&writers_left) > 0 || passes < 2) {
        long n = 0;
        cap_err_t e;
        memset(&e, 0, sizeof e);
        int rc = cap_backend_iterate(shared_b, count_cb, &n, &e);
        if (rc != CAP_OK) fail("iterate", rc, &e);
        if (n < last) fail("iterate went backwards", CAP_EBACKEND, NULL);
        last = n;
        passes++;
    }
    return NULL;
}

static void *opener(void *arg)
{
    (void)arg;
    int opens = 0;
    while (atomic_load(&writers_left) > 0 || opens < 5) {
        cap_backend_t *b = NULL;
        cap_err_t e;
        memset(&e, 0, sizeof e);
        cap_lmdb_options_t o;
        memset(&o, 0, sizeof o);
        o.initial_map_size = 64 * 1024;
        int rc = cap_lmdb_open(db, &o, &b, &e);
        if (rc != CAP_OK) {
            fail("open", rc, &e);
            break;
        }
        cap_lmdb_stats_t st;
        rc = cap_lmdb_stats(b, &st, &e);
        if (rc != CAP_OK) fail("stats", rc, &e);
        cap_t *c = NULL;
        rc = cap_persist_fetch(b, &preload_h[opens % PRELOAD], L, true, &c, &e);
        if (rc != CAP_OK) fail("fetch via second handle", rc, &e);
        cap_release(c);
        cap_backend_free(b);
        opens++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    L = cap_alloc_libc();
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/capstore-test-lmdbmt-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(db, sizeof db, "%s/mt.lmdb", dir);
    cap_lmdb_options_t o;
    memset(&o, 0, sizeof o);
    o.initial_map_size = 64 * 1024;
    o.flags = CAP_LMDB_NOSYNC;
    CHECK_EQ_INT(cap_lmdb_open(db, &o, &shared_b, NULL), CAP_OK);
    if (!shared_b) return check_done("test_lmdb_mt");

    uint64_t s = 99;
    cap_t *pre[PRELOAD];
    for (int i = 0; i < PRELOAD; i++) pre[i] = make_cnode(&s);
    CHECK_EQ_INT(cap_persist_put_batch(shared_b, pre, NULL, PRELOAD, L, preload_h, NULL), CAP_OK);
    for (int i = 0; i < PRELOAD; i++) cap_release(pre[i]);
    cap_lmdb_stats_t st0;
    CHECK_EQ_INT(cap_lmdb_stats(shared_b, &st0, NULL), CAP_OK);

    pthread_t th[WRITERS + 4];
    int nt = 0;
    for (int w = 0; w < WRITERS; w++) pthread_create(&th[nt++], NULL, writer, (void *)(intptr_t)w);
    pthread_create(&th[nt++], NULL, reader, (void *)1);
    pthread_create(&th[nt++], NULL, reader, (void *)2);
    pthread_create(&th[nt++], NULL, iterator, NULL);
    pthread_create(&th[nt++], NULL, opener, NULL);
    for (int i = 0; i < nt; i++) pthread_join(th[i], NULL);
    CHECK_EQ_INT(atomic_load(&failures), 0);

    cap_lmdb_stats_t st;
    CHECK_EQ_INT(cap_lmdb_stats(shared_b, &st, NULL), CAP_OK);
    CHECK_EQ_INT(st.blobs, PRELOAD + WRITERS * PER_WRITER);
    CHECK(st.map_size >= 8 * st0.map_size); /* grew several times */
    int missing = 0;
    for (int w = 0; w < WRITERS; w++)
        for (int i = 0; i < PER_WRITER; i++)
            if (cap_backend_exists(shared_b, &written[w][i], NULL) != CAP_OK) missing++;
    CHECK_EQ_INT(missing, 0);
    printf("test_lmdb_mt: %llu blobs, map %llu -> %llu bytes\n", (unsigned long long)st.blobs,
           (unsigned long long)st0.map_size, (unsigned long long)st.map_size);
    cap_backend_free(shared_b);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("test_lmdb_mt");
}
