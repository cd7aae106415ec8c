/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore db export (ROOT... | --all) -o FILE | import [--dry-run]
 * [--force] FILE: archives (archive.h, docs/archive.md) through files or
 * pipes ('-'), so that `capstore db export ROOT -o - | capstore db --db
 * other.lmdb import -` moves a graph between databases. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capstore/archive.h"
#include "cmd_db.h"
#include "cmd_db_life.h"
#include "db_guard.h"
#include "db_redis.h"
#include "db_resolve.h"

/* export --------------------------------------------------------------------------------------------- */

static const char export_usage[] = "capstore db [--db PATH] export (ROOT... | --all) -o FILE";

static void export_help(void)
{
    printf("usage: %s\n\n"
           "Write the graphs of the ROOTs (each a root name, a hash or a unique prefix of\n"
           "at least 4 hex digits) to the archive FILE ('-': standard output, never a\n"
           "terminal): every cap once, with the roots and their names (a ROOT given as a\n"
           "hash has no name; an import then writes its graph without setting a root).\n"
           "--all: every named root. The format is in docs/archive.md; db import reads it\n"
           "back into any database, verifying everything first. A FILE is written whole or\n"
           "not at all (a temporary file renamed at the end). On a closed pipe the export\n"
           "ends quietly.\n\n"
           "Exit status: 0, 1 (no database, a graph not all stored, a write error), 2 usage.\n",
           export_usage);
}

typedef struct sink {
    FILE *f;
    int err;
} sink_t;

static int sink_write(void *arg, const void *bytes, size_t n)
{
    sink_t *s = arg;
    errno = 0;
    if (fwrite(bytes, 1, n, s->f) != n) {
        s->err = errno ? errno : EIO;
        return 1;
    }
    return 0;
}

int db_export(int argc, char **argv)
{
    cli_opt_t opts[] = {{"--db", true, false, NULL},
                        {"-o", true, false, NULL},
                        {"--all", false, false, NULL},
                        {NULL, false, false, NULL}};
    const char *path;
    int npos;
    int rc = db_life_args("db export", export_usage, export_help, argc, argv, opts, &path, &npos);
    if (rc != CLI_OK) return rc == DB_LIFE_HELPED ? CLI_OK : rc;
    char **pos = argv + 1;
    const char *out = opts[1].value;
    bool all = opts[2].seen;
    if (!out) return cli_usage_error("db export", export_usage, "missing -o FILE ('-' for standard output)");
    if (all && npos) return cli_usage_error("db export", export_usage, "--all takes no ROOT");
    if (!all && !npos) return cli_usage_error("db export", export_usage, "missing ROOT (or --all)");
    for (int i = 0; i < npos; i++)
        if (!db_nameable(pos[i]))
            return cli_usage_error("db export", export_usage, "'%s' is not a ROOT (a hash, a prefix or a root name)",
                                   pos[i]);
    bool to_stdout = strcmp(out, "-") == 0;
    if (to_stdout && isatty(STDOUT_FILENO))
        return cli_usage_error("db export", export_usage,
                               "refusing to write an archive to a terminal (redirect standard output)");
    cap_backend_t *db;
    if ((rc = db_open_existing("db export", path, false, &db)) != CLI_OK) return rc;
    cap_backend_root_t *roots = calloc((size_t)npos + 1, sizeof *roots);
    if (!roots) {
        cap_backend_free(db);
        cli_error("db export", "out of memory");
        return CLI_EBADINPUT;
    }
    for (int i = 0; i < npos && rc == CLI_OK; i++) {
        bool is_root = false;
        rc = db_resolve("db export", export_usage, db, path, pos[i], &roots[i].hash, &is_root);
        roots[i].name = is_root ? pos[i] : NULL;
    }
    char *tmp = NULL;
    sink_t sink = {stdout, 0};
    if (rc == CLI_OK && !to_stdout) {
        size_t n = strlen(out) + 16;
        tmp = malloc(n);
        int fd = -1;
        if (tmp) {
            snprintf(tmp, n, "%s.tmp-XXXXXX", out);
            fd = mkstemp(tmp);
        }
        if (fd >= 0) {
            (void)!fchmod(fd, 0644 & ~umask(umask(0))); /* as a plain create would */
            sink.f = fdopen(fd, "wb");
        }
        if (!sink.f) {
            cli_error("db export", "%s: %s", out, strerror(errno ? errno : ENOMEM));
            if (fd >= 0) close(fd);
            if (fd >= 0) unlink(tmp);
            rc = CLI_EBADINPUT;
        }
    }
    cap_archive_result_t res;
    memset(&res, 0, sizeof res);
    if (rc == CLI_OK) {
        db_progress_t pr;
        db_progress_init(&pr);
        cap_archive_options_t o = CAP_ARCHIVE_OPTIONS_INIT;
        o.flags = all ? CAP_ARCHIVE_ALL : 0;
        o.progress = db_progress_fn;
        o.arg = &pr;
        cap_err_t e;
        memset(&e, 0, sizeof e);
        int crc = cap_archive_export(db, roots, (size_t)npos, &o, sink_write, &sink, &res, &e);
        db_progress_end(&pr);
        if (crc == CAP_OK && fflush(sink.f) != 0) sink.err = errno ? errno : EIO;
        if (sink.err == EPIPE) {
            rc = CLI_EBADINPUT; /* the reader went away: end quietly */
        } else if (sink.err) {
            cli_error("db export", "%s: %s", to_stdout ? "standard output" : out, strerror(sink.err));
            rc = CLI_EBADINPUT;
        } else if (crc != CAP_OK) {
            rc = db_error("db export", path, crc, &e);
        }
    }
    if (tmp && sink.f) {
        if (rc == CLI_OK && (fsync(fileno(sink.f)) != 0 || fclose(sink.f) != 0)) {
            cli_error("db export", "%s: %s", out, strerror(errno));
            rc = CLI_EBADINPUT;
        } else if (rc != CLI_OK) {
            fclose(sink.f);
        }
        if (rc == CLI_OK && rename(tmp, out) != 0) {
            cli_error("db export", "%s: %s", out, strerror(errno));
            rc = CLI_EBADINPUT;
        }
        if (rc != CLI_OK) unlink(tmp);
    }
    if (rc == CLI_OK && !to_stdout)
        printf("exported %llu caps (%llu bytes) under %llu roots to %s (%llu bytes)\n",
               (unsigned long long)res.records, (unsigned long long)res.bytes, (unsigned long long)res.roots, out,
               (unsigned long long)res.archive_bytes);
    free(tmp);
    free(roots);
    cap_backend_free(db);
    return rc;
}

/* import --------------------------------------------------------------------------------------------- */

static const char import_usage[] = "capstore db [--db PATH] import [--dry-run] [--force] FILE";

static void import_help(void)
{
    printf("usage: %s\n\n"
           "Read the archive FILE ('-': standard input) that db export wrote and, once all\n"
           "of it is verified, write its caps and set its named roots in one transaction.\n"
           "Verified first: the format, every record (decoded strictly and hashed), no\n"
           "record twice, the archive closed (every cap named is in it), its checksum,\n"
           "and that no named root exists here with another hash. Any flaw writes\n"
           "nothing, and the message names the bad record (its index and byte offset).\n"
           "Creates the database if missing. On a redis:// tier the caps are written\n"
           "first and the roots set after them (Redis has no transaction across a\n"
           "cluster): a failed write may leave caps stored, never a root without its graph.\n\n"
           "options:\n"
           "  --dry-run  verify only\n"
           "  --force    replace roots that exist here with another hash\n\n"
           "Progress (count, rate, bytes) on standard error when it is a terminal.\n"
           "Exit status: 0, 1 (a damaged or incomplete archive, a root conflict, ...), 2 usage.\n",
           import_usage);
}

/* The database this import created, and its lock file. */
static void remove_new(const char *path)
{
    size_t n = strlen(path);
    char *lp = malloc(n + 6);
    unlink(path);
    if (lp) {
        memcpy(lp, path, n);
        memcpy(lp + n, "-lock", 6);
        unlink(lp);
        free(lp);
    }
}

static ptrdiff_t source_read(void *arg, void *buf, size_t n)
{
    FILE *f = arg;
    size_t got = fread(buf, 1, n, f);
    if (got == 0 && ferror(f)) return -1;
    return (ptrdiff_t)got;
}

int db_import(int argc, char **argv)
{
    cli_opt_t opts[] = {{"--db", true, false, NULL},
                        {"--dry-run", false, false, NULL},
                        {"--force", false, false, NULL},
                        {NULL, false, false, NULL}};
    const char *path;
    int npos;
    int rc = db_life_args("db import", import_usage, import_help, argc, argv, opts, &path, &npos);
    if (rc != CLI_OK) return rc == DB_LIFE_HELPED ? CLI_OK : rc;
    if (npos == 0) return cli_usage_error("db import", import_usage, "missing FILE ('-' for standard input)");
    if (npos > 1) return cli_usage_error("db import", import_usage, "one FILE at a time");
    const char *file = argv[1];
    bool dry = opts[1].seen, from_stdin = strcmp(file, "-") == 0;
    FILE *f = from_stdin ? stdin : fopen(file, "rb");
    if (!f) {
        cli_error("db import", "%s: %s", file, strerror(errno));
        return CLI_EBADINPUT;
    }
    cap_backend_t *db = NULL;
    struct stat sb;
    bool exists = db_is_redis(path) || stat(path, &sb) == 0; /* a tier is never created (or removed) here */
    if (dry && !exists) {
        rc = cap_mem_backend_new(NULL, &db) == CAP_OK ? CLI_OK : CLI_EBADINPUT; /* nothing to compare with */
    } else {
        rc = dry ? db_open_existing("db import", path, false, &db) : db_open("db import", path, true, &db);
    }
    if (rc != CLI_OK) {
        if (!from_stdin) fclose(f);
        return rc;
    }
    db_progress_t pr;
    db_progress_init(&pr);
    cap_archive_options_t o = CAP_ARCHIVE_OPTIONS_INIT;
    o.flags = (dry ? CAP_ARCHIVE_DRY_RUN : 0u) | (opts[2].seen ? CAP_ARCHIVE_FORCE : 0u);
    o.progress = db_progress_fn;
    o.arg = &pr;
    cap_archive_result_t res;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int crc = cap_archive_import(db, source_read, f, &o, &res, &e);
    db_progress_end(&pr);
    cap_backend_free(db);
    if (!from_stdin) fclose(f);
    const char *shown = cli_display_name(file);
    if (crc != CAP_OK) {
        char msg[512];
        if (e.code == 0) e.code = crc;
        cap_err_format(&e, msg, sizeof msg);
        cli_error("db import", "%s: %s", shown, msg);
        cli_error("db import", "nothing imported into %s", path);
        if (!exists && !dry) remove_new(path); /* no empty database left behind */
        return CLI_EBADINPUT;
    }
    uint64_t unnamed = res.roots - res.roots_set;
    if (dry)
        printf("%s: a whole archive of %llu caps (%llu bytes) under %llu roots; an import would set %llu roots\n",
               shown, (unsigned long long)res.records, (unsigned long long)res.bytes, (unsigned long long)res.roots,
               (unsigned long long)res.roots_set);
    else
        printf("imported %llu caps (%llu new, %llu repaired) and set %llu roots from %s into %s\n",
               (unsigned long long)res.records, (unsigned long long)res.written, (unsigned long long)res.repaired,
               (unsigned long long)res.roots_set, shown, path);
    if (unnamed)
        fprintf(stderr, "capstore db import: %llu root%s without a name: %s graph%s stored, not rooted (db gc "
                        "would collect %s)\n",
                (unsigned long long)unnamed, unnamed == 1 ? "" : "s", unnamed == 1 ? "its" : "their",
                dry ? " would be" : " is", unnamed == 1 ? "it" : "them");
    return CLI_OK;
}
