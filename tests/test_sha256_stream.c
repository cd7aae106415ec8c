/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The streaming SHA-256 (cap_sha256_init / update / final, cap_sha256)
 * against OpenSSL: every length up to a few blocks, long messages fed in
 * random pieces, the FIPS 180-4 examples, on every kernel family. */
#include <openssl/sha.h>

#include "capstore/host.h"
#include "capstore/sha256.h"
#include "check.h"
#include "test_rng.h"

static test_rng_t rng = {0x9e3779b97f4a7c15ull};

static void fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(test_rng_next(&rng) >> 56);
}

static const char *name(cap_sha256_kernel_t k)
{
    return k == CAP_SHA256_SHANI_AVX ? "shani-avx" : k == CAP_SHA256_SHANI ? "shani" : "portable";
}

/* `n` bytes fed in random pieces (some empty) against one OpenSSL call. */
static int pieces(const uint8_t *msg, size_t n)
{
    uint8_t want[32], got[32];
    SHA256(msg, n, want);
    cap_sha256_ctx_t c;
    cap_sha256_init(&c);
    size_t at = 0;
    while (at < n) {
        size_t take = (size_t)(test_rng_next(&rng) % 200);
        if (test_rng_next(&rng) % 8 == 0) take = (size_t)(test_rng_next(&rng) % 5000);
        if (take > n - at) take = n - at;
        cap_sha256_update(&c, msg + at, take);
        at += take;
    }
    cap_sha256_final(&c, got);
    return memcmp(want, got, 32) == 0;
}

static void run(cap_sha256_kernel_t k)
{
    CHECK_EQ_INT(cap_sha256_select(k), CAP_OK);
    enum { MAX = 1 << 20 };
    uint8_t *msg = malloc(MAX);
    if (!msg) exit(2);
    fill(msg, MAX);
    int bad = 0;
    for (size_t n = 0; n <= 300; n++) {
        uint8_t want[32], got[32];
        SHA256(msg + 1, n, want); /* misaligned on purpose */
        cap_sha256(got, msg + 1, n);
        if (memcmp(want, got, 32) != 0) bad++;
        if (!pieces(msg + 3, n)) bad++;
    }
    for (int r = 0; r < 40; r++) {
        size_t n = (size_t)(test_rng_next(&rng) % MAX);
        if (!pieces(msg, n)) bad++;
    }
    if (bad) fprintf(stderr, "  %s: %d wrong digests\n", name(k), bad);
    CHECK_EQ_INT(bad, 0);

    /* FIPS 180-4's examples. */
    static const char *abc = "abc";
    static const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    static const uint8_t abc_d[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                      0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                      0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    static const uint8_t two_d[32] = {0x24, 0x8d, 0x6a, 0x61, 0xd2, 0x06, 0x38, 0xb8, 0xe5, 0xc0, 0x26,
                                      0x93, 0x0c, 0x3e, 0x60, 0x39, 0xa3, 0x3c, 0xe4, 0x59, 0x64, 0xff,
                                      0x21, 0x67, 0xf6, 0xec, 0xed, 0xd4, 0x19, 0xdb, 0x06, 0xc1};
    uint8_t d[32];
    cap_sha256(d, abc, 3);
    CHECK_MEM(d, abc_d, 32);
    cap_sha256(d, two, strlen(two));
    CHECK_MEM(d, two_d, 32);
    free(msg);
}

int main(void)
{
    run(CAP_SHA256_PORTABLE);
    if (cap_sha256_cpu_has_shani()) run(CAP_SHA256_SHANI);
    else printf("test_sha256_stream: no SHA extensions here: portable only\n");
    if (cap_sha256_cpu_has_shani_avx()) run(CAP_SHA256_SHANI_AVX);
    return check_done("test_sha256_stream");
}
