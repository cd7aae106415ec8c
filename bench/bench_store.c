/* Store workloads: publish, lookups, promote_cow, sweeps, settle_tree, lookup_mt. */
#include "bench.h"

int bench_publish(const bench_opts_t *o)
{
    (void)o;
    fprintf(stderr, "publish: not implemented yet\n");
    return 1;
}

int bench_lookup_hit(const bench_opts_t *o)
{
    (void)o;
    fprintf(stderr, "lookup_hit: not implemented yet\n");
    return 1;
}

int bench_lookup_miss(const bench_opts_t *o)
{
    (void)o;
    fprintf(stderr, "lookup_miss: not implemented yet\n");
    return 1;
}

int bench_promote_cow(const bench_opts_t *o)
{
    (void)o;
    fprintf(stderr, "promote_cow: not implemented yet\n");
    return 1;
}

int bench_sweep_chain(const bench_opts_t *o)
{
    (void)o;
    fprintf(stderr, "sweep_chain: not implemented yet\n");
    return 1;
}

int bench_sweep_few(const bench_opts_t *o)
{
    (void)o;
    fprintf(stderr, "sweep_few: not implemented yet\n");
    return 1;
}

int bench_settle_tree(const bench_opts_t *o)
{
    (void)o;
    fprintf(stderr, "settle_tree: not implemented yet\n");
    return 1;
}

int bench_lookup_mt(const bench_opts_t *o)
{
    (void)o;
    fprintf(stderr, "lookup_mt: not implemented yet\n");
    return 1;
}
