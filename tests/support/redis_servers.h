/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Redis servers for the Redis tests, through tests/support/redis-cluster.sh:
 * a cluster (three masters, three replicas) or a lone server on free
 * loopback ports, stopped at exit (and by the script's watchdog should the
 * test die). A test without redis-server installed skips (exit 77, which
 * CTest counts as skipped), unless CAPSTORE_REQUIRE_ALL=1: then it fails. */
#ifndef CAPSTORE_TEST_REDIS_SERVERS_H
#define CAPSTORE_TEST_REDIS_SERVERS_H

#include <stdbool.h>
#include <stddef.h>

#define REDIS_TEST_SKIP 77
#define REDIS_TEST_MAX_PORTS 8

typedef struct redis_servers {
    char dir[256];
    int ports[REDIS_TEST_MAX_PORTS];
    int n;
    bool cluster;
} redis_servers_t;

/* Exit 77 (skip) or 1 (CAPSTORE_REQUIRE_ALL=1) when redis-server is missing. */
void redis_test_require(const char *test);

/* Start a cluster (cluster true) or a lone server; exits the test on
 * failure. Stopped by redis_servers_stop, or at exit. */
void redis_servers_start(redis_servers_t *s, bool cluster);
void redis_servers_stop(redis_servers_t *s);

/* "redis://127.0.0.1:P[,...]/?prefix=PREFIX" with the first `nseeds` ports
 * as seeds (0: all). */
void redis_servers_uri(const redis_servers_t *s, size_t nseeds, const char *prefix, char *buf,
                       size_t n);

/* Run the script with "CMD DIR ARGS" (e.g. "kill", "%d KILL"); returns its
 * exit status. */
int redis_servers_script(const redis_servers_t *s, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* redis-cli -h 127.0.0.1 -p PORT ARGS..., standard output into out (may be
 * NULL); returns the exit status. */
int redis_cli(int port, char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The ports of the current masters (asked of the nodes); returns the count. */
int redis_servers_masters(const redis_servers_t *s, int *ports, int cap);

#endif
