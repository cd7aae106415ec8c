/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Host conveniences: random table-hash seeds and default store options. */
#include <errno.h>
#include <sys/random.h>

#include "capstore/host.h"

int cap_random_seed(uint64_t seed[2])
{
    unsigned char *p = (unsigned char *)seed;
    size_t got = 0;
    while (got < 16) {
        ssize_t n = getrandom(p + got, 16 - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return CAP_EBACKEND;
        }
        got += (size_t)n;
    }
    return CAP_OK;
}

cap_store_options_t cap_store_options_host(void)
{
    cap_store_options_t o = CAP_STORE_OPTIONS_INIT;
    o.alloc = cap_alloc_libc();
    o.locks = cap_lock_pthread();
    if (cap_random_seed(o.hash_seed) != CAP_OK) {
        /* No OS randomness: fall back to an address-derived seed rather than fail. */
        o.hash_seed[0] = (uint64_t)(uintptr_t)&o ^ 0x9E3779B97F4A7C15ull;
        o.hash_seed[1] = (uint64_t)(uintptr_t)cap_alloc_libc() * 0xff51afd7ed558ccdull;
    }
    return o;
}

int cap_store_new_host(cap_store_t **out)
{
    cap_store_options_t o = cap_store_options_host();
    return cap_store_new(out, &o);
}
