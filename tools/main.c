/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore — command-line entry: dispatch to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "capstore/host.h"
#include "cli.h"
#include "close_stdout.h"

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand_t;

static const subcommand_t subcommands[] = {
    {"demo", cmd_demo, "a kernel-like session end to end on ./capstore.lmdb, drawn as DOT"},
    {"hash", cmd_hash, "print the cap hash of wire files"},
    {"decode", cmd_decode, "wire file -> editable JSON (docs/cap-json.md)"},
    {"encode", cmd_encode, "JSON -> wire bytes (round trip exact)"},
    {"inspect", cmd_inspect, "summarise wire files: kind, hash, sizes, slots, pages"},
    {"dot", cmd_dot, "cap graph of wire files as Graphviz DOT"},
    {"db", cmd_db, "the LMDB blob database: stats, get, put, check"},
    {"vectors", cmd_vectors, "check conformance vector files (caps.txt format)"},
    {"bench", bench_main, "run the benchmark workloads"},
};
#define NSUB (sizeof subcommands / sizeof subcommands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: capstore <subcommand> [args]   (capstore help <subcommand>)\n"
               "       capstore --version\n\nsubcommands:\n");
    for (size_t i = 0; i < NSUB; i++) fprintf(f, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(f, "\nFILE arguments may be '-' for standard input. The database (demo, db,\n"
               "bench) is --db PATH, else $CAPSTORE_DB, else ./capstore.lmdb. Exit status:\n"
               "0 success, 1 bad input or a failed check, 2 usage error. man capstore.\n");
}

static const subcommand_t *find(const char *name)
{
    for (size_t i = 0; i < NSUB; i++)
        if (strcmp(name, subcommands[i].name) == 0) return &subcommands[i];
    return NULL;
}

/* `capstore help SUB` is `capstore SUB --help`. */
static int help(int argc, char **argv)
{
    if (argc < 3) {
        usage(stdout);
        return 0;
    }
    const subcommand_t *sub = find(argv[2]);
    if (!sub || argc > 3) {
        if (sub)
            fprintf(stderr, "capstore help: one subcommand at a time\n");
        else
            fprintf(stderr, "capstore help: unknown subcommand '%s'\n", argv[2]);
        usage(stderr);
        return 2;
    }
    char *args[] = {argv[2], "--help", NULL};
    return sub->run(2, args);
}

int main(int argc, char **argv)
{
    cli_check_stdout_at_exit(); /* every command, --help and --version included */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0) return help(argc, argv);
    if (strcmp(argv[1], "--version") == 0) {
        printf("capstore %s\n", CAPSTORE_VERSION);
        return 0;
    }
    cap_sha256_select_from_env();
    const subcommand_t *sub = find(argv[1]);
    if (sub) return sub->run(argc - 1, argv + 1);
    fprintf(stderr, "capstore: unknown subcommand '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
