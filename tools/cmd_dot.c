/* capstore dot FILE...: the cap graph of wire files as Graphviz DOT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] = "capstore dot FILE...";

static void help(void)
{
    printf("usage: %s\n\n"
           "Decode each FILE (the wire form of one cap; '-' reads standard input) and print\n"
           "the cap graph in Graphviz DOT on standard output: one node per cap, labelled\n"
           "with its kind and short hash (the first 8 hex digits), and one edge per target:\n"
           "a CNode's slots (labelled with the slot number), an Instance's root_cnode, an\n"
           "Image's pinned and initial entries (\"pinned N\", \"initial N\"). A target that is\n"
           "the hash of a cap given in another FILE points to that cap's node; any other\n"
           "target points to a small dashed placeholder node showing its short hash.\n"
           "Render with e.g.: capstore dot a.cap b.cap | dot -Tpng -o graph.png\n\n"
           "Exit status: 0 success, 1 unreadable or malformed input (the message names the\n"
           "rule broken and its byte offset), 2 usage error.\n",
           usage);
}

typedef struct dot_node {
    cap_hash_t hash;
    cap_t *cap; /* NULL for a duplicate of an earlier file (same hash) */
} dot_node_t;

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

/* Visit every target of a cap: fn(ctx, from, to, label). */
typedef bool (*edge_fn)(void *ctx, const cap_hash_t *from, const cap_hash_t *to, const char *label);

static bool each_edge(const dot_node_t *nd, edge_fn fn, void *ctx)
{
    const cap_t *c = nd->cap;
    char label[48];
    switch (cap_kind(c)) {
    case CAP_KIND_CNODE: {
        size_t n = cap_cnode_count(c);
        for (size_t i = 0; i < n; i++) {
            uint32_t slot;
            cap_target_t t;
            if (cap_cnode_entry(c, i, &slot, &t) != CAP_OK || t.kind != CAP_TARGET_HASH) continue;
            snprintf(label, sizeof label, "%lu", (unsigned long)slot);
            if (!fn(ctx, &nd->hash, &t.hash, label)) return false;
        }
        break;
    }
    case CAP_KIND_INSTANCE: {
        cap_target_t t = cap_instance_root_cnode(c);
        if (t.kind == CAP_TARGET_HASH && !fn(ctx, &nd->hash, &t.hash, "root_cnode")) return false;
        break;
    }
    case CAP_KIND_IMAGE: {
        cap_image_desc_t d;
        memset(&d, 0, sizeof d);
        cap_image_view(c, &d);
        for (size_t i = 0; i < d.pinned_len; i++) {
            snprintf(label, sizeof label, "pinned %lu", (unsigned long)d.pinned[i].slot);
            if (!fn(ctx, &nd->hash, &d.pinned[i].cap_hash, label)) return false;
        }
        for (size_t i = 0; i < d.initial_len; i++) {
            snprintf(label, sizeof label, "initial %lu", (unsigned long)d.initial[i].slot);
            if (!fn(ctx, &nd->hash, &d.initial[i].cap_hash, label)) return false;
        }
        break;
    }
    case CAP_KIND_DATA:
    case CAP_KIND_TYPE: break;
    }
    return true;
}

typedef struct collect_ctx {
    const hash_set_t *given;
    hash_set_t *placeholders;
} collect_ctx_t;

static bool collect_placeholder(void *ctx, const cap_hash_t *from, const cap_hash_t *to, const char *label)
{
    collect_ctx_t *cc = ctx;
    (void)from;
    (void)label;
    if (set_has(cc->given, to)) return true;
    return set_add(cc->placeholders, to);
}

static bool print_edge(void *ctx, const cap_hash_t *from, const cap_hash_t *to, const char *label)
{
    (void)ctx;
    char a[65], b[65];
    cli_hex(a, from->bytes, 32);
    cli_hex(b, to->bytes, 32);
    printf("  \"%s\" -> \"%s\" [label=\"%s\"];\n", a, b, label);
    return true;
}

int cmd_dot(int argc, char **argv)
{
    int npos;
    bool want_help;
    int rc = cli_parse_args("dot", usage, argc, argv, NULL, &want_help, &npos);
    if (rc != CLI_OK) return rc;
    if (want_help) {
        help();
        return CLI_OK;
    }
    if (npos < 1) return cli_usage_error("dot", usage, "missing FILE");
    int stdin_uses = 0;
    for (int i = 1; i <= npos; i++) stdin_uses += strcmp(argv[i], "-") == 0;
    if (stdin_uses > 1) return cli_usage_error("dot", usage, "standard input ('-') given twice");

    dot_node_t *nodes = calloc((size_t)npos, sizeof *nodes);
    hash_set_t given = {NULL, 0, 0}, placeholders = {NULL, 0, 0};
    int status = CLI_OK;
    if (!nodes) {
        cli_error("dot", "out of memory");
        return CLI_EBADINPUT;
    }
    for (int i = 0; i < npos && status == CLI_OK; i++) {
        cap_t *c;
        if (cli_decode_file("dot", argv[i + 1], &c, NULL) != CLI_OK) {
            status = CLI_EBADINPUT;
            break;
        }
        int e = cap_hash(c, &nodes[i].hash);
        if (e != CAP_OK) {
            cli_error("dot", "%s: %s", cli_display_name(argv[i + 1]), cap_strerror(e));
            cap_release(c);
            status = CLI_EBADINPUT;
            break;
        }
        bool dup = false;
        for (int k = 0; k < i; k++)
            if (nodes[k].cap && memcmp(&nodes[k].hash, &nodes[i].hash, sizeof(cap_hash_t)) == 0) dup = true;
        if (dup) {
            cap_release(c);
            continue;
        }
        nodes[i].cap = c;
        if (!set_add(&given, &nodes[i].hash)) {
            cli_error("dot", "out of memory");
            status = CLI_EBADINPUT;
        }
    }
    set_finish(&given);
    collect_ctx_t cc = {&given, &placeholders};
    for (int i = 0; i < npos && status == CLI_OK; i++)
        if (nodes[i].cap && !each_edge(&nodes[i], collect_placeholder, &cc)) {
            cli_error("dot", "out of memory");
            status = CLI_EBADINPUT;
        }
    set_finish(&placeholders);

    if (status == CLI_OK) {
        printf("digraph capstore {\n"
               "  rankdir=LR;\n"
               "  node [fontname=\"monospace\", shape=box];\n"
               "  edge [fontname=\"monospace\", fontsize=10];\n");
        for (int i = 0; i < npos; i++) {
            if (!nodes[i].cap) continue;
            char hex[65];
            cli_hex(hex, nodes[i].hash.bytes, 32);
            printf("  \"%s\" [label=\"%s\\n%.8s\"];\n", hex, cli_kind_name(cap_kind(nodes[i].cap)), hex);
        }
        for (size_t i = 0; i < placeholders.n; i++) {
            char hex[65];
            cli_hex(hex, placeholders.v[i].bytes, 32);
            printf("  \"%s\" [label=\"%.8s\", shape=ellipse, style=dashed, fontsize=9];\n", hex, hex);
        }
        for (int i = 0; i < npos; i++)
            if (nodes[i].cap) each_edge(&nodes[i], print_edge, NULL);
        printf("}\n");
        if (fflush(stdout) != 0 || ferror(stdout)) {
            cli_error("dot", "error writing standard output");
            status = CLI_EBADINPUT;
        }
    }
    for (int i = 0; i < npos; i++) cap_release(nodes[i].cap);
    free(nodes);
    free(given.v);
    free(placeholders.v);
    return status;
}
