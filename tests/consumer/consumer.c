/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Publish a Type cap in a host store and print its hash: enough to show the
 * headers, the library and its dependencies were all found. */
#include <stdio.h>
#include <string.h>

#include <capstore/capstore.h>
#include <capstore/host.h>

int main(void)
{
    cap_store_t *store = NULL;
    cap_t *type = NULL;
    cap_hash_t chain, h;
    memset(&chain, 0x11, sizeof chain);
    int rc = cap_store_new_host(&store);
    if (rc == CAP_OK) rc = cap_type_new(&type, cap_alloc_libc(), &chain);
    if (rc == CAP_OK) rc = cap_store_put_cap(store, type, &h);
    if (rc != CAP_OK) {
        fprintf(stderr, "consumer: %s\n", cap_strerror(rc));
        return 1;
    }
    printf("capstore %s type ", CAPSTORE_VERSION);
    for (int i = 0; i < 32; i++) printf("%02x", h.bytes[i]);
    printf("\n");
    cap_release(type);
    cap_store_free(store);
    return 0;
}
