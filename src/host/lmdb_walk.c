/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The page-by-page walk of LMDB's B-trees (lmdb_walk.h). Each page is read
 * into a buffer of its own with pread and checked before anything in it is
 * followed; a page reached twice is reported and not entered again, so a
 * damaged pointer cannot make the walk loop. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdb_walk.h"

/* The bounds a node's keys must keep, from the separators above it. */
typedef struct bound {
    const uint8_t *lo, *hi; /* NULL: open */
    size_t lo_n, hi_n;
} bound_t;

typedef struct tree {
    const char *name;
    int keys;
    size_t key_size;
    unsigned depth;
    bool is_free; /* the free database: read each value as a page list */
    bool named;   /* a named database: its records are not followed again */
} tree_t;

static void problem(cap_lmf_walk_t *w, uint64_t page, const uint8_t *key, size_t ksize, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void problem(cap_lmf_walk_t *w, uint64_t page, const uint8_t *key, size_t ksize, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    w->problems++;
    if (w->problem) w->problem(w->arg, page, key, ksize, text);
}

static int cmp_keys(int keys, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    if (keys == LMF_KEYS_INTEGER && an == 8 && bn == 8) {
        uint64_t x = cap_lmf_u64(a), y = cap_lmf_u64(b);
        return x < y ? -1 : x > y;
    }
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

static bool test_bit(const cap_lmf_walk_t *w, uint64_t p) { return (w->seen[p >> 3] >> (p & 7)) & 1; }
static void set_bit(cap_lmf_walk_t *w, uint64_t p) { w->seen[p >> 3] |= (uint8_t)(1u << (p & 7)); }

bool cap_lmf_walk_init(cap_lmf_walk_t *w, const cap_lmf_file_t *f, uint64_t last_pg, bool account)
{
    memset(w, 0, sizeof *w);
    w->f = f;
    w->last_pg = last_pg;
    if (account) {
        if (last_pg >= UINT64_MAX - 8 || (last_pg + 8) / 8 > SIZE_MAX) return false;
        w->seen = calloc((size_t)((last_pg + 8) / 8), 1);
        if (!w->seen) return false;
        set_bit(w, 0);
        if (last_pg >= 1) set_bit(w, 1);
    }
    return true;
}

void cap_lmf_walk_fini(cap_lmf_walk_t *w)
{
    free(w->seen);
    w->seen = NULL;
}

/* Claim page p for `what` (from page `from`): in range, and used once. */
static bool claim(cap_lmf_walk_t *w, uint64_t p, uint64_t from, const char *what)
{
    if (p < 2 || p > w->last_pg) {
        problem(w, from, NULL, 0, "%s page %llu is outside the file's pages (2..%llu)", what,
                (unsigned long long)p, (unsigned long long)w->last_pg);
        return false;
    }
    if (w->seen) {
        if (test_bit(w, p)) {
            problem(w, from, NULL, 0, "%s page %llu is used twice (a damaged page number, or a cycle)", what,
                    (unsigned long long)p);
            return false;
        }
        set_bit(w, p);
    }
    return true;
}

/* An overflow run holding a value of `dsize` bytes, starting at page p.
 * With `out`, the value is read into a new buffer (*out, free it). */
static bool overflow_run(cap_lmf_walk_t *w, uint64_t p, uint64_t from, uint64_t dsize, uint8_t **out)
{
    if (!claim(w, p, from, "an overflow")) return false;
    uint32_t ps = w->f->psize;
    uint8_t *page = malloc(ps);
    if (!page) return false;
    bool ok = false;
    if (!cap_lmf_read_page(w->f, p, page)) {
        problem(w, p, NULL, 0, "overflow page %llu cannot be read (past the end of the file)", (unsigned long long)p);
    } else if (cap_lmf_u64(page) != p) {
        problem(w, p, NULL, 0, "overflow page %llu says it is page %llu", (unsigned long long)p,
                (unsigned long long)cap_lmf_u64(page));
    } else if (!(cap_lmf_u16(page + 10) & LMF_P_OVERFLOW)) {
        problem(w, p, NULL, 0, "page %llu should start an overflow run but has flags 0x%x", (unsigned long long)p,
                cap_lmf_u16(page + 10));
    } else {
        uint64_t pages = cap_lmf_u32(page + 12);
        uint64_t need = (LMF_PAGEHDR - 1 + dsize) / ps + 1;
        if (pages < need) {
            problem(w, p, NULL, 0, "overflow run at page %llu has %llu pages; its value of %llu bytes needs %llu",
                    (unsigned long long)p, (unsigned long long)pages, (unsigned long long)dsize,
                    (unsigned long long)need);
        } else if (pages - 1 > w->last_pg - p) {
            problem(w, p, NULL, 0, "overflow run at page %llu of %llu pages runs past the last page %llu",
                    (unsigned long long)p, (unsigned long long)pages, (unsigned long long)w->last_pg);
        } else if (pages > w->f->size / ps - p) { /* also bounds the loop below when last_pg is absurd */
            problem(w, p, NULL, 0, "overflow run at page %llu of %llu pages runs past the end of the file",
                    (unsigned long long)p, (unsigned long long)pages);
        } else {
            ok = true;
            for (uint64_t i = 1; i < pages; i++)
                if (!claim(w, p + i, p, "an overflow")) ok = false;
            w->overflow += pages;
            if (ok && out) {
                uint8_t *v = dsize <= SIZE_MAX ? malloc(dsize ? (size_t)dsize : 1) : NULL;
                size_t done = 0, first = ps - LMF_PAGEHDR;
                if (v) {
                    size_t n = dsize < first ? (size_t)dsize : first;
                    memcpy(v, page + LMF_PAGEHDR, n);
                    done = n;
                }
                for (uint64_t i = 1; v && done < dsize; i++) {
                    if (!cap_lmf_read_page(w->f, p + i, page)) {
                        problem(w, p + i, NULL, 0, "overflow page %llu cannot be read (past the end of the file)",
                                (unsigned long long)(p + i));
                        free(v);
                        v = NULL;
                        ok = false;
                        break;
                    }
                    size_t n = dsize - done < ps ? (size_t)(dsize - done) : ps;
                    memcpy(v + done, page, n);
                    done += n;
                }
                *out = v;
                if (!v) ok = false;
            }
        }
    }
    free(page);
    return ok;
}

/* A free list record: a count, then that many page numbers. */
static void free_list(cap_lmf_walk_t *w, uint64_t page, const uint8_t *key, size_t ksize, const uint8_t *v, uint64_t n)
{
    if (n < 8) {
        problem(w, page, key, ksize, "a free list record of %llu bytes", (unsigned long long)n);
        return;
    }
    uint64_t count = cap_lmf_u64(v);
    if (count > (n - 8) / 8) {
        problem(w, page, key, ksize, "a free list record claims %llu pages in %llu bytes", (unsigned long long)count,
                (unsigned long long)n);
        return;
    }
    for (uint64_t i = 0; i < count; i++) {
        uint64_t p = cap_lmf_u64(v + 8 + 8 * i);
        if (!claim(w, p, page, "a free")) continue;
        w->free_pages++;
        if (w->free_page) w->free_page(w->arg, p);
    }
}

static void walk_page(cap_lmf_walk_t *w, const tree_t *t, uint64_t p, uint64_t from, unsigned level, bound_t b);

static void sub_tree(cap_lmf_walk_t *w, uint64_t page, const cap_lmf_node_t *n)
{
    cap_lmf_db_t d;
    const uint8_t *r = n->data;
    d.pad = cap_lmf_u32(r);
    d.flags = cap_lmf_u16(r + 4);
    d.depth = cap_lmf_u16(r + 6);
    d.branch_pages = cap_lmf_u64(r + 8);
    d.leaf_pages = cap_lmf_u64(r + 16);
    d.overflow_pages = cap_lmf_u64(r + 24);
    d.entries = cap_lmf_u64(r + 32);
    d.root = cap_lmf_u64(r + 40);
    if (d.root == LMF_INVALID_PGNO) return;
    if (d.depth == 0 || d.depth > LMF_MAX_DEPTH) {
        problem(w, page, n->key, n->ksize, "a named database of depth %u", d.depth);
        return;
    }
    /* Its pages are claimed (accounting) but counted in its own record, not
     * in the enclosing tree's; nor are its entries, where LMDB counts
     * duplicates. */
    uint64_t saved[4] = {w->branch, w->leaf, w->overflow, w->entries};
    tree_t t = {"named", LMF_KEYS_ANY, 0, d.depth, false, true};
    bound_t open = {NULL, NULL, 0, 0};
    walk_page(w, &t, d.root, page, 1, open);
    w->branch = saved[0];
    w->leaf = saved[1];
    w->overflow = saved[2];
    w->entries = saved[3];
}

static void leaf_node(cap_lmf_walk_t *w, const tree_t *t, uint64_t p, const cap_lmf_node_t *n)
{
    w->entries++;
    if (t->key_size && n->ksize != t->key_size && !(n->flags & LMF_F_SUBDATA))
        problem(w, p, n->key, n->ksize, "a key of %zu bytes in the %s database (%zu expected)", n->ksize, t->name,
                t->key_size);
    if ((n->flags & LMF_F_SUBDATA) && !(n->flags & LMF_F_BIGDATA)) {
        /* Only the main database names databases: one level, so a damaged
         * record cannot lead the walk round in circles even without the
         * page map. */
        if (t->named) problem(w, p, n->key, n->ksize, "a database record inside a named database");
        else sub_tree(w, p, n);
        return;
    }
    uint8_t *value = NULL;
    const uint8_t *v = n->data;
    if (n->flags & LMF_F_BIGDATA) {
        if (!overflow_run(w, cap_lmf_u64(n->data), p, n->dsize, t->is_free ? &value : NULL)) return;
        v = value;
    }
    if (t->is_free) free_list(w, p, n->key, n->ksize, v, n->dsize);
    free(value);
}

static void walk_page(cap_lmf_walk_t *w, const tree_t *t, uint64_t p, uint64_t from, unsigned level, bound_t b)
{
    if (!claim(w, p, from, level == 1 ? "the root" : "a child")) return;
    uint32_t ps = w->f->psize;
    uint8_t *page = malloc(ps);
    if (!page) {
        problem(w, p, NULL, 0, "out of memory");
        return;
    }
    if (!cap_lmf_read_page(w->f, p, page)) {
        problem(w, p, NULL, 0, "page %llu cannot be read (past the end of the file)", (unsigned long long)p);
        goto out;
    }
    if (cap_lmf_u64(page) != p) {
        problem(w, p, NULL, 0, "page %llu says it is page %llu", (unsigned long long)p,
                (unsigned long long)cap_lmf_u64(page));
        goto out;
    }
    uint16_t flags = cap_lmf_u16(page + 10);
    bool leaf = level == t->depth;
    uint16_t kind = flags & (LMF_P_BRANCH | LMF_P_LEAF | LMF_P_OVERFLOW | LMF_P_META | LMF_P_LEAF2);
    if (kind != (leaf ? LMF_P_LEAF : LMF_P_BRANCH)) {
        problem(w, p, NULL, 0, "page %llu of the %s database has flags 0x%x; a %s page was expected at depth %u",
                (unsigned long long)p, t->name, flags, leaf ? "leaf" : "branch", level);
        goto out;
    }
    const char *why = NULL;
    int nk = cap_lmf_numkeys(page, ps, &why);
    if (nk < 0 || nk == 0) {
        problem(w, p, NULL, 0, "page %llu: %s", (unsigned long long)p, nk < 0 ? why : "no keys");
        goto out;
    }
    if (leaf) w->leaf++;
    else w->branch++;
    const uint8_t *prev = NULL;
    size_t prev_n = 0;
    cap_lmf_node_t n, next;
    for (int i = 0; i < nk; i++) {
        why = cap_lmf_node(page, ps, !leaf, (unsigned)i, &n);
        if (why) {
            problem(w, p, NULL, 0, "page %llu, node %d: %s", (unsigned long long)p, i, why);
            goto out;
        }
        /* A branch page's first key is not stored: its child starts at the bound. */
        bool has_key = leaf || i > 0;
        if (has_key && t->keys != LMF_KEYS_ANY) {
            if ((prev && cmp_keys(t->keys, prev, prev_n, n.key, n.ksize) >= 0) ||
                (!prev && b.lo && cmp_keys(t->keys, b.lo, b.lo_n, n.key, n.ksize) > 0) ||
                (b.hi && cmp_keys(t->keys, n.key, n.ksize, b.hi, b.hi_n) >= 0)) {
                problem(w, p, n.key, n.ksize, "page %llu, node %d: a key out of order (the tree would not find it)",
                        (unsigned long long)p, i);
                goto out;
            }
            prev = n.key;
            prev_n = n.ksize;
        }
        if (leaf) {
            leaf_node(w, t, p, &n);
            continue;
        }
        bound_t cb = b;
        if (i > 0) {
            cb.lo = n.key;
            cb.lo_n = n.ksize;
        }
        if (i + 1 < nk) {
            if (cap_lmf_node(page, ps, true, (unsigned)i + 1, &next) == NULL) {
                cb.hi = next.key;
                cb.hi_n = next.ksize;
            }
        }
        walk_page(w, t, n.child, p, level + 1, cb);
    }
out:
    free(page);
}

void cap_lmf_walk_tree(cap_lmf_walk_t *w, const cap_lmf_db_t *db, const char *name, int keys, size_t key_size)
{
    w->branch = w->leaf = w->overflow = w->entries = 0;
    if (db->root == LMF_INVALID_PGNO) {
        if (db->entries || db->branch_pages || db->leaf_pages || db->overflow_pages)
            problem(w, UINT64_MAX, NULL, 0, "the %s database is empty but its record counts %llu entries", name,
                    (unsigned long long)db->entries);
        return;
    }
    tree_t t = {name, keys, key_size, db->depth, keys == LMF_KEYS_INTEGER, false};
    bound_t open = {NULL, NULL, 0, 0};
    uint64_t before = w->problems;
    walk_page(w, &t, db->root, UINT64_MAX, 1, open);
    if (w->problems != before) return; /* the counts cannot agree with a damaged tree */
    if (w->branch != db->branch_pages || w->leaf != db->leaf_pages || w->overflow != db->overflow_pages)
        problem(w, UINT64_MAX, NULL, 0,
                "the %s database's record counts %llu branch, %llu leaf, %llu overflow pages; the tree has %llu, %llu, %llu",
                name, (unsigned long long)db->branch_pages, (unsigned long long)db->leaf_pages,
                (unsigned long long)db->overflow_pages, (unsigned long long)w->branch, (unsigned long long)w->leaf,
                (unsigned long long)w->overflow);
    if (w->entries != db->entries)
        problem(w, UINT64_MAX, NULL, 0, "the %s database's record counts %llu entries; the tree holds %llu", name,
                (unsigned long long)db->entries, (unsigned long long)w->entries);
}

void cap_lmf_walk_free(cap_lmf_walk_t *w, const cap_lmf_db_t *free_db)
{
    w->free_pages = 0;
    cap_lmf_walk_tree(w, free_db, "free", LMF_KEYS_INTEGER, 8);
}

uint64_t cap_lmf_walk_unaccounted(const cap_lmf_walk_t *w, uint64_t *first)
{
    uint64_t n = 0;
    *first = UINT64_MAX;
    if (!w->seen) return 0;
    for (uint64_t p = 0; p <= w->last_pg; p++) {
        if (!test_bit(w, p)) {
            if (!n) *first = p;
            n++;
        }
    }
    return n;
}

/* Tail check ------------------------------------------------------------------------------ */

typedef struct tail {
    uint64_t from, to, hits;
} tail_t;

static void count_tail(void *arg, uint64_t p)
{
    tail_t *t = arg;
    if (p >= t->from && p <= t->to) t->hits++;
}

/* At most this many missing tail pages are looked up on the free list; a
 * file shorter than that is truncated. */
#define TAIL_MAX 65536u

bool cap_lmf_tail_is_free(const cap_lmf_file_t *f, uint64_t from, uint64_t to)
{
    if (f->in_use < 0 || from > to || to - from >= TAIL_MAX) return false;
    const cap_lmf_meta_t *m = &f->meta[f->in_use];
    cap_lmf_walk_t w;
    if (!cap_lmf_walk_init(&w, f, m->last_pg, true)) return false;
    tail_t t = {from, to, 0};
    w.free_page = count_tail;
    w.arg = &t;
    cap_lmf_walk_free(&w, &m->free_db);
    bool ok = w.problems == 0 && t.hits == to - from + 1;
    cap_lmf_walk_fini(&w);
    return ok;
}
