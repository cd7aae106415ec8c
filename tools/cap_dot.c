/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Graphviz DOT of a cap graph (see cap_dot.h). */
#include "cap_dot.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A sorted set of hashes, to tell caps given from placeholders. */
typedef struct hash_set {
    cap_hash_t *v;
    size_t n, cap;
} hash_set_t;

static int hash_cmp(const void *a, const void *b) { return memcmp(a, b, sizeof(cap_hash_t)); }

static bool set_add(hash_set_t *s, const cap_hash_t *h)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        cap_hash_t *nv = realloc(s->v, nc * sizeof *nv);
        if (!nv) return false;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = *h;
    return true;
}

/* Sort and drop duplicates. */
static void set_finish(hash_set_t *s)
{
    if (!s->n) return;
    qsort(s->v, s->n, sizeof *s->v, hash_cmp);
    size_t m = 1;
    for (size_t i = 1; i < s->n; i++)
        if (memcmp(&s->v[i], &s->v[m - 1], sizeof(cap_hash_t)) != 0) s->v[m++] = s->v[i];
    s->n = m;
}

static bool set_has(const hash_set_t *s, const cap_hash_t *h)
{
    return s->n && bsearch(h, s->v, s->n, sizeof *s->v, hash_cmp) != NULL;
}

typedef struct each_ctx {
    cap_dot_target_fn fn;
    void *ctx;
} each_ctx_t;

/* The core's definition of children (cap_for_each_child), labelled. */
static int each_child(void *arg, const cap_child_t *ch)
{
    const each_ctx_t *ec = arg;
    if (ch->target.kind != CAP_TARGET_HASH) return 0;
    char label[48];
    if (ch->field == CAP_CHILD_SLOT)
        snprintf(label, sizeof label, "%lu", (unsigned long)ch->index);
    else if (ch->field == CAP_CHILD_PINNED || ch->field == CAP_CHILD_INITIAL)
        snprintf(label, sizeof label, "%s %lu", cap_child_field_name(ch->field), (unsigned long)ch->index);
    else
        snprintf(label, sizeof label, "%s", cap_child_field_name(ch->field));
    return ec->fn(ec->ctx, &ch->target.hash, label) ? 0 : 1;
}

bool cap_dot_each_target(const cap_t *c, cap_dot_target_fn fn, void *ctx)
{
    each_ctx_t ec = {fn, ctx};
    return cap_for_each_child(c, each_child, &ec) == CAP_OK;
}

typedef struct collect_ctx {
    const hash_set_t *given;
    hash_set_t *placeholders;
} collect_ctx_t;

static bool collect_placeholder(void *ctx, const cap_hash_t *to, const char *label)
{
    collect_ctx_t *cc = ctx;
    (void)label;
    if (set_has(cc->given, to)) return true;
    return set_add(cc->placeholders, to);
}

typedef struct edge_ctx {
    FILE *f;
    const char *from; /* hex of the source node */
    size_t count;
} edge_ctx_t;

static bool print_edge(void *ctx, const cap_hash_t *to, const char *label)
{
    edge_ctx_t *ec = ctx;
    char b[65];
    cli_hex(b, to->bytes, 32);
    fprintf(ec->f, "  \"%s\" -> \"%s\" [label=\"%s\"];\n", ec->from, b, label);
    ec->count++;
    return true;
}

int cap_dot_write(FILE *f, const cap_dot_node_t *nodes, size_t n, size_t *nedges)
{
    hash_set_t given = {NULL, 0, 0}, placeholders = {NULL, 0, 0};
    int rc = CAP_OK;
    /* Placeholders are collected before anything is written, so that running
     * out of memory never leaves half a graph behind. */
    for (size_t i = 0; i < n && rc == CAP_OK; i++)
        if (nodes[i].cap && !set_add(&given, &nodes[i].hash)) rc = CAP_ENOMEM;
    set_finish(&given);
    collect_ctx_t cc = {&given, &placeholders};
    for (size_t i = 0; i < n && rc == CAP_OK; i++)
        if (nodes[i].cap && !cap_dot_each_target(nodes[i].cap, collect_placeholder, &cc)) rc = CAP_ENOMEM;
    set_finish(&placeholders);

    if (rc == CAP_OK) {
        fprintf(f, "digraph capstore {\n"
                   "  rankdir=LR;\n"
                   "  node [fontname=\"monospace\", shape=box];\n"
                   "  edge [fontname=\"monospace\", fontsize=10];\n");
        char hex[65];
        for (size_t i = 0; i < n; i++) {
            if (!nodes[i].cap) continue;
            cli_hex(hex, nodes[i].hash.bytes, 32);
            fprintf(f, "  \"%s\" [label=\"%s\\n%.8s\"];\n", hex, cli_kind_name(cap_kind(nodes[i].cap)), hex);
        }
        for (size_t i = 0; i < placeholders.n; i++) {
            cli_hex(hex, placeholders.v[i].bytes, 32);
            fprintf(f, "  \"%s\" [label=\"%.8s\", shape=ellipse, style=dashed, fontsize=9];\n", hex, hex);
        }
        edge_ctx_t ec = {f, hex, 0};
        for (size_t i = 0; i < n; i++) {
            if (!nodes[i].cap) continue;
            cli_hex(hex, nodes[i].hash.bytes, 32);
            cap_dot_each_target(nodes[i].cap, print_edge, &ec);
        }
        fprintf(f, "}\n");
        if (nedges) *nedges = ec.count;
    }
    free(given.v);
    free(placeholders.v);
    return rc;
}
