/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Walking a cap graph: the engine (walk_internal.h) and cap_backend_walk.
 *
 * The nodes array is at once the seen set and the breadth-first queue: a
 * hash gets a node when first reached, in order, and the queue is the part
 * not yet read. A node keeps its hash and how it was first reached (parent
 * node, field, slot), nothing else, so a missing hash's path can be traced
 * back without keeping any cap. An open-addressing table of node numbers
 * answers "seen?". Levels need no per-node depth: they are contiguous runs
 * of the array. Nothing recurses.
 *
 * Freestanding: the source and the allocator are all it calls, besides the
 * cap layer (children, decode, hash). */
#include "base.h"
#include "persist/walk_internal.h"

#define WALK_NONE UINT32_MAX
#define WALK_MAX_NODES (UINT32_MAX - 1u)
#define WALK_DEFAULT_BATCH 256u
#define WALK_GIVEN 0xffu /* field of a given node (its index: the given number) */

typedef struct wnode {
    cap_hash_t hash;
    uint32_t parent; /* WALK_NONE for a root or a given node */
    uint32_t index;  /* the slot it was reached by; a given node's number */
    uint8_t field;   /* cap_child_field_t it was reached by; WALK_GIVEN */
} wnode_t;

typedef struct walker {
    const cap_alloc_t *a;
    wnode_t *nodes;
    size_t n, cap;
    uint32_t *table; /* node number + 1; 0 empty */
    unsigned log;
    unsigned flags;
    uint32_t cur; /* the node whose children are being added */
    cap_walk_result_t *res;
    cap_walk_problem_t first_missing; /* err's detail, even when problems[] is full */
    bool has_missing;
} walker_t;

size_t walk_batch_size(const cap_walk_options_t *opt)
{
    return opt && opt->batch ? opt->batch : WALK_DEFAULT_BATCH;
}

/* The seen set ----------------------------------------------------------------------------- */

static size_t slot_of(const cap_hash_t *h, unsigned log)
{
    /* Cap hashes are SHA-256 outputs: any 8 bytes spread well. */
    uint64_t k = cap_load_le64(h->bytes) ^ cap_load_le64(h->bytes + 8);
    return (size_t)((k * 0x9E3779B97F4A7C15ull) >> (64u - log));
}

static uint32_t find(const walker_t *w, const cap_hash_t *h)
{
    if (!w->table)
        return WALK_NONE;
    size_t mask = ((size_t)1 << w->log) - 1;
    for (size_t i = slot_of(h, w->log);; i = (i + 1) & mask) {
        uint32_t v = w->table[i];
        if (!v)
            return WALK_NONE;
        if (cap_memcmp(w->nodes[v - 1].hash.bytes, h->bytes, 32) == 0)
            return v - 1;
    }
}

static void place(uint32_t *table, unsigned log, const cap_hash_t *h, uint32_t idx)
{
    size_t mask = ((size_t)1 << log) - 1;
    size_t i = slot_of(h, log);
    while (table[i])
        i = (i + 1) & mask;
    table[i] = idx + 1;
}

/* Room for one more node: the array, and the table at load <= 1/2. */
static int reserve(walker_t *w)
{
    if (w->n >= WALK_MAX_NODES)
        return CAP_ENOMEM;
    if (w->n == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 64;
        if (ncap > SIZE_MAX / sizeof(wnode_t))
            return CAP_ENOMEM;
        wnode_t *nv;
        if (!w->nodes)
            nv = w->a->allocate(w->a->ctx, ncap * sizeof *nv);
        else
            nv = w->a->reallocate(w->a->ctx, w->nodes, w->cap * sizeof *nv, ncap * sizeof *nv);
        if (!nv)
            return CAP_ENOMEM;
        w->nodes = nv;
        w->cap = ncap;
    }
    if (!w->table || (w->n + 1) * 2 > ((size_t)1 << w->log)) {
        unsigned log = w->table ? w->log + 1 : 7;
        if (log >= sizeof(size_t) * 8 - 3)
            return CAP_ENOMEM;
        size_t bytes = sizeof(uint32_t) << log;
        uint32_t *t = w->a->allocate(w->a->ctx, bytes);
        if (!t)
            return CAP_ENOMEM;
        cap_memset(t, 0, bytes);
        for (size_t i = 0; i < w->n; i++)
            place(t, log, &w->nodes[i].hash, (uint32_t)i);
        if (w->table)
            w->a->deallocate(w->a->ctx, w->table, sizeof(uint32_t) << w->log);
        w->table = t;
        w->log = log;
    }
    return CAP_OK;
}

/* Add `h` unless seen. *added (may be NULL) tells which. */
static int add_node(walker_t *w, const cap_hash_t *h, uint32_t parent, uint8_t field,
                    uint32_t index, bool *added)
{
    if (added)
        *added = false;
    if (find(w, h) != WALK_NONE)
        return CAP_OK;
    int rc = reserve(w);
    if (rc)
        return rc;
    wnode_t *nd = &w->nodes[w->n];
    nd->hash = *h;
    nd->parent = parent;
    nd->index = index;
    nd->field = field;
    place(w->table, w->log, h, (uint32_t)w->n);
    w->n++;
    if (added)
        *added = true;
    return CAP_OK;
}

static int add_child(void *arg, const cap_child_t *ch)
{
    walker_t *w = arg;
    if (ch->target.kind != CAP_TARGET_HASH)
        return CAP_OK; /* a Ref of a cap not yet settled: its entry is the caller's business */
    w->res->edges++;
    return add_node(w, &ch->target.hash, w->cur, (uint8_t)ch->field, ch->index, (bool *)0);
}

static int no_child(void *arg, const cap_child_t *ch)
{
    (void)arg;
    (void)ch;
    return CAP_OK;
}

/* Problems --------------------------------------------------------------------------------- */

/* The path from a root to node `idx`, its last CAP_WALK_PATH steps kept. */
static void trace(const walker_t *w, uint32_t idx, int code, cap_walk_problem_t *p)
{
    p->hash = w->nodes[idx].hash;
    p->code = code;
    uint64_t depth = 0;
    uint32_t cur = idx;
    /* Upward, nearest step first; reversed below. */
    while (w->nodes[cur].parent != WALK_NONE) {
        const wnode_t *nd = &w->nodes[cur];
        if (depth < CAP_WALK_PATH) {
            cap_walk_step_t *s = &p->path[depth];
            s->hash = w->nodes[nd->parent].hash;
            s->field = (cap_child_field_t)nd->field;
            s->index = nd->index;
        }
        depth++;
        cur = nd->parent;
    }
    p->root = w->nodes[cur].hash;
    p->depth = depth;
    p->npath = depth < CAP_WALK_PATH ? (size_t)depth : CAP_WALK_PATH;
    for (size_t i = 0, j = p->npath; i + 1 < j; i++, j--) {
        cap_walk_step_t t = p->path[i];
        p->path[i] = p->path[j - 1];
        p->path[j - 1] = t;
    }
}

static void note_problem(walker_t *w, uint32_t idx, int code)
{
    cap_walk_result_t *r = w->res;
    if (code == CAP_ENOTFOUND)
        r->missing++;
    else
        r->bad++;
    if (r->nproblems < CAP_WALK_FIRST)
        trace(w, idx, code, &r->problems[r->nproblems++]);
    if (code == CAP_ENOTFOUND && !w->has_missing) {
        trace(w, idx, code, &w->first_missing);
        w->has_missing = true;
    }
}

static void add_hex8(cap_err_t *err, const cap_hash_t *h)
{
    static const char digits[] = "0123456789abcdef";
    char s[9];
    for (unsigned i = 0; i < 4; i++) {
        s[2 * i] = digits[h->bytes[i] >> 4];
        s[2 * i + 1] = digits[h->bytes[i] & 15];
    }
    s[8] = 0;
    cap_err_add_detail(err, s);
}

/* err for a problem: its hash, and in the detail the field and cap that
 * name it, its depth, and the totals. */
static int problem_err(const walker_t *w, const cap_walk_problem_t *p, int code, cap_err_t *err)
{
    if (!err)
        return code;
    const char *what = code == CAP_EBLOBMISSING ? "reachable but stored nowhere"
                       : code == CAP_EMISMATCH  ? "stored bytes hash to another value"
                                                : "stored bytes do not decode";
    cap_err_set(err, code, what);
    cap_err_set_hash(err, &p->hash);
    if (p->npath) {
        const cap_walk_step_t *s = &p->path[p->npath - 1];
        cap_err_add_detail(err, cap_child_field_name(s->field));
        if (s->field == CAP_CHILD_SLOT || s->field == CAP_CHILD_PINNED ||
            s->field == CAP_CHILD_INITIAL) {
            cap_err_add_detail(err, " ");
            cap_err_add_detail_u64(err, s->index);
        }
        cap_err_add_detail(err, " of ");
        add_hex8(err, &s->hash);
        if (p->depth > 1) {
            cap_err_add_detail(err, " at depth ");
            cap_err_add_detail_u64(err, p->depth);
            cap_err_add_detail(err, " from root ");
            add_hex8(err, &p->root);
        }
    } else {
        cap_err_add_detail(err, "a root");
    }
    cap_err_add_detail(err, "; ");
    cap_err_add_detail_u64(err, w->res->missing);
    cap_err_add_detail(err, " missing, ");
    cap_err_add_detail_u64(err, w->res->bad);
    cap_err_add_detail(err, " bad");
    return code;
}

/* One node ----------------------------------------------------------------------------------- */

static int call_visitor(cap_walk_fn fn, void *arg, const cap_hash_t *h, int status,
                        const uint8_t *bytes, size_t n, const cap_t *c, uint32_t depth)
{
    if (!fn)
        return 0;
    cap_walk_visit_t v;
    v.hash = *h;
    v.status = status;
    v.bytes = bytes;
    v.n = n;
    v.cap = c;
    v.depth = depth;
    return fn(arg, &v);
}

/* Visit node idx given its answer (code, bytes or a cap), then add its
 * children. A bad blob is counted, not followed. */
static int visit(walker_t *w, uint32_t idx, uint32_t depth, int code, const uint8_t *bytes,
                 size_t n, const cap_t *held, cap_walk_fn fn, void *arg, cap_err_t *err)
{
    cap_hash_t h = w->nodes[idx].hash; /* the array may move while children are added */
    bool problems = (w->flags & CAP_WALK_VISIT_PROBLEMS) != 0;
    if (depth > w->res->depth)
        w->res->depth = depth;
    if (code == CAP_ENOTFOUND) {
        note_problem(w, idx, CAP_ENOTFOUND);
        return problems ? call_visitor(fn, arg, &h, CAP_ENOTFOUND, 0, 0, 0, depth) : CAP_OK;
    }
    if (code != CAP_OK) {
        if (err && err->code != code) {
            cap_err_set(err, code, "reading a blob failed");
            cap_err_set_hash(err, &h);
        }
        return code;
    }
    cap_t *own = (cap_t *)0;
    const cap_t *c = held;
    int rc = CAP_OK;
    if (!c && (w->flags & (CAP_WALK_DECODE | CAP_WALK_VERIFY))) {
        rc = cap_persist_decode(&h, bytes, n, w->a, (w->flags & CAP_WALK_VERIFY) != 0, &own,
                                (cap_err_t *)0);
        c = own;
    } else if (!c) {
        rc = cap_wire_for_each_child(bytes, n, no_child, (void *)0, (cap_err_t *)0);
    }
    if (rc == CAP_EDECODE || rc == CAP_EMISMATCH) {
        note_problem(w, idx, rc);
        return problems ? call_visitor(fn, arg, &h, rc, 0, 0, 0, depth) : CAP_OK;
    }
    if (rc)
        return rc; /* CAP_ENOMEM */
    w->res->caps++;
    w->res->bytes += held ? 0 : n;
    int vr = call_visitor(fn, arg, &h, CAP_OK, held ? (const uint8_t *)0 : bytes,
                          held ? 0 : n, c, depth);
    if (vr == CAP_OK) {
        w->cur = idx;
        rc = c ? cap_for_each_child(c, add_child, w) : cap_wire_for_each_child(bytes, n, add_child, w, (cap_err_t *)0);
    } else if (vr != CAP_WALK_SKIP) {
        rc = vr;
    }
    cap_release(own);
    return rc;
}

/* The walk ----------------------------------------------------------------------------------- */

typedef struct batch_mem {
    cap_hash_t *hashes;
    uint8_t **bytes;
    size_t *lens;
    int *codes;
    cap_t **caps;
    void *block;
    size_t size;
} batch_mem_t;

static int batch_alloc(const cap_alloc_t *a, size_t k, batch_mem_t *m)
{
    size_t per = sizeof(cap_hash_t) + sizeof(uint8_t *) + sizeof(size_t) + sizeof(cap_t *) +
                 sizeof(int);
    if (k > SIZE_MAX / per)
        return CAP_ENOMEM;
    m->size = k * per;
    uint8_t *p = a->allocate(a->ctx, m->size);
    if (!p)
        return CAP_ENOMEM;
    m->block = p;
    /* Largest alignment first. */
    m->hashes = (cap_hash_t *)(void *)p;
    m->bytes = (uint8_t **)(void *)(p + k * sizeof(cap_hash_t));
    m->lens = (size_t *)(void *)(p + k * (sizeof(cap_hash_t) + sizeof(uint8_t *)));
    m->caps = (cap_t **)(void *)(p + k * (sizeof(cap_hash_t) + sizeof(uint8_t *) + sizeof(size_t)));
    m->codes = (int *)(void *)(p + k * (sizeof(cap_hash_t) + sizeof(uint8_t *) + sizeof(size_t) +
                                        sizeof(cap_t *)));
    return CAP_OK;
}

/* Free what a batch still holds from item j on. */
static void batch_drop(const cap_alloc_t *a, batch_mem_t *m, size_t j, size_t k)
{
    for (; j < k; j++) {
        if (m->bytes[j] && m->lens[j])
            a->deallocate(a->ctx, m->bytes[j], m->lens[j]);
        m->bytes[j] = (uint8_t *)0;
        cap_release(m->caps[j]);
        m->caps[j] = (cap_t *)0;
    }
}

static int check_options(const cap_walk_options_t *opt, cap_err_t *err)
{
    if (!opt)
        return CAP_OK;
    if (opt->size != 0 && opt->size < sizeof *opt)
        return cap_err_set(err, CAP_EINVAL, "walk options: size too small");
    if (opt->flags & ~(CAP_WALK_DECODE | CAP_WALK_VERIFY | CAP_WALK_VISIT_PROBLEMS))
        return cap_err_set(err, CAP_EINVAL, "walk options: unknown flag");
    return CAP_OK;
}

static int run(walker_t *w, const walk_source_t *src, const cap_hash_t *roots, size_t nroots,
               size_t batch, cap_walk_fn fn, void *arg, cap_err_t *err)
{
    /* Given nodes first, all of them, so that none is ever asked for. */
    for (size_t i = 0; i < src->ngiven; i++) {
        cap_hash_t h;
        (void)src->given(src->ctx, i, &h);
        int rc = add_node(w, &h, WALK_NONE, WALK_GIVEN, (uint32_t)i, (bool *)0);
        if (rc)
            return rc;
    }
    size_t ngiven_nodes = w->n;
    for (size_t i = 0; i < nroots; i++) {
        int rc = add_node(w, &roots[i], WALK_NONE, 0, 0, (bool *)0);
        if (rc)
            return rc;
    }
    size_t level_end = w->n;
    for (size_t idx = 0; idx < ngiven_nodes; idx++) {
        cap_hash_t h;
        const cap_t *c = src->given(src->ctx, w->nodes[idx].index, &h);
        int rc = visit(w, (uint32_t)idx, 0, CAP_OK, (const uint8_t *)0, 0, c, fn, arg, err);
        if (rc)
            return rc;
    }
    batch_mem_t m;
    int rc = batch_alloc(w->a, batch, &m);
    if (rc)
        return rc;
    uint32_t depth = 0;
    size_t head = ngiven_nodes;
    while (rc == CAP_OK && head < w->n) {
        size_t k = w->n - head < batch ? w->n - head : batch;
        for (size_t j = 0; j < k; j++) {
            m.hashes[j] = w->nodes[head + j].hash;
            m.bytes[j] = (uint8_t *)0;
            m.lens[j] = 0;
            m.codes[j] = CAP_EBACKEND;
            m.caps[j] = (cap_t *)0;
        }
        walk_batch_t b = {k, m.hashes, m.bytes, m.lens, m.codes, m.caps, 0};
        rc = src->read(src->ctx, &b, err);
        w->res->reads += b.calls;
        for (size_t j = 0; j < k && rc == CAP_OK; j++) {
            size_t idx = head + j;
            if (idx == level_end) { /* the level before is done: all of this one is known */
                depth++;
                level_end = w->n;
            }
            rc = visit(w, (uint32_t)idx, depth, m.codes[j], m.bytes[j], m.lens[j], m.caps[j], fn,
                       arg, err);
            batch_drop(w->a, &m, j, j + 1);
        }
        batch_drop(w->a, &m, 0, k);
        head += k;
    }
    w->a->deallocate(w->a->ctx, m.block, m.size);
    return rc;
}

int walk_run(const walk_source_t *src, const cap_alloc_t *a, const cap_hash_t *roots,
             size_t nroots, const cap_walk_options_t *opt, cap_walk_fn fn, void *arg,
             cap_walk_result_t *res, cap_err_t *err)
{
    if (err)
        cap_err_set(err, CAP_OK, (const char *)0);
    cap_walk_result_t local;
    cap_walk_result_t *r = res ? res : &local;
    cap_memset(r, 0, sizeof *r);
    if (!src || !a || (!roots && nroots))
        return cap_err_set(err, CAP_EINVAL, "NULL argument");
    int rc = check_options(opt, err);
    if (rc)
        return rc;
    size_t batch = walk_batch_size(opt);
    walker_t w;
    cap_memset(&w, 0, sizeof w);
    w.a = a;
    w.flags = opt ? opt->flags : 0u;
    w.res = r;
    rc = run(&w, src, roots, nroots, batch, fn, arg, err);
    if (rc == CAP_OK && r->missing)
        rc = problem_err(&w, &w.first_missing, CAP_EBLOBMISSING, err);
    else if (rc == CAP_OK && r->bad) {
        const cap_walk_problem_t *p = &r->problems[0];
        for (size_t i = 0; i < r->nproblems; i++)
            if (r->problems[i].code != CAP_ENOTFOUND) {
                p = &r->problems[i];
                break;
            }
        rc = problem_err(&w, p, p->code, err);
    } else if (rc == CAP_ENOMEM && err && err->code != CAP_ENOMEM) {
        cap_err_set(err, CAP_ENOMEM, "out of memory");
    }
    if (w.nodes)
        a->deallocate(a->ctx, w.nodes, w.cap * sizeof(wnode_t));
    if (w.table)
        a->deallocate(a->ctx, w.table, sizeof(uint32_t) << w.log);
    return rc;
}

/* Straight from one backend ------------------------------------------------------------------ */

typedef struct backend_src {
    const cap_backend_t *b;
    const cap_alloc_t *a;
} backend_src_t;

static int backend_read(void *ctx, walk_batch_t *bt, cap_err_t *err)
{
    const backend_src_t *s = ctx;
    bt->calls = 1;
    return cap_backend_read_many(s->b, bt->hashes, bt->n, s->a, bt->bytes, bt->lens, bt->codes, err);
}

int cap_backend_walk(const cap_backend_t *b, const cap_hash_t *roots, size_t nroots,
                     const cap_walk_options_t *opt, const cap_alloc_t *a, cap_walk_fn fn,
                     void *arg, cap_walk_result_t *res, cap_err_t *err)
{
    if (!b) {
        if (res)
            cap_memset(res, 0, sizeof *res);
        return cap_err_set(err, CAP_EINVAL, "NULL backend");
    }
    int rc = cap_backend_check(b, err);
    if (rc) {
        if (res)
            cap_memset(res, 0, sizeof *res);
        return rc;
    }
    backend_src_t s = {b, a};
    walk_source_t src = {backend_read, &s, 0, 0};
    return walk_run(&src, a, roots, nroots, opt, fn, arg, res, err);
}
