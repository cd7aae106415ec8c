/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The merkleization vectors of ssz-basic.txt (<name> <root-hex> <input-hex>):
 * the name's prefix says what the input is (node_hash_, zero_hash_,
 * list_uint8_, list_uint32_, vector_uint64_13_, list_bytes32_65536_,
 * list_bytes32_2p32_, bytevector_<n>_, mix_in_length_, mix_in_selector_). */
#ifndef CAPSTORE_TOOLS_VECTORS_SSZ_H
#define CAPSTORE_TOOLS_VECTORS_SSZ_H

#include <stddef.h>
#include <stdint.h>

enum {
    VECTORS_SSZ_OK = 0,         /* root computed */
    VECTORS_SSZ_NOT_SSZ = 1,    /* the name is no merkleization vector's */
    VECTORS_SSZ_BAD_INPUT = -1, /* the input does not fit the shape; *why says how */
    VECTORS_SSZ_NOMEM = -2,
};

/* The root the input of vector `name` gives, into `root`. */
int vectors_ssz_root(const char *name, const uint8_t *in, size_t n, uint8_t root[32], const char **why);

#endif
