/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Collection of a Redis tier (persist.h: cap_redis_collect).
 *
 * Mark. The hashes given and every named root go in a set with every hash
 * their graphs reach, walked in the server (cap_backend_walk). A graph
 * that is not whole stops everything before a single delete: below a
 * missing or damaged blob are blobs the mark cannot see.
 *
 * Sweep. A SCAN of every master lists the blob keys; the unmarked ones
 * are deleted `batch` at a time, in one pipeline per batch. Before each
 * batch the roots are read again and the graph of every root whose hash
 * the set lacks (set or moved since the mark) is marked, and the batch
 * filtered once more. Redis has no transaction across a cluster, so this
 * narrows the race with a host setting a root but cannot close it: a root
 * set between that re-read and the DELs, naming a blob written before
 * the re-read and reachable from no other root, loses that blob (its
 * closure check ran before the DEL). docs/redis.md says when to run gc. */
#include <stdlib.h>
#include <string.h>

#include "capstore/host.h"
#include "hash_set.h"
#include "options_copy.h"
#include "redis_internal.h"

#define DEFAULT_BATCH 1024
#define MAX_BATCH 65536   /* a pipeline's replies stay in memory: bounded */
#define WALK_BATCH 4096   /* hashes a read_many while marking */
#define DRY_READ 256      /* blobs read a call to list a dry run */

typedef struct rcollect {
    const cap_backend_t *b;
    redis_t *r;
    cap_redis_collect_options_t o;
    cap_redis_collect_result_t res;
    cap_hset_t mark;  /* every hash a root reaches */
    cap_hset_t seen;  /* every blob the sweep met (SCAN may repeat one) */
    cap_hash_t *todo; /* unmarked: this batch's, or a dry run's whole list */
    size_t ntodo, room;
    cap_err_t *err;
} rcollect_t;

/* The walk's visitor: add to the mark; one already there has its whole
 * graph marked, so its children are not followed again. */
static int mark_visit(void *arg, const cap_walk_visit_t *v)
{
    rcollect_t *x = arg;
    int r = cap_hset_add(&x->mark, &v->hash, NULL);
    if (r < 0) return CAP_ENOMEM;
    if (r == 0) return CAP_WALK_SKIP;
    x->res.marked++;
    x->res.marked_bytes += v->n;
    if (x->o.progress && (x->res.marked & 4095) == 0)
        x->o.progress(x->o.arg, "mark", x->res.marked, x->res.marked_bytes);
    return 0;
}

/* Mark the graphs of `roots`; an incomplete one fails (err names the hash). */
static int mark_from(rcollect_t *x, const cap_hash_t *roots, size_t n)
{
    if (n == 0) return CAP_OK;
    cap_walk_options_t o = CAP_WALK_OPTIONS_INIT;
    o.batch = WALK_BATCH;
    int rc = cap_backend_walk(x->b, roots, n, &o, cap_alloc_libc(), mark_visit, x, NULL, x->err);
    if (rc == CAP_ENOMEM) return cap_err_set(x->err, CAP_ENOMEM, "out of memory");
    if (rc == CAP_EBLOBMISSING && x->err) x->err->what = "a graph to keep is not all stored: nothing collected";
    if ((rc == CAP_EDECODE || rc == CAP_EMISMATCH) && x->err) {
        x->err->code = rc = CAP_EDECODE;
        x->err->what = "a blob under a root is damaged: nothing collected (run capstore db check)";
    }
    return rc;
}

typedef struct roots_acc {
    rcollect_t *x;
    cap_hset_t fresh; /* distinct hashes of named roots not marked yet */
} roots_acc_t;

static int add_root(void *arg, const char *name, const cap_hash_t *h)
{
    (void)name;
    roots_acc_t *a = arg;
    if (cap_hset_find(&a->x->mark, h) != SIZE_MAX) return 0;
    return cap_hset_add(&a->fresh, h, NULL) < 0 ? CAP_ENOMEM : 0;
}

/* Read the named roots and mark the graphs of those not marked; their
 * number goes to *count. */
static int mark_named(rcollect_t *x, uint64_t *count)
{
    roots_acc_t a;
    a.x = x;
    cap_hset_init(&a.fresh);
    int rc = cap_backend_root_list(x->b, add_root, &a, x->err);
    if (rc == CAP_ENOMEM) cap_err_set(x->err, CAP_ENOMEM, "out of memory");
    if (rc == CAP_OK) rc = mark_from(x, a.fresh.keys, a.fresh.n);
    if (rc == CAP_OK) *count += a.fresh.n;
    cap_hset_free(&a.fresh);
    return rc;
}

static int todo_add(rcollect_t *x, const cap_hash_t *h)
{
    if (x->ntodo == x->room) {
        size_t room = x->room ? x->room * 2 : 1024;
        cap_hash_t *v = realloc(x->todo, room * sizeof *v);
        if (!v) return cap_err_set(x->err, CAP_ENOMEM, "out of memory");
        x->todo = v;
        x->room = room;
    }
    x->todo[x->ntodo++] = *h;
    return CAP_OK;
}

/* One batch: roots read again (late ones marked), what is still unmarked
 * deleted, each key's length asked in the same pipeline for the count. */
static int delete_batch(rcollect_t *x)
{
    if (x->ntodo == 0) return CAP_OK;
    int rc = mark_named(x, &x->res.late_roots);
    if (rc != CAP_OK) return rc;
    size_t n = 0;
    for (size_t i = 0; i < x->ntodo; i++)
        if (cap_hset_find(&x->mark, &x->todo[i]) == SIZE_MAX) x->todo[n++] = x->todo[i];
    x->ntodo = 0;
    if (n == 0) return CAP_OK;
    size_t kl = x->r->prefix_len + 32;
    uint8_t *keys = malloc(n * kl);
    redis_cmd_t *cmds = calloc(2 * n, sizeof *cmds);
    if (!keys || !cmds) {
        free(keys);
        free(cmds);
        return cap_err_set(x->err, CAP_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        redis_blob_key(x->r, &x->todo[i], keys + i * kl);
        redis_cmd_t *s = &cmds[2 * i], *d = &cmds[2 * i + 1];
        s->argc = d->argc = 2;
        s->argv[0] = "STRLEN";
        s->argvlen[0] = 6;
        d->argv[0] = "DEL";
        d->argvlen[0] = 3;
        s->argv[1] = d->argv[1] = (const char *)keys + i * kl;
        s->argvlen[1] = d->argvlen[1] = kl;
        d->write = true;
    }
    rc = redis_batch_run(x->r, cmds, 2 * n, x->err);
    for (size_t i = 0; i < n && rc == CAP_OK; i++) {
        const redisReply *s = cmds[2 * i].reply, *d = cmds[2 * i + 1].reply;
        if (d->type != REDIS_REPLY_INTEGER) {
            rc = cap_err_set(x->err, CAP_EBACKEND, "DEL refused");
            if (d->type == REDIS_REPLY_ERROR) cap_err_add_detail(x->err, d->str);
            cap_err_set_hash(x->err, &x->todo[i]);
        } else if (d->integer > 0) { /* 0: gone already (another gc) */
            x->res.deleted++;
            if (s->type == REDIS_REPLY_INTEGER && s->integer > 0) x->res.deleted_bytes += (uint64_t)s->integer;
        }
    }
    redis_batch_free(cmds, 2 * n);
    free(cmds);
    free(keys);
    if (rc == CAP_OK) {
        x->res.batches++;
        if (x->o.progress) x->o.progress(x->o.arg, "sweep", x->res.scanned, x->res.deleted_bytes);
    }
    return rc;
}

/* A SCAN page: each blob met for the first time, unmarked ones listed (and
 * deleted once a batch is full, unless a dry run). */
static int sweep_page(void *arg, const cap_hash_t *hs, size_t n)
{
    rcollect_t *x = arg;
    bool dry = (x->o.flags & CAP_REDIS_COLLECT_DRY_RUN) != 0;
    for (size_t i = 0; i < n; i++) {
        int r = cap_hset_add(&x->seen, &hs[i], NULL);
        if (r < 0) return cap_err_set(x->err, CAP_ENOMEM, "out of memory");
        if (r == 0) continue;
        x->res.scanned++;
        if (cap_hset_find(&x->mark, &hs[i]) != SIZE_MAX) continue;
        int rc = todo_add(x, &hs[i]);
        if (rc == CAP_OK && !dry && x->ntodo == x->o.batch) rc = delete_batch(x);
        if (rc != CAP_OK) return rc;
    }
    return CAP_OK;
}

static int cmp_hash(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

/* A dry run's listing: the unmarked blobs in hash order, read for their
 * bytes (one deleted meanwhile is left out). */
static int dry_list(rcollect_t *x)
{
    if (x->ntodo) qsort(x->todo, x->ntodo, sizeof *x->todo, cmp_hash);
    uint8_t *bytes[DRY_READ];
    size_t lens[DRY_READ];
    int codes[DRY_READ];
    const cap_alloc_t *a = cap_alloc_libc();
    int rc = CAP_OK;
    for (size_t at = 0; at < x->ntodo && rc == CAP_OK; at += DRY_READ) {
        size_t k = x->ntodo - at < DRY_READ ? x->ntodo - at : DRY_READ;
        rc = cap_backend_read_many(x->b, x->todo + at, k, a, bytes, lens, codes, x->err);
        for (size_t i = 0; i < k; i++) {
            if (rc == CAP_OK && codes[i] != CAP_OK && codes[i] != CAP_ENOTFOUND) {
                rc = cap_err_set(x->err, codes[i], "reading a blob to list failed");
                cap_err_set_hash(x->err, &x->todo[at + i]);
            }
            if (rc == CAP_OK && codes[i] == CAP_OK) {
                x->res.deleted++;
                x->res.deleted_bytes += lens[i];
                if (x->o.each) x->o.each(x->o.arg, &x->todo[at + i], bytes[i], lens[i]);
            }
            if (bytes[i]) a->deallocate(a->ctx, bytes[i], lens[i]);
        }
    }
    return rc;
}

int cap_redis_collect(const cap_backend_t *b, const cap_hash_t *roots, size_t nroots,
                      const cap_redis_collect_options_t *opt, cap_redis_collect_result_t *res, cap_err_t *err)
{
    if (res) memset(res, 0, sizeof *res);
    if (!cap_backend_is_redis(b)) return cap_err_set(err, CAP_EINVAL, "not a Redis backend");
    if (!roots && nroots) return cap_err_set(err, CAP_EINVAL, "NULL roots");
    rcollect_t *x = calloc(1, sizeof *x);
    if (!x) return cap_err_set(err, CAP_ENOMEM, "out of memory");
    cap_redis_collect_options_t def = CAP_REDIS_COLLECT_OPTIONS_INIT;
    x->o = def;
    if (opt) cap_options_copy(&x->o, sizeof x->o, opt, opt->size);
    if (!x->o.batch) x->o.batch = DEFAULT_BATCH;
    if (x->o.batch > MAX_BATCH) x->o.batch = MAX_BATCH;
    x->b = b;
    x->r = b->ctx;
    x->err = err;
    cap_hset_init(&x->mark);
    cap_hset_init(&x->seen);
    bool dry = (x->o.flags & CAP_REDIS_COLLECT_DRY_RUN) != 0;
    int rc = CAP_OK;
    uint64_t named = 0;
    if (!dry && (x->r->flags & CAP_REDIS_READONLY)) rc = cap_err_set(err, CAP_EBACKEND, "read-only");
    /* The mark: the hashes given, then the named roots the walk did not
     * reach; the distinct ones counted as the roots kept. */
    if (rc == CAP_OK) rc = mark_from(x, roots, nroots);
    if (rc == CAP_OK) {
        cap_hset_t given;
        cap_hset_init(&given);
        for (size_t i = 0; i < nroots && rc == CAP_OK; i++) {
            int r = cap_hset_add(&given, &roots[i], NULL);
            if (r < 0) rc = cap_err_set(err, CAP_ENOMEM, "out of memory");
            x->res.roots += r > 0;
        }
        cap_hset_free(&given);
    }
    if (rc == CAP_OK) rc = mark_named(x, &named);
    x->res.roots += named;
    if (rc == CAP_OK) rc = redis_scan_blobs(x->r, NULL, 0, sweep_page, x, err);
    if (rc == CAP_OK) rc = dry ? dry_list(x) : delete_batch(x);
    if (res) *res = x->res;
    cap_hset_free(&x->mark);
    cap_hset_free(&x->seen);
    free(x->todo);
    free(x);
    if (rc == CAP_OK) cap_err_set(err, CAP_OK, NULL);
    return rc;
}
