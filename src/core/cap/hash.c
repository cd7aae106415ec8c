/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* cap_hash: the SSZ hash_tree_root of each kind (cap-schema.md), mixed with
 * the Union selector. Page roots are computed from the bytes through the
 * batch kernel, several pages per call, and cached in the page once. */
#include "base.h"
#include "cap/cap_internal.h"
#include "capstore/sha256.h"
#include "capstore/ssz.h"

#define LIMIT_2P32 ((uint64_t)1 << 32)
#define CNODE_DEPTH 16u

/* Bytes of first-level digests one page batch holds: a batch hashes up to
 * 2 * PAGE_BUF bytes of page data, level by level, in this one buffer, so
 * even the top levels keep several nodes in flight (4 pages of 4096). */
#define PAGE_BUF 8192u
/* Page roots pushed to the list merkleizer per group. */
#define PAGE_GROUP 64u
/* CNodes up to this many entries hash with stack scratch. */
#define CNODE_STACK_ENTRIES 64u

static void hash_pair(uint8_t out[32], const uint8_t a[32], const uint8_t b[32])
{
    cap_sha256_pair(out, a, b);
}

/* Page roots ----------------------------------------------------------------------------- */

/* Roots of k units of `ub` bytes each (ub a power of two >= 64, k * ub / 2
 * <= PAGE_BUF): every level of all k trees in one batch call, the units'
 * nodes side by side in buf (pairs never straddle two units, since each
 * unit has an even number of nodes until its root). Roots land at buf[32j]. */
static void unit_roots(uint8_t *buf, const uint8_t *const *units, size_t k, size_t ub)
{
    size_t m = ub / 64; /* nodes per unit after the first level */
    for (size_t j = 0; j < k; j++)
        cap_sha256_nodes(buf + j * (ub / 2), units[j], m);
    for (; m > 1; m /= 2)
        cap_sha256_nodes(buf, buf, k * m / 2);
}

/* Root of one Loaded page's bytes, no caching; buf holds PAGE_BUF bytes. */
static void page_bytes_root(const uint8_t *data, uint32_t ps, uint8_t out[32], uint8_t *buf)
{
    if (ps == 32) {
        cap_memcpy(out, data, 32);
        return;
    }
    size_t ub = ps < 2 * PAGE_BUF ? ps : 2 * PAGE_BUF;
    size_t units = ps / ub;
    if (units == 1) {
        unit_roots(buf, &data, 1, ub);
        cap_memcpy(out, buf, 32);
        return;
    }
    /* Pages wider than a batch: per-unit roots, then their small tree. */
    uint8_t roots[(CAP_PAGE_SIZE_MAX / (2 * PAGE_BUF)) * 32];
    for (size_t u = 0; u < units; u++) {
        const uint8_t *p = data + u * ub;
        unit_roots(buf, &p, 1, ub);
        cap_memcpy(roots + 32 * u, buf, 32);
    }
    for (size_t n = units; n > 1; n /= 2)
        cap_sha256_nodes(roots, roots, n / 2);
    cap_memcpy(out, roots, 32);
}

/* Cached root of a Loaded page, if published. */
static bool page_cached(const cap_page_t *p, uint8_t out[32])
{
    if (atomic_load_explicit((_Atomic uint32_t *)&p->root_state, memory_order_acquire) != 2)
        return false;
    cap_memcpy(out, p->root.bytes, 32);
    return true;
}

/* Try to become the one writer of p's root: 0 -> 1. */
static bool page_claim(const cap_page_t *p)
{
    uint32_t expect = 0;
    return atomic_compare_exchange_strong_explicit((_Atomic uint32_t *)&p->root_state, &expect, 1,
                                                   memory_order_acquire, memory_order_relaxed);
}

/* Publish a claimed page's root: store it, then release-store 2. */
static void page_publish(const cap_page_t *p, const uint8_t root[32])
{
    cap_page_t *w = (cap_page_t *)p; /* the claim makes this thread the only writer */
    cap_memcpy(w->root.bytes, root, 32);
    atomic_store_explicit(&w->root_state, 2, memory_order_release);
}

void cap_page_root(const cap_page_t *p, uint32_t page_size, uint8_t out[32])
{
    if (!p) {
        cap_memcpy(out, cap_ssz_zero_hash(cap_page_depth(page_size)), 32);
        return;
    }
    if (page_cached(p, out)) /* Missing pages are always "cached" */
        return;
    uint8_t buf[PAGE_BUF];
    bool mine = page_claim(p);
    page_bytes_root(p->data, page_size, out, buf);
    if (mine)
        page_publish(p, out);
}

/* Data ------------------------------------------------------------------------------------ */

typedef struct page_batch {
    uint32_t ps;
    size_t max;                      /* pages per batch call */
    size_t n;                        /* pending pages */
    const uint8_t *data[PAGE_GROUP]; /* their bytes */
    const cap_page_t *page[PAGE_GROUP];
    bool mine[PAGE_GROUP];           /* this thread claimed the cache */
    uint8_t *dst[PAGE_GROUP];        /* where each root goes */
    uint8_t buf[PAGE_BUF];
} page_batch_t;

static void batch_flush(page_batch_t *b)
{
    if (!b->n)
        return;
    if (b->ps > 2 * PAGE_BUF || b->ps == 32) {
        for (size_t j = 0; j < b->n; j++)
            page_bytes_root(b->data[j], b->ps, b->dst[j], b->buf);
    } else {
        unit_roots(b->buf, b->data, b->n, b->ps);
        for (size_t j = 0; j < b->n; j++)
            cap_memcpy(b->dst[j], b->buf + 32 * j, 32);
    }
    for (size_t j = 0; j < b->n; j++)
        if (b->mine[j])
            page_publish(b->page[j], b->dst[j]);
    b->n = 0;
}

static int hash_data(const cap_t *c, uint8_t out[32])
{
    const cap_data_body_t *d = &c->u.data;
    const uint8_t *zero_page = cap_ssz_zero_hash(cap_page_depth(d->page_size));
    cap_merkle_t m;
    page_batch_t batch;
    uint8_t roots[PAGE_GROUP * 32];
    batch.ps = d->page_size;
    batch.max = d->page_size <= 2 * PAGE_BUF ? (2 * PAGE_BUF) / d->page_size : 1;
    if (batch.max > PAGE_GROUP)
        batch.max = PAGE_GROUP;
    batch.n = 0;
    cap_merkle_init(&m, 32);
    for (uint64_t base = 0; base < d->page_count; base += PAGE_GROUP) {
        uint64_t left = d->page_count - base;
        size_t g = left < PAGE_GROUP ? (size_t)left : PAGE_GROUP;
        for (size_t i = 0; i < g; i++) {
            const cap_page_t *p = d->pages[base + i];
            uint8_t *dst = roots + 32 * i;
            if (!p) {
                cap_memcpy(dst, zero_page, 32);
                continue;
            }
            if (page_cached(p, dst))
                continue;
            batch.data[batch.n] = p->data;
            batch.page[batch.n] = p;
            batch.mine[batch.n] = page_claim(p);
            batch.dst[batch.n] = dst;
            if (++batch.n == batch.max)
                batch_flush(&batch);
        }
        batch_flush(&batch);
        cap_merkle_push(&m, roots, g); /* cannot fail: page_count <= 2^32 */
    }
    uint8_t pages_root[32], size_chunk[32];
    cap_merkle_finish(&m, pages_root);
    cap_ssz_mix_in_length(pages_root, pages_root, d->page_count);
    cap_ssz_chunk_u64(size_chunk, d->page_size);
    hash_pair(out, size_chunk, pages_root);
    return CAP_OK;
}

/* CNode ----------------------------------------------------------------------------------- */

/* A CNode's slot list is a depth-16 tree, hashed sparse: each level is the
 * sorted list of its non-zero nodes (index, digest); two siblings pair up, a
 * lone node pairs with the zero subtree of its level. Several CNodes are
 * hashed together, level by level: one batch call per level takes every
 * node of that level of every CNode, so even the narrow top levels (one
 * node per CNode) keep the kernel's lanes full when many CNodes are hashed
 * at once (settle), and a single CNode costs what the sparse tree needs. */

/* Entries hashed with stack scratch by cap_hash. */
#define CNODE_STACK_ENTRIES 64u
/* Entries (summed over CNodes) per batch of cap_hash_many. */
#define CNODE_CHUNK_ENTRIES 256u
/* Scratch per entry: a message (64), a digest (32), a node index (4), and
 * per CNode (at most one per entry) its place (8) and its caller index (8). */
#define CNODE_SCRATCH_PER_ENTRY (64u + 32u + 4u + 8u + 8u)

typedef struct cnode_job {
    uint32_t off; /* its nodes' first position in dig/idx at this level */
    uint32_t m;   /* its node count at this level */
} cnode_job_t;

typedef struct cnode_scratch {
    uint8_t *msg;
    uint8_t *dig;
    uint32_t *idx;
    cnode_job_t *job;
    size_t *who; /* caller index of each CNode of the batch */
} cnode_scratch_t;

static void cnode_scratch_carve(cnode_scratch_t *w, void *mem, size_t entries)
{
    uint8_t *p = mem; /* 8-aligned; every part below keeps 8-alignment */
    w->job = (cnode_job_t *)(void *)p;
    p += entries * sizeof(cnode_job_t);
    w->who = (size_t *)(void *)p;
    p += entries * sizeof(size_t);
    w->msg = p;
    p += entries * 64u;
    w->dig = p;
    p += entries * 32u;
    w->idx = (uint32_t *)(void *)p;
}

/* The 32 bytes a slot's target hashes to: its hash, or the hash `fn` gives
 * for the cap's next Ref (ordinal *ord in slot order). */
static const uint8_t *target_bytes(const cap_slot_target_t *t, cap_ref_hash_fn fn, void *ctx,
                                   size_t who, size_t *ord)
{
    if (!t->is_ref)
        return t->u.hash.bytes;
    return fn(ctx, who, (*ord)++)->bytes;
}

/* cap_hash of k non-empty CNodes w->who[0..k) of caps[], into out[who]. */
static void cnode_batch(const cap_t *const *caps, size_t k, cap_ref_hash_fn fn, void *ctx,
                        cnode_scratch_t *w, cap_hash_t *out)
{
    static const uint8_t zero[32];
    uint8_t *msg = w->msg, *dig = w->dig;
    uint32_t *idx = w->idx;
    cnode_job_t *job = w->job;
    /* Level 0 reads the entries directly. */
    size_t t = 0;
    for (size_t j = 0; j < k; j++) {
        /* Caps and their entries are scattered: fetch a few ahead. */
        if (j + 8 < k)
            __builtin_prefetch(caps[w->who[j + 8]]);
        if (j + 4 < k)
            __builtin_prefetch(caps[w->who[j + 4]]->u.cnode.entries);
        const cap_cnode_body_t *b = &caps[w->who[j]]->u.cnode;
        const cap_cnode_entry_t *e = b->entries;
        size_t n = b->count, ord = 0;
        job[j].off = (uint32_t)t;
        for (size_t i = 0; i < n; t++) {
            uint32_t sl = e[i].slot;
            uint8_t *mm = msg + 64 * t;
            const uint8_t *a = target_bytes(&e[i], fn, ctx, w->who[j], &ord);
            if ((sl & 1u) == 0 && i + 1 < n && e[i + 1].slot == sl + 1) {
                cap_memcpy(mm, a, 32);
                cap_memcpy(mm + 32, target_bytes(&e[i + 1], fn, ctx, w->who[j], &ord), 32);
                i += 2;
            } else if (sl & 1u) {
                cap_memcpy(mm, zero, 32);
                cap_memcpy(mm + 32, a, 32);
                i++;
            } else {
                cap_memcpy(mm, a, 32);
                cap_memcpy(mm + 32, zero, 32);
                i++;
            }
            idx[t] = sl >> 1;
        }
        job[j].m = (uint32_t)(t - job[j].off);
    }
    cap_sha256_nodes(dig, msg, t);
    /* Levels 1..15. A CNode's parents are written at or below its children
     * (every earlier CNode shrank too, and a message takes one or two
     * children), and both children are read before their parent's index is
     * written, so idx is reduced in place. */
    for (unsigned level = 1; level < CNODE_DEPTH; level++) {
        const uint8_t *z = cap_ssz_zero_hash(level);
        t = 0;
        for (size_t j = 0; j < k; j++) {
            size_t off = job[j].off, m = job[j].m, start = t;
            const uint8_t *d = dig + 32 * off;
            const uint32_t *x = idx + off;
            for (size_t i = 0; i < m; t++) {
                uint32_t xi = x[i];
                uint8_t *mm = msg + 64 * t;
                if ((xi & 1u) == 0 && i + 1 < m && x[i + 1] == xi + 1) {
                    cap_memcpy(mm, d + 32 * i, 64);
                    i += 2;
                } else if (xi & 1u) {
                    cap_memcpy(mm, z, 32);
                    cap_memcpy(mm + 32, d + 32 * i, 32);
                    i++;
                } else {
                    cap_memcpy(mm, d + 32 * i, 32);
                    cap_memcpy(mm + 32, z, 32);
                    i++;
                }
                idx[t] = xi >> 1;
            }
            job[j].off = (uint32_t)start;
            job[j].m = (uint32_t)(t - start);
        }
        cap_sha256_nodes(dig, msg, t);
    }
    /* One node per CNode is left, CNode j's at dig[32j]: mix_in_length,
     * then hash_pair(size_log, .), then mix_in_selector, each for all. */
    for (size_t j = 0; j < k; j++) {
        const cap_cnode_body_t *b = &caps[w->who[j]]->u.cnode;
        cap_memcpy(msg + 64 * j, dig + 32 * j, 32);
        cap_ssz_chunk_u64(msg + 64 * j + 32, (uint64_t)b->entries[b->count - 1].slot + 1);
    }
    cap_sha256_nodes(dig, msg, k);
    for (size_t j = 0; j < k; j++) {
        cap_ssz_chunk_u64(msg + 64 * j, caps[w->who[j]]->u.cnode.size_log);
        cap_memcpy(msg + 64 * j + 32, dig + 32 * j, 32);
    }
    cap_sha256_nodes(dig, msg, k);
    for (size_t j = 0; j < k; j++) {
        cap_memcpy(msg + 64 * j, dig + 32 * j, 32);
        cap_ssz_chunk_u64(msg + 64 * j + 32, CAP_KIND_CNODE);
    }
    cap_sha256_nodes(dig, msg, k);
    for (size_t j = 0; j < k; j++)
        cap_memcpy(out[w->who[j]].bytes, dig + 32 * j, 32);
}

/* cap_hash of an empty CNode: no slot to hash. */
static void cnode_empty(const cap_t *c, uint8_t out[32])
{
    uint8_t node[64];
    cap_ssz_mix_in_length(node + 32, cap_ssz_zero_hash(CNODE_DEPTH), 0);
    cap_ssz_chunk_u64(node, c->u.cnode.size_log);
    cap_sha256_node(node, node);
    cap_ssz_mix_in_selector(out, node, CAP_KIND_CNODE);
}

/* cap_hash of one CNode (caps[i]), with its own scratch. */
static int cnode_one(const cap_t *const *caps, size_t i, cap_ref_hash_fn fn, void *ctx,
                     cap_hash_t *out)
{
    const cap_t *c = caps[i];
    size_t n = c->u.cnode.count;
    if (n == 0) {
        cnode_empty(c, out[i].bytes);
        return CAP_OK;
    }
    _Alignas(8) uint8_t stack[CNODE_STACK_ENTRIES * CNODE_SCRATCH_PER_ENTRY];
    void *mem = stack;
    size_t need = n * CNODE_SCRATCH_PER_ENTRY; /* n <= 65536: no overflow */
    if (n > CNODE_STACK_ENTRIES) {
        mem = cap_mem_alloc(c->alloc, need);
        if (!mem)
            return CAP_ENOMEM;
    }
    cnode_scratch_t w;
    cnode_scratch_carve(&w, mem, n);
    w.who[0] = i;
    cnode_batch(caps, 1, fn, ctx, &w, out);
    if (mem != (void *)stack)
        cap_mem_free(c->alloc, mem, need);
    return CAP_OK;
}

/* Instance -------------------------------------------------------------------------------- */

/* root: the root_cnode's hash (resolved by the caller when it is a Ref). */
static int hash_instance(const cap_t *c, const uint8_t root[32], uint8_t out[32])
{
    const cap_instance_body_t *b = &c->u.instance;
    uint8_t f[8][32];
    cap_memcpy(f[0], b->image_hash_chain.bytes, 32);
    cap_memcpy(f[1], b->image_hash.bytes, 32);
    cap_memcpy(f[2], root, 32);
    {
        cap_merkle_t m;
        cap_merkle_init(&m, 32);
        for (size_t i = 0; i < b->overlay_count; i++) {
            const cap_overlay_t *o = &b->overlays[i];
            uint8_t node[64];
            cap_ssz_chunk_u64(node, o->start);
            cap_ssz_root_list_u8(node + 32, o->bytes, o->len, LIMIT_2P32);
            cap_sha256_node(node, node);
            cap_merkle_push(&m, node, 1);
        }
        cap_merkle_finish(&m, f[3]);
        cap_ssz_mix_in_length(f[3], f[3], b->overlay_count);
    }
    cap_ssz_chunk_u64(f[4], b->mem_size);
    cap_ssz_root_vector_u64(f[5], b->regs, CAP_NUM_REGS);
    cap_ssz_chunk_u64(f[6], b->pc);
    cap_ssz_chunk_u64(f[7], b->gas_remaining);
    return cap_ssz_merkleize(out, &f[0][0], 8, 8);
}

/* Image ----------------------------------------------------------------------------------- */

static void endpoint_root(const cap_endpoint_t *e, uint8_t out[32])
{
    uint8_t f[5][32];
    cap_ssz_chunk_u64(f[0], e->entry_pc);
    cap_ssz_chunk_u64(f[1], e->stack_top);
    cap_ssz_chunk_u64(f[2], e->arg_cnode_slot);
    cap_ssz_chunk_u64(f[3], e->arg_cnode_size);
    cap_ssz_root_vector_u64(f[4], e->initial_regs, CAP_NUM_REGS);
    cap_ssz_merkleize(out, &f[0][0], 5, 8);
}

static void mapping_root(const cap_mapping_t *mp, uint8_t out[32])
{
    uint8_t f[4][32];
    cap_ssz_chunk_u64(f[0], mp->start);
    cap_ssz_chunk_u64(f[1], mp->size);
    for (unsigned k = 0; k < CAP_MAX_SOURCE_DEPTH; k++) /* Vector[uint32, 8]: one chunk */
        cap_store_le32(f[2] + 4 * k, mp->source_path[k]);
    cap_ssz_chunk_u64(f[3], mp->source_path_len);
    cap_ssz_merkleize(out, &f[0][0], 4, 4);
}

static void slot_entry_root(const cap_slot_entry_t *s, uint8_t out[32])
{
    uint8_t sc[32];
    cap_ssz_chunk_u64(sc, s->slot);
    hash_pair(out, sc, s->cap_hash.bytes);
}

enum { LIST_ENDPOINTS, LIST_MAPPINGS, LIST_SLOTS };

/* hash_tree_root(List[Container, 2^32]) of n elements: element roots streamed. */
static void container_list_root(cap_merkle_t *m, int what, const void *v, size_t n, uint8_t out[32])
{
    cap_merkle_init(m, 32);
    for (size_t i = 0; i < n; i++) {
        uint8_t r[32];
        if (what == LIST_ENDPOINTS)
            endpoint_root((const cap_endpoint_t *)v + i, r);
        else if (what == LIST_MAPPINGS)
            mapping_root((const cap_mapping_t *)v + i, r);
        else
            slot_entry_root((const cap_slot_entry_t *)v + i, r);
        cap_merkle_push(m, r, 1);
    }
    cap_merkle_finish(m, out);
    cap_ssz_mix_in_length(out, out, n);
}

static int hash_image(const cap_t *c, uint8_t out[32])
{
    const cap_image_desc_t *d = &c->u.image.desc;
    uint8_t f[8][32];
    cap_merkle_t m;
    cap_ssz_root_list_u8(f[0], d->code, d->code_len, LIMIT_2P32);
    cap_ssz_root_list_u8(f[1], d->bitmask, d->bitmask_len, LIMIT_2P32);
    cap_ssz_root_list_u32(f[2], d->jump_table, d->jump_table_len, LIMIT_2P32);
    container_list_root(&m, LIST_ENDPOINTS, d->endpoints, d->endpoints_len, f[3]);
    container_list_root(&m, LIST_MAPPINGS, d->mappings, d->mappings_len, f[4]);
    container_list_root(&m, LIST_SLOTS, d->pinned, d->pinned_len, f[5]);
    container_list_root(&m, LIST_SLOTS, d->initial, d->initial_len, f[6]);
    uint8_t y[32];
    cap_ssz_chunk_u64(y, d->has_yield_marker ? d->yield_marker_slot : 0);
    cap_ssz_mix_in_selector(f[7], y, d->has_yield_marker ? 1 : 0);
    return cap_ssz_merkleize(out, &f[0][0], 8, 8);
}

/* cap_hash -------------------------------------------------------------------------------- */

/* Any kind but a non-empty CNode; Refs through fn (NULL: CAP_EUNSETTLED). */
static int hash_other(const cap_t *c, size_t who, cap_ref_hash_fn fn, void *ctx, uint8_t out[32])
{
    uint8_t root[32];
    int rc;
    switch ((cap_kind_t)c->kind) {
    case CAP_KIND_TYPE:
        cap_memcpy(root, c->u.type_chain.bytes, 32); /* one-field container */
        rc = CAP_OK;
        break;
    case CAP_KIND_DATA:
        rc = hash_data(c, root);
        break;
    case CAP_KIND_INSTANCE: {
        const cap_slot_target_t *t = &c->u.instance.root_cnode;
        if (t->is_ref && !fn)
            return CAP_EUNSETTLED;
        rc = hash_instance(c, t->is_ref ? fn(ctx, who, 0)->bytes : t->u.hash.bytes, root);
        break;
    }
    case CAP_KIND_IMAGE:
        rc = hash_image(c, root);
        break;
    default:
        return CAP_EINVAL;
    }
    if (rc)
        return rc;
    cap_ssz_mix_in_selector(out, root, c->kind);
    return CAP_OK;
}

int cap_hash(const cap_t *c, cap_hash_t *out)
{
    if (!c || !out)
        return CAP_EINVAL;
    if (c->kind == CAP_KIND_CNODE) {
        if (c->u.cnode.ref_count)
            return CAP_EUNSETTLED;
        return cnode_one(&c, 0, (cap_ref_hash_fn)0, (void *)0, out);
    }
    return hash_other(c, 0, (cap_ref_hash_fn)0, (void *)0, out->bytes);
}

int cap_hash_many(const cap_t *const *caps, size_t n, cap_hash_t *out, cap_ref_hash_fn fn,
                  void *ctx)
{
    if (n && (!caps || !out))
        return CAP_EINVAL;
    /* Check everything first, so that nothing is hashed on an error. */
    const cap_alloc_t *a = (const cap_alloc_t *)0;
    size_t most = 0; /* entries of the largest batch below */
    for (size_t i = 0; i < n; i++) {
        const cap_t *c = caps[i];
        if (!c || c->kind > CAP_KIND_TYPE)
            return CAP_EINVAL;
        if (!fn && cap_ref_target_count(c))
            return CAP_EUNSETTLED;
        if (c->kind == CAP_KIND_CNODE && c->u.cnode.count <= CNODE_CHUNK_ENTRIES) {
            most += c->u.cnode.count;
            a = c->alloc;
        }
    }
    if (most > CNODE_CHUNK_ENTRIES)
        most = CNODE_CHUNK_ENTRIES;
    void *mem = (void *)0;
    size_t need = most * CNODE_SCRATCH_PER_ENTRY;
    if (most) {
        mem = cap_mem_alloc(a, need);
        if (!mem)
            return CAP_ENOMEM;
    }
    cnode_scratch_t w;
    if (mem)
        cnode_scratch_carve(&w, mem, most);
    size_t k = 0, used = 0; /* CNodes and entries gathered for the next batch */
    int rc = CAP_OK;
    for (size_t i = 0; i < n && rc == CAP_OK; i++) {
        const cap_t *c = caps[i];
        if (c->kind != CAP_KIND_CNODE) {
            rc = hash_other(c, i, fn, ctx, out[i].bytes);
            continue;
        }
        size_t cnt = c->u.cnode.count;
        if (cnt == 0 || cnt > CNODE_CHUNK_ENTRIES) {
            rc = cnode_one(caps, i, fn, ctx, out); /* empty, or a batch of its own */
            continue;
        }
        if (used + cnt > most) {
            cnode_batch(caps, k, fn, ctx, &w, out);
            k = used = 0;
        }
        w.who[k++] = i;
        used += cnt;
    }
    if (rc == CAP_OK && k)
        cnode_batch(caps, k, fn, ctx, &w, out);
    if (mem)
        cap_mem_free(a, mem, need);
    return rc;
}
