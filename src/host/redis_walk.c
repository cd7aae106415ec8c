/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* A graph's closure in the server: before a root is set, every hash it
 * reaches must be stored (a root must never name a graph that is not all
 * there). The walk reads level by level, each level as one batch (a few
 * round trips per node per level), decodes and verifies each blob to find
 * its children, and visits a shared child once. */
#include <stdlib.h>
#include <string.h>

#include "capstore/host.h"
#include "redis_internal.h"

int redis_cap_children(const cap_t *c, int (*fn)(void *arg, const cap_hash_t *h), void *arg)
{
    int rc = 0;
    switch (cap_kind(c)) {
    case CAP_KIND_CNODE: {
        size_t n = cap_cnode_count(c);
        for (size_t i = 0; i < n && rc == 0; i++) {
            uint32_t slot;
            cap_target_t t;
            if (cap_cnode_entry(c, i, &slot, &t) == CAP_OK && t.kind == CAP_TARGET_HASH)
                rc = fn(arg, &t.hash);
        }
        break;
    }
    case CAP_KIND_INSTANCE: {
        cap_target_t t = cap_instance_root_cnode(c);
        if (t.kind == CAP_TARGET_HASH) rc = fn(arg, &t.hash);
        const cap_hash_t *img = cap_instance_image_hash(c);
        if (rc == 0 && img && !cap_hash_is_zero(img)) rc = fn(arg, img);
        break;
    }
    case CAP_KIND_IMAGE: {
        cap_image_desc_t d;
        memset(&d, 0, sizeof d);
        cap_image_view(c, &d);
        for (size_t i = 0; i < d.pinned_len && rc == 0; i++) rc = fn(arg, &d.pinned[i].cap_hash);
        for (size_t i = 0; i < d.initial_len && rc == 0; i++) rc = fn(arg, &d.initial[i].cap_hash);
        break;
    }
    case CAP_KIND_DATA:
    case CAP_KIND_TYPE: break;
    }
    return rc;
}

/* A set of hashes (open addressing, linear probing; grows at 1/2 load). */
typedef struct hset {
    cap_hash_t *v;
    uint8_t *used;
    size_t cap, n;
} hset_t;

static size_t hpos(const cap_hash_t *h, size_t cap)
{
    uint64_t x;
    memcpy(&x, h->bytes, 8); /* hashes are uniformly distributed already */
    return (size_t)x & (cap - 1);
}

/* 1 if added, 0 if present, -1 out of memory. */
static int hset_add(hset_t *s, const cap_hash_t *h)
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 1024;
        hset_t ns = {calloc(ncap, sizeof(cap_hash_t)), calloc(ncap, 1), ncap, 0};
        if (!ns.v || !ns.used) {
            free(ns.v);
            free(ns.used);
            return -1;
        }
        for (size_t i = 0; i < s->cap; i++)
            if (s->used[i]) hset_add(&ns, &s->v[i]);
        free(s->v);
        free(s->used);
        *s = ns;
    }
    size_t i = hpos(h, s->cap);
    while (s->used[i]) {
        if (memcmp(s->v[i].bytes, h->bytes, 32) == 0) return 0;
        i = (i + 1) & (s->cap - 1);
    }
    s->used[i] = 1;
    s->v[i] = *h;
    s->n++;
    return 1;
}

typedef struct hvec {
    cap_hash_t *v;
    size_t n, cap;
} hvec_t;

static int hvec_push(hvec_t *w, const cap_hash_t *h)
{
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 256;
        cap_hash_t *nv = realloc(w->v, nc * sizeof *nv);
        if (!nv) return -1;
        w->v = nv;
        w->cap = nc;
    }
    w->v[w->n++] = *h;
    return 0;
}

typedef struct level_ctx {
    hset_t *seen;
    hvec_t *next;
} level_ctx_t;

static int add_child(void *arg, const cap_hash_t *h)
{
    level_ctx_t *lc = arg;
    int added = hset_add(lc->seen, h);
    if (added < 0) return CAP_ENOMEM;
    if (added && hvec_push(lc->next, h) != 0) return CAP_ENOMEM;
    return 0;
}

int redis_check_closure(redis_t *r, const cap_hash_t *roots, size_t nroots, cap_err_t *err)
{
    const cap_alloc_t *a = cap_alloc_libc();
    hset_t seen = {NULL, NULL, 0, 0};
    hvec_t cur = {NULL, 0, 0}, next = {NULL, 0, 0};
    int rc = CAP_OK;
    level_ctx_t lc = {&seen, &cur};
    for (size_t i = 0; i < nroots && rc == CAP_OK; i++)
        if (add_child(&lc, &roots[i]) != 0) rc = cap_err_set(err, CAP_ENOMEM, "out of memory");
    uint8_t **bytes = NULL;
    size_t *lens = NULL;
    int *codes = NULL;
    while (rc == CAP_OK && cur.n) {
        bytes = malloc(cur.n * sizeof *bytes);
        lens = malloc(cur.n * sizeof *lens);
        codes = malloc(cur.n * sizeof *codes);
        if (!bytes || !lens || !codes) {
            rc = cap_err_set(err, CAP_ENOMEM, "out of memory");
            break;
        }
        rc = cap_backend_read_many(&r->table, cur.v, cur.n, a, bytes, lens, codes, err);
        next.n = 0;
        lc.next = &next;
        for (size_t i = 0; i < cur.n; i++) {
            if (rc == CAP_OK && codes[i] == CAP_ENOTFOUND) {
                rc = cap_err_set(err, CAP_EBLOBMISSING, "the root's graph is not complete in the server");
                cap_err_set_hash(err, &cur.v[i]);
            } else if (rc == CAP_OK && codes[i] != CAP_OK) {
                rc = cap_err_set(err, codes[i], "reading the root's graph failed");
                cap_err_set_hash(err, &cur.v[i]);
            } else if (rc == CAP_OK) {
                cap_t *c = NULL;
                rc = cap_persist_decode(&cur.v[i], bytes[i], lens[i], a, true, &c, err);
                if (rc == CAP_OK) {
                    int crc = redis_cap_children(c, add_child, &lc);
                    if (crc != 0) rc = cap_err_set(err, CAP_ENOMEM, "out of memory");
                    cap_release(c);
                }
            }
            if (bytes[i]) a->deallocate(a->ctx, bytes[i], lens[i]);
        }
        free(bytes);
        free(lens);
        free(codes);
        bytes = NULL;
        lens = NULL;
        codes = NULL;
        hvec_t t = cur;
        cur = next;
        next = t;
    }
    free(bytes);
    free(lens);
    free(codes);
    free(cur.v);
    free(next.v);
    free(seen.v);
    free(seen.used);
    if (rc == CAP_OK) cap_err_set(err, CAP_OK, NULL);
    return rc;
}
