/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore dot FILE...: the cap graph of wire files as Graphviz DOT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_dot.h"
#include "cli.h"
#include "db_caps.h"

static const char usage[] = "capstore dot FILE... | --db PATH ROOT...";

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
           "With --db PATH, the arguments are caps of the database PATH (each a hash, a\n"
           "unique prefix of at least 4 hex digits or a root name) and the graph drawn is\n"
           "their whole closure, read from the database (each cap verified): e.g.\n"
           "capstore dot --db capstore.lmdb demo.\n\n"
           "Exit status: 0 success, 1 unreadable or malformed input (the message names the\n"
           "rule broken and its byte offset), 2 usage error.\n",
           usage);
}

/* --db PATH: the closure of the caps the arguments name. */
static int dot_db(const char *path, char **args, int n)
{
    if (n < 1) return cli_usage_error("dot", usage, "missing ROOT");
    cap_dot_node_t *nodes;
    size_t count;
    int rc = db_caps_closure("dot", usage, path, args, n, &nodes, &count);
    if (rc != CLI_OK) return rc;
    if (cap_dot_write(stdout, nodes, count, NULL) != CAP_OK) {
        cli_error("dot", "out of memory");
        rc = CLI_EBADINPUT;
    }
    for (size_t i = 0; i < count; i++) cap_release((cap_t *)nodes[i].cap);
    free(nodes);
    return rc;
}

int cmd_dot(int argc, char **argv)
{
    int npos;
    bool want_help;
    cli_opt_t opts[] = {{"--db", true, false, NULL}, {NULL, false, false, NULL}};
    int rc = cli_parse_args("dot", usage, argc, argv, opts, &want_help, &npos);
    if (rc != CLI_OK) return rc;
    if (want_help) {
        help();
        return CLI_OK;
    }
    if (opts[0].seen) return dot_db(opts[0].value, argv + 1, npos);
    if (npos < 1) return cli_usage_error("dot", usage, "missing FILE");
    int stdin_uses = 0;
    for (int i = 1; i <= npos; i++) stdin_uses += strcmp(argv[i], "-") == 0;
    if (stdin_uses > 1) return cli_usage_error("dot", usage, "standard input ('-') given twice");

    cap_dot_node_t *nodes = calloc((size_t)npos, sizeof *nodes);
    int status = CLI_OK;
    if (!nodes) {
        cli_error("dot", "out of memory");
        return CLI_EBADINPUT;
    }
    for (int i = 0; i < npos; i++) {
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
        /* A file given twice (same hash) is one node: its entry stays NULL. */
        bool dup = false;
        for (int k = 0; k < i; k++)
            if (nodes[k].cap && memcmp(&nodes[k].hash, &nodes[i].hash, sizeof(cap_hash_t)) == 0) dup = true;
        if (dup)
            cap_release(c);
        else
            nodes[i].cap = c;
    }
    if (status == CLI_OK) {
        if (cap_dot_write(stdout, nodes, (size_t)npos, NULL) != CAP_OK) {
            cli_error("dot", "out of memory");
            status = CLI_EBADINPUT;
        } else if (fflush(stdout) != 0 || ferror(stdout)) {
            cli_error("dot", "error writing standard output");
            status = CLI_EBADINPUT;
        }
    }
    for (int i = 0; i < npos; i++) cap_release((cap_t *)nodes[i].cap);
    free(nodes);
    return status;
}
