/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* `capstore db` actions on a Redis tier (see db_redis.h). */
#include "db_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/host.h"
#include "cli.h"
#include "cmd_db.h"

bool db_is_redis(const char *name)
{
    return name && strncmp(name, "redis://", 8) == 0;
}

/* The URI as messages show it: a password someone put in it (which
 * cap_redis_open refuses) replaced by "***", so it is not printed again. */
static const char *shown(const char *uri, char *buf, size_t n)
{
    const char *start = uri + 8, *at = strchr(start, '@');
    const char *end = start + strcspn(start, "/?");
    const char *colon = at && at < end ? memchr(start, ':', (size_t)(at - start)) : NULL;
    if (!colon) return uri;
    snprintf(buf, n, "%.*s:***%s", (int)(colon - uri), uri, at);
    return buf;
}

int db_redis_open(const char *sub, const char *uri, bool create, cap_backend_t **out)
{
    cap_redis_options_t o = CAP_REDIS_OPTIONS_INIT;
    o.flags = create ? 0u : CAP_REDIS_READONLY;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = cap_redis_open(uri, &o, out, &e);
    char buf[512];
    if (rc != CAP_OK) return db_error(sub, shown(uri, buf, sizeof buf), rc, &e);
    return CLI_OK;
}

int db_redis_stats(const char *uri, bool json)
{
    cap_backend_t *db;
    int rc = db_redis_open("db stats", uri, false, &db);
    if (rc != CLI_OK) return rc;
    cap_redis_stats_t st;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int crc = cap_redis_stats(db, &st, &e);
    cap_backend_free(db);
    char buf[512];
    if (crc != CAP_OK) return db_error("db stats", shown(uri, buf, sizeof buf), crc, &e);
    if (json) {
        /* The URI holds no password (cap_redis_open refuses one) and no
         * character that needs escaping but these. */
        printf("{\"database\": \"");
        for (const char *p = uri; *p; p++) {
            if (*p == '"' || *p == '\\') putchar('\\');
            putchar(*p);
        }
        printf("\", \"blobs\": %llu, \"bytes\": %llu, \"roots\": %llu, \"masters\": %llu, "
               "\"replicas\": %llu, \"wait_replicas\": %d}\n",
               (unsigned long long)st.blobs, (unsigned long long)st.bytes, (unsigned long long)st.roots,
               (unsigned long long)st.masters, (unsigned long long)st.replicas, st.wait_replicas);
        return CLI_OK;
    }
    printf("database:      %s\n", uri);
    printf("blobs:         %llu\n", (unsigned long long)st.blobs);
    printf("bytes:         %llu\n", (unsigned long long)st.bytes);
    printf("roots:         %llu\n", (unsigned long long)st.roots);
    printf("masters:       %llu\n", (unsigned long long)st.masters);
    printf("replicas:      %llu\n", (unsigned long long)st.replicas);
    printf("wait_replicas: %d\n", st.wait_replicas);
    return CLI_OK;
}

/* check ------------------------------------------------------------------------------------ */

typedef struct check_state {
    db_progress_t pr;
    uint64_t blobs, bad, problems;
} check_state_t;

static int check_blob(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    check_state_t *cs = arg;
    cs->blobs++;
    cap_t *c = NULL;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = cap_persist_decode(h, bytes, n, cap_alloc_libc(), true, &c, &e);
    cap_release(c);
    if (rc != CAP_OK) {
        char hex[65], msg[256];
        cli_hex(hex, h->bytes, 32);
        cap_err_format(&e, msg, sizeof msg);
        printf("bad %s: %s\n", hex, msg);
        cs->bad++;
    }
    db_progress_tick(&cs->pr, "checked", cs->blobs, 0);
    return 0;
}

typedef struct root_walk {
    const cap_backend_t *db;
    check_state_t *cs;
    int rc;
    cap_err_t err;
} root_walk_t;

static int check_root(void *arg, const char *name, const cap_hash_t *h)
{
    root_walk_t *rw = arg;
    cap_walk_result_t res;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    cap_walk_options_t o = CAP_WALK_OPTIONS_INIT;
    o.batch = 65536; /* a level a round trip */
    int rc = cap_backend_walk(rw->db, h, 1, &o, cap_alloc_libc(), NULL, NULL, &res, &e);
    if (rc == CAP_OK) return 0;
    if (rc != CAP_EBLOBMISSING && rc != CAP_EDECODE && rc != CAP_EMISMATCH) {
        rw->rc = rc; /* the tier failed: stop */
        rw->err = e;
        return 1;
    }
    char hex[65];
    cli_hex(hex, e.hash.bytes, 32);
    printf("problem: root %s: %llu missing, %llu bad (first: %s)\n", name, (unsigned long long)res.missing,
           (unsigned long long)res.bad, hex);
    rw->cs->problems++;
    return 0;
}

int db_redis_check(const char *uri)
{
    cap_backend_t *db;
    int rc = db_redis_open("db check", uri, false, &db);
    if (rc != CLI_OK) return rc;
    check_state_t cs;
    memset(&cs, 0, sizeof cs);
    db_progress_init(&cs.pr);
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int crc = cap_backend_iterate(db, check_blob, &cs, &e);
    db_progress_end(&cs.pr);
    if (crc == CAP_OK) {
        root_walk_t rw = {db, &cs, CAP_OK, e};
        crc = cap_backend_root_list(db, check_root, &rw, &e);
        if (rw.rc != CAP_OK) {
            crc = rw.rc;
            e = rw.err;
        }
    }
    cap_backend_free(db);
    char buf[512];
    if (crc != CAP_OK) return db_error("db check", shown(uri, buf, sizeof buf), crc, &e);
    printf("%llu blobs checked, %llu bad\n", (unsigned long long)cs.blobs, (unsigned long long)cs.bad);
    if (cs.problems)
        printf("%llu problem%s: a root names a graph the tier does not hold whole\n",
               (unsigned long long)cs.problems, cs.problems == 1 ? "" : "s");
    return cs.bad || cs.problems ? CLI_EBADINPUT : CLI_OK;
}
