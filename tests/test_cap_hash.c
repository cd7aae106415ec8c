/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* cap_hash of every kind, checked two ways:
 *  - against an independent, naive SSZ merkleizer written here on OpenSSL's
 *    SHA-256 (dense trees, recursion with zero-subtree shortcuts), for caps
 *    built through the API: Type, CNode (many slot sets), Data (every page
 *    state and page size), Instance, Image;
 *  - against the conformance vectors: the Type, CNode, Data and Instance
 *    lines of caps.txt are parsed here (a few lines of test code, not the
 *    library's decoder), rebuilt through the API and hashed.
 * Also: the D1/D2 equivalences, inline == paged, EUNSETTLED, and page-root
 * caching when two threads hash one shared Data cap. */
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>

#include "cap/cap_internal.h"
#include "capstore/cap.h"
#include "capstore/host.h"
#include "check.h"
#include "test_alloc.h"

static test_alloc_t ta;
#define A (&ta.alloc)

/* The naive reference ------------------------------------------------------------------- */

static uint8_t ZH[65][32];

static void n_pair(uint8_t out[32], const uint8_t a[32], const uint8_t b[32])
{
    uint8_t buf[64];
    memcpy(buf, a, 32);
    memcpy(buf + 32, b, 32);
    SHA256(buf, 64, out);
}

static void n_init(void)
{
    memset(ZH[0], 0, 32);
    for (int d = 1; d <= 64; d++) n_pair(ZH[d], ZH[d - 1], ZH[d - 1]);
}

static void n_chunk(uint8_t out[32], uint64_t v)
{
    memset(out, 0, 32);
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(v >> (8 * i));
}

static void n_mix(uint8_t out[32], const uint8_t root[32], uint64_t v)
{
    uint8_t c[32], r[32];
    memcpy(r, root, 32);
    n_chunk(c, v);
    n_pair(out, r, c);
}

/* Root of the depth-`depth` tree whose first n leaves are `chunks`. */
static void n_root(uint8_t out[32], const uint8_t *chunks, uint64_t n, unsigned depth)
{
    if (n == 0) {
        memcpy(out, ZH[depth], 32);
        return;
    }
    if (depth == 0) {
        memcpy(out, chunks, 32);
        return;
    }
    uint64_t half = (uint64_t)1 << (depth - 1);
    uint8_t l[32], r[32];
    n_root(l, chunks, n < half ? n : half, depth - 1);
    n_root(r, n > half ? chunks + 32 * half : NULL, n > half ? n - half : 0, depth - 1);
    n_pair(out, l, r);
}

/* Packed bytes into zero-padded chunks (caller frees). */
__attribute__((noinline)) static uint8_t *n_pack(const void *bytes, size_t n, uint64_t *nchunks)
{
    *nchunks = (n + 31) / 32;
    uint8_t *c = calloc(*nchunks ? *nchunks : 1, 32);
    if (n) memcpy(c, bytes, n);
    return c;
}

/* List[uint8, 2^32] (chunk limit 2^27) */
static void n_list_u8(uint8_t out[32], const void *b, size_t n)
{
    uint64_t k;
    uint8_t *c = n_pack(b, n, &k);
    n_root(out, c, k, 27);
    n_mix(out, out, n);
    free(c);
}

/* n values of `size` bytes serialized little-endian, a byte at a time (so
 * the reference holds on a big-endian host too), packed into chunks. */
static uint8_t *n_pack_le(const void *v, size_t n, unsigned size, uint64_t *nchunks)
{
    uint8_t *bytes = calloc(n ? n : 1, size);
    for (size_t i = 0; i < n; i++) {
        uint64_t x = size == 4 ? ((const uint32_t *)v)[i] : ((const uint64_t *)v)[i];
        for (unsigned b = 0; b < size; b++) bytes[i * size + b] = (uint8_t)(x >> (8 * b));
    }
    uint8_t *c = n_pack(bytes, n * size, nchunks);
    free(bytes);
    return c;
}

/* List[uint32, 2^32] (chunk limit 2^29) */
static void n_list_u32(uint8_t out[32], const uint32_t *v, size_t n)
{
    uint64_t k;
    uint8_t *c = n_pack_le(v, n, 4, &k);
    n_root(out, c, k, 29);
    n_mix(out, out, n);
    free(c);
}

static void n_vec_u64_13(uint8_t out[32], const uint64_t *v)
{
    uint64_t k;
    uint8_t *c = n_pack_le(v, 13, 8, &k);
    n_root(out, c, k, 2);
    free(c);
}

/* List[Composite, 2^32] of n element roots */
static void n_list_roots(uint8_t out[32], const uint8_t *roots, size_t n)
{
    n_root(out, roots, n, 32);
    n_mix(out, out, n);
}

/* Expected hashes of each kind ----------------------------------------------------------- */

static void x_type(uint8_t out[32], const uint8_t chain[32])
{
    n_mix(out, chain, 4);
}

/* slots[i] for i < L, all-zero meaning empty */
static void x_cnode(uint8_t out[32], unsigned size_log, const uint8_t *slots, uint64_t L)
{
    uint8_t r[32], c[32], root[32];
    n_root(r, slots, L, 16);
    n_mix(r, r, L);
    n_chunk(c, size_log);
    n_pair(root, c, r);
    n_mix(out, root, 3);
}

static void x_page_root(uint8_t out[32], const uint8_t *bytes, uint32_t ps)
{
    unsigned depth = 0;
    while ((32u << depth) < ps) depth++;
    n_root(out, bytes, ps / 32, depth);
}

static void x_data(uint8_t out[32], uint32_t ps, const uint8_t *page_roots, uint64_t count)
{
    uint8_t r[32], c[32], root[32];
    n_list_roots(r, page_roots, count);
    n_chunk(c, ps);
    n_pair(root, c, r);
    n_mix(out, root, 2);
}

/* From a cap, through its getters (the content), the naive way. */
static void x_instance(uint8_t out[32], const cap_t *in)
{
    uint8_t f[8][32], root[32];
    memcpy(f[0], cap_instance_image_hash_chain(in)->bytes, 32);
    memcpy(f[1], cap_instance_image_hash(in)->bytes, 32);
    cap_target_t t = cap_instance_root_cnode(in);
    memcpy(f[2], t.hash.bytes, 32);
    size_t n = cap_instance_overlay_count(in);
    uint8_t *roots = calloc(n ? n : 1, 32);
    for (size_t i = 0; i < n; i++) {
        uint32_t start;
        const uint8_t *b;
        size_t len;
        uint8_t c[32], l[32];
        cap_instance_overlay(in, i, &start, &b, &len);
        n_chunk(c, start);
        n_list_u8(l, b, len);
        n_pair(roots + 32 * i, c, l);
    }
    n_list_roots(f[3], roots, n);
    free(roots);
    n_chunk(f[4], cap_instance_mem_size(in));
    uint64_t regs[13];
    for (unsigned i = 0; i < 13; i++) regs[i] = cap_instance_reg(in, i);
    n_vec_u64_13(f[5], regs);
    n_chunk(f[6], cap_instance_pc(in));
    n_chunk(f[7], cap_instance_gas_remaining(in));
    n_root(root, &f[0][0], 8, 3);
    n_mix(out, root, 0);
}

static void x_image(uint8_t out[32], const cap_image_desc_t *d)
{
    uint8_t f[8][32], root[32];
    n_list_u8(f[0], d->code, d->code_len);
    n_list_u8(f[1], d->bitmask, d->bitmask_len);
    n_list_u32(f[2], d->jump_table, d->jump_table_len);
    size_t most = d->endpoints_len + d->mappings_len + d->pinned_len + d->initial_len + 1;
    uint8_t *roots = calloc(most, 32);
    for (size_t i = 0; i < d->endpoints_len; i++) {
        const cap_endpoint_t *e = &d->endpoints[i];
        uint8_t g[5][32];
        n_chunk(g[0], e->entry_pc);
        n_chunk(g[1], e->stack_top);
        n_chunk(g[2], e->arg_cnode_slot);
        n_chunk(g[3], e->arg_cnode_size);
        n_vec_u64_13(g[4], e->initial_regs);
        n_root(roots + 32 * i, &g[0][0], 5, 3);
    }
    n_list_roots(f[3], roots, d->endpoints_len);
    for (size_t i = 0; i < d->mappings_len; i++) {
        const cap_mapping_t *m = &d->mappings[i];
        uint8_t g[4][32];
        n_chunk(g[0], m->start);
        n_chunk(g[1], m->size);
        for (int k = 0; k < CAP_MAX_SOURCE_DEPTH; k++) /* Vector[uint32, 8], little-endian */
            for (int b = 0; b < 4; b++) g[2][4 * k + b] = (uint8_t)(m->source_path[k] >> (8 * b));
        n_chunk(g[3], m->source_path_len);
        n_root(roots + 32 * i, &g[0][0], 4, 2);
    }
    n_list_roots(f[4], roots, d->mappings_len);
    for (int which = 0; which < 2; which++) {
        const cap_slot_entry_t *e = which ? d->initial : d->pinned;
        size_t n = which ? d->initial_len : d->pinned_len;
        for (size_t i = 0; i < n; i++) {
            uint8_t c[32];
            n_chunk(c, e[i].slot);
            n_pair(roots + 32 * i, c, e[i].cap_hash.bytes);
        }
        n_list_roots(f[5 + which], roots, n);
    }
    free(roots);
    uint8_t y[32];
    n_chunk(y, d->has_yield_marker ? d->yield_marker_slot : 0);
    n_mix(f[7], y, d->has_yield_marker ? 1 : 0);
    n_root(root, &f[0][0], 8, 3);
    n_mix(out, root, 1);
}

/* Helpers --------------------------------------------------------------------------------- */

static uint64_t rng = 0x1234567887654321ull;
static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}
static void rnd_bytes(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd();
}

static int check_hash(const cap_t *c, const uint8_t want[32], const char *what)
{
    cap_hash_t h;
    int rc = cap_hash(c, &h);
    CHECK_EQ_INT(rc, CAP_OK);
    if (rc != CAP_OK || memcmp(h.bytes, want, 32) != 0) {
        char a[65], b[65];
        hex_encode(h.bytes, 32, a);
        hex_encode(want, 32, b);
        fprintf(stderr, "  %s: got %s want %s\n", what, a, b);
        CHECK(0);
        return 0;
    }
    return 1;
}

/* Type -------------------------------------------------------------------------------------- */

static void test_type(void)
{
    for (int k = 0; k < 4; k++) {
        cap_hash_t h;
        if (k == 0)
            memset(h.bytes, 0, 32);
        else
            rnd_bytes(h.bytes, 32);
        cap_t *t;
        CHECK_EQ_INT(cap_type_new(&t, A, &h), CAP_OK);
        uint8_t want[32];
        x_type(want, h.bytes);
        check_hash(t, want, "type");
        cap_release(t);
    }
}

/* CNode ------------------------------------------------------------------------------------- */

static void cnode_case(unsigned size_log, const uint32_t *slots, size_t n, const char *what)
{
    cap_t *c;
    CHECK_EQ_INT(cap_cnode_new(&c, A, size_log), CAP_OK);
    uint8_t *dense = calloc(65536, 32);
    uint64_t L = 0;
    for (size_t i = 0; i < n; i++) {
        cap_hash_t h;
        rnd_bytes(h.bytes, 32);
        h.bytes[0] |= 1;
        cap_target_t t = cap_target_of_hash(&h);
        CHECK_EQ_INT(cap_cnode_set(c, slots[i], &t), CAP_OK);
        memcpy(dense + 32 * (size_t)slots[i], h.bytes, 32);
        if (slots[i] + 1 > L) L = slots[i] + 1;
    }
    uint8_t want[32];
    x_cnode(want, size_log, dense, L);
    check_hash(c, want, what);
    free(dense);
    cap_release(c);
}

static void test_cnode(void)
{
    cnode_case(0, NULL, 0, "cnode sl0 empty");
    cnode_case(16, NULL, 0, "cnode sl16 empty");
    uint32_t s0[] = {0};
    cnode_case(0, s0, 1, "cnode sl0 slot0");
    cnode_case(16, s0, 1, "cnode sl16 slot0");
    uint32_t smax[] = {65535};
    cnode_case(16, smax, 1, "cnode sl16 slot65535");
    uint32_t both[] = {65535, 0};
    cnode_case(16, both, 2, "cnode sl16 slot0+65535");
    uint32_t few[] = {5, 0, 3, 7, 6};
    cnode_case(3, few, 5, "cnode sl3 few");
    uint32_t pairs[] = {1, 2, 3, 4, 9, 10, 200, 201, 255};
    cnode_case(8, pairs, 9, "cnode sl8 pairs");
    /* full small cnodes */
    uint32_t full[256];
    for (uint32_t i = 0; i < 256; i++) full[i] = i;
    cnode_case(4, full, 16, "cnode sl4 full");
    cnode_case(8, full, 256, "cnode sl8 full (heap scratch)");
    /* 64 and 65 entries: either side of the stack scratch */
    uint32_t spread[1000];
    for (uint32_t i = 0; i < 1000; i++) spread[i] = i * 65 + 7;
    cnode_case(16, spread, 64, "cnode 64 spread");
    cnode_case(16, spread, 65, "cnode 65 spread");
    cnode_case(16, spread, 1000, "cnode 1000 spread");
    /* random sets, random sizes */
    for (int round = 0; round < 30; round++) {
        unsigned sl = (unsigned)(rnd() % 17);
        uint32_t cap = 1u << sl;
        size_t n = (size_t)(rnd() % (cap < 200 ? cap + 1 : 200));
        uint32_t *s = malloc((n ? n : 1) * sizeof *s);
        uint8_t *used = calloc(cap, 1);
        size_t k = 0;
        while (k < n) {
            uint32_t v = (uint32_t)(rnd() % cap);
            if (used[v]) continue;
            used[v] = 1;
            s[k++] = v;
        }
        cnode_case(sl, s, n, "cnode random");
        free(s);
        free(used);
    }
    /* the whole 65536 */
    uint32_t *all = malloc(65536 * sizeof *all);
    for (uint32_t i = 0; i < 65536; i++) all[i] = i;
    cnode_case(16, all, 65536, "cnode sl16 full");
    free(all);
}

/* Data -------------------------------------------------------------------------------------- */

/* states: 'E' empty, 'L' loaded random, 'Z' loaded zeros, 'M' missing (random
 * root), 'P' missing with the root of random bytes (== that Loaded page). */
static void data_case(uint32_t ps, const char *states, int precache)
{
    size_t n = strlen(states);
    cap_t *d;
    CHECK_EQ_INT(cap_data_new(&d, A, ps), CAP_OK);
    CHECK_EQ_INT(cap_data_resize(d, n), CAP_OK);
    uint8_t *page = malloc(ps);
    uint8_t *roots = calloc(n ? n : 1, 32);
    for (size_t i = 0; i < n; i++) {
        switch (states[i]) {
        case 'E':
            memset(page, 0, ps);
            x_page_root(roots + 32 * i, page, ps);
            break;
        case 'L':
        case 'Z':
            if (states[i] == 'L')
                rnd_bytes(page, ps);
            else
                memset(page, 0, ps);
            CHECK_EQ_INT(cap_data_set_page(d, i, page, ps, NULL), CAP_OK);
            x_page_root(roots + 32 * i, page, ps);
            break;
        case 'M': {
            cap_hash_t r;
            rnd_bytes(r.bytes, 32);
            CHECK_EQ_INT(cap_data_set_page_missing(d, i, &r), CAP_OK);
            memcpy(roots + 32 * i, r.bytes, 32);
            break;
        }
        case 'P': {
            cap_hash_t r;
            rnd_bytes(page, ps);
            x_page_root(r.bytes, page, ps);
            CHECK_EQ_INT(cap_data_set_page_missing(d, i, &r), CAP_OK);
            memcpy(roots + 32 * i, r.bytes, 32);
            break;
        }
        }
        if (precache && i % 3 == 0) {
            cap_hash_t r;
            CHECK_EQ_INT(cap_data_page_root(d, i, &r), CAP_OK);
            CHECK_MEM(r.bytes, roots + 32 * i, 32);
        }
    }
    uint8_t want[32];
    x_data(want, ps, roots, n);
    char what[128];
    snprintf(what, sizeof what, "data ps%u %.40s%s", ps, states, precache ? " (part cached)" : "");
    check_hash(d, want, what);
    check_hash(d, want, what); /* again: now from the cache */
    for (size_t i = 0; i < n; i++) {
        cap_hash_t r;
        CHECK_EQ_INT(cap_data_page_root(d, i, &r), CAP_OK);
        CHECK_MEM(r.bytes, roots + 32 * i, 32);
    }
    free(page);
    free(roots);
    cap_release(d);
}

static void test_data(void)
{
    for (uint32_t ps = 32; ps <= 65536; ps *= 2) {
        data_case(ps, "", 0);
        data_case(ps, "E", 0);
        data_case(ps, "L", 0);
        data_case(ps, "ELZMP", 0);
        data_case(ps, "LLLLLLL", 0);
        data_case(ps, "LLLLLLL", 1);
    }
    /* more than one group of 64 roots, every state mixed */
    char states[300];
    const char *alphabet = "ELLLZMP";
    for (int i = 0; i < 299; i++) states[i] = alphabet[rnd() % 7];
    states[299] = 0;
    data_case(4096, states, 0);
    data_case(4096, states, 1);
    data_case(64, states, 1);
    states[130] = 0;
    data_case(32768, states, 0);

    /* D2: Empty == Missing(zero page root) == Loaded zeros; inline == paged */
    for (uint32_t ps = 32; ps <= 65536; ps *= 4) {
        cap_t *e, *m, *z, *in;
        uint8_t *zeros = calloc(2, ps);
        cap_hash_t zr;
        x_page_root(zr.bytes, zeros, ps);
        CHECK_EQ_INT(cap_data_new(&e, A, ps), CAP_OK);
        CHECK_EQ_INT(cap_data_resize(e, 2), CAP_OK);
        CHECK_EQ_INT(cap_data_new(&m, A, ps), CAP_OK);
        CHECK_EQ_INT(cap_data_resize(m, 2), CAP_OK);
        CHECK_EQ_INT(cap_data_set_page_missing(m, 0, &zr), CAP_OK);
        CHECK_EQ_INT(cap_data_set_page_missing(m, 1, &zr), CAP_OK);
        CHECK_EQ_INT(cap_data_new(&z, A, ps), CAP_OK);
        CHECK_EQ_INT(cap_data_resize(z, 2), CAP_OK);
        CHECK_EQ_INT(cap_data_set_page(z, 0, zeros, ps, NULL), CAP_OK);
        CHECK_EQ_INT(cap_data_set_page(z, 1, zeros, ps, NULL), CAP_OK);
        CHECK_EQ_INT(cap_data_new_inline(&in, A, ps, zeros, ps + 1), CAP_OK);
        cap_hash_t he, hm, hz, hi;
        CHECK_EQ_INT(cap_hash(e, &he), CAP_OK);
        CHECK_EQ_INT(cap_hash(m, &hm), CAP_OK);
        CHECK_EQ_INT(cap_hash(z, &hz), CAP_OK);
        CHECK_EQ_INT(cap_hash(in, &hi), CAP_OK);
        CHECK_MEM(he.bytes, hm.bytes, 32);
        CHECK_MEM(he.bytes, hz.bytes, 32);
        CHECK_MEM(he.bytes, hi.bytes, 32);
        CHECK(!cap_equal(e, z) && !cap_equal(e, m));
        cap_release(e);
        cap_release(m);
        cap_release(z);
        cap_release(in);
        free(zeros);
    }
    /* inline == paged for a random buffer, every length that gives 3 pages */
    uint8_t buf[3 * 256];
    rnd_bytes(buf, sizeof buf);
    memset(buf + 600, 0, sizeof buf - 600); /* last non-zero byte at 599 */
    cap_t *paged;
    CHECK_EQ_INT(cap_data_new(&paged, A, 256), CAP_OK);
    CHECK_EQ_INT(cap_data_resize(paged, 3), CAP_OK);
    for (int i = 0; i < 3; i++) CHECK_EQ_INT(cap_data_set_page(paged, (uint64_t)i, buf + 256 * i, 256, NULL), CAP_OK);
    cap_hash_t hp;
    CHECK_EQ_INT(cap_hash(paged, &hp), CAP_OK);
    for (size_t len = 600; len <= 768; len++) {
        cap_t *in;
        cap_hash_t hi;
        CHECK_EQ_INT(cap_data_new_inline(&in, A, 256, buf, len), CAP_OK);
        CHECK_EQ_INT(cap_hash(in, &hi), CAP_OK);
        if (memcmp(hi.bytes, hp.bytes, 32) != 0) {
            fprintf(stderr, "  inline len %zu differs from paged\n", len);
            CHECK(0);
        }
        cap_release(in);
    }
    cap_release(paged);

    /* a write invalidates the written page's cached root */
    cap_t *d;
    uint8_t p[64];
    rnd_bytes(p, 64);
    CHECK_EQ_INT(cap_data_new_inline(&d, A, 64, p, 64), CAP_OK);
    cap_hash_t h1, h2;
    CHECK_EQ_INT(cap_hash(d, &h1), CAP_OK);
    p[17] ^= 1;
    CHECK_EQ_INT(cap_data_write(d, 17, p + 17, 1), CAP_OK);
    CHECK_EQ_INT(cap_hash(d, &h2), CAP_OK);
    uint8_t root[32], want[32];
    x_page_root(root, p, 64);
    x_data(want, 64, root, 1);
    CHECK_MEM(h2.bytes, want, 32);
    cap_release(d);
}

/* Instance and Image ---------------------------------------------------------------------- */

static void test_instance(void)
{
    for (int round = 0; round < 6; round++) {
        cap_hash_t root;
        rnd_bytes(root.bytes, 32);
        root.bytes[31] |= 0x80;
        cap_target_t t = cap_target_of_hash(&root);
        cap_t *in;
        CHECK_EQ_INT(cap_instance_new(&in, A, &t), CAP_OK);
        if (round > 0) {
            cap_hash_t h;
            rnd_bytes(h.bytes, 32);
            CHECK_EQ_INT(cap_instance_set_image_hash_chain(in, &h), CAP_OK);
            rnd_bytes(h.bytes, 32);
            CHECK_EQ_INT(cap_instance_set_image_hash(in, &h), CAP_OK);
            CHECK_EQ_INT(cap_instance_set_mem_size(in, (uint32_t)rnd()), CAP_OK);
            for (unsigned i = 0; i < CAP_NUM_REGS; i++) CHECK_EQ_INT(cap_instance_set_reg(in, i, rnd()), CAP_OK);
            CHECK_EQ_INT(cap_instance_set_pc(in, rnd()), CAP_OK);
            CHECK_EQ_INT(cap_instance_set_gas_remaining(in, rnd()), CAP_OK);
            int overlays = round == 5 ? 70 : round;
            for (int k = 0; k < overlays; k++) {
                uint8_t b[200];
                size_t len = (size_t)(rnd() % (k == 2 ? 1 : 200));
                rnd_bytes(b, len);
                CHECK_EQ_INT(cap_instance_add_overlay(in, (uint32_t)rnd(), b, len), CAP_OK);
            }
        }
        uint8_t want[32];
        x_instance(want, in);
        check_hash(in, want, "instance");
        cap_release(in);
    }
}

static void test_image(void)
{
    for (int round = 0; round < 6; round++) {
        size_t code_len = round == 0 ? 0 : (size_t)(rnd() % 300) + 1;
        uint8_t code[301], bm[40];
        uint32_t jt[20];
        cap_endpoint_t ep[64];
        cap_mapping_t mp[5];
        cap_slot_entry_t pin[6], ini[6];
        rnd_bytes(code, code_len);
        size_t bm_len = (code_len + 7) / 8;
        rnd_bytes(bm, bm_len);
        size_t jt_len = code_len ? (size_t)(rnd() % 20) : 0;
        for (size_t i = 0; i < jt_len; i++) jt[i] = (uint32_t)(rnd() % code_len);
        size_t ep_len = round == 0 ? 0 : round == 5 ? 64 : (size_t)(rnd() % 4);
        memset(ep, 0, sizeof ep);
        for (size_t i = 0; i < ep_len; i++) {
            ep[i].entry_pc = rnd();
            ep[i].stack_top = rnd();
            ep[i].arg_cnode_slot = (uint32_t)rnd();
            ep[i].arg_cnode_size = (uint8_t)rnd();
            for (int r = 0; r < CAP_NUM_REGS; r++) ep[i].initial_regs[r] = rnd();
        }
        size_t mp_len = round == 0 ? 0 : (size_t)(rnd() % 5);
        memset(mp, 0, sizeof mp);
        for (size_t i = 0; i < mp_len; i++) {
            mp[i].start = rnd();
            mp[i].size = rnd();
            mp[i].source_path_len = (uint8_t)(rnd() % 9);
            for (unsigned k = 0; k < mp[i].source_path_len; k++) mp[i].source_path[k] = (uint32_t)rnd();
        }
        size_t pin_len = round == 0 ? 0 : (size_t)(rnd() % 6), ini_len = round == 0 ? 0 : (size_t)(rnd() % 6);
        uint32_t slot = 0;
        for (size_t i = 0; i < pin_len; i++) {
            slot += (uint32_t)(rnd() % 1000) + (i ? 1 : 0);
            pin[i].slot = slot;
            rnd_bytes(pin[i].cap_hash.bytes, 32);
            pin[i].cap_hash.bytes[0] |= 1;
        }
        slot = 0;
        for (size_t i = 0; i < ini_len; i++) {
            slot += (uint32_t)(rnd() % 1000) + (i ? 1 : 0);
            ini[i].slot = slot;
            rnd_bytes(ini[i].cap_hash.bytes, 32);
            ini[i].cap_hash.bytes[5] |= 1;
        }
        cap_image_desc_t d = {.code = code, .code_len = code_len, .bitmask = bm, .bitmask_len = bm_len,
                              .jump_table = jt, .jump_table_len = jt_len, .endpoints = ep,
                              .endpoints_len = ep_len, .mappings = mp, .mappings_len = mp_len,
                              .pinned = pin, .pinned_len = pin_len, .initial = ini,
                              .initial_len = ini_len, .has_yield_marker = (round & 1) != 0,
                              .yield_marker_slot = (round & 1) ? (uint32_t)rnd() : 0};
        if (round == 3) d.yield_marker_slot = 0; /* Some(0) != None */
        cap_t *img;
        cap_err_t err;
        CHECK_EQ_INT(cap_image_new(&img, A, &d, &err), CAP_OK);
        uint8_t want[32];
        x_image(want, &d);
        check_hash(img, want, "image");
        cap_release(img);
    }
    /* None and Some(0) differ */
    cap_image_desc_t e;
    memset(&e, 0, sizeof e);
    cap_t *a, *b;
    CHECK_EQ_INT(cap_image_new(&a, A, &e, NULL), CAP_OK);
    e.has_yield_marker = true;
    CHECK_EQ_INT(cap_image_new(&b, A, &e, NULL), CAP_OK);
    cap_hash_t ha, hb;
    CHECK_EQ_INT(cap_hash(a, &ha), CAP_OK);
    CHECK_EQ_INT(cap_hash(b, &hb), CAP_OK);
    CHECK(memcmp(ha.bytes, hb.bytes, 32) != 0);
    cap_release(a);
    cap_release(b);
}

/* Unsettled caps ---------------------------------------------------------------------------- */

static void dummy_release(struct cap_ref *r) { atomic_fetch_sub(&r->state, CAP_REF_ONE); }
static const struct cap_ref_ops dummy_ops = {dummy_release};

static void test_unsettled(void)
{
    struct cap_ref r;
    atomic_init(&r.state, CAP_REF_IN_STORE | CAP_REF_ONE);
    r.id = 1;
    r.ops = &dummy_ops;
    r.owner = NULL;
    cap_target_t tr = cap_target_of_ref(&r);
    cap_t *c, *in;
    cap_hash_t h;
    CHECK_EQ_INT(cap_cnode_new(&c, A, 16), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(c, 40000, &tr), CAP_OK);
    CHECK_EQ_INT(cap_hash(c, &h), CAP_EUNSETTLED);
    CHECK_EQ_INT(cap_instance_new(&in, A, &tr), CAP_OK);
    CHECK_EQ_INT(cap_hash(in, &h), CAP_EUNSETTLED);
    CHECK_EQ_INT(cap_hash(NULL, &h), CAP_EINVAL);
    cap_release(c);
    cap_release(in);
    CHECK_EQ_INT(cap_ref_strong_count(&r), 2);
}

/* Two threads hashing one shared Data cap -------------------------------------------------- */

typedef struct mt_arg {
    const cap_t *d;
    atomic_int *go;
    cap_hash_t h;
    int rc;
} mt_arg_t;

static void *mt_hash(void *p)
{
    mt_arg_t *a = p;
    while (!atomic_load(a->go)) {
    }
    a->rc = cap_hash(a->d, &a->h);
    return NULL;
}

static void test_threads(void)
{
    const uint32_t ps = 4096;
    const size_t n = 96;
    uint8_t *bytes = malloc(n * ps);
    rnd_bytes(bytes, n * ps);
    uint8_t *roots = malloc(n * 32), want[32];
    for (size_t i = 0; i < n; i++) x_page_root(roots + 32 * i, bytes + i * ps, ps);
    x_data(want, ps, roots, n);
    for (int round = 0; round < 20; round++) {
        cap_t *d;
        CHECK_EQ_INT(cap_data_new_inline(&d, A, ps, bytes, n * ps), CAP_OK);
        cap_t *shared = cap_retain(d); /* the threads share it */
        atomic_int go = 0;
        mt_arg_t a[2] = {{.d = shared, .go = &go}, {.d = shared, .go = &go}};
        pthread_t t[2];
        for (int k = 0; k < 2; k++) pthread_create(&t[k], NULL, mt_hash, &a[k]);
        atomic_store(&go, 1);
        for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
        for (int k = 0; k < 2; k++) {
            CHECK_EQ_INT(a[k].rc, CAP_OK);
            CHECK_MEM(a[k].h.bytes, want, 32);
        }
        /* every page root ended up cached and right */
        for (size_t i = 0; i < n; i++) {
            const cap_page_t *pg = shared->u.data.pages[i];
            CHECK_EQ_INT(atomic_load(&((cap_page_t *)pg)->root_state), 2);
            CHECK_MEM(pg->root.bytes, roots + 32 * i, 32);
        }
        cap_release(shared);
        cap_release(d);
    }
    free(bytes);
    free(roots);
}

/* Conformance vectors (Type, CNode, Data, Instance lines) ---------------------------------- */

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* Build through the API from trusted wire bytes (positive vectors only).
 * Returns NULL for kinds not handled here. For Data, *flat gets the
 * concatenated page bytes (NULL if any page is Missing). */
static cap_t *build_from_wire(const uint8_t *w, size_t n, uint8_t **flat, size_t *flat_len)
{
    cap_t *c = NULL;
    *flat = NULL;
    *flat_len = 0;
    if (n < 1) return NULL;
    switch (w[0]) {
    case CAP_KIND_TYPE: {
        cap_hash_t h;
        memcpy(h.bytes, w + 1, 32);
        CHECK_EQ_INT(cap_type_new(&c, A, &h), CAP_OK);
        return c;
    }
    case CAP_KIND_CNODE: {
        CHECK_EQ_INT(cap_cnode_new(&c, A, w[1]), CAP_OK);
        for (size_t off = 1 + le32(w + 2); off + 36 <= n; off += 36) {
            cap_hash_t h;
            memcpy(h.bytes, w + off + 4, 32);
            cap_target_t t = cap_target_of_hash(&h);
            CHECK_EQ_INT(cap_cnode_set(c, le32(w + off), &t), CAP_OK);
        }
        return c;
    }
    case CAP_KIND_DATA: {
        uint32_t ps = le32(w + 1);
        const uint8_t *list = w + 1 + le32(w + 5);
        size_t list_len = n - (size_t)(list - w);
        size_t count = list_len ? le32(list) / 4 : 0;
        CHECK_EQ_INT(cap_data_new(&c, A, ps), CAP_OK);
        CHECK_EQ_INT(cap_data_resize(c, count), CAP_OK);
        uint8_t *fb = calloc(count ? count : 1, ps);
        int missing = 0;
        for (size_t i = 0; i < count; i++) {
            size_t s = le32(list + 4 * i), e = i + 1 < count ? le32(list + 4 * (i + 1)) : list_len;
            const uint8_t *el = list + s;
            if (el[0] == 1) {
                CHECK_EQ_INT(cap_data_set_page(c, i, el + 1, e - s - 1, NULL), CAP_OK);
                memcpy(fb + i * ps, el + 1, ps);
            } else if (el[0] == 2) {
                cap_hash_t h;
                memcpy(h.bytes, el + 1, 32);
                CHECK_EQ_INT(cap_data_set_page_missing(c, i, &h), CAP_OK);
                missing = 1;
            }
        }
        if (missing) {
            free(fb);
        } else {
            *flat = fb;
            *flat_len = count * ps;
        }
        return c;
    }
    case CAP_KIND_INSTANCE: {
        const uint8_t *p = w + 1;
        cap_hash_t h;
        memcpy(h.bytes, p + 64, 32);
        cap_target_t t = cap_target_of_hash(&h);
        CHECK_EQ_INT(cap_instance_new(&c, A, &t), CAP_OK);
        memcpy(h.bytes, p, 32);
        cap_instance_set_image_hash_chain(c, &h);
        memcpy(h.bytes, p + 32, 32);
        cap_instance_set_image_hash(c, &h);
        uint32_t ov_off = le32(p + 96);
        cap_instance_set_mem_size(c, le32(p + 100));
        for (unsigned i = 0; i < 13; i++) cap_instance_set_reg(c, i, le64(p + 104 + 8 * i));
        cap_instance_set_pc(c, le64(p + 208));
        cap_instance_set_gas_remaining(c, le64(p + 216));
        const uint8_t *list = p + ov_off;
        size_t list_len = (n - 1) - ov_off;
        size_t count = list_len ? le32(list) / 4 : 0;
        for (size_t i = 0; i < count; i++) {
            size_t s = le32(list + 4 * i), e = i + 1 < count ? le32(list + 4 * (i + 1)) : list_len;
            const uint8_t *el = list + s;
            size_t boff = le32(el + 4);
            CHECK_EQ_INT(cap_instance_add_overlay(c, le32(el), el + boff, e - s - boff), CAP_OK);
        }
        return c;
    }
    default:
        return NULL;
    }
}

static void test_vectors(int argc, char **argv)
{
    char path[4096];
    check_data_path(argc, argv, "vectors/caps.txt", path, sizeof path);
    line_reader_t lr;
    CHECK_EQ_INT(line_reader_open(&lr, path), 0);
    size_t cap_w = 1 << 20;
    uint8_t *wire = malloc(cap_w);
    int done[5] = {0}, inline_checks = 0;
    char *line;
    while ((line = line_reader_next(&lr)) != NULL) {
        if (line[0] == '#' || line[0] == 0) continue;
        char *name = strtok(line, " "), *hh = strtok(NULL, " "), *wh = strtok(NULL, " \n");
        if (!name || !hh || !wh || strcmp(hh, "reject") == 0) continue;
        size_t wl = strlen(wh) / 2 + 1;
        if (wl > cap_w) {
            cap_w = wl;
            wire = realloc(wire, cap_w);
        }
        long n = hex_decode(wh, wire, cap_w);
        uint8_t want[32];
        CHECK(n > 0 && hex_decode(hh, want, 32) == 32);
        if (n <= 0) continue;
        uint8_t *flat;
        size_t flat_len;
        cap_t *c = build_from_wire(wire, (size_t)n, &flat, &flat_len);
        if (!c) continue;
        done[wire[0]]++;
        check_hash(c, want, name);
        /* data_inline_*: every buffer length that makes the same pages */
        if (flat && strncmp(name, "data_inline_", 12) == 0) {
            uint32_t ps = cap_data_page_size(c);
            size_t pages = flat_len / ps, last_nz = 0;
            for (size_t i = 0; i < flat_len; i++)
                if (flat[i]) last_nz = i + 1;
            size_t lo = pages ? (pages - 1) * ps + 1 : 0;
            if (last_nz > lo) lo = last_nz;
            size_t lens[4] = {lo, lo + (flat_len - lo) / 2, flat_len - (flat_len > lo), flat_len};
            for (int k = 0; k < 4; k++) {
                cap_t *in;
                CHECK_EQ_INT(cap_data_new_inline(&in, A, ps, flat, lens[k]), CAP_OK);
                check_hash(in, want, name);
                cap_release(in);
                inline_checks++;
            }
        }
        free(flat);
        cap_release(c);
    }
    line_reader_close(&lr);
    free(wire);
    fprintf(stderr, "vectors rebuilt through the API: %d instance, %d data, %d cnode, %d type; %d inline forms\n",
            done[0], done[2], done[3], done[4], inline_checks);
    CHECK(done[0] >= 40 && done[2] >= 70 && done[3] >= 70 && done[4] >= 40);
    CHECK(inline_checks >= 6);
}

int main(int argc, char **argv)
{
    cap_sha256_select_from_env();
    n_init();
    test_alloc_init(&ta);
    test_type();
    test_cnode();
    test_data();
    test_instance();
    test_image();
    test_unsettled();
    test_threads();
    test_vectors(argc, argv);
    CHECK(test_alloc_clean(&ta));
    return check_done("test_cap_hash");
}
