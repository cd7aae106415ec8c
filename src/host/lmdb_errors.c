/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The LMDB backend's error texts: every LMDB code and the errno values an
 * open or a write meets each read as their own reason, so that a message
 * says what happened rather than "LMDB error". */
#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>

#include "lmdb_internal.h"

const char *cap_lmdb_error_text(int rc)
{
    switch (rc) {
    case MDB_KEYEXIST: return "key already stored";
    case MDB_NOTFOUND: return "not stored";
    case MDB_PAGE_NOTFOUND: return "a page the database needs is missing (damaged database)";
    case MDB_CORRUPTED: return "database file corrupted";
    case MDB_PANIC: return "LMDB environment failed earlier and must be reopened";
    case MDB_VERSION_MISMATCH: return "LMDB version mismatch";
    case MDB_INVALID: return "not an LMDB file";
    case MDB_MAP_FULL: return "map full";
    case MDB_DBS_FULL: return "too many named databases";
    case MDB_READERS_FULL: return "too many concurrent readers";
    case MDB_TLS_FULL: return "too many threads reading at once";
    case MDB_TXN_FULL: return "batch too large for one LMDB transaction";
    case MDB_CURSOR_FULL: return "tree deeper than LMDB allows (damaged database)";
    case MDB_PAGE_FULL: return "a page has no room left (damaged database)";
    case MDB_MAP_RESIZED: return "map resized by another process";
    case MDB_INCOMPATIBLE: return "database flags incompatible with the open";
    case MDB_BAD_RSLOT: return "reader slot misuse";
    case MDB_BAD_TXN: return "transaction misuse";
    case MDB_BAD_VALSIZE: return "key or value of an unsupported size";
    case MDB_BAD_DBI: return "database handle misuse";
    case ENOSPC: return "no space left on device";
    case EDQUOT: return "disk quota exceeded";
    case EIO: return "I/O error";
    case EACCES: return "permission denied";
    case EPERM: return "operation not permitted";
    case ENOENT: return "no such file";
    case EROFS: return "read-only file system";
    case EISDIR: return "is a directory";
    case ENOTDIR: return "a path component is not a directory";
    case ELOOP: return "too many levels of symbolic links";
    case ENAMETOOLONG: return "file name too long";
    case ENOMEM: return "out of memory";
    case EAGAIN: return "database locked";
    case EBUSY: return "device or resource busy";
    case EINVAL: return "invalid argument to LMDB";
    case EFBIG: return "file too large";
    case EMFILE: return "too many open files in this process";
    case ENFILE: return "too many open files in the system";
    case ENXIO: return "no such device";
    case ENODEV: return "the file system cannot map files";
    case ETXTBSY: return "text file busy";
    case EOVERFLOW: return "file too large for this process";
    case EINTR: return "interrupted";
    default: return NULL;
    }
}

int cap_lm_fail(cap_err_t *err, int rc)
{
    if (rc == ENOMEM) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    const char *t = cap_lmdb_error_text(rc);
    if (t) return cap_backend_fail(err, CAP_EBACKEND, t);
    if (rc < 0) { /* a code of a later LMDB */
        cap_backend_fail(err, CAP_EBACKEND, "unknown LMDB error");
        cap_err_add_detail(err, "code -");
        cap_err_add_detail_u64(err, (uint64_t)-(int64_t)rc);
        return CAP_EBACKEND;
    }
    char buf[64]; /* another errno value: its own text in the detail */
    cap_backend_fail(err, CAP_EBACKEND, "system error");
    cap_err_add_detail(err, strerror_r(rc, buf, sizeof buf));
    cap_err_add_detail(err, " (errno ");
    cap_err_add_detail_u64(err, (uint64_t)rc);
    cap_err_add_detail(err, ")");
    return CAP_EBACKEND;
}

int cap_lm_fail_write(lmdb_env_t *e, cap_err_t *err, int rc)
{
    if (rc == EIO || rc == ENOSPC) {
        int fd;
        struct statvfs vs;
        /* Room for less than a few pages: the write ran out of space. */
        if (mdb_env_get_fd(e->env, &fd) == 0 && fstatvfs(fd, &vs) == 0 &&
            (uint64_t)vs.f_bavail * vs.f_frsize < 16ull * (e->psize ? e->psize : 4096))
            rc = ENOSPC;
    }
    return cap_lm_fail(err, rc);
}
