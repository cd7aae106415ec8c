/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Cap hashing workloads: cnode_hash, data_hash (spec/capstore.md section 6). */
#include <stdlib.h>

#include "bench.h"
#include "capstore/cap.h"
#include "capstore/host.h"

/* A CNode as `publish` builds it: size_log 8; 16 distinct slots, each drawn
 * as below(256) (redrawn on a duplicate), then given a random hash. */
static int build_publish_cnode(bench_rng_t *r, const cap_alloc_t *a, cap_t **out)
{
    cap_t *c;
    int rc = cap_cnode_new(&c, a, 8);
    if (rc) return rc;
    uint8_t used[256] = {0};
    for (int k = 0; k < 16; k++) {
        uint32_t slot;
        do {
            slot = (uint32_t)bench_rng_below(r, 256);
        } while (used[slot]);
        used[slot] = 1;
        cap_hash_t h;
        bench_rng_hash(r, h.bytes);
        cap_target_t t = cap_target_of_hash(&h);
        rc = cap_cnode_set(c, slot, &t);
        if (rc) {
            cap_release(c);
            return rc;
        }
    }
    *out = c;
    return CAP_OK;
}

int bench_cnode_hash(const bench_opts_t *o)
{
    const cap_alloc_t *a = cap_alloc_libc();
    bench_rng_t r;
    bench_rng_reset(&r, "cnode_hash");
    uint64_t n = o->n;
    cap_t **caps = calloc(n, sizeof *caps);
    if (!caps) {
        fprintf(stderr, "cnode_hash: out of memory\n");
        return 1;
    }
    int status = 0;
    uint64_t built = 0;
    for (; built < n; built++) {
        if (build_publish_cnode(&r, a, &caps[built]) != CAP_OK) {
            fprintf(stderr, "cnode_hash: building cnode %llu failed\n", (unsigned long long)built);
            status = 1;
            break;
        }
    }
    if (status == 0) {
        uint8_t sink = 0;
        uint64_t t0 = bench_now_ns();
        for (uint64_t i = 0; i < n; i++) {
            cap_hash_t h;
            if (cap_hash(caps[i], &h) != CAP_OK) {
                status = 1;
                break;
            }
            sink ^= h.bytes[i & 31];
        }
        uint64_t t1 = bench_now_ns();
        if (status)
            fprintf(stderr, "cnode_hash: cap_hash failed\n");
        else
            bench_report(o, "cnode_hash", n, (double)(t1 - t0), "capstore");
        if (o->progress) fprintf(stderr, "cnode_hash: checksum byte %02x\n", sink);
    }
    for (uint64_t i = 0; i < built; i++) cap_release(caps[i]);
    free(caps);
    return status;
}

int bench_data_hash(const bench_opts_t *o)
{
    const cap_alloc_t *a = cap_alloc_libc();
    const uint32_t ps = 4096;
    bench_rng_t r;
    bench_rng_reset(&r, "data_hash");
    uint64_t n = o->n;
    cap_t *d;
    uint8_t page[4096];
    if (cap_data_new(&d, a, ps) != CAP_OK || cap_data_resize(d, n) != CAP_OK) {
        fprintf(stderr, "data_hash: cannot make a Data cap of %llu pages\n", (unsigned long long)n);
        return 1;
    }
    for (uint64_t i = 0; i < n; i++) {
        bench_rng_bytes(&r, page, ps);
        if (cap_data_set_page(d, i, page, ps, NULL) != CAP_OK) {
            fprintf(stderr, "data_hash: out of memory at page %llu\n", (unsigned long long)i);
            cap_release(d);
            return 1;
        }
    }
    cap_hash_t h;
    uint64_t t0 = bench_now_ns();
    int rc = cap_hash(d, &h);
    uint64_t t1 = bench_now_ns();
    cap_release(d);
    if (rc != CAP_OK) {
        fprintf(stderr, "data_hash: cap_hash failed (%d)\n", rc);
        return 1;
    }
    bench_report(o, "data_hash", n, (double)(t1 - t0), "capstore");
    return 0;
}
