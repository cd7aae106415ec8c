/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The Redis backend against real servers (support/redis-cluster.sh): one
 * lone server and one cluster of three masters and three replicas, shared
 * by every case of this program.
 *   lone server   round trip; read_many / exists_many / write_many counts
 *                 (new, present, repaired); roots (closure checked, sorted,
 *                 deleted); an oversized value refused unread and an
 *                 oversized blob not written; an empty value does not
 *                 decode; an evicting maxmemory-policy refused unless
 *                 allowed; a password from the environment, never in a
 *                 message; the server stopped: CAP_EBACKEND naming the
 *                 node, the store serves what it holds, and works again
 *                 once the server is back
 *   cluster       slots as the server computes them; a round trip through
 *                 a store's flush and a fresh store's fetches, blobs on
 *                 every master; two processes sharing blobs; a poisoned
 *                 value refused with CAP_EMISMATCH and never published, then
 *                 repaired by a write; slots moved (redis-cli --cluster
 *                 reshard) while a reader fetches: no fetch fails; with a
 *                 master's replica stopped, a flush fails naming the
 *                 master (WAIT enforced) and succeeds once it runs; a master
 *                 SIGKILLed right after a flush that waited for a replica:
 *                 after the failover every blob of that flush is read */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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
#include "host/redis_internal.h"
#include "redis_servers.h"
#include "test_caps.h"
#include "test_rng.h"

static test_rng_t rng = {0x5EED5EED12345678ull};
static redis_servers_t lone, cluster;

/* A CNode naming `k` random hashes: a distinct blob each time. */
static cap_t *random_cnode(int k)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, cap_alloc_libc(), 6), CAP_OK);
    for (int i = 0; i < k; i++) {
        cap_hash_t h = test_rng_hash(&rng);
        test_set_hash(c, (uint32_t)i, &h);
    }
    return c;
}

static cap_backend_t *open_backend(const char *uri, const cap_redis_options_t *o)
{
    cap_backend_t *b = NULL;
    cap_err_t e;
    int rc = cap_redis_open(uri, o, &b, &e);
    if (rc != CAP_OK) {
        char msg[256];
        cap_err_format(&e, msg, sizeof msg);
        fprintf(stderr, "cap_redis_open(%s): %s\n", uri, msg);
    }
    CHECK_EQ_INT(rc, CAP_OK);
    return b;
}

static cap_store_t *new_store(const cap_backend_t *b)
{
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new_host(&s), CAP_OK);
    if (b) {
        cap_err_t e;
        CHECK_EQ_INT(cap_store_add_backend(s, b, &e), CAP_OK);
    }
    return s;
}

/* SET key value straight to a node (what a hostile or broken writer does). */
static void raw_set(int port, const void *key, size_t klen, const void *val, size_t vlen)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    CHECK(c && !c->err);
    const char *argv[3] = {"SET", key, val};
    size_t argvlen[3] = {3, klen, vlen};
    redisReply *r = redisCommandArgv(c, 3, argv, argvlen);
    CHECK(r && r->type == REDIS_REPLY_STATUS);
    if (r) freeReplyObject(r);
    redisFree(c);
}

/* The port of the master serving `key` (asked with CLUSTER KEYSLOT and
 * CLUSTER SLOTS through redis-cli). */
static int master_of(const redis_servers_t *s, const uint8_t *key, size_t klen)
{
    redisContext *c = redisConnect("127.0.0.1", s->ports[0]);
    const char *argv[3] = {"CLUSTER", "KEYSLOT", (const char *)key};
    size_t argvlen[3] = {7, 7, klen};
    redisReply *r = redisCommandArgv(c, 3, argv, argvlen);
    long long slot = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r) freeReplyObject(r);
    r = redisCommand(c, "CLUSTER SLOTS");
    int port = -1;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (slot >= e->element[0]->integer && slot <= e->element[1]->integer)
            port = (int)e->element[2]->element[1]->integer;
    }
    if (r) freeReplyObject(r);
    redisFree(c);
    return port;
}

static void key_of(const char *prefix, const cap_hash_t *h, uint8_t *key)
{
    size_t pl = strlen(prefix);
    memcpy(key, prefix, pl);
    memcpy(key + pl, h->bytes, 32);
}

/* Lone server ---------------------------------------------------------------------------- */

static int list_pos;
static int list_fn(void *arg, const char *name, const cap_hash_t *hh)
{
    (void)hh;
    char (*names)[32] = arg;
    if (list_pos < 3) snprintf(names[list_pos], 32, "%s", name);
    list_pos++;
    return 0;
}

static int count_fn(void *arg, const cap_hash_t *hh, const uint8_t *bb, size_t nb)
{
    (void)bb;
    (void)nb;
    (void)hh;
    (*(size_t *)arg)++;
    return 0;
}


static void test_lone_round_trip(void)
{
    char uri[256];
    redis_servers_uri(&lone, 0, "t1:", uri, sizeof uri);
    cap_backend_t *b = open_backend(uri, NULL);
    if (!b) return;
    CHECK(cap_backend_is_redis(b));
    CHECK(b->flags & CAP_BACKEND_NONATOMIC_BATCH);
    CHECK(!(b->flags & CAP_BACKEND_TRUSTED));
    cap_redis_stats_t st;
    cap_err_t e;
    CHECK_EQ_INT(cap_redis_stats(b, &st, &e), CAP_OK);
    CHECK_EQ_INT(st.masters, 1);
    CHECK_EQ_INT(st.wait_replicas, 0); /* a lone server: nothing to wait for */
    CHECK_EQ_INT(st.blobs, 0);

    /* One cap through put and fetch. */
    cap_t *c = random_cnode(5);
    cap_hash_t h;
    CHECK_EQ_INT(cap_persist_put(b, c, &h, &e), CAP_OK);
    cap_t *back = NULL;
    CHECK_EQ_INT(cap_persist_fetch(b, &h, cap_alloc_libc(), true, &back, &e), CAP_OK);
    CHECK(back && cap_equal(c, back));
    cap_release(back);
    CHECK_EQ_INT(cap_backend_exists(b, &h, &e), CAP_OK);
    cap_hash_t absent = test_rng_hash(&rng);
    CHECK_EQ_INT(cap_backend_exists(b, &absent, &e), CAP_ENOTFOUND);
    uint8_t *bytes;
    size_t n;
    CHECK_EQ_INT(cap_backend_read(b, &absent, cap_alloc_libc(), &bytes, &n, &e), CAP_ENOTFOUND);

    /* Batches: 40 caps, written, rewritten, one damaged and repaired. */
    enum { N = 40 };
    cap_t *caps[N];
    cap_backend_item_t items[N];
    cap_hash_t hs[N + 1];
    for (int i = 0; i < N; i++) {
        caps[i] = random_cnode(1 + i % 7);
        hs[i] = test_hash_cap(caps[i]);
        items[i].hash = hs[i];
        CHECK_EQ_INT(cap_wire_encode_alloc(caps[i], cap_alloc_libc(), (uint8_t **)&items[i].bytes,
                                           &items[i].n),
                     CAP_OK);
    }
    cap_backend_write_result_t res;
    CHECK_EQ_INT(cap_backend_write_many(b, items, N, NULL, 0, &res, &e), CAP_OK);
    CHECK_EQ_INT(res.written, N);
    CHECK_EQ_INT(res.repaired, 0);
    CHECK_EQ_INT(cap_backend_write_many(b, items, N, NULL, 0, &res, &e), CAP_OK);
    CHECK_EQ_INT(res.written, 0);
    CHECK_EQ_INT(res.repaired, 0);
    uint8_t key[64];
    key_of("t1:", &hs[3], key);
    raw_set(lone.ports[0], key, 35, "garbage", 7);
    CHECK_EQ_INT(cap_backend_write_many(b, items, N, NULL, 0, &res, &e), CAP_OK);
    CHECK_EQ_INT(res.written, 0);
    CHECK_EQ_INT(res.repaired, 1);

    /* read_many / exists_many with an absent hash among them. */
    hs[N] = absent;
    uint8_t *rb[N + 1];
    size_t rl[N + 1];
    int codes[N + 1];
    CHECK_EQ_INT(cap_backend_read_many(b, hs, N + 1, cap_alloc_libc(), rb, rl, codes, &e), CAP_OK);
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(codes[i], CAP_OK);
        CHECK(rl[i] == items[i].n && memcmp(rb[i], items[i].bytes, rl[i]) == 0);
        free(rb[i]);
    }
    CHECK_EQ_INT(codes[N], CAP_ENOTFOUND);
    CHECK_EQ_INT(cap_backend_exists_many(b, hs, N + 1, codes, &e), CAP_OK);
    for (int i = 0; i < N; i++) CHECK_EQ_INT(codes[i], CAP_OK);
    CHECK_EQ_INT(codes[N], CAP_ENOTFOUND);

    /* Roots: a root is set only over a complete graph. A Data cap is a leaf;
     * the 40 CNodes name random hashes (never complete). */
    cap_t *leaf = NULL;
    CHECK_EQ_INT(cap_data_new_inline(&leaf, cap_alloc_libc(), 64, "leaf", 4), CAP_OK);
    cap_hash_t lh = test_hash_cap(leaf);
    cap_t *parent = NULL;
    CHECK_EQ_INT(cap_cnode_new(&parent, cap_alloc_libc(), 2), CAP_OK);
    test_set_hash(parent, 0, &lh);
    test_set_hash(parent, 1, &hs[0]); /* names random hashes: not closed */
    cap_hash_t ph;
    CHECK_EQ_INT(cap_persist_put(b, parent, &ph, &e), CAP_OK);
    CHECK_EQ_INT(cap_backend_root_set(b, "main", &ph, &e), CAP_EBLOBMISSING);
    CHECK(e.has_hash); /* the leaf is missing (or a grandchild of hs[0]) */
    CHECK_EQ_INT(cap_persist_put(b, leaf, NULL, &e), CAP_OK);
    cap_t *closed = NULL;
    CHECK_EQ_INT(cap_cnode_new(&closed, cap_alloc_libc(), 2), CAP_OK);
    test_set_hash(closed, 0, &lh);
    test_set_hash(closed, 3, &lh);
    cap_hash_t ch;
    CHECK_EQ_INT(cap_persist_put(b, closed, &ch, &e), CAP_OK);
    CHECK_EQ_INT(cap_backend_root_set(b, "zeta/one", &ch, &e), CAP_OK);
    CHECK_EQ_INT(cap_backend_root_set(b, "alpha", &lh, &e), CAP_OK);
    cap_hash_t got;
    CHECK_EQ_INT(cap_backend_root_get(b, "zeta/one", &got, &e), CAP_OK);
    CHECK_MEM(got.bytes, ch.bytes, 32);
    CHECK_EQ_INT(cap_backend_root_get(b, "nope", &got, &e), CAP_ENOTFOUND);
    CHECK_EQ_INT(cap_backend_root_get(b, "main", &got, &e), CAP_ENOTFOUND);
    CHECK_EQ_INT(cap_backend_root_delete(b, "alpha", &e), CAP_OK);
    CHECK_EQ_INT(cap_backend_root_delete(b, "alpha", &e), CAP_ENOTFOUND);
    CHECK_EQ_INT(cap_backend_root_set(b, "alpha", &lh, &e), CAP_OK);
    CHECK_EQ_INT(cap_backend_root_set(b, "beta", &ch, &e), CAP_OK);
    char names[3][32];
    list_pos = 0;
    CHECK_EQ_INT(cap_backend_root_list(b, list_fn, names, &e), CAP_OK);
    CHECK_EQ_INT(list_pos, 3);
    CHECK(strcmp(names[0], "alpha") == 0 && strcmp(names[1], "beta") == 0 &&
          strcmp(names[2], "zeta/one") == 0);
    CHECK_EQ_INT(cap_redis_stats(b, &st, &e), CAP_OK);
    CHECK_EQ_INT(st.roots, 3);
    CHECK_EQ_INT(st.blobs, N + 4);

    /* iterate sees every blob once (the roots hash is not a blob). */
    size_t count = 0;
    CHECK_EQ_INT(cap_backend_iterate(b, count_fn, &count, &e), CAP_OK);
    CHECK_EQ_INT(count, N + 4);

    for (int i = 0; i < N; i++) {
        free((void *)items[i].bytes);
        cap_release(caps[i]);
    }
    cap_release(c);
    cap_release(leaf);
    cap_release(parent);
    cap_release(closed);
    cap_backend_free(b);
}

static void test_lone_limits(void)
{
    char uri[256];
    redis_servers_uri(&lone, 0, "t2:", uri, sizeof uri);
    cap_redis_options_t o = CAP_REDIS_OPTIONS_INIT;
    o.max_blob_size = 64;
    cap_backend_t *b = open_backend(uri, &o);
    if (!b) return;
    cap_err_t e;
    /* A value over the limit stored by someone else: refused, unread. */
    cap_t *big = random_cnode(6); /* 6 hashes: more than 64 wire bytes */
    size_t wire;
    CHECK_EQ_INT(cap_wire_size(big, &wire), CAP_OK);
    CHECK(wire > 64);
    cap_hash_t bh = test_hash_cap(big);
    CHECK_EQ_INT(cap_persist_put(b, big, NULL, &e), CAP_EBACKEND);
    CHECK(e.what && strstr(e.what, "max_blob_size"));
    uint8_t *enc;
    size_t n;
    CHECK_EQ_INT(cap_wire_encode_alloc(big, cap_alloc_libc(), &enc, &n), CAP_OK);
    uint8_t key[64];
    key_of("t2:", &bh, key);
    raw_set(lone.ports[0], key, 35, enc, n);
    cap_t *out = NULL;
    CHECK_EQ_INT(cap_persist_fetch(b, &bh, cap_alloc_libc(), true, &out, &e), CAP_EBACKEND);
    CHECK(e.what && strstr(e.what, "max_blob_size"));
    CHECK(out == NULL);
    /* The same bytes with the default limit: fine. */
    redis_servers_uri(&lone, 0, "t2:", uri, sizeof uri);
    cap_backend_t *b2 = open_backend(uri, NULL);
    CHECK_EQ_INT(cap_persist_fetch(b2, &bh, cap_alloc_libc(), true, &out, &e), CAP_OK);
    cap_release(out);
    /* An empty value under a blob key: present, and does not decode. */
    cap_hash_t eh = test_rng_hash(&rng);
    key_of("t2:", &eh, key);
    raw_set(lone.ports[0], key, 35, "", 0);
    CHECK_EQ_INT(cap_backend_exists(b2, &eh, &e), CAP_OK);
    CHECK_EQ_INT(cap_persist_fetch(b2, &eh, cap_alloc_libc(), true, &out, &e), CAP_EDECODE);
    free(enc);
    cap_release(big);
    cap_backend_free(b);
    cap_backend_free(b2);

    /* An evicting policy is refused, unless the user accepts a forgetful cache. */
    redis_cli(lone.ports[0], NULL, 0, "config set maxmemory-policy allkeys-lru");
    b = NULL;
    CHECK_EQ_INT(cap_redis_open(uri, NULL, &b, &e), CAP_EBACKEND);
    CHECK(e.what && strstr(e.what, "maxmemory-policy"));
    CHECK(strstr(e.detail, "allkeys-lru") != NULL);
    o = (cap_redis_options_t)CAP_REDIS_OPTIONS_INIT;
    o.flags = CAP_REDIS_ALLOW_EVICTION;
    b = open_backend(uri, &o);
    cap_backend_free(b);
    redis_cli(lone.ports[0], NULL, 0, "config set maxmemory-policy volatile-lru");
    b = open_backend(uri, NULL); /* our keys never expire: volatile-* spares them */
    cap_backend_free(b);
    redis_cli(lone.ports[0], NULL, 0, "config set maxmemory-policy noeviction");

    /* A password: from the environment; never in a message. */
    redis_cli(lone.ports[0], NULL, 0, "config set requirepass pw-Zq81x");
    unsetenv("CAPSTORE_REDIS_PASSWORD");
    b = NULL;
    CHECK_EQ_INT(cap_redis_open(uri, NULL, &b, &e), CAP_EBACKEND);
    o = (cap_redis_options_t)CAP_REDIS_OPTIONS_INIT;
    o.password = "wrong-Pw77";
    CHECK_EQ_INT(cap_redis_open(uri, &o, &b, &e), CAP_EBACKEND);
    char msg[512];
    cap_err_format(&e, msg, sizeof msg);
    CHECK(strstr(msg, "wrong-Pw77") == NULL);
    CHECK(strstr(msg, "authentication") != NULL);
    setenv("CAPSTORE_REDIS_PASSWORD", "pw-Zq81x", 1);
    b = open_backend(uri, NULL);
    CHECK_EQ_INT(cap_persist_fetch(b, &bh, cap_alloc_libc(), true, &out, &e), CAP_OK);
    cap_release(out);
    cap_backend_free(b);
    unsetenv("CAPSTORE_REDIS_PASSWORD");
    char out_s[64];
    redis_cli(lone.ports[0], out_s, sizeof out_s, "-a pw-Zq81x --no-auth-warning config set requirepass ''");
}

/* The server stopped: calls fail naming the node, the store still serves
 * what it holds, and works again once the server is back. */
static void test_lone_stopped(void)
{
    char uri[256];
    redis_servers_uri(&lone, 0, "t3:", uri, sizeof uri);
    cap_redis_options_t o = CAP_REDIS_OPTIONS_INIT;
    o.retry_ms = 300; /* keep the failing calls short */
    cap_backend_t *b = open_backend(uri, &o);
    if (!b) return;
    cap_store_t *s = new_store(b);
    enum { N = 20 };
    cap_hash_t hs[N];
    for (int i = 0; i < N; i++) {
        cap_t *c = random_cnode(3);
        CHECK_EQ_INT(cap_store_put_cap(s, c, &hs[i]), CAP_OK);
        cap_release(c);
    }
    size_t written;
    cap_err_t e;
    CHECK_EQ_INT(cap_store_flush(s, &written, &e), CAP_OK);
    CHECK_EQ_INT(written, N);
    cap_store_free(s);
    /* A fresh store holding only the first half. */
    s = new_store(b);
    for (int i = 0; i < N / 2; i++) {
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_store_fetch_blob(s, &hs[i], &c, &e), CAP_OK);
        cap_release(c);
    }
    CHECK_EQ_INT(redis_servers_script(&lone, "kill", "%d TERM", lone.ports[0]), 0);
    char node[32];
    snprintf(node, sizeof node, "127.0.0.1:%d", lone.ports[0]);
    for (int i = 0; i < N / 2; i++) {
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_store_fetch_blob(s, &hs[i], &c, &e), CAP_OK); /* memory */
        cap_release(c);
    }
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_store_fetch_blob(s, &hs[N - 1], &c, &e), CAP_EBACKEND);
    CHECK(strstr(e.detail, node) != NULL);
    CHECK(!cap_store_contains_blob(s, &hs[N - 1]));
    cap_t *nc = random_cnode(2);
    CHECK_EQ_INT(cap_store_put_cap(s, nc, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_flush(s, &written, &e), CAP_EBACKEND);
    CHECK(strstr(e.detail, node) != NULL);
    CHECK_EQ_INT(cap_store_exists(s, &hs[N - 1], &e), CAP_EBACKEND);
    /* Back (the append-only file brings the blobs back too). */
    CHECK_EQ_INT(redis_servers_script(&lone, "revive", "%d", lone.ports[0]), 0);
    CHECK_EQ_INT(cap_store_fetch_blob(s, &hs[N - 1], &c, &e), CAP_OK);
    cap_release(c);
    CHECK_EQ_INT(cap_store_flush(s, &written, &e), CAP_OK);
    CHECK_EQ_INT(written, 1);
    cap_release(nc);
    cap_store_free(s);
    cap_backend_free(b);
}

/* Cluster ---------------------------------------------------------------------------------- */

static void test_cluster_round_trip(void)
{
    char uri[256];
    redis_servers_uri(&cluster, 1, "c1:", uri, sizeof uri); /* one seed is enough */
    cap_backend_t *b = open_backend(uri, NULL);
    if (!b) return;
    cap_redis_stats_t st;
    cap_err_t e;
    CHECK_EQ_INT(cap_redis_stats(b, &st, &e), CAP_OK);
    CHECK_EQ_INT(st.masters, 3);
    CHECK_EQ_INT(st.replicas, 3);
    CHECK_EQ_INT(st.wait_replicas, 1);

    /* Our slot for a key is the server's. */
    for (int i = 0; i < 50; i++) {
        cap_hash_t h = test_rng_hash(&rng);
        uint8_t key[64];
        key_of("c1:", &h, key);
        redisContext *c = redisConnect("127.0.0.1", cluster.ports[0]);
        const char *argv[3] = {"CLUSTER", "KEYSLOT", (const char *)key};
        size_t argvlen[3] = {7, 7, 35};
        redisReply *r = redisCommandArgv(c, 3, argv, argvlen);
        CHECK(r && r->type == REDIS_REPLY_INTEGER);
        if (r) CHECK_EQ_INT(r->integer, redis_key_slot(key, 35));
        if (r) freeReplyObject(r);
        redisFree(c);
    }

    enum { N = 600 };
    cap_store_t *s = new_store(b);
    cap_hash_t *hs = malloc(N * sizeof *hs);
    for (int i = 0; i < N; i++) {
        cap_t *c = random_cnode(1 + i % 9);
        CHECK_EQ_INT(cap_store_put_cap(s, c, &hs[i]), CAP_OK);
        cap_release(c);
    }
    size_t written;
    CHECK_EQ_INT(cap_store_flush(s, &written, &e), CAP_OK);
    CHECK_EQ_INT(written, N);
    cap_store_free(s);
    /* Every master holds some. */
    int masters[6];
    int nm = redis_servers_masters(&cluster, masters, 6);
    CHECK_EQ_INT(nm, 3);
    for (int m = 0; m < nm; m++) {
        char out[64];
        redis_cli(masters[m], out, sizeof out, "dbsize");
        CHECK(atoi(out) > N / 6);
    }
    s = new_store(b);
    for (int i = 0; i < N; i++) {
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_store_fetch_blob(s, &hs[i], &c, &e), CAP_OK);
        cap_release(c);
    }
    /* And in one batch. */
    uint8_t **rb = malloc(N * sizeof *rb);
    size_t *rl = malloc(N * sizeof *rl);
    int *codes = malloc(N * sizeof *codes);
    CHECK_EQ_INT(cap_backend_read_many(b, hs, N, cap_alloc_libc(), rb, rl, codes, &e), CAP_OK);
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(codes[i], CAP_OK);
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_persist_decode(&hs[i], rb[i], rl[i], cap_alloc_libc(), true, &c, &e), CAP_OK);
        cap_release(c);
        free(rb[i]);
    }
    free(rb);
    free(rl);
    free(codes);
    cap_store_free(s);
    free(hs);
    cap_backend_free(b);
}

/* Two processes: a child (another "host") publishes and flushes; the parent
 * fetches what it wrote, and the child fetches what the parent wrote. */
static void test_cluster_two_processes(void)
{
    char uri[256];
    redis_servers_uri(&cluster, 0, "c2:", uri, sizeof uri);
    enum { N = 100 };
    int to_parent[2], to_child[2];
    CHECK(pipe(to_parent) == 0 && pipe(to_child) == 0);
    cap_hash_t mine = {{0}};
    {
        cap_backend_t *b = open_backend(uri, NULL);
        cap_t *c = random_cnode(4);
        cap_err_t e;
        CHECK_EQ_INT(cap_persist_put(b, c, &mine, &e), CAP_OK);
        cap_release(c);
        cap_backend_free(b);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(to_parent[0]);
        close(to_child[1]);
        cap_backend_t *b = NULL;
        cap_err_t e;
        int bad = cap_redis_open(uri, NULL, &b, &e) != CAP_OK;
        cap_store_t *s = NULL;
        bad |= cap_store_new_host(&s) != CAP_OK || cap_store_add_backend(s, b, &e) != CAP_OK;
        cap_hash_t hs[N];
        for (int i = 0; i < N && !bad; i++) {
            cap_t *c = random_cnode(2 + i % 5);
            bad |= cap_store_put_cap(s, c, &hs[i]) != CAP_OK;
            cap_release(c);
        }
        size_t w;
        bad |= cap_store_flush(s, &w, &e) != CAP_OK || w != N;
        if (write(to_parent[1], hs, sizeof hs) != (ssize_t)sizeof hs) bad = 1;
        cap_hash_t theirs;
        if (read(to_child[0], &theirs, sizeof theirs) != (ssize_t)sizeof theirs) bad = 1;
        cap_t *c = NULL;
        bad |= cap_store_fetch_blob(s, &theirs, &c, &e) != CAP_OK;
        cap_release(c);
        cap_store_free(s);
        cap_backend_free(b);
        _exit(bad ? 1 : 0);
    }
    close(to_parent[1]);
    close(to_child[0]);
    cap_hash_t hs[N];
    size_t got = 0;
    while (got < sizeof hs) {
        ssize_t r = read(to_parent[0], (char *)hs + got, sizeof hs - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    CHECK_EQ_INT(got, sizeof hs);
    cap_backend_t *b = open_backend(uri, NULL);
    cap_store_t *s = new_store(b);
    cap_err_t e;
    for (int i = 0; i < N && got == sizeof hs; i++) {
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_store_fetch_blob(s, &hs[i], &c, &e), CAP_OK);
        cap_release(c);
    }
    CHECK(write(to_child[1], &mine, sizeof mine) == (ssize_t)sizeof mine);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(to_parent[0]);
    close(to_child[1]);
    cap_store_free(s);
    cap_backend_free(b);
}

/* A poisoned value (other valid wire bytes under a blob's key) is refused
 * with CAP_EMISMATCH and never published; a write of the right bytes
 * repairs it. */
static void test_cluster_poisoned(void)
{
    char uri[256];
    redis_servers_uri(&cluster, 0, "c3:", uri, sizeof uri);
    cap_backend_t *b = open_backend(uri, NULL);
    if (!b) return;
    cap_err_t e;
    cap_t *good = random_cnode(3), *evil = random_cnode(3);
    cap_hash_t gh;
    CHECK_EQ_INT(cap_persist_put(b, good, &gh, &e), CAP_OK);
    uint8_t *enc;
    size_t n;
    CHECK_EQ_INT(cap_wire_encode_alloc(evil, cap_alloc_libc(), &enc, &n), CAP_OK);
    uint8_t key[64];
    key_of("c3:", &gh, key);
    int port = master_of(&cluster, key, 35);
    CHECK(port > 0);
    raw_set(port, key, 35, enc, n);
    cap_store_t *s = new_store(b);
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_store_fetch_blob(s, &gh, &c, &e), CAP_EMISMATCH);
    CHECK(c == NULL);
    CHECK(e.has_hash && memcmp(e.hash.bytes, gh.bytes, 32) == 0);
    CHECK(!cap_store_contains_blob(s, &gh));
    CHECK_EQ_INT(cap_store_blob_count(s), 0);
    CHECK_EQ_INT(cap_store_get_blob(s, &gh, &c), CAP_EMISMATCH);
    CHECK_EQ_INT(cap_store_blob_count(s), 0);
    /* Repaired by a write of the true bytes (a plain overwrite). */
    uint8_t *genc;
    size_t gn;
    CHECK_EQ_INT(cap_wire_encode_alloc(good, cap_alloc_libc(), &genc, &gn), CAP_OK);
    cap_backend_item_t it = {gh, genc, gn};
    cap_backend_write_result_t res;
    CHECK_EQ_INT(cap_backend_write_many(b, &it, 1, NULL, 0, &res, &e), CAP_OK);
    CHECK_EQ_INT(res.repaired, 1);
    CHECK_EQ_INT(cap_store_fetch_blob(s, &gh, &c, &e), CAP_OK);
    CHECK(c && cap_equal(c, good));
    cap_release(c);
    free(enc);
    free(genc);
    cap_release(good);
    cap_release(evil);
    cap_store_free(s);
    cap_backend_free(b);
}

/* Slots moved while a reader fetches ---------------------------------------------------- */

typedef struct reader {
    cap_backend_t *b;
    const cap_hash_t *hs;
    size_t n;
    atomic_int stop;
    long fetches, failures, batches;
    char first_failure[256];
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *rd = arg;
    const cap_alloc_t *a = cap_alloc_libc();
    uint8_t **rb = malloc(64 * sizeof *rb);
    size_t *rl = malloc(64 * sizeof *rl);
    int *codes = malloc(64 * sizeof *codes);
    size_t i = 0;
    while (!atomic_load(&rd->stop)) {
        /* Alternate single fetches and batches of 64. */
        cap_err_t e;
        cap_t *c = NULL;
        int rc = cap_persist_fetch(rd->b, &rd->hs[i % rd->n], a, true, &c, &e);
        rd->fetches++;
        if (rc != CAP_OK) {
            if (!rd->failures++) cap_err_format(&e, rd->first_failure, sizeof rd->first_failure);
        }
        cap_release(c);
        size_t at = (i * 7) % (rd->n - 64);
        rc = cap_backend_read_many(rd->b, rd->hs + at, 64, a, rb, rl, codes, &e);
        rd->batches++;
        for (size_t k = 0; k < 64; k++) {
            rd->fetches++;
            if (rc != CAP_OK || codes[k] != CAP_OK) {
                if (!rd->failures++) cap_err_format(&e, rd->first_failure, sizeof rd->first_failure);
                continue;
            }
            c = NULL;
            if (cap_persist_decode(&rd->hs[at + k], rb[k], rl[k], a, true, &c, &e) != CAP_OK)
                rd->failures++;
            cap_release(c);
            free(rb[k]);
        }
        i++;
    }
    free(rb);
    free(rl);
    free(codes);
    return NULL;
}

/* Node id of the master at `port` (CLUSTER MYID). */
static void node_id(int port, char *id, size_t n)
{
    redis_cli(port, id, n, "cluster myid");
    id[strcspn(id, "\r\n")] = 0;
}

static int slots_of(int port)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    int total = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if ((int)e->element[2]->element[1]->integer == port)
            total += (int)(e->element[1]->integer - e->element[0]->integer + 1);
    }
    if (r) freeReplyObject(r);
    redisFree(c);
    return total;
}

static void test_cluster_reshard(void)
{
    char uri[256];
    redis_servers_uri(&cluster, 0, "c4:", uri, sizeof uri);
    cap_backend_t *b = open_backend(uri, NULL);
    if (!b) return;
    enum { N = 3000 };
    cap_t **caps = malloc(N * sizeof *caps);
    cap_hash_t *hs = malloc(N * sizeof *hs);
    for (int i = 0; i < N; i++) {
        caps[i] = random_cnode(2);
        hs[i] = test_hash_cap(caps[i]);
    }
    cap_err_t e;
    CHECK_EQ_INT(cap_persist_put_batch(b, caps, hs, N, cap_alloc_libc(), NULL, &e), CAP_OK);
    int masters[6];
    int nm = redis_servers_masters(&cluster, masters, 6);
    CHECK_EQ_INT(nm, 3);
    char from[64], to[64];
    node_id(masters[0], from, sizeof from);
    node_id(masters[1], to, sizeof to);
    int before = slots_of(masters[1]);

    reader_t rd;
    memset(&rd, 0, sizeof rd);
    rd.b = b;
    rd.hs = hs;
    rd.n = N;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, reader_main, &rd) == 0);
    /* Move 1500 slots (and their keys, MIGRATE in batches of 10). */
    static char out[1 << 20];
    int rc = redis_cli(masters[0], out, sizeof out,
                       "--cluster reshard 127.0.0.1:%d --cluster-from %s --cluster-to %s "
                       "--cluster-slots 1500 --cluster-yes --cluster-pipeline 10",
                       masters[0], from, to);
    long during = rd.fetches;
    atomic_store(&rd.stop, 1);
    pthread_join(th, NULL);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) fprintf(stderr, "reshard: ...%s\n", out + (strlen(out) > 2000 ? strlen(out) - 2000 : 0));
    CHECK_EQ_INT(slots_of(masters[1]), before + 1500);
    CHECK(during > 1000); /* the reader was busy while the slots moved */
    if (rd.failures) fprintf(stderr, "reshard: first failed fetch: %s\n", rd.first_failure);
    CHECK_EQ_INT(rd.failures, 0);
    printf("reshard: %ld fetches (%ld batches) while 1500 slots moved, %ld failed\n", rd.fetches,
           rd.batches, rd.failures);
    /* Every blob still there, on its new master. */
    cap_store_t *s = new_store(b);
    for (int i = 0; i < N; i++) {
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_store_fetch_blob(s, &hs[i], &c, &e), CAP_OK);
        cap_release(c);
        cap_release(caps[i]);
    }
    cap_store_free(s);
    free(caps);
    free(hs);
    cap_backend_free(b);
}

/* WAIT is enforced: with the replica of one master stopped (SIGSTOP), a
 * flush fails naming that master, and succeeds once the replica runs again. */
static void test_cluster_wait_enforced(void)
{
    char uri[256];
    redis_servers_uri(&cluster, 0, "c6:", uri, sizeof uri);
    cap_redis_options_t o = CAP_REDIS_OPTIONS_INIT;
    o.wait_timeout_ms = 300;
    cap_backend_t *b = open_backend(uri, &o);
    if (!b) return;
    int masters[6];
    CHECK_EQ_INT(redis_servers_masters(&cluster, masters, 6), 3);
    char info[4096];
    redis_cli(masters[0], info, sizeof info, "info replication");
    const char *at = strstr(info, "slave0:ip=");
    const char *port_at = at ? strstr(at, "port=") : NULL;
    int replica = port_at ? atoi(port_at + 5) : -1;
    CHECK(replica > 0);
    if (replica <= 0) {
        cap_backend_free(b);
        return;
    }
    cap_store_t *s = new_store(b);
    for (int i = 0; i < 300; i++) {
        cap_t *c = random_cnode(2);
        CHECK_EQ_INT(cap_store_put_cap(s, c, NULL), CAP_OK);
        cap_release(c);
    }
    CHECK_EQ_INT(redis_servers_script(&cluster, "kill", "%d STOP", replica), 0);
    size_t written;
    cap_err_t e;
    CHECK_EQ_INT(cap_store_flush(s, &written, &e), CAP_EBACKEND);
    CHECK_EQ_INT(redis_servers_script(&cluster, "kill", "%d CONT", replica), 0);
    char node[32];
    snprintf(node, sizeof node, "127.0.0.1:%d", masters[0]);
    CHECK(e.what && strstr(e.what, "acknowledged"));
    CHECK(strstr(e.detail, node) != NULL);
    /* Still dirty: the next flush writes them again, and now it holds. */
    CHECK_EQ_INT(cap_store_flush(s, &written, &e), CAP_OK);
    cap_store_free(s);
    cap_backend_free(b);
}

/* A master killed right after a flush that waited for a replica ------------------------ */

static void test_cluster_failover(void)
{
    char uri[256];
    redis_servers_uri(&cluster, 0, "c5:", uri, sizeof uri);
    cap_redis_options_t o = CAP_REDIS_OPTIONS_INIT;
    o.retry_ms = 30000; /* ride through the failover (node timeout 3 s, then an election) */
    cap_backend_t *b = open_backend(uri, &o);
    if (!b) return;
    cap_redis_stats_t st;
    cap_err_t e;
    CHECK_EQ_INT(cap_redis_stats(b, &st, &e), CAP_OK);
    CHECK_EQ_INT(st.wait_replicas, 1);
    enum { N = 1000 };
    cap_store_t *s = new_store(b);
    cap_hash_t *hs = malloc(N * sizeof *hs);
    for (int i = 0; i < N; i++) {
        cap_t *c = random_cnode(1 + i % 5);
        CHECK_EQ_INT(cap_store_put_cap(s, c, &hs[i]), CAP_OK);
        cap_release(c);
    }
    int masters[6];
    int nm = redis_servers_masters(&cluster, masters, 6);
    CHECK(nm >= 1);
    size_t written;
    CHECK_EQ_INT(cap_store_flush(s, &written, &e), CAP_OK);
    /* At once: no time for a replica to catch up that WAIT did not ensure. */
    CHECK_EQ_INT(redis_servers_script(&cluster, "kill", "%d KILL", masters[0]), 0);
    CHECK_EQ_INT(written, N);
    cap_store_free(s);
    /* A fresh store reads every blob: the first calls retry through the
     * failover (they may meet it under way); the rest once it is done. */
    s = new_store(b);
    size_t ok = 0;
    for (int i = 0; i < N; i++) {
        if (i == 10) CHECK_EQ_INT(redis_servers_script(&cluster, "wait", NULL), 0);
        cap_t *c = NULL;
        int rc = cap_store_fetch_blob(s, &hs[i], &c, &e);
        cap_release(c);
        if (rc != CAP_OK) {
            char msg[256];
            cap_err_format(&e, msg, sizeof msg);
            fprintf(stderr, "failover: fetch %d: %s\n", i, msg);
            break; /* (each failure costs retry_ms) */
        }
        ok++;
    }
    CHECK_EQ_INT(ok, N);
    /* The dead master's replica serves its slots now. */
    int after[6];
    CHECK_EQ_INT(redis_servers_masters(&cluster, after, 6), 3);
    cap_store_free(s);
    free(hs);
    cap_backend_free(b);
}

int main(void)
{
    redis_test_require("test_redis");
    signal(SIGPIPE, SIG_DFL); /* the backend must not need SIGPIPE ignored */
    redis_servers_start(&lone, false);
    test_lone_round_trip();
    test_lone_limits();
    test_lone_stopped();
    redis_servers_stop(&lone);
    redis_servers_start(&cluster, true);
    test_cluster_round_trip();
    test_cluster_two_processes();
    test_cluster_poisoned();
    test_cluster_reshard();
    test_cluster_wait_enforced();
    test_cluster_failover();
    redis_servers_stop(&cluster);
    return check_done("test_redis");
}
