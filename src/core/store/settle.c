/* settle: resolve a working graph of instance entries to content hashes.
 *
 * 1. Snapshot (iterative DFS, explicit stack from the allocator): take a
 *    reference to each reachable entry's cap and its version under the shard
 *    lock. A Ref to an entry on the current path is CAP_ECYCLE; an entry
 *    reached again after it was finished (a DAG) is reused.
 * 2. Post-order, outside any lock: a node with Refs gets a writable copy
 *    whose Refs are rewritten to the children's hashes; then it is hashed.
 * 3. Commit, all or nothing: reserve blob-table room first (the only step
 *    that can fail; growing a table changes nothing visible), lock every
 *    shard involved (increasing index), check that no entry changed since its
 *    snapshot (else drop everything and start again), then apply: Instance
 *    entries take their rewritten cap; the others move to the blob tier and
 *    leave the instance tier. Caps are released after the locks are dropped.
 *    At most the shard locks are held at once (no allocation under them). */
#include "store/store_internal.h"

#define SETTLE_CONFLICT 1

typedef struct snode {
    store_entry_t *e;
    cap_t *snap;  /* our reference to the entry's cap as snapshotted (or NULL once handed over) */
    cap_t *fresh; /* our rewritten copy (or NULL: none / handed over) */
    cap_t *old;   /* the entry's reference released by the commit */
    uint64_t version;
    size_t pos; /* DFS cursor over the snapshot's targets */
    cap_hash_t hash;
    uint8_t done;
    uint8_t instance;
} snode_t;

typedef struct settle_ctx {
    cap_store_t *s;
    const cap_alloc_t *a;
    snode_t *nodes;
    size_t n, cap;
    size_t *stack;
    size_t depth, stack_cap;
    size_t *map; /* node index + 1, 0 empty; keyed by the node's entry */
    unsigned map_log;
} settle_ctx_t;

/* Growable arrays through the allocator (allocate + copy + free, so only the
 * allocate/deallocate hooks are needed). */
static int grow_array(const cap_alloc_t *a, void **p, size_t *cap, size_t elem, size_t need)
{
    if (need <= *cap)
        return CAP_OK;
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void *np = a->allocate(a->ctx, ncap * elem);
    if (!np)
        return CAP_ENOMEM;
    if (*p) {
        cap_memcpy(np, *p, *cap * elem);
        a->deallocate(a->ctx, *p, *cap * elem);
    }
    *p = np;
    *cap = ncap;
    return CAP_OK;
}

static size_t map_slot(const store_entry_t *e, unsigned log)
{
    uint64_t k = (uint64_t)(uintptr_t)e;
    return (size_t)(((k >> 4) * 0x9E3779B97F4A7C15ull) >> (64u - log));
}

/* Index of e's node, or SIZE_MAX. */
static size_t map_find(const settle_ctx_t *x, const store_entry_t *e)
{
    if (!x->map)
        return SIZE_MAX;
    size_t mask = ((size_t)1 << x->map_log) - 1;
    for (size_t i = map_slot(e, x->map_log);; i = (i + 1) & mask) {
        size_t v = x->map[i];
        if (!v)
            return SIZE_MAX;
        if (x->nodes[v - 1].e == e)
            return v - 1;
    }
}

static void map_put(settle_ctx_t *x, size_t *map, unsigned log, size_t idx)
{
    size_t mask = ((size_t)1 << log) - 1;
    size_t i = map_slot(x->nodes[idx].e, log);
    while (map[i])
        i = (i + 1) & mask;
    map[i] = idx + 1;
}

/* Room in the map for one more node (load <= 1/2). */
static int map_reserve(settle_ctx_t *x)
{
    if (x->map && (x->n + 1) * 2 <= ((size_t)1 << x->map_log))
        return CAP_OK;
    unsigned log = x->map ? x->map_log + 1 : 6;
    size_t bytes = sizeof(size_t) << log;
    size_t *map = x->a->allocate(x->a->ctx, bytes);
    if (!map)
        return CAP_ENOMEM;
    cap_memset(map, 0, bytes);
    for (size_t i = 0; i < x->n; i++)
        map_put(x, map, log, i);
    if (x->map)
        x->a->deallocate(x->a->ctx, x->map, sizeof(size_t) << x->map_log);
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
        return rc;
    cap_store_t *s = x->s;
    store_shard_t *sh = store_shard(s, store_entry_shard(e));
    cap_t *c = (cap_t *)0;
    uint64_t version = 0;
    store_lock(s, sh->lock);
    if (e->linked) {
        c = cap_retain(e->cap);
        version = e->version;
    }
    store_unlock(s, sh->lock);
    if (!c) {
        if (err) {
            cap_memset(err, 0, sizeof *err);
            err->code = CAP_EINSTANCEMISSING;
            err->id = e->ref.id;
        }
        return CAP_EINSTANCEMISSING;
    }
    snode_t *nd = &x->nodes[x->n];
    cap_memset(nd, 0, sizeof *nd);
    nd->e = e;
    nd->snap = c;
    nd->version = version;
    nd->instance = cap_kind(c) == CAP_KIND_INSTANCE;
    map_put(x, x->map, x->map_log, x->n);
    x->stack[x->depth++] = x->n;
    x->n++;
    return CAP_OK;
}

/* The next Ref target of node i's snapshot, or NULL when none is left. */
static cap_ref_t *next_child(snode_t *nd)
{
    cap_t *c = nd->snap;
    if (!cap_has_refs(c))
        return (cap_ref_t *)0;
    cap_target_t t;
    if (cap_kind(c) == CAP_KIND_INSTANCE) {
        if (nd->pos++ == 0) {
            t = cap_instance_root_cnode(c);
            if (t.kind == CAP_TARGET_REF)
                return t.ref;
        }
        return (cap_ref_t *)0;
    }
    size_t count = cap_cnode_count(c);
    while (nd->pos < count) {
        if (cap_cnode_entry(c, nd->pos++, (uint32_t *)0, &t) == CAP_OK &&
            t.kind == CAP_TARGET_REF)
            return t.ref;
    }
    return (cap_ref_t *)0;
}

static const cap_hash_t *child_hash(const settle_ctx_t *x, cap_ref_t *r)
{
    size_t j = map_find(x, (store_entry_t *)(void *)r);
    return &x->nodes[j].hash;
}

/* Post-order step: rewrite node i's Refs to its children's hashes on a copy,
 * then hash it. */
static int finish_node(settle_ctx_t *x, size_t i)
{
    snode_t *nd = &x->nodes[i];
    const cap_t *src = nd->snap;
    if (cap_has_refs(src)) {
        cap_t *copy;
        int rc = cap_copy(src, &copy);
        if (rc)
            return rc;
        cap_target_t t, h;
        if (cap_kind(copy) == CAP_KIND_INSTANCE) {
            t = cap_instance_root_cnode(copy);
            h = cap_target_of_hash(child_hash(x, t.ref));
            rc = cap_instance_set_root_cnode(copy, &h);
        } else {
            size_t count = cap_cnode_count(copy);
            for (size_t k = 0; k < count && rc == CAP_OK; k++) {
                uint32_t slot;
                rc = cap_cnode_entry(copy, k, &slot, &t);
                if (rc == CAP_OK && t.kind == CAP_TARGET_REF) {
                    h = cap_target_of_hash(child_hash(x, t.ref));
                    rc = cap_cnode_set(copy, slot, &h);
                }
            }
        }
        if (rc) {
            cap_release(copy);
            return rc;
        }
        nd->fresh = copy;
        src = copy;
    }
    int rc = cap_hash(src, &nd->hash);
    if (rc)
        return rc;
    nd->done = 1;
    return CAP_OK;
}

static int snapshot(settle_ctx_t *x, store_entry_t *root, cap_err_t *err)
{
    int rc = add_node(x, root, err);
    while (rc == CAP_OK && x->depth) {
        size_t i = x->stack[x->depth - 1];
        cap_ref_t *r = next_child(&x->nodes[i]);
        if (!r) {
            rc = finish_node(x, i);
            x->depth--;
            continue;
        }
        store_entry_t *ce = store_entry_of(x->s, r);
        if (!ce)
            return CAP_EINVAL; /* a handle of another store */
        size_t j = map_find(x, ce);
        if (j == SIZE_MAX)
            rc = add_node(x, ce, err);
        else if (!x->nodes[j].done)
            rc = CAP_ECYCLE; /* j is on the current path */
    }
    return rc;
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

static int commit(settle_ctx_t *x)
{
    cap_store_t *s = x->s;
    uint64_t mask = 0;
    size_t pending[STORE_SHARDS];
    cap_memset(pending, 0, sizeof pending);
    for (size_t i = 0; i < x->n; i++) {
        snode_t *nd = &x->nodes[i];
        mask |= bit(store_entry_shard(nd->e));
        if (!nd->instance) {
            unsigned b = store_blob_shard(store_blob_mix(s, &nd->hash));
            mask |= bit(b);
            pending[b]++;
        }
    }
    for (;;) {
        /* Room in the blob tables first, one shard lock at a time (growing a
         * table changes nothing visible); then every lock, a check that
         * nothing read changed, and a check that the room is still there. */
        for (unsigned b = 0; b < STORE_SHARDS; b++) {
            if (!pending[b])
                continue;
            store_shard_t *sh = store_shard(s, b);
            store_lock(s, sh->lock);
            int rc = store_blob_reserve(s, sh, pending[b]);
            store_unlock(s, sh->lock);
            if (rc)
                return rc;
        }
        lock_mask(s, mask);
        for (size_t i = 0; i < x->n; i++) {
            const snode_t *nd = &x->nodes[i];
            if (!nd->e->linked || nd->e->version != nd->version) {
                unlock_mask(s, mask);
                return SETTLE_CONFLICT;
            }
        }
        bool room = true;
        for (unsigned b = 0; b < STORE_SHARDS && room; b++)
            room = !pending[b] || store_blob_has_room(store_shard(s, b), pending[b]);
        if (room)
            break;
        unlock_mask(s, mask); /* concurrent puts took the room: reserve again */
    }
    /* Nothing can fail from here on. */
    bool graduated = false;
    for (size_t i = 0; i < x->n; i++) {
        snode_t *nd = &x->nodes[i];
        store_entry_t *e = nd->e;
        if (nd->instance) {
            if (nd->fresh) {
                nd->old = e->cap;
                e->cap = nd->fresh;
                nd->fresh = (cap_t *)0;
                e->version++;
            }
            continue;
        }
        uint64_t mix = store_blob_mix(s, &nd->hash);
        store_shard_t *bsh = store_shard(s, store_blob_shard(mix));
        if (!store_blob_find(bsh, &nd->hash, mix)) {
            cap_t **src = nd->fresh ? &nd->fresh : &nd->snap;
            cap_freeze(*src);
            store_blob_insert_new(s, bsh, &nd->hash, mix, *src);
            *src = (cap_t *)0;
        }
        nd->old = store_entry_unlink_locked(s, e);
        graduated = true;
    }
    unlock_mask(s, mask);
    if (graduated) {
        /* The store's reference goes. No removed entry can reach state 0 (nor
         * be queued and swept) here: each is still referenced, by the caller
         * (the root) or by a cap this settle holds until ctx_reset. */
        store_lock(s, s->dead_lock);
        for (size_t i = 0; i < x->n; i++)
            if (!x->nodes[i].instance)
                (void)store_entry_clear_bits_locked(x->nodes[i].e, CAP_REF_IN_STORE);
        store_unlock(s, s->dead_lock);
    }
    return CAP_OK;
}

/* Release everything the context holds (no lock held) and reset it. */
static void ctx_reset(settle_ctx_t *x)
{
    for (size_t i = 0; i < x->n; i++) {
        cap_release(x->nodes[i].snap);
        cap_release(x->nodes[i].fresh);
        cap_release(x->nodes[i].old);
    }
    const cap_alloc_t *a = x->a;
    if (x->nodes)
        a->deallocate(a->ctx, x->nodes, x->cap * sizeof(snode_t));
    if (x->stack)
        a->deallocate(a->ctx, x->stack, x->stack_cap * sizeof(size_t));
    if (x->map)
        a->deallocate(a->ctx, x->map, sizeof(size_t) << x->map_log);
    cap_store_t *s = x->s;
    cap_memset(x, 0, sizeof *x);
    x->s = s;
    x->a = a;
}

int cap_store_settle(cap_store_t *s, const cap_target_t *t, cap_hash_t *out, cap_err_t *err)
{
    if (!s || !t)
        return CAP_EINVAL;
    if (t->kind == CAP_TARGET_HASH) {
        if (out)
            *out = t->hash;
        return CAP_OK;
    }
    if (t->kind != CAP_TARGET_REF)
        return CAP_EINVAL;
    store_entry_t *root = store_entry_of(s, t->ref);
    if (!root)
        return CAP_EINVAL;
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
        int rc = snapshot(&x, root, err);
        if (rc == CAP_OK)
            rc = commit(&x);
        if (rc == CAP_OK && out)
            *out = x.nodes[0].hash;
        ctx_reset(&x);
        if (rc != SETTLE_CONFLICT)
            return rc;
    }
}
