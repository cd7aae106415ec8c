/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The SHA-256 node kernels against OpenSSL and the conformance vectors, the
 * process-wide kernel selection, and the CAPSTORE_SHA256 override. */
#include <openssl/sha.h>

#include "capstore/host.h"
#include "capstore/sha256.h"
#include "check.h"
#include "test_rng.h"

static test_rng_t rng = {0x243f6a8885a308d3ull};
static uint64_t rng_next(void) { return test_rng_next(&rng); }

static void rng_fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(rng_next() >> 56);
}

static const char *kernel_name(cap_sha256_kernel_t k)
{
    return k == CAP_SHA256_SHANI_AVX ? "shani-avx" : k == CAP_SHA256_SHANI ? "shani" : "portable";
}

/* n random nodes through kernel k, out-of-place at the given misalignments
 * (with guard bytes around the output) and in place, against OpenSSL. */
static void check_batch(cap_sha256_kernel_t k, size_t n, size_t in_off, size_t out_off)
{
    enum { GUARD = 24 };
    uint8_t *in = malloc(64 * n + 16), *keep = malloc(64 * n + 1), *exp = malloc(32 * n + 1);
    uint8_t *out = malloc(32 * n + 16 + 2 * GUARD), *buf = malloc(64 * n + 16);
    if (!in || !keep || !exp || !out || !buf) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    uint8_t *src = in + in_off, *dst = out + GUARD + out_off;
    rng_fill(src, 64 * n);
    memcpy(keep, src, 64 * n);
    for (size_t i = 0; i < n; i++) SHA256(src + 64 * i, 64, exp + 32 * i);

    memset(out, 0xa5, 32 * n + 16 + 2 * GUARD);
    CHECK_EQ_INT(cap_sha256_nodes_with(k, dst, src, n), CAP_OK);
    int ok = memcmp(dst, exp, 32 * n) == 0;
    if (!ok) fprintf(stderr, "  %s: n=%zu in_off=%zu out_off=%zu wrong digest\n", kernel_name(k), n, in_off, out_off);
    CHECK(ok);
    CHECK_MEM(src, keep, 64 * n); /* the input is not written */
    int guards = 1;
    for (size_t i = 0; i < GUARD + out_off; i++) guards &= out[i] == 0xa5;
    for (size_t i = GUARD + out_off + 32 * n; i < 32 * n + 16 + 2 * GUARD; i++) guards &= out[i] == 0xa5;
    CHECK(guards);

    /* In place: the digests replace the first half of the buffer. */
    uint8_t *ip = buf + in_off;
    memcpy(ip, keep, 64 * n);
    CHECK_EQ_INT(cap_sha256_nodes_with(k, ip, ip, n), CAP_OK);
    ok = memcmp(ip, exp, 32 * n) == 0;
    if (!ok) fprintf(stderr, "  %s: n=%zu in place at %zu wrong digest\n", kernel_name(k), n, in_off);
    CHECK(ok);
    if (n) CHECK_MEM(ip + 32 * n, keep + 32 * n, 32 * n); /* the second half is untouched */

    free(in);
    free(keep);
    free(exp);
    free(out);
    free(buf);
}

static void check_kernel_random(cap_sha256_kernel_t k)
{
    for (size_t n = 0; n <= 67; n++) check_batch(k, n, n % 16, (n * 7) % 16);
    static const size_t big[] = {1000, 4097};
    for (size_t i = 0; i < 2; i++) {
        check_batch(k, big[i], 0, 0);
        check_batch(k, big[i], 3, 5);
    }
    /* Every misalignment pair on a size that exercises all group widths. */
    for (size_t a = 0; a < 16; a++)
        for (size_t b = 0; b < 16; b += 5) check_batch(k, 7, a, b);
}

/* The node_hash_* lines of ssz-basic.txt: name root input. */
static void check_kernel_vectors(cap_sha256_kernel_t k, const char *path)
{
    line_reader_t lr;
    CHECK_EQ_INT(line_reader_open(&lr, path), 0);
    int seen = 0;
    uint8_t batch[64 * 16], roots[32 * 16];
    char *line;
    while ((line = line_reader_next(&lr)) != NULL) {
        if (strncmp(line, "node_hash_", 10) != 0) continue;
        char *save = NULL, *name = strtok_r(line, " \t", &save);
        char *root_hex = strtok_r(NULL, " \t", &save), *in_hex = strtok_r(NULL, " \t\r\n", &save);
        CHECK(name && root_hex && in_hex);
        if (!name || !root_hex || !in_hex) continue;
        uint8_t in[64], root[32], out[32];
        CHECK_EQ_INT(hex_decode(in_hex, in, sizeof in), 64);
        CHECK_EQ_INT(hex_decode(root_hex, root, sizeof root), 32);
        CHECK_EQ_INT(cap_sha256_nodes_with(k, out, in, 1), CAP_OK);
        if (memcmp(out, root, 32) != 0) fprintf(stderr, "  %s: vector %s wrong\n", kernel_name(k), name);
        CHECK_MEM(out, root, 32);
        if (seen < 16) {
            memcpy(batch + 64 * seen, in, 64);
            memcpy(roots + 32 * seen, root, 32);
        }
        seen++;
    }
    line_reader_close(&lr);
    CHECK(seen >= 8);
    /* The same vectors as one batch (all group widths), in place. */
    int m = seen < 16 ? seen : 16;
    CHECK_EQ_INT(cap_sha256_nodes_with(k, batch, batch, (size_t)m), CAP_OK);
    CHECK_MEM(batch, roots, 32 * (size_t)m);
}

/* The public one-node and batch calls with kernel k selected. */
static void check_dispatch(cap_sha256_kernel_t k)
{
    CHECK_EQ_INT(cap_sha256_select(k), CAP_OK);
    CHECK_EQ_INT(cap_sha256_selected(), k);

    uint8_t in[64 * 5], exp[32 * 5], out[32 * 5];
    rng_fill(in, sizeof in);
    for (int i = 0; i < 5; i++) SHA256(in + 64 * i, 64, exp + 32 * i);
    cap_sha256_nodes(out, in, 5);
    CHECK_MEM(out, exp, sizeof out);
    cap_sha256_nodes(NULL, NULL, 0); /* n == 0 touches nothing */

    cap_sha256_node(out, in);
    CHECK_MEM(out, exp, 32);
    uint8_t node[64];
    memcpy(node, in, 64);
    cap_sha256_node(node, node);
    CHECK_MEM(node, exp, 32);

    uint8_t l[32], r[32];
    memcpy(l, in, 32);
    memcpy(r, in + 32, 32);
    cap_sha256_pair(out, l, r);
    CHECK_MEM(out, exp, 32);
    cap_sha256_pair(l, l, r); /* out aliases left */
    CHECK_MEM(l, exp, 32);
    memcpy(l, in, 32);
    cap_sha256_pair(r, l, r); /* out aliases right */
    CHECK_MEM(r, exp, 32);
    memcpy(node, in + 32, 32);
    memcpy(node + 32, in + 32, 32);
    cap_sha256_pair(node, node, node); /* both halves the same buffer */
    uint8_t same[64], same_exp[32];
    memcpy(same, in + 32, 32);
    memcpy(same + 32, in + 32, 32);
    SHA256(same, 64, same_exp);
    CHECK_MEM(node, same_exp, 32);
}

int main(int argc, char **argv)
{
    char path[4096];
    check_data_path(argc, argv, "vectors/ssz-basic.txt", path, sizeof path);

    bool has_shani = cap_sha256_cpu_has_shani(), has_avx = cap_sha256_cpu_has_shani_avx();
    bool shani_built = cap_sha256_nodes_with(CAP_SHA256_SHANI, NULL, NULL, 0) == CAP_OK;
    bool avx_built = cap_sha256_nodes_with(CAP_SHA256_SHANI_AVX, NULL, NULL, 0) == CAP_OK;
    cap_sha256_kernel_t best = has_avx ? CAP_SHA256_SHANI_AVX : has_shani ? CAP_SHA256_SHANI : CAP_SHA256_PORTABLE;
    CHECK_EQ_INT(cap_sha256_cpu_best(), best);
    printf("sha256: cpu has SHA-NI: %s, with AVX: %s; SHA-NI kernels built: %s\n", has_shani ? "yes" : "no",
           has_avx ? "yes" : "no", shani_built ? "yes" : "no");
    /* The probes only report what the build can use; AVX alone is not enough. */
    CHECK(!has_shani || shani_built);
    CHECK(!has_avx || (avx_built && has_shani));
    CHECK_EQ_INT(shani_built, avx_built); /* both encodings or neither */

    /* Before any selection the first hash settles the kernel from the CPU. */
    uint8_t zero[64] = {0}, d[32], ref[32];
    cap_sha256_node(d, zero);
    SHA256(zero, 64, ref);
    CHECK_MEM(d, ref, 32);
    CHECK_EQ_INT(cap_sha256_selected(), best);

    /* CAPSTORE_SHA256 (the test runs once unset, once with "portable", once
     * with "shani"). */
    const char *env = getenv("CAPSTORE_SHA256");
    int rc = cap_sha256_select_from_env();
    printf("sha256: CAPSTORE_SHA256=%s -> %s\n", env ? env : "(unset)", kernel_name(cap_sha256_selected()));
    if (env && strcmp(env, "portable") == 0) {
        CHECK_EQ_INT(rc, CAP_OK);
        CHECK_EQ_INT(cap_sha256_selected(), CAP_SHA256_PORTABLE);
    } else if (env && strcmp(env, "shani") == 0) {
        CHECK_EQ_INT(rc, has_shani ? CAP_OK : CAP_EINVAL);
        CHECK_EQ_INT(cap_sha256_selected(), has_shani ? CAP_SHA256_SHANI : best);
    } else if (env && strcmp(env, "shani-avx") == 0) {
        CHECK_EQ_INT(rc, has_avx ? CAP_OK : CAP_EINVAL);
        CHECK_EQ_INT(cap_sha256_selected(), best);
    } else if (!env || !*env || strcmp(env, "auto") == 0) {
        CHECK_EQ_INT(rc, CAP_OK);
        CHECK_EQ_INT(cap_sha256_selected(), best);
    }
    cap_sha256_kernel_t from_env = cap_sha256_selected();

    /* The other values, with the variable overridden here and then restored. */
    char *saved = env ? strdup(env) : NULL;
    setenv("CAPSTORE_SHA256", "portable", 1);
    CHECK_EQ_INT(cap_sha256_select_from_env(), CAP_OK);
    CHECK_EQ_INT(cap_sha256_selected(), CAP_SHA256_PORTABLE);
    setenv("CAPSTORE_SHA256", "shani", 1);
    CHECK_EQ_INT(cap_sha256_select_from_env(), has_shani ? CAP_OK : CAP_EINVAL);
    CHECK_EQ_INT(cap_sha256_selected(), has_shani ? CAP_SHA256_SHANI : best);
    setenv("CAPSTORE_SHA256", "shani-avx", 1);
    CHECK_EQ_INT(cap_sha256_select_from_env(), has_avx ? CAP_OK : CAP_EINVAL);
    CHECK_EQ_INT(cap_sha256_selected(), best);
    setenv("CAPSTORE_SHA256", "bogus", 1);
    CHECK_EQ_INT(cap_sha256_select_from_env(), CAP_EINVAL);
    setenv("CAPSTORE_SHA256", "auto", 1);
    CHECK_EQ_INT(cap_sha256_select_from_env(), CAP_OK);
    CHECK_EQ_INT(cap_sha256_selected(), best);
    if (saved) {
        setenv("CAPSTORE_SHA256", saved, 1);
        free(saved);
    } else {
        unsetenv("CAPSTORE_SHA256");
    }
    CHECK_EQ_INT(cap_sha256_select(from_env), CAP_OK);

    /* Bad arguments leave the selection alone. */
    CHECK_EQ_INT(cap_sha256_select((cap_sha256_kernel_t)7), CAP_EINVAL);
    CHECK_EQ_INT(cap_sha256_selected(), from_env);
    CHECK_EQ_INT(cap_sha256_nodes_with((cap_sha256_kernel_t)7, d, zero, 1), CAP_EINVAL);
    if (!shani_built) {
        CHECK_EQ_INT(cap_sha256_select(CAP_SHA256_SHANI), CAP_EINVAL);
        CHECK_EQ_INT(cap_sha256_select(CAP_SHA256_SHANI_AVX), CAP_EINVAL);
        CHECK_EQ_INT(cap_sha256_selected(), from_env);
    }

    cap_sha256_kernel_t kernels[3] = {CAP_SHA256_PORTABLE, CAP_SHA256_SHANI, CAP_SHA256_SHANI_AVX};
    for (int i = 0; i < 3; i++) {
        cap_sha256_kernel_t k = kernels[i];
        bool runs = k == CAP_SHA256_PORTABLE || (k == CAP_SHA256_SHANI ? has_shani : has_avx);
        if (!runs) {
            printf("sha256: SKIP the %s kernel: %s\n", kernel_name(k),
                   shani_built ? "this CPU lacks the instructions" : "not built");
            continue;
        }
        int before = check_failures;
        check_kernel_vectors(k, path);
        check_kernel_random(k);
        check_dispatch(k);
        printf("sha256: %s kernel %s\n", kernel_name(k), check_failures == before ? "ok" : "FAILED");
    }
    CHECK_EQ_INT(cap_sha256_select(from_env), CAP_OK);
    return check_done("test_sha256");
}
