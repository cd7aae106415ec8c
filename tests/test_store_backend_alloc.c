/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Allocation failure at every allocation of the store's backend paths:
 * fetch (get_blob / fetch_blob / pin on a miss), flush, write-through put and
 * trim. Each operation runs on a fresh world with its n-th allocation
 * failing, n = 1, 2, ... until it succeeds; every failure must be
 * CAP_ENOMEM with the store as it was (counts, bytes, which blobs are in
 * memory, what the backend holds, nothing marked written or pinned), and
 * nothing may leak once the world is freed. The store, the memory backend
 * and the caps all allocate through the failing allocator. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_alloc.h"
#include "test_rng.h"

static test_alloc_t ta;
#define A (&ta.alloc)
static int use_spin;

#define K 4 /* blobs only the backend has */
#define P 3 /* blobs put in the store, not flushed */

typedef struct world {
    cap_store_storage_t storage;
    cap_store_t *s;
    cap_backend_t *mb;
    cap_hash_t in_backend[K];
    cap_hash_t put[P];
    cap_t *spare; /* a cap to put */
    cap_hash_t spare_h;
    cap_ref_t *inst; /* trim world: an entry reaching put[0] */
} world_t;

typedef struct fingerprint {
    size_t blobs, bytes, backend;
    bool in_mem[K + P + 1];
} fingerprint_t;

static cap_t *make_cnode(test_rng_t *r, int n)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, A, 6), CAP_OK);
    for (int i = 0; i < n; i++) {
        cap_hash_t h = test_rng_hash(r);
        cap_target_t t = cap_target_of_hash(&h);
        CHECK_EQ_INT(cap_cnode_set(c, (uint32_t)i, &t), CAP_OK);
    }
    return c;
}

enum { W_FRESH = 1, W_WRITE_THROUGH = 2, W_TRIM = 4 };

static void world_init(world_t *w, unsigned kind)
{
    memset(w, 0, sizeof *w);
    test_rng_t rng = {0x77ull};
    CHECK_EQ_INT(cap_mem_backend_new(A, &w->mb), CAP_OK);
    for (int i = 0; i < K; i++) {
        cap_t *c = make_cnode(&rng, 3 + i);
        CHECK_EQ_INT(cap_persist_put(w->mb, c, &w->in_backend[i], NULL), CAP_OK);
        cap_release(c);
    }
    cap_store_options_t o;
    memset(&o, 0, sizeof o);
    o.alloc = A;
    o.locks = use_spin ? NULL : cap_lock_pthread();
    o.hash_seed[0] = 5;
    o.hash_seed[1] = 55;
    o.flags = (kind & W_WRITE_THROUGH) ? CAP_STORE_WRITE_THROUGH : 0;
    CHECK_EQ_INT(cap_store_init_in_place(&w->storage, &o, &w->s), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(w->s, w->mb, NULL), CAP_OK);
    w->spare = make_cnode(&rng, 7);
    CHECK_EQ_INT(cap_hash(w->spare, &w->spare_h), CAP_OK);
    if (kind & W_FRESH) return;
    for (int i = 0; i < P; i++) {
        cap_t *c = make_cnode(&rng, 2 + i);
        CHECK_EQ_INT(cap_store_put_cap(w->s, c, &w->put[i]), CAP_OK);
        cap_release(c);
    }
    if (kind & W_TRIM) {
        /* Everything flushed and one blob fetched; an entry reaches put[0];
         * the budget is exceeded. */
        CHECK_EQ_INT(cap_store_flush(w->s, NULL, NULL), CAP_OK);
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_store_get_blob(w->s, &w->in_backend[0], &c), CAP_OK);
        cap_release(c);
        cap_t *top = NULL;
        CHECK_EQ_INT(cap_cnode_new(&top, A, 2), CAP_OK);
        cap_target_t t = cap_target_of_hash(&w->put[0]);
        CHECK_EQ_INT(cap_cnode_set(top, 0, &t), CAP_OK);
        CHECK_EQ_INT(cap_store_put_instance(w->s, top, &w->inst), CAP_OK);
        cap_release(top);
        cap_store_set_budget(w->s, 1);
    }
}

static void world_free(world_t *w)
{
    cap_ref_release(w->inst);
    cap_release(w->spare);
    cap_store_free(w->s);
    cap_backend_free(w->mb);
    if (!test_alloc_clean(&ta))
        fprintf(stderr, "leak: %ld blocks, %lld bytes, %ld size errors\n", ta.live_blocks,
                ta.live_bytes, ta.size_errors);
    CHECK(test_alloc_clean(&ta));
}

static const cap_hash_t *known(const world_t *w, int i)
{
    if (i < K) return &w->in_backend[i];
    if (i < K + P) return &w->put[i - K];
    return &w->spare_h;
}

static void take(const world_t *w, fingerprint_t *f)
{
    f->blobs = cap_store_blob_count(w->s);
    f->bytes = cap_store_blob_bytes(w->s);
    f->backend = cap_mem_backend_count(w->mb);
    for (int i = 0; i < K + P + 1; i++) f->in_mem[i] = cap_store_contains_blob(w->s, known(w, i));
}

static bool same(const fingerprint_t *a, const fingerprint_t *b, bool backend_too)
{
    if (a->blobs != b->blobs || a->bytes != b->bytes) return false;
    if (backend_too && a->backend != b->backend) return false;
    for (int i = 0; i < K + P + 1; i++)
        if (a->in_mem[i] != b->in_mem[i]) return false;
    return true;
}

/* Operations: return the call's code; `after` checks what must hold after
 * a CAP_ENOMEM (beyond the fingerprint), with the allocator healthy. */

typedef int (*op_fn)(world_t *w);
typedef bool (*after_fn)(world_t *w);

static int op_get(world_t *w)
{
    cap_t *c = NULL;
    int rc = cap_store_get_blob(w->s, &w->in_backend[1], &c);
    CHECK((rc == CAP_OK) == (c != NULL));
    cap_release(c);
    return rc;
}

static int op_fetch(world_t *w)
{
    cap_t *c = NULL;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = cap_store_fetch_blob(w->s, &w->in_backend[2], &c, &e);
    if (rc) CHECK_EQ_INT(e.code, rc);
    cap_release(c);
    return rc;
}

static int op_promote(world_t *w)
{
    cap_ref_t *r = NULL;
    int rc = cap_store_promote_blob_to_instance(w->s, &w->in_backend[3], &r);
    cap_ref_release(r);
    return rc;
}

static int op_pin(world_t *w)
{
    return cap_store_pin(w->s, &w->in_backend[1], NULL);
}

static bool after_pin(world_t *w)
{
    return cap_store_unpin(w->s, &w->in_backend[1]) == CAP_EINVAL; /* not pinned */
}

static int op_flush(world_t *w)
{
    size_t n = 99;
    cap_err_t e;
    int rc = cap_store_flush(w->s, &n, &e);
    if (rc == CAP_OK) CHECK_EQ_INT(n, P);
    else CHECK_EQ_INT(n, 0);
    return rc;
}

static bool after_flush(world_t *w)
{
    size_t n = 0;
    return cap_store_flush(w->s, &n, NULL) == CAP_OK && n == P; /* all still dirty */
}

static int op_put_wt(world_t *w)
{
    return cap_store_put_cap(w->s, w->spare, NULL);
}

static bool after_put_wt(world_t *w)
{
    return !cap_is_frozen(w->spare);
}

static int op_trim(world_t *w)
{
    size_t d = 99;
    int rc = cap_store_trim(w->s, &d);
    if (rc == CAP_OK) CHECK_EQ_INT(d, 1 + P - 1); /* all but put[0], which is reachable */
    else CHECK_EQ_INT(d, 0);
    return rc;
}

static void exhaust(const char *name, unsigned kind, op_fn op, after_fn after, bool backend_same)
{
    long n;
    int bad_rc = 0, changed = 0, broken = 0;
    for (n = 1; n < 100000; n++) {
        world_t w;
        world_init(&w, kind);
        fingerprint_t before, now;
        take(&w, &before);
        test_alloc_fail_at(&ta, n);
        int rc = op(&w);
        test_alloc_fail_at(&ta, 0);
        if (rc == CAP_OK) {
            world_free(&w);
            break;
        }
        if (rc != CAP_ENOMEM) bad_rc++;
        take(&w, &now);
        if (!same(&before, &now, backend_same)) changed++;
        if (after && !after(&w)) broken++;
        world_free(&w);
    }
    CHECK_EQ_INT(bad_rc, 0);
    CHECK_EQ_INT(changed, 0);
    CHECK_EQ_INT(broken, 0);
    CHECK(n > 1); /* each of these allocates */
    printf("%-22s %-7s locks: succeeded at allocation %ld%s\n", name, use_spin ? "spin" : "pthread",
           n, (bad_rc || changed || broken || n <= 1) ? "  <-- FAILED" : "");
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_alloc_init(&ta);
    for (use_spin = 0; use_spin < 2; use_spin++) {
        exhaust("get_blob (fresh)", W_FRESH, op_get, NULL, true);
        exhaust("get_blob", 0, op_get, NULL, true);
        exhaust("fetch_blob", 0, op_fetch, NULL, true);
        exhaust("promote (fetch)", 0, op_promote, NULL, true);
        exhaust("pin (fetch)", 0, op_pin, after_pin, true);
        exhaust("flush", 0, op_flush, after_flush, true);
        exhaust("write-through put", W_WRITE_THROUGH, op_put_wt, after_put_wt, false);
        exhaust("write-through (fresh)", W_WRITE_THROUGH | W_FRESH, op_put_wt, after_put_wt, false);
        exhaust("trim", W_TRIM, op_trim, NULL, true);
    }
    return check_done("test_store_backend_alloc");
}
