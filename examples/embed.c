/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Embedding capstore: the life of a small cap graph in a host store.
 *
 *   1. create a store (libc allocator, pthread locks, random table seed)
 *   2. build a CNode and publish it (blob tier, addressed by its hash)
 *   3. promote the blob to an instance (a mutable entry, no copy yet)
 *   4. make_mut: copy-on-write, set a slot to a handle of another instance,
 *      commit with set_instance
 *   5. settle: nested handles become hashes bottom-up, the graph moves to
 *      the blob tier, and we get the new root hash
 *   6. release everything
 *
 * Build (see examples/README.md):
 *   cc -std=c11 embed.c $(pkg-config --cflags --libs capstore) -o embed */
#include <stdio.h>
#include <string.h>

#include <capstore/capstore.h>
#include <capstore/host.h>

static void print_hash(const char *what, const cap_hash_t *h)
{
    printf("%-16s ", what);
    for (int i = 0; i < 32; i++) printf("%02x", h->bytes[i]);
    printf("\n");
}

/* Report a failed call (with the error's detail when there is one). */
static int failed(const char *call, int rc, const cap_err_t *err)
{
    char msg[256];
    if (err && err->code) {
        cap_err_format(err, msg, sizeof msg);
    } else {
        snprintf(msg, sizeof msg, "%s", cap_strerror(rc));
    }
    fprintf(stderr, "embed: %s failed: %s\n", call, msg);
    return 1;
}

int main(void)
{
    const cap_alloc_t *a = cap_alloc_libc();
    cap_store_t *store = NULL;
    cap_t *type = NULL, *cnode = NULL, *data = NULL, *work = NULL, *settled_cap = NULL;
    cap_ref_t *root = NULL, *child = NULL;
    cap_hash_t type_hash, cnode_hash, settled;
    cap_err_t err;
    int rc, status = 1;
    memset(&err, 0, sizeof err);

    printf("capstore %s\n", CAPSTORE_VERSION);
    if ((rc = cap_store_new_host(&store)) != CAP_OK) return failed("cap_store_new_host", rc, NULL);

    /* A Type cap, published: the store keeps a reference and freezes it. */
    cap_hash_t chain;
    memset(&chain, 0x11, sizeof chain);
    if ((rc = cap_type_new(&type, a, &chain)) != CAP_OK) {
        failed("cap_type_new", rc, NULL);
        goto out;
    }
    if ((rc = cap_store_put_cap(store, type, &type_hash)) != CAP_OK) {
        failed("cap_store_put_cap(type)", rc, NULL);
        goto out;
    }
    print_hash("type", &type_hash);

    /* A CNode of 16 slots whose slot 0 names the Type by hash; publish it. */
    if ((rc = cap_cnode_new(&cnode, a, 4)) != CAP_OK) {
        failed("cap_cnode_new", rc, NULL);
        goto out;
    }
    cap_target_t t = cap_target_of_hash(&type_hash);
    if ((rc = cap_cnode_set(cnode, 0, &t)) != CAP_OK) {
        failed("cap_cnode_set", rc, NULL);
        goto out;
    }
    if ((rc = cap_store_put_cap(store, cnode, &cnode_hash)) != CAP_OK) {
        failed("cap_store_put_cap(cnode)", rc, NULL);
        goto out;
    }
    print_hash("cnode (blob)", &cnode_hash);

    /* Promote the blob: a new instance entry sharing the blob's cap. */
    if ((rc = cap_store_promote_blob_to_instance(store, &cnode_hash, &root)) != CAP_OK) {
        failed("cap_store_promote_blob_to_instance", rc, NULL);
        goto out;
    }
    printf("%-16s %llu\n", "promoted to id", (unsigned long long)cap_ref_id(root));

    /* Another instance: a Data cap holding a few bytes. */
    static const char hello[] = "hello, capstore";
    if ((rc = cap_data_new_inline(&data, a, CAP_PAGE_SIZE_DEFAULT, hello, sizeof hello - 1)) != CAP_OK) {
        failed("cap_data_new_inline", rc, NULL);
        goto out;
    }
    if ((rc = cap_store_put_instance(store, data, &child)) != CAP_OK) {
        failed("cap_store_put_instance", rc, NULL);
        goto out;
    }

    /* Copy-on-write: the blob tier shares the cap, so make_mut copies it. */
    if ((rc = cap_store_get_instance(store, root, &work)) != CAP_OK) {
        failed("cap_store_get_instance", rc, NULL);
        goto out;
    }
    if ((rc = cap_make_mut(&work)) != CAP_OK) {
        failed("cap_make_mut", rc, NULL);
        goto out;
    }
    t = cap_target_of_ref(child); /* the cnode retains the handle */
    if ((rc = cap_cnode_set(work, 1, &t)) != CAP_OK) {
        failed("cap_cnode_set(ref)", rc, NULL);
        goto out;
    }
    if ((rc = cap_store_set_instance(store, root, work, &err)) != CAP_OK) {
        failed("cap_store_set_instance", rc, &err);
        goto out;
    }
    printf("%-16s blobs %zu, instances %zu\n", "before settle", cap_store_blob_count(store),
           cap_store_instance_count(store));

    /* Settle the root: the Data entry is hashed and published first, slot 1
     * becomes its hash, then the cnode is hashed and published. */
    t = cap_target_of_ref(root);
    if ((rc = cap_store_settle(store, &t, &settled, &err)) != CAP_OK) {
        failed("cap_store_settle", rc, &err);
        goto out;
    }
    print_hash("cnode (settled)", &settled);
    printf("%-16s blobs %zu, instances %zu\n", "after settle", cap_store_blob_count(store),
           cap_store_instance_count(store));

    /* The settled graph is content now: look it up by hash. */
    if ((rc = cap_store_get_blob(store, &settled, &settled_cap)) != CAP_OK) {
        failed("cap_store_get_blob", rc, NULL);
        goto out;
    }
    cap_target_t slot1;
    if ((rc = cap_cnode_get(settled_cap, 1, &slot1)) != CAP_OK || slot1.kind != CAP_TARGET_HASH) {
        failed("cap_cnode_get", rc ? rc : CAP_EUNSETTLED, NULL);
        goto out;
    }
    print_hash("slot 1 (data)", &slot1.hash);
    status = 0;

out:
    /* Every reference we hold is ours to release; NULL is a no-op. */
    cap_release(settled_cap);
    cap_release(work);
    cap_release(data);
    cap_release(cnode);
    cap_release(type);
    cap_ref_release(child);
    cap_ref_release(root);
    cap_store_free(store);
    return status;
}
