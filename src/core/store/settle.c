/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* settle: resolve a working graph of instance entries to content hashes.
 *
 * 1. Snapshot (iterative DFS, explicit stack from the allocator): take a
 *    reference to each reachable entry's cap and its version under the shard
 *    lock, and note which node each Ref leads to. A Ref to an entry on the
 *    current path is CAP_ECYCLE; an entry reached again after it was
 *    finished (a DAG) is reused. Post-order gives each node its height
 *    (0: no Refs; else 1 + its highest child).
 * 2. Hash, outside any lock, one height at a time: every node of a height
 *    in one cap_hash_many call, each Ref hashing as its child's hash. The
 *    nodes of one height are independent, so the batch kernel hashes them
 *    side by side (a tree level of every CNode per call). No copy is made:
 *    the snapshots are hashed as they are.
 * 3. Commit, all or nothing. Before any lock: a node with Refs whose cap is
 *    shared with anyone but its entry and this settle (or frozen) gets a
 *    rewritten copy (the only allocations, with the blob-table room, that can
 *    fail; growing a table changes nothing visible). Then lock every shard
 *    involved (increasing index), check that no entry changed since its
 *    snapshot and that every cap to be rewritten in place is still held only
 *    by its entry and this settle (else drop the locks and prepare again, or
 *    start over), then apply: Refs are rewritten to hashes in place (the
 *    handle references the caps held pass to this settle, released after the
 *    locks are dropped), Instance entries keep (or take) the rewritten cap;
 *    the others move to the blob tier and leave the instance tier. Caps and
 *    handles are released after the locks are dropped. At most the shard
 *    locks are held at once (no allocation under them).
 * A checkpoint (checkpoint.c) is this with two additions: between 2 and 3
 * the closure of the graph's Hash children is checked (store/walk.c), and
 * the commit also keys, freezes and publishes each Instance node's cap as a
 * blob (the entry keeps it: later edits copy). */
#include "store/store_internal.h"

#define SETTLE_CONFLICT 1

typedef struct snode {
    store_entry_t *e;
    cap_t *snap;  /* our reference to the entry's cap as snapshotted (or NULL once handed over) */
    cap_t *fresh; /* a rewritten copy, when snap may not be rewritten in place */
    cap_t *old;   /* the entry's reference released by the commit */
    uint64_t version;
    size_t epos;    /* DFS cursor over the snapshot's entries */
    size_t pos;     /* Refs visited so far (the next Ref's ordinal) */
    size_t kid_off; /* its children's node indices: kids[kid_off .. + nkids) */
    size_t nkids;   /* Ref targets of the snapshot */
    uint32_t height;
    cap_hash_t hash;
    uint8_t done;
    uint8_t instance;
    uint8_t rewrote; /* snap rewritten in place: the kids' handle references are ours */
} snode_t;

typedef struct settle_ctx {
    cap_store_t *s;
    const cap_alloc_t *a;
    snode_t *nodes;
    size_t n, cap;
    size_t *stack;
    size_t depth, stack_cap;
    size_t *kids; /* child node index of every Ref, by parent then ordinal */
    size_t nk, kids_cap;
    uint64_t *map; /* 0 empty, else (node index + 1) << 32 | tag of the node's entry */
    unsigned map_log;
    uint32_t max_height;
    uint8_t checkpoint; /* also publish every Instance node as a blob (checkpoint.c) */
} settle_ctx_t;

/* Growable arrays through the allocator. Grown with `reallocate`: a large
 * block can then grow where it is (no copy, and the old pages are not
 * faulted in again elsewhere), which took about a third off the snapshot
 * of an 87381-node graph; on failure the old block stays as it was. */
static int grow_array(const cap_alloc_t *a, void **p, size_t *cap, size_t elem, size_t need)
{
    if (need <= *cap)
        return CAP_OK;
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void *np = cap_mem_realloc(a, *p, *cap * elem, ncap * elem);
    if (!np)
        return CAP_ENOMEM;
    *p = np;
    *cap = ncap;
    return CAP_OK;
}

static uint64_t map_key(const store_entry_t *e)
{
    return ((uint64_t)(uintptr_t)e >> 4) * 0x9E3779B97F4A7C15ull;
}

/* A map slot holds the node index and 32 bits of the key, so a probe only
 * reads a node (a likely cache miss) when the bits match. */
static uint64_t map_word(size_t idx, uint64_t key)
{
    return ((uint64_t)(idx + 1) << 32) | (uint32_t)key;
}

/* Index of e's node, or SIZE_MAX. */
static size_t map_find(const settle_ctx_t *x, const store_entry_t *e)
{
    if (!x->map)
        return SIZE_MAX;
    uint64_t key = map_key(e);
    size_t mask = ((size_t)1 << x->map_log) - 1;
    for (size_t i = (size_t)(key >> (64u - x->map_log));; i = (i + 1) & mask) {
        uint64_t v = x->map[i];
        if (!v)
            return SIZE_MAX;
        if ((uint32_t)v == (uint32_t)key && x->nodes[(v >> 32) - 1].e == e)
            return (size_t)(v >> 32) - 1;
    }
}

static void map_put(settle_ctx_t *x, uint64_t *map, unsigned log, size_t idx)
{
    uint64_t key = map_key(x->nodes[idx].e);
    size_t mask = ((size_t)1 << log) - 1;
    size_t i = (size_t)(key >> (64u - log));
    while (map[i])
        i = (i + 1) & mask;
    map[i] = map_word(idx, key);
}

/* Room in the map for one more node (load <= 1/2). */
static int map_reserve(settle_ctx_t *x)
{
    if (x->map && (x->n + 1) * 2 <= ((size_t)1 << x->map_log))
        return CAP_OK;
    unsigned log = x->map ? x->map_log + 1 : 6;
    size_t bytes = sizeof(uint64_t) << log;
    uint64_t *map = x->a->allocate(x->a->ctx, bytes);
    if (!map)
        return CAP_ENOMEM;
    cap_memset(map, 0, bytes);
    for (size_t i = 0; i < x->n; i++)
        map_put(x, map, log, i);
    if (x->map)
        x->a->deallocate(x->a->ctx, x->map, sizeof(uint64_t) << x->map_log);
    x->map = map;
    x->map_log = log;
    return CAP_OK;
}

/* Snapshot entry e as a new node pushed on the path. */
static int add_node(settle_ctx_t *x, store_entry_t *e, cap_err_t *err)
{
    int rc = grow_array(x->a, (void **)&x->nodes, &x->cap, sizeof(snode_t), x->n + 1);
    if (!rc)
        rc = grow_array(x->a, (void **)&x->stack, &x->stack_cap, sizeof(size_t), x->depth + 1);
    if (!rc)
        rc = map_reserve(x);
    if (rc)
        return store_fail(err, rc, (const char *)0);
    cap_store_t *s = x->s;
    uint64_t version = 0;
    cap_t *c = store_entry_read(s, e, &version);
    if (!c) {
        if (err) {
            cap_memset(err, 0, sizeof *err);
            err->code = CAP_EINSTANCEMISSING;
            err->id = e->ref.id;
        }
        return CAP_EINSTANCEMISSING;
    }
    size_t nk = cap_ref_target_count(c);
    rc = grow_array(x->a, (void **)&x->kids, &x->kids_cap, sizeof(size_t), x->nk + nk);
    if (rc) {
        cap_release(c);
        return store_fail(err, rc, (const char *)0);
    }
    snode_t *nd = &x->nodes[x->n];
    cap_memset(nd, 0, sizeof *nd);
    nd->e = e;
    nd->snap = c;
    nd->version = version;
    nd->instance = cap_kind(c) == CAP_KIND_INSTANCE;
    nd->kid_off = x->nk;
    nd->nkids = nk;
    x->nk += nk;
    if (nk && c->kind == CAP_KIND_CNODE) {
        /* The DFS visits these handles next: start fetching them now. */
        const cap_cnode_entry_t *en = c->u.cnode.entries;
        for (size_t k = 0; k < c->u.cnode.count; k++)
            if (en[k].is_ref)
                __builtin_prefetch(en[k].u.ref);
    }
    map_put(x, x->map, x->map_log, x->n);
    x->stack[x->depth++] = x->n;
    x->n++;
    return CAP_OK;
}

/* The next Ref target of a node's snapshot (its ordinal is nd->pos - 1), or
 * NULL when none is left. The snapshot cannot change: we hold a reference,
 * so every writer copies it. */
static struct cap_ref *next_child(snode_t *nd)
{
    if (nd->pos == nd->nkids)
        return (struct cap_ref *)0;
    const cap_t *c = nd->snap;
    if (c->kind == CAP_KIND_INSTANCE) {
        nd->pos++;
        return c->u.instance.root_cnode.u.ref;
    }
    const cap_cnode_entry_t *en = c->u.cnode.entries;
    while (!en[nd->epos].is_ref)
        nd->epos++;
    nd->pos++;
    return en[nd->epos++].u.ref;
}

/* Post-order step: every child is done; the node's height follows. */
static void finish_node(settle_ctx_t *x, size_t i)
{
    snode_t *nd = &x->nodes[i];
    uint32_t h = 0;
    for (size_t k = 0; k < nd->nkids; k++) {
        uint32_t ch = x->nodes[x->kids[nd->kid_off + k]].height + 1;
        if (ch > h)
            h = ch;
    }
    nd->height = h;
    nd->done = 1;
    if (h > x->max_height)
        x->max_height = h;
}

static int snapshot(settle_ctx_t *x, store_entry_t *root, cap_err_t *err)
{
    int rc = add_node(x, root, err);
    while (rc == CAP_OK && x->depth) {
        size_t i = x->stack[x->depth - 1];
        struct cap_ref *r = next_child(&x->nodes[i]);
        if (!r) {
            finish_node(x, i);
            x->depth--;
            continue;
        }
        size_t slot = x->nodes[i].kid_off + x->nodes[i].pos - 1;
        store_entry_t *ce = store_entry_of(x->s, r);
        if (!ce)
            return store_fail(err, CAP_EINVAL, "a handle of another store");
        size_t j = map_find(x, ce);
        if (j == SIZE_MAX) {
            j = x->n;
            rc = add_node(x, ce, err);
        } else if (!x->nodes[j].done) { /* j is on the current path */
            rc = store_fail(err, CAP_ECYCLE, "a Ref back to an entry on the path");
            cap_err_add_detail(err, "instance ");
            cap_err_add_detail_u64(err, ce->ref.id);
        }
        x->kids[slot] = j;
    }
    return rc;
}

/* Hashing ------------------------------------------------------------------------------- */

typedef struct resolve_ctx {
    const settle_ctx_t *x;
    const size_t *order; /* node index of each cap of the batch */
} resolve_ctx_t;

static const cap_hash_t *resolve_child(void *p, size_t index, size_t ordinal)
{
    const resolve_ctx_t *r = p;
    const settle_ctx_t *x = r->x;
    return &x->nodes[x->kids[x->nodes[r->order[index]].kid_off + ordinal]].hash;
}

/* One height's nodes, cut into parts that may run on the store's workers:
 * the nodes of a height are independent (their children are all lower). */
typedef struct hash_level {
    settle_ctx_t *x;
    const size_t *order;
    const cap_t **caps;
    cap_hash_t *hashes;
    size_t count, parts;
    _Atomic int rc; /* the first failure of any part */
} hash_level_t;

/* Nodes a part hashes at least: a worker's wake-up is worth it. */
#define HASH_PART_MIN 256u

static void hash_part(void *p, size_t i)
{
    hash_level_t *L = p;
    size_t lo, hi;
    store_part_range(L->count, L->parts, i, &lo, &hi);
    resolve_ctx_t r = {L->x, L->order + lo};
    int rc = cap_hash_many(L->caps + lo, hi - lo, L->hashes + lo, resolve_child, &r);
    if (rc) {
        int expect = CAP_OK;
        atomic_compare_exchange_strong_explicit(&L->rc, &expect, rc, memory_order_relaxed,
                                                memory_order_relaxed);
        return;
    }
    for (size_t q = lo; q < hi; q++)
        L->x->nodes[L->order[q]].hash = L->hashes[q];
}

/* Hash every node, lowest height first, one batch per height. */
static int hash_all(settle_ctx_t *x)
{
    const cap_alloc_t *a = x->a;
    size_t n = x->n, levels = (size_t)x->max_height + 1;
    size_t b_order = n * sizeof(size_t), b_caps = n * sizeof(cap_t *);
    size_t b_hash = n * sizeof(cap_hash_t), b_start = (levels + 1) * sizeof(size_t);
    size_t bytes = b_order + b_caps + b_hash + b_start;
    uint8_t *mem = a->allocate(a->ctx, bytes);
    if (!mem)
        return CAP_ENOMEM;
    size_t *order = (size_t *)(void *)mem;
    const cap_t **caps = (const cap_t **)(void *)(mem + b_order);
    cap_hash_t *hashes = (cap_hash_t *)(void *)(mem + b_order + b_caps);
    size_t *start = (size_t *)(void *)(mem + b_order + b_caps + b_hash);
    /* Counting sort by height. */
    cap_memset(start, 0, b_start);
    for (size_t i = 0; i < n; i++)
        start[x->nodes[i].height + 1]++;
    for (size_t h = 1; h <= levels; h++)
        start[h] += start[h - 1];
    for (size_t i = 0; i < n; i++) {
        size_t p = start[x->nodes[i].height]++;
        order[p] = i;
        caps[p] = x->nodes[i].snap;
    }
    /* start[h] is now the end of height h. */
    int rc = CAP_OK;
    size_t lo = 0;
    for (size_t h = 0; h < levels && rc == CAP_OK; h++) {
        size_t hi = start[h];
        hash_level_t L;
        L.x = x;
        L.order = order + lo;
        L.caps = caps + lo;
        L.hashes = hashes + lo;
        L.count = hi - lo;
        L.parts = store_parts(x->s, L.count, HASH_PART_MIN);
        atomic_init(&L.rc, CAP_OK);
        store_parallel(x->s, L.parts, hash_part, &L);
        rc = atomic_load_explicit(&L.rc, memory_order_relaxed);
        lo = hi;
    }
    a->deallocate(a->ctx, mem, bytes);
    return rc;
}

/* Commit -------------------------------------------------------------------------------- */

/* The passes below walk every node's entry and cap, scattered over memory:
 * fetch a few nodes ahead so the misses overlap. */
#define AHEAD 8

static void fetch_ahead(const settle_ctx_t *x, size_t i)
{
    if (i + AHEAD < x->n) {
        const snode_t *nd = &x->nodes[i + AHEAD];
        __builtin_prefetch(nd->e);
        if (nd->snap)
            __builtin_prefetch(nd->snap);
    }
}

static uint64_t bit(unsigned i) { return (uint64_t)1 << i; }

static void lock_mask(const cap_store_t *s, uint64_t mask)
{
    for (unsigned i = 0; i < STORE_SHARDS; i++)
        if (mask & bit(i))
            store_lock(s, store_shard(s, i)->lock);
}

static void unlock_mask(const cap_store_t *s, uint64_t mask)
{
    for (unsigned i = STORE_SHARDS; i-- > 0;)
        if (mask & bit(i))
            store_unlock(s, store_shard(s, i)->lock);
}

/* Whether node nd's snapshot may be rewritten in place: held only by its
 * entry and by us (so nobody else can see it change), and not frozen. */
static bool exclusive(const snode_t *nd)
{
    return cap_refcount(nd->snap) == 2 && !cap_is_frozen(nd->snap);
}

static const cap_hash_t *node_child_hash(void *p, size_t index, size_t ordinal)
{
    const settle_ctx_t *x = p;
    return &x->nodes[x->kids[x->nodes[index].kid_off + ordinal]].hash;
}

/* A rewritten copy for every node with Refs whose snapshot is shared. */
static int prepare_copies(settle_ctx_t *x)
{
    for (size_t i = 0; i < x->n; i++) {
        snode_t *nd = &x->nodes[i];
        fetch_ahead(x, i);
        if (nd->fresh)
            continue;
        /* A snapshot keyed by another hash (published under a wrong
         * unverified hash, or keyed by a settle that then gave up) cannot
         * be this blob: it gets its own copy, keyed right. */
        bool keyed_elsewhere =
            (!nd->instance || x->checkpoint) && cap_key_conflicts(nd->snap, &nd->hash);
        if (!keyed_elsewhere && (!nd->nkids || exclusive(nd)))
            continue;
        cap_t *copy;
        int rc = cap_copy(nd->snap, &copy);
        if (rc)
            return rc;
        /* The copy took a reference to each child handle; drop them now (no
         * lock is held). */
        cap_ref_targets_to_hashes(copy, node_child_hash, x, i);
        for (size_t k = 0; k < nd->nkids; k++)
            cap_ref_release(&x->nodes[x->kids[nd->kid_off + k]].e->ref);
        nd->fresh = copy;
    }
    return CAP_OK;
}

static int commit(settle_ctx_t *x)
{
    cap_store_t *s = x->s;
    uint64_t mask = 0;
    size_t pending[STORE_SHARDS];
    cap_memset(pending, 0, sizeof pending);
    for (size_t i = 0; i < x->n; i++) {
        snode_t *nd = &x->nodes[i];
        mask |= bit(store_entry_shard(nd->e));
        if (!nd->instance || x->checkpoint) {
            unsigned b = store_blob_shard(store_blob_mix(s, &nd->hash));
            mask |= bit(b);
            pending[b]++;
        }
    }
    for (;;) {
        int rc = prepare_copies(x);
        if (rc)
            return rc;
        /* Room in the blob tables first, one shard lock at a time (growing a
         * table changes nothing visible); then every lock, a check that
         * nothing read changed, and a check that the room is still there. */
        for (unsigned b = 0; b < STORE_SHARDS; b++) {
            if (!pending[b])
                continue;
            store_shard_t *sh = store_shard(s, b);
            store_lock(s, sh->lock);
            rc = store_blob_reserve(s, sh, pending[b]);
            store_unlock(s, sh->lock);
            if (rc)
                return rc;
        }
        lock_mask(s, mask);
        bool again = false;
        for (size_t i = 0; i < x->n; i++) {
            const snode_t *nd = &x->nodes[i];
            fetch_ahead(x, i);
            if (!nd->e->linked || nd->e->version != nd->version) {
                unlock_mask(s, mask);
                return SETTLE_CONFLICT;
            }
            /* Someone took the cap from its entry since prepare_copies:
             * it needs a copy after all. */
            if (nd->nkids && !nd->fresh && !exclusive(nd))
                again = true;
            /* Key what will become a blob now, while a failure can still
             * retry (with a copy): a key is set once, so the commit's
             * claim cannot fail after this. Keying content that a rewrite
             * in place only then produces is fine: a settle that gives up
             * leaves a key that a later one sees as keyed_elsewhere. */
            if (!again && (!nd->instance || x->checkpoint) &&
                !cap_claim_key(nd->fresh ? nd->fresh : nd->snap, &nd->hash))
                again = true;
        }
        for (unsigned b = 0; b < STORE_SHARDS && !again; b++)
            again = pending[b] && !store_blob_has_room(store_shard(s, b), pending[b]);
        if (!again)
            break;
        unlock_mask(s, mask); /* copies to make, or concurrent puts took the room */
    }
    /* Nothing can fail from here on. The header counters are added once at
     * the end (still under the locks), so that the inserts' and unlinks'
     * cache misses overlap instead of each waiting for a locked add. */
    bool graduated = false;
    store_blob_tally_t tally = {0, 0, 0};
    size_t unlinked = 0;
    for (size_t i = 0; i < x->n; i++) {
        snode_t *nd = &x->nodes[i];
        store_entry_t *e = nd->e;
        fetch_ahead(x, i);
        if (i + AHEAD < x->n) {
            const snode_t *ahead = &x->nodes[i + AHEAD];
            if (!ahead->instance)
                store_blob_prefetch(s, store_blob_mix(s, &ahead->hash));
            if (ahead->snap) /* store_cap_bytes reads past the first line */
                __builtin_prefetch((const char *)ahead->snap + 64);
        }
        if (i + AHEAD / 2 < x->n) {
            /* The unlink writes the list neighbours; this entry was
             * prefetched AHEAD / 2 iterations ago. */
            const store_entry_t *ae = x->nodes[i + AHEAD / 2].e;
            __builtin_prefetch(ae->prev, 1);
            __builtin_prefetch(ae->next, 1);
        }
        if (nd->nkids && !nd->fresh) {
            /* Exclusive (checked above under the lock): rewrite in place.
             * The kids' handle references pass to us (released later). */
            cap_ref_targets_to_hashes(nd->snap, node_child_hash, x, i);
            nd->rewrote = 1;
        }
        if (nd->instance) {
            if (nd->fresh) {
                nd->old = e->cap;
                e->cap = nd->fresh;
                nd->fresh = (cap_t *)0;
            }
            if (nd->nkids || nd->old) /* rewritten, or (checkpoint) given a keyed copy */
                e->version++;
            if (x->checkpoint)
                store_checkpoint_publish_locked(s, e->cap, &nd->hash, &tally);
            continue;
        }
        uint64_t mix = store_blob_mix(s, &nd->hash);
        store_shard_t *bsh = store_shard(s, store_blob_shard(mix));
        if (store_blob_find(bsh, &nd->hash, mix) == SIZE_MAX) {
            cap_t **src = nd->fresh ? &nd->fresh : &nd->snap;
            cap_freeze(*src);
            /* Keyed `hash` under the locks above: this claim only checks. */
            if (CAP_LIKELY(cap_claim_key(*src, &nd->hash))) {
                store_blob_insert_tallied(s, bsh, mix, *src, &tally);
                *src = (cap_t *)0;
            }
        }
        nd->old = store_entry_unlink_uncounted(s, e);
        unlinked++;
        graduated = true;
    }
    store_blob_tally_add(s, &tally);
    if (unlinked)
        atomic_fetch_sub_explicit(&s->instance_count, unlinked, memory_order_relaxed);
    unlock_mask(s, mask);
    if (graduated) {
        /* The store's reference goes. No removed entry can reach state 0 (nor
         * be queued and swept) here: each is still referenced, by the caller
         * (the root) or by a cap or handle reference this settle holds until
         * ctx_reset. */
        store_lock(s, s->dead_lock);
        for (size_t i = 0; i < x->n; i++) {
            if (i + AHEAD < x->n)
                __builtin_prefetch(x->nodes[i + AHEAD].e, 1);
            if (!x->nodes[i].instance)
                (void)store_entry_clear_bits_locked(x->nodes[i].e, CAP_REF_IN_STORE);
        }
        store_unlock(s, s->dead_lock);
    }
    return CAP_OK;
}

/* Releasing, cut into parts for the store's workers: every release drops
 * a reference this settle holds, so parts never free what another part
 * still reads (an entry goes with the last reference, which is dropped
 * last by whichever part holds it). */
typedef struct release_job {
    settle_ctx_t *x;
    size_t parts;
} release_job_t;

/* Nodes a releasing part takes at least. */
#define RELEASE_PART_MIN 1024u

static void release_caps_part(void *p, size_t part)
{
    const release_job_t *j = p;
    settle_ctx_t *x = j->x;
    size_t lo, hi;
    store_part_range(x->n, j->parts, part, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        if (i + AHEAD < hi)
            fetch_ahead(x, i);
        cap_release(x->nodes[i].snap);
        cap_release(x->nodes[i].fresh);
        cap_release(x->nodes[i].old);
    }
}

/* The handle references taken over from caps rewritten in place; a release
 * may free an entry, so no node's entry is touched after its release. */
static void release_kids_part(void *p, size_t part)
{
    const release_job_t *j = p;
    const settle_ctx_t *x = j->x;
    size_t lo, hi;
    store_part_range(x->n, j->parts, part, &lo, &hi);
    size_t end = hi < x->n ? x->nodes[hi].kid_off : x->nk; /* kids[] is in node order */
    for (size_t i = lo; i < hi; i++) {
        const snode_t *nd = &x->nodes[i];
        if (!nd->rewrote)
            continue;
        for (size_t k = 0; k < nd->nkids; k++) {
            /* Kids are scattered: fetch their nodes, then their entries, a
             * little ahead. */
            size_t q = nd->kid_off + k;
            if (q + 2 * AHEAD < end)
                __builtin_prefetch(&x->nodes[x->kids[q + 2 * AHEAD]]);
            if (q + AHEAD < end)
                __builtin_prefetch(x->nodes[x->kids[q + AHEAD]].e, 1);
            cap_ref_release(&x->nodes[x->kids[q]].e->ref);
        }
    }
}

/* Release everything the context holds (no lock held) and reset it. */
static void ctx_reset(settle_ctx_t *x)
{
    release_job_t j = {x, store_parts(x->s, x->n, RELEASE_PART_MIN)};
    store_parallel(x->s, j.parts, release_caps_part, &j);
    store_parallel(x->s, j.parts, release_kids_part, &j);
    const cap_alloc_t *a = x->a;
    if (x->nodes)
        a->deallocate(a->ctx, x->nodes, x->cap * sizeof(snode_t));
    if (x->stack)
        a->deallocate(a->ctx, x->stack, x->stack_cap * sizeof(size_t));
    if (x->kids)
        a->deallocate(a->ctx, x->kids, x->kids_cap * sizeof(size_t));
    if (x->map)
        a->deallocate(a->ctx, x->map, sizeof(uint64_t) << x->map_log);
    cap_store_t *s = x->s;
    cap_memset(x, 0, sizeof *x);
    x->s = s;
    x->a = a;
}

/* A node as a start of checkpoint's closure walk: its hash and snapshot. */
static const cap_t *node_given(void *p, size_t i, cap_hash_t *h)
{
    const settle_ctx_t *x = p;
    *h = x->nodes[i].hash;
    return x->nodes[i].snap;
}

int store_settle_run(cap_store_t *s, const cap_target_t *t, cap_hash_t *out, bool checkpoint,
                     cap_err_t *err)
{
    if (!s || !t)
        return store_fail(err, CAP_EINVAL, "NULL argument");
    if (t->kind == CAP_TARGET_HASH) {
        if (out)
            *out = t->hash;
        return CAP_OK;
    }
    if (t->kind != CAP_TARGET_REF)
        return store_fail(err, CAP_EINVAL, "no target");
    store_entry_t *root = store_entry_of(s, t->ref);
    if (!root)
        return store_fail(err, CAP_EINVAL, "no handle, or a handle of another store");
    if (!store_is_ready(s)) {
        if (err) {
            cap_memset(err, 0, sizeof *err);
            err->code = CAP_EINSTANCEMISSING;
            err->id = root->ref.id;
        }
        return CAP_EINSTANCEMISSING;
    }
    settle_ctx_t x;
    cap_memset(&x, 0, sizeof x);
    x.s = s;
    x.a = s->alloc;
    for (;;) {
        x.checkpoint = checkpoint;
        int rc = snapshot(&x, root, err); /* fills err itself */
        if (rc == CAP_OK) {
            rc = hash_all(&x);
            if (rc == CAP_OK && checkpoint)
                rc = store_walk_closure(s, x.n, node_given, &x, err); /* fills err itself */
            else if (rc < 0)
                store_fail(err, rc, (const char *)0);
            if (rc == CAP_OK) {
                rc = commit(&x);
                if (rc < 0)
                    store_fail(err, rc, (const char *)0);
            }
        }
        if (rc == CAP_OK && out)
            *out = x.nodes[0].hash;
        ctx_reset(&x);
        if (rc != SETTLE_CONFLICT)
            return rc;
    }
}

int cap_store_settle(cap_store_t *s, const cap_target_t *t, cap_hash_t *out, cap_err_t *err)
{
    return store_settle_run(s, t, out, false, err);
}
