/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The integrity check of an LMDB database file (persist.h: cap_lmdb_check).
 *
 * Two parts. The file part reads with pread and cannot fault: both meta
 * pages, the file's size, and a walk of every page (lmdb_walk.c) that finds
 * a damaged page by its number. The LMDB part then looks at the database as
 * every other action will: a cursor over the blob database, each key found
 * again with mdb_get (a damaged separator in a branch page leaves the cursor
 * walk intact but sends a lookup astray), LMDB's entry count, and each value
 * bounds-checked, decoded and re-hashed. LMDB maps the file, so this part
 * can fault on damage the file part could not foresee; it announces each
 * step first (CAP_LMDB_STEP) so that a caller running it in a child process
 * can say where it stopped. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capstore/host.h"
#include "lmdb_file.h"
#include "lmdb_internal.h"
#include "lmdb_walk.h"

typedef struct check {
    cap_lmdb_check_fn fn;
    void *arg;
    cap_lmdb_check_result_t res;
} check_t;

static void emit(check_t *c, cap_lmdb_finding_kind_t kind, const uint64_t *page, const uint8_t *key, size_t ksize,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void emit(check_t *c, cap_lmdb_finding_kind_t kind, const uint64_t *page, const uint8_t *key, size_t ksize,
                 const char *fmt, ...)
{
    if (kind == CAP_LMDB_PROBLEM) c->res.problems++;
    if (kind == CAP_LMDB_BAD_BLOB) c->res.bad++;
    if (!c->fn) return;
    char text[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    cap_lmdb_finding_t f;
    memset(&f, 0, sizeof f);
    f.kind = kind;
    f.text = text;
    if (page && *page != UINT64_MAX) {
        f.has_page = true;
        f.page = *page;
    }
    if (key && ksize == 32) {
        f.has_key = true;
        memcpy(f.key.bytes, key, 32);
    }
    c->fn(c->arg, &f);
}

/* The file part ---------------------------------------------------------------------------------- */

static void walk_problem(void *arg, uint64_t page, const uint8_t *key, size_t ksize, const char *text)
{
    emit(arg, CAP_LMDB_PROBLEM, &page, key, ksize, "%s", text);
}

static void meta_notes(check_t *c, const cap_lmf_file_t *f)
{
    for (int i = 0; i < 2; i++) {
        const cap_lmf_meta_t *m = &f->meta[i];
        uint64_t pg = (uint64_t)i;
        if (m->bad) {
            emit(c, CAP_LMDB_PROBLEM, &pg, NULL, 0, "meta page %d: %s", i, m->bad);
            continue;
        }
        emit(c, CAP_LMDB_NOTE, &pg, NULL, 0, "meta page %d: transaction %llu, last page %llu, %llu entries%s", i,
             (unsigned long long)m->txnid, (unsigned long long)m->last_pg,
             (unsigned long long)m->main_db.entries, f->in_use == i ? " (in use)" : "");
    }
    if (f->in_use < 0) {
        emit(c, CAP_LMDB_PROBLEM, NULL, NULL, 0, "LMDB refuses a file with a damaged meta page");
        return;
    }
    const cap_lmf_meta_t *cur = &f->meta[f->in_use], *old = &f->meta[1 - f->in_use];
    if (f->disagree)
        emit(c, CAP_LMDB_PROBLEM, NULL, NULL, 0,
             "%s (transactions %llu and %llu): one of them is damaged, and LMDB may be using the wrong snapshot",
             f->disagree, (unsigned long long)f->meta[0].txnid, (unsigned long long)f->meta[1].txnid);
    if (old->last_pg > cur->last_pg)
        emit(c, CAP_LMDB_PROBLEM, NULL, NULL, 0,
             "the older snapshot (meta page %d) claims more pages (%llu) than the newer one (%llu)", 1 - f->in_use,
             (unsigned long long)old->last_pg, (unsigned long long)cur->last_pg);
}

/* Returns whether the file is whole enough for LMDB to read it. */
static bool file_part(check_t *c, int fd, uint64_t size)
{
    emit(c, CAP_LMDB_STEP, NULL, NULL, 0, "reading the meta pages");
    cap_lmf_file_t f;
    cap_lmf_read_metas(fd, size, &f);
    meta_notes(c, &f);
    int use = f.in_use;
    if (use < 0 && !f.meta[0].bad) use = 0; /* describe what can be described */
    if (use < 0 && !f.meta[1].bad) use = 1;
    if (use < 0) return false;
    const cap_lmf_meta_t *m = &f.meta[use];
    uint64_t ps = f.psize, pages = size / ps;
    emit(c, CAP_LMDB_NOTE, NULL, NULL, 0, "file: %llu bytes, %llu pages of %llu bytes; the snapshot uses pages 0..%llu",
         (unsigned long long)size, (unsigned long long)pages, (unsigned long long)ps, (unsigned long long)m->last_pg);
    bool whole = true;
    if (pages <= m->last_pg) {
        if (f.in_use >= 0 && cap_lmf_tail_is_free(&f, pages, m->last_pg)) {
            emit(c, CAP_LMDB_NOTE, NULL, NULL, 0, "pages %llu..%llu lie past the end of the file but are free",
                 (unsigned long long)pages, (unsigned long long)m->last_pg);
        } else {
            emit(c, CAP_LMDB_PROBLEM, NULL, NULL, 0,
                 "truncated: the file ends at page %llu but the snapshot uses pages up to %llu (%llu bytes)",
                 (unsigned long long)pages, (unsigned long long)m->last_pg,
                 (unsigned long long)((m->last_pg + 1) * ps));
            whole = false;
        }
    }
    /* Account for every page, unless the last page is absurd (then the walk
     * still checks every page it reaches). */
    bool account = m->last_pg < pages + 65536;
    cap_lmf_walk_t w;
    emit(c, CAP_LMDB_STEP, NULL, NULL, 0, "walking the pages");
    if (!cap_lmf_walk_init(&w, &f, m->last_pg, account)) {
        emit(c, CAP_LMDB_NOTE, NULL, NULL, 0, "out of memory for the page map: pages not accounted for");
        cap_lmf_walk_init(&w, &f, m->last_pg, false);
    }
    w.problem = walk_problem;
    w.arg = c;
    cap_lmf_walk_tree(&w, &m->main_db, "blob", LMF_KEYS_MEMCMP, 32);
    uint64_t branch = w.branch, leaf = w.leaf, overflow = w.overflow;
    cap_lmf_walk_free(&w, &m->free_db);
    uint64_t free_tree = w.branch + w.leaf + w.overflow;
    if (account) {
        uint64_t first, lost = cap_lmf_walk_unaccounted(&w, &first);
        if (lost && w.problems)
            emit(c, CAP_LMDB_NOTE, &first, NULL, 0, "%llu pages not reached (the damage above hides them)",
                 (unsigned long long)lost);
        else if (lost)
            emit(c, CAP_LMDB_PROBLEM, &first, NULL, 0,
                 "%llu pages are neither in use nor free (the first: page %llu): a damaged page number lost them",
                 (unsigned long long)lost, (unsigned long long)first);
    }
    emit(c, CAP_LMDB_NOTE, NULL, NULL, 0,
         "pages: %llu branch, %llu leaf, %llu overflow in the blob database; %llu in the free list's tree; %llu free",
         (unsigned long long)branch, (unsigned long long)leaf, (unsigned long long)overflow,
         (unsigned long long)free_tree, (unsigned long long)w.free_pages);
    cap_lmf_walk_fini(&w);
    return whole && f.in_use >= 0;
}

/* The LMDB part ---------------------------------------------------------------------------------- */

static int keycmp(const MDB_val *a, const MDB_val *b)
{
    size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
    int r = n ? memcmp(a->mv_data, b->mv_data, n) : 0;
    if (r) return r;
    return a->mv_size < b->mv_size ? -1 : a->mv_size > b->mv_size;
}

static void check_value(check_t *c, lmdb_env_t *e, const MDB_val *k, const MDB_val *v)
{
    cap_hash_t h;
    memcpy(h.bytes, k->mv_data, 32);
    c->res.blobs++;
    if (!cap_lm_val_ok(e, v)) {
        emit(c, CAP_LMDB_BAD_BLOB, NULL, h.bytes, 32, "its value (%llu bytes) lies outside the file",
             (unsigned long long)v->mv_size);
        return;
    }
    cap_t *cap = NULL;
    cap_err_t err;
    memset(&err, 0, sizeof err);
    int rc = cap_persist_decode(&h, v->mv_size ? v->mv_data : NULL, v->mv_size, cap_alloc_libc(), true, &cap, &err);
    cap_release(cap);
    if (rc != CAP_OK) {
        char msg[256];
        err.has_hash = false; /* the key is the finding's own */
        cap_err_format(&err, msg, sizeof msg);
        emit(c, CAP_LMDB_BAD_BLOB, NULL, h.bytes, 32, "%s", msg);
    }
}

/* Whether an open failed because of the file's content (a finding), or
 * for another reason (permission, a missing lock file: the check cannot
 * run). */
static bool open_found_damage(const cap_err_t *err)
{
    static const char *const damage[] = {"damaged", "truncated", "not an LMDB", "empty file",
                                         "a page the database", "database file corrupted"};
    for (size_t i = 0; err->what && i < sizeof damage / sizeof damage[0]; i++)
        if (strncmp(err->what, damage[i], strlen(damage[i])) == 0) return true;
    return false;
}

/* CAP_OK, or the reason LMDB's view could not be looked at (in *err). */
static int lmdb_part(check_t *c, const char *path, cap_err_t *out_err)
{
    emit(c, CAP_LMDB_STEP, NULL, NULL, 0, "opening the database with LMDB");
    cap_lmdb_options_t o;
    memset(&o, 0, sizeof o);
    o.flags = CAP_LMDB_READONLY;
    cap_backend_t *b = NULL;
    cap_err_t err;
    memset(&err, 0, sizeof err);
    int rc = cap_lmdb_open(path, &o, &b, &err);
    if (rc != CAP_OK) {
        if (!open_found_damage(&err)) {
            if (out_err) *out_err = err;
            return rc;
        }
        char msg[256];
        cap_err_format(&err, msg, sizeof msg);
        emit(c, CAP_LMDB_PROBLEM, NULL, NULL, 0, "LMDB cannot open it: %s", msg);
        return CAP_OK;
    }
    lmdb_env_t *e = cap_lm_env_of(b);
    cap_lm_held_t fr;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_stat st;
    rc = cap_lm_begin(e, &fr, MDB_RDONLY, &txn, NULL);
    if (rc == 0) {
        rc = mdb_stat(txn, e->dbi, &st);
        if (rc == 0) rc = mdb_cursor_open(txn, e->dbi, &cur);
        if (rc) {
            mdb_txn_abort(txn);
            cap_lm_leave(&fr);
        }
    }
    if (rc) {
        const char *why = cap_lmdb_error_text(rc);
        emit(c, CAP_LMDB_PROBLEM, NULL, NULL, 0, "LMDB cannot read it: %s", why ? why : "LMDB error");
        cap_backend_free(b);
        return CAP_OK;
    }
    uint64_t walked = 0;
    MDB_val k, v, prev = {0, NULL};
    uint8_t prev_key[512];
    emit(c, CAP_LMDB_STEP, NULL, NULL, 0, "the first key");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        walked++;
        if (!cap_lm_val_ok(e, &k) || k.mv_size > sizeof prev_key) {
            emit(c, CAP_LMDB_PROBLEM, NULL, NULL, 0, "key %llu (%llu bytes) lies outside the file; the walk stops",
                 (unsigned long long)walked, (unsigned long long)k.mv_size);
            rc = 0;
            break;
        }
        if (prev.mv_data && keycmp(&prev, &k) >= 0) {
            emit(c, CAP_LMDB_PROBLEM, NULL, k.mv_data, k.mv_size,
                 "key %llu is not above the one before it: the tree is damaged; the walk stops",
                 (unsigned long long)walked);
            rc = 0;
            break;
        }
        memcpy(prev_key, k.mv_data, k.mv_size);
        prev.mv_data = prev_key;
        prev.mv_size = k.mv_size;
        if (k.mv_size != 32) {
            emit(c, CAP_LMDB_PROBLEM, NULL, NULL, 0, "key %llu is %llu bytes long, not a 32-byte hash",
                 (unsigned long long)walked, (unsigned long long)k.mv_size);
            continue;
        }
        emit(c, CAP_LMDB_STEP, NULL, k.mv_data, 32, "key %llu", (unsigned long long)walked);
        MDB_val again_k = {32, prev_key}, again;
        int grc = mdb_get(txn, e->dbi, &again_k, &again);
        if (grc != 0)
            emit(c, CAP_LMDB_PROBLEM, NULL, k.mv_data, 32,
                 "a lookup of this key finds %s: a damaged branch page leads elsewhere",
                 grc == MDB_NOTFOUND ? "nothing" : cap_lmdb_error_text(grc));
        else if (again.mv_data != v.mv_data || again.mv_size != v.mv_size)
            emit(c, CAP_LMDB_PROBLEM, NULL, k.mv_data, 32,
                 "a lookup of this key finds another value than the walk: a damaged branch page");
        check_value(c, e, &k, &v);
    }
    const char *why = cap_lmdb_error_text(rc);
    if (rc != 0 && rc != MDB_NOTFOUND)
        emit(c, CAP_LMDB_PROBLEM, NULL, prev.mv_size == 32 ? prev_key : NULL, prev.mv_size,
             "the walk stopped after %llu keys: %s", (unsigned long long)walked, why ? why : "LMDB error");
    else if (rc == MDB_NOTFOUND && walked != st.ms_entries)
        emit(c, CAP_LMDB_PROBLEM, NULL, NULL, 0, "LMDB counts %llu entries; the walk found %llu",
             (unsigned long long)st.ms_entries, (unsigned long long)walked);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    cap_lm_leave(&fr);
    cap_backend_free(b);
    return CAP_OK;
}

int cap_lmdb_check(const char *path, cap_lmdb_check_fn fn, void *arg, cap_lmdb_check_result_t *res, cap_err_t *err)
{
    if (res) memset(res, 0, sizeof *res);
    if (!path || !*path) return cap_backend_fail(err, CAP_EINVAL, "NULL path");
    check_t c;
    memset(&c, 0, sizeof c);
    c.fn = fn;
    c.arg = arg;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        cap_lm_fail(err, errno);
        cap_err_add_detail(err, path);
        return CAP_EBACKEND;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return cap_backend_fail(err, CAP_EBACKEND, "not a regular file");
    }
    bool whole = true;
    if (sb.st_size == 0) {
        emit(&c, CAP_LMDB_PROBLEM, NULL, NULL, 0, "the file is empty");
        whole = false;
    } else if (LMF_SUPPORTED) {
        whole = file_part(&c, fd, (uint64_t)sb.st_size);
    }
    close(fd);
    if (whole) {
        int rc = lmdb_part(&c, path, err);
        if (rc != CAP_OK) {
            if (res) *res = c.res;
            return rc;
        }
    } else {
        emit(&c, CAP_LMDB_NOTE, NULL, NULL, 0, "LMDB's view is not checked: it would refuse the file");
    }
    if (res) *res = c.res;
    cap_backend_fail(err, CAP_OK, NULL);
    return CAP_OK;
}
