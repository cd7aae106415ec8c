/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Interleavings, made deterministic: another caller's operations run at a
 * chosen point inside an operation, from the callback of
 * cap_store_edit_instance or from the allocator hook (the store allocates a
 * settle's private copies with no lock held). Each case is one that the
 * thread tests can only hit by chance: an edit whose entry changed or left
 * the instance tier meanwhile, and a settle whose graph changed, whose cap
 * a reader took, or whose blob-to-be was published under another hash
 * between its snapshot and its commit. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "capstore/host.h"
#include "capstore/store.h"
#include "check.h"
#include "test_alloc.h"
#include "test_caps.h"

static test_alloc_t ta;

/* The pthread hooks, counting the locks this (only) thread holds, so that
 * the allocator hook acts only where the store holds none. */
static cap_lock_hooks_t counted;
static int locks_held;

static void counted_lock(void *ctx, void *lock)
{
    cap_lock_pthread()->lock(ctx, lock);
    locks_held++;
}

static void counted_unlock(void *ctx, void *lock)
{
    locks_held--;
    cap_lock_pthread()->unlock(ctx, lock);
}

static cap_store_t *new_store(void)
{
    counted = *cap_lock_pthread();
    counted.lock = counted_lock;
    counted.unlock = counted_unlock;
    cap_store_options_t o;
    memset(&o, 0, sizeof o);
    o.alloc = &ta.alloc;
    o.locks = &counted;
    o.hash_seed[0] = 0x0123456789abcdefull;
    o.hash_seed[1] = 0xfedcba9876543210ull;
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_OK);
    return s;
}

static cap_t *cnode(void)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, &ta.alloc, 2), CAP_OK);
    return c;
}

static cap_t *leaf(unsigned v)
{
    cap_t *c = cnode();
    test_set_hash_of(c, 0, v);
    return c;
}

/* A new instance holding c; the caller's reference to c passes to the store. */
static cap_ref_t *put_inst(cap_store_t *s, cap_t *c)
{
    cap_ref_t *r = NULL;
    CHECK_EQ_INT(cap_store_put_instance(s, c, &r), CAP_OK);
    cap_release(c);
    return r;
}

static cap_t *get_inst(cap_store_t *s, cap_ref_t *r)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_store_get_instance(s, r, &c), CAP_OK);
    return c;
}

static void settle_ref(cap_store_t *s, cap_ref_t *r, cap_hash_t *out)
{
    cap_target_t t = cap_target_of_ref(r);
    CHECK_EQ_INT(cap_store_settle(s, &t, out, NULL), CAP_OK);
}

static void end_test(cap_store_t *s)
{
    ta.on_allocate = NULL;
    cap_store_free(s);
    CHECK(test_alloc_clean(&ta));
}

/* Edits ---------------------------------------------------------------------------------- */

typedef struct edit_race {
    cap_store_t *s;
    cap_ref_t *r;
    int runs;
    cap_t *replacement; /* set_instance'd during the first run, if not NULL */
    int settle_first;   /* settle the entry away during the first run */
} edit_race_t;

static int edit_racing(cap_t *c, void *arg)
{
    edit_race_t *w = arg;
    if (++w->runs == 1) {
        if (w->replacement)
            CHECK_EQ_INT(cap_store_set_instance(w->s, w->r, w->replacement, NULL), CAP_OK);
        if (w->settle_first) {
            cap_hash_t h;
            settle_ref(w->s, w->r, &h);
        }
    }
    test_set_hash_of(c, 3, 77);
    return CAP_OK;
}

/* A writer that commits while an edit works on its copy: the edit is redone
 * on the writer's cap, so neither change is lost. */
static void test_edit_redone_after_a_set(void)
{
    cap_store_t *s = new_store();
    cap_ref_t *r = put_inst(s, leaf(1));
    cap_t *other = leaf(2);
    test_set_hash_of(other, 1, 22);
    edit_race_t w = {s, r, 0, other, 0};
    CHECK_EQ_INT(cap_store_edit_instance(s, r, edit_racing, &w, NULL), CAP_OK);
    CHECK_EQ_INT(w.runs, 2);
    cap_t *now = get_inst(s, r);
    cap_t *want = leaf(2);
    test_set_hash_of(want, 1, 22);
    test_set_hash_of(want, 3, 77);
    CHECK(cap_equal(now, want));
    /* The writer's cap was shared (we hold it): it was copied, not edited. */
    CHECK(now != other);
    cap_target_t t;
    CHECK_EQ_INT(cap_cnode_get(other, 3, &t), CAP_OK);
    CHECK(t.kind == CAP_TARGET_NONE);
    cap_release(want);
    cap_release(now);
    cap_release(other);
    cap_ref_release(r);
    end_test(s);
}

/* An entry that settles into the blob tier while an edit works on its copy:
 * the edit reports the instance missing, and the blob is what was settled. */
static void test_edit_of_an_entry_settled_meanwhile(void)
{
    cap_store_t *s = new_store();
    cap_t *c = leaf(1);
    cap_hash_t h = test_hash_cap(c);
    cap_ref_t *r = put_inst(s, c);
    edit_race_t w = {s, r, 0, NULL, 1};
    cap_err_t err;
    memset(&err, 0, sizeof err);
    CHECK_EQ_INT(cap_store_edit_instance(s, r, edit_racing, &w, &err), CAP_EINSTANCEMISSING);
    CHECK_EQ_INT(err.code, CAP_EINSTANCEMISSING);
    CHECK_EQ_INT(err.id, cap_ref_id(r));
    CHECK_EQ_INT(w.runs, 1);
    CHECK_EQ_INT(cap_store_instance_count(s), 0);
    CHECK_EQ_INT(cap_store_blob_count(s), 1);
    cap_t *b = NULL;
    CHECK_EQ_INT(cap_store_get_blob(s, &h, &b), CAP_OK);
    CHECK_MEM(test_hash_cap(b).bytes, h.bytes, 32);
    cap_release(b);
    cap_t *none = NULL;
    CHECK_EQ_INT(cap_store_get_instance(s, r, &none), CAP_EINSTANCEMISSING);
    cap_ref_release(r);
    end_test(s);
}

/* Settles ---------------------------------------------------------------------------------- */

/* R (slots 0, 1) -> X, Y; X (slot 0) -> L1; Y (slot 0) -> L2; L1, L2 leaves.
 * The snapshot's nodes come in depth-first order: R, X, L1, Y, L2. */
typedef struct graph {
    cap_ref_t *root, *x, *y, *l1, *l2;
} graph_t;

static cap_t *parent_of(cap_ref_t *a, cap_ref_t *b)
{
    cap_t *c = cnode();
    test_set_ref(c, 0, a);
    if (b)
        test_set_ref(c, 1, b);
    return c;
}

static graph_t build(cap_store_t *s, unsigned l1)
{
    graph_t g;
    g.l1 = put_inst(s, leaf(l1));
    g.l2 = put_inst(s, leaf(2));
    g.x = put_inst(s, parent_of(g.l1, NULL));
    g.y = put_inst(s, parent_of(g.l2, NULL));
    g.root = put_inst(s, parent_of(g.x, g.y));
    return g;
}

static void drop_graph(graph_t *g)
{
    cap_ref_release(g->root);
    cap_ref_release(g->x);
    cap_ref_release(g->y);
    cap_ref_release(g->l1);
    cap_ref_release(g->l2);
}

/* The hash the graph settles to with leaf L1 = leaf(l1), from a store of its
 * own where nothing interferes (called before the test makes its store: it
 * checks that the allocator is clean at its end). */
static cap_hash_t expected_root(unsigned l1)
{
    cap_store_t *s = new_store();
    graph_t g = build(s, l1);
    cap_hash_t h;
    settle_ref(s, g.root, &h);
    drop_graph(&g);
    end_test(s);
    return h;
}

/* The size of the block a settle's private copy of X or Y takes. */
static size_t copy_size;

static void record_size(void *arg, size_t n)
{
    (void)arg;
    copy_size = n;
}

static size_t measure_copy_size(void)
{
    cap_store_t *s = new_store();
    cap_ref_t *l = put_inst(s, leaf(1));
    cap_t *x = parent_of(l, NULL), *copy = NULL;
    ta.on_allocate = record_size;
    CHECK_EQ_INT(cap_copy(x, &copy), CAP_OK);
    ta.on_allocate = NULL;
    cap_release(copy);
    cap_release(x);
    cap_ref_release(l);
    end_test(s);
    return copy_size;
}

typedef enum { MID_CHANGE_L1, MID_TAKE_X, MID_MISKEY_L1 } mid_t;

typedef struct settle_race {
    cap_store_t *s;
    graph_t *g;
    mid_t what;
    int fired;
    cap_t *taken; /* MID_TAKE_X, MID_MISKEY_L1: the cap the other caller took */
    cap_hash_t wrong;
} settle_race_t;

/* The other caller, at the settle's first private copy (of Y, which the test
 * holds; the first block of a copy's size allocated with no store lock
 * held): by then every node before Y (R, X, L1) was found fit to be
 * rewritten in place or published as it is. */
static void mid_settle(void *arg, size_t n)
{
    settle_race_t *w = arg;
    if (w->fired || n != copy_size || locks_held)
        return;
    w->fired = 1;
    ta.on_allocate = NULL;
    switch (w->what) {
    case MID_CHANGE_L1: {
        cap_t *c = leaf(5);
        CHECK_EQ_INT(cap_store_set_instance(w->s, w->g->l1, c, NULL), CAP_OK);
        cap_release(c);
        break;
    }
    case MID_TAKE_X:
        w->taken = get_inst(w->s, w->g->x);
        break;
    case MID_MISKEY_L1:
        w->taken = get_inst(w->s, w->g->l1);
        CHECK_EQ_INT(cap_store_put_cap_with_hash(w->s, &w->wrong, w->taken), CAP_OK);
        break;
    }
}

/* A fresh store and graph (L1 = leaf(1)) settled with w->what happening at
 * the first private copy; the hash must be the one the graph settles to with
 * L1 = leaf(l1_after). Y's cap, which the test holds (so that Y needs a
 * private copy), never changes. The caller checks the rest, then drop_graph
 * and end_test. */
static void race(settle_race_t *w, graph_t *g, unsigned l1_after)
{
    cap_hash_t want = expected_root(l1_after);
    w->s = new_store();
    *g = build(w->s, 1);
    w->g = g;
    cap_t *held_y = get_inst(w->s, g->y);
    ta.on_allocate_arg = w;
    ta.on_allocate = mid_settle;
    cap_hash_t h;
    settle_ref(w->s, g->root, &h);
    ta.on_allocate = NULL;
    CHECK(w->fired);
    CHECK_MEM(h.bytes, want.bytes, 32);
    cap_target_t t;
    CHECK_EQ_INT(cap_cnode_get(held_y, 0, &t), CAP_OK);
    CHECK(t.kind == CAP_TARGET_REF);
    cap_release(held_y);
}

/* A leaf replaced between the snapshot and the commit: the settle starts
 * again and gives the hash of the graph as it is now. */
static void test_settle_restarts_after_a_change(void)
{
    settle_race_t w = {.what = MID_CHANGE_L1};
    graph_t g;
    race(&w, &g, 5);
    CHECK_EQ_INT(cap_store_instance_count(w.s), 0);
    CHECK_EQ_INT(cap_store_blob_count(w.s), 5);
    drop_graph(&g);
    end_test(w.s);
}

/* A reader takes X's cap after the settle found it fit to be rewritten in
 * place: the commit sees that and copies it instead, so the reader's cap
 * never changes under it. */
static void test_settle_copies_a_cap_taken_meanwhile(void)
{
    settle_race_t w = {.what = MID_TAKE_X};
    graph_t g;
    race(&w, &g, 1);
    CHECK(w.taken != NULL);
    if (w.taken) {
        cap_target_t t;
        CHECK_EQ_INT(cap_cnode_get(w.taken, 0, &t), CAP_OK);
        CHECK(t.kind == CAP_TARGET_REF);
        CHECK(!cap_is_frozen(w.taken));
        CHECK_EQ_INT(cap_refcount(w.taken), 1); /* the store let go of it */
        cap_release(w.taken);
    }
    CHECK_EQ_INT(cap_store_blob_count(w.s), 5);
    drop_graph(&g);
    end_test(w.s);
}

/* L1's cap published under a wrong hash (an unverified claim, possible only
 * where claims are not checked) after the settle found it fit to be
 * published as it is: the settle publishes a copy under the true hash. */
static void test_settle_copies_a_cap_keyed_meanwhile(void)
{
#ifdef NDEBUG
    cap_t *l1 = leaf(1);
    cap_hash_t l1h = test_hash_cap(l1);
    cap_release(l1);
    settle_race_t w = {.what = MID_MISKEY_L1, .wrong = test_hash_of(4321)};
    graph_t g;
    race(&w, &g, 1);
    CHECK_EQ_INT(cap_store_blob_count(w.s), 6);
    cap_t *under_wrong = NULL, *under_true = NULL;
    CHECK_EQ_INT(cap_store_get_blob(w.s, &w.wrong, &under_wrong), CAP_OK);
    CHECK_EQ_INT(cap_store_get_blob(w.s, &l1h, &under_true), CAP_OK);
    CHECK(under_wrong == w.taken);
    CHECK(under_true != w.taken);
    CHECK(under_true && cap_equal(under_true, w.taken));
    cap_release(under_wrong);
    cap_release(under_true);
    cap_release(w.taken);
    drop_graph(&g);
    end_test(w.s);
#endif
}

int main(void)
{
    test_alloc_init(&ta);
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"edit_redone_after_a_set", test_edit_redone_after_a_set},
        {"edit_of_an_entry_settled_meanwhile", test_edit_of_an_entry_settled_meanwhile},
        {"settle_restarts_after_a_change", test_settle_restarts_after_a_change},
        {"settle_copies_a_cap_taken_meanwhile", test_settle_copies_a_cap_taken_meanwhile},
        {"settle_copies_a_cap_keyed_meanwhile", test_settle_copies_a_cap_keyed_meanwhile},
    };
    if (measure_copy_size() == 0) {
        fprintf(stderr, "cap_copy allocated nothing\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int before = check_failures;
        tests[i].fn();
        if (check_failures != before)
            fprintf(stderr, "  in %s\n", tests[i].name);
    }
    return check_done("test_store_interleave");
}
