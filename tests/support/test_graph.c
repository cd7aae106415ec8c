/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Random closed cap graphs (test_graph.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/host.h"
#include "test_graph.h"
#include "test_rng.h"

static void *must(void *p)
{
    if (!p) {
        fprintf(stderr, "test_graph: out of memory\n");
        exit(2);
    }
    return p;
}

static void add(test_graph_t *g, cap_t *c)
{
    cap_backend_item_t *it = &g->items[g->n++];
    uint8_t *bytes;
    size_t n;
    if (!c || cap_hash(c, &it->hash) != CAP_OK || cap_wire_encode_alloc(c, cap_alloc_libc(), &bytes, &n) != CAP_OK) {
        fprintf(stderr, "test_graph: building a cap failed\n");
        exit(2);
    }
    it->bytes = bytes;
    it->n = n;
    cap_release(c);
}

void test_graph_make(test_graph_t *g, uint64_t seed, size_t n)
{
    const cap_alloc_t *a = cap_alloc_libc();
    test_rng_t rng = {seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull};
    if (n < 3) n = 3;
    memset(g, 0, sizeof *g);
    g->items = must(calloc(n + 1, sizeof *g->items));
    size_t *open = must(calloc(n + 1, sizeof *open)), nopen = 0;
    size_t leaves = n / 2;
    uint8_t buf[9000];
    for (size_t i = 0; i < leaves; i++) {
        size_t len = 16 + (size_t)test_rng_below(&rng, 160);
        if (test_rng_below(&rng, 40) == 0) len = 5000 + (size_t)test_rng_below(&rng, 4000);
        for (size_t k = 0; k < len; k++) buf[k] = (uint8_t)test_rng_next(&rng);
        memcpy(buf, &seed, sizeof seed); /* graphs of different seeds share no leaf */
        cap_t *c = NULL;
        cap_data_new_inline(&c, a, 4096, buf, len);
        open[nopen++] = g->n;
        add(g, c);
    }
    while (g->n < n - 1 && nopen >= 2) {
        cap_t *c = NULL;
        cap_cnode_new(&c, a, 2);
        unsigned take = 2 + (unsigned)test_rng_below(&rng, 2);
        uint32_t slot = 0;
        for (unsigned k = 0; k < take && nopen; k++, slot++) {
            size_t j = (size_t)test_rng_below(&rng, nopen);
            cap_target_t t = cap_target_of_hash(&g->items[open[j]].hash);
            cap_cnode_set(c, slot, &t);
            open[j] = open[--nopen];
        }
        if (test_rng_below(&rng, 2)) { /* a shared child */
            cap_target_t t = cap_target_of_hash(&g->items[test_rng_below(&rng, g->n)].hash);
            cap_cnode_set(c, slot, &t);
        }
        open[nopen++] = g->n;
        add(g, c);
    }
    unsigned log = 0;
    while (((size_t)1 << log) < nopen) log++;
    cap_t *root = NULL;
    cap_cnode_new(&root, a, log);
    for (size_t k = 0; k < nopen; k++) {
        cap_target_t t = cap_target_of_hash(&g->items[open[k]].hash);
        cap_cnode_set(root, (uint32_t)k, &t);
    }
    add(g, root);
    g->root = g->items[g->n - 1].hash;
    free(open);
}

void test_graph_free(test_graph_t *g)
{
    for (size_t i = 0; i < g->n; i++) free((void *)g->items[i].bytes);
    free(g->items);
    memset(g, 0, sizeof *g);
}

size_t test_graph_find(const test_graph_t *g, const cap_hash_t *h)
{
    for (size_t i = 0; i < g->n; i++)
        if (memcmp(g->items[i].hash.bytes, h->bytes, 32) == 0) return i;
    return SIZE_MAX;
}
