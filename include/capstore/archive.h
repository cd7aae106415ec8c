/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore — archives: a cap graph as one portable stream of bytes
 * (docs/archive.md), to carry graphs between databases and machines, as a
 * git bundle or an IPFS CAR file does.
 *
 *   magic, version, the roots with their names, then one record per cap
 *   (hash, length, wire bytes), an end record, the counts, and a SHA-256
 *   of everything before it. Fixed-width little-endian fields.
 *
 * Export walks the graphs of the roots in a backend and writes each cap
 * once; import reads a whole archive, verifies every record (its hash,
 * a strict decode, the archive closed: every cap a record names is a
 * record) and the checksum before it writes anything, then writes it all
 * with its named roots in one cap_backend_write_many (one transaction for
 * LMDB). Both go through callbacks, so any byte stream will do (a file, a
 * pipe, a socket).
 *
 * Host only (the import holds the archive's records in memory until they
 * are written). */
#ifndef CAPSTORE_ARCHIVE_H
#define CAPSTORE_ARCHIVE_H

#include <stddef.h>

#include "capstore/persist.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The format's version this library writes and reads. */
#define CAP_ARCHIVE_VERSION 1u

/** Where an export's bytes go: return 0, or anything else to stop the
 * export (it then fails with CAP_EBACKEND "archive write failed", and
 * err->detail holds the value returned). */
typedef int (*cap_archive_write_fn)(void *arg, const void *bytes, size_t n);

/** Where an import's bytes come from: fill up to `n` bytes of `buf` and
 * return how many (fewer is fine; 0 only at the end of the stream), or -1
 * for a read error. */
typedef ptrdiff_t (*cap_archive_read_fn)(void *arg, void *buf, size_t n);

/** cap_archive_options_t.flags */
#define CAP_ARCHIVE_ALL 1u     /**< export: every named root of the backend (`roots` ignored) */
#define CAP_ARCHIVE_DRY_RUN 2u /**< import: verify everything, write nothing */
#define CAP_ARCHIVE_FORCE 4u   /**< import: a root stored under another hash is replaced */

typedef struct cap_archive_options {
    size_t size;              /**< sizeof(cap_archive_options_t), or 0 for this layout */
    unsigned flags;           /**< CAP_ARCHIVE_* */
    cap_progress_fn progress; /**< phases "export", "import" (records read), "write"; may be NULL */
    void *arg;
} cap_archive_options_t;

#define CAP_ARCHIVE_OPTIONS_INIT {sizeof(cap_archive_options_t), 0u, 0, 0}

typedef struct cap_archive_result {
    uint64_t records;       /**< caps in the archive */
    uint64_t bytes;         /**< their wire bytes */
    uint64_t roots;         /**< roots in the archive (named or not) */
    uint64_t archive_bytes; /**< the archive's own size */
    uint64_t written;       /**< import: blobs the backend did not hold */
    uint64_t repaired;      /**< import: blobs it held with damaged bytes, replaced */
    uint64_t roots_set;     /**< import: named roots set (or, dry run, to set) */
    bool has_record;        /**< import failed on a record: */
    uint64_t record;        /**< its index (0 = the first) */
    uint64_t offset;        /**< and where it starts in the archive */
} cap_archive_result_t;

/** Write an archive of the graphs of `roots` in `b` (each root's `name`
 * may be NULL or "" for a root without a name; a non-empty name must be
 * valid, cap_root_name_valid) to `write`, every cap once, in the breadth-
 * first order of cap_backend_walk. With CAP_ARCHIVE_ALL the roots are every
 * named root of `b`. Blobs are not re-verified (the import does). Errors:
 * CAP_EBLOBMISSING (a graph is not all stored: err->hash; part of the
 * archive was written, without its end: an import refuses it), CAP_EDECODE
 * (a blob whose children cannot be read), CAP_EBACKEND (a read failed; the
 * write callback stopped it), CAP_ENOMEM, CAP_EINVAL (a bad name, NULL
 * arguments, no roots). `res` (may be NULL) gets the counts. */
int cap_archive_export(const cap_backend_t *b, const cap_backend_root_t *roots, size_t nroots,
                       const cap_archive_options_t *opt, cap_archive_write_fn write, void *warg,
                       cap_archive_result_t *res, cap_err_t *err);

/** Read an archive from `read` and, once every part of it is verified,
 * write its records and set its named roots in `b` in one
 * cap_backend_write_many. Verified before anything is written: the magic
 * and version, the names, every record's hash (a strict decode, then the
 * hash), no record twice, the archive closed (every cap a record names and
 * every root is a record), the counts and the checksum, and that no named
 * root exists in `b` with another hash (unless CAP_ARCHIVE_FORCE). On a
 * failure nothing is written and err says what: CAP_EDECODE for a damaged
 * or truncated archive (err->what; err->detail names the record, its index
 * and offset, also in res->record / res->offset; err->hash its hash),
 * CAP_EMISMATCH (a record whose bytes hash to another value),
 * CAP_EBLOBMISSING (the archive is not closed: err->hash the hash it
 * lacks), CAP_EBACKEND (a read error; a root stored under another hash,
 * err->detail naming it; the backend's write failed), CAP_ENOMEM.
 * Roots without a name are verified but not set. */
int cap_archive_import(const cap_backend_t *b, cap_archive_read_fn read, void *rarg,
                       const cap_archive_options_t *opt, cap_archive_result_t *res, cap_err_t *err);

#ifdef __cplusplus
}
#endif

#endif
