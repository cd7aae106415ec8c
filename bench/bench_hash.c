/* Hash-kernel workloads: node_hash. */
#include <stdlib.h>

#include "bench.h"
#include "capstore/sha256.h"

int bench_node_hash(const bench_opts_t *o)
{
    bench_rng_t r;
    bench_rng_reset(&r, "node_hash");
    size_t n = (size_t)o->n;
    uint8_t *in = malloc(64 * n), *out = malloc(32 * n);
    if (!in || !out) {
        fprintf(stderr, "node_hash: out of memory for %zu nodes\n", n);
        free(in);
        free(out);
        return 1;
    }
    bench_rng_bytes(&r, in, 64 * n);
    /* One untimed pass first, as the peers warm up: it faults the output
     * pages in and lets the core leave its idle clock, so the timed call
     * measures the hashing itself. */
    cap_sha256_nodes(out, in, n);

    uint64_t t0 = bench_now_ns();
    cap_sha256_nodes(out, in, n);
    uint64_t t1 = bench_now_ns();

    bench_report(o, "node_hash", n, (double)(t1 - t0), "capstore");
    free(in);
    free(out);
    return 0;
}
