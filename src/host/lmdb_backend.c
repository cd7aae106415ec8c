/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The LMDB blob backend (persist.h: cap_lmdb_open).
 *
 * One database file (MDB_NOSUBDIR: the file plus "<path>-lock"), the unnamed
 * database, keys = 32-byte cap hashes, values = wire bytes.
 *
 * Process-wide registry. LMDB allows one environment per file per process,
 * so opens are routed through a registry keyed by the file's (device, inode)
 * with a reference count, under a mutex — the spec's one documented host-only
 * global. Entries inherited across fork() (another pid) are dropped from the
 * list without being closed or used, as LMDB asks.
 *
 * Map growth. The map is doubled whenever a write runs out of room
 * (MDB_MAP_FULL: the transaction is aborted, the map grown, the write
 * retried), and grown up front when a batch obviously will not fit. LMDB lets
 * the map be resized only while no transaction of this process is active, so
 * every transaction holds the environment's `resize` lock shared and growth
 * takes it exclusively. A thread that already holds it (an iterate callback
 * calling back into the backend) does not take it again; if such a nested
 * write fills the map, it fails rather than deadlock. MDB_MAP_RESIZED (another
 * process grew the map) is handled the same way: adopt the new size, retry. */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capstore/host.h"
#include "capstore/persist.h"

#define DEFAULT_MAP_SIZE ((size_t)16 << 20)
#define MAX_READERS 510

typedef struct lmdb_env {
    struct lmdb_env *next;
    dev_t dev;
    ino_t ino;
    pid_t pid;
    unsigned refs;   /* backends sharing this environment */
    bool rdonly;     /* the environment itself is MDB_RDONLY */
    MDB_env *env;
    MDB_dbi dbi;
    size_t max_map;  /* 0: unlimited */
    pthread_rwlock_t resize;
    uint64_t map_gen; /* bumped (under the exclusive lock) whenever the map changes */
} lmdb_env_t;

typedef struct lmdb_backend {
    cap_backend_t table; /* first: ctx points here */
    lmdb_env_t *e;
    bool readonly;
} lmdb_backend_t;

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static lmdb_env_t *registry;

/* Environments whose resize lock this thread holds shared (a stack). */
typedef struct held {
    lmdb_env_t *e; /* NULL: nested, nothing to release */
    struct held *next;
} held_t;
static _Thread_local held_t *held_top;

static bool held_by_me(const lmdb_env_t *e)
{
    for (const held_t *h = held_top; h; h = h->next)
        if (h->e == e) return true;
    return false;
}

static void enter(lmdb_env_t *e, held_t *frame)
{
    frame->e = NULL;
    frame->next = NULL;
    if (held_by_me(e)) return;
    pthread_rwlock_rdlock(&e->resize);
    frame->e = e;
    frame->next = held_top;
    held_top = frame;
}

static void leave(held_t *frame)
{
    if (!frame->e) return;
    held_top = frame->next;
    pthread_rwlock_unlock(&frame->e->resize);
    frame->e = NULL;
}

/* Errors ------------------------------------------------------------------------------------ */

static const char *reason(int rc)
{
    switch (rc) {
    case MDB_MAP_FULL: return "map full";
    case MDB_TXN_FULL: return "batch too large for one LMDB transaction";
    case MDB_CORRUPTED: return "database file corrupted";
    case MDB_PANIC: return "LMDB environment failed earlier and must be reopened";
    case MDB_INVALID: return "not an LMDB file";
    case MDB_VERSION_MISMATCH: return "LMDB version mismatch";
    case MDB_READERS_FULL: return "too many concurrent readers";
    case MDB_MAP_RESIZED: return "map resized by another process";
    case MDB_BAD_RSLOT:
    case MDB_BAD_TXN:
    case MDB_BAD_VALSIZE:
    case MDB_BAD_DBI: return "LMDB misuse";
    case ENOSPC: return "no space left on device";
    case EDQUOT: return "disk quota exceeded";
    case EIO: return "I/O error";
    case EACCES:
    case EPERM: return "permission denied";
    case ENOENT: return "no such file";
    case EROFS: return "read-only file system";
    case EISDIR: return "is a directory";
    case ENOTDIR: return "a path component is not a directory";
    case ENOMEM: return "out of memory";
    case EAGAIN: return "database locked";
    case EINVAL: return "invalid argument to LMDB";
    default: return "LMDB error";
    }
}

static int fail_rc(cap_err_t *err, int rc)
{
    if (rc == ENOMEM) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    return cap_backend_fail(err, CAP_EBACKEND, reason(rc));
}

/* Map growth ---------------------------------------------------------------------------------- */

static size_t os_page(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

static size_t round_up(size_t v, size_t to)
{
    size_t r = v % to;
    if (r == 0) return v;
    if (v > ((size_t)-1) - (to - r)) return ((size_t)-1) - (((size_t)-1) % to);
    return v + (to - r);
}

/* Grow the map to at least `want` bytes and at least double it, unless another
 * thread already changed the map since `gen` was read. Must not be called with
 * a transaction open or with e's lock held by this thread. */
static int grow(lmdb_env_t *e, uint64_t gen, size_t want, cap_err_t *err)
{
    if (held_by_me(e))
        return cap_backend_fail(err, CAP_EBACKEND,
                                "map full while this thread is reading the database (iterate)");
    pthread_rwlock_wrlock(&e->resize);
    int rc = CAP_OK;
    if (e->map_gen == gen) {
        MDB_envinfo info;
        mdb_env_info(e->env, &info);
        size_t cur = info.me_mapsize;
        size_t next = cur > ((size_t)-1) / 2 ? (size_t)-1 : cur * 2;
        if (next < want) next = want;
        if (e->max_map && next > e->max_map) next = e->max_map;
        next = round_up(next, os_page());
        if (next <= cur) {
            rc = cap_backend_fail(err, CAP_EBACKEND, "map size limit reached");
        } else {
            int mrc = mdb_env_set_mapsize(e->env, next);
            if (mrc != 0) rc = fail_rc(err, mrc);
            else e->map_gen++;
        }
    }
    pthread_rwlock_unlock(&e->resize);
    return rc;
}

/* Another process grew the map: adopt its size. */
static void adopt(lmdb_env_t *e)
{
    pthread_rwlock_wrlock(&e->resize);
    mdb_env_set_mapsize(e->env, 0);
    e->map_gen++;
    pthread_rwlock_unlock(&e->resize);
}

/* Begin a transaction with e's lock held shared through `frame`. Handles
 * MDB_MAP_RESIZED. On failure the frame is released. */
static int begin(lmdb_env_t *e, held_t *frame, unsigned flags, MDB_txn **txn, uint64_t *gen)
{
    for (int tries = 0;; tries++) {
        enter(e, frame);
        if (gen) *gen = e->map_gen;
        int rc = mdb_txn_begin(e->env, NULL, flags, txn);
        if (rc == 0) return 0;
        leave(frame);
        if (rc == MDB_MAP_RESIZED && tries < 8 && !held_by_me(e)) {
            adopt(e);
            continue;
        }
        return rc;
    }
}

/* Backend functions ------------------------------------------------------------------------- */

/* One read-only lookup of `h`: CAP_OK, with a copy of the bytes from `a`
 * when `a` is given (read), or just the answer (exists); CAP_ENOTFOUND; or
 * the failure. */
static int lm_lookup(lmdb_backend_t *b, const cap_hash_t *h, const cap_alloc_t *a, uint8_t **bytes,
                     size_t *n, cap_err_t *err)
{
    lmdb_env_t *e = b->e;
    held_t fr;
    MDB_txn *txn;
    int rc = begin(e, &fr, MDB_RDONLY, &txn, NULL);
    if (rc) return fail_rc(err, rc);
    MDB_val k = {32, (void *)h->bytes}, v;
    rc = mdb_get(txn, e->dbi, &k, &v);
    int out = CAP_OK;
    if (rc == MDB_NOTFOUND) {
        out = cap_backend_fail(err, CAP_ENOTFOUND, "not stored");
    } else if (rc) {
        out = fail_rc(err, rc);
    } else if (a && v.mv_size) {
        uint8_t *p = a->allocate(a->ctx, v.mv_size);
        if (!p) {
            out = cap_backend_fail(err, CAP_ENOMEM, "out of memory");
        } else {
            memcpy(p, v.mv_data, v.mv_size);
            *bytes = p;
            *n = v.mv_size;
        }
    }
    mdb_txn_abort(txn);
    leave(&fr);
    return out;
}

static int lm_read(void *ctx, const cap_hash_t *h, const cap_alloc_t *a, uint8_t **bytes, size_t *n,
                   cap_err_t *err)
{
    *bytes = NULL;
    *n = 0;
    return lm_lookup(ctx, h, a, bytes, n, err);
}

static int lm_exists(void *ctx, const cap_hash_t *h, cap_err_t *err)
{
    return lm_lookup(ctx, h, NULL, NULL, NULL, err);
}

/* Pages a batch will need at most, roughly: leaf space for each entry (twice,
 * for page splits and copy-on-write), overflow pages for large values, and a
 * few pages of slack for the tree's upper levels and the free list. */
static size_t batch_estimate(const cap_backend_item_t *items, size_t n, size_t psize)
{
    size_t total = 64 * psize;
    for (size_t i = 0; i < n; i++) {
        size_t sz = items[i].n + 32 + 16;
        size_t add = sz > psize / 4 ? round_up(sz, psize) + psize : 2 * sz;
        if (add > ((size_t)-1) - total) return (size_t)-1;
        total += add;
    }
    return total;
}

/* Batch order. Inserting keys in ascending order fills B-tree pages left to
 * right (about twice as fast as random order, and a smaller file), so a batch
 * of more than a few items is put in key order: an LSD radix sort on the
 * first 8 bytes (big-endian, i.e. memcmp order), then runs with an equal
 * prefix finished by insertion sort on the whole key. */
typedef struct sort_rec {
    uint64_t prefix;
    size_t idx;
} sort_rec_t;

#define SORT_MIN 32

static size_t *batch_order(const cap_backend_item_t *items, size_t n)
{
    if (n < SORT_MIN || n > ((size_t)-1) / (2 * sizeof(sort_rec_t))) return NULL;
    sort_rec_t *a = malloc(n * sizeof *a), *tmp = malloc(n * sizeof *tmp);
    if (!a || !tmp) {
        free(a);
        free(tmp);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t p = 0;
        for (int j = 0; j < 8; j++) p = (p << 8) | items[i].hash.bytes[j];
        a[i].prefix = p;
        a[i].idx = i;
    }
    for (unsigned shift = 0; shift < 64; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++) count[((a[i].prefix >> shift) & 0xff) + 1]++;
        if (count[((a[0].prefix >> shift) & 0xff) + 1] == n) continue; /* all equal: nothing to do */
        for (int d = 0; d < 256; d++) count[d + 1] += count[d];
        for (size_t i = 0; i < n; i++) tmp[count[(a[i].prefix >> shift) & 0xff]++] = a[i];
        sort_rec_t *t = a;
        a = tmp;
        tmp = t;
    }
    free(tmp);
    size_t *order = (size_t *)(void *)a; /* reuse the block: idx fits where the records were */
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && a[j].prefix == a[i].prefix) j++;
        for (size_t k = i + 1; k < j; k++) { /* equal prefixes: order by the whole key */
            sort_rec_t r = a[k];
            size_t m = k;
            while (m > i && memcmp(items[a[m - 1].idx].hash.bytes, items[r.idx].hash.bytes, 32) > 0) {
                a[m] = a[m - 1];
                m--;
            }
            a[m] = r;
        }
        i = j;
    }
    for (size_t i = 0; i < n; i++) order[i] = a[i].idx; /* order[i] lies at or before a[i] */
    return order;
}

static int put_items(lmdb_backend_t *b, const cap_backend_item_t *items, size_t n, cap_err_t *err)
{
    lmdb_env_t *e = b->e;
    if (b->readonly) return cap_backend_fail(err, CAP_EBACKEND, "read-only");
    if (n == 0) return CAP_OK;

    /* Grow up front when the batch clearly does not fit. */
    if (!held_by_me(e)) {
        held_t fr;
        enter(e, &fr);
        MDB_envinfo info;
        MDB_stat st;
        mdb_env_info(e->env, &info);
        mdb_env_stat(e->env, &st);
        uint64_t gen = e->map_gen;
        size_t used = (info.me_last_pgno + 1) * (size_t)st.ms_psize;
        size_t need = batch_estimate(items, n, st.ms_psize);
        size_t want = need > ((size_t)-1) - used ? (size_t)-1 : used + need;
        size_t cur = info.me_mapsize;
        leave(&fr);
        if (want > cur && (!e->max_map || cur < e->max_map)) {
            int grc = grow(e, gen, want, err);
            if (grc != CAP_OK) return grc;
        }
    }

    size_t *order = batch_order(items, n); /* NULL: the given order */
    int out;
    for (;;) {
        held_t fr;
        MDB_txn *txn;
        uint64_t gen;
        int rc = begin(e, &fr, 0, &txn, &gen);
        if (rc) {
            out = fail_rc(err, rc);
            break;
        }
        for (size_t i = 0; i < n && rc == 0; i++) {
            const cap_backend_item_t *it = &items[order ? order[i] : i];
            MDB_val k = {32, (void *)it->hash.bytes};
            MDB_val v = {it->n, (void *)it->bytes};
            rc = mdb_put(txn, e->dbi, &k, &v, MDB_NOOVERWRITE);
            if (rc == MDB_KEYEXIST) rc = 0; /* content addressed: same bytes */
        }
        if (rc == 0) {
            rc = mdb_txn_commit(txn); /* frees the transaction either way */
        } else {
            mdb_txn_abort(txn);
        }
        leave(&fr);
        if (rc == 0) {
            out = CAP_OK;
            break;
        }
        if (rc != MDB_MAP_FULL) {
            out = fail_rc(err, rc);
            break;
        }
        out = grow(e, gen, 0, err);
        if (out != CAP_OK) break;
    }
    free(order);
    return out;
}

static int lm_write_batch(void *ctx, const cap_backend_item_t *items, size_t n, cap_err_t *err)
{
    return put_items(ctx, items, n, err);
}

static int lm_flush(void *ctx, cap_err_t *err)
{
    /* Commits are durable already (or NOSYNC was asked for: sync now). */
    lmdb_backend_t *b = ctx;
    if (b->e->rdonly) return CAP_OK;
    int rc = mdb_env_sync(b->e->env, 1);
    return rc ? fail_rc(err, rc) : CAP_OK;
}

static int lm_iterate(void *ctx, cap_backend_iter_fn fn, void *arg, cap_err_t *err)
{
    lmdb_backend_t *b = ctx;
    lmdb_env_t *e = b->e;
    held_t fr;
    MDB_txn *txn;
    int rc = begin(e, &fr, MDB_RDONLY, &txn, NULL);
    if (rc) return fail_rc(err, rc);
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, e->dbi, &cur);
    if (rc) {
        mdb_txn_abort(txn);
        leave(&fr);
        return fail_rc(err, rc);
    }
    int out = CAP_OK;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 32) {
            out = cap_backend_fail(err, CAP_EBACKEND, "a key is not a 32-byte hash (not a capstore database)");
            break;
        }
        cap_hash_t h;
        memcpy(h.bytes, k.mv_data, 32);
        out = fn(arg, &h, v.mv_size ? v.mv_data : NULL, v.mv_size);
        if (out != 0) break;
    }
    if (out == CAP_OK && rc != MDB_NOTFOUND && rc != 0) out = fail_rc(err, rc);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    leave(&fr);
    return out;
}

/* Registry ------------------------------------------------------------------------------------- */

static void env_destroy(lmdb_env_t *e)
{
    if (e->env) mdb_env_close(e->env);
    pthread_rwlock_destroy(&e->resize);
    free(e);
}

static void lm_free(void *ctx)
{
    lmdb_backend_t *b = ctx;
    lmdb_env_t *e = b->e;
    pthread_mutex_lock(&registry_mu);
    if (--e->refs == 0) {
        for (lmdb_env_t **pp = &registry; *pp; pp = &(*pp)->next) {
            if (*pp == e) {
                *pp = e->next;
                break;
            }
        }
    } else {
        e = NULL;
    }
    pthread_mutex_unlock(&registry_mu);
    if (e) env_destroy(e);
    free(b);
}

/* Drop entries a fork() left behind (called with registry_mu held). They
 * belong to the parent: LMDB forbids using them here and closing them could
 * release the parent's locks, so they are forgotten, not closed. */
static void prune_foreign(pid_t self)
{
    for (lmdb_env_t **pp = &registry; *pp;) {
        if ((*pp)->pid != self) {
            *pp = (*pp)->next;
        } else {
            pp = &(*pp)->next;
        }
    }
}

static int env_open(const char *path, const cap_lmdb_options_t *o, mode_t mode, lmdb_env_t *e,
                    cap_err_t *err)
{
    int rc = mdb_env_create(&e->env);
    if (rc) {
        e->env = NULL;
        return fail_rc(err, rc);
    }
    size_t init = o->initial_map_size ? o->initial_map_size : DEFAULT_MAP_SIZE;
    if (o->max_map_size && init > o->max_map_size) init = o->max_map_size;
    init = round_up(init, os_page());
    unsigned flags = MDB_NOSUBDIR | MDB_NOTLS;
    if (e->rdonly) flags |= MDB_RDONLY;
    if (o->flags & CAP_LMDB_NOSYNC) flags |= MDB_NOSYNC;
    if ((rc = mdb_env_set_mapsize(e->env, init)) || (rc = mdb_env_set_maxreaders(e->env, MAX_READERS)) ||
        (rc = mdb_env_open(e->env, path, flags, mode))) {
        mdb_env_close(e->env);
        e->env = NULL;
        return fail_rc(err, rc);
    }
    int dead = 0;
    mdb_reader_check(e->env, &dead); /* clear slots of readers that died (a crash) */
    MDB_txn *txn;
    rc = mdb_txn_begin(e->env, NULL, e->rdonly ? MDB_RDONLY : 0, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, NULL, 0, &e->dbi);
        if (rc == 0) {
            rc = e->rdonly ? (mdb_txn_abort(txn), 0) : mdb_txn_commit(txn);
        } else {
            mdb_txn_abort(txn);
        }
    }
    if (rc) {
        mdb_env_close(e->env);
        e->env = NULL;
        return fail_rc(err, rc);
    }
    return CAP_OK;
}

int cap_lmdb_open(const char *path, const cap_lmdb_options_t *opt, cap_backend_t **out, cap_err_t *err)
{
    if (out) *out = NULL;
    if (!path || !*path || !out) return cap_backend_fail(err, CAP_EINVAL, "NULL path or out");
    cap_lmdb_options_t o = {0};
    if (opt) o = *opt;
    bool readonly = (o.flags & CAP_LMDB_READONLY) != 0;
    mode_t mode = o.file_mode ? (mode_t)o.file_mode : 0644;

    /* Create the file if needed and learn its identity. */
    int fd = open(path, readonly ? (O_RDONLY | O_CLOEXEC) : (O_RDWR | O_CREAT | O_CLOEXEC), mode);
    if (fd < 0) return fail_rc(err, errno);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int ec = errno;
        close(fd);
        return fail_rc(err, ec);
    }
    close(fd);
    if (!S_ISREG(sb.st_mode)) return cap_backend_fail(err, CAP_EBACKEND, "not a regular file");

    lmdb_backend_t *b = calloc(1, sizeof *b);
    if (!b) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");

    pid_t self = getpid();
    pthread_mutex_lock(&registry_mu);
    prune_foreign(self);
    lmdb_env_t *e = registry;
    while (e && !(e->dev == sb.st_dev && e->ino == sb.st_ino)) e = e->next;
    int rc = CAP_OK;
    if (e) {
        if (e->rdonly && !readonly) {
            rc = cap_backend_fail(err, CAP_EBACKEND, "already open read-only in this process");
        } else {
            e->refs++;
        }
    } else {
        e = calloc(1, sizeof *e);
        if (!e) {
            rc = cap_backend_fail(err, CAP_ENOMEM, "out of memory");
        } else {
            pthread_rwlockattr_t ra;
            pthread_rwlockattr_init(&ra);
            /* Growth must not starve behind a stream of readers. */
            pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
            int prc = pthread_rwlock_init(&e->resize, &ra);
            pthread_rwlockattr_destroy(&ra);
            if (prc != 0) {
                free(e);
                e = NULL;
                rc = cap_backend_fail(err, CAP_ENOMEM, "out of memory");
            } else {
                e->dev = sb.st_dev;
                e->ino = sb.st_ino;
                e->pid = self;
                e->refs = 1;
                e->rdonly = readonly;
                e->max_map = o.max_map_size;
                rc = env_open(path, &o, mode, e, err);
                if (rc != CAP_OK) {
                    env_destroy(e);
                    e = NULL;
                } else {
                    e->next = registry;
                    registry = e;
                }
            }
        }
    }
    pthread_mutex_unlock(&registry_mu);
    if (rc != CAP_OK) {
        free(b);
        return rc;
    }

    b->e = e;
    b->readonly = readonly;
    cap_backend_t t = CAP_BACKEND_INIT;
    t.name = "lmdb";
    t.flags = (readonly ? CAP_BACKEND_READONLY : 0u) | ((o.flags & CAP_LMDB_TRUSTED) ? CAP_BACKEND_TRUSTED : 0u);
    t.ctx = b;
    t.read = lm_read;
    t.write_batch = readonly ? NULL : lm_write_batch;
    t.flush = lm_flush;
    t.exists = lm_exists;
    t.iterate = lm_iterate;
    t.free = lm_free;
    b->table = t;
    *out = &b->table;
    if (err) cap_backend_fail(err, CAP_OK, NULL);
    return CAP_OK;
}

bool cap_backend_is_lmdb(const cap_backend_t *b) { return b && b->free == lm_free; }

static int sum_bytes(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    (void)h;
    (void)bytes;
    *(uint64_t *)arg += n;
    return 0;
}

int cap_lmdb_stats(const cap_backend_t *bk, cap_lmdb_stats_t *st, cap_err_t *err)
{
    if (!cap_backend_is_lmdb(bk) || !st) return cap_backend_fail(err, CAP_EINVAL, "not an LMDB backend");
    lmdb_backend_t *b = bk->ctx;
    lmdb_env_t *e = b->e;
    memset(st, 0, sizeof *st);
    held_t fr;
    MDB_txn *txn;
    int rc = begin(e, &fr, MDB_RDONLY, &txn, NULL);
    if (rc) return fail_rc(err, rc);
    MDB_stat ms;
    MDB_envinfo info;
    rc = mdb_stat(txn, e->dbi, &ms);
    mdb_env_info(e->env, &info);
    mdb_txn_abort(txn);
    leave(&fr);
    if (rc) return fail_rc(err, rc);
    st->blobs = ms.ms_entries;
    st->page_size = ms.ms_psize;
    st->depth = ms.ms_depth;
    st->map_size = info.me_mapsize;
    st->used_bytes = (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize;
    uint64_t bytes = 0;
    rc = lm_iterate(b, sum_bytes, &bytes, err);
    if (rc != CAP_OK) return rc;
    st->bytes = bytes;
    return CAP_OK;
}
