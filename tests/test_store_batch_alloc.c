/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Allocation failure at every allocation of the batch calls: put_caps
 * returns CAP_ENOMEM and publishes nothing of the batch (small batches on
 * the stack, large ones with their bookkeeping block, a cap that needs a
 * keyed copy, write-through); get_blobs with backends gives each lookup its
 * code (CAP_ENOMEM or what fetch_blob gives) and keeps the store sound; a
 * settle on workers fails as a serial one does, changing nothing. Each call
 * is retried with the n-th allocation failing, n = 1, 2, ... until it
 * succeeds; at the end nothing is left allocated. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/host.h"
#include "capstore/persist.h"
#include "capstore/store.h"
#include "check.h"
#include "test_alloc.h"
#include "test_caps.h"
#include "test_fingerprint.h"

static test_alloc_t ta;

static cap_store_t *new_store(unsigned flags, const cap_workers_t *w)
{
    cap_store_options_t o = CAP_STORE_OPTIONS_INIT;
    o.alloc = &ta.alloc;
    o.locks = cap_lock_pthread();
    o.hash_seed[0] = 5;
    o.hash_seed[1] = 55;
    o.flags = flags;
    o.workers = w;
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new(&s, &o), CAP_OK);
    return s;
}

static cap_t *cnode(unsigned v, unsigned k)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, &ta.alloc, 8), CAP_OK);
    for (unsigned i = 0; i < k; i++) test_set_hash_of(c, (v * 7u + i * 13u) % 256u, v * 100u + i);
    return c;
}

/* put_caps of n caps (some already stored, some twice), failing each
 * allocation in turn. */
static void put_caps_exhaust(size_t n, unsigned flags)
{
    cap_backend_t *mem = NULL;
    if (flags & CAP_STORE_WRITE_THROUGH) CHECK_EQ_INT(cap_mem_backend_new(&ta.alloc, &mem), CAP_OK);
    cap_store_t *s = new_store(flags, NULL);
    if (mem) CHECK_EQ_INT(cap_store_add_backend(s, mem, NULL), CAP_OK);
    cap_t *caps[80];
    cap_hash_t h[80];
    for (size_t i = 0; i < n; i++) {
        caps[i] = i % 9 == 8 ? cap_retain(caps[i - 3]) : cnode((unsigned)i, 1 + (unsigned)(i % 16));
        h[i] = test_hash_cap(caps[i]);
    }
    for (size_t i = 0; i < n; i += 10) CHECK_EQ_INT(cap_store_put_cap(s, caps[i], NULL), CAP_OK);
#ifdef NDEBUG
    /* One cap keyed under a wrong hash by another store: it needs a copy. */
    cap_store_t *other = new_store(0, NULL);
    cap_hash_t wrong = test_hash_of(999);
    CHECK_EQ_INT(cap_store_put_cap_with_hash(other, &wrong, caps[1]), CAP_OK);
#endif
    test_watch_t w = {s, NULL, 0, caps, 0};
    int done = 0;
    for (long k = 1; k < 10000 && !done; k++) {
        test_fingerprint_t before;
        test_fp_take(&w, &before);
        test_alloc_fail_at(&ta, k);
        cap_hash_t got[80];
        cap_err_t err;
        int rc = cap_store_put_caps(s, caps, n, got, &err);
        test_alloc_fail_at(&ta, 0);
        if (rc == CAP_OK) {
            done = 1;
            for (size_t i = 0; i < n; i++) {
                CHECK_MEM(got[i].bytes, h[i].bytes, 32);
                CHECK(cap_store_contains_blob(s, &h[i]));
            }
        } else {
            CHECK_EQ_INT(rc, CAP_ENOMEM);
            CHECK_EQ_INT(err.code, CAP_ENOMEM);
            CHECK(test_fp_same(&w, &before)); /* nothing of the batch published */
        }
        test_fp_drop(&w, &before);
    }
    CHECK(done);
    for (size_t i = 0; i < n; i++) cap_release(caps[i]);
    cap_store_free(s);
#ifdef NDEBUG
    cap_store_free(other);
#endif
    cap_backend_free(mem);
}

/* get_blobs with a backend: every lookup gets a code, the ones that were
 * not refused by the allocator agree with fetch_blob. */
static void get_blobs_exhaust(void)
{
    cap_backend_t *mem = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(&ta.alloc, &mem), CAP_OK);
    cap_hash_t q[24];
    for (unsigned i = 0; i < 20; i++) {
        cap_t *c = cnode(i, 3);
        CHECK_EQ_INT(cap_persist_put(mem, c, &q[i], NULL), CAP_OK);
        cap_release(c);
    }
    q[20] = test_hash_of(1); /* nowhere */
    q[21] = q[3];            /* twice */
    q[22] = q[20];
    q[23] = q[7];
    int done = 0;
    for (long k = 1; k < 10000 && !done; k++) {
        cap_store_t *s = new_store(0, NULL);
        CHECK_EQ_INT(cap_store_add_backend(s, mem, NULL), CAP_OK);
        cap_t *warm = NULL; /* one in memory already */
        CHECK_EQ_INT(cap_store_fetch_blob(s, &q[7], &warm, NULL), CAP_OK);
        cap_release(warm);
        cap_t *out[24];
        int codes[24];
        test_alloc_fail_at(&ta, k);
        int rc = cap_store_get_blobs(s, q, 24, out, codes, NULL);
        test_alloc_fail_at(&ta, 0);
        int enomem = 0;
        for (int i = 0; i < 24; i++) {
            if (codes[i] == CAP_ENOMEM) {
                enomem = 1;
                CHECK(out[i] == NULL);
                continue;
            }
            int want = (i == 20 || i == 22) ? CAP_EBLOBMISSING : CAP_OK;
            CHECK_EQ_INT(codes[i], want);
            CHECK_EQ_INT(out[i] != NULL, want == CAP_OK);
            cap_release(out[i]);
        }
        CHECK(rc == CAP_EBLOBMISSING || rc == CAP_ENOMEM);
        /* Whatever is in memory hashes to its key. */
        cap_blob_entry_t *e = NULL;
        size_t ne = 0;
        CHECK_EQ_INT(cap_store_iter_blobs(s, &e, &ne), CAP_OK);
        for (size_t i = 0; i < ne; i++) {
            cap_hash_t real = test_hash_cap(e[i].cap);
            CHECK_MEM(real.bytes, e[i].hash.bytes, 32);
        }
        cap_store_blobs_free(s, e, ne);
        cap_store_free(s);
        done = !enomem && rc == CAP_EBLOBMISSING;
    }
    CHECK(done);
    cap_backend_free(mem);
}

/* A settle on two threads fails on each allocation as a serial one does:
 * CAP_ENOMEM and the store unchanged. The graph has levels wide enough to
 * be cut into parts. */
static void settle_workers_exhaust(void)
{
    cap_workers_t *pool = cap_host_workers_new(2);
    CHECK(pool != NULL);
    cap_store_t *s = new_store(0, pool);
    enum { WIDTH = 1200 };
    cap_ref_t *leaves[WIDTH];
    for (unsigned i = 0; i < WIDTH; i++) {
        cap_t *c = cnode(i, 2);
        CHECK_EQ_INT(cap_store_put_instance(s, c, &leaves[i]), CAP_OK);
        cap_release(c);
    }
    cap_t *top = NULL;
    CHECK_EQ_INT(cap_cnode_new(&top, &ta.alloc, 11), CAP_OK);
    for (unsigned i = 0; i < WIDTH; i++) test_set_ref(top, i, leaves[i]);
    cap_ref_t *root = NULL;
    CHECK_EQ_INT(cap_store_put_instance(s, top, &root), CAP_OK);
    cap_release(top);
    for (unsigned i = 0; i < WIDTH; i++) cap_ref_release(leaves[i]);
    cap_ref_t *watch[1] = {root};
    test_watch_t w = {s, watch, 1, NULL, 0};
    int done = 0;
    long fails = 0;
    for (long k = 1; k < 100000 && !done; k++) {
        test_fingerprint_t before;
        test_fp_take(&w, &before);
        test_alloc_fail_at(&ta, k);
        cap_target_t t = cap_target_of_ref(root);
        cap_hash_t h;
        int rc = cap_store_settle(s, &t, &h, NULL);
        test_alloc_fail_at(&ta, 0);
        if (rc == CAP_OK) {
            done = 1;
            CHECK_EQ_INT(cap_store_instance_count(s), 0);
        } else {
            fails++;
            CHECK_EQ_INT(rc, CAP_ENOMEM);
            CHECK(test_fp_same(&w, &before));
        }
        test_fp_drop(&w, &before);
    }
    CHECK(done);
    CHECK(fails > 0);
    cap_ref_release(root);
    cap_store_free(s);
    cap_host_workers_free(pool);
}

int main(void)
{
    test_alloc_init(&ta);
    put_caps_exhaust(5, 0);
    put_caps_exhaust(70, 0);
    put_caps_exhaust(70, CAP_STORE_WRITE_THROUGH);
    get_blobs_exhaust();
    settle_workers_exhaust();
    if (!test_alloc_clean(&ta))
        fprintf(stderr, "leak: %ld blocks, %lld bytes, %ld size errors\n", ta.live_blocks,
                ta.live_bytes, ta.size_errors);
    CHECK(test_alloc_clean(&ta));
    return check_done("test_store_batch_alloc");
}
