/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Closures inside one LMDB transaction (lmdb_closure.h). The set's array is
 * the queue: entry `done` is the next to read; its children (from the wire
 * bytes, cap_wire_for_each_child: nothing decoded or allocated) are added
 * at the end. A hash read again is only a set lookup.
 *
 * Breadth first, a level at a time, and each level read in key order: hashes
 * are random, so a level read in the order it was found jumps around the
 * B-tree and every lookup misses the cache; sorted, successive lookups go
 * through neighbouring pages, each leaf page touched about once a level
 * (a mark of 5 x 10^5 blobs in a 10^6-blob file goes several times faster). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lmdb_closure.h"

void cap_lm_closure_init(cap_lm_closure_t *c)
{
    memset(c, 0, sizeof *c);
    cap_hset_init(&c->set);
    cap_hset_init(&c->item_set);
}

void cap_lm_closure_free(cap_lm_closure_t *c)
{
    cap_hset_free(&c->set);
    cap_hset_free(&c->item_set);
    free(c->parent);
    free(c->item_of);
    memset(c, 0, sizeof *c);
}

int cap_lm_closure_overlay(cap_lm_closure_t *c, const cap_backend_item_t *items, size_t n)
{
    c->items = items;
    c->item_of = malloc((n ? n : 1) * sizeof *c->item_of);
    if (!c->item_of) return ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t idx;
        int r = cap_hset_add(&c->item_set, &items[i].hash, &idx);
        if (r < 0) return ENOMEM;
        if (r > 0) c->item_of[idx] = i; /* a hash given twice: the first (same bytes) */
    }
    return 0;
}

/* Add `h` named by entry `from` (SIZE_MAX: a start). */
static int add(cap_lm_closure_t *c, const cap_hash_t *h, size_t from)
{
    size_t idx;
    int r = cap_hset_add(&c->set, h, &idx);
    if (r <= 0) return r;
    if (idx >= c->parent_room) {
        size_t room = c->parent_room ? c->parent_room * 2 : 1024;
        while (room <= idx) room *= 2;
        uint32_t *p = realloc(c->parent, room * sizeof *p);
        if (!p) return -1;
        c->parent = p;
        c->parent_room = room;
    }
    c->parent[idx] = from == SIZE_MAX ? 0 : (uint32_t)(from + 1);
    return 1;
}

int cap_lm_closure_add(cap_lm_closure_t *c, const cap_hash_t *h) { return add(c, h, SIZE_MAX); }

typedef struct child_ctx {
    cap_lm_closure_t *c;
    size_t from;
    bool nomem;
} child_ctx_t;

static int on_child(void *arg, const cap_child_t *ch)
{
    child_ctx_t *x = arg;
    if (ch->target.kind != CAP_TARGET_HASH) return 0;
    if (add(x->c, &ch->target.hash, x->from) < 0) {
        x->nomem = true;
        return 1;
    }
    return 0;
}

/* The entries [lo, hi) in ascending key order: an LSD radix sort on the
 * first 8 bytes (equal prefixes, about never, stay in set order: harmless).
 * NULL when out of memory. */
typedef struct ord_rec {
    uint64_t prefix;
    uint32_t idx;
} ord_rec_t;

static uint32_t *key_order(const cap_hset_t *set, size_t lo, size_t hi)
{
    size_t n = hi - lo;
    ord_rec_t *a = malloc(n * sizeof *a), *t = malloc(n * sizeof *t);
    if (!a || !t) {
        free(a);
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *k = set->keys[lo + i].bytes;
        uint64_t p = 0;
        for (int j = 0; j < 8; j++) p = p << 8 | k[j];
        a[i].prefix = p;
        a[i].idx = (uint32_t)(lo + i);
    }
    for (unsigned shift = 0; shift < 64; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++) count[((a[i].prefix >> shift) & 0xff) + 1]++;
        for (int d = 0; d < 256; d++) count[d + 1] += count[d];
        for (size_t i = 0; i < n; i++) t[count[(a[i].prefix >> shift) & 0xff]++] = a[i];
        ord_rec_t *x = a;
        a = t;
        t = x;
    }
    uint32_t *order = (uint32_t *)(void *)t; /* reuse: 4 bytes an entry fit in 16 */
    for (size_t i = 0; i < n; i++) order[i] = a[i].idx;
    free(a);
    return order;
}

#define SORT_MIN 64

/* Read and follow entry i. 0, an LMDB code, or ENOMEM. */
static int follow(lmdb_env_t *e, MDB_cursor *cur, cap_lm_closure_t *c, size_t i);

int cap_lm_closure_run(lmdb_env_t *e, MDB_txn *txn, cap_lm_closure_t *c)
{
    /* One cursor: a lookup near the last one (in key order) stays on its
     * leaf page instead of descending from the root (LMDB's MDB_SET_KEY
     * looks at the cursor's page first). */
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, e->dbi, &cur);
    if (rc) return rc;
    while (rc == 0 && c->done < c->set.n) {
        size_t lo = c->done, hi = c->set.n; /* a level: children go past hi */
        uint32_t *order = hi - lo >= SORT_MIN ? key_order(&c->set, lo, hi) : NULL;
        for (size_t k = 0; k < hi - lo && rc == 0; k++) rc = follow(e, cur, c, order ? order[k] : lo + k);
        free(order);
        if (rc == 0) c->done = hi;
    }
    mdb_cursor_close(cur);
    return rc;
}

static int follow(lmdb_env_t *e, MDB_cursor *cur, cap_lm_closure_t *c, size_t i)
{
    {
        cap_hash_t h = c->set.keys[i]; /* a copy: adding children may move the array */
        const uint8_t *bytes = NULL;
        size_t n = 0;
        size_t it = c->items ? cap_hset_find(&c->item_set, &h) : SIZE_MAX;
        if (it != SIZE_MAX) {
            const cap_backend_item_t *item = &c->items[c->item_of[it]];
            bytes = item->bytes;
            n = item->n;
        } else {
            MDB_val k = {32, h.bytes}, v;
            int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
            if (rc == MDB_NOTFOUND) {
                if (c->missing++ == 0) c->first_missing = i;
                return 0;
            }
            if (rc) return rc;
            if (!cap_lm_val_ok(e, &v)) {
                if (c->bad++ == 0) c->first_bad = i;
                return 0;
            }
            bytes = v.mv_data;
            n = v.mv_size;
        }
        c->read++;
        c->bytes += n;
        if (c->tick && (c->read & 4095) == 0) c->tick(c->tick_arg, c->read, c->bytes);
        child_ctx_t x = {c, i, false};
        int wrc = cap_wire_for_each_child(bytes, n, on_child, &x, NULL);
        if (x.nomem) return ENOMEM;
        if (wrc != CAP_OK && c->bad++ == 0) c->first_bad = i;
    }
    return 0;
}

void cap_lm_closure_explain(const cap_lm_closure_t *c, bool bad, const cap_hash_t *starts, size_t nstarts,
                            cap_lm_missing_t *m)
{
    memset(m, 0, sizeof *m);
    size_t i = bad ? c->first_bad : c->first_missing;
    m->count = bad ? c->bad : c->missing;
    if (i >= c->set.n) return;
    m->hash = c->set.keys[i];
    if (c->parent[i]) {
        m->has_parent = true;
        m->parent = c->set.keys[c->parent[i] - 1];
    }
    size_t top = i;
    for (size_t steps = 0; c->parent[top] && steps < c->set.n; steps++) top = c->parent[top] - 1;
    for (size_t r = 0; r < nstarts; r++)
        if (memcmp(starts[r].bytes, c->set.keys[top].bytes, 32) == 0) {
            m->root = r;
            break;
        }
}
