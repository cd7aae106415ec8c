/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The Redis backend's parts that need no server:
 *   - CRC16-XMODEM and key slots with hash tags, against the values the
 *     Redis Cluster specification gives;
 *   - URI parsing: seeds, default port, IPv6, user, prefix (percent-decoded),
 *     and the refusals: a password in the URI (never echoed), bad ports,
 *     unknown parameters, a database path;
 *   - cap_redis_open's argument and option checks, and an unreachable seed
 *     named in the error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/persist.h"
#include "check.h"
#include "host/redis_internal.h"

static void test_crc16(void)
{
    /* The specification's check value: CRC16("123456789") = 0x31C3. */
    CHECK_EQ_INT(redis_crc16((const uint8_t *)"123456789", 9), 0x31C3);
    CHECK_EQ_INT(redis_crc16((const uint8_t *)"", 0), 0);
    /* Slots as redis-cli's CLUSTER KEYSLOT gives them. */
    CHECK_EQ_INT(redis_key_slot((const uint8_t *)"foo", 3), 12182);
    CHECK_EQ_INT(redis_key_slot((const uint8_t *)"bar", 3), 5061);
    CHECK_EQ_INT(redis_key_slot((const uint8_t *)"hello", 5), 866);
    /* Hash tags: only the part between the first '{' and the next '}'. */
    CHECK_EQ_INT(redis_key_slot((const uint8_t *)"{user1000}.following", 20),
                 redis_key_slot((const uint8_t *)"user1000", 8));
    CHECK_EQ_INT(redis_key_slot((const uint8_t *)"{user1000}.followers", 20),
                 redis_key_slot((const uint8_t *)"{user1000}.following", 20));
    /* An empty tag "{}" hashes the whole key. */
    CHECK_EQ_INT(redis_key_slot((const uint8_t *)"foo{}{bar}", 10),
                 redis_crc16((const uint8_t *)"foo{}{bar}", 10) & 16383);
    /* "foo{{bar}}zap": the tag is "{bar". */
    CHECK_EQ_INT(redis_key_slot((const uint8_t *)"foo{{bar}}zap", 13),
                 redis_crc16((const uint8_t *)"{bar", 4) & 16383);
    /* "foo{bar}{zap}": the first tag. */
    CHECK_EQ_INT(redis_key_slot((const uint8_t *)"foo{bar}{zap}", 13),
                 redis_key_slot((const uint8_t *)"bar", 3));
    /* A '{' without '}' after it: the whole key. */
    CHECK_EQ_INT(redis_key_slot((const uint8_t *)"a{b", 3), redis_crc16((const uint8_t *)"a{b", 3) & 16383);
    /* Binary keys (raw hash bytes may hold braces and NULs). */
    uint8_t k[6] = {0, '{', 0, 'x', '}', 0xff};
    CHECK_EQ_INT(redis_key_slot(k, 6), redis_crc16(k + 2, 2) & 16383);
}

static int parse_ok(const char *uri, redis_uri_t *u)
{
    cap_err_t e;
    int rc = redis_uri_parse(uri, u, &e);
    if (rc != CAP_OK) fprintf(stderr, "  %s: %s %s\n", uri, e.what ? e.what : "", e.detail);
    return rc;
}

static void test_uri(void)
{
    redis_uri_t u;
    CHECK_EQ_INT(parse_ok("redis://127.0.0.1:7000", &u), CAP_OK);
    CHECK_EQ_INT(u.nseeds, 1);
    CHECK(strcmp(u.seeds[0].host, "127.0.0.1") == 0);
    CHECK_EQ_INT(u.seeds[0].port, 7000);
    CHECK(u.prefix == NULL);
    CHECK(u.user[0] == 0);
    redis_uri_free(&u);

    CHECK_EQ_INT(u.wait, -1);
    CHECK_EQ_INT(parse_ok("redis://alice@h1:1,h2,[::1]:3/?prefix=a%2Fb%7Bx%7D&wait=2", &u), CAP_OK);
    CHECK_EQ_INT(u.wait, 2);
    CHECK_EQ_INT(u.nseeds, 3);
    CHECK(strcmp(u.user, "alice") == 0);
    CHECK(strcmp(u.seeds[0].host, "h1") == 0 && u.seeds[0].port == 1);
    CHECK(strcmp(u.seeds[1].host, "h2") == 0 && u.seeds[1].port == 6379);
    CHECK(strcmp(u.seeds[2].host, "::1") == 0 && u.seeds[2].port == 3);
    CHECK(u.prefix && strcmp(u.prefix, "a/b{x}") == 0 && u.prefix_len == 6);
    redis_uri_free(&u);

    /* ?prefix= without the slash, and an empty prefix. */
    CHECK_EQ_INT(parse_ok("redis://h:9?prefix=", &u), CAP_OK);
    CHECK(u.prefix && u.prefix_len == 0);
    redis_uri_free(&u);
    CHECK_EQ_INT(parse_ok("redis://h:9/", &u), CAP_OK);
    redis_uri_free(&u);

    static const char *bad[] = {
        "http://h:1",           "redis://",          "redis://:1",        "redis://h:",
        "redis://h:0",          "redis://h:65536",   "redis://h:12x",     "redis://h:1,",
        "redis://h:1/0",        "redis://h:1/?db=2", "redis://@h:1",      "redis://[::1:5",
        "redis://h:1/?prefix=%zz", "redis://h:1/?prefix=a&prefix=b", "redis://h:1/?wait=",
        "redis://h:1/?wait=x",     "redis://h:1/?wait=1&wait=1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cap_err_t e;
        int rc = redis_uri_parse(bad[i], &u, &e);
        if (rc != CAP_EINVAL) fprintf(stderr, "  accepted: %s\n", bad[i]);
        CHECK_EQ_INT(rc, CAP_EINVAL);
        CHECK(e.what != NULL);
    }

    /* A password in the URI is refused, and appears nowhere in the message. */
    cap_err_t e;
    CHECK_EQ_INT(redis_uri_parse("redis://bob:s3cr3t-pw@h:1", &u, &e), CAP_EINVAL);
    char msg[512];
    cap_err_format(&e, msg, sizeof msg);
    CHECK(strstr(msg, "s3cr3t-pw") == NULL);
    CHECK(strstr(msg, "CAPSTORE_REDIS_PASSWORD") != NULL);
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_redis_open("redis://bob:s3cr3t-pw@h:1", NULL, &b, &e), CAP_EINVAL);
    cap_err_format(&e, msg, sizeof msg);
    CHECK(strstr(msg, "s3cr3t-pw") == NULL);
    CHECK(b == NULL);
}

static void test_open_errors(void)
{
    cap_backend_t *b = (cap_backend_t *)1;
    cap_err_t e;
    CHECK_EQ_INT(cap_redis_open("redis://127.0.0.1:1", NULL, NULL, &e), CAP_EINVAL);
    CHECK_EQ_INT(cap_redis_open(NULL, NULL, &b, &e), CAP_EINVAL);
    CHECK(b == NULL);
    /* Options from a later version with unknown fields set are refused. */
    struct {
        cap_redis_options_t o;
        unsigned later;
    } big;
    memset(&big, 0, sizeof big);
    big.o.size = sizeof big;
    big.later = 1;
    CHECK_EQ_INT(cap_redis_open("redis://127.0.0.1:1", &big.o, &b, &e), CAP_EINVAL);
    /* Port 1 on loopback: nothing listens; the error names the node, and a
     * password given in the options appears nowhere. */
    cap_redis_options_t o = CAP_REDIS_OPTIONS_INIT;
    o.password = "hunter2-pw";
    o.connect_timeout_ms = 500;
    CHECK_EQ_INT(cap_redis_open("redis://127.0.0.1:1", &o, &b, &e), CAP_EBACKEND);
    CHECK(b == NULL);
    CHECK(strstr(e.detail, "127.0.0.1:1") != NULL);
    char msg[512];
    cap_err_format(&e, msg, sizeof msg);
    CHECK(strstr(msg, "hunter2") == NULL);
    CHECK(!cap_backend_is_redis(NULL));
}

int main(void)
{
    test_crc16();
    test_uri();
    test_open_errors();
    return check_done("test_redis_unit");
}
