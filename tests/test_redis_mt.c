/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The Redis backend from several threads at once (sys/backend.h: every
 * entry may be called concurrently), against the cluster: four threads
 * write, read, test and fetch through one backend (its connection pools and
 * slot map shared) and through one store (single flight); every answer is
 * right, and ThreadSanitizer (CI runs the "thread" tests under it) sees no
 * race. (Redirections under concurrent readers: test_redis's reshard.) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "redis_servers.h"

#define THREADS 4
#define ROUNDS 30
#define BATCH 40

static cap_backend_t *tier;
static cap_store_t *shared_store;
static atomic_long failures;
static char first_failure[256];
static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;

static void note(const char *what, const cap_err_t *e)
{
    if (atomic_fetch_add(&failures, 1) == 0) {
        pthread_mutex_lock(&fail_mu);
        char msg[200] = "";
        if (e) cap_err_format(e, msg, sizeof msg);
        snprintf(first_failure, sizeof first_failure, "%s: %s", what, msg);
        pthread_mutex_unlock(&fail_mu);
    }
}

static void *worker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    const cap_alloc_t *a = cap_alloc_libc();
    for (unsigned r = 0; r < ROUNDS; r++) {
        cap_t *caps[BATCH];
        cap_hash_t hs[BATCH];
        cap_backend_item_t items[BATCH];
        for (unsigned i = 0; i < BATCH; i++) {
            uint32_t v[3] = {id, r, i};
            if (cap_data_new_inline(&caps[i], a, 32, v, sizeof v) != CAP_OK) note("data", NULL);
            if (cap_hash(caps[i], &hs[i]) != CAP_OK) note("hash", NULL); /* (no CHECK off the main thread) */
            items[i].hash = hs[i];
            if (cap_wire_encode_alloc(caps[i], a, (uint8_t **)&items[i].bytes, &items[i].n) != CAP_OK)
                note("encode", NULL);
        }
        cap_err_t e;
        cap_backend_write_result_t res;
        if (cap_backend_write_many(tier, items, BATCH, NULL, 0, &res, &e) != CAP_OK) note("write_many", &e);
        uint8_t *bytes[BATCH];
        size_t lens[BATCH];
        int codes[BATCH];
        if (cap_backend_read_many(tier, hs, BATCH, a, bytes, lens, codes, &e) != CAP_OK) note("read_many", &e);
        for (unsigned i = 0; i < BATCH; i++) {
            if (codes[i] != CAP_OK || lens[i] != items[i].n || memcmp(bytes[i], items[i].bytes, lens[i]) != 0)
                note("read back", NULL);
            free(bytes[i]);
        }
        if (cap_backend_exists_many(tier, hs, BATCH, codes, &e) != CAP_OK) note("exists_many", &e);
        for (unsigned i = 0; i < BATCH; i++)
            if (codes[i] != CAP_OK) note("exists", NULL);
        /* Through the shared store: every thread asks for the same blobs
         * (those thread 0 wrote in this round, once it has). */
        uint32_t v[3] = {0, r, id % BATCH};
        cap_t *want = NULL;
        cap_data_new_inline(&want, a, 32, v, sizeof v);
        cap_hash_t wh;
        if (cap_hash(want, &wh) != CAP_OK) note("hash", NULL);
        cap_t *got = NULL;
        int rc = cap_store_fetch_blob(shared_store, &wh, &got, &e);
        if (rc == CAP_OK && !cap_equal(got, want)) note("store fetch content", NULL);
        if (rc != CAP_OK && rc != CAP_EBLOBMISSING) note("store fetch", &e);
        cap_release(got);
        cap_release(want);
        for (unsigned i = 0; i < BATCH; i++) {
            free((void *)items[i].bytes);
            cap_release(caps[i]);
        }
    }
    return NULL;
}

int main(void)
{
    redis_test_require("test_redis_mt");
    redis_servers_t cl;
    redis_servers_start(&cl, true);
    char uri[256];
    redis_servers_uri(&cl, 1, "mt:", uri, sizeof uri);
    cap_err_t e;
    CHECK_EQ_INT(cap_redis_open(uri, NULL, &tier, &e), CAP_OK);
    CHECK_EQ_INT(cap_store_new_host(&shared_store), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(shared_store, tier, &e), CAP_OK);
    pthread_t th[THREADS];
    for (unsigned i = 0; i < THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i) == 0);
    for (unsigned i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    if (atomic_load(&failures)) fprintf(stderr, "first failure: %s\n", first_failure);
    CHECK_EQ_INT(atomic_load(&failures), 0);
    cap_store_free(shared_store);
    cap_backend_free(tier);
    redis_servers_stop(&cl);
    return check_done("test_redis_mt");
}
