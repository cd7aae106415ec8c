/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Named roots of the LMDB backend (sys/backend.h: root_get, root_set,
 * root_delete, root_list; file format 2's "roots" database: name -> the
 * 32-byte hash).
 *
 * A root is only set when its closure is present. The check runs inside
 * the write transaction that sets it, before that transaction changes
 * anything (lmdb_closure.c), against what is stored plus the blobs the same
 * batch writes. LMDB runs one write transaction at a time, and a
 * collection deletes only in write transactions that first mark the
 * closure of every root they find (lmdb_collect.c), so no collection can
 * leave a root naming a deleted blob, whatever the interleaving. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lmdb_closure.h"

/* The closure check ------------------------------------------------------------------------------ */

int cap_lm_roots_check(lmdb_env_t *e, MDB_txn *txn, const cap_backend_item_t *items, size_t n,
                       const cap_backend_root_t *roots, size_t nroots, cap_lm_missing_t *miss)
{
    cap_lm_closure_t c;
    cap_lm_closure_init(&c);
    int rc = n ? cap_lm_closure_overlay(&c, items, n) : 0;
    for (size_t i = 0; i < nroots && rc == 0; i++)
        if (cap_lm_closure_add(&c, &roots[i].hash) < 0) rc = ENOMEM;
    if (rc == 0) rc = cap_lm_closure_run(e, txn, &c);
    if (rc == 0 && (c.bad || c.missing)) {
        cap_hash_t *starts = malloc(nroots * sizeof *starts);
        for (size_t i = 0; starts && i < nroots; i++) starts[i] = roots[i].hash;
        cap_lm_closure_explain(&c, c.missing == 0, starts, starts ? nroots : 0, miss);
        free(starts);
        rc = c.missing ? CAP_LM_MISSING : CAP_LM_BAD;
    }
    cap_lm_closure_free(&c);
    return rc;
}

int cap_lm_roots_put(lmdb_env_t *e, MDB_txn *txn, const cap_backend_root_t *roots, size_t nroots)
{
    for (size_t i = 0; i < nroots; i++) {
        MDB_val k = {strlen(roots[i].name), (void *)roots[i].name}, v = {32, (void *)roots[i].hash.bytes};
        int rc = mdb_put(txn, e->roots_dbi, &k, &v, 0);
        if (rc) return rc;
    }
    return 0;
}

static void add_hex8(cap_err_t *err, const cap_hash_t *h)
{
    static const char digits[] = "0123456789abcdef";
    char hex[9];
    for (int i = 0; i < 4; i++) {
        hex[2 * i] = digits[h->bytes[i] >> 4];
        hex[2 * i + 1] = digits[h->bytes[i] & 15];
    }
    hex[8] = 0;
    cap_err_add_detail(err, hex);
}

int cap_lm_missing_fail(cap_err_t *err, int rc, const cap_lm_missing_t *miss, const cap_backend_root_t *roots)
{
    bool missing = rc == CAP_LM_MISSING;
    int code = missing ? CAP_EBLOBMISSING : CAP_EDECODE;
    cap_backend_fail(err, code,
                     missing ? "a root's graph is not all stored: the root is not set"
                             : "a blob of a root's graph is damaged (run capstore db check): the root is not set");
    cap_err_set_hash(err, &miss->hash);
    if (roots) {
        cap_err_add_detail(err, "root ");
        cap_err_add_detail(err, roots[miss->root].name);
    }
    if (miss->has_parent) {
        cap_err_add_detail(err, roots ? ", named by " : "named by ");
        add_hex8(err, &miss->parent);
    }
    cap_err_add_detail(err, "; ");
    cap_err_add_detail_u64(err, miss->count);
    cap_err_add_detail(err, missing ? " missing" : " damaged");
    return code;
}

/* The entries ---------------------------------------------------------------------------------------- */

static int damaged_root(cap_err_t *err, const char *name)
{
    cap_backend_fail(err, CAP_EBACKEND, "damaged database: a root's record is not a hash (run capstore db check)");
    cap_err_add_detail(err, name);
    return CAP_EBACKEND;
}

int cap_lm_root_get(void *ctx, const char *name, cap_hash_t *h, cap_err_t *err)
{
    lmdb_backend_t *b = ctx;
    lmdb_env_t *e = b->e;
    if (e->format < 2) return cap_backend_fail(err, CAP_ENOTFOUND, "no such root");
    cap_lm_held_t fr;
    MDB_txn *txn;
    int rc = cap_lm_begin(e, &fr, MDB_RDONLY, &txn, NULL);
    if (rc) return cap_lm_fail(err, rc);
    MDB_val k = {strlen(name), (void *)name}, v;
    rc = mdb_get(txn, e->roots_dbi, &k, &v);
    int out;
    if (rc == MDB_NOTFOUND) out = cap_backend_fail(err, CAP_ENOTFOUND, "no such root");
    else if (rc) out = cap_lm_fail(err, rc);
    else if (v.mv_size != 32 || !cap_lm_val_ok(e, &v)) out = damaged_root(err, name);
    else {
        memcpy(h->bytes, v.mv_data, 32);
        out = CAP_OK;
    }
    mdb_txn_abort(txn);
    cap_lm_leave(&fr);
    return out;
}

int cap_lm_root_set(void *ctx, const char *name, const cap_hash_t *h, cap_err_t *err)
{
    cap_backend_root_t r = {name, *h};
    cap_backend_write_result_t res;
    return cap_lm_put_items(ctx, NULL, 0, &r, 1, &res, err);
}

static int del_root(lmdb_env_t *e, MDB_txn *txn, void *arg)
{
    const char *name = arg;
    MDB_val k = {strlen(name), (void *)name};
    int rc = mdb_del(txn, e->roots_dbi, &k, NULL);
    return rc == MDB_NOTFOUND ? CAP_LM_MISSING : rc;
}

static int del_fail(void *arg, int rc, cap_err_t *err)
{
    (void)arg;
    (void)rc;
    return cap_backend_fail(err, CAP_ENOTFOUND, "no such root");
}

int cap_lm_root_delete(void *ctx, const char *name, cap_err_t *err)
{
    lmdb_backend_t *b = ctx;
    if (b->readonly) return cap_backend_fail(err, CAP_EBACKEND, "read-only");
    return cap_lm_write_txn(b->e, del_root, del_fail, (void *)name, err);
}

int cap_lm_root_list(void *ctx, cap_backend_root_fn fn, void *arg, cap_err_t *err)
{
    lmdb_backend_t *b = ctx;
    lmdb_env_t *e = b->e;
    if (e->format < 2) return CAP_OK;
    cap_lm_held_t fr;
    MDB_txn *txn;
    int rc = cap_lm_begin(e, &fr, MDB_RDONLY, &txn, NULL);
    if (rc) return cap_lm_fail(err, rc);
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, e->roots_dbi, &cur))) {
        mdb_txn_abort(txn);
        cap_lm_leave(&fr);
        return cap_lm_fail(err, rc);
    }
    int out = CAP_OK;
    MDB_val k, v;
    char name[CAP_ROOT_NAME_MAX + 1];
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size == 0 || k.mv_size > CAP_ROOT_NAME_MAX || !cap_lm_val_ok(e, &k)) {
            out = damaged_root(err, "(a name of an impossible length)");
            break;
        }
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = 0;
        if (v.mv_size != 32 || !cap_lm_val_ok(e, &v) || !cap_root_name_valid(name)) {
            out = damaged_root(err, name);
            break;
        }
        cap_hash_t h;
        memcpy(h.bytes, v.mv_data, 32);
        out = fn(arg, name, &h);
        if (out != 0) break;
    }
    if (out == CAP_OK && rc != MDB_NOTFOUND && rc != 0) out = cap_lm_fail(err, rc);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    cap_lm_leave(&fr);
    return out;
}
