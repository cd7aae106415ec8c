/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Finding blob keys in the server (redis_internal.h: redis_scan_blobs): a
 * SCAN of every master with a MATCH pattern of the key prefix and, for a
 * lookup by hash prefix, the hash's first bytes, so the server filters and
 * only matching keys cross the network. Keys are binary: every byte the
 * glob would read as syntax is escaped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_internal.h"

#define PAGE_MAX 4096 /* hashes handed on per SCAN page (COUNT asks ~1000) */

static size_t escape(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = (char)in[i];
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out[o++] = '\\';
        out[o++] = c;
    }
    return o;
}

/* prefix + tail, escaped, then '*'. */
static char *match_pattern(const redis_t *r, const uint8_t *tail, size_t ntail, size_t *len)
{
    char *p = malloc((r->prefix_len + ntail) * 2 + 2);
    if (!p) return NULL;
    size_t o = escape((const uint8_t *)r->prefix, r->prefix_len, p);
    o += escape(tail, ntail, p + o);
    p[o++] = '*';
    p[o] = 0;
    *len = o;
    return p;
}

int redis_scan_blobs(redis_t *r, const uint8_t *tail, size_t ntail,
                     int (*each)(void *arg, const cap_hash_t *hs, size_t n), void *arg, cap_err_t *err)
{
    if (ntail > 32) return cap_err_set(err, CAP_EINVAL, "hash prefix longer than a hash");
    size_t plen;
    char *pat = match_pattern(r, tail, ntail, &plen);
    cap_hash_t *page = malloc(PAGE_MAX * sizeof *page);
    if (!pat || !page) {
        free(pat);
        free(page);
        return cap_err_set(err, CAP_ENOMEM, "out of memory");
    }
    unsigned masters[REDIS_MAX_NODES];
    size_t nm = redis_masters(r, masters, REDIS_MAX_NODES);
    int rc = CAP_OK;
    for (size_t m = 0; m < nm && rc == CAP_OK; m++) {
        char cursor[32] = "0";
        do {
            const char *argv[6] = {"SCAN", cursor, "MATCH", pat, "COUNT", "1000"};
            size_t argvlen[6] = {4, strlen(cursor), 5, plen, 5, 4};
            redisReply *rep = redis_node_command(r, masters[m], 6, argv, argvlen, err);
            if (!rep) {
                rc = CAP_EBACKEND;
                break;
            }
            if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
                rep->element[0]->type != REDIS_REPLY_STRING ||
                rep->element[1]->type != REDIS_REPLY_ARRAY) {
                rc = redis_node_fail(r, masters[m], err, "SCAN failed",
                                     rep->type == REDIS_REPLY_ERROR ? rep->str : NULL);
                freeReplyObject(rep);
                break;
            }
            snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
            const redisReply *keys = rep->element[1];
            size_t np = 0;
            for (size_t i = 0; i < keys->elements && np < PAGE_MAX; i++) {
                const redisReply *k = keys->element[i];
                /* Blob form only: the roots hash (and anything else under
                 * the prefix) has another length. */
                if (k->type != REDIS_REPLY_STRING || (size_t)k->len != r->prefix_len + 32 ||
                    memcmp(k->str, r->prefix, r->prefix_len) != 0 ||
                    (ntail && memcmp(k->str + r->prefix_len, tail, ntail) != 0))
                    continue;
                memcpy(page[np++].bytes, k->str + r->prefix_len, 32);
            }
            freeReplyObject(rep);
            if (np) rc = each(arg, page, np);
        } while (rc == CAP_OK && strcmp(cursor, "0") != 0);
    }
    free(pat);
    free(page);
    return rc;
}
