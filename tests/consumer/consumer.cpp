/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* consumer.c's calls from C++: the headers' extern "C" makes them link. */
#include <cstdio>
#include <cstring>

#include <capstore/capstore.h>
#include <capstore/host.h>

int main()
{
    cap_store_t *store = nullptr;
    cap_t *type = nullptr;
    cap_hash_t chain, h;
    std::memset(&chain, 0x11, sizeof chain);
    int rc = cap_store_new_host(&store);
    if (rc == CAP_OK) rc = cap_type_new(&type, cap_alloc_libc(), &chain);
    if (rc == CAP_OK) rc = cap_store_put_cap(store, type, &h);
    if (rc != CAP_OK) {
        std::fprintf(stderr, "consumer: %s\n", cap_strerror(rc));
        return 1;
    }
    std::printf("capstore %s type ", CAPSTORE_VERSION);
    for (int i = 0; i < 32; i++) std::printf("%02x", h.bytes[i]);
    std::printf("\n");
    cap_release(type);
    cap_store_free(store);
    return 0;
}
