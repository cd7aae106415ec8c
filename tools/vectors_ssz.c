/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The merkleization vectors of ssz-basic.txt, for capstore vectors: which
 * shape a line's name gives its input, and the root the library computes
 * for that input (through the public SSZ calls). */
#include <stdlib.h>
#include <string.h>

#include "capstore/sha256.h"
#include "capstore/ssz.h"
#include "vectors_ssz.h"

/* Little-endian words of a packed list or vector (NULL when out of memory). */
static uint32_t *words32(const uint8_t *in, size_t n)
{
    uint32_t *v = malloc(n ? n * sizeof *v : 1);
    for (size_t i = 0; v && i < n; i++) v[i] = cap_ssz_get_u32(in + 4 * i);
    return v;
}

static int bad(const char **why, const char *what)
{
    *why = what;
    return VECTORS_SSZ_BAD_INPUT;
}

/* bytevector_<n>_...: the <n> of the name, or 0 when it has none. */
static size_t bytevector_len(const char *name)
{
    const char *p = name + strlen("bytevector_");
    size_t n = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (SIZE_MAX - 9) / 10) return 0;
        n = n * 10 + (size_t)(*p - '0');
    }
    return *p == '_' ? n : 0;
}

static int prefixed(const char *name, const char *prefix)
{
    return strncmp(name, prefix, strlen(prefix)) == 0;
}

int vectors_ssz_root(const char *name, const uint8_t *in, size_t n, uint8_t root[32], const char **why)
{
    *why = NULL;
    if (prefixed(name, "node_hash_")) {
        if (n != 64) return bad(why, "a node is 64 bytes");
        cap_sha256_node(root, in);
    } else if (prefixed(name, "zero_hash_")) {
        if (n != 1 || in[0] > 64) return bad(why, "want one byte, a depth of at most 64");
        memcpy(root, cap_ssz_zero_hash(in[0]), 32);
    } else if (prefixed(name, "list_uint8_")) {
        if (cap_ssz_root_list_u8(root, in, n, (uint64_t)1 << 32) != CAP_OK) return bad(why, "over the limit");
    } else if (prefixed(name, "list_uint32_")) {
        if (n % 4) return bad(why, "not a whole number of uint32");
        uint32_t *v = words32(in, n / 4);
        if (!v) return VECTORS_SSZ_NOMEM;
        int rc = cap_ssz_root_list_u32(root, v, n / 4, (uint64_t)1 << 32);
        free(v);
        if (rc != CAP_OK) return bad(why, "over the limit");
    } else if (prefixed(name, "vector_uint64_13_")) {
        if (n != 13 * 8) return bad(why, "a Vector[uint64, 13] is 104 bytes");
        uint64_t v[13];
        for (size_t i = 0; i < 13; i++) v[i] = cap_ssz_get_u64(in + 8 * i);
        cap_ssz_root_vector_u64(root, v, 13);
    } else if (prefixed(name, "list_bytes32_65536_") || prefixed(name, "list_bytes32_2p32_")) {
        uint64_t limit = prefixed(name, "list_bytes32_65536_") ? 65536 : (uint64_t)1 << 32;
        if (n % 32) return bad(why, "not a whole number of Bytes32");
        if (cap_ssz_root_list_roots(root, in, n / 32, limit) != CAP_OK) return bad(why, "over the limit");
    } else if (prefixed(name, "bytevector_")) {
        size_t want = bytevector_len(name);
        if (!want) return bad(why, "the name gives no length (bytevector_<n>_...)");
        if (n != want) return bad(why, "the input is not as long as the name says");
        cap_ssz_root_bytevector(root, in, n);
    } else if (prefixed(name, "mix_in_length_") || prefixed(name, "mix_in_selector_")) {
        if (n != 40) return bad(why, "want a 32-byte root and an 8-byte little-endian value");
        uint64_t v = cap_ssz_get_u64(in + 32);
        if (prefixed(name, "mix_in_length_"))
            cap_ssz_mix_in_length(root, in, v);
        else
            cap_ssz_mix_in_selector(root, in, v);
    } else {
        return VECTORS_SSZ_NOT_SSZ;
    }
    return VECTORS_SSZ_OK;
}
