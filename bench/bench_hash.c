/* Hash-kernel workloads: node_hash. */
#include "bench.h"

int bench_node_hash(const bench_opts_t *o)
{
    (void)o;
    fprintf(stderr, "node_hash: not implemented yet\n");
    return 1;
}
