/* Cap hashing workloads: cnode_hash, data_hash. */
#include "bench.h"

int bench_cnode_hash(const bench_opts_t *o)
{
    (void)o;
    fprintf(stderr, "cnode_hash: not implemented yet\n");
    return 1;
}

int bench_data_hash(const bench_opts_t *o)
{
    (void)o;
    fprintf(stderr, "data_hash: not implemented yet\n");
    return 1;
}
