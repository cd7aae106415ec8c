/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore bench: the workloads of spec/capstore.md section 6.
 * Each workload builds its inputs untimed, times only the named operation,
 * and reports one line: "<name> <ops> <ns_per_op> <engine>". */
#ifndef CAPSTORE_BENCH_H
#define CAPSTORE_BENCH_H

#include <stdint.h>
#include <stdio.h>

/* xorshift64*, reset per workload to 0x9E3779B97F4A7C15 ^ FNV-1a-64(name). */
typedef struct bench_rng {
    uint64_t x;
} bench_rng_t;

static inline uint64_t bench_fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static inline void bench_rng_reset(bench_rng_t *r, const char *workload)
{
    r->x = 0x9E3779B97F4A7C15ull ^ bench_fnv1a64(workload);
}

static inline uint64_t bench_rng_next(bench_rng_t *r)
{
    uint64_t x = r->x;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->x = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static inline uint64_t bench_rng_below(bench_rng_t *r, uint64_t n) { return bench_rng_next(r) % n; }

/* A random 32-byte hash: 4 outputs, little-endian. */
static inline void bench_rng_hash(bench_rng_t *r, uint8_t out[32])
{
    for (int i = 0; i < 4; i++) {
        uint64_t v = bench_rng_next(r);
        for (int b = 0; b < 8; b++) out[8 * i + b] = (uint8_t)(v >> (8 * b));
    }
}

/* Fill n bytes with rng output (little-endian words). */
void bench_rng_bytes(bench_rng_t *r, uint8_t *out, size_t n);

/* Fisher-Yates from the top: j = below(i + 1). */
void bench_shuffle_u32(bench_rng_t *r, uint32_t *v, size_t n);

/* Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

typedef struct bench_opts {
    uint64_t n;       /* --n, default 100000 */
    int json;         /* --json */
    int progress;     /* progress lines on stderr */
    int reps;         /* --reps: passes over the selection, medians printed */
    const char *scratch; /* folder for the persistence workloads' databases: that of
                            the database --db, CAPSTORE_DB or the default names */
    const char *remote;  /* that database when it is a redis:// URI (the remote
                            workloads run only then), else NULL */
} bench_opts_t;

/* Print one result line (or JSON object) on stdout. */
void bench_report(const bench_opts_t *o, const char *name, uint64_t ops, double total_ns,
                  const char *engine);

/* A workload: returns 0 on success, non-zero (with a message on stderr) on failure. */
typedef int (*bench_fn)(const bench_opts_t *o);

typedef struct bench_workload {
    const char *name;
    bench_fn fn;
} bench_workload_t;

/* Workloads (bench_hash.c, bench_store.c, bench_persist.c). */
int bench_node_hash(const bench_opts_t *o);
int bench_cnode_hash(const bench_opts_t *o);
int bench_data_hash(const bench_opts_t *o);
int bench_publish(const bench_opts_t *o);
int bench_publish_batch(const bench_opts_t *o);
int bench_lookup_hit(const bench_opts_t *o);
int bench_lookup_miss(const bench_opts_t *o);
int bench_lookup_batch(const bench_opts_t *o);
int bench_promote_cow(const bench_opts_t *o);
int bench_sweep_chain(const bench_opts_t *o);
int bench_sweep_few(const bench_opts_t *o);
int bench_settle_tree(const bench_opts_t *o);
int bench_settle_tree_mt(const bench_opts_t *o);
int bench_lookup_mt(const bench_opts_t *o);

/* Entry point for "capstore bench". */
int bench_main(int argc, char **argv);

#endif
