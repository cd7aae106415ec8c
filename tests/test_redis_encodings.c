/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Two encodings of one cap in the Redis backend, against a lone
 * redis-server (support/encodings_check.h): SET ... GET replaces the value
 * whatever it was, so the backend writes back an old value that
 * cap_backend_replaces keeps. */
#include <stdio.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "encodings_check.h"
#include "redis_servers.h"

int main(void)
{
    redis_test_require("test_redis_encodings");
    redis_servers_t lone;
    redis_servers_start(&lone, false);
    char uri[512];
    redis_servers_uri(&lone, 0, "enc:", uri, sizeof uri);
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_redis_open(uri, NULL, &b, NULL), CAP_OK);
    if (b) {
        encodings_check(b, "redis", 3);
        cap_backend_free(b);
    }
    redis_servers_stop(&lone);
    return check_done("test_redis_encodings");
}
