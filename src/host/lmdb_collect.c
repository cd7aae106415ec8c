/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Collection of an LMDB database (persist.h: cap_lmdb_collect).
 *
 * Mark. One read transaction: the hashes given and every named root go in
 * a set, and their graphs are walked in that snapshot (lmdb_closure.c),
 * so the set ends as every hash they reach. An incomplete graph stops
 * everything before a single delete: below a damaged blob are blobs the
 * mark cannot see, and they must not go.
 *
 * Sweep. Write transactions of at most `batch` deletions (and at most
 * SCAN_LIMIT keys looked at), each in three steps: (1) every root in the
 * roots database whose hash the set lacks — a root set since the mark — is
 * added and its graph walked, in this transaction; (2) the keys from where
 * the last transaction stopped are read, and the unmarked ones listed; (3)
 * they are deleted. Steps 1 and 2 run before the transaction changes
 * anything, so every value LMDB hands back lies in the map, where
 * cap_lm_val_ok can judge it. LMDB runs one write transaction at a time:
 * a root set before this transaction was marked in step 1, and a root set
 * after it checks its graph against what this one left (lmdb_roots.c). So
 * no root loses a blob, and a kill between transactions leaves a whole
 * database, partly collected. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lmdb_closure.h"
#include "options_copy.h"

#define DEFAULT_BATCH 1024
#define SCAN_LIMIT(batch) ((batch) * 16)

typedef struct collect {
    lmdb_backend_t *b;
    cap_lm_closure_t c;
    cap_lmdb_collect_options_t o;
    cap_lmdb_collect_result_t res;
    /* The sweep: where the next transaction starts, and what this one did. */
    cap_hash_t next;
    bool started, done;
    cap_hash_t *del;   /* the keys step 2 lists */
    size_t ndel;
    uint64_t scanned, bytes, late;
    uint64_t starts; /* distinct roots added to the set (given and named) */
    /* The mark in key order, for the sweep (which reads keys in order: a
     * merge, no hash probe); pos is where the sweep is in it (pos_txn at
     * the start of the transaction running). Hashes marked later (a root
     * set meanwhile) are found in the set. */
    cap_hash_t *sorted;
    size_t nsorted, pos, pos_txn;
} collect_t;

static void mark_tick(void *arg, uint64_t read, uint64_t bytes)
{
    collect_t *x = arg;
    x->o.progress(x->o.arg, "mark", read, bytes);
}

/* The failure of an incomplete graph (err filled). */
static int incomplete(collect_t *x, cap_err_t *err)
{
    cap_lm_missing_t m;
    bool bad = x->c.missing == 0;
    cap_lm_closure_explain(&x->c, bad, NULL, 0, &m);
    cap_backend_fail(err, bad ? CAP_EDECODE : CAP_EBLOBMISSING,
                     bad ? "a blob under a root is damaged: nothing collected (run capstore db check)"
                         : "a graph to keep is not all stored: nothing collected");
    cap_err_set_hash(err, &m.hash);
    if (m.has_parent) {
        static const char digits[] = "0123456789abcdef";
        char hex[9];
        for (int i = 0; i < 4; i++) {
            hex[2 * i] = digits[m.parent.bytes[i] >> 4];
            hex[2 * i + 1] = digits[m.parent.bytes[i] & 15];
        }
        hex[8] = 0;
        cap_err_add_detail(err, "named by ");
        cap_err_add_detail(err, hex);
        cap_err_add_detail(err, "; ");
    }
    cap_err_add_detail_u64(err, m.count);
    cap_err_add_detail(err, bad ? " damaged" : " missing");
    return bad ? CAP_EDECODE : CAP_EBLOBMISSING;
}

/* Every root of the roots database that the set lacks: added (late roots
 * counted when `late`), then the set's graph completed. 0, an LMDB code,
 * ENOMEM, or CAP_LM_MISSING / CAP_LM_BAD. */
static int mark_roots(collect_t *x, MDB_txn *txn, uint64_t *late)
{
    lmdb_env_t *e = x->b->e;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, e->roots_dbi, &cur);
    if (rc) return rc;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (v.mv_size != 32 || !cap_lm_val_ok(e, &v)) {
            rc = MDB_CORRUPTED;
            break;
        }
        cap_hash_t h;
        memcpy(h.bytes, v.mv_data, 32);
        int r = cap_lm_closure_add(&x->c, &h);
        if (r < 0) {
            rc = ENOMEM;
            break;
        }
        if (r > 0) x->starts++;
        if (r > 0 && late) (*late)++;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) return rc;
    rc = cap_lm_closure_run(e, txn, &x->c);
    if (rc) return rc;
    if (x->c.missing) return CAP_LM_MISSING;
    if (x->c.bad) return CAP_LM_BAD;
    return 0;
}

/* The marked hashes sorted (an LSD radix sort on the first 8 bytes, runs
 * of an equal prefix finished by insertion sort). -1 out of memory. */
typedef struct srec {
    uint64_t prefix;
    size_t idx;
} srec_t;

static int sort_mark(collect_t *x)
{
    size_t n = x->c.set.n;
    srec_t *a = malloc((n ? n : 1) * sizeof *a), *t = malloc((n ? n : 1) * sizeof *t);
    x->sorted = malloc((n ? n : 1) * sizeof *x->sorted);
    if (!a || !t || !x->sorted) {
        free(a);
        free(t);
        return -1;
    }
    const cap_hash_t *keys = x->c.set.keys;
    for (size_t i = 0; i < n; i++) {
        uint64_t p = 0;
        for (int j = 0; j < 8; j++) p = p << 8 | keys[i].bytes[j];
        a[i].prefix = p;
        a[i].idx = i;
    }
    size_t *count = malloc(65537 * sizeof *count); /* 16-bit digits: four passes */
    if (!count) {
        free(a);
        free(t);
        return -1;
    }
    for (unsigned shift = 0; shift < 64; shift += 16) {
        memset(count, 0, 65537 * sizeof *count);
        for (size_t i = 0; i < n; i++) count[((a[i].prefix >> shift) & 0xffff) + 1]++;
        for (int d = 0; d < 65536; d++) count[d + 1] += count[d];
        for (size_t i = 0; i < n; i++) t[count[(a[i].prefix >> shift) & 0xffff]++] = a[i];
        srec_t *y = a;
        a = t;
        t = y;
    }
    free(count);
    for (size_t i = 0; i < n; i++) {
        x->sorted[i] = keys[a[i].idx];
        for (size_t m = i; m > 0 && a[m - 1].prefix == a[i].prefix &&
                           memcmp(x->sorted[m - 1].bytes, x->sorted[m].bytes, 32) > 0;
             m--) {
            cap_hash_t h = x->sorted[m];
            x->sorted[m] = x->sorted[m - 1];
            x->sorted[m - 1] = h;
        }
    }
    x->nsorted = n;
    free(a);
    free(t);
    return 0;
}

/* Whether `h` is marked; the sweep asks in ascending order. */
static bool marked(collect_t *x, const cap_hash_t *h)
{
    while (x->pos < x->nsorted && memcmp(x->sorted[x->pos].bytes, h->bytes, 32) < 0) x->pos++;
    if (x->pos < x->nsorted && memcmp(x->sorted[x->pos].bytes, h->bytes, 32) == 0) return true;
    return x->c.set.n > x->nsorted && cap_hset_find(&x->c.set, h) != SIZE_MAX;
}

/* Step 2: list the unmarked keys from x->next on, at most `batch` of them,
 * and where to go on from. Before anything changes (see the top). */
static int list_unmarked(collect_t *x, MDB_txn *txn)
{
    lmdb_env_t *e = x->b->e;
    size_t batch = x->o.batch, limit = SCAN_LIMIT(batch);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, e->dbi, &cur);
    if (rc) return rc;
    MDB_val k = {32, x->next.bytes}, v;
    rc = mdb_cursor_get(cur, &k, &v, x->started ? MDB_SET_RANGE : MDB_FIRST);
    x->done = false;
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 32 || !cap_lm_val_ok(e, &k)) {
            rc = MDB_CORRUPTED;
            break;
        }
        cap_hash_t h;
        memcpy(h.bytes, k.mv_data, 32);
        if (x->ndel == batch || x->scanned == limit) { /* the next transaction starts here */
            x->next = h;
            break;
        }
        x->scanned++;
        if (marked(x, &h)) continue;
        x->del[x->ndel++] = h;
        x->bytes += v.mv_size;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        x->done = true;
        rc = 0;
    }
    return rc;
}

/* Step 3: delete the listed keys, walking a cursor over the range again and
 * deleting where it meets them (both in key order): no descent from the
 * root per key. After a delete the cursor already stands on the next key
 * (MDB_NEXT then returns it). */
static int delete_listed(collect_t *x, MDB_txn *txn)
{
    if (x->ndel == 0) return 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, x->b->e->dbi, &cur);
    if (rc) return rc;
    MDB_val k = {32, x->del[0].bytes}, v;
    size_t j = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY); rc == 0 && j < x->ndel;) {
        if (k.mv_size == 32 && memcmp(k.mv_data, x->del[j].bytes, 32) == 0) {
            if ((rc = mdb_cursor_del(cur, 0))) break;
            if (++j == x->ndel) break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND && j < x->ndel) rc = MDB_CORRUPTED; /* listed in this transaction: cannot be */
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* One sweep transaction (cap_lm_write_txn runs it again after growing a
 * full map: it starts over from x->next, the counts with it). */
static int sweep_txn(lmdb_env_t *e, MDB_txn *txn, void *arg)
{
    collect_t *x = arg;
    (void)e; /* x->b->e */
    x->ndel = 0;
    x->scanned = x->bytes = x->late = 0;
    x->pos = x->pos_txn;
    int rc = mark_roots(x, txn, &x->late);
    if (rc) return rc;
    if ((rc = list_unmarked(x, txn))) return rc;
    return delete_listed(x, txn);
}

static int sweep_fail(void *arg, int rc, cap_err_t *err)
{
    collect_t *x = arg;
    (void)rc;
    return incomplete(x, err);
}

/* A dry run's sweep: one read transaction over every blob. */
static int dry_sweep(collect_t *x, cap_err_t *err)
{
    lmdb_env_t *e = x->b->e;
    cap_lm_held_t fr;
    MDB_txn *txn;
    int rc = cap_lm_begin(e, &fr, MDB_RDONLY, &txn, NULL);
    if (rc) return cap_lm_fail(err, rc);
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, e->dbi, &cur)) == 0) {
        MDB_val k, v;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != 32 || !cap_lm_val_ok(e, &k) || !cap_lm_val_ok(e, &v)) {
                rc = MDB_CORRUPTED;
                break;
            }
            cap_hash_t h;
            memcpy(h.bytes, k.mv_data, 32);
            x->res.scanned++;
            if (cap_hset_find(&x->c.set, &h) == SIZE_MAX) {
                x->res.deleted++;
                x->res.deleted_bytes += v.mv_size;
                if (x->o.each) x->o.each(x->o.arg, &h, v.mv_data, v.mv_size);
            }
            if (x->o.progress && (x->res.scanned & 4095) == 0)
                x->o.progress(x->o.arg, "sweep", x->res.scanned, x->res.deleted_bytes);
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    cap_lm_leave(&fr);
    if (rc == MDB_CORRUPTED)
        return cap_backend_fail(err, CAP_EBACKEND, "damaged database: a key or value lies outside the file "
                                                   "(run capstore db check)");
    return rc == MDB_NOTFOUND ? CAP_OK : cap_lm_fail(err, rc);
}

/* The mark: given hashes and named roots, their graphs, one snapshot. */
static int mark(collect_t *x, const cap_hash_t *roots, size_t nroots, cap_err_t *err)
{
    lmdb_env_t *e = x->b->e;
    for (size_t i = 0; i < nroots; i++) {
        int r = cap_lm_closure_add(&x->c, &roots[i]);
        if (r < 0) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
        x->starts += (uint64_t)r;
    }
    cap_lm_held_t fr;
    MDB_txn *txn;
    int rc = cap_lm_begin(e, &fr, MDB_RDONLY, &txn, NULL);
    if (rc) return cap_lm_fail(err, rc);
    /* The set at most holds every blob (and the few hashes missing): sized
     * once, never grown and rehashed on the way. */
    MDB_stat st;
    if (mdb_stat(txn, e->dbi, &st) == 0 && cap_hset_reserve(&x->c.set, (size_t)st.ms_entries + nroots + 64) != 0) {
        mdb_txn_abort(txn);
        cap_lm_leave(&fr);
        return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    }
    rc = e->format >= 2 ? mark_roots(x, txn, NULL) : cap_lm_closure_run(e, txn, &x->c);
    if (rc == 0 && x->c.missing) rc = CAP_LM_MISSING;
    if (rc == 0 && x->c.bad) rc = CAP_LM_BAD;
    mdb_txn_abort(txn);
    cap_lm_leave(&fr);
    if (rc == CAP_LM_MISSING || rc == CAP_LM_BAD) return incomplete(x, err);
    if (rc == MDB_CORRUPTED)
        return cap_backend_fail(err, CAP_EBACKEND, "damaged database: a root's record is not a hash "
                                                   "(run capstore db check)");
    if (rc) return cap_lm_fail(err, rc);
    x->res.marked = x->c.read;
    x->res.marked_bytes = x->c.bytes;
    return CAP_OK;
}

int cap_lmdb_collect(const cap_backend_t *bk, const cap_hash_t *roots, size_t nroots,
                     const cap_lmdb_collect_options_t *opt, cap_lmdb_collect_result_t *res, cap_err_t *err)
{
    if (res) memset(res, 0, sizeof *res);
    if (!cap_backend_is_lmdb(bk)) return cap_backend_fail(err, CAP_EINVAL, "not an LMDB backend");
    if (!roots && nroots) return cap_backend_fail(err, CAP_EINVAL, "NULL roots");
    collect_t *x = calloc(1, sizeof *x);
    if (!x) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    cap_lmdb_collect_options_t def = CAP_LMDB_COLLECT_OPTIONS_INIT;
    x->o = def;
    if (opt) cap_options_copy(&x->o, sizeof x->o, opt, opt->size);
    if (!x->o.batch) x->o.batch = DEFAULT_BATCH;
    x->b = bk->ctx;
    bool dry = (x->o.flags & CAP_LMDB_COLLECT_DRY_RUN) != 0;
    cap_lm_closure_init(&x->c);
    if (x->o.progress) {
        x->c.tick = mark_tick;
        x->c.tick_arg = x;
    }
    int rc;
    if (!dry && x->b->readonly) {
        rc = cap_backend_fail(err, CAP_EBACKEND, "read-only");
        goto out;
    }
    rc = mark(x, roots, nroots, err);
    if (rc != CAP_OK) goto out;
    x->c.tick = NULL; /* the sweep reports its own progress */
    if (dry) {
        rc = dry_sweep(x, err);
        goto out;
    }
    x->del = malloc(x->o.batch * sizeof *x->del);
    if (!x->del || sort_mark(x) != 0) {
        rc = cap_backend_fail(err, CAP_ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        uint64_t marked_before = x->c.read, bytes_before = x->c.bytes;
        rc = cap_lm_write_txn(x->b->e, sweep_txn, sweep_fail, x, err);
        if (rc != CAP_OK) break;
        x->res.transactions++;
        x->res.scanned += x->scanned;
        x->res.deleted += x->ndel;
        x->res.deleted_bytes += x->bytes;
        x->res.late_roots += x->late;
        x->res.marked += x->c.read - marked_before;
        x->res.marked_bytes += x->c.bytes - bytes_before;
        x->started = true;
        x->pos_txn = x->pos;
        if (x->o.progress) x->o.progress(x->o.arg, "sweep", x->res.scanned, x->res.deleted_bytes);
        if (x->done) break;
    }
out:
    if (res) {
        x->res.roots = x->starts;
        *res = x->res;
    }
    cap_lm_closure_free(&x->c);
    free(x->del);
    free(x->sorted);
    free(x);
    if (rc == CAP_OK) cap_backend_fail(err, CAP_OK, NULL);
    return rc;
}
