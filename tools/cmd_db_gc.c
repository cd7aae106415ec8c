/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore db gc [--dry-run] [ROOT...] | compact: collection
 * (cap_lmdb_collect, or cap_redis_collect on a redis:// tier) and giving
 * the freed pages back to the file system (cap_lmdb_compact; LMDB only).
 * docs/persistence.md, "Collection"; docs/redis.md, "gc". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_db.h"
#include "cmd_db_life.h"
#include "db_guard.h"
#include "db_redis.h"
#include "db_resolve.h"

/* gc ------------------------------------------------------------------------------------------------- */

static const char gc_usage[] = "capstore db [--db PATH] gc [--dry-run] [--batch N] [ROOT...]";

static void gc_help(void)
{
    printf("usage: %s\n\n"
           "Delete every blob that no root reaches. Kept: the graphs of the named roots\n"
           "(db roots) and of each ROOT given (a hash, a unique prefix of at least 4 hex\n"
           "digits, or a root name). The rest is deleted N blobs per transaction (default\n"
           "1024), so other processes go on using the database meanwhile; a root set\n"
           "while gc runs keeps its graph. A crash or a kill leaves a whole database,\n"
           "partly collected. Nothing is deleted when a graph to keep is not all stored\n"
           "or is damaged (status 1; run db check).\n\n"
           "options:\n"
           "  --dry-run  delete nothing; list what would go, one line per blob as db ls\n"
           "             prints it, then the summary\n"
           "  --batch N  blobs deleted per transaction\n\n"
           "The file keeps its size: LMDB reuses the freed pages (db stats: free_bytes);\n"
           "db compact gives them back.\n\n"
           "On a redis:// tier the blobs are found by SCAN and deleted N per pipelined\n"
           "batch; the roots are read again before each batch and the graph of a root\n"
           "set meanwhile is kept. Redis has no transaction across a cluster: a root set\n"
           "between that re-read and the batch's deletes can still lose a blob no other\n"
           "root reaches. Run gc when no host sets roots (db check finds such a root:\n"
           "docs/redis.md).\n\n"
           "Progress (count, rate, bytes) on standard error when it is a terminal.\n"
           "Exit status: 0, 1 (no database, an incomplete or damaged graph, no such\n"
           "root), 2 usage.\n",
           gc_usage);
}

static void dry_each(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    (void)arg;
    char hex[65];
    cli_hex(hex, h->bytes, 32);
    printf("%s %s %zu\n", hex, db_wire_kind(bytes, n), n);
}

/* gc on a Redis tier; frees `roots` and `db`. */
static int gc_redis(cap_backend_t *db, const char *path, cap_hash_t *roots, size_t nroots, bool dry, size_t batch,
                    db_progress_t *pr)
{
    cap_redis_collect_options_t o = CAP_REDIS_COLLECT_OPTIONS_INIT;
    o.flags = dry ? CAP_REDIS_COLLECT_DRY_RUN : 0;
    o.batch = batch;
    o.progress = db_progress_fn;
    o.arg = pr;
    o.each = dry ? dry_each : NULL;
    cap_redis_collect_result_t res;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int crc = cap_redis_collect(db, roots, nroots, &o, &res, &e);
    db_progress_end(pr);
    free(roots);
    cap_backend_free(db);
    if (crc != CAP_OK) return db_error("db gc", path, crc, &e);
    if (dry) {
        printf("would delete %llu blobs (%llu bytes); would keep %llu blobs (%llu bytes) reachable from %llu roots\n",
               (unsigned long long)res.deleted, (unsigned long long)res.deleted_bytes,
               (unsigned long long)res.marked, (unsigned long long)res.marked_bytes, (unsigned long long)res.roots);
        return CLI_OK;
    }
    printf("deleted %llu blobs (%llu bytes) in %llu batches; kept %llu blobs (%llu bytes) reachable from %llu roots",
           (unsigned long long)res.deleted, (unsigned long long)res.deleted_bytes, (unsigned long long)res.batches,
           (unsigned long long)res.marked, (unsigned long long)res.marked_bytes, (unsigned long long)res.roots);
    if (res.late_roots) printf(" (%llu set while gc ran)", (unsigned long long)res.late_roots);
    printf("\n");
    return CLI_OK;
}

int db_gc(int argc, char **argv)
{
    cli_opt_t opts[] = {{"--db", true, false, NULL},
                        {"--dry-run", false, false, NULL},
                        {"--batch", true, false, NULL},
                        {NULL, false, false, NULL}};
    const char *path;
    int npos;
    int rc = db_life_args("db gc", gc_usage, gc_help, argc, argv, opts, &path, &npos);
    if (rc != CLI_OK) return rc == DB_LIFE_HELPED ? CLI_OK : rc;
    char **pos = argv + 1;
    bool dry = opts[1].seen;
    size_t batch = 0;
    if (opts[2].value) {
        char *end;
        unsigned long long v = strtoull(opts[2].value, &end, 10);
        if (*end || v == 0 || v > (1u << 24) || opts[2].value[0] == '-')
            return cli_usage_error("db gc", gc_usage, "--batch wants a positive number, got '%s'", opts[2].value);
        batch = (size_t)v;
    }
    for (int i = 0; i < npos; i++)
        if (!db_nameable(pos[i]))
            return cli_usage_error("db gc", gc_usage, "'%s' is not a ROOT (a hash, a prefix or a root name)", pos[i]);
    cap_backend_t *db;
    if ((rc = db_open_existing("db gc", path, !dry, &db)) != CLI_OK) return rc;
    cap_hash_t *roots = calloc((size_t)npos + 1, sizeof *roots);
    if (!roots) {
        cap_backend_free(db);
        cli_error("db gc", "out of memory");
        return CLI_EBADINPUT;
    }
    for (int i = 0; i < npos && rc == CLI_OK; i++) rc = db_resolve("db gc", gc_usage, db, path, pos[i], &roots[i], NULL);
    if (rc != CLI_OK) {
        free(roots);
        cap_backend_free(db);
        return rc;
    }
    db_progress_t pr;
    if (dry) db_progress_init_data(&pr);
    else db_progress_init(&pr);
    if (db_is_redis(path)) return gc_redis(db, path, roots, (size_t)npos, dry, batch, &pr);
    cap_lmdb_collect_options_t o = CAP_LMDB_COLLECT_OPTIONS_INIT;
    o.flags = dry ? CAP_LMDB_COLLECT_DRY_RUN : 0;
    o.batch = batch;
    o.progress = db_progress_fn;
    o.arg = &pr;
    o.each = dry ? dry_each : NULL;
    cap_lmdb_collect_result_t res;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int crc = cap_lmdb_collect(db, roots, (size_t)npos, &o, &res, &e);
    db_progress_end(&pr);
    free(roots);
    cap_lmdb_stats_t st;
    memset(&st, 0, sizeof st);
    if (crc == CAP_OK && !dry) cap_lmdb_stats(db, &st, NULL);
    cap_backend_free(db);
    if (crc != CAP_OK) return db_error("db gc", path, crc, &e);
    if (dry) {
        printf("would delete %llu blobs (%llu bytes); would keep %llu blobs (%llu bytes) reachable from %llu roots\n",
               (unsigned long long)res.deleted, (unsigned long long)res.deleted_bytes,
               (unsigned long long)res.marked, (unsigned long long)res.marked_bytes, (unsigned long long)res.roots);
        return CLI_OK;
    }
    printf("deleted %llu blobs (%llu bytes) in %llu transactions; kept %llu blobs (%llu bytes) reachable from %llu "
           "roots",
           (unsigned long long)res.deleted, (unsigned long long)res.deleted_bytes,
           (unsigned long long)res.transactions, (unsigned long long)res.marked,
           (unsigned long long)res.marked_bytes, (unsigned long long)res.roots);
    if (res.late_roots) printf(" (%llu set while gc ran)", (unsigned long long)res.late_roots);
    printf("\nfree pages: %llu bytes, reused by later writes (db compact gives them back)\n",
           (unsigned long long)st.free_bytes);
    return CLI_OK;
}

/* compact ------------------------------------------------------------------------------------------- */

static const char compact_usage[] = "capstore db [--db PATH] compact";

static void compact_help(void)
{
    printf("usage: %s\n\n"
           "Rewrite the database without its free pages (LMDB's compacting copy, into a\n"
           "new file beside it that then replaces it, keeping its owner, group and mode),\n"
           "so the file shrinks to what it holds. Only when no other process has the\n"
           "database open: otherwise it refuses and changes nothing (a process that opens\n"
           "the database while compact runs waits for it). Only the file's owner (or\n"
           "root) may compact it; the directory needs room for the copy. LMDB only: a\n"
           "redis:// tier has nothing to compact (status 1).\n\n"
           "Exit status: 0, 1 (no database, in use, no room, ...), 2 usage.\n",
           compact_usage);
}

int db_compact(int argc, char **argv)
{
    cli_opt_t opts[] = {{"--db", true, false, NULL}, {NULL, false, false, NULL}};
    const char *path;
    int npos;
    int rc = db_life_args("db compact", compact_usage, compact_help, argc, argv, opts, &path, &npos);
    if (rc != CLI_OK) return rc == DB_LIFE_HELPED ? CLI_OK : rc;
    if (npos) return cli_usage_error("db compact", compact_usage, "unexpected argument '%s'", argv[1]);
    if (db_is_redis(path)) {
        cli_error("db compact", "compact works on an LMDB file; a Redis tier has nothing to compact (db gc "
                                "frees what no root reaches)");
        return CLI_EBADINPUT;
    }
    cap_backend_t *db;
    if ((rc = db_open_existing("db compact", path, false, &db)) != CLI_OK) return rc; /* checked, guard armed */
    cap_backend_free(db);
    cap_lmdb_compact_result_t res;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int crc = cap_lmdb_compact(path, &res, &e);
    if (crc != CAP_OK) return db_error("db compact", path, crc, &e);
    printf("compacted %s: %llu -> %llu bytes\n", path, (unsigned long long)res.bytes_before,
           (unsigned long long)res.bytes_after);
    return CLI_OK;
}
