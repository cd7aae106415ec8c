/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* File format 2 of the LMDB database (docs/persistence.md, "The file").
 *
 * Format 1 kept the blobs in LMDB's unnamed database. LMDB keeps the names
 * of named databases as keys of that same database, so nothing else could
 * live beside the blobs. Format 2 has three named databases:
 *
 *   blobs  32-byte hash -> wire bytes
 *   roots  name (1..255 bytes) -> 32-byte hash
 *   meta   "format" -> the format number, u32 little-endian (2)
 *
 * and the unnamed database holds only their three records. The first
 * transaction of an environment (cap_lm_format_setup) finds which format
 * the file has. A new file is made format 2. A format-1 file opened
 * read-only is read as before (no roots); opened writable it is migrated:
 * the named databases created, every blob moved into "blobs" (ascending
 * keys, so MDB_APPEND), the unnamed database emptied of them, the format
 * record written — all in that one transaction, so a crash leaves either
 * format and never a mixture. Two processes opening one format-1 file
 * writable at once migrate it once: the check is inside the write
 * transaction, which LMDB runs one at a time. A file of a later format is
 * refused. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "lmdb_internal.h"

#define FORMAT 2u
#define RESIZE_TRIES 10000

static const char format_key[] = "format";

static int newer(cap_err_t *err, uint32_t v)
{
    cap_backend_fail(err, CAP_EBACKEND, "database format newer than this capstore reads");
    cap_err_add_detail(err, "format ");
    cap_err_add_detail_u64(err, v);
    cap_err_add_detail(err, "; this capstore reads formats 1 and 2");
    return CAP_EBACKEND;
}

/* Read the format record. 0 with *v, or an LMDB code (MDB_CORRUPTED for a
 * record of the wrong size). */
static int read_format(MDB_txn *txn, MDB_dbi meta, uint32_t *v)
{
    MDB_val k = {sizeof format_key - 1, (void *)format_key}, d;
    int rc = mdb_get(txn, meta, &k, &d);
    if (rc) return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
    if (d.mv_size != 4) return MDB_CORRUPTED;
    const uint8_t *p = d.mv_data;
    *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return 0;
}

/* Whether the unnamed database holds only blobs whose bytes lie inside the
 * file. Run before the transaction changes anything: afterwards LMDB hands
 * back copies of dirty pages, which cap_lm_val_ok cannot judge. */
static int check_keys(lmdb_env_t *e, MDB_txn *txn, MDB_dbi main_dbi, bool *foreign)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, main_dbi, &cur);
    if (rc) return rc;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 32) {
            *foreign = true;
            rc = MDB_INCOMPATIBLE;
            break;
        }
        if (!cap_lm_val_ok(e, &k) || !cap_lm_val_ok(e, &v)) {
            rc = MDB_CORRUPTED;
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Make the file format 2 in the write transaction `txn`: the named
 * databases, the blobs moved, the record. */
static int migrate(lmdb_env_t *e, MDB_txn *txn, bool *foreign)
{
    MDB_dbi main_dbi, blobs, roots, meta;
    int rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
    if (!rc) rc = check_keys(e, txn, main_dbi, foreign);
    if (!rc) rc = mdb_dbi_open(txn, "blobs", MDB_CREATE, &blobs);
    if (!rc) rc = mdb_dbi_open(txn, "roots", MDB_CREATE, &roots);
    if (!rc) rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &meta);
    if (rc) return rc;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, main_dbi, &cur))) return rc;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 32) continue; /* one of the three records just made */
        if ((rc = mdb_put(txn, blobs, &k, &v, MDB_APPEND))) break;
        if ((rc = mdb_cursor_del(cur, 0))) break;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND && rc != 0) return rc;
    uint8_t rec[4] = {FORMAT, 0, 0, 0};
    MDB_val fk = {sizeof format_key - 1, (void *)format_key}, fv = {4, rec};
    return mdb_put(txn, meta, &fk, &fv, 0);
}

/* Grow a map nobody else in this process uses yet (the open's own). */
static int grow_alone(lmdb_env_t *e, cap_err_t *err)
{
    MDB_envinfo info;
    mdb_env_info(e->env, &info);
    size_t cur = info.me_mapsize, next = cur > ((size_t)-1) / 2 ? (size_t)-1 : cur * 2;
    if (e->max_map && next > e->max_map) next = e->max_map;
    if (next <= cur) return cap_backend_fail(err, CAP_EBACKEND, "map size limit reached");
    int rc = mdb_env_set_mapsize(e->env, next);
    return rc ? cap_lm_fail(err, rc) : CAP_OK;
}

int cap_lm_format_setup(lmdb_env_t *e, cap_err_t *err)
{
    for (int tries = 0;; tries++) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(e->env, NULL, e->rdonly ? MDB_RDONLY : 0, &txn);
        if (rc == MDB_MAP_RESIZED && tries < RESIZE_TRIES) {
            mdb_env_set_mapsize(e->env, 0); /* another process grew the map: adopt it */
            continue;
        }
        if (rc) return cap_lm_fail(err, rc);
        MDB_dbi meta;
        rc = mdb_dbi_open(txn, "meta", 0, &meta);
        if (rc == 0) {
            uint32_t v = 0;
            MDB_dbi blobs = 0, roots = 0;
            rc = read_format(txn, meta, &v);
            if (rc == 0 && v > FORMAT) {
                mdb_txn_abort(txn);
                return newer(err, v);
            }
            if (rc == 0 && v != FORMAT) rc = MDB_CORRUPTED;
            if (rc == 0) rc = mdb_dbi_open(txn, "blobs", 0, &blobs);
            if (rc == 0) rc = mdb_dbi_open(txn, "roots", 0, &roots);
            if (rc == MDB_NOTFOUND) rc = MDB_CORRUPTED;
            /* Commit even a read-only transaction: the handles it opened
             * stay valid for the environment only then. */
            if (rc == 0) rc = mdb_txn_commit(txn);
            else mdb_txn_abort(txn);
            if (rc == MDB_CORRUPTED) {
                return cap_backend_fail(err, CAP_EBACKEND,
                                        "damaged database: the format record or a named database is missing "
                                        "(run capstore db check)");
            }
            if (rc) return cap_lm_fail(err, rc);
            e->dbi = blobs;
            e->roots_dbi = roots;
            e->meta_dbi = meta;
            e->format = FORMAT;
            return CAP_OK;
        }
        if (rc == MDB_INCOMPATIBLE) {
            mdb_txn_abort(txn);
            return cap_backend_fail(err, CAP_EBACKEND, "not a capstore database (a key \"meta\" that is not ours)");
        }
        if (rc != MDB_NOTFOUND) {
            mdb_txn_abort(txn);
            return cap_lm_fail(err, rc);
        }
        if (e->rdonly) { /* format 1 (or a file no write has touched): as before */
            rc = mdb_dbi_open(txn, NULL, 0, &e->dbi);
            mdb_txn_abort(txn);
            if (rc) return cap_lm_fail(err, rc);
            e->format = 1;
            return CAP_OK;
        }
        bool foreign = false;
        rc = migrate(e, txn, &foreign);
        if (rc == 0) {
            rc = mdb_txn_commit(txn);
            if (rc == 0) continue; /* open the new databases as any format-2 file */
        } else {
            mdb_txn_abort(txn);
        }
        if (rc == MDB_MAP_FULL) {
            int grc = grow_alone(e, err);
            if (grc != CAP_OK) return grc;
            continue;
        }
        if (foreign) return cap_backend_fail(err, CAP_EBACKEND, "not a capstore database (a key that is not a hash)");
        if (rc == MDB_CORRUPTED)
            return cap_backend_fail(err, CAP_EBACKEND, "damaged database: a blob lies outside the file (run capstore db check)");
        return cap_lm_fail_write(e, err, rc);
    }
}

/* Free pages -------------------------------------------------------------------------------------- */

int cap_lm_free_pages(MDB_txn *txn, uint64_t *pages)
{
    *pages = 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, 0, &cur); /* dbi 0: LMDB's free list */
    if (rc) return rc;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        /* Each record: a count of page numbers, then the numbers. */
        if (v.mv_size >= sizeof(size_t)) {
            size_t count;
            memcpy(&count, v.mv_data, sizeof count);
            *pages += count;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}
