/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Reading an archive (archive.h: cap_archive_import; docs/archive.md).
 * Everything is verified before anything is written: the stream is read to
 * its end (each record's bytes kept in memory, decoded strictly and hashed
 * as it arrives, every byte fed to the checksum), then the archive is
 * checked to be closed, and the named roots against the backend's; only
 * then one cap_backend_write_many writes the records and sets the roots. */
#include <stdlib.h>
#include <string.h>

#include "archive_format.h"
#include "capstore/archive.h"
#include "capstore/host.h"
#include "capstore/sha256.h"
#include "options_copy.h"
#include "hash_set.h"

#define BUF (64 * 1024)
#define CHUNK ((size_t)1 << 20)

typedef struct in {
    cap_archive_read_fn read;
    void *arg;
    uint8_t *buf;
    size_t have, pos;
    bool eof, failed;
    bool hashing;
    cap_sha256_ctx_t sha;
    uint64_t offset; /* bytes consumed */
} in_t;

/* Exactly `n` bytes into dst; false at the end of the stream or on a read
 * error (in->failed). */
static bool take(in_t *in, void *dst, size_t n)
{
    uint8_t *d = dst;
    while (n) {
        if (in->pos == in->have) {
            if (in->eof || in->failed) return false;
            ptrdiff_t got = in->read(in->arg, in->buf, BUF);
            if (got < 0) {
                in->failed = true;
                return false;
            }
            if (got == 0) {
                in->eof = true;
                return false;
            }
            in->have = (size_t)got;
            in->pos = 0;
        }
        size_t k = in->have - in->pos < n ? in->have - in->pos : n;
        memcpy(d, in->buf + in->pos, k);
        if (in->hashing) cap_sha256_update(&in->sha, in->buf + in->pos, k);
        in->pos += k;
        in->offset += k;
        d += k;
        n -= k;
    }
    return true;
}

/* Record bytes, kept in 1 MiB chunks (a larger record gets its own). */
typedef struct arena {
    uint8_t **chunks;
    size_t nchunks, room;
    size_t used; /* in the last chunk */
} arena_t;

static uint8_t *arena_get(arena_t *a, size_t n)
{
    bool own = n > CHUNK / 4;
    if (own || a->nchunks == 0 || CHUNK - a->used < n) {
        if (a->nchunks == a->room) {
            size_t room = a->room ? a->room * 2 : 64;
            uint8_t **c = realloc(a->chunks, room * sizeof *c);
            if (!c) return NULL;
            a->chunks = c;
            a->room = room;
        }
        uint8_t *c = malloc(own ? n : CHUNK);
        if (!c) return NULL;
        if (own && a->nchunks) { /* keep the last chunk the one being filled */
            a->chunks[a->nchunks] = a->chunks[a->nchunks - 1];
            a->chunks[a->nchunks - 1] = c;
            a->nchunks++;
            return c;
        }
        a->chunks[a->nchunks++] = c;
        a->used = 0;
        if (own) {
            a->used = CHUNK; /* full: the next record starts a chunk */
            return c;
        }
    }
    uint8_t *p = a->chunks[a->nchunks - 1] + a->used;
    a->used += n;
    return p;
}

static void arena_free(arena_t *a)
{
    for (size_t i = 0; i < a->nchunks; i++) free(a->chunks[i]);
    free(a->chunks);
}

typedef struct import {
    in_t in;
    arena_t arena;
    cap_hset_t set;         /* record hashes, in record order */
    cap_backend_item_t *items;
    uint64_t *offsets;      /* where each record starts */
    size_t n, room;
    uint64_t bytes;
    cap_backend_root_t *roots;
    char (*names)[CAP_ROOT_NAME_MAX + 1];
    uint32_t nroots;
    cap_archive_result_t *res;
} import_t;

static void hex8(char out[9], const cap_hash_t *h)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 4; i++) {
        out[2 * i] = digits[h->bytes[i] >> 4];
        out[2 * i + 1] = digits[h->bytes[i] & 15];
    }
    out[8] = 0;
}

/* A damaged archive: CAP_EDECODE with the byte where it shows. */
static int arc_fail(cap_err_t *err, const char *what, uint64_t offset)
{
    cap_backend_fail(err, CAP_EDECODE, what);
    if (err) err->offset = offset;
    return CAP_EDECODE;
}

/* A failure about record `idx` (starting at `offset`; CAP_EDECODE carries
 * it in err->offset, the others in the detail). */
static int bad_record(import_t *x, cap_err_t *err, int code, const char *what, uint64_t idx, uint64_t offset,
                      const cap_hash_t *h)
{
    cap_backend_fail(err, code, what);
    cap_err_add_detail(err, "record ");
    cap_err_add_detail_u64(err, idx);
    if (code == CAP_EDECODE) {
        if (err) err->offset = offset;
    } else {
        cap_err_add_detail(err, " at byte ");
        cap_err_add_detail_u64(err, offset);
    }
    if (h) cap_err_set_hash(err, h);
    x->res->has_record = true;
    x->res->record = idx;
    x->res->offset = offset;
    return code;
}

static int short_read(import_t *x, cap_err_t *err, const char *part)
{
    if (x->in.failed) {
        cap_backend_fail(err, CAP_EBACKEND, "reading the archive failed");
        cap_err_add_detail(err, part);
        return CAP_EBACKEND;
    }
    arc_fail(err, "truncated archive: the stream ends", x->in.offset);
    cap_err_add_detail(err, "inside ");
    cap_err_add_detail(err, part);
    return CAP_EDECODE;
}

static int read_header(import_t *x, cap_err_t *err)
{
    uint8_t h[CAP_ARC_HEADER];
    if (!take(&x->in, h, sizeof h)) return short_read(x, err, "the header");
    if (memcmp(h, cap_arc_magic, 8) != 0) return arc_fail(err, "not a capstore archive (bad magic)", 0);
    uint32_t v = cap_arc_get32(h + 8), flags = cap_arc_get32(h + 12);
    if (v != CAP_ARCHIVE_VERSION) {
        arc_fail(err, "archive version not supported", 8);
        cap_err_add_detail(err, "version ");
        cap_err_add_detail_u64(err, v);
        return CAP_EDECODE;
    }
    if (flags != 0) return arc_fail(err, "archive header: unknown flags", 12);
    x->nroots = cap_arc_get32(h + 16);
    if (x->nroots > (1u << 20)) return arc_fail(err, "archive header: impossible root count", 16);
    x->roots = calloc(x->nroots ? x->nroots : 1, sizeof *x->roots);
    x->names = calloc(x->nroots ? x->nroots : 1, sizeof *x->names);
    if (!x->roots || !x->names) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < x->nroots; i++) {
        uint64_t at = x->in.offset;
        uint8_t len[2];
        if (!take(&x->in, len, 2)) return short_read(x, err, "the roots");
        unsigned n = len[0] | (unsigned)len[1] << 8;
        if (n > CAP_ROOT_NAME_MAX) return arc_fail(err, "archive: a root name too long", at);
        if (!take(&x->in, x->names[i], n) || !take(&x->in, x->roots[i].hash.bytes, 32))
            return short_read(x, err, "the roots");
        x->names[i][n] = 0;
        if (n && !cap_root_name_valid(x->names[i])) {
            arc_fail(err, "archive: a bad root name", at);
            cap_err_add_detail(err, "root ");
            cap_err_add_detail_u64(err, i);
            return CAP_EDECODE;
        }
        for (uint32_t j = 0; n && j < i; j++)
            if (strcmp(x->names[j], x->names[i]) == 0) {
                arc_fail(err, "archive: a root name given twice", at);
                cap_err_add_detail(err, x->names[i]);
                return CAP_EDECODE;
            }
        x->roots[i].name = x->names[i];
    }
    return CAP_OK;
}

static int read_records(import_t *x, const cap_archive_options_t *o, cap_err_t *err)
{
    const cap_alloc_t *a = cap_alloc_libc();
    for (uint64_t idx = 0;; idx++) {
        uint64_t at = x->in.offset;
        uint8_t head[CAP_ARC_RECORD_HEAD];
        if (!take(&x->in, head, sizeof head)) return short_read(x, err, "the records");
        cap_hash_t h;
        memcpy(h.bytes, head, 32);
        uint64_t n = cap_arc_get64(head + 32);
        if (n == 0) {
            if (!cap_hash_is_zero(&h)) return bad_record(x, err, CAP_EDECODE, "a record of no bytes", idx, at, &h);
            return CAP_OK; /* the end record */
        }
        if (n > CAP_ARC_MAX_RECORD) return bad_record(x, err, CAP_EDECODE, "a record of impossible length", idx, at, &h);
        uint8_t *bytes = arena_get(&x->arena, (size_t)n);
        if (!bytes) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
        if (!take(&x->in, bytes, (size_t)n)) {
            int rc = short_read(x, err, "a record");
            if (rc == CAP_EDECODE) bad_record(x, err, CAP_EDECODE, "truncated archive: the stream ends inside a record",
                                              idx, at, &h);
            return rc;
        }
        /* The record is what it says: a cap, decoded strictly, of this hash. */
        cap_t *c = NULL;
        cap_err_t de;
        memset(&de, 0, sizeof de);
        int rc = cap_persist_decode(&h, bytes, (size_t)n, a, true, &c, &de);
        cap_release(c);
        if (rc != CAP_OK) {
            const char *what = rc == CAP_EMISMATCH ? "a record's bytes hash to another value"
                               : rc == CAP_ENOMEM  ? "out of memory"
                                                   : "a record's bytes are not a cap";
            bad_record(x, err, rc, what, idx, at, &h);
            if (rc == CAP_EDECODE && de.what) {
                cap_err_add_detail(err, ": ");
                cap_err_add_detail(err, de.what);
            }
            return rc;
        }
        size_t where;
        int r = cap_hset_add(&x->set, &h, &where);
        if (r < 0) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
        if (r == 0) {
            bad_record(x, err, CAP_EDECODE, "a record given twice", idx, at, &h);
            cap_err_add_detail(err, ", first as record ");
            cap_err_add_detail_u64(err, where);
            return CAP_EDECODE;
        }
        if (x->n == x->room) {
            size_t room = x->room ? x->room * 2 : 1024;
            cap_backend_item_t *it = realloc(x->items, room * sizeof *it);
            if (it) x->items = it;
            uint64_t *of = realloc(x->offsets, room * sizeof *of);
            if (of) x->offsets = of;
            if (!it || !of) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
            x->room = room;
        }
        x->items[x->n].hash = h;
        x->items[x->n].bytes = bytes;
        x->items[x->n].n = (size_t)n;
        x->offsets[x->n] = at;
        x->n++;
        x->bytes += n;
        if (o->progress && (x->n & 1023) == 0) o->progress(o->arg, "import", x->n, x->bytes);
    }
}

static int read_trailer(import_t *x, cap_err_t *err)
{
    uint8_t counts[16], sum[32], want[32], extra;
    uint64_t at = x->in.offset;
    if (!take(&x->in, counts, 16)) return short_read(x, err, "the trailer");
    cap_sha256_final(&x->in.sha, want);
    x->in.hashing = false;
    if (!take(&x->in, sum, 32)) return short_read(x, err, "the checksum");
    if (cap_arc_get64(counts) != x->n || cap_arc_get64(counts + 8) != x->bytes)
        return arc_fail(err, "archive trailer: the counts do not match the records", at);
    if (memcmp(sum, want, 32) != 0)
        return arc_fail(err, "archive checksum mismatch: the archive was damaged", at + 16);
    if (take(&x->in, &extra, 1)) return arc_fail(err, "bytes after the end of the archive", at + 48);
    if (x->in.failed) return short_read(x, err, "the end");
    return CAP_OK;
}

typedef struct closed {
    import_t *x;
    const cap_hash_t *lacking;
} closed_t;

static int child_in(void *arg, const cap_child_t *ch)
{
    closed_t *c = arg;
    if (ch->target.kind != CAP_TARGET_HASH) return 0;
    if (cap_hset_find(&c->x->set, &ch->target.hash) != SIZE_MAX) return 0;
    c->lacking = &ch->target.hash;
    return 1;
}

/* Every cap a record or a root names is a record. */
static int check_closed(import_t *x, cap_err_t *err)
{
    for (uint32_t i = 0; i < x->nroots; i++)
        if (cap_hset_find(&x->set, &x->roots[i].hash) == SIZE_MAX) {
            cap_backend_fail(err, CAP_EBLOBMISSING, "archive not closed: a root names a cap it does not hold");
            cap_err_set_hash(err, &x->roots[i].hash);
            cap_err_add_detail(err, "root ");
            cap_err_add_detail(err, x->names[i][0] ? x->names[i] : "(no name)");
            return CAP_EBLOBMISSING;
        }
    for (size_t i = 0; i < x->n; i++) {
        closed_t c = {x, NULL};
        cap_wire_for_each_child(x->items[i].bytes, x->items[i].n, child_in, &c, NULL);
        if (c.lacking) {
            cap_hash_t lacking = *c.lacking;
            char h8[9];
            hex8(h8, &x->items[i].hash);
            bad_record(x, err, CAP_EBLOBMISSING, "archive not closed: a record names a cap it does not hold", i,
                       x->offsets[i], &lacking);
            cap_err_add_detail(err, " (");
            cap_err_add_detail(err, h8);
            cap_err_add_detail(err, ")");
            return CAP_EBLOBMISSING;
        }
    }
    return CAP_OK;
}

/* Named roots against the backend's. */
static int check_roots(import_t *x, const cap_backend_t *b, bool force, bool dry, size_t *named, cap_err_t *err)
{
    *named = 0;
    for (uint32_t i = 0; i < x->nroots; i++) {
        if (!x->names[i][0]) continue;
        (*named)++;
        if (!cap_backend_has_roots(b)) {
            if (dry) continue; /* a dry run against a backend without roots: nothing to compare */
            return cap_backend_fail(err, CAP_EBACKEND, "roots not supported");
        }
        cap_hash_t h;
        int rc = cap_backend_root_get(b, x->names[i], &h, err);
        if (rc == CAP_ENOTFOUND) continue;
        if (rc != CAP_OK) return rc;
        if (memcmp(h.bytes, x->roots[i].hash.bytes, 32) != 0 && !force) {
            char now[9], arch[9];
            hex8(now, &h);
            hex8(arch, &x->roots[i].hash);
            cap_backend_fail(err, CAP_EBACKEND, "a root exists with another hash (--force replaces it)");
            cap_err_add_detail(err, x->names[i]);
            cap_err_add_detail(err, ": ");
            cap_err_add_detail(err, now);
            cap_err_add_detail(err, ", the archive's ");
            cap_err_add_detail(err, arch);
            return CAP_EBACKEND;
        }
    }
    return CAP_OK;
}

int cap_archive_import(const cap_backend_t *b, cap_archive_read_fn read, void *rarg, const cap_archive_options_t *opt,
                       cap_archive_result_t *res, cap_err_t *err)
{
    cap_archive_result_t local;
    if (!res) res = &local;
    memset(res, 0, sizeof *res);
    cap_archive_options_t o = CAP_ARCHIVE_OPTIONS_INIT;
    if (opt) cap_options_copy(&o, sizeof o, opt, opt->size);
    if (!b || !read) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    import_t *x = calloc(1, sizeof *x);
    if (!x) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    x->res = res;
    x->in.read = read;
    x->in.arg = rarg;
    x->in.hashing = true;
    cap_sha256_init(&x->in.sha);
    cap_hset_init(&x->set);
    x->in.buf = malloc(BUF);
    int rc = x->in.buf ? CAP_OK : cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    if (rc == CAP_OK) rc = read_header(x, err);
    if (rc == CAP_OK) rc = read_records(x, &o, err);
    if (rc == CAP_OK) rc = read_trailer(x, err);
    if (rc == CAP_OK) rc = check_closed(x, err);
    size_t named = 0;
    if (rc == CAP_OK)
        rc = check_roots(x, b, (o.flags & CAP_ARCHIVE_FORCE) != 0, (o.flags & CAP_ARCHIVE_DRY_RUN) != 0, &named, err);
    res->records = x->n;
    res->bytes = x->bytes;
    res->roots = x->nroots;
    res->archive_bytes = x->in.offset;
    if (rc == CAP_OK) res->roots_set = named;
    if (rc == CAP_OK && !(o.flags & CAP_ARCHIVE_DRY_RUN)) {
        /* One write: the records and the named roots. */
        cap_backend_root_t *set = calloc(named ? named : 1, sizeof *set);
        if (!set) {
            rc = cap_backend_fail(err, CAP_ENOMEM, "out of memory");
        } else {
            size_t k = 0;
            for (uint32_t i = 0; i < x->nroots; i++)
                if (x->names[i][0]) set[k++] = x->roots[i];
            if (o.progress) o.progress(o.arg, "write", x->n, x->bytes);
            cap_backend_write_result_t wr = {0, 0};
            rc = cap_backend_write_many(b, x->items, x->n, set, k, &wr, err);
            if (rc == CAP_OK) {
                res->written = wr.written;
                res->repaired = wr.repaired;
            } else {
                res->roots_set = 0;
            }
            free(set);
        }
    }
    arena_free(&x->arena);
    cap_hset_free(&x->set);
    free(x->items);
    free(x->offsets);
    free(x->roots);
    free(x->names);
    free(x->in.buf);
    free(x);
    if (rc == CAP_OK) cap_backend_fail(err, CAP_OK, NULL);
    return rc;
}
