/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Parsing redis://[user@]host[:port][,host[:port]...][/][?prefix=P][&wait=K].
 *
 * A password in the URI (user:password@) is refused without ever being
 * copied into a message: a command line is visible to every user of the
 * machine (ps), so the password comes from the options or the environment. */
#include <stdlib.h>
#include <string.h>

#include "redis_internal.h"

static int bad(cap_err_t *err, const char *what, const char *part, size_t n)
{
    cap_err_set(err, CAP_EINVAL, what);
    if (part && err) {
        char tmp[CAP_ERR_DETAIL_SIZE];
        if (n >= sizeof tmp) n = sizeof tmp - 1;
        memcpy(tmp, part, n);
        tmp[n] = 0;
        cap_err_add_detail(err, tmp);
    }
    return CAP_EINVAL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One "host[:port]" or "[v6addr][:port]" of the seed list. */
static int parse_addr(const char *p, size_t n, redis_addr_t *a, cap_err_t *err)
{
    const char *host = p, *colon = NULL;
    size_t hlen;
    if (n && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (!close) return bad(err, "bad redis URI: unclosed '['", p, n);
        host = p + 1;
        hlen = (size_t)(close - host);
        size_t rest = n - (size_t)(close + 1 - p);
        if (rest) {
            if (close[1] != ':') return bad(err, "bad redis URI: junk after ']'", p, n);
            colon = close + 1;
        }
    } else {
        colon = memchr(p, ':', n);
        hlen = colon ? (size_t)(colon - p) : n;
    }
    if (hlen == 0) return bad(err, "bad redis URI: empty host", p, n);
    if (hlen >= REDIS_HOST_MAX) return bad(err, "bad redis URI: host name too long", p, 40);
    for (size_t i = 0; i < hlen; i++)
        if ((unsigned char)host[i] <= ' ' || host[i] == '/' || host[i] == '?' || host[i] == '@')
            return bad(err, "bad redis URI: bad character in host", p, n);
    memcpy(a->host, host, hlen);
    a->host[hlen] = 0;
    a->port = 6379;
    if (colon) {
        const char *q = colon + 1, *end = p + n;
        if (q == end) return bad(err, "bad redis URI: empty port", p, n);
        long v = 0;
        for (; q < end; q++) {
            if (*q < '0' || *q > '9') return bad(err, "bad redis URI: port is not a number", p, n);
            v = v * 10 + (*q - '0');
            if (v > 65535) break;
        }
        if (v < 1 || v > 65535) return bad(err, "bad redis URI: port out of range", p, n);
        a->port = (int)v;
    }
    return CAP_OK;
}

/* The query: prefix=P (percent-decoded; P may be empty) and wait=K (the
 * replicas a write waits for; 0: none). */
static int parse_query(const char *q, redis_uri_t *u, cap_err_t *err)
{
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len >= 7 && strncmp(q, "prefix=", 7) == 0) {
            if (u->prefix) return bad(err, "bad redis URI: prefix given twice", q, len);
            const char *v = q + 7;
            size_t vlen = len - 7;
            char *out = malloc(vlen + 1);
            if (!out) return cap_err_set(err, CAP_ENOMEM, "out of memory");
            size_t o = 0;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] == '%') {
                    int hi = i + 2 < vlen ? hexval(v[i + 1]) : -1;
                    int lo = hi >= 0 ? hexval(v[i + 2]) : -1;
                    if (hi < 0 || lo < 0) {
                        free(out);
                        return bad(err, "bad redis URI: bad %-escape in prefix", q, len);
                    }
                    out[o++] = (char)(hi * 16 + lo);
                    i += 2;
                } else {
                    out[o++] = v[i];
                }
            }
            out[o] = 0;
            u->prefix = out;
            u->prefix_len = o;
        } else if (len >= 5 && strncmp(q, "wait=", 5) == 0) {
            if (u->wait >= 0) return bad(err, "bad redis URI: wait given twice", q, len);
            long v = 0;
            if (len == 5) return bad(err, "bad redis URI: wait wants a number", q, len);
            for (size_t i = 5; i < len; i++) {
                if (q[i] < '0' || q[i] > '9' || v > 1000) return bad(err, "bad redis URI: wait wants a number", q, len);
                v = v * 10 + (q[i] - '0');
            }
            if (v > 1000) return bad(err, "bad redis URI: wait wants a number", q, len);
            u->wait = (int)v;
        } else if (len) {
            size_t eq = 0;
            while (eq < len && q[eq] != '=') eq++;
            return bad(err, "bad redis URI: unknown parameter", q, eq);
        }
        q += len;
        if (*q == '&') q++;
    }
    return CAP_OK;
}

int redis_uri_parse(const char *uri, redis_uri_t *u, cap_err_t *err)
{
    memset(u, 0, sizeof *u);
    u->wait = -1;
    if (!uri) return bad(err, "NULL URI", NULL, 0);
    if (strncmp(uri, "redis://", 8) != 0) return bad(err, "not a redis:// URI", uri, 9);
    const char *p = uri + 8;
    size_t auth_len = strcspn(p, "/?");
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++)
        if (p[i] == '@') at = p + i;
    if (at) {
        size_t ulen = (size_t)(at - p);
        if (memchr(p, ':', ulen))
            return bad(err, "bad redis URI: a password does not belong in the URI (argv is "
                            "visible to every user): set CAPSTORE_REDIS_PASSWORD",
                       NULL, 0);
        if (ulen == 0) return bad(err, "bad redis URI: empty user name", NULL, 0);
        if (ulen >= sizeof u->user) return bad(err, "bad redis URI: user name too long", NULL, 0);
        memcpy(u->user, p, ulen);
        u->user[ulen] = 0;
        auth_len -= ulen + 1;
        p = at + 1;
    }
    /* Seeds, comma-separated. */
    const char *end = p + auth_len;
    if (p == end) return bad(err, "bad redis URI: no host", uri, strlen(uri));
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        if (u->nseeds == REDIS_MAX_SEEDS) return bad(err, "bad redis URI: too many hosts", NULL, 0);
        int rc = parse_addr(p, (size_t)(stop - p), &u->seeds[u->nseeds], err);
        if (rc != CAP_OK) {
            redis_uri_free(u);
            return rc;
        }
        u->nseeds++;
        if (!comma) break;
        p = comma + 1;
    }
    p = end;
    if (*p == '/') p++;
    if (*p == '?') {
        int rc = parse_query(p + 1, u, err);
        if (rc != CAP_OK) {
            redis_uri_free(u);
            return rc;
        }
    } else if (*p) {
        /* A database number or path: Redis Cluster has only database 0. */
        redis_uri_free(u);
        return bad(err, "bad redis URI: only ?prefix=P&wait=K may follow the hosts", p, strlen(p));
    }
    cap_err_set(err, CAP_OK, NULL);
    return CAP_OK;
}

void redis_uri_free(redis_uri_t *u)
{
    free(u->prefix);
    u->prefix = NULL;
    u->prefix_len = 0;
}
