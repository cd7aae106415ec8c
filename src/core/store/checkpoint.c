/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Checkpoint: settle so that the root names a closed graph.
 *
 * A settle keeps Instance entries as instances: their hash is a snapshot
 * that nothing stores, so a settled graph with Instances in it is not
 * closed (a fresh store on the same backend cannot follow it). A checkpoint
 * is the same settle (settle.c, with its checkpoint flag) that also
 * publishes each Instance node's cap as a blob under its snapshot hash, in
 * the same commit, after checking that every Hash child of the graph exists
 * somewhere (memory or a backend, transitively: store/walk.c). The cap is
 * shared, not copied: the entry keeps it, frozen, so the instance goes on
 * and its next edit copies away from the published snapshot, as for any
 * published cap. */
#include "store/store_internal.h"

void store_checkpoint_publish_locked(cap_store_t *s, cap_t *c, const cap_hash_t *h,
                                     store_blob_tally_t *tally)
{
    uint64_t mix = store_blob_mix(s, h);
    store_shard_t *sh = store_shard(s, store_blob_shard(mix));
    cap_freeze(c);
    if (store_blob_find(sh, h, mix) == SIZE_MAX)
        store_blob_insert_tallied(s, sh, mix, cap_retain(c), tally);
}

int cap_store_checkpoint(cap_store_t *s, const cap_target_t *t, cap_hash_t *out, cap_err_t *err)
{
    if (!s || !t)
        return store_fail(err, CAP_EINVAL, "NULL argument");
    if (t->kind != CAP_TARGET_HASH)
        return store_settle_run(s, t, out, true, err);
    /* Already a hash: nothing to settle; it names a closed graph or not. */
    int rc = cap_store_walk(s, &t->hash, 1, (const cap_walk_options_t *)0, (cap_walk_fn)0,
                            (void *)0, (cap_walk_result_t *)0, err);
    if (rc == CAP_OK && out)
        *out = t->hash;
    return rc;
}
