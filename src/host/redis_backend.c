/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The Redis backend's table (sys/backend.h) and cap_redis_open.
 *
 * Keys: blobs are prefix + the 32 raw hash bytes, holding the wire bytes;
 * named roots are the fields of one hash, prefix + "roots" (its length
 * never equals a blob key's, so a scan tells them apart). Every entry is a
 * batch of commands (redis_conn.c routes, pipelines and retries them):
 *   read      GETRANGE key 0 max: at most max + 1 bytes come back, so a value
 *             over max_blob_size is refused without being read whole (hiredis
 *             buffers a whole reply); an empty reply is asked again with
 *             EXISTS (absent, or an empty value that will not decode)
 *   exists    EXISTS key
 *   write     SET key value GET: a plain overwrite, so damaged bytes are
 *             replaced, whose old value tells new / same / repaired (an
 *             old value that cap_backend_replaces keeps, a sound copy with
 *             fewer pages missing, is written back); each
 *             node's pipeline ends with WAIT when writes must reach replicas
 *   roots     HGET / HSET / HDEL / HGETALL on the roots hash; a root is set
 *             only after its closure was found complete in the server */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/host.h"
#include "redis_internal.h"

static void redis_free(void *ctx);

void redis_blob_key(const redis_t *r, const cap_hash_t *h, uint8_t *buf)
{
    memcpy(buf, r->prefix, r->prefix_len);
    memcpy(buf + r->prefix_len, h->bytes, 32);
}

int redis_roots_key(const redis_t *r, char **key, size_t *len)
{
    *len = r->prefix_len + 5;
    *key = malloc(*len + 1);
    if (!*key) return CAP_ENOMEM;
    memcpy(*key, r->prefix, r->prefix_len);
    memcpy(*key + r->prefix_len, "roots", 6);
    return CAP_OK;
}

/* Keys of n hashes in one block (each prefix_len + 32 bytes). */
static uint8_t *keys_of(const redis_t *r, const cap_hash_t *hashes, size_t n)
{
    size_t kl = r->prefix_len + 32;
    if (n > SIZE_MAX / kl) return NULL;
    uint8_t *keys = malloc(n ? n * kl : 1);
    if (!keys) return NULL;
    for (size_t i = 0; i < n; i++) redis_blob_key(r, &hashes[i], keys + i * kl);
    return keys;
}

static redis_cmd_t *cmds_new(size_t n)
{
    redis_cmd_t *c = calloc(n ? n : 1, sizeof *c);
    return c;
}

/* Reads ------------------------------------------------------------------------------------ */

/* The items whose GETRANGE came back empty, asked again as EXISTS then
 * GETRANGE, in one pipeline: absent (EXISTS 0), or present with what the
 * second GETRANGE gives, an empty value included (damage: it will not
 * decode, and the store says so). The first reply alone cannot tell, and
 * a key written between the two reads is present in full by the second
 * (a blob's bytes never change); one deleted in between reads as empty. */
static int check_empties(redis_t *r, const uint8_t *keys, const size_t *which, size_t m,
                         const cap_alloc_t *a, uint8_t **bytes, size_t *lens, int *codes,
                         const char *end, cap_err_t *err)
{
    redis_cmd_t *cmds = cmds_new(2 * m);
    if (!cmds) return cap_err_set(err, CAP_ENOMEM, "out of memory");
    size_t kl = r->prefix_len + 32;
    for (size_t j = 0; j < m; j++) {
        redis_cmd_t *x = &cmds[2 * j], *g = &cmds[2 * j + 1];
        x->argc = 2;
        x->argv[0] = "EXISTS";
        x->argvlen[0] = 6;
        x->argv[1] = (const char *)keys + which[j] * kl;
        x->argvlen[1] = kl;
        g->argc = 4;
        g->argv[0] = "GETRANGE";
        g->argvlen[0] = 8;
        g->argv[1] = x->argv[1];
        g->argvlen[1] = kl;
        g->argv[2] = "0";
        g->argvlen[2] = 1;
        g->argv[3] = end;
        g->argvlen[3] = strlen(end);
    }
    int rc = redis_batch_run(r, cmds, 2 * m, err);
    for (size_t j = 0; j < m; j++) {
        size_t i = which[j];
        const redis_cmd_t *x = &cmds[2 * j], *g = &cmds[2 * j + 1];
        if (x->code != CAP_OK || g->code != CAP_OK) {
            codes[i] = x->code != CAP_OK ? x->code : g->code;
        } else if (x->reply->type != REDIS_REPLY_INTEGER || g->reply->type != REDIS_REPLY_STRING) {
            codes[i] = CAP_EBACKEND;
        } else if (x->reply->integer == 0) {
            codes[i] = CAP_ENOTFOUND;
        } else if ((size_t)g->reply->len > r->max_blob) {
            codes[i] = CAP_EBACKEND;
        } else if (g->reply->len == 0) {
            codes[i] = CAP_OK; /* present and empty */
        } else {
            uint8_t *p = a->allocate(a->ctx, (size_t)g->reply->len);
            if (!p) {
                codes[i] = CAP_ENOMEM;
            } else {
                memcpy(p, g->reply->str, (size_t)g->reply->len);
                bytes[i] = p;
                lens[i] = (size_t)g->reply->len;
                codes[i] = CAP_OK;
            }
        }
    }
    redis_batch_free(cmds, 2 * m);
    free(cmds);
    return rc;
}

static int redis_read_many(void *ctx, const cap_hash_t *hashes, size_t n, const cap_alloc_t *a,
                           uint8_t **bytes, size_t *lens, int *codes, cap_err_t *err)
{
    redis_t *r = ctx;
    for (size_t i = 0; i < n; i++) {
        bytes[i] = NULL;
        lens[i] = 0;
        codes[i] = CAP_EBACKEND;
    }
    uint8_t *keys = keys_of(r, hashes, n);
    redis_cmd_t *cmds = cmds_new(n);
    size_t *empties = malloc((n ? n : 1) * sizeof *empties);
    if (!keys || !cmds || !empties) {
        free(keys);
        free(cmds);
        free(empties);
        return cap_err_set(err, CAP_ENOMEM, "out of memory");
    }
    char end[24];
    snprintf(end, sizeof end, "%zu", r->max_blob);
    size_t kl = r->prefix_len + 32;
    for (size_t i = 0; i < n; i++) {
        redis_cmd_t *c = &cmds[i];
        c->argc = 4;
        c->argv[0] = "GETRANGE";
        c->argvlen[0] = 8;
        c->argv[1] = (const char *)keys + i * kl;
        c->argvlen[1] = kl;
        c->argv[2] = "0";
        c->argvlen[2] = 1;
        c->argv[3] = end;
        c->argvlen[3] = strlen(end);
    }
    int rc = redis_batch_run(r, cmds, n, err);
    size_t nempty = 0;
    bool oversize = false, nomem = false, wrongtype = false;
    for (size_t i = 0; i < n; i++) {
        if (cmds[i].code != CAP_OK) {
            codes[i] = cmds[i].code;
            continue;
        }
        const redisReply *rep = cmds[i].reply;
        if (rep->type != REDIS_REPLY_STRING) {
            /* WRONGTYPE: something other than a string under a blob's key. */
            codes[i] = CAP_EBACKEND;
            wrongtype = true;
            continue;
        }
        if (rep->len == 0) {
            empties[nempty++] = i;
            continue;
        }
        if ((size_t)rep->len > r->max_blob) {
            codes[i] = CAP_EBACKEND;
            oversize = true;
            continue;
        }
        uint8_t *p = a->allocate(a->ctx, (size_t)rep->len);
        if (!p) {
            codes[i] = CAP_ENOMEM;
            nomem = true;
            continue;
        }
        memcpy(p, rep->str, (size_t)rep->len);
        bytes[i] = p;
        lens[i] = (size_t)rep->len;
        codes[i] = CAP_OK;
    }
    redis_batch_free(cmds, n);
    free(cmds);
    if (nempty) {
        cap_err_t e;
        int rc2 = check_empties(r, keys, empties, nempty, a, bytes, lens, codes, end, &e);
        if (rc == CAP_OK && rc2 != CAP_OK) {
            rc = rc2;
            if (err) *err = e;
        }
    }
    free(keys);
    free(empties);
    if (rc != CAP_OK) return rc;
    /* The whole call succeeded: per-item reasons go in err for a lone read. */
    if (oversize) cap_err_set(err, CAP_EBACKEND, "blob larger than max_blob_size");
    else if (wrongtype) cap_err_set(err, CAP_EBACKEND, "a key of another type holds the blob's name");
    else if (nomem) cap_err_set(err, CAP_ENOMEM, "out of memory");
    else cap_err_set(err, CAP_OK, NULL);
    return CAP_OK;
}

static int redis_read(void *ctx, const cap_hash_t *h, const cap_alloc_t *a, uint8_t **bytes,
                      size_t *n, cap_err_t *err)
{
    int code = CAP_EBACKEND;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = redis_read_many(ctx, h, 1, a, bytes, n, &code, &e);
    if (rc != CAP_OK) {
        if (err) *err = e;
        return rc;
    }
    if (code == CAP_OK) return CAP_OK;
    if (code == CAP_ENOTFOUND) return cap_err_set(err, CAP_ENOTFOUND, "not stored");
    if (err) *err = e;
    if (err && err->code != code) cap_err_set(err, code, "backend error");
    return code;
}

static int redis_exists_many(void *ctx, const cap_hash_t *hashes, size_t n, int *codes, cap_err_t *err)
{
    redis_t *r = ctx;
    uint8_t *keys = keys_of(r, hashes, n);
    redis_cmd_t *cmds = cmds_new(n);
    if (!keys || !cmds) {
        free(keys);
        free(cmds);
        return cap_err_set(err, CAP_ENOMEM, "out of memory");
    }
    size_t kl = r->prefix_len + 32;
    for (size_t i = 0; i < n; i++) {
        cmds[i].argc = 2;
        cmds[i].argv[0] = "EXISTS";
        cmds[i].argvlen[0] = 6;
        cmds[i].argv[1] = (const char *)keys + i * kl;
        cmds[i].argvlen[1] = kl;
    }
    int rc = redis_batch_run(r, cmds, n, err);
    for (size_t i = 0; i < n; i++) {
        if (cmds[i].code != CAP_OK) codes[i] = cmds[i].code;
        else if (cmds[i].reply->type != REDIS_REPLY_INTEGER) codes[i] = CAP_EBACKEND;
        else codes[i] = cmds[i].reply->integer ? CAP_OK : CAP_ENOTFOUND;
    }
    redis_batch_free(cmds, n);
    free(cmds);
    free(keys);
    return rc;
}

static int redis_exists(void *ctx, const cap_hash_t *h, cap_err_t *err)
{
    int code = CAP_EBACKEND;
    int rc = redis_exists_many(ctx, h, 1, &code, err);
    if (rc != CAP_OK) return rc;
    if (code == CAP_ENOTFOUND) return cap_err_set(err, CAP_ENOTFOUND, "not stored");
    if (code != CAP_OK) return cap_err_set(err, code, "EXISTS failed");
    return CAP_OK;
}

/* Writes ----------------------------------------------------------------------------------- */

static int set_roots(redis_t *r, const cap_backend_root_t *roots, size_t nroots, cap_err_t *err);

/* Plain SETs for the items whose SET ... GET failed because the key held
 * another type (damage): SET replaces any type. */
static int overwrite(redis_t *r, const uint8_t *keys, const cap_backend_item_t *items,
                     const size_t *which, size_t m, cap_err_t *err)
{
    redis_cmd_t *cmds = cmds_new(m);
    if (!cmds) return cap_err_set(err, CAP_ENOMEM, "out of memory");
    size_t kl = r->prefix_len + 32;
    for (size_t j = 0; j < m; j++) {
        redis_cmd_t *c = &cmds[j];
        c->argc = 3;
        c->argv[0] = "SET";
        c->argvlen[0] = 3;
        c->argv[1] = (const char *)keys + which[j] * kl;
        c->argvlen[1] = kl;
        c->argv[2] = (const char *)items[which[j]].bytes;
        c->argvlen[2] = items[which[j]].n;
        c->write = true;
    }
    int rc = redis_batch_run(r, cmds, m, err);
    for (size_t j = 0; j < m && rc == CAP_OK; j++)
        if (cmds[j].reply->type == REDIS_REPLY_ERROR) rc = cap_err_set(err, CAP_EBACKEND, "SET failed");
    redis_batch_free(cmds, m);
    free(cmds);
    return rc;
}

static int write_items(redis_t *r, const cap_backend_item_t *items, size_t n,
                       cap_backend_write_result_t *res, cap_err_t *err)
{
    for (size_t i = 0; i < n; i++)
        if (items[i].n > r->max_blob) {
            cap_err_set(err, CAP_EBACKEND, "blob larger than max_blob_size");
            cap_err_set_hash(err, &items[i].hash);
            return CAP_EBACKEND;
        }
    cap_hash_t *hashes = malloc((n ? n : 1) * sizeof *hashes);
    redis_cmd_t *cmds = cmds_new(n);
    size_t *again = malloc((n ? n : 1) * sizeof *again);
    uint8_t *keys = NULL;
    if (hashes) {
        for (size_t i = 0; i < n; i++) hashes[i] = items[i].hash;
        keys = keys_of(r, hashes, n);
    }
    free(hashes);
    if (!keys || !cmds || !again) {
        free(keys);
        free(cmds);
        free(again);
        return cap_err_set(err, CAP_ENOMEM, "out of memory");
    }
    size_t kl = r->prefix_len + 32;
    for (size_t i = 0; i < n; i++) {
        redis_cmd_t *c = &cmds[i];
        c->argc = 4;
        c->argv[0] = "SET";
        c->argvlen[0] = 3;
        c->argv[1] = (const char *)keys + i * kl;
        c->argvlen[1] = kl;
        c->argv[2] = (const char *)items[i].bytes;
        c->argvlen[2] = items[i].n;
        c->argv[3] = "GET";
        c->argvlen[3] = 3;
        c->write = true;
    }
    int rc = redis_batch_run(r, cmds, n, err);
    size_t written = 0, repaired = 0, nagain = 0, nback = 0;
    /* Old values worth more than the new ones (cap_backend_replaces: a sound
     * encoding with fewer pages missing), written back below. */
    cap_backend_item_t *back = NULL;
    size_t *backs = NULL;
    for (size_t i = 0; i < n && rc == CAP_OK; i++) {
        const redisReply *rep = cmds[i].reply;
        if (rep->type == REDIS_REPLY_NIL) {
            written++;
        } else if (rep->type == REDIS_REPLY_STRING) {
            if ((size_t)rep->len == items[i].n && memcmp(rep->str, items[i].bytes, items[i].n) == 0) continue;
            bool replace = true;
            if (!back) {
                back = calloc(n, sizeof *back);
                backs = malloc(n * sizeof *backs);
            }
            uint8_t *copy = back && backs ? malloc(rep->len ? (size_t)rep->len : 1) : NULL;
            if (!copy ||
                cap_backend_replaces(&items[i].hash, (const uint8_t *)rep->str, (size_t)rep->len, items[i].bytes,
                                     items[i].n, cap_alloc_libc(), &replace) != CAP_OK) {
                free(copy);
                rc = cap_err_set(err, CAP_ENOMEM, "out of memory");
                break;
            }
            if (replace) {
                free(copy);
                repaired++;
                continue;
            }
            memcpy(copy, rep->str, (size_t)rep->len);
            back[i].hash = items[i].hash;
            back[i].bytes = copy;
            back[i].n = (size_t)rep->len;
            backs[nback++] = i;
        } else if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "WRONGTYPE", 9) == 0) {
            again[nagain++] = i;
        } else {
            /* OOM (maxmemory reached), READONLY, NOPERM, ...: the server's
             * own words are the reason. */
            cap_err_set(err, CAP_EBACKEND, "SET refused");
            if (rep->type == REDIS_REPLY_ERROR) cap_err_add_detail(err, rep->str);
            cap_err_set_hash(err, &items[i].hash);
            rc = CAP_EBACKEND;
        }
    }
    redis_batch_free(cmds, n);
    free(cmds);
    if (rc == CAP_OK && nagain) {
        rc = overwrite(r, keys, items, again, nagain, err);
        repaired += nagain;
    }
    /* Also after a failure: a value already replaced goes back. */
    if (nback) {
        cap_err_t e2;
        int brc = overwrite(r, keys, back, backs, nback, rc == CAP_OK ? err : &e2);
        if (rc == CAP_OK) rc = brc;
    }
    if (back)
        for (size_t j = 0; j < nback; j++) free((void *)back[backs[j]].bytes);
    free(back);
    free(backs);
    free(keys);
    free(again);
    if (rc == CAP_OK && res) {
        res->written = written;
        res->repaired = repaired;
    }
    return rc;
}

static int redis_write_many(void *ctx, const cap_backend_item_t *items, size_t n,
                            const cap_backend_root_t *roots, size_t nroots,
                            cap_backend_write_result_t *res, cap_err_t *err)
{
    redis_t *r = ctx;
    if (r->flags & CAP_REDIS_READONLY) return cap_err_set(err, CAP_EBACKEND, "read-only");
    cap_backend_write_result_t local = {0, 0};
    int rc = n ? write_items(r, items, n, &local, err) : CAP_OK;
    /* Not atomic (NONATOMIC_BATCH): the blobs are stored and acknowledged
     * first; only then are roots set, each after its closure is checked. */
    if (rc == CAP_OK && nroots) rc = set_roots(r, roots, nroots, err);
    if (rc == CAP_OK) {
        if (res) *res = local;
        cap_err_set(err, CAP_OK, NULL);
    }
    return rc;
}

static int redis_write_batch(void *ctx, const cap_backend_item_t *items, size_t n, cap_err_t *err)
{
    return redis_write_many(ctx, items, n, NULL, 0, NULL, err);
}

/* Roots ------------------------------------------------------------------------------------ */

/* One command on the roots hash (routed by its key like any other). */
static redisReply *roots_command(redis_t *r, const char *cmd, const char *field, const uint8_t *value,
                                 size_t vlen, bool write, cap_err_t *err)
{
    char *key;
    size_t klen;
    if (redis_roots_key(r, &key, &klen) != CAP_OK) {
        cap_err_set(err, CAP_ENOMEM, "out of memory");
        return NULL;
    }
    redis_cmd_t c;
    memset(&c, 0, sizeof c);
    c.argv[0] = cmd;
    c.argvlen[0] = strlen(cmd);
    c.argv[1] = key;
    c.argvlen[1] = klen;
    c.argc = 2;
    if (field) {
        c.argv[2] = field;
        c.argvlen[2] = strlen(field);
        c.argc = 3;
    }
    if (value) {
        c.argv[3] = (const char *)value;
        c.argvlen[3] = vlen;
        c.argc = 4;
    }
    c.write = write;
    int rc = redis_batch_run(r, &c, 1, err);
    free(key);
    if (rc != CAP_OK) return NULL;
    if (c.reply->type == REDIS_REPLY_ERROR) {
        cap_err_set(err, CAP_EBACKEND, "roots command failed");
        cap_err_add_detail(err, c.reply->str);
        freeReplyObject(c.reply);
        return NULL;
    }
    return c.reply;
}

static int set_roots(redis_t *r, const cap_backend_root_t *roots, size_t nroots, cap_err_t *err)
{
    cap_hash_t *hs = malloc(nroots * sizeof *hs);
    if (!hs) return cap_err_set(err, CAP_ENOMEM, "out of memory");
    for (size_t i = 0; i < nroots; i++) hs[i] = roots[i].hash;
    int rc = redis_check_closure(r, hs, nroots, err);
    free(hs);
    for (size_t i = 0; i < nroots && rc == CAP_OK; i++) {
        redisReply *rep = roots_command(r, "HSET", roots[i].name, roots[i].hash.bytes, 32, true, err);
        if (!rep) rc = err ? err->code : CAP_EBACKEND;
        else freeReplyObject(rep);
    }
    return rc;
}

static int redis_root_get(void *ctx, const char *name, cap_hash_t *h, cap_err_t *err)
{
    redisReply *rep = roots_command(ctx, "HGET", name, NULL, 0, false, err);
    if (!rep) return err ? err->code : CAP_EBACKEND;
    int rc = CAP_OK;
    if (rep->type == REDIS_REPLY_NIL) rc = cap_err_set(err, CAP_ENOTFOUND, "no such root");
    else if (rep->type != REDIS_REPLY_STRING || rep->len != 32)
        rc = cap_err_set(err, CAP_EBACKEND, "a damaged root (not 32 bytes)");
    else memcpy(h->bytes, rep->str, 32);
    freeReplyObject(rep);
    return rc;
}

static int redis_root_set(void *ctx, const char *name, const cap_hash_t *h, cap_err_t *err)
{
    cap_backend_root_t root = {name, *h};
    return redis_write_many(ctx, NULL, 0, &root, 1, NULL, err);
}

static int redis_root_delete(void *ctx, const char *name, cap_err_t *err)
{
    redis_t *r = ctx;
    if (r->flags & CAP_REDIS_READONLY) return cap_err_set(err, CAP_EBACKEND, "read-only");
    redisReply *rep = roots_command(r, "HDEL", name, NULL, 0, true, err);
    if (!rep) return err ? err->code : CAP_EBACKEND;
    int rc = rep->type == REDIS_REPLY_INTEGER && rep->integer == 0
                 ? cap_err_set(err, CAP_ENOTFOUND, "no such root")
                 : CAP_OK;
    freeReplyObject(rep);
    return rc;
}

typedef struct root_pair {
    const char *name;
    const redisReply *value;
} root_pair_t;

static int cmp_pair(const void *a, const void *b)
{
    return strcmp(((const root_pair_t *)a)->name, ((const root_pair_t *)b)->name);
}

static int redis_root_list(void *ctx, cap_backend_root_fn fn, void *arg, cap_err_t *err)
{
    redisReply *rep = roots_command(ctx, "HGETALL", NULL, NULL, 0, false, err);
    if (!rep) return err ? err->code : CAP_EBACKEND;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2) {
        freeReplyObject(rep);
        return cap_err_set(err, CAP_EBACKEND, "HGETALL gave no field list");
    }
    size_t n = rep->elements / 2;
    root_pair_t *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) {
        freeReplyObject(rep);
        return cap_err_set(err, CAP_ENOMEM, "out of memory");
    }
    int rc = CAP_OK;
    for (size_t i = 0; i < n && rc == CAP_OK; i++) {
        const redisReply *k = rep->element[2 * i], *val = rep->element[2 * i + 1];
        if (k->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING || val->len != 32 ||
            strlen(k->str) != (size_t)k->len || !cap_root_name_valid(k->str)) {
            rc = cap_err_set(err, CAP_EBACKEND, "a damaged root in the roots hash");
            break;
        }
        v[i].name = k->str;
        v[i].value = val;
    }
    if (rc == CAP_OK) {
        qsort(v, n, sizeof *v, cmp_pair);
        for (size_t i = 0; i < n && rc == CAP_OK; i++) {
            cap_hash_t h;
            memcpy(h.bytes, v[i].value->str, 32);
            rc = fn(arg, v[i].name, &h);
        }
    }
    free(v);
    freeReplyObject(rep);
    return rc;
}

/* Iterate ---------------------------------------------------------------------------------- */

typedef struct iter_ctx {
    redis_t *r;
    cap_backend_iter_fn fn;
    void *arg;
    cap_err_t *err;
} iter_ctx_t;

static int iter_page(void *arg, const cap_hash_t *hs, size_t n)
{
    iter_ctx_t *it = arg;
    uint8_t **bytes = malloc(n * sizeof *bytes);
    size_t *lens = malloc(n * sizeof *lens);
    int *codes = malloc(n * sizeof *codes);
    int rc = CAP_OK;
    if (!bytes || !lens || !codes) {
        rc = cap_err_set(it->err, CAP_ENOMEM, "out of memory");
    } else {
        rc = redis_read_many(it->r, hs, n, cap_alloc_libc(), bytes, lens, codes, it->err);
        for (size_t i = 0; i < n; i++) {
            /* Deleted since the scan saw it: skip. A failed item fails the walk. */
            if (rc == CAP_OK && codes[i] != CAP_OK && codes[i] != CAP_ENOTFOUND) {
                rc = cap_err_set(it->err, codes[i], "reading a scanned blob failed");
                cap_err_set_hash(it->err, &hs[i]);
            }
            if (rc == CAP_OK && codes[i] == CAP_OK) rc = it->fn(it->arg, &hs[i], bytes[i], lens[i]);
            if (bytes[i]) free(bytes[i]);
        }
    }
    free(bytes);
    free(lens);
    free(codes);
    return rc;
}

static int redis_iterate(void *ctx, cap_backend_iter_fn fn, void *arg, cap_err_t *err)
{
    iter_ctx_t it = {ctx, fn, arg, err};
    return redis_scan_blobs(ctx, NULL, 0, iter_page, &it, err);
}

/* Stats ------------------------------------------------------------------------------------ */

typedef struct stats_ctx {
    redis_t *r;
    cap_redis_stats_t *st;
    cap_err_t *err;
} stats_ctx_t;

static int stats_page(void *arg, const cap_hash_t *hs, size_t n)
{
    stats_ctx_t *sc = arg;
    uint8_t *keys = keys_of(sc->r, hs, n);
    redis_cmd_t *cmds = cmds_new(n);
    if (!keys || !cmds) {
        free(keys);
        free(cmds);
        return cap_err_set(sc->err, CAP_ENOMEM, "out of memory");
    }
    size_t kl = sc->r->prefix_len + 32;
    for (size_t i = 0; i < n; i++) {
        cmds[i].argc = 2;
        cmds[i].argv[0] = "STRLEN";
        cmds[i].argvlen[0] = 6;
        cmds[i].argv[1] = (const char *)keys + i * kl;
        cmds[i].argvlen[1] = kl;
    }
    int rc = redis_batch_run(sc->r, cmds, n, sc->err);
    for (size_t i = 0; i < n && rc == CAP_OK; i++)
        if (cmds[i].reply->type == REDIS_REPLY_INTEGER && cmds[i].reply->integer > 0) {
            sc->st->blobs++;
            sc->st->bytes += (uint64_t)cmds[i].reply->integer;
        }
    redis_batch_free(cmds, n);
    free(cmds);
    free(keys);
    return rc;
}

int cap_redis_stats(const cap_backend_t *b, cap_redis_stats_t *st, cap_err_t *err)
{
    if (!st || !cap_backend_is_redis(b)) return cap_err_set(err, CAP_EINVAL, "not a Redis backend");
    redis_t *r = b->ctx;
    memset(st, 0, sizeof *st);
    pthread_rwlock_rdlock(&r->map_mu);
    st->masters = r->nmasters;
    st->replicas = r->nreplicas;
    pthread_rwlock_unlock(&r->map_mu);
    st->wait_replicas = r->wait_replicas;
    stats_ctx_t sc = {r, st, err};
    int rc = redis_scan_blobs(r, NULL, 0, stats_page, &sc, err);
    if (rc != CAP_OK) return rc;
    redisReply *rep = roots_command(r, "HLEN", NULL, NULL, 0, false, err);
    if (!rep) return err ? err->code : CAP_EBACKEND;
    if (rep->type == REDIS_REPLY_INTEGER) st->roots = (uint64_t)rep->integer;
    freeReplyObject(rep);
    return cap_err_set(err, CAP_OK, NULL);
}

/* Open ------------------------------------------------------------------------------------- */

/* One INFO per master (the default sections hold both fields read here):
 *   - refuse a master whose maxmemory-policy evicts keys that have no expiry
 *     (allkeys-*): ours never have one, so volatile-* policies never pick
 *     them, and noeviction refuses writes (reported) rather than forget;
 *   - *replicated: whether every master has a replica connected (the
 *     default of wait_replicas; CLUSTER SLOTS leaves out a replica that has
 *     not reported an offset yet, INFO does not). */
static int check_masters(redis_t *r, bool check_policy, bool *replicated, cap_err_t *err)
{
    unsigned masters[REDIS_MAX_NODES];
    size_t nm = redis_masters(r, masters, REDIS_MAX_NODES);
    *replicated = nm > 0;
    for (size_t m = 0; m < nm; m++) {
        const char *argv[1] = {"INFO"};
        size_t argvlen[1] = {4};
        redisReply *rep = redis_node_command(r, masters[m], 1, argv, argvlen, err);
        if (!rep) return CAP_EBACKEND;
        int rc = CAP_OK;
        if (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_STATUS) {
            rc = redis_node_fail(r, masters[m], err, "INFO failed",
                                 rep->type == REDIS_REPLY_ERROR ? rep->str : NULL);
        } else {
            const char *p = strstr(rep->str, "maxmemory_policy:");
            char policy[32] = "";
            if (p) sscanf(p + 17, "%31[^\r\n]", policy);
            if (check_policy && strncmp(policy, "allkeys-", 8) == 0)
                rc = redis_node_fail(r, masters[m], err,
                                     "maxmemory-policy evicts keys: blobs would be lost silently "
                                     "(CAP_REDIS_ALLOW_EVICTION accepts a cache that forgets)",
                                     policy);
            p = strstr(rep->str, "connected_slaves:");
            if (!p || atoi(p + 17) < 1) *replicated = false;
        }
        freeReplyObject(rep);
        if (rc != CAP_OK) return rc;
    }
    return CAP_OK;
}

/* The caller's options, for the `size` it declares (later fields zero). */
static int read_options(const cap_redis_options_t *opt, cap_redis_options_t *o, cap_err_t *err)
{
    memset(o, 0, sizeof *o);
    if (!opt) return CAP_OK;
    size_t n = opt->size ? opt->size : sizeof *o;
    if (n > sizeof *o) {
        const unsigned char *extra = (const unsigned char *)opt + sizeof *o;
        for (size_t i = 0; i < n - sizeof *o; i++)
            if (extra[i]) return cap_err_set(err, CAP_EINVAL, "options of a later version (size)");
        n = sizeof *o;
    }
    if (n < offsetof(cap_redis_options_t, flags) + sizeof opt->flags)
        return cap_err_set(err, CAP_EINVAL, "options size too small");
    memcpy(o, opt, n);
    o->size = sizeof *o;
    if (o->wait_replicas < CAP_REDIS_NO_WAIT)
        return cap_err_set(err, CAP_EINVAL, "wait_replicas below CAP_REDIS_NO_WAIT");
    return CAP_OK;
}

int cap_redis_open(const char *uri, const cap_redis_options_t *opt, cap_backend_t **out, cap_err_t *err)
{
    if (!out) return cap_err_set(err, CAP_EINVAL, "NULL argument");
    *out = NULL;
    cap_redis_options_t o;
    int rc = read_options(opt, &o, err);
    if (rc != CAP_OK) return rc;
    redis_t *r = calloc(1, sizeof *r);
    if (!r) return cap_err_set(err, CAP_ENOMEM, "out of memory");
    r->nodes = calloc(REDIS_MAX_NODES, sizeof *r->nodes);
    pthread_rwlock_init(&r->map_mu, NULL);
    pthread_mutex_init(&r->refresh_mu, NULL);
    if (!r->nodes) {
        redis_free(r);
        return cap_err_set(err, CAP_ENOMEM, "out of memory");
    }
    rc = redis_uri_parse(uri, &r->uri, err);
    if (rc != CAP_OK) {
        redis_free(r);
        return rc;
    }
    const char *prefix = o.prefix ? o.prefix : r->uri.prefix ? r->uri.prefix : CAP_REDIS_DEFAULT_PREFIX;
    r->prefix_len = o.prefix ? strlen(o.prefix) : r->uri.prefix ? r->uri.prefix_len : strlen(prefix);
    r->prefix = malloc(r->prefix_len + 1);
    const char *pw = o.password ? o.password : getenv("CAPSTORE_REDIS_PASSWORD");
    if (pw && *pw) r->password = strdup(pw);
    if (!r->prefix || (pw && *pw && !r->password)) {
        redis_free(r);
        return cap_err_set(err, CAP_ENOMEM, "out of memory");
    }
    memcpy(r->prefix, prefix, r->prefix_len);
    r->prefix[r->prefix_len] = 0;
    r->flags = o.flags;
    r->connect_ms = o.connect_timeout_ms ? o.connect_timeout_ms : CAP_REDIS_DEFAULT_CONNECT_TIMEOUT_MS;
    r->command_ms = o.command_timeout_ms ? o.command_timeout_ms : CAP_REDIS_DEFAULT_COMMAND_TIMEOUT_MS;
    r->retry_ms = o.retry_ms ? o.retry_ms : CAP_REDIS_DEFAULT_RETRY_MS;
    r->wait_ms = o.wait_timeout_ms ? o.wait_timeout_ms : CAP_REDIS_DEFAULT_WAIT_TIMEOUT_MS;
    r->max_blob = o.max_blob_size ? o.max_blob_size : CAP_REDIS_DEFAULT_MAX_BLOB_SIZE;
    for (size_t s = 0; s < REDIS_SLOTS; s++) r->slot_node[s] = 0xFFFFu;
    for (size_t i = 0; i < r->uri.nseeds; i++) {
        unsigned ni;
        redis_node_index_locked(r, r->uri.seeds[i].host, r->uri.seeds[i].port, &ni);
    }
    rc = redis_refresh_map(r, 0, err);
    bool replicated = false;
    if (rc == CAP_OK) rc = check_masters(r, !(r->flags & CAP_REDIS_ALLOW_EVICTION), &replicated, err);
    if (rc != CAP_OK) {
        redis_free(r);
        return rc;
    }
    /* The default, decided here: 1 where every master of a cluster has a
     * replica, else 0 (a lone server has none to wait for). */
    if (o.wait_replicas == CAP_REDIS_NO_WAIT) r->wait_replicas = 0;
    else if (o.wait_replicas > 0) r->wait_replicas = o.wait_replicas;
    else if (r->uri.wait >= 0) r->wait_replicas = r->uri.wait;
    else r->wait_replicas = r->cluster && replicated ? 1 : 0;

    cap_backend_t t = CAP_BACKEND_INIT;
    t.name = "redis";
    t.flags = CAP_BACKEND_NONATOMIC_BATCH | ((r->flags & CAP_REDIS_READONLY) ? CAP_BACKEND_READONLY : 0u);
    t.ctx = r;
    t.read = redis_read;
    t.write_batch = redis_write_batch;
    t.exists = redis_exists;
    t.iterate = redis_iterate;
    t.free = redis_free;
    t.read_many = redis_read_many;
    t.exists_many = redis_exists_many;
    t.write_many = redis_write_many;
    t.root_get = redis_root_get;
    t.root_set = redis_root_set;
    t.root_delete = redis_root_delete;
    t.root_list = redis_root_list;
    r->table = t;
    *out = &r->table;
    return cap_err_set(err, CAP_OK, NULL);
}

bool cap_backend_is_redis(const cap_backend_t *b)
{
    return b && b->free == redis_free;
}

static void redis_free(void *ctx)
{
    redis_t *r = ctx;
    if (r->nodes) {
        redis_conns_close(r);
        free(r->nodes);
    }
    if (r->password) {
        /* Wipe it: freed memory can end up in a core file. */
        volatile char *p = r->password;
        while (*p) *p++ = 0;
        free(r->password);
    }
    free(r->prefix);
    redis_uri_free(&r->uri);
    pthread_rwlock_destroy(&r->map_mu);
    pthread_mutex_destroy(&r->refresh_mu);
    free(r);
}
