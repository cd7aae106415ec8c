/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Remote workloads: the Redis backend and redis-benchmark on the same tier
 * in the same run (see bench_remote.h for what each one times). */
#include "bench_remote.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"

static int fail(const char *workload, const char *what, int rc, const cap_err_t *e)
{
    char msg[256] = "";
    if (e) cap_err_format(e, msg, sizeof msg);
    fprintf(stderr, "%s: %s failed: %s\n", workload, what, e ? msg : cap_strerror(rc));
    return 1;
}

/* The tier ----------------------------------------------------------------------------------- */

typedef struct tier {
    char host[256];
    int port;
    int masters[64]; /* their ports (all on `host`'s interface as the map names them) */
    char master_host[64][256];
    int nmasters;
    bool cluster;
} tier_t;

/* The first seed of the URI, and the masters it reports. */
static int tier_find(const char *workload, const char *uri, tier_t *t)
{
    memset(t, 0, sizeof *t);
    const char *p = uri + 8, *at = strchr(p, '@');
    size_t auth = strcspn(p, "/?");
    if (at && (size_t)(at - p) < auth) p = at + 1;
    size_t len = strcspn(p, ",/?");
    const char *colon = memchr(p, ':', len);
    size_t hl = colon ? (size_t)(colon - p) : len;
    if (hl >= sizeof t->host) return fail(workload, "reading the URI", CAP_EINVAL, NULL);
    memcpy(t->host, p, hl);
    t->port = colon ? atoi(colon + 1) : 6379;
    redisContext *c = redisConnect(t->host, t->port);
    if (!c || c->err) {
        fprintf(stderr, "%s: cannot connect to %s:%d\n", workload, t->host, t->port);
        if (c) redisFree(c);
        return 1;
    }
    const char *pw = getenv("CAPSTORE_REDIS_PASSWORD");
    if (pw && *pw) {
        redisReply *r = redisCommand(c, "AUTH %s", pw);
        if (r) freeReplyObject(r);
    }
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    if (r && r->type == REDIS_REPLY_ARRAY) {
        t->cluster = true;
        for (size_t i = 0; i < r->elements && t->nmasters < 64; i++) {
            redisReply *m = r->element[i]->element[2];
            int port = (int)m->element[1]->integer;
            bool known = false;
            for (int k = 0; k < t->nmasters; k++) known |= t->masters[k] == port;
            if (known) continue;
            snprintf(t->master_host[t->nmasters], sizeof t->master_host[0], "%s",
                     m->element[0]->len ? m->element[0]->str : t->host);
            t->masters[t->nmasters++] = port;
        }
    } else {
        snprintf(t->master_host[0], sizeof t->master_host[0], "%s", t->host);
        t->masters[0] = t->port;
        t->nmasters = 1;
    }
    if (r) freeReplyObject(r);
    redisFree(c);
    return 0;
}

/* Delete every key under `prefix` (no glob characters in it) on every master. */
static void tier_clean(const tier_t *t, const char *prefix)
{
    const char *pw = getenv("CAPSTORE_REDIS_PASSWORD");
    for (int m = 0; m < t->nmasters; m++) {
        redisContext *c = redisConnect(t->master_host[m], t->masters[m]);
        if (!c || c->err) {
            if (c) redisFree(c);
            continue;
        }
        if (pw && *pw) {
            redisReply *a = redisCommand(c, "AUTH %s", pw);
            if (a) freeReplyObject(a);
        }
        char cursor[32] = "0";
        do {
            redisReply *r = redisCommand(c, "SCAN %s MATCH %s* COUNT 1000", cursor, prefix);
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                if (r) freeReplyObject(r);
                break;
            }
            snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
            redisReply *keys = r->element[1];
            for (size_t i = 0; i < keys->elements; i++)
                redisAppendCommand(c, "UNLINK %b", keys->element[i]->str, (size_t)keys->element[i]->len);
            for (size_t i = 0; i < keys->elements; i++) {
                redisReply *d = NULL;
                if (redisGetReply(c, (void **)&d) == REDIS_OK && d) freeReplyObject(d);
            }
            freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
        redisFree(c);
    }
}

static int open_tier(const char *workload, const bench_opts_t *o, char *prefix, size_t plen,
                     cap_backend_t **b)
{
    static unsigned seq;
    snprintf(prefix, plen, "capstore-bench:%d:%u:", (int)getpid(), seq++);
    cap_redis_options_t ro = CAP_REDIS_OPTIONS_INIT;
    ro.prefix = prefix;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = cap_redis_open(o->remote, &ro, b, &e);
    return rc == CAP_OK ? 0 : fail(workload, "cap_redis_open", rc, &e);
}

/* Inputs: the publish CNodes ------------------------------------------------------------------- */

typedef struct inputs {
    size_t n;
    cap_t **caps;
    cap_hash_t *hashes;
    cap_hash_t *order; /* the hashes in persist_get_cold's shuffled order */
    size_t wire;       /* their total wire size */
} inputs_t;

static void inputs_free(inputs_t *in)
{
    if (in->caps)
        for (size_t i = 0; i < in->n; i++) cap_release(in->caps[i]);
    free(in->caps);
    free(in->hashes);
    free(in->order);
    memset(in, 0, sizeof *in);
}

/* As bench_persist.c builds them: size_log 8, 16 distinct slots each drawn
 * as below(256), redrawn when taken, then given a random hash. */
static int inputs_build(const char *workload, uint64_t n, inputs_t *in)
{
    memset(in, 0, sizeof *in);
    in->n = (size_t)n;
    in->caps = calloc(in->n ? in->n : 1, sizeof *in->caps);
    in->hashes = calloc(in->n ? in->n : 1, sizeof *in->hashes);
    in->order = calloc(in->n ? in->n : 1, sizeof *in->order);
    uint32_t *perm = calloc(in->n ? in->n : 1, sizeof *perm);
    if (!in->caps || !in->hashes || !in->order || !perm) {
        free(perm);
        inputs_free(in);
        return fail(workload, "allocating inputs", CAP_ENOMEM, NULL);
    }
    bench_rng_t rng;
    bench_rng_reset(&rng, "publish");
    for (size_t i = 0; i < in->n; i++) {
        int rc = cap_cnode_new(&in->caps[i], cap_alloc_libc(), 8);
        while (rc == CAP_OK && cap_cnode_count(in->caps[i]) < 16) {
            uint32_t slot = (uint32_t)bench_rng_below(&rng, 256);
            cap_target_t cur;
            if (cap_cnode_get(in->caps[i], slot, &cur) == CAP_OK && cur.kind != CAP_TARGET_NONE) continue;
            cap_hash_t h;
            bench_rng_hash(&rng, h.bytes);
            cap_target_t t = cap_target_of_hash(&h);
            rc = cap_cnode_set(in->caps[i], slot, &t);
        }
        size_t w = 0;
        if (rc == CAP_OK) rc = cap_hash(in->caps[i], &in->hashes[i]);
        if (rc == CAP_OK) rc = cap_wire_size(in->caps[i], &w);
        if (rc != CAP_OK) {
            free(perm);
            inputs_free(in);
            return fail(workload, "building the publish CNodes", rc, NULL);
        }
        in->wire += w;
        perm[i] = (uint32_t)i;
    }
    bench_rng_reset(&rng, "persist_get_cold");
    bench_shuffle_u32(&rng, perm, in->n);
    for (size_t i = 0; i < in->n; i++) in->order[i] = in->hashes[perm[i]];
    free(perm);
    return 0;
}

/* The inputs written in calls of REMOTE_BATCH; *ns (may be NULL) the time. */
static int put_all(const char *workload, const cap_backend_t *b, const inputs_t *in, uint64_t *ns)
{
    cap_err_t e;
    memset(&e, 0, sizeof e);
    uint64_t t0 = bench_now_ns();
    for (size_t at = 0; at < in->n; at += REMOTE_BATCH) {
        size_t k = in->n - at < REMOTE_BATCH ? in->n - at : REMOTE_BATCH;
        int rc = cap_persist_put_batch(b, in->caps + at, in->hashes + at, k, cap_alloc_libc(), NULL, &e);
        if (rc != CAP_OK) return fail(workload, "cap_persist_put_batch", rc, &e);
    }
    if (ns) *ns = bench_now_ns() - t0;
    return 0;
}

/* Workloads ------------------------------------------------------------------------------------- */

static int need_remote(const bench_opts_t *o, const char *workload)
{
    if (o->remote) return 0;
    fprintf(stderr, "%s: needs --db redis://HOST:PORT (a Redis server or cluster)\n", workload);
    return 1;
}

int bench_remote_put(const bench_opts_t *o)
{
    const char *W = "remote_put";
    tier_t t;
    inputs_t in;
    if (need_remote(o, W) || tier_find(W, o->remote, &t) || inputs_build(W, o->n, &in)) return 1;
    char prefix[64];
    cap_backend_t *b = NULL;
    int status = open_tier(W, o, prefix, sizeof prefix, &b);
    uint64_t ns = 0;
    if (!status) status = put_all(W, b, &in, &ns);
    if (!status) {
        /* Every blob is there (untimed). */
        cap_redis_stats_t st;
        cap_err_t e;
        memset(&e, 0, sizeof e);
        int rc = cap_redis_stats(b, &st, &e);
        if (rc != CAP_OK || st.blobs != in.n) status = fail(W, "blob count check", rc ? rc : CAP_EINVAL, &e);
    }
    if (!status) bench_report(o, W, in.n, (double)ns, "capstore");
    cap_backend_free(b);
    tier_clean(&t, prefix);
    inputs_free(&in);
    return status;
}

static int gets(const bench_opts_t *o, const char *W, bool cold)
{
    tier_t t;
    inputs_t in;
    if (need_remote(o, W) || tier_find(W, o->remote, &t) || inputs_build(W, o->n, &in)) return 1;
    char prefix[64];
    cap_backend_t *b = NULL;
    int status = open_tier(W, o, prefix, sizeof prefix, &b);
    if (!status) status = put_all(W, b, &in, NULL);
    /* A cold read starts from bytes only. */
    for (size_t i = 0; i < in.n; i++) cap_release(in.caps[i]);
    free(in.caps);
    in.caps = NULL;
    uint8_t **bytes = calloc(REMOTE_BATCH, sizeof *bytes);
    size_t *lens = calloc(REMOTE_BATCH, sizeof *lens);
    int *codes = calloc(REMOTE_BATCH, sizeof *codes);
    cap_t **out = calloc(REMOTE_BATCH, sizeof *out);
    cap_store_t *s = NULL;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    if (!status && (!bytes || !lens || !codes || !out)) status = fail(W, "allocating", CAP_ENOMEM, NULL);
    if (!status && cold) {
        int rc = cap_store_new_host(&s);
        if (rc == CAP_OK) rc = cap_store_add_backend(s, b, &e);
        if (rc != CAP_OK) status = fail(W, "a store on the tier", rc, &e);
    }
    size_t ok = 0;
    uint64_t sum = 0, t0 = bench_now_ns();
    for (size_t at = 0; !status && at < in.n; at += REMOTE_BATCH) {
        size_t k = in.n - at < REMOTE_BATCH ? in.n - at : REMOTE_BATCH;
        int rc;
        if (cold) {
            rc = cap_store_get_blobs(s, in.order + at, k, out, codes, &e);
            for (size_t j = 0; j < k; j++) {
                ok += codes[j] == CAP_OK;
                cap_release(out[j]);
            }
        } else {
            rc = cap_backend_read_many(b, in.order + at, k, cap_alloc_libc(), bytes, lens, codes, &e);
            for (size_t j = 0; j < k; j++) {
                if (codes[j] == CAP_OK && lens[j]) {
                    ok++;
                    sum += bytes[j][lens[j] - 1];
                }
                free(bytes[j]);
            }
        }
        if (rc != CAP_OK) status = fail(W, cold ? "cap_store_get_blobs" : "cap_backend_read_many", rc, &e);
    }
    uint64_t t1 = bench_now_ns();
    if (!status && ok != in.n) status = fail(W, "every read found (and verified)", CAP_ENOTFOUND, NULL);
    if (!status) bench_report(o, W, in.n, (double)(t1 - t0), "capstore");
    if (sum == 1) fprintf(stderr, " "); /* keep the reads */
    cap_store_free(s);
    cap_backend_free(b);
    tier_clean(&t, prefix);
    free(bytes);
    free(lens);
    free(codes);
    free(out);
    inputs_free(&in);
    return status;
}

int bench_remote_get_raw(const bench_opts_t *o) { return gets(o, "remote_get_raw", false); }

int bench_remote_get_cold(const bench_opts_t *o) { return gets(o, "remote_get_cold", true); }

/* redis-benchmark ----------------------------------------------------------------------------- */

/* redis-benchmark -t TESTS on the tier, with the remote workloads' value size
 * and pipeline: one client per master, each pipelining REMOTE_BATCH /
 * masters requests; the requests/s of the test NAME reported as
 * "redis_name <n> <ns per request> redis".
 *   SET: -r 10^8, so that nearly every SET makes a new key, as every blob of
 *        remote_put is one (without -r every request of a client overwrites
 *        one key in place: no key to allocate, no table to grow);
 *   GET: without -r, after the SET that -t set,get runs first: every GET
 *        finds its value, on one hot key (redis-benchmark's best case).
 * Its keys are left in place: they are named by redis-benchmark, not by
 * us, and may not be ours to delete (with -r, up to N of them). */
static int redis_benchmark(const bench_opts_t *o, const char *W, const char *tests, const char *name,
                           bool random_keys)
{
    tier_t t;
    inputs_t in;
    if (need_remote(o, W) || tier_find(W, o->remote, &t)) return 1;
    if (getenv("CAPSTORE_REDIS_PASSWORD")) {
        /* Its only way to take a password is the command line (-a), visible to all. */
        fprintf(stderr, "%s: skipped: redis-benchmark would need the password on its command line\n", W);
        return 0;
    }
    if (inputs_build(W, o->n < 1000 ? o->n : 1000, &in)) return 1;
    size_t size = in.n ? in.wire / in.n : 1;
    inputs_free(&in);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "redis-benchmark -h '%s' -p %d %s -c %d -P %d -n %llu -d %zu %s -t %s --csv 2>/dev/null",
             t.host, t.port, t.cluster ? "--cluster" : "", t.nmasters, REMOTE_BATCH / t.nmasters,
             (unsigned long long)o->n, size, random_keys ? "-r 100000000" : "", tests);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) return fail(W, "running redis-benchmark", CAP_EBACKEND, NULL);
    char line[512];
    double rps = 0;
    size_t nl = strlen(name);
    while (fgets(line, sizeof line, p)) {
        /* "SET","123456.78",... (the test's name in capitals, then requests/s) */
        if (line[0] != '"' || strncmp(line + 1, name, nl) != 0 || strncmp(line + 1 + nl, "\",\"", 3) != 0)
            continue;
        rps = strtod(line + 1 + nl + 3, NULL);
    }
    int st = pclose(p);
    if (st != 0 || rps <= 0) return fail(W, "redis-benchmark (is it installed?)", CAP_EBACKEND, NULL);
    bench_report(o, W, o->n, (double)o->n * 1e9 / rps, "redis");
    return 0;
}

int bench_redis_set(const bench_opts_t *o) { return redis_benchmark(o, "redis_set", "set", "SET", true); }

int bench_redis_get(const bench_opts_t *o) { return redis_benchmark(o, "redis_get", "set,get", "GET", false); }
