/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Naming a cap on the command line (db_resolve.h), as git names commits: a
 * whole hash, a unique prefix of at least four hex digits, or a root name.
 * A root name is never all hex digits (cap_root_name_valid), so the three
 * cannot be confused. */
#include <string.h>

#include "cli.h"
#include "db_resolve.h"

#define SHOWN 16 /* candidates listed for an ambiguous prefix */

static size_t hex_run(const char *s)
{
    size_t i = 0;
    while ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')) i++;
    return s[i] ? 0 : i;
}

bool db_nameable(const char *arg)
{
    size_t n = hex_run(arg);
    return n == 64 || (n >= DB_PREFIX_MIN && n < 64) || cap_root_name_valid(arg);
}

/* The blobs of `db` whose hash begins with the digits of `arg`: LMDB reads
 * a range of keys, Redis scans with a MATCH pattern (the databases the
 * command opens). */
static int find_prefix(cap_backend_t *db, const char *arg, size_t n, cap_hash_t *found, size_t max, size_t *count,
                       cap_err_t *e)
{
    if (cap_backend_is_redis(db)) return cap_redis_find_prefix(db, arg, n, found, max, count, e);
    return cap_lmdb_find_prefix(db, arg, n, found, max, count, e);
}

static int resolve_hexval(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

int db_resolve(const char *sub, const char *usage_text, cap_backend_t *db, const char *path, const char *arg,
               cap_hash_t *out, bool *is_root)
{
    if (is_root) *is_root = false;
    size_t n = hex_run(arg);
    if (n == 64) {
        for (int i = 0; i < 32; i++) out->bytes[i] = (uint8_t)(resolve_hexval(arg[2 * i]) << 4 | resolve_hexval(arg[2 * i + 1]));
        return CLI_OK;
    }
    cap_err_t e;
    memset(&e, 0, sizeof e);
    if (n >= DB_PREFIX_MIN && n < 64) {
        cap_hash_t found[SHOWN];
        size_t count = 0;
        int rc = find_prefix(db, arg, n, found, SHOWN, &count, &e);
        if (rc != CAP_OK) {
            char msg[256];
            cap_err_format(&e, msg, sizeof msg);
            cli_error(sub, "%s: %s", path, msg);
            return CLI_EBADINPUT;
        }
        if (count == 0) {
            cli_error(sub, "%s: no blob has a hash beginning with %s", path, arg);
            return CLI_EBADINPUT;
        }
        if (count > 1) {
            cli_error(sub, "%s: the prefix %s is ambiguous: %zu blobs have it:", path, arg, count);
            for (size_t i = 0; i < count && i < SHOWN; i++) {
                char hex[65];
                cli_hex(hex, found[i].bytes, 32);
                fprintf(stderr, "  %s\n", hex);
            }
            if (count > SHOWN) fprintf(stderr, "  ... and %zu more\n", count - SHOWN);
            return CLI_EBADINPUT;
        }
        *out = found[0];
        return CLI_OK;
    }
    if (cap_root_name_valid(arg)) {
        int rc = cap_backend_root_get(db, arg, out, &e);
        if (rc == CAP_ENOTFOUND) {
            cli_error(sub, "%s: no root named %s", path, arg);
            return CLI_EBADINPUT;
        }
        if (rc != CAP_OK) {
            char msg[256];
            cap_err_format(&e, msg, sizeof msg);
            cli_error(sub, "%s: %s", path, msg);
            return CLI_EBADINPUT;
        }
        if (is_root) *is_root = true;
        return CLI_OK;
    }
    return cli_usage_error(sub, usage_text,
                           "'%s' is not a hash (64 hex digits), a hash prefix (at least %d hex digits) or a root "
                           "name ([A-Za-z0-9._/-], not all hex digits)",
                           arg, DB_PREFIX_MIN);
}
