/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Blobs by hash prefix on a Redis tier (persist.h: cap_redis_find_prefix).
 * Keys are unordered, so this is a SCAN of every master, narrowed by the
 * server to the prefix's whole bytes (MATCH); an odd last digit is checked
 * here. The matches are sorted and repeats dropped (SCAN may give a key
 * twice), so the answer reads as cap_lmdb_find_prefix's. */
#include <stdlib.h>
#include <string.h>

#include "redis_internal.h"

typedef struct found {
    uint8_t want[32];
    size_t ndigits;
    cap_hash_t *v;
    size_t n, room;
} found_t;

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int collect(void *arg, const cap_hash_t *hs, size_t n)
{
    found_t *f = arg;
    size_t whole = f->ndigits / 2;
    for (size_t i = 0; i < n; i++) {
        if (f->ndigits % 2 && (hs[i].bytes[whole] >> 4) != (f->want[whole] >> 4)) continue;
        if (f->n == f->room) {
            size_t room = f->room ? f->room * 2 : 64;
            cap_hash_t *v = realloc(f->v, room * sizeof *v);
            if (!v) return CAP_ENOMEM;
            f->v = v;
            f->room = room;
        }
        f->v[f->n++] = hs[i];
    }
    return CAP_OK;
}

static int cmp_hash(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

int cap_redis_find_prefix(const cap_backend_t *b, const char *prefix, size_t ndigits, cap_hash_t *out,
                          size_t max, size_t *found, cap_err_t *err)
{
    if (found) *found = 0;
    if (!cap_backend_is_redis(b)) return cap_err_set(err, CAP_EINVAL, "not a Redis backend");
    if (!prefix || ndigits == 0 || ndigits > 64 || (!out && max)) return cap_err_set(err, CAP_EINVAL, "bad prefix");
    found_t f;
    memset(&f, 0, sizeof f);
    f.ndigits = ndigits;
    for (size_t i = 0; i < ndigits; i++) {
        int v = hexval(prefix[i]);
        if (v < 0) return cap_err_set(err, CAP_EINVAL, "bad prefix (hex digits only)");
        f.want[i / 2] |= (uint8_t)(i % 2 ? v : v << 4);
    }
    int rc = redis_scan_blobs(b->ctx, f.want, ndigits / 2, collect, &f, err);
    if (rc == CAP_ENOMEM) cap_err_set(err, CAP_ENOMEM, "out of memory");
    if (rc != CAP_OK) {
        free(f.v);
        return rc;
    }
    if (f.n) qsort(f.v, f.n, sizeof *f.v, cmp_hash);
    size_t n = 0;
    for (size_t i = 0; i < f.n; i++) {
        if (i && memcmp(f.v[i].bytes, f.v[i - 1].bytes, 32) == 0) continue;
        if (n < max) out[n] = f.v[i];
        n++;
    }
    free(f.v);
    if (found) *found = n;
    return cap_err_set(err, CAP_OK, NULL);
}
