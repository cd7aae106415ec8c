/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The database's life against raw LMDB (bench_life.h says what each
 * workload times). */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "bench_life.h"
#include "capstore/archive.h"
#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"

#define GRAPHS 12
#define ROOTED 6
#define BATCH 1024

/* A set of hashes (open addressing; the first 8 bytes of a hash are
 * uniform already). */
typedef struct hset {
    cap_hash_t *slot;
    uint8_t *used;
    size_t mask, n;
} hset_t;

static int hset_init(hset_t *s, size_t want)
{
    size_t cap = 1024;
    while (cap < want * 2) cap *= 2;
    s->slot = malloc(cap * sizeof *s->slot);
    s->used = calloc(cap, 1);
    s->mask = cap - 1;
    s->n = 0;
    return s->slot && s->used ? 0 : -1;
}

static void hset_free(hset_t *s)
{
    free(s->slot);
    free(s->used);
    memset(s, 0, sizeof *s);
}

static size_t hset_at(const hset_t *s, const cap_hash_t *h)
{
    uint64_t v;
    memcpy(&v, h->bytes, 8);
    return (size_t)v & s->mask;
}

static bool hset_has(const hset_t *s, const cap_hash_t *h)
{
    for (size_t i = hset_at(s, h);; i = (i + 1) & s->mask) {
        if (!s->used[i]) return false;
        if (memcmp(s->slot[i].bytes, h->bytes, 32) == 0) return true;
    }
}

/* true when added (the set must have room: sized at init). */
static bool hset_add(hset_t *s, const cap_hash_t *h)
{
    for (size_t i = hset_at(s, h);; i = (i + 1) & s->mask) {
        if (!s->used[i]) {
            s->used[i] = 1;
            s->slot[i] = *h;
            s->n++;
            return true;
        }
        if (memcmp(s->slot[i].bytes, h->bytes, 32) == 0) return false;
    }
}

/* The fixture, built once per run. */
static struct fixture {
    bool built, failed;
    char dir[512], base[600];
    uint64_t caps;        /* per graph */
    uint64_t blobs;       /* in the database */
    cap_hash_t roots[GRAPHS];
    hset_t garbage;       /* the hashes of the unrooted graphs */
    uint8_t *arc;         /* graph 0's archive */
    size_t narc;
} F;

static int fail(const char *w, const char *what, int rc, const cap_err_t *e)
{
    fprintf(stderr, "%s: %s failed: %s%s%s\n", w, what, cap_strerror(rc), e && e->what ? ": " : "",
            e && e->what ? e->what : "");
    return 1;
}

static void cleanup(void)
{
    if (!F.dir[0]) return;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", F.dir);
    if (system(cmd) != 0) fprintf(stderr, "bench: could not remove %s\n", F.dir);
    F.dir[0] = 0;
}

typedef struct walk_collect {
    hset_t *set;
} walk_collect_t;

static int add_to_set(void *arg, const cap_walk_visit_t *v)
{
    hset_add(((walk_collect_t *)arg)->set, &v->hash);
    return 0;
}

/* One settle_tree-shaped closed graph, checkpointed and flushed to `b`
 * (under the root "g/<g>" when rooted). */
static int build_graph(const bench_opts_t *o, cap_backend_t *b, int g, bool rooted)
{
    const char *W = "bench fixture";
    const cap_alloc_t *a = cap_alloc_libc();
    unsigned levels = 1;
    while (levels < 31 && ((1ull << (2 * (levels + 1))) - 1) / 3 <= o->n) levels++;
    uint64_t width = 1ull << (2 * (levels - 1));
    F.caps = ((1ull << (2 * levels)) - 1) / 3;
    char seed[32];
    snprintf(seed, sizeof seed, "lifecycle/%d", g);
    bench_rng_t rng;
    bench_rng_reset(&rng, seed);
    cap_store_t *s = NULL;
    int rc = cap_store_new_host(&s);
    if (rc != CAP_OK) return fail(W, "cap_store_new_host", rc, NULL);
    cap_err_t e;
    cap_store_add_backend(s, b, &e);
    cap_target_t *layer = calloc((size_t)width, sizeof *layer);
    cap_ref_t **refs = calloc((size_t)width, sizeof *refs);
    int status = 0;
    if (!layer || !refs) {
        status = fail(W, "allocating", CAP_ENOMEM, NULL);
        goto out;
    }
    /* Leaves: Type caps of random chains (no children: the graph closes). */
    for (uint64_t i = 0; i < width && !status; i++) {
        cap_hash_t chain, h;
        bench_rng_hash(&rng, chain.bytes);
        cap_t *t = NULL;
        rc = cap_type_new(&t, a, &chain);
        if (rc == CAP_OK) rc = cap_store_put_cap(s, t, &h);
        cap_release(t);
        if (rc != CAP_OK) status = fail(W, "a leaf", rc, NULL);
        layer[i] = cap_target_of_hash(&h);
    }
    /* Inner nodes: CNode instances of four, as settle_tree builds them. */
    for (bool first = true; width > 1 && !status; first = false) {
        uint64_t up = width / 4;
        for (uint64_t i = 0; i < up && !status; i++) {
            cap_t *cn = NULL;
            cap_ref_t *r = NULL;
            rc = cap_cnode_new(&cn, a, 2);
            for (uint32_t k = 0; k < 4 && rc == CAP_OK; k++) rc = cap_cnode_set(cn, k, &layer[4 * i + k]);
            if (rc == CAP_OK) rc = cap_store_put_instance(s, cn, &r);
            cap_release(cn);
            if (!first)
                for (uint32_t k = 0; k < 4; k++) cap_ref_release(refs[4 * i + k]);
            if (rc != CAP_OK) status = fail(W, "an inner node", rc, NULL);
            refs[i] = r;
            layer[i] = cap_target_of_ref(r);
        }
        width = up;
    }
    if (!status) {
        rc = cap_store_checkpoint(s, &layer[0], &F.roots[g], &e);
        cap_ref_release(refs[0]);
        if (rc != CAP_OK) status = fail(W, "cap_store_checkpoint", rc, &e);
    }
    if (!status) {
        char name[32];
        snprintf(name, sizeof name, "g/%d", g);
        cap_backend_root_t r = {name, F.roots[g]};
        size_t written;
        rc = cap_store_flush_roots(s, &r, rooted ? 1 : 0, &written, &e);
        if (rc != CAP_OK) status = fail(W, "cap_store_flush_roots", rc, &e);
    }
out:
    free(layer);
    free(refs);
    cap_store_free(s);
    return status;
}

static int sink_mem(void *arg, const void *bytes, size_t n)
{
    struct fixture *f = arg;
    uint8_t *p = realloc(f->arc, f->narc + n);
    if (!p) return 1;
    memcpy(p + f->narc, bytes, n);
    f->arc = p;
    f->narc += n;
    return 0;
}

static int build(const bench_opts_t *o)
{
    if (F.built) return 0;
    if (F.failed) return 1;
    F.failed = true;
    snprintf(F.dir, sizeof F.dir, "%s/capstore-bench-life-XXXXXX", o->scratch);
    if (!mkdtemp(F.dir)) {
        fprintf(stderr, "bench: cannot make a scratch folder in %s: %s\n", o->scratch, strerror(errno));
        F.dir[0] = 0;
        return 1;
    }
    atexit(cleanup);
    snprintf(F.base, sizeof F.base, "%s/base.lmdb", F.dir);
    cap_lmdb_options_t lo = {CAP_LMDB_NOSYNC, (size_t)1 << 30, 0, 0};
    cap_backend_t *b = NULL;
    cap_err_t e;
    int rc = cap_lmdb_open(F.base, &lo, &b, &e);
    if (rc != CAP_OK) return fail("bench fixture", "cap_lmdb_open", rc, &e);
    if (o->progress) fprintf(stderr, "bench: building %d graphs for the lifecycle workloads\n", GRAPHS);
    for (int g = 0; g < GRAPHS; g++)
        if (build_graph(o, b, g, g < ROOTED)) {
            cap_backend_free(b);
            return 1;
        }
    cap_lmdb_stats_t st;
    cap_lmdb_stats(b, &st, NULL);
    F.blobs = st.blobs;
    /* The garbage: the unrooted graphs' hashes. */
    if (hset_init(&F.garbage, (size_t)(F.caps * (GRAPHS - ROOTED)))) {
        cap_backend_free(b);
        return fail("bench fixture", "allocating", CAP_ENOMEM, NULL);
    }
    walk_collect_t wc = {&F.garbage};
    rc = cap_backend_walk(b, &F.roots[ROOTED], GRAPHS - ROOTED, NULL, cap_alloc_libc(), add_to_set, &wc, NULL, &e);
    /* Graph 0's archive. */
    cap_backend_root_t r0 = {"g/0", F.roots[0]};
    if (rc == CAP_OK) rc = cap_archive_export(b, &r0, 1, NULL, sink_mem, &F, NULL, &e);
    cap_backend_free(b);
    if (rc != CAP_OK) return fail("bench fixture", "walk / export", rc, &e);
    F.built = true;
    F.failed = false;
    return 0;
}

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    static uint8_t buf[1 << 20];
    int rc = in >= 0 && out >= 0 ? 0 : -1;
    for (ssize_t got; rc == 0 && (got = read(in, buf, sizeof buf)) > 0;)
        if (write(out, buf, (size_t)got) != got) rc = -1;
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    char lock[700];
    snprintf(lock, sizeof lock, "%s-lock", to);
    unlink(lock);
    return rc;
}

static int raw_open(const char *path, MDB_env **env, MDB_dbi *dbi)
{
    int rc = mdb_env_create(env);
    if (rc) return rc;
    MDB_txn *txn;
    if ((rc = mdb_env_set_mapsize(*env, (size_t)8 << 30)) || (rc = mdb_env_set_maxdbs(*env, 4)) ||
        (rc = mdb_env_open(*env, path, MDB_NOSUBDIR | MDB_NOSYNC, 0644)) || (rc = mdb_txn_begin(*env, NULL, 0, &txn))) {
        mdb_env_close(*env);
        return rc;
    }
    if ((rc = mdb_dbi_open(txn, "blobs", MDB_CREATE, dbi)) || (rc = mdb_txn_commit(txn))) mdb_env_close(*env);
    return rc;
}

/* gc ------------------------------------------------------------------------------------------ */

int bench_gc_collect(const bench_opts_t *o)
{
    if (build(o)) return 1;
    char a[600], r[600];
    snprintf(a, sizeof a, "%s/gc.lmdb", F.dir);
    snprintf(r, sizeof r, "%s/gcraw.lmdb", F.dir);
    if (copy_file(F.base, a) || copy_file(F.base, r)) return fail("gc_collect", "copying the database", CAP_EBACKEND, NULL);
    /* capstore */
    cap_lmdb_options_t lo = {CAP_LMDB_NOSYNC, 0, 0, 0};
    cap_backend_t *b = NULL;
    cap_err_t e;
    int rc = cap_lmdb_open(a, &lo, &b, &e);
    if (rc != CAP_OK) return fail("gc_collect", "cap_lmdb_open", rc, &e);
    cap_lmdb_collect_options_t co = CAP_LMDB_COLLECT_OPTIONS_INIT;
    co.batch = BATCH;
    cap_lmdb_collect_result_t res;
    uint64_t t0 = bench_now_ns();
    rc = cap_lmdb_collect(b, NULL, 0, &co, &res, &e);
    uint64_t t1 = bench_now_ns();
    cap_backend_free(b);
    if (rc != CAP_OK) return fail("gc_collect", "cap_lmdb_collect", rc, &e);
    if (res.deleted != F.garbage.n) return fail("gc_collect", "the deleted count", CAP_EINVAL, NULL);
    bench_report(o, "gc_collect", F.blobs, (double)(t1 - t0), "capstore");

    /* raw: every key read, the same keys deleted, BATCH a transaction */
    MDB_env *env;
    MDB_dbi dbi;
    if ((rc = raw_open(r, &env, &dbi))) return fail("gc_raw", mdb_strerror(rc), CAP_EBACKEND, NULL);
    uint64_t deleted = 0;
    cap_hash_t next;
    bool started = false, done = false;
    t0 = bench_now_ns();
    while (!done && rc == 0) {
        MDB_txn *txn;
        MDB_cursor *cur;
        if ((rc = mdb_txn_begin(env, NULL, 0, &txn))) break;
        if ((rc = mdb_cursor_open(txn, dbi, &cur))) {
            mdb_txn_abort(txn);
            break;
        }
        MDB_val k = {32, next.bytes}, v;
        unsigned here = 0;
        for (rc = mdb_cursor_get(cur, &k, &v, started ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            cap_hash_t h;
            memcpy(h.bytes, k.mv_data, 32);
            if (here == BATCH) {
                next = h;
                break;
            }
            if (hset_has(&F.garbage, &h)) {
                if ((rc = mdb_cursor_del(cur, 0))) break;
                here++;
            }
        }
        if (rc == MDB_NOTFOUND) {
            done = true;
            rc = 0;
        }
        mdb_cursor_close(cur);
        if (rc == 0) rc = mdb_txn_commit(txn);
        else mdb_txn_abort(txn);
        deleted += here;
        started = true;
    }
    t1 = bench_now_ns();
    mdb_env_close(env);
    if (rc) return fail("gc_raw", mdb_strerror(rc), CAP_EBACKEND, NULL);
    if (deleted != F.garbage.n) return fail("gc_raw", "the deleted count", CAP_EINVAL, NULL);
    bench_report(o, "gc_raw", F.blobs, (double)(t1 - t0), "lmdb");
    unlink(a);
    unlink(r);
    return 0;
}

/* export -------------------------------------------------------------------------------------- */

static int sink_count(void *arg, const void *bytes, size_t n)
{
    (void)bytes;
    *(uint64_t *)arg += n;
    return 0;
}

typedef struct raw_walk {
    hset_t seen;
    cap_hash_t *queue;
    size_t n;
} raw_walk_t;

static int raw_child(void *arg, const cap_child_t *ch)
{
    raw_walk_t *w = arg;
    if (ch->target.kind == CAP_TARGET_HASH && hset_add(&w->seen, &ch->target.hash)) w->queue[w->n++] = ch->target.hash;
    return 0;
}

int bench_export(const bench_opts_t *o)
{
    if (build(o)) return 1;
    cap_lmdb_options_t lo = {CAP_LMDB_NOSYNC | CAP_LMDB_READONLY, 0, 0, 0};
    cap_backend_t *b = NULL;
    cap_err_t e;
    int rc = cap_lmdb_open(F.base, &lo, &b, &e);
    if (rc != CAP_OK) return fail("export", "cap_lmdb_open", rc, &e);
    cap_backend_root_t r0 = {"g/0", F.roots[0]};
    uint64_t bytes = 0;
    cap_archive_result_t res;
    uint64_t t0 = bench_now_ns();
    rc = cap_archive_export(b, &r0, 1, NULL, sink_count, &bytes, &res, &e);
    uint64_t t1 = bench_now_ns();
    cap_backend_free(b);
    if (rc != CAP_OK || res.records != F.caps) return fail("export", "cap_archive_export", rc, &e);
    bench_report(o, "export", F.caps, (double)(t1 - t0), "capstore");

    /* raw: the closure in one read transaction, each cap decoded */
    MDB_env *env;
    MDB_dbi dbi;
    if ((rc = raw_open(F.base, &env, &dbi))) return fail("export_raw", mdb_strerror(rc), CAP_EBACKEND, NULL);
    raw_walk_t w;
    if (hset_init(&w.seen, (size_t)F.caps)) return fail("export_raw", "allocating", CAP_ENOMEM, NULL);
    w.queue = malloc((size_t)F.caps * sizeof *w.queue);
    w.n = 0;
    const cap_alloc_t *a = cap_alloc_libc();
    t0 = bench_now_ns();
    MDB_txn *txn = NULL;
    rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    hset_add(&w.seen, &F.roots[0]);
    w.queue[w.n++] = F.roots[0];
    for (size_t i = 0; i < w.n && rc == 0; i++) {
        MDB_val k = {32, w.queue[i].bytes}, v;
        if ((rc = mdb_get(txn, dbi, &k, &v))) break;
        cap_t *c = NULL;
        if (cap_wire_decode(v.mv_data, v.mv_size, a, &c, NULL) != CAP_OK) {
            rc = MDB_CORRUPTED;
            break;
        }
        cap_for_each_child(c, raw_child, &w);
        cap_release(c);
    }
    if (txn) mdb_txn_abort(txn);
    t1 = bench_now_ns();
    mdb_env_close(env);
    size_t n = w.n;
    hset_free(&w.seen);
    free(w.queue);
    if (rc || n != F.caps) return fail("export_raw", rc ? mdb_strerror(rc) : "the cap count", CAP_EBACKEND, NULL);
    bench_report(o, "export_raw", F.caps, (double)(t1 - t0), "lmdb");
    return 0;
}

/* import -------------------------------------------------------------------------------------- */

typedef struct src {
    const uint8_t *p;
    size_t n, at;
} src_t;

static ptrdiff_t src_read(void *arg, void *buf, size_t n)
{
    src_t *s = arg;
    size_t k = s->n - s->at < n ? s->n - s->at : n;
    memcpy(buf, s->p + s->at, k);
    s->at += k;
    return (ptrdiff_t)k;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

int bench_import(const bench_opts_t *o)
{
    if (build(o)) return 1;
    char a[600], r[600];
    snprintf(a, sizeof a, "%s/import.lmdb", F.dir);
    snprintf(r, sizeof r, "%s/importraw.lmdb", F.dir);
    unlink(a);
    unlink(r);
    cap_lmdb_options_t lo = {CAP_LMDB_NOSYNC, (size_t)1 << 30, 0, 0};
    cap_backend_t *b = NULL;
    cap_err_t e;
    int rc = cap_lmdb_open(a, &lo, &b, &e);
    if (rc != CAP_OK) return fail("import", "cap_lmdb_open", rc, &e);
    src_t s = {F.arc, F.narc, 0};
    cap_archive_result_t res;
    uint64_t t0 = bench_now_ns();
    rc = cap_archive_import(b, src_read, &s, NULL, &res, &e);
    uint64_t t1 = bench_now_ns();
    cap_backend_free(b);
    if (rc != CAP_OK || res.written != F.caps) return fail("import", "cap_archive_import", rc, &e);
    bench_report(o, "import", F.caps, (double)(t1 - t0), "capstore");

    /* raw: the same records (found untimed), each decoded and hashed, then
     * all put in one transaction */
    MDB_val *keys = malloc((size_t)F.caps * sizeof *keys), *vals = malloc((size_t)F.caps * sizeof *vals);
    size_t n = 0, at = 20;
    uint32_t nroots = (uint32_t)le64(F.arc + 16) & 0xffffffffu;
    for (uint32_t i = 0; i < nroots; i++) at += 2 + (F.arc[at] | (size_t)F.arc[at + 1] << 8) + 32;
    for (uint64_t len; n < F.caps && (len = le64(F.arc + at + 32)) != 0; at += 40 + len, n++) {
        keys[n].mv_size = 32;
        keys[n].mv_data = F.arc + at;
        vals[n].mv_size = len;
        vals[n].mv_data = F.arc + at + 40;
    }
    MDB_env *env;
    MDB_dbi dbi;
    if ((rc = raw_open(r, &env, &dbi))) return fail("import_raw", mdb_strerror(rc), CAP_EBACKEND, NULL);
    const cap_alloc_t *al = cap_alloc_libc();
    t0 = bench_now_ns();
    for (size_t i = 0; i < n && rc == 0; i++) {
        cap_t *c = NULL;
        cap_hash_t h;
        if (cap_wire_decode(vals[i].mv_data, vals[i].mv_size, al, &c, NULL) != CAP_OK || cap_hash(c, &h) != CAP_OK ||
            memcmp(h.bytes, keys[i].mv_data, 32) != 0)
            rc = MDB_CORRUPTED;
        cap_release(c);
    }
    MDB_txn *txn = NULL;
    if (rc == 0) rc = mdb_txn_begin(env, NULL, 0, &txn);
    for (size_t i = 0; i < n && rc == 0; i++) rc = mdb_put(txn, dbi, &keys[i], &vals[i], 0);
    if (rc == 0) rc = mdb_txn_commit(txn);
    else if (txn) mdb_txn_abort(txn);
    t1 = bench_now_ns();
    mdb_env_close(env);
    free(keys);
    free(vals);
    if (rc || n != F.caps) return fail("import_raw", rc ? mdb_strerror(rc) : "the record count", CAP_EBACKEND, NULL);
    bench_report(o, "import_raw", F.caps, (double)(t1 - t0), "lmdb");
    unlink(a);
    unlink(r);
    return 0;
}
