/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* cap_redis_collect and cap_redis_find_prefix against a lone redis-server
 * (support/redis-cluster.sh):
 *   - a hash to keep whose graph is not stored whole: CAP_EBLOBMISSING
 *     naming the missing hash, nothing deleted;
 *   - a rooted graph with a blob that does not decode: CAP_EDECODE naming
 *     it, nothing deleted;
 *   - a dry run: lists every unrooted blob once, in hash order, deletes
 *     nothing;
 *   - a root set while the sweep runs (from the progress callback after
 *     the first batch of one): its graph is kept (late_roots 1), every
 *     other unrooted blob deleted, the rooted and given graphs kept;
 *   - read-only and non-Redis backends refused;
 *   - prefixes: a unique one (even and odd length), none, a bad one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "redis_servers.h"
#include "test_caps.h"
#include "test_graph.h"

static redis_servers_t lone;
static char uri[512];

static cap_backend_t *open_tier(unsigned flags)
{
    cap_redis_options_t o = CAP_REDIS_OPTIONS_INIT;
    o.flags = flags;
    cap_backend_t *b = NULL;
    cap_err_t e;
    CHECK_EQ_INT(cap_redis_open(uri, &o, &b, &e), CAP_OK);
    return b;
}

static int count_one(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    (void)h;
    (void)bytes;
    (void)n;
    (*(size_t *)arg)++;
    return 0;
}

static size_t count_blobs(const cap_backend_t *b)
{
    size_t n = 0;
    cap_err_t e;
    CHECK_EQ_INT(cap_backend_iterate(b, count_one, &n, &e), CAP_OK);
    return n;
}

/* Whether every blob of g is stored; how many are. */
static size_t stored_of(const cap_backend_t *b, const test_graph_t *g)
{
    size_t k = 0;
    for (size_t i = 0; i < g->n; i++) {
        cap_err_t e;
        k += cap_backend_exists(b, &g->items[i].hash, &e) == CAP_OK;
    }
    return k;
}

static void put_graph(const cap_backend_t *b, const test_graph_t *g, const char *root)
{
    cap_backend_root_t r = {root, g->root};
    cap_err_t e;
    CHECK_EQ_INT(cap_backend_write_many(b, g->items, g->n, &r, root ? 1 : 0, NULL, &e), CAP_OK);
}

/* A CNode naming `h` in slot 0, stored; its hash. */
static cap_hash_t put_parent(const cap_backend_t *b, const cap_hash_t *h)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, cap_alloc_libc(), 2), CAP_OK);
    test_set_hash(c, 0, h);
    cap_hash_t out;
    cap_err_t e;
    CHECK_EQ_INT(cap_persist_put(b, c, &out, &e), CAP_OK);
    cap_release(c);
    return out;
}

typedef struct dry_list {
    size_t n;
    cap_hash_t last;
    bool ordered;
} dry_list_t;

static void dry_each(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    (void)bytes;
    (void)n;
    dry_list_t *d = arg;
    if (d->n && memcmp(d->last.bytes, h->bytes, 32) >= 0) d->ordered = false;
    d->last = *h;
    d->n++;
}

/* The late root: after the first batch, a junk graph still whole is rooted. */
typedef struct late {
    const cap_backend_t *b;
    test_graph_t *junk;
    size_t njunk;
    int chosen; /* -1 until set */
} late_t;

static void late_progress(void *arg, const char *phase, uint64_t count, uint64_t bytes)
{
    (void)count;
    (void)bytes;
    late_t *l = arg;
    if (l->chosen >= 0 || strcmp(phase, "sweep") != 0) return;
    for (size_t i = 0; i < l->njunk; i++)
        if (stored_of(l->b, &l->junk[i]) == l->junk[i].n) {
            cap_err_t e;
            CHECK_EQ_INT(cap_backend_root_set(l->b, "late", &l->junk[i].root, &e), CAP_OK);
            l->chosen = (int)i;
            return;
        }
}

static void test_collect(void)
{
    cap_backend_t *b = open_tier(0);
    test_graph_t kept, given, junk[3];
    test_graph_make(&kept, 101, 24);
    test_graph_make(&given, 202, 8);
    for (int i = 0; i < 3; i++) test_graph_make(&junk[i], 303 + (uint64_t)i, 6);
    put_graph(b, &kept, "kept");
    put_graph(b, &given, NULL);
    for (int i = 0; i < 3; i++) put_graph(b, &junk[i], NULL);
    /* A CNode naming a hash stored nowhere, and one naming a blob that is no cap. */
    cap_hash_t nowhere = test_hash_of(77);
    cap_hash_t dangling = put_parent(b, &nowhere);
    cap_hash_t garbage = test_hash_of(78);
    static const uint8_t junk_bytes[] = "not a cap at all";
    cap_backend_item_t bad = {garbage, junk_bytes, sizeof junk_bytes};
    cap_err_t e;
    CHECK_EQ_INT(cap_backend_write_many(b, &bad, 1, NULL, 0, NULL, &e), CAP_OK);
    cap_hash_t damaged = put_parent(b, &garbage);
    size_t total = count_blobs(b);
    CHECK_EQ_INT((int)total, (int)(kept.n + given.n + junk[0].n + junk[1].n + junk[2].n + 3));

    /* Incomplete: nothing deleted, the missing hash named. */
    cap_redis_collect_result_t res;
    cap_hash_t keep[2] = {given.root, dangling};
    CHECK_EQ_INT(cap_redis_collect(b, keep, 2, NULL, &res, &e), CAP_EBLOBMISSING);
    CHECK(e.has_hash);
    CHECK_MEM(e.hash.bytes, nowhere.bytes, 32);
    CHECK_EQ_INT((int)count_blobs(b), (int)total);
    /* Damaged under a root: nothing deleted, the bad blob named. */
    CHECK_EQ_INT(cap_backend_root_set(b, "damaged", &damaged, &e), CAP_EDECODE); /* roots refuse it too */
    keep[1] = damaged;
    CHECK_EQ_INT(cap_redis_collect(b, keep, 2, NULL, &res, &e), CAP_EDECODE);
    CHECK(e.has_hash);
    CHECK_MEM(e.hash.bytes, garbage.bytes, 32);
    CHECK_EQ_INT((int)count_blobs(b), (int)total);

    /* Dry run: every unrooted blob once, in hash order; nothing deleted. */
    cap_redis_collect_options_t o = CAP_REDIS_COLLECT_OPTIONS_INIT;
    dry_list_t d = {0, {{0}}, true};
    o.flags = CAP_REDIS_COLLECT_DRY_RUN;
    o.each = dry_each;
    o.arg = &d;
    CHECK_EQ_INT(cap_redis_collect(b, &given.root, 1, &o, &res, &e), CAP_OK);
    size_t garbage_n = total - kept.n - given.n;
    CHECK_EQ_INT((int)res.deleted, (int)garbage_n);
    CHECK_EQ_INT((int)d.n, (int)garbage_n);
    CHECK(d.ordered);
    CHECK_EQ_INT((int)res.marked, (int)(kept.n + given.n));
    CHECK_EQ_INT((int)res.roots, 2);
    CHECK_EQ_INT((int)res.scanned, (int)total);
    CHECK_EQ_INT((int)count_blobs(b), (int)total);

    /* Read-only, or not Redis: refused. */
    cap_backend_t *ro = open_tier(CAP_REDIS_READONLY);
    CHECK_EQ_INT(cap_redis_collect(ro, NULL, 0, NULL, &res, &e), CAP_EBACKEND);
    cap_backend_free(ro);
    cap_backend_t *mem = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(NULL, &mem), CAP_OK);
    CHECK_EQ_INT(cap_redis_collect(mem, NULL, 0, NULL, &res, &e), CAP_EINVAL);
    cap_backend_free(mem);

    /* A root set during the sweep keeps its graph. */
    late_t l = {b, junk, 3, -1};
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.batch = 1;
    o.progress = late_progress;
    o.arg = &l;
    CHECK_EQ_INT(cap_redis_collect(b, &given.root, 1, &o, &res, &e), CAP_OK);
    CHECK(l.chosen >= 0);
    CHECK_EQ_INT((int)res.late_roots, 1);
    CHECK_EQ_INT((int)stored_of(b, &kept), (int)kept.n);
    CHECK_EQ_INT((int)stored_of(b, &given), (int)given.n);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT((int)stored_of(b, &junk[i]), i == l.chosen ? (int)junk[i].n : 0);
    CHECK_EQ_INT((int)count_blobs(b), (int)(kept.n + given.n + junk[l.chosen].n));
    CHECK_EQ_INT((int)res.deleted, (int)(garbage_n - junk[l.chosen].n));
    CHECK(res.batches >= res.deleted);

    /* Then a plain gc: the given graph goes, the roots' stay. */
    CHECK_EQ_INT(cap_redis_collect(b, NULL, 0, NULL, &res, &e), CAP_OK);
    CHECK_EQ_INT((int)res.deleted, (int)given.n);
    CHECK_EQ_INT((int)count_blobs(b), (int)(kept.n + junk[l.chosen].n));
    CHECK_EQ_INT((int)res.roots, 2);

    test_graph_free(&kept);
    test_graph_free(&given);
    for (int i = 0; i < 3; i++) test_graph_free(&junk[i]);
    cap_backend_free(b);
}

static void hex_of(const cap_hash_t *h, char *out)
{
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", h->bytes[i]);
}

static void test_prefix(void)
{
    cap_backend_t *b = open_tier(0);
    test_graph_t g;
    test_graph_make(&g, 404, 12);
    put_graph(b, &g, NULL);
    char hex[65];
    hex_of(&g.root, hex);
    cap_hash_t out[4];
    size_t found = 0;
    cap_err_t e;
    for (size_t nd = 9; nd <= 12; nd++) { /* odd and even lengths */
        CHECK_EQ_INT(cap_redis_find_prefix(b, hex, nd, out, 4, &found, &e), CAP_OK);
        CHECK_EQ_INT((int)found, 1);
        CHECK_MEM(out[0].bytes, g.root.bytes, 32);
    }
    hex[8] = hex[8] == '0' ? '1' : '0'; /* one digit off: nothing */
    CHECK_EQ_INT(cap_redis_find_prefix(b, hex, 9, out, 4, &found, &e), CAP_OK);
    CHECK_EQ_INT((int)found, 0);
    CHECK_EQ_INT(cap_redis_find_prefix(b, "12x4", 4, out, 4, &found, &e), CAP_EINVAL);
    /* One digit: every blob whose hash starts so, counted past `max`. */
    hex_of(&g.items[0].hash, hex);
    size_t want = 0;
    for (size_t i = 0; i < g.n; i++) want += (g.items[i].hash.bytes[0] >> 4) == (g.items[0].hash.bytes[0] >> 4);
    CHECK_EQ_INT(cap_redis_find_prefix(b, hex, 1, NULL, 0, &found, &e), CAP_OK);
    CHECK_EQ_INT((int)found, (int)want);
    test_graph_free(&g);
    cap_backend_free(b);
}

int main(void)
{
    redis_test_require("test_redis_collect");
    redis_servers_start(&lone, false);
    redis_servers_uri(&lone, 0, "gc:", uri, sizeof uri);
    test_prefix();
    redis_servers_uri(&lone, 0, "gc2:", uri, sizeof uri);
    test_collect();
    redis_servers_stop(&lone);
    return check_done("test_redis_collect");
}
