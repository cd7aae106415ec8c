/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The LMDB backend's environments (persist.h: cap_lmdb_open): checking a
 * file before LMDB maps it, the lock file, the process-wide registry, and
 * map growth.
 *
 * Before LMDB. LMDB maps the file and trusts it, so everything that would
 * make it fault is refused first, reading with pread: a path that is not a
 * regular file (opened with O_NONBLOCK, so a FIFO cannot block us), an
 * empty file opened read-only, meta pages LMDB would refuse or that cannot
 * be right (page size, roots, two pages that disagree: the wrong snapshot
 * could be used and a later write would free the other's pages), and a file
 * shorter than the pages its meta page claims (unless the missing tail is
 * free, which LMDB may leave unwritten).
 *
 * Lock file. LMDB writes its lock file through a mapping: on a full disk a
 * sparse lock file faults inside mdb_env_open. So a missing lock file is
 * created here and its blocks allocated for real (posix_fallocate) before
 * LMDB maps it; a full disk is then "no space left on device". The lock
 * file takes the database file's permission bits, its group, and (when
 * root creates it) its owner; a process that is neither root nor the
 * database's owner never creates it: a reader of someone else's database
 * would leave a lock file the owner cannot write (docs/persistence.md,
 * "Sharing a database"). A failed open removes the lock file and the empty database
 * file it created, when no other process has the lock file open.
 *
 * Process-wide registry. LMDB allows one environment per file per process,
 * so opens are routed through a registry keyed by the file's (device, inode)
 * with a reference count, under a mutex — the spec's one documented
 * host-only global. Entries inherited across fork() (another pid) are
 * dropped from the list without being closed or used, as LMDB asks.
 *
 * Map growth. The map is doubled whenever a write runs out of room
 * (MDB_MAP_FULL: the transaction is aborted, the map grown, the write
 * retried), and grown up front when a batch obviously will not fit. LMDB lets
 * the map be resized only while no transaction of this process is active, so
 * every transaction holds the environment's `resize` lock shared and growth
 * takes it exclusively. A thread that already holds it (an iterate callback
 * calling back into the backend) does not take it again; if such a nested
 * write fills the map, it fails rather than deadlock. MDB_MAP_RESIZED (another
 * process grew the map) is handled the same way, at every transaction's
 * start including the open's first: adopt the new size, retry. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capstore/host.h"
#include "lmdb_file.h"
#include "lmdb_internal.h"

#define DEFAULT_MAP_SIZE ((size_t)16 << 20)
#define MAX_READERS 510
/* The lock file's size, allocated before LMDB maps it: LMDB needs 64 bytes
 * per reader slot plus a header of a few cache lines (32 KiB for 510
 * readers); a larger file only gives it more reader slots. */
#define LOCK_FILE_SIZE ((off_t)64 * 1024)

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static lmdb_env_t *registry;
static _Atomic(cap_lmdb_assert_fn) assert_hook;

static _Thread_local cap_lm_held_t *held_top;

bool cap_lm_held_by_me(const lmdb_env_t *e)
{
    for (const cap_lm_held_t *h = held_top; h; h = h->next)
        if (h->e == e) return true;
    return false;
}

void cap_lm_enter(lmdb_env_t *e, cap_lm_held_t *frame)
{
    frame->e = NULL;
    frame->next = NULL;
    if (cap_lm_held_by_me(e)) return;
    pthread_rwlock_rdlock(&e->resize);
    frame->e = e;
    frame->next = held_top;
    held_top = frame;
}

void cap_lm_leave(cap_lm_held_t *frame)
{
    if (!frame->e) return;
    held_top = frame->next;
    pthread_rwlock_unlock(&frame->e->resize);
    frame->e = NULL;
}

/* Map growth ---------------------------------------------------------------------------------- */

static size_t os_page(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

size_t cap_lm_round_up(size_t v, size_t to)
{
    size_t r = v % to;
    if (r == 0) return v;
    if (v > ((size_t)-1) - (to - r)) return ((size_t)-1) - (((size_t)-1) % to);
    return v + (to - r);
}

/* Grow the map to at least `want` bytes and at least double it, unless another
 * thread already changed the map since `gen` was read. Must not be called with
 * a transaction open or with e's lock held by this thread. */
int cap_lm_grow(lmdb_env_t *e, uint64_t gen, size_t want, cap_err_t *err)
{
    if (cap_lm_held_by_me(e))
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
        next = cap_lm_round_up(next, os_page());
        if (next <= cur) {
            rc = cap_backend_fail(err, CAP_EBACKEND, "map size limit reached");
        } else {
            int mrc = mdb_env_set_mapsize(e->env, next);
            if (mrc != 0) rc = cap_lm_fail(err, mrc);
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

/* Other processes may grow the map again between our adopting it and our
 * next try; each retry follows a real growth, so this bound is never the
 * reason a transaction fails in practice. */
#define RESIZE_TRIES 10000

int cap_lm_begin(lmdb_env_t *e, cap_lm_held_t *frame, unsigned flags, MDB_txn **txn, uint64_t *gen)
{
    for (int tries = 0;; tries++) {
        cap_lm_enter(e, frame);
        if (gen) *gen = e->map_gen;
        int rc = mdb_txn_begin(e->env, NULL, flags, txn);
        if (rc == 0) return 0;
        cap_lm_leave(frame);
        if (rc == MDB_MAP_RESIZED && tries < RESIZE_TRIES && !cap_lm_held_by_me(e)) {
            adopt(e);
            continue;
        }
        return rc;
    }
}

/* LMDB's assertions ------------------------------------------------------------------------- */

void cap_lmdb_set_assert_hook(cap_lmdb_assert_fn fn) { atomic_store(&assert_hook, fn); }

static void on_assert(MDB_env *env, const char *msg)
{
    (void)env;
    cap_lmdb_assert_fn fn = atomic_load(&assert_hook);
    if (fn) fn(msg);
}

/* Before LMDB: the file ---------------------------------------------------------------------- */

typedef struct file_info {
    dev_t dev;
    ino_t ino;
    uid_t uid;
    gid_t gid;
    mode_t mode;
    bool created; /* this open created the (empty) file */
} file_info_t;

static int fail_detail(cap_err_t *err, const char *what, const char *detail)
{
    cap_backend_fail(err, CAP_EBACKEND, what);
    cap_err_add_detail(err, detail);
    return CAP_EBACKEND;
}

static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a plain file";
}

/* Judge a database file's meta pages and size (lmdb_file.h), once. */
static int check_pages_once(int fd, uint64_t size, cap_err_t *err)
{
    cap_lmf_file_t f;
    cap_lmf_read_metas(fd, size, &f);
    if (f.in_use < 0) {
        const cap_lmf_meta_t *m0 = &f.meta[0], *m1 = &f.meta[1];
        bool lmdb0 = m0->read && m0->magic == LMF_MAGIC, lmdb1 = m1->read && m1->magic == LMF_MAGIC;
        if (!lmdb0 && !lmdb1) return cap_backend_fail(err, CAP_EBACKEND, "not an LMDB file");
        const cap_lmf_meta_t *bad = m0->bad ? m0 : m1;
        cap_backend_fail(err, CAP_EBACKEND, "damaged database (run capstore db check)");
        cap_err_add_detail(err, bad == m0 ? "meta page 0: " : "meta page 1: ");
        cap_err_add_detail(err, bad->bad);
        return CAP_EBACKEND;
    }
    if (f.disagree) return fail_detail(err, "damaged database (run capstore db check)", f.disagree);
    const cap_lmf_meta_t *m = &f.meta[f.in_use];
    uint64_t pages = size / f.psize;
    if (pages <= m->last_pg && !cap_lmf_tail_is_free(&f, pages, m->last_pg)) {
        cap_backend_fail(err, CAP_EBACKEND, "truncated database (run capstore db check)");
        cap_err_add_detail(err, "the file has ");
        cap_err_add_detail_u64(err, size);
        cap_err_add_detail(err, " bytes, its pages need ");
        cap_err_add_detail_u64(err, (m->last_pg + 1) * f.psize);
        return CAP_EBACKEND;
    }
    return CAP_OK;
}

/* A writer in another process may commit while the meta pages are read
 * (even twice, between the reads of page 0 and page 1), which can look like
 * pages that disagree; damage stays, so a verdict must hold on a second and
 * third look, a moment apart. */
static int check_pages(int fd, cap_err_t *err)
{
    int rc = CAP_OK;
    for (int attempt = 0; attempt < 3; attempt++) {
        struct stat sb;
        if (attempt) usleep(2000);
        if (fstat(fd, &sb) != 0) return cap_lm_fail(err, errno);
        rc = check_pages_once(fd, (uint64_t)sb.st_size, err);
        if (rc == CAP_OK) break;
    }
    return rc;
}

/* Open (or create, unless read-only) the database file and judge it. */
static int check_file(const char *path, bool readonly, mode_t mode, file_info_t *fi, cap_err_t *err)
{
    memset(fi, 0, sizeof *fi);
    const int ro = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
    int fd = open(path, ro);
    if (fd < 0 && errno == ENOENT && !readonly) {
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, mode);
        if (fd >= 0) fi->created = true;
        else if (errno == EEXIST) fd = open(path, ro);
    }
    if (fd < 0) {
        int ec = errno;
        cap_lm_fail(err, ec);
        cap_err_add_detail(err, path);
        return err ? err->code : CAP_EBACKEND;
    }
    struct stat sb;
    int rc = CAP_OK;
    if (fstat(fd, &sb) != 0) {
        rc = cap_lm_fail(err, errno);
    } else if (!S_ISREG(sb.st_mode)) {
        rc = fail_detail(err, "not a regular file", kind_of(sb.st_mode));
    } else if (sb.st_size == 0) {
        if (readonly) rc = fail_detail(err, "empty file", "not a database (a failed creation?)");
    } else if (LMF_SUPPORTED) {
        rc = check_pages(fd, err);
    }
    close(fd);
    if (rc != CAP_OK) {
        if (fi->created) unlink(path);
        return rc;
    }
    fi->dev = sb.st_dev;
    fi->ino = sb.st_ino;
    fi->uid = sb.st_uid;
    fi->gid = sb.st_gid;
    fi->mode = sb.st_mode & 0666;
    return CAP_OK;
}

/* Before LMDB: the lock file ----------------------------------------------------------------- */

static char *lock_path(const char *path)
{
    size_t n = strlen(path);
    char *lp = malloc(n + 6);
    if (lp) {
        memcpy(lp, path, n);
        memcpy(lp + n, "-lock", 6);
    }
    return lp;
}

/* Allocate the lock file's blocks for real; where fallocate is not
 * supported, by writing zeros. 0 or an errno value. */
static int allocate(int fd, off_t size)
{
    int rc = posix_fallocate(fd, 0, size);
    if (rc != EOPNOTSUPP && rc != EINVAL) return rc;
    static const char zeros[4096];
    for (off_t done = 0; done < size;) {
        ssize_t w = pwrite(fd, zeros, sizeof zeros, done);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        done += w;
    }
    return 0;
}

/* Make sure the lock file exists, created by the rule above. *created: it
 * was created here. */
static int prepare_lock(const char *lp, bool readonly, const file_info_t *fi, bool *created, cap_err_t *err)
{
    *created = false;
    struct stat ls;
    if (stat(lp, &ls) == 0) {
        if (!S_ISREG(ls.st_mode)) return fail_detail(err, "the lock file is not a regular file", kind_of(ls.st_mode));
        return CAP_OK;
    }
    if (errno != ENOENT) {
        int ec = errno;
        cap_lm_fail(err, ec);
        cap_err_add_detail(err, lp);
        return err ? err->code : CAP_EBACKEND;
    }
    uid_t me = geteuid();
    if (me != 0 && me != fi->uid)
        return fail_detail(err, "no lock file, and only the database's owner may create it (its owner opening the "
                                "database once does)",
                           lp);
    int fd = open(lp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, fi->mode);
    if (fd < 0) {
        int ec = errno;
        if (ec == EEXIST) return CAP_OK; /* another process made it meanwhile */
        if (ec == EROFS && readonly) return CAP_OK; /* LMDB reads without a lock file there */
        cap_lm_fail(err, ec);
        cap_err_add_detail(err, lp);
        return err ? err->code : CAP_EBACKEND;
    }
    *created = true;
    int rc = allocate(fd, LOCK_FILE_SIZE);
    if (rc == 0) {
        /* The database's permissions, whatever this process's umask, its
         * group (a member of a shared database's group may give it) and,
         * root creating it, its owner: whoever may write the database may
         * use its lock file. */
        if (me == 0 && (fi->uid != 0 || fi->gid != 0)) (void)!fchown(fd, fi->uid, fi->gid);
        else if (getegid() != fi->gid) (void)!fchown(fd, (uid_t)-1, fi->gid);
        (void)!fchmod(fd, fi->mode);
    }
    close(fd);
    if (rc != 0) {
        unlink(lp);
        *created = false;
        cap_lm_fail(err, rc);
        cap_err_add_detail(err, "creating the lock file");
        return err ? err->code : CAP_EBACKEND;
    }
    return CAP_OK;
}

/* After a failed open: remove what it created, unless another process has
 * opened the lock file meanwhile (LMDB holds a read lock on its first byte
 * while an environment is open). */
static void undo_create(const char *path, const char *lp, bool lock_created, bool file_created)
{
    bool unused = false;
    if (lock_created) {
        int fd = open(lp, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0) {
            struct flock fl;
            memset(&fl, 0, sizeof fl);
            fl.l_type = F_WRLCK;
            fl.l_whence = SEEK_SET;
            fl.l_start = 0;
            fl.l_len = 1;
            if (fcntl(fd, F_SETLK, &fl) == 0) {
                unused = true;
                unlink(lp);
                if (file_created) unlink(path);
            }
            close(fd); /* releases the lock */
        }
    }
    struct stat sb;
    if (file_created && !unused && stat(path, &sb) == 0 && sb.st_size == 0) unlink(path);
}

/* Opening -------------------------------------------------------------------------------------- */

static void env_destroy(lmdb_env_t *e)
{
    if (e->env) mdb_env_close(e->env);
    pthread_rwlock_destroy(&e->resize);
    pthread_mutex_destroy(&e->regions_mu);
    free(e->path);
    free(e);
}

void cap_lm_free(void *ctx)
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

/* LMDB failed to open the lock file: say which file and why. */
static int lock_failure(const char *lp, int rc, cap_err_t *err)
{
    if (rc == EACCES || rc == EPERM) {
        struct stat ls;
        if (stat(lp, &ls) == 0 && access(lp, R_OK | W_OK) != 0)
            return fail_detail(err, "the lock file is not writable by this user (readers need write access to it)",
                               lp);
    }
    return cap_lm_fail(err, rc);
}

static int env_open(const char *path, const char *lp, const cap_lmdb_options_t *o, mode_t mode, lmdb_env_t *e,
                    cap_err_t *err)
{
    int rc = mdb_env_create(&e->env);
    if (rc) {
        e->env = NULL;
        return cap_lm_fail(err, rc);
    }
    size_t init = o->initial_map_size ? o->initial_map_size : DEFAULT_MAP_SIZE;
    if (o->max_map_size && init > o->max_map_size) init = o->max_map_size;
    init = cap_lm_round_up(init, os_page());
    unsigned flags = MDB_NOSUBDIR | MDB_NOTLS;
    if (e->rdonly) flags |= MDB_RDONLY;
    if (o->flags & CAP_LMDB_NOSYNC) flags |= MDB_NOSYNC;
    mdb_env_set_assert(e->env, on_assert);
    if ((rc = mdb_env_set_mapsize(e->env, init)) || (rc = mdb_env_set_maxreaders(e->env, MAX_READERS)) ||
        (rc = mdb_env_open(e->env, path, flags, mode))) {
        mdb_env_close(e->env);
        e->env = NULL;
        return lock_failure(lp, rc, err);
    }
    int dead = 0;
    mdb_reader_check(e->env, &dead); /* clear slots of readers that died (a crash) */
    MDB_txn *txn;
    for (int tries = 0;; tries++) {
        rc = mdb_txn_begin(e->env, NULL, e->rdonly ? MDB_RDONLY : 0, &txn);
        if (rc != MDB_MAP_RESIZED || tries >= RESIZE_TRIES) break;
        mdb_env_set_mapsize(e->env, 0); /* another process grew the map: adopt it */
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, NULL, 0, &e->dbi);
        if (rc == 0) {
            rc = e->rdonly ? (mdb_txn_abort(txn), 0) : mdb_txn_commit(txn);
        } else {
            mdb_txn_abort(txn);
        }
    }
    MDB_stat st;
    int fd;
    struct stat sb;
    if (rc == 0 && (rc = mdb_env_stat(e->env, &st)) == 0) e->psize = st.ms_psize;
    if (rc == 0 && mdb_env_get_fd(e->env, &fd) == 0 && fstat(fd, &sb) == 0) e->file_size = (uint64_t)sb.st_size;
    if (rc) {
        mdb_env_close(e->env);
        e->env = NULL;
        return cap_lm_fail(err, rc);
    }
    return CAP_OK;
}

/* A new environment for the file, opened. */
static int env_new(const char *path, const cap_lmdb_options_t *o, mode_t mode, bool readonly,
                   const file_info_t *fi, pid_t self, lmdb_env_t **out, cap_err_t *err)
{
    *out = NULL;
    lmdb_env_t *e = calloc(1, sizeof *e);
    char *lp = lock_path(path);
    if (!e || !lp || !(e->path = strdup(path))) {
        if (e) free(e->path);
        free(e);
        free(lp);
        return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    }
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    /* Growth must not starve behind a stream of readers. */
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int prc = pthread_rwlock_init(&e->resize, &ra);
    pthread_rwlockattr_destroy(&ra);
    if (prc == 0 && pthread_mutex_init(&e->regions_mu, NULL) != 0) {
        pthread_rwlock_destroy(&e->resize);
        prc = -1;
    }
    if (prc != 0) {
        free(e->path);
        free(e);
        free(lp);
        return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    }
    e->dev = fi->dev;
    e->ino = fi->ino;
    e->pid = self;
    e->refs = 1;
    e->rdonly = readonly;
    e->max_map = o->max_map_size;
    bool lock_created = false;
    int rc = prepare_lock(lp, readonly, fi, &lock_created, err);
    if (rc == CAP_OK) rc = env_open(path, lp, o, mode, e, err);
    if (rc != CAP_OK) {
        env_destroy(e);
        undo_create(path, lp, lock_created, fi->created);
    } else {
        *out = e;
    }
    free(lp);
    return rc;
}

int cap_lmdb_open(const char *path, const cap_lmdb_options_t *opt, cap_backend_t **out, cap_err_t *err)
{
    if (out) *out = NULL;
    if (!path || !*path || !out) return cap_backend_fail(err, CAP_EINVAL, "NULL path or out");
    cap_lmdb_options_t o = {0};
    if (opt) o = *opt;
    bool readonly = (o.flags & CAP_LMDB_READONLY) != 0;
    mode_t mode = o.file_mode ? (mode_t)o.file_mode : 0644;

    lmdb_backend_t *b = calloc(1, sizeof *b);
    if (!b) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");

    pid_t self = getpid();
    /* Under the registry's mutex: the check, the lock file and LMDB's open
     * of one file are not raced by another thread of this process. */
    pthread_mutex_lock(&registry_mu);
    prune_foreign(self);
    file_info_t fi;
    int rc = check_file(path, readonly, mode, &fi, err);
    lmdb_env_t *e = NULL;
    if (rc == CAP_OK) {
        e = registry;
        while (e && !(e->dev == fi.dev && e->ino == fi.ino)) e = e->next;
        if (e) {
            if (e->rdonly && !readonly) {
                rc = cap_backend_fail(err, CAP_EBACKEND, "already open read-only in this process");
            } else {
                e->refs++;
            }
        } else {
            rc = env_new(path, &o, mode, readonly, &fi, self, &e, err);
            if (rc == CAP_OK) {
                e->next = registry;
                registry = e;
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
    cap_lm_fill_table(b, readonly, (o.flags & CAP_LMDB_TRUSTED) ? CAP_BACKEND_TRUSTED : 0u);
    *out = &b->table;
    if (err) cap_backend_fail(err, CAP_OK, NULL);
    return CAP_OK;
}

bool cap_backend_is_lmdb(const cap_backend_t *b) { return b && b->free == cap_lm_free; }

lmdb_env_t *cap_lm_env_of(const cap_backend_t *b)
{
    return cap_backend_is_lmdb(b) ? ((lmdb_backend_t *)b->ctx)->e : NULL;
}
