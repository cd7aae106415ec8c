/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* One write transaction run to its commit, the map grown and the work run
 * again when it does not fit (lmdb_internal.h: cap_lm_write_txn). The
 * backend's batch writes keep their own loop (lmdb_backend.c), which also
 * grows the map up front; roots, deletions and a collection's batches,
 * whose size is small or unknown, come through here. */
#include "lmdb_internal.h"

int cap_lm_write_txn(lmdb_env_t *e, cap_lm_txn_fn fn, cap_lm_fail_fn fail, void *arg, cap_err_t *err)
{
    for (;;) {
        cap_lm_held_t fr;
        MDB_txn *txn;
        uint64_t gen;
        int rc = cap_lm_begin(e, &fr, 0, &txn, &gen);
        if (rc) return cap_lm_fail(err, rc);
        rc = fn(e, txn, arg);
        if (rc == 0) rc = mdb_txn_commit(txn); /* frees the transaction either way */
        else mdb_txn_abort(txn);
        cap_lm_leave(&fr);
        if (rc == 0) return CAP_OK;
        if (rc == MDB_MAP_FULL) {
            int grc = cap_lm_grow(e, gen, 0, err);
            if (grc != CAP_OK) return grc;
            continue;
        }
        if (fail && (rc == CAP_LM_MISSING || rc == CAP_LM_BAD || rc > 0x10000)) return fail(arg, rc, err);
        return cap_lm_fail_write(e, err, rc);
    }
}
