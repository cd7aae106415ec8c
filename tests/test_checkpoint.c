/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* cap_store_checkpoint (store.h):
 *   - a graph with Instances, checkpointed, survives flush, close and a
 *     fresh store on the same backend: a walk finds every cap; the same
 *     graph merely settled does not (the walk reports the two Instance
 *     snapshots missing, named by the kernel's slots);
 *   - the instances stay and share their cap with the snapshot blob,
 *     frozen: a later edit copies away, the blob is unchanged and still
 *     hashes to its key;
 *   - a Hash child that exists nowhere (directly, or below a blob in memory
 *     or in a backend) fails with CAP_EBLOBMISSING naming it, and leaves the
 *     store exactly as it was; children found only in a backend are fine;
 *   - a Hash target: closed or not;
 *   - every allocation failing in turn: CAP_ENOMEM, the store unchanged,
 *     nothing leaked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_alloc.h"
#include "test_caps.h"

static test_alloc_t ta;
#define A (&ta.alloc)

static cap_store_t *new_store(void)
{
    cap_store_options_t o = cap_store_options_host();
    o.alloc = A;
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_OK);
    return s;
}

static cap_backend_t *mem_backend(void)
{
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(NULL, &b), CAP_OK);
    return b;
}

/* The demo's shape: kernel cnode -> two processes (Instance caps, with an
 * image) -> their cspaces (cnodes) -> a shared ipc cnode -> a data blob. */
typedef struct graph {
    cap_ref_t *kernel, *proc[2], *cs[2], *ipc;
    cap_hash_t image, data;
} graph_t;

static cap_ref_t *put_inst(cap_store_t *s, cap_t *c)
{
    cap_ref_t *r = NULL;
    CHECK_EQ_INT(cap_store_put_instance(s, c, &r), CAP_OK);
    cap_release(c);
    return r;
}

static graph_t build(cap_store_t *s, const cap_hash_t *extra)
{
    graph_t g;
    memset(&g, 0, sizeof g);
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_data_new_inline(&c, A, 64, "checkpoint", 10), CAP_OK);
    CHECK_EQ_INT(cap_store_put_cap(s, c, &g.data), CAP_OK);
    cap_release(c);
    cap_slot_entry_t pinned = {0, g.data};
    cap_image_desc_t d;
    memset(&d, 0, sizeof d);
    d.pinned = &pinned;
    d.pinned_len = 1;
    CHECK_EQ_INT(cap_image_new(&c, A, &d, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_put_cap(s, c, &g.image), CAP_OK);
    cap_release(c);
    CHECK_EQ_INT(cap_cnode_new(&c, A, 2), CAP_OK);
    test_set_hash(c, 0, &g.data);
    if (extra) test_set_hash(c, 3, extra);
    g.ipc = put_inst(s, c);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(cap_cnode_new(&c, A, 4), CAP_OK);
        test_set_ref(c, 5, g.ipc);
        test_set_hash(c, 0, &g.image);
        if (i) test_set_hash(c, 1, &g.data); /* the two cspaces differ */
        g.cs[i] = put_inst(s, c);
        cap_target_t root = cap_target_of_ref(g.cs[i]);
        CHECK_EQ_INT(cap_instance_new(&c, A, &root), CAP_OK);
        CHECK_EQ_INT(cap_instance_set_image_hash(c, &g.image), CAP_OK);
        CHECK_EQ_INT(cap_instance_set_pc(c, 100 + (uint64_t)i), CAP_OK);
        g.proc[i] = put_inst(s, c);
    }
    CHECK_EQ_INT(cap_cnode_new(&c, A, 3), CAP_OK);
    test_set_ref(c, 0, g.proc[0]);
    test_set_ref(c, 1, g.proc[1]);
    test_set_hash(c, 2, &g.image);
    g.kernel = put_inst(s, c);
    return g;
}

static void drop(graph_t *g)
{
    cap_ref_release(g->kernel);
    cap_ref_release(g->ipc);
    for (int i = 0; i < 2; i++) {
        cap_ref_release(g->proc[i]);
        cap_ref_release(g->cs[i]);
    }
}

static cap_hash_t snapshot_of(cap_store_t *s, cap_ref_t *r)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_store_get_instance(s, r, &c), CAP_OK);
    cap_hash_t h = test_hash_cap(c);
    cap_release(c);
    return h;
}

/* Settle or checkpoint the demo graph, sweep, flush, close; then walk it
 * from a fresh store on the same backend. Returns the walk's code. */
static int round_trip(bool checkpoint, cap_walk_result_t *r, cap_hash_t snaps[2], cap_hash_t *root)
{
    cap_backend_t *be = mem_backend();
    cap_store_t *s = new_store();
    CHECK_EQ_INT(cap_store_add_backend(s, be, NULL), CAP_OK);
    graph_t g = build(s, NULL);
    cap_target_t t = cap_target_of_ref(g.kernel);
    cap_err_t e;
    size_t b0 = cap_store_blob_count(s);
    if (checkpoint)
        CHECK_EQ_INT(cap_store_checkpoint(s, &t, root, &e), CAP_OK);
    else
        CHECK_EQ_INT(cap_store_settle(s, &t, root, &e), CAP_OK);
    /* kernel, cs x2, ipc become blobs; the processes stay instances (and,
     * checkpointed, are blobs too). */
    CHECK_EQ_INT(cap_store_blob_count(s), b0 + 4 + (checkpoint ? 2 : 0));
    CHECK_EQ_INT(cap_store_instance_count(s), 2);
    for (int i = 0; i < 2; i++) {
        snaps[i] = snapshot_of(s, g.proc[i]);
        CHECK(cap_store_contains_blob(s, &snaps[i]) == checkpoint);
    }
    drop(&g);
    size_t removed = 0, written = 0;
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(removed, 2);
    CHECK_EQ_INT(cap_store_flush(s, &written, &e), CAP_OK);
    cap_store_free(s);
    s = new_store();
    CHECK_EQ_INT(cap_store_add_backend(s, be, NULL), CAP_OK);
    int rc = cap_store_walk(s, root, 1, NULL, NULL, NULL, r, &e);
    cap_walk_result_t rb;
    CHECK_EQ_INT(cap_backend_walk(be, root, 1, NULL, A, NULL, NULL, &rb, &e), rc);
    CHECK_EQ_INT(rb.caps, r->caps);
    cap_store_free(s);
    cap_backend_free(be);
    CHECK(test_alloc_clean(&ta));
    return rc;
}

static void test_closed_after_reopen(void)
{
    cap_walk_result_t r;
    cap_hash_t snaps[2], root, snaps2[2], root2;
    CHECK_EQ_INT(round_trip(true, &r, snaps, &root), CAP_OK);
    /* kernel, 2 processes, 2 cspaces, ipc, image, data */
    CHECK_EQ_INT(r.caps, 8);
    CHECK_EQ_INT(r.missing, 0);
    /* Merely settled: the same root, and the walk stops at the processes. */
    CHECK_EQ_INT(round_trip(false, &r, snaps2, &root2), CAP_EBLOBMISSING);
    CHECK_MEM(&root, &root2, 32);
    CHECK_EQ_INT(r.caps, 3); /* the kernel, the image it names, the data the image pins */
    CHECK_EQ_INT(r.missing, 2);
    CHECK_EQ_INT(r.nproblems, 2);
    for (int i = 0; i < 2; i++) {
        CHECK_MEM(&snaps2[i], &snaps[i], 32);
        CHECK_MEM(&r.problems[i].hash, &snaps[i], 32);
        CHECK_EQ_INT(r.problems[i].depth, 1);
        CHECK_MEM(&r.problems[i].path[0].hash, &root, 32);
        CHECK(r.problems[i].path[0].field == CAP_CHILD_SLOT && r.problems[i].path[0].index == (uint32_t)i);
    }
}

static int set_pc(cap_t *c, void *arg)
{
    return cap_instance_set_pc(c, *(const uint64_t *)arg);
}

static void test_copy_on_write(void)
{
    cap_store_t *s = new_store();
    graph_t g = build(s, NULL);
    cap_target_t t = cap_target_of_ref(g.kernel);
    cap_hash_t root;
    cap_err_t e;
    CHECK_EQ_INT(cap_store_checkpoint(s, &t, &root, &e), CAP_OK);
    cap_hash_t snap = snapshot_of(s, g.proc[0]);
    cap_t *blob = NULL, *live = NULL;
    CHECK_EQ_INT(cap_store_get_blob(s, &snap, &blob), CAP_OK);
    CHECK_EQ_INT(cap_store_get_instance(s, g.proc[0], &live), CAP_OK);
    CHECK(blob == live); /* shared, not copied */
    CHECK(cap_is_frozen(live));
    CHECK(cap_kind(blob) == CAP_KIND_INSTANCE);
    CHECK(!cap_has_refs(blob));
    cap_release(live);
    /* The instance runs on: an edit copies away from the snapshot. */
    uint64_t pc = 4242;
    CHECK_EQ_INT(cap_store_edit_instance(s, g.proc[0], set_pc, &pc, &e), CAP_OK);
    CHECK_EQ_INT(cap_store_get_instance(s, g.proc[0], &live), CAP_OK);
    CHECK(live != blob);
    CHECK_EQ_INT(cap_instance_pc(live), 4242);
    CHECK_EQ_INT(cap_instance_pc(blob), 100);
    cap_hash_t again = test_hash_cap(blob);
    CHECK_MEM(&again, &snap, 32);
    cap_release(live);
    /* The seed's way: get_instance + make_mut copies too (the cap is frozen). */
    CHECK_EQ_INT(cap_store_get_instance(s, g.proc[1], &live), CAP_OK);
    cap_t *was = live;
    CHECK_EQ_INT(cap_make_mut(&live), CAP_OK);
    CHECK(live != was);
    CHECK_EQ_INT(cap_instance_set_pc(live, 7), CAP_OK);
    CHECK_EQ_INT(cap_store_set_instance(s, g.proc[1], live, &e), CAP_OK);
    cap_release(live);
    /* The kernel's cnode left the instance tier (settled into a blob); a
     * process checkpointed again publishes its new snapshot; the old stays. */
    CHECK_EQ_INT(cap_store_checkpoint(s, &t, &root, &e), CAP_EINSTANCEMISSING);
    cap_target_t p0 = cap_target_of_ref(g.proc[0]);
    cap_hash_t snap_new;
    CHECK_EQ_INT(cap_store_checkpoint(s, &p0, &snap_new, &e), CAP_OK);
    CHECK(memcmp(&snap, &snap_new, 32) != 0);
    CHECK(cap_store_contains_blob(s, &snap));
    CHECK(cap_store_contains_blob(s, &snap_new));
    CHECK_EQ_INT(cap_store_walk(s, &snap_new, 1, NULL, NULL, NULL, NULL, &e), CAP_OK);
    CHECK_EQ_INT(cap_store_walk(s, &root, 1, NULL, NULL, NULL, NULL, &e), CAP_OK);
    cap_release(blob);
    /* An Instance as the target: its own snapshot is the root. */
    cap_target_t p = cap_target_of_ref(g.proc[1]);
    cap_hash_t hp;
    CHECK_EQ_INT(cap_store_checkpoint(s, &p, &hp, &e), CAP_OK);
    CHECK(cap_store_contains_blob(s, &hp));
    cap_hash_t expect = snapshot_of(s, g.proc[1]);
    CHECK_MEM(&hp, &expect, 32);
    drop(&g);
    cap_store_free(s);
    CHECK(test_alloc_clean(&ta));
}

/* The store's state, to compare before and after a failed checkpoint. */
typedef struct state {
    size_t blobs, instances;
    cap_t *caps[6];
    bool frozen[6];
} state_t;

static state_t state_of(cap_store_t *s, graph_t *g)
{
    state_t st;
    memset(&st, 0, sizeof st);
    st.blobs = cap_store_blob_count(s);
    st.instances = cap_store_instance_count(s);
    cap_ref_t *refs[6] = {g->kernel, g->proc[0], g->proc[1], g->cs[0], g->cs[1], g->ipc};
    for (int i = 0; i < 6; i++) {
        CHECK_EQ_INT(cap_store_get_instance(s, refs[i], &st.caps[i]), CAP_OK);
        st.frozen[i] = st.caps[i] && cap_is_frozen(st.caps[i]);
    }
    return st;
}

static void same_state(cap_store_t *s, graph_t *g, state_t *before)
{
    state_t now = state_of(s, g);
    CHECK_EQ_INT(now.blobs, before->blobs);
    CHECK_EQ_INT(now.instances, before->instances);
    for (int i = 0; i < 6; i++) {
        CHECK(now.caps[i] == before->caps[i]); /* the same cap object: not rewritten */
        CHECK_EQ_INT(now.frozen[i], before->frozen[i]);
        CHECK(cap_has_refs(now.caps[i]) == (i == 0 || i == 1 || i == 2 || i == 3 || i == 4));
        cap_release(now.caps[i]);
    }
}

static void release_state(state_t *st)
{
    for (int i = 0; i < 6; i++) cap_release(st->caps[i]);
}

static void test_missing_child(void)
{
    cap_backend_t *be = mem_backend();
    /* Nowhere at all. */
    cap_hash_t nowhere = test_hash_of(404);
    cap_store_t *s = new_store();
    CHECK_EQ_INT(cap_store_add_backend(s, be, NULL), CAP_OK);
    graph_t g = build(s, &nowhere);
    state_t before = state_of(s, &g);
    cap_target_t t = cap_target_of_ref(g.kernel);
    cap_hash_t root;
    cap_err_t e;
    memset(&root, 0xab, sizeof root);
    CHECK_EQ_INT(cap_store_checkpoint(s, &t, &root, &e), CAP_EBLOBMISSING);
    CHECK_EQ_INT(e.code, CAP_EBLOBMISSING);
    CHECK(e.has_hash);
    CHECK_MEM(&e.hash, &nowhere, 32);
    CHECK(strstr(e.detail, "slot 3 of ") != NULL); /* the ipc cnode's slot */
    char msg[256];
    cap_err_format(&e, msg, sizeof msg);
    printf("checkpoint: %s\n", msg);
    same_state(s, &g, &before);
    /* Settle does not look: it succeeds (and is not closed). */
    release_state(&before);
    drop(&g);
    cap_store_free(s);

    /* Below a blob in memory: a cnode blob naming the missing hash. */
    s = new_store();
    CHECK_EQ_INT(cap_store_add_backend(s, be, NULL), CAP_OK);
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, A, 1), CAP_OK);
    test_set_hash(c, 1, &nowhere);
    cap_hash_t holder;
    CHECK_EQ_INT(cap_store_put_cap(s, c, &holder), CAP_OK);
    cap_release(c);
    g = build(s, &holder);
    before = state_of(s, &g);
    t = cap_target_of_ref(g.kernel);
    CHECK_EQ_INT(cap_store_checkpoint(s, &t, &root, &e), CAP_EBLOBMISSING);
    CHECK_MEM(&e.hash, &nowhere, 32);
    same_state(s, &g, &before);
    release_state(&before);
    drop(&g);
    cap_store_free(s);

    /* In a backend only, its own child too: found, nothing published. */
    cap_t *leafc = NULL;
    CHECK_EQ_INT(cap_type_new(&leafc, A, &nowhere), CAP_OK);
    cap_hash_t lh;
    CHECK_EQ_INT(cap_persist_put(be, leafc, &lh, NULL), CAP_OK);
    cap_release(leafc);
    CHECK_EQ_INT(cap_cnode_new(&c, A, 1), CAP_OK);
    test_set_hash(c, 0, &lh);
    cap_hash_t mid;
    CHECK_EQ_INT(cap_persist_put(be, c, &mid, NULL), CAP_OK);
    cap_release(c);
    s = new_store();
    CHECK_EQ_INT(cap_store_add_backend(s, be, NULL), CAP_OK);
    g = build(s, &mid);
    t = cap_target_of_ref(g.kernel);
    CHECK_EQ_INT(cap_store_checkpoint(s, &t, &root, &e), CAP_OK);
    CHECK(!cap_store_contains_blob(s, &mid));
    CHECK_EQ_INT(cap_store_walk(s, &root, 1, NULL, NULL, NULL, NULL, &e), CAP_OK);
    /* A Hash target: closed, or not. */
    cap_target_t ht = cap_target_of_hash(&root);
    cap_hash_t out;
    CHECK_EQ_INT(cap_store_checkpoint(s, &ht, &out, &e), CAP_OK);
    CHECK_MEM(&out, &root, 32);
    ht = cap_target_of_hash(&nowhere);
    CHECK_EQ_INT(cap_store_checkpoint(s, &ht, &out, &e), CAP_EBLOBMISSING);
    CHECK_MEM(&e.hash, &nowhere, 32);
    cap_target_t none = {CAP_TARGET_NONE, {{0}}, NULL};
    CHECK_EQ_INT(cap_store_checkpoint(s, &none, &out, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_store_checkpoint(NULL, &ht, &out, &e), CAP_EINVAL);
    drop(&g);
    cap_store_free(s);
    cap_backend_free(be);
    CHECK(test_alloc_clean(&ta));
}

static void test_alloc_failures(void)
{
    int failures = 0;
    cap_hash_t expect;
    memset(&expect, 0, sizeof expect);
    for (long k = 1; k < 100000; k++) {
        cap_store_t *s = new_store();
        graph_t g = build(s, NULL);
        state_t before = state_of(s, &g);
        cap_target_t t = cap_target_of_ref(g.kernel);
        cap_hash_t root;
        cap_err_t e;
        test_alloc_fail_at(&ta, k);
        int rc = cap_store_checkpoint(s, &t, &root, &e);
        test_alloc_fail_at(&ta, 0);
        if (rc == CAP_OK) {
            CHECK_EQ_INT(cap_store_walk(s, &root, 1, NULL, NULL, NULL, NULL, &e), CAP_OK);
            release_state(&before);
        } else {
            CHECK_EQ_INT(rc, CAP_ENOMEM);
            same_state(s, &g, &before);
            release_state(&before);
            failures++;
        }
        drop(&g);
        cap_store_free(s);
        CHECK(test_alloc_clean(&ta));
        if (rc == CAP_OK) break;
    }
    CHECK(failures > 5);
    printf("checkpoint: %d allocation failures, each leaving the store unchanged\n", failures);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_alloc_init(&ta);
    test_closed_after_reopen();
    test_copy_on_write();
    test_missing_child();
    test_alloc_failures();
    return check_done("test_checkpoint");
}
