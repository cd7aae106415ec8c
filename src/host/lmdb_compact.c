/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Compaction of an LMDB database file (persist.h: cap_lmdb_compact).
 *
 * Only when no process has the database open. Every process with an LMDB
 * environment open holds a shared lock on the first byte of the lock file
 * for the environment's life, and LMDB's open first tries an exclusive lock
 * there, then waits for a shared one. So: take that byte exclusively
 * (F_SETLK, not waiting) — refused means another process has it open —
 * and hold it throughout; an open meanwhile waits in LMDB's lock.
 *
 * The copy is LMDB's compacting copy (mdb_env_copyfd2, MDB_CP_COMPACT)
 * from an environment opened with MDB_NOLOCK (it must not touch the lock
 * we hold) into a new file beside the database, which is then checked
 * (opened, its counts compared), synced, given the file's owner, group and
 * mode, and renamed over the database (the directory synced). Last the lock
 * file is set up for the new file: an open in this process finds our lock
 * its own, so LMDB takes it as the first opener and initialises the lock
 * file from the new file's meta pages (an opener waiting meanwhile must
 * not read the old file's last transaction id from it); its close releases
 * our lock, and the waiting opener goes on with the new file. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmdb_internal.h"

static int fail_errno(cap_err_t *err, int ec, const char *what)
{
    cap_lm_fail(err, ec);
    cap_err_add_detail(err, what);
    return err ? err->code : CAP_EBACKEND;
}

/* Entries of the blobs and roots databases (format 1: the unnamed one). */
static int counts(const char *path, uint64_t *blobs, uint64_t *roots)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_stat st;
    *blobs = *roots = 0;
    int rc = mdb_env_create(&env);
    if (rc) return rc;
    if ((rc = mdb_env_set_maxdbs(env, CAP_LM_MAXDBS)) ||
        (rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0644)) ||
        (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))) {
        mdb_env_close(env);
        return rc;
    }
    rc = mdb_dbi_open(txn, "blobs", 0, &dbi);
    if (rc == MDB_NOTFOUND) { /* format 1 */
        if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi)) == 0 && (rc = mdb_stat(txn, dbi, &st)) == 0)
            *blobs = st.ms_entries;
    } else if (rc == 0 && (rc = mdb_stat(txn, dbi, &st)) == 0) {
        *blobs = st.ms_entries;
        if ((rc = mdb_dbi_open(txn, "roots", 0, &dbi)) == 0 && (rc = mdb_stat(txn, dbi, &st)) == 0)
            *roots = st.ms_entries;
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return rc;
}

/* The copy into `fd`, from an environment that leaves the lock file alone. */
static int copy(const char *path, uint64_t size, int fd)
{
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (rc) return rc;
    size_t map = (size_t)size + ((size_t)1 << 20);
    if ((rc = mdb_env_set_maxdbs(env, CAP_LM_MAXDBS)) == 0 && (rc = mdb_env_set_mapsize(env, map)) == 0 &&
        (rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0644)) == 0)
        rc = mdb_env_copyfd2(env, fd, MDB_CP_COMPACT);
    mdb_env_close(env);
    return rc;
}

static void sync_dir(const char *path)
{
    char *d = strdup(path);
    if (!d) return;
    int fd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)!fsync(fd);
        close(fd);
    }
    free(d);
}

int cap_lmdb_compact(const char *path, cap_lmdb_compact_result_t *res, cap_err_t *err)
{
    if (res) memset(res, 0, sizeof *res);
    if (!path || !*path) return cap_backend_fail(err, CAP_EINVAL, "NULL path");
    struct stat sb;
    if (stat(path, &sb) != 0) return fail_errno(err, errno, path);
    if (!S_ISREG(sb.st_mode)) return cap_backend_fail(err, CAP_EBACKEND, "not a regular file");
    if (cap_lm_open_here(sb.st_dev, sb.st_ino))
        return cap_backend_fail(err, CAP_EBACKEND, "the database is open in this process");
    uid_t me = geteuid();
    if (me != 0 && me != sb.st_uid)
        return cap_backend_fail(err, CAP_EBACKEND, "only the database's owner (or root) may compact it");

    /* The lock file, made by an open as any first open makes it. */
    cap_backend_t *b = NULL;
    cap_lmdb_options_t ro = {CAP_LMDB_READONLY, 0, 0, 0};
    int rc = cap_lmdb_open(path, &ro, &b, err);
    if (rc != CAP_OK) return rc;
    cap_backend_free(b);
    size_t n = strlen(path);
    char *lp = malloc(n + 6), *tmp = malloc(n + 32);
    if (!lp || !tmp) {
        free(lp);
        free(tmp);
        return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    }
    memcpy(lp, path, n);
    memcpy(lp + n, "-lock", 6);
    snprintf(tmp, n + 32, "%s.compact-XXXXXX", path);
    int lfd = open(lp, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    int fd = -1;
    bool renamed = false;
    if (lfd < 0) {
        rc = fail_errno(err, errno, lp);
        goto out;
    }
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 1;
    if (fcntl(lfd, F_SETLK, &fl) != 0) {
        if (errno == EACCES || errno == EAGAIN)
            rc = cap_backend_fail(err, CAP_EBACKEND,
                                  "the database is open in another process (compact needs it to itself)");
        else
            rc = fail_errno(err, errno, lp);
        goto out;
    }
    /* Nobody has it open now, and nobody can until we are done. */
    if (stat(path, &sb) != 0) {
        rc = fail_errno(err, errno, path);
        goto out;
    }
    uint64_t blobs0, roots0, blobs1, roots1;
    int mrc = counts(path, &blobs0, &roots0);
    if (mrc) {
        rc = cap_lm_fail(err, mrc);
        goto out;
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        rc = fail_errno(err, errno, "creating the copy");
        goto out;
    }
    mrc = copy(path, (uint64_t)sb.st_size, fd);
    if (mrc == 0 && fsync(fd) != 0) mrc = errno;
    if (mrc == 0 && fchown(fd, sb.st_uid, sb.st_gid) != 0) mrc = errno;
    if (mrc == 0 && fchmod(fd, sb.st_mode & 07777) != 0) mrc = errno;
    if (mrc) {
        rc = cap_lm_fail(err, mrc);
        cap_err_add_detail(err, "writing the compacted copy (the database is unchanged)");
        goto out;
    }
    mrc = counts(tmp, &blobs1, &roots1);
    if (mrc || blobs1 != blobs0 || roots1 != roots0) {
        rc = cap_backend_fail(err, CAP_EBACKEND, "the compacted copy does not hold what the database holds; "
                                                 "the database is unchanged");
        goto out;
    }
    struct stat cs;
    if (fstat(fd, &cs) != 0) cs.st_size = 0;
    if (rename(tmp, path) != 0) {
        rc = fail_errno(err, errno, "replacing the database with the copy");
        goto out;
    }
    renamed = true;
    sync_dir(path);
    if (res) {
        res->bytes_before = (uint64_t)sb.st_size;
        res->bytes_after = (uint64_t)cs.st_size;
    }
    /* The lock file, for the new file (see the top). */
    rc = cap_lmdb_open(path, &ro, &b, err);
    if (rc == CAP_OK) cap_backend_free(b);
out:
    if (fd >= 0) close(fd);
    if (fd >= 0 && !renamed) unlink(tmp);
    if (lfd >= 0) close(lfd); /* releases the lock (if the open above did not) */
    free(lp);
    free(tmp);
    if (rc == CAP_OK) cap_backend_fail(err, CAP_OK, NULL);
    return rc;
}
