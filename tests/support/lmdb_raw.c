/* SPDX-License-Identifier: MIT OR Apache-2.0 */
#include "lmdb_raw.h"

#include <lmdb.h>

int test_lmdb_raw_put(const char *path, const cap_hash_t *h, const void *bytes, size_t n)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int rc = mdb_env_create(&env);
    if (rc == 0) rc = mdb_env_set_maxdbs(env, 4);
    if (rc == 0) rc = mdb_env_open(env, path, MDB_NOSUBDIR, 0644);
    if (rc == 0) rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc == 0) rc = mdb_dbi_open(txn, "blobs", 0, &dbi);
    if (rc == 0) {
        MDB_val k = {32, (void *)h->bytes}, v = {n, (void *)bytes};
        rc = mdb_put(txn, dbi, &k, &v, 0);
    }
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
    } else if (txn) {
        mdb_txn_abort(txn);
    }
    if (env) mdb_env_close(env);
    return rc;
}
