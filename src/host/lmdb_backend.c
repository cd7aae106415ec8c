/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The LMDB blob backend's functions (persist.h: cap_lmdb_open; the
 * environment, registry and growth are in lmdb_env.c).
 *
 * One database file (MDB_NOSUBDIR: the file plus "<path>-lock"), the unnamed
 * database, keys = 32-byte cap hashes, values = wire bytes.
 *
 * Nothing LMDB hands back is used before cap_lm_val_ok (lmdb_bounds.c) says it
 * lies inside the file (a damaged size would otherwise send a copy or the
 * decoder past the mapping). Writes repair: a hash stored with other bytes than the verified
 * ones being written gets them, in the same transaction (equal hashes mean
 * equal wire bytes; sys/backend.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/host.h"
#include "lmdb_file.h"
#include "lmdb_internal.h"

static int damaged(cap_err_t *err, const cap_hash_t *h)
{
    cap_backend_fail(err, CAP_EBACKEND, "damaged database: a value lies outside the file (run capstore db check)");
    cap_err_set_hash(err, h);
    return CAP_EBACKEND;
}

/* Reads ---------------------------------------------------------------------------------------- */

/* One lookup of `h` in `txn`: CAP_OK with a copy of the bytes from `a` when
 * `a` is given (read), or just the answer (exists); CAP_ENOTFOUND; or the
 * failure. */
static int lookup(lmdb_env_t *e, MDB_txn *txn, const cap_hash_t *h, const cap_alloc_t *a, uint8_t **bytes,
                  size_t *n, cap_err_t *err)
{
    MDB_val k = {32, (void *)h->bytes}, v;
    int rc = mdb_get(txn, e->dbi, &k, &v);
    if (rc == MDB_NOTFOUND) return cap_backend_fail(err, CAP_ENOTFOUND, "not stored");
    if (rc) {
        cap_lm_fail(err, rc);
        cap_err_set_hash(err, h);
        return CAP_EBACKEND;
    }
    if (!cap_lm_val_ok(e, &v)) return damaged(err, h);
    if (a && v.mv_size) {
        uint8_t *p = a->allocate(a->ctx, v.mv_size);
        if (!p) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
        memcpy(p, v.mv_data, v.mv_size);
        *bytes = p;
        *n = v.mv_size;
    }
    return CAP_OK;
}

static int cap_lm_read(void *ctx, const cap_hash_t *h, const cap_alloc_t *a, uint8_t **bytes, size_t *n,
                   cap_err_t *err)
{
    lmdb_backend_t *b = ctx;
    *bytes = NULL;
    *n = 0;
    cap_lm_held_t fr;
    MDB_txn *txn;
    int rc = cap_lm_begin(b->e, &fr, MDB_RDONLY, &txn, NULL);
    if (rc) return cap_lm_fail(err, rc);
    rc = lookup(b->e, txn, h, a, bytes, n, err);
    mdb_txn_abort(txn);
    cap_lm_leave(&fr);
    return rc;
}

static int cap_lm_exists(void *ctx, const cap_hash_t *h, cap_err_t *err)
{
    lmdb_backend_t *b = ctx;
    cap_lm_held_t fr;
    MDB_txn *txn;
    int rc = cap_lm_begin(b->e, &fr, MDB_RDONLY, &txn, NULL);
    if (rc) return cap_lm_fail(err, rc);
    rc = lookup(b->e, txn, h, NULL, NULL, NULL, err);
    mdb_txn_abort(txn);
    cap_lm_leave(&fr);
    return rc;
}

/* read_many and exists_many: one read transaction, one snapshot. */
static int many(lmdb_backend_t *b, const cap_hash_t *hashes, size_t n, const cap_alloc_t *a, uint8_t **bytes,
                size_t *lens, int *codes, cap_err_t *err)
{
    cap_lm_held_t fr;
    MDB_txn *txn;
    int rc = cap_lm_begin(b->e, &fr, MDB_RDONLY, &txn, NULL);
    if (rc) {
        for (size_t i = 0; i < n; i++) codes[i] = CAP_EBACKEND;
        return cap_lm_fail(err, rc);
    }
    for (size_t i = 0; i < n; i++) {
        if (bytes) {
            bytes[i] = NULL;
            lens[i] = 0;
        }
        codes[i] = lookup(b->e, txn, &hashes[i], a, bytes ? &bytes[i] : NULL, bytes ? &lens[i] : NULL, NULL);
    }
    mdb_txn_abort(txn);
    cap_lm_leave(&fr);
    cap_backend_fail(err, CAP_OK, NULL);
    return CAP_OK;
}

static int cap_lm_read_many(void *ctx, const cap_hash_t *hashes, size_t n, const cap_alloc_t *a, uint8_t **bytes,
                        size_t *lens, int *codes, cap_err_t *err)
{
    return many(ctx, hashes, n, a, bytes, lens, codes, err);
}

static int cap_lm_exists_many(void *ctx, const cap_hash_t *hashes, size_t n, int *codes, cap_err_t *err)
{
    return many(ctx, hashes, n, NULL, NULL, NULL, codes, err);
}

/* Writes --------------------------------------------------------------------------------------- */

/* Pages a batch will need at most, roughly: leaf space for each entry (twice,
 * for page splits and copy-on-write), overflow pages for large values, and a
 * few pages of slack for the tree's upper levels and the free list. */
static size_t batch_estimate(const cap_backend_item_t *items, size_t n, size_t psize)
{
    size_t total = 64 * psize;
    for (size_t i = 0; i < n; i++) {
        size_t sz = items[i].n + 32 + 16;
        size_t add = sz > psize / 4 ? cap_lm_round_up(sz, psize) + psize : 2 * sz;
        if (add > ((size_t)-1) - total) return (size_t)-1;
        total += add;
    }
    return total;
}

/* Batch order. Inserting keys in ascending order fills B-tree pages left to
 * right (about twice as fast as random order, and a smaller file), so a batch
 * of more than a few items is put in key order: an LSD radix sort on the
 * first 8 bytes (big-endian, i.e. memcmp order), then runs with an equal
 * prefix finished by insertion sort on the whole key. */
typedef struct sort_rec {
    uint64_t prefix;
    size_t idx;
} sort_rec_t;

#define SORT_MIN 32

static size_t *batch_order(const cap_backend_item_t *items, size_t n)
{
    if (n < SORT_MIN || n > ((size_t)-1) / (2 * sizeof(sort_rec_t))) return NULL;
    sort_rec_t *a = malloc(n * sizeof *a), *tmp = malloc(n * sizeof *tmp);
    if (!a || !tmp) {
        free(a);
        free(tmp);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t p = 0;
        for (int j = 0; j < 8; j++) p = (p << 8) | items[i].hash.bytes[j];
        a[i].prefix = p;
        a[i].idx = i;
    }
    for (unsigned shift = 0; shift < 64; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++) count[((a[i].prefix >> shift) & 0xff) + 1]++;
        if (count[((a[0].prefix >> shift) & 0xff) + 1] == n) continue; /* all equal: nothing to do */
        for (int d = 0; d < 256; d++) count[d + 1] += count[d];
        for (size_t i = 0; i < n; i++) tmp[count[(a[i].prefix >> shift) & 0xff]++] = a[i];
        sort_rec_t *t = a;
        a = tmp;
        tmp = t;
    }
    free(tmp);
    size_t *order = (size_t *)(void *)a; /* reuse the block: idx fits where the records were */
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && a[j].prefix == a[i].prefix) j++;
        for (size_t k = i + 1; k < j; k++) { /* equal prefixes: order by the whole key */
            sort_rec_t r = a[k];
            size_t m = k;
            while (m > i && memcmp(items[a[m - 1].idx].hash.bytes, items[r.idx].hash.bytes, 32) > 0) {
                a[m] = a[m - 1];
                m--;
            }
            a[m] = r;
        }
        i = j;
    }
    for (size_t i = 0; i < n; i++) order[i] = a[i].idx; /* order[i] lies at or before a[i] */
    return order;
}

/* What a write does with each item, decided before the transaction
 * changes anything: while no page is dirty, every stored value LMDB hands
 * back lies in the map, where cap_lm_val_ok can judge it. */
enum { PUT_NEW, PUT_SAME, PUT_REPAIR };

/* Classify every item: not stored (new), stored with the same bytes (or
 * with other bytes worth keeping: cap_backend_replaces), or stored with
 * other bytes to replace (to repair). A stored value that does not lie
 * inside the file cannot be replaced safely (LMDB would move bytes by its
 * damaged size): *bad names it. */
static int classify(lmdb_env_t *e, MDB_txn *txn, const cap_backend_item_t *items, size_t n, uint8_t *what,
                    const cap_hash_t **bad)
{
    for (size_t i = 0; i < n; i++) {
        MDB_val k = {32, (void *)items[i].hash.bytes}, v;
        int rc = mdb_get(txn, e->dbi, &k, &v);
        if (rc == MDB_NOTFOUND) {
            what[i] = PUT_NEW;
            continue;
        }
        if (rc) return rc;
        if (!cap_lm_val_ok(e, &v)) {
            *bad = &items[i].hash;
            return MDB_CORRUPTED;
        }
        bool same = v.mv_size == items[i].n && (items[i].n == 0 || memcmp(v.mv_data, items[i].bytes, items[i].n) == 0);
        if (!same) { /* damage, or another encoding of the same cap (sys/backend.h) */
            bool replace = true;
            if (cap_backend_replaces(&items[i].hash, v.mv_data, v.mv_size, items[i].bytes, items[i].n,
                                     cap_alloc_libc(), &replace) != CAP_OK)
                return ENOMEM;
            same = !replace;
        }
        what[i] = same ? PUT_SAME : PUT_REPAIR;
    }
    return 0;
}

/* Put one classified item. A new one met again (the batch names a hash
 * twice) meets the bytes just written: the fuller copy stays. */
static int put_one(lmdb_env_t *e, MDB_txn *txn, const cap_backend_item_t *it, uint8_t what,
                   cap_backend_write_result_t *res)
{
    if (what == PUT_SAME) return 0;
    MDB_val k = {32, (void *)it->hash.bytes};
    MDB_val v = {it->n, (void *)it->bytes};
    int rc = mdb_put(txn, e->dbi, &k, &v, what == PUT_NEW ? MDB_NOOVERWRITE : 0);
    if (rc == MDB_KEYEXIST) { /* named twice in the batch: the fuller copy stays */
        MDB_val cur;
        bool replace = false;
        if (mdb_get(txn, e->dbi, &k, &cur) != 0 ||
            (cur.mv_size == it->n && (it->n == 0 || memcmp(cur.mv_data, it->bytes, it->n) == 0)))
            return 0;
        if (cap_backend_replaces(&it->hash, cur.mv_data, cur.mv_size, it->bytes, it->n, cap_alloc_libc(),
                                 &replace) != CAP_OK)
            return ENOMEM;
        MDB_val fuller = {it->n, (void *)it->bytes}; /* v now names the stored value (LMDB's KEYEXIST) */
        return replace ? mdb_put(txn, e->dbi, &k, &fuller, 0) : 0;
    }
    if (rc == 0) {
        if (what == PUT_NEW) res->written++;
        else res->repaired++;
    }
    return rc;
}

int cap_lm_put_items(lmdb_backend_t *b, const cap_backend_item_t *items, size_t n, const cap_backend_root_t *roots,
                     size_t nroots, cap_backend_write_result_t *res, cap_err_t *err)
{
    lmdb_env_t *e = b->e;
    res->written = res->repaired = 0;
    if (b->readonly) return cap_backend_fail(err, CAP_EBACKEND, "read-only");
    if (n == 0 && nroots == 0) return CAP_OK;

    /* Grow up front when the batch clearly does not fit. */
    if (!cap_lm_held_by_me(e)) {
        cap_lm_held_t fr;
        cap_lm_enter(e, &fr);
        MDB_envinfo info;
        mdb_env_info(e->env, &info);
        uint64_t gen = e->map_gen;
        size_t used = (info.me_last_pgno + 1) * (size_t)e->psize;
        size_t need = batch_estimate(items, n, e->psize);
        size_t want = need > ((size_t)-1) - used ? (size_t)-1 : used + need;
        size_t cur = info.me_mapsize;
        cap_lm_leave(&fr);
        if (want > cur && (!e->max_map || cur < e->max_map)) {
            int grc = cap_lm_grow(e, gen, want, err);
            if (grc != CAP_OK) return grc;
        }
    }

    uint8_t *what = malloc(n ? n : 1);
    if (!what) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    size_t *order = batch_order(items, n); /* NULL: the given order */
    int out;
    for (;;) {
        cap_lm_held_t fr;
        MDB_txn *txn;
        uint64_t gen;
        int rc = cap_lm_begin(e, &fr, 0, &txn, &gen);
        if (rc) {
            out = cap_lm_fail(err, rc);
            break;
        }
        const cap_hash_t *bad = NULL;
        cap_lm_missing_t miss;
        rc = classify(e, txn, items, n, what, &bad);
        /* Roots: their closures checked before anything changes (lmdb_roots.c). */
        if (rc == 0 && nroots) rc = cap_lm_roots_check(e, txn, items, n, roots, nroots, &miss);
        for (size_t i = 0; i < n && rc == 0; i++) {
            size_t j = order ? order[i] : i;
            rc = put_one(e, txn, &items[j], what[j], res);
        }
        if (rc == 0 && nroots) rc = cap_lm_roots_put(e, txn, roots, nroots);
        if (rc == 0) {
            rc = mdb_txn_commit(txn); /* frees the transaction either way */
        } else {
            mdb_txn_abort(txn);
        }
        cap_lm_leave(&fr);
        if (rc == 0) {
            out = CAP_OK;
            break;
        }
        res->written = res->repaired = 0;
        if (bad) {
            out = damaged(err, bad);
            break;
        }
        if (rc == CAP_LM_MISSING || rc == CAP_LM_BAD) {
            out = cap_lm_missing_fail(err, rc, &miss, roots);
            break;
        }
        if (rc != MDB_MAP_FULL) {
            out = cap_lm_fail_write(e, err, rc);
            break;
        }
        out = cap_lm_grow(e, gen, 0, err);
        if (out != CAP_OK) break;
    }
    free(order);
    free(what);
    return out;
}

static int cap_lm_write_batch(void *ctx, const cap_backend_item_t *items, size_t n, cap_err_t *err)
{
    cap_backend_write_result_t res;
    return cap_lm_put_items(ctx, items, n, NULL, 0, &res, err);
}

static int cap_lm_write_many(void *ctx, const cap_backend_item_t *items, size_t n, const cap_backend_root_t *roots,
                         size_t nroots, cap_backend_write_result_t *res, cap_err_t *err)
{
    cap_backend_write_result_t local;
    if (!res) res = &local;
    res->written = res->repaired = 0;
    return cap_lm_put_items(ctx, items, n, roots, nroots, res, err);
}

static int cap_lm_flush(void *ctx, cap_err_t *err)
{
    /* Commits are durable already (or NOSYNC was asked for: sync now). */
    lmdb_backend_t *b = ctx;
    if (b->e->rdonly) return CAP_OK;
    int rc = mdb_env_sync(b->e->env, 1);
    return rc ? cap_lm_fail_write(b->e, err, rc) : CAP_OK;
}

/* Iteration ------------------------------------------------------------------------------------ */

static int cap_lm_iterate(void *ctx, cap_backend_iter_fn fn, void *arg, cap_err_t *err)
{
    lmdb_backend_t *b = ctx;
    lmdb_env_t *e = b->e;
    cap_lm_held_t fr;
    MDB_txn *txn;
    int rc = cap_lm_begin(e, &fr, MDB_RDONLY, &txn, NULL);
    if (rc) return cap_lm_fail(err, rc);
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, e->dbi, &cur);
    if (rc) {
        mdb_txn_abort(txn);
        cap_lm_leave(&fr);
        return cap_lm_fail(err, rc);
    }
    int out = CAP_OK;
    MDB_val k, v;
    cap_hash_t prev;
    bool have_prev = false;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 32 || !cap_lm_val_ok(e, &k)) {
            out = cap_backend_fail(err, CAP_EBACKEND, "a key is not a 32-byte hash (not a capstore database)");
            break;
        }
        cap_hash_t h;
        memcpy(h.bytes, k.mv_data, 32);
        /* A damaged branch page can send the cursor back to keys it has
         * seen: stop rather than loop. */
        if (have_prev && memcmp(prev.bytes, h.bytes, 32) >= 0) {
            out = cap_backend_fail(err, CAP_EBACKEND, "damaged database: keys out of order (run capstore db check)");
            cap_err_set_hash(err, &h);
            break;
        }
        prev = h;
        have_prev = true;
        if (!cap_lm_val_ok(e, &v)) {
            out = damaged(err, &h);
            break;
        }
        out = fn(arg, &h, v.mv_size ? v.mv_data : NULL, v.mv_size);
        if (out != 0) break;
    }
    if (out == CAP_OK && rc != MDB_NOTFOUND && rc != 0) out = cap_lm_fail(err, rc);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    cap_lm_leave(&fr);
    return out;
}

/* The table ------------------------------------------------------------------------------------ */

void cap_lm_fill_table(lmdb_backend_t *b, bool readonly, unsigned flags)
{
    cap_backend_t t = CAP_BACKEND_INIT;
    t.name = "lmdb";
    t.flags = (readonly ? CAP_BACKEND_READONLY : 0u) | flags;
    t.ctx = b;
    t.read = cap_lm_read;
    t.write_batch = readonly ? NULL : cap_lm_write_batch;
    t.flush = cap_lm_flush;
    t.exists = cap_lm_exists;
    t.iterate = cap_lm_iterate;
    t.free = cap_lm_free;
    t.read_many = cap_lm_read_many;
    t.exists_many = cap_lm_exists_many;
    t.write_many = readonly ? NULL : cap_lm_write_many;
    t.root_get = cap_lm_root_get; /* lmdb_roots.c */
    t.root_set = cap_lm_root_set;
    t.root_delete = cap_lm_root_delete;
    t.root_list = cap_lm_root_list;
    b->table = t;
}

/* Statistics ----------------------------------------------------------------------------------- */

static int sum_bytes(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    (void)h;
    (void)bytes;
    *(uint64_t *)arg += n;
    return 0;
}

int cap_lmdb_stats(const cap_backend_t *bk, cap_lmdb_stats_t *st, cap_err_t *err)
{
    lmdb_env_t *e = cap_lm_env_of(bk);
    if (!e || !st) return cap_backend_fail(err, CAP_EINVAL, "not an LMDB backend");
    memset(st, 0, sizeof *st);
    cap_lm_held_t fr;
    MDB_txn *txn;
    int rc = cap_lm_begin(e, &fr, MDB_RDONLY, &txn, NULL);
    if (rc) return cap_lm_fail(err, rc);
    MDB_stat ms, rs;
    MDB_envinfo info;
    uint64_t free_pages = 0;
    rc = mdb_stat(txn, e->dbi, &ms);
    if (rc == 0 && e->format >= 2) rc = mdb_stat(txn, e->roots_dbi, &rs);
    if (rc == 0) rc = cap_lm_free_pages(txn, &free_pages); /* lmdb_format.c */
    mdb_env_info(e->env, &info);
    mdb_txn_abort(txn);
    cap_lm_leave(&fr);
    if (rc) return cap_lm_fail(err, rc);
    st->blobs = ms.ms_entries;
    st->page_size = ms.ms_psize;
    st->depth = ms.ms_depth;
    st->map_size = info.me_mapsize;
    st->used_bytes = (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize;
    st->free_bytes = free_pages * ms.ms_psize;
    st->roots = e->format >= 2 ? rs.ms_entries : 0;
    st->format = e->format;
    uint64_t bytes = 0;
    rc = cap_lm_iterate(bk->ctx, sum_bytes, &bytes, err);
    if (rc != CAP_OK) return rc;
    st->bytes = bytes;
    return CAP_OK;
}
