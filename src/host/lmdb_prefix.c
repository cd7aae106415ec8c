/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Blobs by hash prefix (persist.h: cap_lmdb_find_prefix): the keys that
 * begin with a few hex digits are one range of the B-tree, found with
 * MDB_SET_RANGE and read until the prefix no longer matches. */
#include <string.h>

#include "lmdb_internal.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Whether `key` begins with the digits (nibbles) of p. */
static bool matches(const uint8_t *key, const uint8_t *p, size_t ndigits)
{
    size_t whole = ndigits / 2;
    if (memcmp(key, p, whole) != 0) return false;
    return ndigits % 2 == 0 || (key[whole] >> 4) == (p[whole] >> 4);
}

int cap_lmdb_find_prefix(const cap_backend_t *bk, const char *prefix, size_t ndigits, cap_hash_t *out, size_t max,
                         size_t *found, cap_err_t *err)
{
    if (found) *found = 0;
    lmdb_env_t *e = cap_lm_env_of(bk);
    if (!e) return cap_backend_fail(err, CAP_EINVAL, "not an LMDB backend");
    if (!prefix || ndigits == 0 || ndigits > 64 || (!out && max))
        return cap_backend_fail(err, CAP_EINVAL, "bad prefix");
    uint8_t p[32];
    memset(p, 0, sizeof p);
    for (size_t i = 0; i < ndigits; i++) {
        int v = hexval(prefix[i]);
        if (v < 0) return cap_backend_fail(err, CAP_EINVAL, "bad prefix (hex digits only)");
        p[i / 2] |= (uint8_t)(i % 2 ? v : v << 4);
    }
    cap_lm_held_t fr;
    MDB_txn *txn;
    int rc = cap_lm_begin(e, &fr, MDB_RDONLY, &txn, NULL);
    if (rc) return cap_lm_fail(err, rc);
    MDB_cursor *cur;
    size_t n = 0;
    if ((rc = mdb_cursor_open(txn, e->dbi, &cur)) == 0) {
        MDB_val k = {32, p}, v;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != 32 || !cap_lm_val_ok(e, &k)) {
                rc = MDB_CORRUPTED;
                break;
            }
            if (!matches(k.mv_data, p, ndigits)) break;
            if (n < max) memcpy(out[n].bytes, k.mv_data, 32);
            n++;
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    cap_lm_leave(&fr);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        if (rc == MDB_CORRUPTED)
            return cap_backend_fail(err, CAP_EBACKEND, "damaged database: a key lies outside the file "
                                                       "(run capstore db check)");
        return cap_lm_fail(err, rc);
    }
    if (found) *found = n;
    cap_backend_fail(err, CAP_OK, NULL);
    return CAP_OK;
}
