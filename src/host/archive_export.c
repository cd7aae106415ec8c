/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Writing an archive (archive.h: cap_archive_export; docs/archive.md). The
 * graphs are walked in the backend (cap_backend_walk: read_many batches,
 * children from the wire bytes, each cap once) and each cap becomes a
 * record as the walk visits it; a buffer in front of the caller's write
 * also feeds the checksum, so every byte is hashed once, as it goes out. */
#include <stdlib.h>
#include <string.h>

#include "archive_format.h"
#include "capstore/archive.h"
#include "capstore/host.h"
#include "capstore/sha256.h"
#include "options_copy.h"

#define BUF (64 * 1024)

typedef struct out {
    cap_archive_write_fn write;
    void *arg;
    uint8_t *buf;
    size_t used;
    cap_sha256_ctx_t sha;
    uint64_t total;
    int failed; /* what write returned, when it stopped us */
    /* counts */
    uint64_t records, bytes;
    const cap_archive_options_t *o;
} out_t;

static int drain(out_t *w)
{
    if (w->used == 0 || w->failed) return w->failed;
    int rc = w->write(w->arg, w->buf, w->used);
    w->used = 0;
    if (rc) w->failed = rc;
    return rc;
}

/* Bytes of the archive: hashed (all but the checksum itself) and buffered. */
static int emit(out_t *w, const void *p, size_t n, bool hash)
{
    if (hash) cap_sha256_update(&w->sha, p, n);
    w->total += n;
    const uint8_t *b = p;
    while (n) {
        if (w->used == BUF && drain(w)) return w->failed;
        size_t take = BUF - w->used < n ? BUF - w->used : n;
        memcpy(w->buf + w->used, b, take);
        w->used += take;
        b += take;
        n -= take;
    }
    return 0;
}

static int record(out_t *w, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    uint8_t head[CAP_ARC_RECORD_HEAD];
    memcpy(head, h->bytes, 32);
    cap_arc_put64(head + 32, n);
    if (emit(w, head, sizeof head, true) || emit(w, bytes, n, true)) return w->failed;
    w->records++;
    w->bytes += n;
    if (w->o->progress && (w->records & 1023) == 0) w->o->progress(w->o->arg, "export", w->records, w->bytes);
    return 0;
}

static int visit(void *arg, const cap_walk_visit_t *v)
{
    out_t *w = arg;
    return record(w, &v->hash, v->bytes, v->n) ? CAP_EBACKEND : 0;
}

/* Every named root of b (CAP_ARCHIVE_ALL). */
typedef struct root_list {
    cap_backend_root_t *r;
    char **names;
    size_t n, room;
    bool nomem;
} root_list_t;

static int add_root(void *arg, const char *name, const cap_hash_t *h)
{
    root_list_t *l = arg;
    if (l->n == l->room) {
        size_t room = l->room ? l->room * 2 : 16;
        cap_backend_root_t *r = realloc(l->r, room * sizeof *r);
        if (r) l->r = r;
        char **nm = realloc(l->names, room * sizeof *nm);
        if (nm) l->names = nm;
        if (!r || !nm) {
            l->nomem = true;
            return 1;
        }
        l->room = room;
    }
    char *copy = strdup(name);
    if (!copy) {
        l->nomem = true;
        return 1;
    }
    l->names[l->n] = copy;
    l->r[l->n].name = copy;
    l->r[l->n].hash = *h;
    l->n++;
    return 0;
}

static void root_list_free(root_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    free(l->r);
}

int cap_archive_export(const cap_backend_t *b, const cap_backend_root_t *roots, size_t nroots,
                       const cap_archive_options_t *opt, cap_archive_write_fn write, void *warg,
                       cap_archive_result_t *res, cap_err_t *err)
{
    if (res) memset(res, 0, sizeof *res);
    cap_archive_options_t o = CAP_ARCHIVE_OPTIONS_INIT;
    if (opt) cap_options_copy(&o, sizeof o, opt, opt->size);
    if (!b || !write) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    root_list_t all = {NULL, NULL, 0, 0, false};
    if (o.flags & CAP_ARCHIVE_ALL) {
        int rc = cap_backend_root_list(b, add_root, &all, err);
        if (all.nomem) rc = cap_backend_fail(err, CAP_ENOMEM, "out of memory");
        if (rc != CAP_OK) {
            root_list_free(&all);
            return rc;
        }
        roots = all.r;
        nroots = all.n;
    } else if (!roots && nroots) {
        return cap_backend_fail(err, CAP_EINVAL, "NULL roots");
    }
    int rc = CAP_OK;
    for (size_t i = 0; i < nroots && rc == CAP_OK; i++) {
        const char *nm = roots[i].name;
        if (nm && *nm && !cap_root_name_valid(nm)) {
            rc = cap_backend_fail(err, CAP_EINVAL, "bad root name");
            cap_err_add_detail(err, nm);
        }
    }
    out_t w;
    memset(&w, 0, sizeof w);
    w.write = write;
    w.arg = warg;
    w.o = &o;
    w.buf = rc == CAP_OK ? malloc(BUF) : NULL;
    cap_hash_t *starts = rc == CAP_OK ? malloc((nroots ? nroots : 1) * sizeof *starts) : NULL;
    if (rc == CAP_OK && (!w.buf || !starts)) rc = cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    if (rc != CAP_OK) goto out;
    cap_sha256_init(&w.sha);

    uint8_t head[CAP_ARC_HEADER];
    memcpy(head, cap_arc_magic, 8);
    cap_arc_put32(head + 8, CAP_ARCHIVE_VERSION);
    cap_arc_put32(head + 12, 0);
    cap_arc_put32(head + 16, (uint32_t)nroots);
    emit(&w, head, sizeof head, true);
    for (size_t i = 0; i < nroots; i++) {
        const char *nm = roots[i].name ? roots[i].name : "";
        uint8_t len[2] = {(uint8_t)strlen(nm), 0};
        emit(&w, len, 2, true);
        emit(&w, nm, len[0], true);
        emit(&w, roots[i].hash.bytes, 32, true);
        starts[i] = roots[i].hash;
    }
    cap_walk_result_t wr;
    rc = cap_backend_walk(b, starts, nroots, NULL, cap_alloc_libc(), visit, &w, &wr, err);
    if (w.failed) {
        rc = cap_backend_fail(err, CAP_EBACKEND, "archive write failed");
        cap_err_add_detail_u64(err, (uint64_t)(unsigned)w.failed);
        goto out;
    }
    if (rc != CAP_OK) goto out;
    uint8_t tail[CAP_ARC_RECORD_HEAD + 16];
    memset(tail, 0, CAP_ARC_RECORD_HEAD); /* the end record: zero hash, length 0 */
    cap_arc_put64(tail + CAP_ARC_RECORD_HEAD, w.records);
    cap_arc_put64(tail + CAP_ARC_RECORD_HEAD + 8, w.bytes);
    emit(&w, tail, sizeof tail, true);
    uint8_t sum[32];
    cap_sha256_final(&w.sha, sum);
    emit(&w, sum, 32, false);
    drain(&w);
    if (w.failed) {
        rc = cap_backend_fail(err, CAP_EBACKEND, "archive write failed");
        cap_err_add_detail_u64(err, (uint64_t)(unsigned)w.failed);
    }
    if (o.progress) o.progress(o.arg, "export", w.records, w.bytes);
out:
    if (res) {
        res->records = w.records;
        res->bytes = w.bytes;
        res->roots = nroots;
        res->archive_bytes = w.total;
    }
    free(w.buf);
    free(starts);
    root_list_free(&all);
    if (rc == CAP_OK) cap_backend_fail(err, CAP_OK, NULL);
    return rc;
}
