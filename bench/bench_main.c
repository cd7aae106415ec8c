/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* "capstore bench": option parsing, the workload table, result lines. */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bench_life.h"
#include "bench_persist.h"
#include "bench_remote.h"
#include "capstore/host.h"
#include "cli.h"

static const bench_workload_t workloads[] = {
    {"node_hash", bench_node_hash},
    {"cnode_hash", bench_cnode_hash},
    {"publish", bench_publish},
    {"publish_batch", bench_publish_batch},
    {"lookup_hit", bench_lookup_hit},
    {"lookup_batch", bench_lookup_batch},
    {"lookup_miss", bench_lookup_miss},
    {"promote_cow", bench_promote_cow},
    {"sweep_chain", bench_sweep_chain},
    {"sweep_few", bench_sweep_few},
    {"settle_tree", bench_settle_tree},
    {"settle_tree_mt", bench_settle_tree_mt},
    {"data_hash", bench_data_hash},
    {"lookup_mt", bench_lookup_mt},
    {"persist_put", bench_persist_put},
    {"persist_put_raw", bench_persist_put_raw},
    {"persist_get_cold", bench_persist_get_cold},
    {"persist_get_raw", bench_persist_get_raw},
    {"persist_get_essential", bench_persist_get_essential},
    {"gc_collect", bench_gc_collect}, /* bench_life.c: with their raw baselines */
    {"export", bench_export},
    {"import", bench_import},
    {"remote_put", bench_remote_put},
    {"remote_get_raw", bench_remote_get_raw},
    {"remote_get_cold", bench_remote_get_cold},
    {"redis_set", bench_redis_set},
    {"redis_get", bench_redis_get},
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

void bench_rng_bytes(bench_rng_t *r, uint8_t *out, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t v = bench_rng_next(r);
        for (int b = 0; b < 8 && i < n; b++, i++) out[i] = (uint8_t)(v >> (8 * b));
    }
}

void bench_shuffle_u32(bench_rng_t *r, uint32_t *v, size_t n)
{
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)bench_rng_below(r, (uint64_t)i + 1);
        uint32_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int json_first = 1;

static void print_result(const bench_opts_t *o, const char *name, uint64_t ops, double per,
                         const char *engine)
{
    if (o->json) {
        printf("%s{\"name\":\"%s\",\"ops\":%llu,\"ns_per_op\":%.1f,\"engine\":\"%s\"}",
               json_first ? "[\n  " : ",\n  ", name, (unsigned long long)ops, per, engine);
        json_first = 0;
    } else {
        printf("%s %llu %.1f %s\n", name, (unsigned long long)ops, per, engine);
    }
    fflush(stdout);
}

/* With --reps R > 1 the results of each pass are kept and the median of each
 * line is printed after the last pass (as the Rust peer's --reps does). */
#define MAX_RESULTS 64
#define MAX_REPS 99
typedef struct result {
    const char *name, *engine; /* string literals of the workloads */
    uint64_t ops;
    double per[MAX_REPS];
    int n;
} result_t;
static result_t results[MAX_RESULTS];
static int nresults;

void bench_report(const bench_opts_t *o, const char *name, uint64_t ops, double total_ns,
                  const char *engine)
{
    double per = ops ? total_ns / (double)ops : 0.0;
    if (o->reps <= 1) {
        print_result(o, name, ops, per, engine);
        return;
    }
    result_t *r = NULL;
    for (int i = 0; i < nresults && !r; i++)
        if (strcmp(results[i].name, name) == 0 && strcmp(results[i].engine, engine) == 0)
            r = &results[i];
    if (!r) {
        if (nresults == MAX_RESULTS) return; /* more lines than workloads print: not reached */
        r = &results[nresults++];
        r->name = name;
        r->engine = engine;
    }
    r->ops = ops;
    if (r->n < MAX_REPS) r->per[r->n++] = per;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_medians(const bench_opts_t *o)
{
    for (int i = 0; i < nresults; i++) {
        result_t *r = &results[i];
        qsort(r->per, (size_t)r->n, sizeof r->per[0], cmp_double);
        double med = r->n % 2 ? r->per[r->n / 2] : (r->per[r->n / 2 - 1] + r->per[r->n / 2]) / 2;
        print_result(o, r->name, r->ops, med, r->engine);
    }
}

static const char usage_line[] = "capstore bench [--n N] [--only a,b,...] [--reps R] [--json] [--db PATH]";

static void workload_list(FILE *f)
{
    for (size_t i = 0; i < NWORKLOADS; i++) fprintf(f, " %s", workloads[i].name);
    fprintf(f, "\n");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: %s\n"
               "Runs the workloads of spec/capstore.md section 6 and prints\n"
               "\"<name> <ops> <ns_per_op> capstore\" per workload; with --reps R the\n"
               "whole selection runs R times and each line gives the median.\n\n"
               "  --n N          operations per workload (default 100000)\n"
               "  --only a,b     run these workloads only\n"
               "  --reps R       R passes (1..%d), the median of each line\n"
               "  --json         a JSON array instead of lines\n"
               "  --db PATH      the persistence workloads write scratch databases in a\n"
               "                 temporary folder beside PATH (else $CAPSTORE_DB, else\n"
               "                 ./capstore.lmdb), so that they time its disk; PATH itself\n"
               "                 is never opened, and the folder is removed after. A\n"
               "                 redis://HOST:PORT URI instead runs the remote workloads\n"
               "                 on that Redis server or cluster, with redis-benchmark's\n"
               "                 SET and GET beside them (docs/redis.md); without one\n"
               "                 they are left out\n\n"
               "Workloads:",
            usage_line, MAX_REPS);
    workload_list(f);
}

/* A positive decimal integer no larger than `max`, digits only (strtoull
 * alone would take "-5" as 2^64 - 5). */
static int parse_count(const char *s, uint64_t max, uint64_t *out)
{
    if (!*s) return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10) return -1;
        v = v * 10 + d;
    }
    if (v == 0) return -1;
    *out = v;
    return 0;
}

static int selected(const char *only, const char *name)
{
    if (!only) return 1;
    size_t len = strlen(name);
    for (const char *p = only; *p;) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        if (l == len && strncmp(p, name, l) == 0) return 1;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

/* Every name of --only is a workload; else list them. */
static int check_only(const char *only)
{
    if (!*only) return cli_usage_error("bench", usage_line, "--only wants workload names");
    for (const char *p = only;;) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        int known = 0;
        for (size_t i = 0; i < NWORKLOADS; i++)
            if (strlen(workloads[i].name) == l && strncmp(workloads[i].name, p, l) == 0) known = 1;
        if (!known) {
            fprintf(stderr, "capstore bench: unknown workload '%.*s'; the workloads are:", (int)l, p);
            workload_list(stderr);
            return CLI_EUSAGE;
        }
        if (!comma) return CLI_OK;
        p = comma + 1;
    }
}

static bool is_remote(const char *name)
{
    return strncmp(name, "remote_", 7) == 0 || strncmp(name, "redis_", 6) == 0;
}

static int run(const bench_opts_t *o, const char *only)
{
    cap_sha256_select_from_env();
    int status = 0;
    for (int rep = 0; rep < o->reps && status == 0; rep++) {
        for (size_t i = 0; i < NWORKLOADS; i++) {
            if (!selected(only, workloads[i].name)) continue;
            /* The remote ones need a tier: --db redis://... */
            if (!o->remote && !only && is_remote(workloads[i].name)) continue;
            if (o->progress)
                fprintf(stderr, "bench: %s (n=%llu, pass %d of %d)...\n", workloads[i].name,
                        (unsigned long long)o->n, rep + 1, o->reps);
            if (workloads[i].fn(o) != 0) {
                fprintf(stderr, "capstore bench: workload %s failed\n", workloads[i].name);
                status = 1;
            }
        }
    }
    if (o->reps > 1) print_medians(o);
    if (o->json) printf(json_first ? "[]\n" : "\n]\n");
    return status;
}

int bench_main(int argc, char **argv)
{
    bench_opts_t o = {.n = 100000, .json = 0, .progress = isatty(2), .reps = 1};
    cli_opt_t opts[] = {{"--n", true, false, NULL},    {"--only", true, false, NULL},
                        {"--reps", true, false, NULL}, {"--json", false, false, NULL},
                        {"--db", true, false, NULL},   {NULL, false, false, NULL}};
    bool help;
    int npos;
    int rc = cli_parse_args("bench", usage_line, argc, argv, opts, &help, &npos);
    if (rc != CLI_OK) return rc;
    if (help) {
        usage(stdout);
        return 0;
    }
    if (npos) return cli_usage_error("bench", usage_line, "unexpected argument '%s'", argv[1]);
    /* Bounded so that N times a workload's few dozen bytes per operation
     * cannot overflow. */
    if (opts[0].seen && parse_count(opts[0].value, (uint64_t)1 << 40, &o.n) != 0)
        return cli_usage_error("bench", usage_line, "--n wants a positive integer up to 2^40, got '%s'",
                               opts[0].value);
    const char *only = opts[1].seen ? opts[1].value : NULL;
    if (only && (rc = check_only(only)) != CLI_OK) return rc;
    uint64_t reps = 1;
    if (opts[2].seen && parse_count(opts[2].value, MAX_REPS, &reps) != 0)
        return cli_usage_error("bench", usage_line, "--reps wants an integer in 1..%d, got '%s'", MAX_REPS,
                               opts[2].value);
    o.reps = (int)reps;
    o.json = opts[3].seen;
    /* A Redis tier runs the remote workloads; the persist ones still use a
     * scratch folder, the current one. */
    const char *named = cli_db_path(opts[4].seen ? opts[4].value : NULL);
    if (strncmp(named, "redis://", 8) == 0) {
        o.remote = named;
        named = CLI_DB_DEFAULT;
    }
    /* The scratch folder: that of the database the one rule names. */
    char *db = strdup(named);
    if (!db) {
        fprintf(stderr, "capstore bench: out of memory\n");
        return 1;
    }
    o.scratch = dirname(db);
    rc = run(&o, only);
    free(db);
    return rc;
}
