/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The SSZ merkleization layer: every line of vectors/ssz-basic.txt, then
 * the streaming, one-shot and sparse merkleizers against a naive dense
 * reference built on OpenSSL, the limits, and depth 64. */
/* The low-level SHA-256 calls: the one-shot SHA256() of OpenSSL 3 goes
 * through a provider fetch per call, which made the reference dominate. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "capstore/host.h"
#include "capstore/sha256.h"
#include "capstore/ssz.h"
#include "check.h"
#include "test_rng.h"

/* Reference ------------------------------------------------------------------------- */

static test_rng_t rng = {0x9e3779b97f4a7c15ull};
static uint64_t rng_next(void) { return test_rng_next(&rng); }

static uint64_t rng_below(uint64_t n) { return n ? rng_next() % n : 0; }

static void rng_fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(rng_next() >> 56);
}

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* Little-endian values of `size` bytes, a byte at a time (the reference
 * must not assume the host's byte order). */
static uint64_t le_get(const uint8_t *p, unsigned size)
{
    uint64_t v = 0;
    for (unsigned b = 0; b < size; b++) v |= (uint64_t)p[b] << (8 * b);
    return v;
}

static void le_put(uint8_t *p, uint64_t v, unsigned size)
{
    for (unsigned b = 0; b < size; b++) p[b] = (uint8_t)(v >> (8 * b));
}

static void ref_pair(uint8_t out[32], const uint8_t a[32], const uint8_t b[32])
{
    uint8_t buf[64];
    memcpy(buf, a, 32);
    memcpy(buf + 32, b, 32);
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, buf, 64);
    SHA256_Final(out, &c);
}

static void ref_zero(unsigned d, uint8_t out[32])
{
    memset(out, 0, 32);
    for (unsigned i = 0; i < d; i++) ref_pair(out, out, out);
}

/* Dense merkleize: materialise all 2^depth leaves (small depths only). */
static void ref_merkleize(uint8_t out[32], const uint8_t *chunks, size_t n, unsigned depth)
{
    size_t width = (size_t)1 << depth;
    uint8_t *layer = xmalloc(width * 32);
    if (n) memcpy(layer, chunks, n * 32);
    for (; width > 1; width /= 2)
        for (size_t i = 0; i < width / 2; i++) ref_pair(layer + 32 * i, layer + 64 * i, layer + 64 * i + 32);
    memcpy(out, layer, 32);
    free(layer);
}

/* Raise a root of height `from` to `to`: everything right of it is zero. */
static void ref_climb(uint8_t root[32], unsigned from, unsigned to)
{
    uint8_t z[32];
    for (unsigned h = from; h < to; h++) {
        ref_zero(h, z);
        ref_pair(root, root, z);
    }
}

static void ref_mix(uint8_t out[32], const uint8_t root[32], uint64_t v)
{
    uint8_t len[32] = {0};
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(v >> (8 * i));
    ref_pair(out, root, len);
}

/* Streaming with random split points, as chunk pushes. */
static void stream_chunks(uint8_t out[32], const uint8_t *chunks, size_t n, unsigned depth)
{
    cap_merkle_t m;
    cap_merkle_init(&m, depth);
    size_t done = 0;
    while (done < n) {
        size_t k = 1 + (size_t)rng_below(rng_below(4) == 0 ? 140 : 5);
        if (k > n - done) k = n - done;
        CHECK_EQ_INT(cap_merkle_push(&m, chunks + 32 * done, k), CAP_OK);
        done += k;
    }
    cap_merkle_finish(&m, out);
}

/* Streaming with random split points, as byte pushes (any boundary). */
static void stream_bytes(uint8_t out[32], const uint8_t *bytes, size_t n, unsigned depth)
{
    cap_merkle_t m;
    cap_merkle_init(&m, depth);
    size_t done = 0;
    while (done < n) {
        size_t k = 1 + (size_t)rng_below(rng_below(3) == 0 ? 5000 : 70);
        if (k > n - done) k = n - done;
        CHECK_EQ_INT(cap_merkle_push_bytes(&m, bytes + done, k), CAP_OK);
        done += k;
    }
    cap_merkle_finish(&m, out);
}

/* Vectors ------------------------------------------------------------------------------ */

enum {
    V_NODE, V_ZERO, V_U8, V_U32, V_VEC64, V_B32_65536, V_B32_2P32, V_BYTEVEC, V_MIXLEN, V_MIXSEL, V_KINDS
};
static const struct {
    const char *prefix;
    int expected;
} vector_kinds[V_KINDS] = {
    [V_NODE] = {"node_hash_", 30},          [V_ZERO] = {"zero_hash_", 41},
    [V_U8] = {"list_uint8_", 7},            [V_U32] = {"list_uint32_", 6},
    [V_VEC64] = {"vector_uint64_13_", 4},   [V_B32_65536] = {"list_bytes32_65536_", 6},
    [V_B32_2P32] = {"list_bytes32_2p32_", 3}, [V_BYTEVEC] = {"bytevector_", 8},
    [V_MIXLEN] = {"mix_in_length_", 5},     [V_MIXSEL] = {"mix_in_selector_", 5},
};
#define VECTOR_TOTAL 115

/* The root of a List[Bytes32, 65536] again through the sparse merkleizer:
 * the CNode hashing path must agree with the dense one on the vectors. */
static void check_sparse_list(const uint8_t *in, size_t n, const uint8_t want[32])
{
    uint32_t *idx = xmalloc((n + 1) * sizeof *idx);
    uint8_t *leaves = xmalloc((n + 1) * 32);
    size_t k = 0;
    static const uint8_t zero[32];
    for (size_t i = 0; i < n; i++) {
        if (memcmp(in + 32 * i, zero, 32) == 0) continue; /* zero leaves are implied */
        idx[k] = (uint32_t)i;
        memcpy(leaves + 32 * k, in + 32 * i, 32);
        k++;
    }
    void *scratch = xmalloc(cap_ssz_sparse_scratch_size(k));
    uint8_t root[32];
    CHECK_EQ_INT(cap_ssz_merkleize_sparse(root, idx, leaves, k, 16, scratch), CAP_OK);
    cap_ssz_mix_in_length(root, root, n);
    CHECK_MEM(root, want, 32);
    free(scratch);
    free(leaves);
    free(idx);
}

static int run_vector(int kind, const char *name, const uint8_t want[32], const uint8_t *in, size_t n)
{
    uint8_t got[32], alt[32];
    switch (kind) {
    case V_NODE:
        if (n != 64) return 0;
        cap_ssz_merkleize(got, in, 2, 2);
        CHECK_MEM(got, want, 32);
        cap_merkle_t m;
        cap_merkle_init(&m, 1);
        CHECK_EQ_INT(cap_merkle_push_bytes(&m, in, 64), CAP_OK);
        cap_merkle_finish(&m, alt);
        CHECK_MEM(alt, want, 32);
        return 1;
    case V_ZERO: {
        if (n != 1 || in[0] > CAP_SSZ_MAX_DEPTH) return 0;
        CHECK_MEM(cap_ssz_zero_hash(in[0]), want, 32);
        /* an empty tree of that depth is the same root */
        CHECK_EQ_INT(cap_ssz_merkleize(got, NULL, 0, in[0] >= 64 ? UINT64_MAX : (uint64_t)1 << in[0]),
                     CAP_OK);
        CHECK_MEM(got, want, 32);
        return 1;
    }
    case V_U8:
        CHECK_EQ_INT(cap_ssz_root_list_u8(got, in, n, (uint64_t)1 << 32), CAP_OK);
        CHECK_MEM(got, want, 32);
        /* the same via streaming at the chunk limit 2^27 */
        stream_bytes(alt, in, n, 27);
        cap_ssz_mix_in_length(alt, alt, n);
        CHECK_MEM(alt, want, 32);
        return 1;
    case V_U32: {
        if (n % 4) return 0;
        uint32_t *v = xmalloc(n + 4);
        for (size_t i = 0; i < n / 4; i++) v[i] = (uint32_t)le_get(in + 4 * i, 4);
        CHECK_EQ_INT(cap_ssz_root_list_u32(got, v, n / 4, (uint64_t)1 << 32), CAP_OK);
        CHECK_MEM(got, want, 32);
        free(v);
        return 1;
    }
    case V_VEC64: {
        uint64_t v[13];
        if (n != sizeof v) return 0;
        for (size_t i = 0; i < 13; i++) v[i] = le_get(in + 8 * i, 8);
        cap_ssz_root_vector_u64(got, v, 13);
        CHECK_MEM(got, want, 32);
        return 1;
    }
    case V_B32_65536:
        if (n % 32) return 0;
        CHECK_EQ_INT(cap_ssz_root_list_roots(got, in, n / 32, 65536), CAP_OK);
        CHECK_MEM(got, want, 32);
        check_sparse_list(in, n / 32, want);
        return 1;
    case V_B32_2P32:
        if (n % 32) return 0;
        CHECK_EQ_INT(cap_ssz_root_list_roots(got, in, n / 32, (uint64_t)1 << 32), CAP_OK);
        CHECK_MEM(got, want, 32);
        return 1;
    case V_BYTEVEC: {
        /* bytevector_<n>_*: the length in the name must match the input */
        unsigned long named = strtoul(name + strlen("bytevector_"), NULL, 10);
        if (named != n) return 0;
        cap_ssz_root_bytevector(got, in, n);
        CHECK_MEM(got, want, 32);
        return 1;
    }
    case V_MIXLEN:
    case V_MIXSEL: {
        if (n != 40) return 0;
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v |= (uint64_t)in[32 + i] << (8 * i);
        if (kind == V_MIXLEN)
            cap_ssz_mix_in_length(got, in, v);
        else
            cap_ssz_mix_in_selector(got, in, v);
        CHECK_MEM(got, want, 32);
        memcpy(alt, in, 32); /* out aliasing root */
        if (kind == V_MIXLEN)
            cap_ssz_mix_in_length(alt, alt, v);
        else
            cap_ssz_mix_in_selector(alt, alt, v);
        CHECK_MEM(alt, want, 32);
        return 1;
    }
    }
    return 0;
}

static void test_vectors(int argc, char **argv)
{
    char path[4096];
    line_reader_t lr;
    int seen[V_KINDS] = {0}, total = 0;
    size_t cap = 1 << 20;
    uint8_t *in = xmalloc(cap);
    check_data_path(argc, argv, "vectors/ssz-basic.txt", path, sizeof path);
    if (line_reader_open(&lr, path) != 0) {
        fprintf(stderr, "FATAL: cannot open %s\n", path);
        exit(2);
    }
    for (char *line; (line = line_reader_next(&lr)) != NULL;) {
        if (line[0] == '#' || line[0] == 0) continue;
        char *name = strtok(line, " "), *root_hex = strtok(NULL, " "), *in_hex = strtok(NULL, " ");
        if (!name) continue;
        uint8_t want[32];
        CHECK(root_hex && in_hex && strtok(NULL, " ") == NULL);
        if (!root_hex || !in_hex) continue;
        CHECK_EQ_INT(hex_decode(root_hex, want, 32), 32);
        if (strlen(in_hex) / 2 > cap) {
            cap = strlen(in_hex) / 2;
            free(in);
            in = xmalloc(cap);
        }
        long n = hex_decode(in_hex, in, cap);
        CHECK(n >= 0);
        if (n < 0) continue;
        int kind = -1;
        for (int k = 0; k < V_KINDS; k++)
            if (strncmp(name, vector_kinds[k].prefix, strlen(vector_kinds[k].prefix)) == 0) kind = k;
        if (kind < 0) {
            fprintf(stderr, "unknown vector %s\n", name);
            CHECK(kind >= 0);
            continue;
        }
        int before = check_failures;
        int ok = run_vector(kind, name, want, in, (size_t)n);
        if (!ok) fprintf(stderr, "malformed vector %s\n", name);
        CHECK(ok);
        if (check_failures != before) fprintf(stderr, "  ^ in vector %s\n", name);
        seen[kind] += ok;
        total += ok;
    }
    line_reader_close(&lr);
    free(in);
    for (int k = 0; k < V_KINDS; k++) {
        if (seen[k] < vector_kinds[k].expected)
            fprintf(stderr, "%s*: %d vectors checked, %d expected\n", vector_kinds[k].prefix, seen[k],
                    vector_kinds[k].expected);
        CHECK(seen[k] >= vector_kinds[k].expected);
    }
    CHECK(total >= VECTOR_TOTAL);
    printf("ssz-basic.txt: %d vectors checked\n", total);
}

/* Properties against the reference ------------------------------------------------------ */

static void test_zero_hashes(void)
{
    uint8_t z[32];
    for (unsigned d = 0; d <= CAP_SSZ_MAX_DEPTH; d++) {
        ref_zero(d, z);
        CHECK_MEM(cap_ssz_zero_hash(d), z, 32);
    }
}

static void test_depth_for_limit(void)
{
    CHECK_EQ_INT(cap_ssz_depth_for_limit(0), 0);
    CHECK_EQ_INT(cap_ssz_depth_for_limit(1), 0);
    CHECK_EQ_INT(cap_ssz_depth_for_limit(2), 1);
    CHECK_EQ_INT(cap_ssz_depth_for_limit(3), 2);
    CHECK_EQ_INT(cap_ssz_depth_for_limit(4), 2);
    CHECK_EQ_INT(cap_ssz_depth_for_limit(5), 3);
    CHECK_EQ_INT(cap_ssz_depth_for_limit(65536), 16);
    CHECK_EQ_INT(cap_ssz_depth_for_limit(65537), 17);
    CHECK_EQ_INT(cap_ssz_depth_for_limit((uint64_t)1 << 32), 32);
    CHECK_EQ_INT(cap_ssz_depth_for_limit(((uint64_t)1 << 32) + 1), 33);
    CHECK_EQ_INT(cap_ssz_depth_for_limit((uint64_t)1 << 63), 63);
    CHECK_EQ_INT(cap_ssz_depth_for_limit(((uint64_t)1 << 63) + 1), 64);
    CHECK_EQ_INT(cap_ssz_depth_for_limit(UINT64_MAX), 64);
}

/* Every size 0..300 chunks at every depth that holds it up to 12; the limit
 * is a random value with that depth, so non-powers of two are exercised. */
static void test_dense_random(void)
{
    enum { MAXN = 300, MAXD = 12 };
    uint8_t *data = xmalloc((size_t)MAXN * 32 + 64);
    int cases = 0;
    for (size_t n = 0; n <= MAXN; n++) {
        for (unsigned d = cap_ssz_depth_for_limit(n); d <= MAXD; d++) {
            uint8_t want[32], got[32];
            uint64_t lo = d == 0 ? 0 : ((uint64_t)1 << (d - 1)) + 1, hi = (uint64_t)1 << d;
            uint64_t limit = lo + rng_below(hi - lo + 1);
            if (limit < n) limit = n;
            CHECK_EQ_INT(cap_ssz_depth_for_limit(limit), d);
            rng_fill(data, n * 32);
            ref_merkleize(want, data, n, d);

            CHECK_EQ_INT(cap_ssz_merkleize(got, data, n, limit), CAP_OK);
            CHECK_MEM(got, want, 32);
            stream_chunks(got, data, n, d);
            CHECK_MEM(got, want, 32);
            stream_bytes(got, data, n * 32, d);
            CHECK_MEM(got, want, 32);

            /* packed bytes with a partial last chunk: zero-padded */
            if (n > 0) {
                size_t nb = n * 32 - (size_t)rng_below(32);
                memset(data + nb, 0, n * 32 - nb);
                ref_merkleize(want, data, n, d);
                CHECK_EQ_INT(cap_ssz_merkleize_bytes(got, data, nb, limit), CAP_OK);
                CHECK_MEM(got, want, 32);
                stream_bytes(got, data, nb, d);
                CHECK_MEM(got, want, 32);
            }
            cases++;
        }
    }
    printf("dense random: %d cases\n", cases);
    free(data);
}

/* push() after a push_bytes() that left a partial chunk packs after it. */
static void test_mixed_pushes(void)
{
    uint8_t data[200 * 32], want[32], got[32];
    for (int round = 0; round < 200; round++) {
        size_t first = 1 + (size_t)rng_below(100 * 32), nchunks = (size_t)rng_below(100);
        size_t total = first + nchunks * 32;
        memset(data, 0, sizeof data);
        rng_fill(data, total);
        ref_merkleize(want, data, (total + 31) / 32, 8);
        cap_merkle_t m;
        cap_merkle_init(&m, 8);
        CHECK_EQ_INT(cap_merkle_push_bytes(&m, data, first), CAP_OK);
        CHECK_EQ_INT(cap_merkle_push(&m, data + first, nchunks), CAP_OK);
        cap_merkle_finish(&m, got);
        CHECK_MEM(got, want, 32);
    }
}

static void test_limits(void)
{
    uint8_t data[128 * 32], want[32], got[32];
    cap_merkle_t m;
    rng_fill(data, sizeof data);

    /* a refused push changes nothing */
    for (unsigned d = 0; d <= 7; d++) {
        size_t lim = (size_t)1 << d;
        cap_merkle_init(&m, d);
        CHECK_EQ_INT(cap_merkle_push(&m, data, lim - 1), CAP_OK);
        CHECK_EQ_INT(cap_merkle_push(&m, data, 2), CAP_EINVAL);
        CHECK_EQ_INT(cap_merkle_push_bytes(&m, data, 33), CAP_EINVAL);
        CHECK_EQ_INT(cap_merkle_push_bytes(&m, data, 5), CAP_OK);
        CHECK_EQ_INT(cap_merkle_push_bytes(&m, data, 28), CAP_EINVAL); /* 5 + 28 > 32 */
        CHECK_EQ_INT(cap_merkle_push(&m, data, 1), CAP_EINVAL);        /* packs after the 5 */
        CHECK_EQ_INT(cap_merkle_push_bytes(&m, data + 5, 27), CAP_OK);  /* exactly full */
        CHECK_EQ_INT(cap_merkle_push_bytes(&m, data, 1), CAP_EINVAL);
        CHECK_EQ_INT(cap_merkle_push(&m, data, 1), CAP_EINVAL);
        cap_merkle_finish(&m, got);
        uint8_t full[128 * 32];
        memcpy(full, data, (lim - 1) * 32);
        memcpy(full + (lim - 1) * 32, data, 32);
        ref_merkleize(want, full, lim, d);
        CHECK_MEM(got, want, 32);
    }
    CHECK_EQ_INT(cap_ssz_merkleize(got, data, 5, 4), CAP_EINVAL);
    CHECK_EQ_INT(cap_ssz_merkleize(got, data, 2, 0), CAP_EINVAL); /* limit 0 counts as 1 */
    CHECK_EQ_INT(cap_ssz_merkleize(got, data, 1, 0), CAP_OK);
    CHECK_MEM(got, data, 32);
    CHECK_EQ_INT(cap_ssz_merkleize(got, data, 0, 0), CAP_OK);
    CHECK_MEM(got, cap_ssz_zero_hash(0), 32);
    CHECK_EQ_INT(cap_ssz_merkleize_bytes(got, data, 129, 4), CAP_EINVAL);
    CHECK_EQ_INT(cap_ssz_merkleize_bytes(got, data, 128, 4), CAP_OK);
    CHECK_EQ_INT(cap_ssz_root_list_u8(got, data, 11, 10), CAP_EINVAL);
    uint32_t v32[4] = {1, 2, 3, 4};
    CHECK_EQ_INT(cap_ssz_root_list_u32(got, v32, 4, 3), CAP_EINVAL);
    CHECK_EQ_INT(cap_ssz_root_list_roots(got, data, 3, 2), CAP_EINVAL);

    /* full trees (n = 64, 128, 256 at their minimal depth) are among the
     * dense random cases */
}

/* Lists of basic values against the reference: chunk limits are
 * ceil(limit * size / 32), then the length is mixed in. */
static void test_basic_lists(void)
{
    uint8_t bytes[600], want[32], got[32];
    uint8_t padded[1024];
    for (int round = 0; round < 100; round++) {
        uint64_t limit = 1 + rng_below(600);
        uint64_t n = rng_below(limit + 1);
        rng_fill(bytes, (size_t)n);
        memset(padded, 0, sizeof padded);
        memcpy(padded, bytes, (size_t)n);
        ref_merkleize(want, padded, (size_t)(n + 31) / 32, cap_ssz_depth_for_limit((limit + 31) / 32));
        ref_mix(want, want, n);
        CHECK_EQ_INT(cap_ssz_root_list_u8(got, bytes, n, limit), CAP_OK);
        CHECK_MEM(got, want, 32);

        uint32_t v[150];
        uint64_t lim32 = 1 + rng_below(150), n32 = rng_below(lim32 + 1);
        rng_fill((uint8_t *)v, sizeof v);
        memset(padded, 0, sizeof padded);
        for (size_t i = 0; i < n32; i++) le_put(padded + 4 * i, v[i], 4);
        ref_merkleize(want, padded, (size_t)(n32 * 4 + 31) / 32,
                      cap_ssz_depth_for_limit((lim32 * 4 + 31) / 32));
        ref_mix(want, want, n32);
        CHECK_EQ_INT(cap_ssz_root_list_u32(got, v, n32, lim32), CAP_OK);
        CHECK_MEM(got, want, 32);

        uint64_t v64[70];
        size_t n64 = 1 + (size_t)rng_below(70);
        rng_fill((uint8_t *)v64, sizeof v64);
        memset(padded, 0, sizeof padded);
        for (size_t i = 0; i < n64; i++) le_put(padded + 8 * i, v64[i], 8);
        ref_merkleize(want, padded, (n64 * 8 + 31) / 32, cap_ssz_depth_for_limit((n64 * 8 + 31) / 32));
        cap_ssz_root_vector_u64(got, v64, n64);
        CHECK_MEM(got, want, 32);

        size_t nbv = 1 + (size_t)rng_below(600);
        rng_fill(bytes, nbv);
        memset(padded, 0, sizeof padded);
        memcpy(padded, bytes, nbv);
        ref_merkleize(want, padded, (nbv + 31) / 32, cap_ssz_depth_for_limit((nbv + 31) / 32));
        cap_ssz_root_bytevector(got, bytes, nbv);
        CHECK_MEM(got, want, 32);
    }
    uint8_t c[32], e[32] = {0};
    cap_ssz_chunk_u64(c, 0x0102030405060708ull);
    e[0] = 8, e[1] = 7, e[2] = 6, e[3] = 5, e[4] = 4, e[5] = 3, e[6] = 2, e[7] = 1;
    CHECK_MEM(c, e, 32);
}

/* Sparse merkleize against the dense reference, on random occupancy. */
static void test_sparse(void)
{
    enum { MAXD = 12 };
    size_t width_max = (size_t)1 << MAXD;
    uint8_t *dense = xmalloc(width_max * 32), *leaves = xmalloc(width_max * 32);
    uint32_t *idx = xmalloc(width_max * sizeof *idx);
    void *scratch = xmalloc(cap_ssz_sparse_scratch_size(width_max));
    uint8_t want[32], got[32];
    int cases = 0;
    for (unsigned d = 0; d <= MAXD; d++) {
        size_t width = (size_t)1 << d;
        for (int round = 0; round < 40; round++) {
            /* occupancy: empty, single, sparse, dense, full */
            unsigned mode = (unsigned)rng_below(5);
            uint64_t permille = mode == 0 ? 0 : mode == 2 ? 20 : mode == 3 ? 500 : 1000;
            size_t single = (size_t)rng_below(width), n = 0;
            memset(dense, 0, width * 32);
            for (size_t i = 0; i < width; i++) {
                if (mode == 1 ? i != single : rng_below(1000) >= permille) continue;
                idx[n] = (uint32_t)i;
                rng_fill(leaves + 32 * n, 32);
                if (rng_below(10) == 0) memset(leaves + 32 * n, 0, 32); /* explicit zero leaf */
                memcpy(dense + 32 * i, leaves + 32 * n, 32);
                n++;
            }
            ref_merkleize(want, dense, width, d);
            memset(scratch, 0xa5, cap_ssz_sparse_scratch_size(n));
            CHECK_EQ_INT(cap_ssz_merkleize_sparse(got, idx, leaves, n, d, n ? scratch : NULL), CAP_OK);
            CHECK_MEM(got, want, 32);
            /* agrees with the streaming merkleizer on the dense form */
            CHECK_EQ_INT(cap_ssz_merkleize(got, dense, width, width), CAP_OK);
            CHECK_MEM(got, want, 32);
            cases++;
        }
    }
    /* depth 16, the CNode shape: 16 random slots, against streaming */
    uint8_t *big = xmalloc(65536 * 32);
    for (int round = 0; round < 8; round++) {
        size_t n = 0;
        memset(big, 0, 65536 * 32);
        for (uint32_t s = (uint32_t)rng_below(4096); s < 65536 && n < 16; s += 1 + (uint32_t)rng_below(8192)) {
            idx[n] = s;
            rng_fill(leaves + 32 * n, 32);
            memcpy(big + 32 * (size_t)s, leaves + 32 * n, 32);
            n++;
        }
        CHECK_EQ_INT(cap_ssz_merkleize(want, big, 65536, 65536), CAP_OK);
        CHECK_EQ_INT(cap_ssz_merkleize_sparse(got, idx, leaves, n, 16, scratch), CAP_OK);
        CHECK_MEM(got, want, 32);
    }
    free(big);

    /* deep trees: everything lies in the leftmost 2^12 leaves */
    for (unsigned d = 13; d <= CAP_SSZ_MAX_DEPTH; d += 17) {
        size_t n = 0;
        memset(dense, 0, width_max * 32);
        for (size_t i = 0; i < width_max; i += 1 + (size_t)rng_below(700)) {
            idx[n] = (uint32_t)i;
            rng_fill(leaves + 32 * n, 32);
            memcpy(dense + 32 * i, leaves + 32 * n, 32);
            n++;
        }
        ref_merkleize(want, dense, width_max, MAXD);
        ref_climb(want, MAXD, d);
        CHECK_EQ_INT(cap_ssz_merkleize_sparse(got, idx, leaves, n, d, scratch), CAP_OK);
        CHECK_MEM(got, want, 32);
    }
    /* an index near 2^32 at depth 64 */
    {
        uint32_t hi[2] = {0, UINT32_MAX};
        uint8_t lv[64], l0[32], l1[32];
        rng_fill(lv, 64);
        /* root = climb of the two subtrees: the left leaf and the right leaf
         * are in the two halves of the depth-32 subtree */
        memcpy(l0, lv, 32);
        ref_climb(l0, 0, 31);
        uint8_t z[32];
        memcpy(l1, lv + 32, 32);
        for (unsigned h = 0; h < 31; h++) {
            ref_zero(h, z);
            ref_pair(l1, z, l1);
        }
        ref_pair(want, l0, l1);
        ref_climb(want, 32, 64);
        CHECK_EQ_INT(cap_ssz_merkleize_sparse(got, hi, lv, 2, 64, scratch), CAP_OK);
        CHECK_MEM(got, want, 32);
        /* and at depth 32 the same index is still in range, at 31 it is not */
        CHECK_EQ_INT(cap_ssz_merkleize_sparse(got, hi, lv, 2, 32, scratch), CAP_OK);
        CHECK_EQ_INT(cap_ssz_merkleize_sparse(got, hi, lv, 2, 31, scratch), CAP_EINVAL);
    }
    /* validation */
    uint32_t bad_order[3] = {1, 5, 3}, dup[2] = {4, 4}, range[2] = {3, 16};
    CHECK_EQ_INT(cap_ssz_merkleize_sparse(got, bad_order, leaves, 3, 8, scratch), CAP_EINVAL);
    CHECK_EQ_INT(cap_ssz_merkleize_sparse(got, dup, leaves, 2, 8, scratch), CAP_EINVAL);
    CHECK_EQ_INT(cap_ssz_merkleize_sparse(got, range, leaves, 2, 4, scratch), CAP_EINVAL);
    CHECK_EQ_INT(cap_ssz_merkleize_sparse(got, range, leaves, 2, 5, scratch), CAP_OK);
    CHECK_EQ_INT(cap_ssz_merkleize_sparse(got, range, leaves, 1, 0, scratch), CAP_EINVAL);
    CHECK_EQ_INT(cap_ssz_merkleize_sparse(got, range, leaves, 2, 65, scratch), CAP_EINVAL);
    uint32_t zero_idx = 0;
    CHECK_EQ_INT(cap_ssz_merkleize_sparse(got, &zero_idx, leaves, 1, 0, scratch), CAP_OK);
    CHECK_MEM(got, leaves, 32);
    CHECK_EQ_INT(cap_ssz_merkleize_sparse(got, NULL, NULL, 0, 20, NULL), CAP_OK);
    CHECK_MEM(got, cap_ssz_zero_hash(20), 32);
    CHECK(cap_ssz_sparse_scratch_size(16) >= 16 * 69);
    CHECK_EQ_INT(cap_ssz_sparse_scratch_size(SIZE_MAX / 2), SIZE_MAX);
    printf("sparse: %d random cases\n", cases);
    free(scratch);
    free(idx);
    free(leaves);
    free(dense);
}

/* Deep trees: the streaming root of a depth-d tree is the depth-12 root
 * climbed with zero siblings, for d up to 64 (cheap: never 2^d work). */
static void test_deep(void)
{
    size_t n = 1000;
    uint8_t *data = xmalloc(n * 32);
    uint8_t base[32], want[32], got[32];
    rng_fill(data, n * 32);
    ref_merkleize(base, data, n, 12);
    for (unsigned d = 12; d <= CAP_SSZ_MAX_DEPTH; d++) {
        memcpy(want, base, 32);
        ref_climb(want, 12, d);
        stream_chunks(got, data, n, d);
        CHECK_MEM(got, want, 32);
        uint64_t limit = d == 64 ? UINT64_MAX : ((uint64_t)1 << d);
        CHECK_EQ_INT(cap_ssz_merkleize(got, data, n, limit), CAP_OK);
        CHECK_MEM(got, want, 32);
    }
    /* depth 64 accepts a push near the top of its range of counts */
    cap_merkle_t m;
    cap_merkle_init(&m, 64);
    CHECK_EQ_INT(cap_merkle_push(&m, data, UINT64_MAX), CAP_EINVAL);
    CHECK_EQ_INT(cap_merkle_push(&m, data, 3), CAP_OK);
    cap_merkle_finish(&m, got);
    ref_merkleize(want, data, 3, 2);
    ref_climb(want, 2, 64);
    CHECK_MEM(got, want, 32);
    free(data);
}

int main(int argc, char **argv)
{
    cap_sha256_select_from_env();
    test_vectors(argc, argv);
    test_zero_hashes();
    test_depth_for_limit();
    test_dense_random();
    test_mixed_pushes();
    test_limits();
    test_basic_lists();
    test_sparse();
    test_deep();
    return check_done("test_ssz");
}
