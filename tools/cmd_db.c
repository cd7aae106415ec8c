/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore db stats|get|put|check: the LMDB blob database, named by --db
 * PATH, else $CAPSTORE_DB, else ./capstore.lmdb (cli_db_path), or a Redis
 * tier by a redis:// URI (db_redis.c). See docs/persistence.md. The check
 * is in cmd_db_check.c, the other actions in cmd_db_life.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "capstore/host.h"
#include "capstore/persist.h"
#include "cli.h"
#include "cmd_db.h"
#include "db_guard.h"
#include "db_resolve.h"
#include "db_redis.h"

static const char usage[] =
    "capstore db [--db PATH] stats [--json] | get [--raw] HASH | put FILE... | check | ls | roots | root ... |\n"
    "       gc [ROOT...] | compact | export ROOT... -o FILE | import FILE";

static void help(void)
{
    printf("usage: capstore db [--db PATH] stats [--json]\n"
           "       capstore db [--db PATH] get [--raw] HASH\n"
           "       capstore db [--db PATH] put FILE...\n"
           "       capstore db [--db PATH] check\n"
           "       capstore db [--db PATH] ls [--kind K] [--json]\n"
           "       capstore db [--db PATH] roots\n"
           "       capstore db [--db PATH] root set NAME HASH | root rm NAME\n"
           "       capstore db [--db PATH] gc [--dry-run] [--batch N] [ROOT...]\n"
           "       capstore db [--db PATH] compact\n"
           "       capstore db [--db PATH] export (ROOT... | --all) -o FILE\n"
           "       capstore db [--db PATH] import [--dry-run] [--force] FILE\n\n"
           "The LMDB blob database: blobs keyed by cap hash, stored in the wire form.\n"
           "The database is the file given by --db PATH (before or after the action),\n"
           "else the CAPSTORE_DB environment variable, else %s. It is a single\n"
           "file, with PATH-lock beside it. Other arguments are always hashes or files.\n"
           "A redis://[user@]host:port[,host:port...][/?prefix=P] URI instead names a\n"
           "Redis server or cluster (docs/redis.md; the password comes from\n"
           "CAPSTORE_REDIS_PASSWORD): every action but compact works on it (stats\n"
           "counts its blobs and roots, check re-hashes every blob and walks every\n"
           "root's graph, gc deletes by SCAN and DEL: see db gc --help for its race).\n\n"
           "  stats  blob count, total bytes of the stored blobs, map size, file usage\n"
           "         (--json: one JSON object)\n"
           "  get    the wire bytes stored under HASH on standard output\n"
           "         (never to a terminal); they are decoded and their hash checked first\n"
           "         (--raw: not checked)\n"
           "  put    decode each wire FILE ('-' = standard input), hash it, and store\n"
           "         them all in one transaction; prints each hash, in order. Nothing\n"
           "         is stored if any file is malformed. Entries stored with damaged\n"
           "         bytes are replaced: \"N repaired\" on standard error\n"
           "  check  an integrity check: both meta pages, the file size, every page of\n"
           "         the B-trees, every key (ascending, 32 bytes, found by a lookup),\n"
           "         every value decoded and re-hashed; lists each problem\n"
           "  ls, roots, root   list the blobs; list, set and remove named roots\n"
           "  gc, compact       delete what no root reaches; give free pages back\n"
           "  export, import    carry graphs between databases (docs/archive.md)\n"
           "  (capstore db ACTION --help for each)\n\n"
           "A HASH or ROOT argument is 64 hex digits, a unique prefix of at least 4,\n"
           "or a root name. stats, get, check, ls, roots and export never create the\n"
           "database; put, root set, gc and import do. A damaged\n"
           "database never crashes a db action: it ends with status 1 and a message.\n\n"
           "Exit status: 0 success, 1 bad input, a missing blob or database, a damaged\n"
           "database or a failed check, 2 usage error.\n",
           CLI_DB_DEFAULT);
}

int db_error(const char *sub, const char *path, int rc, const cap_err_t *e)
{
    char msg[512];
    cap_err_t copy = *e;
    if (copy.code == 0) copy.code = rc;
    cap_err_format(&copy, msg, sizeof msg);
    cli_error(sub, "%s: %s", path, msg);
    return CLI_EBADINPUT;
}

int db_open(const char *sub, const char *path, bool create, cap_backend_t **out)
{
    *out = NULL;
    if (db_is_redis(path)) return db_redis_open(sub, path, create, out);
    struct stat sb;
    if (!create && stat(path, &sb) != 0 && errno == ENOENT) {
        cli_error(sub, "no database at %s", path);
        return CLI_EBADINPUT;
    }
    db_guard_arm(path);
    cap_lmdb_options_t o;
    memset(&o, 0, sizeof o);
    o.flags = create ? 0 : CAP_LMDB_READONLY;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = cap_lmdb_open(path, &o, out, &e);
    if (rc != CAP_OK) return db_error(sub, path, rc, &e);
    return CLI_OK;
}

/* stats ---------------------------------------------------------------------------------------- */

/* `s` as a JSON string (quotes included). */
static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static int db_stats(const char *path, bool json)
{
    if (db_is_redis(path)) return db_redis_stats(path, json);
    cap_backend_t *db;
    int rc = db_open("db stats", path, false, &db);
    if (rc != CLI_OK) return rc;
    cap_lmdb_stats_t st;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int crc = cap_lmdb_stats(db, &st, &e);
    cap_backend_free(db);
    if (crc != CAP_OK) return db_error("db stats", path, crc, &e);
    if (json) {
        printf("{\"database\": ");
        json_string(path);
        printf(", \"blobs\": %llu, \"bytes\": %llu, \"map_size\": %llu, \"used_bytes\": %llu, "
               "\"page_size\": %u, \"depth\": %u, \"free_bytes\": %llu, \"roots\": %llu, \"format\": %u}\n",
               (unsigned long long)st.blobs, (unsigned long long)st.bytes, (unsigned long long)st.map_size,
               (unsigned long long)st.used_bytes, (unsigned)st.page_size, (unsigned)st.depth,
               (unsigned long long)st.free_bytes, (unsigned long long)st.roots, (unsigned)st.format);
        return CLI_OK;
    }
    printf("database:   %s\n", path);
    printf("blobs:      %llu\n", (unsigned long long)st.blobs);
    printf("bytes:      %llu\n", (unsigned long long)st.bytes);
    printf("map_size:   %llu\n", (unsigned long long)st.map_size);
    printf("used_bytes: %llu\n", (unsigned long long)st.used_bytes);
    printf("page_size:  %u\n", (unsigned)st.page_size);
    printf("depth:      %u\n", (unsigned)st.depth);
    printf("free_bytes: %llu (free pages LMDB reuses before the file grows; db compact gives them back)\n",
           (unsigned long long)st.free_bytes);
    printf("roots:      %llu\n", (unsigned long long)st.roots);
    printf("format:     %u\n", (unsigned)st.format);
    return CLI_OK;
}

/* get ------------------------------------------------------------------------------------------ */

static int db_get(const char *path, const char *arg, bool raw)
{
    cap_hash_t h;
    cap_backend_t *db;
    int rc = db_open("db get", path, false, &db);
    if (rc != CLI_OK) return rc;
    if ((rc = db_resolve("db get", usage, db, path, arg, &h, NULL)) != CLI_OK) { /* hash, prefix or root */
        cap_backend_free(db);
        return rc;
    }
    char hex[65];
    cli_hex(hex, h.bytes, 32);
    const cap_alloc_t *a = cap_alloc_libc();
    uint8_t *bytes = NULL;
    size_t n = 0;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int crc = cap_backend_read(db, &h, a, &bytes, &n, &e);
    if (crc == CAP_ENOTFOUND) {
        cap_backend_free(db);
        cli_error("db get", "%s: no blob %s", path, hex);
        return CLI_EBADINPUT;
    }
    if (crc == CAP_OK && !raw) {
        /* Check before printing: decode and re-hash. */
        cap_t *c = NULL;
        crc = cap_persist_decode(&h, bytes, n, a, true, &c, &e);
        cap_release(c);
    }
    cap_backend_free(db);
    if (crc != CAP_OK) {
        if (bytes) free(bytes);
        return db_error("db get", path, crc, &e);
    }
    size_t w = n ? fwrite(bytes, 1, n, stdout) : 0;
    free(bytes);
    if (w != n || fflush(stdout) != 0) {
        int ec = errno;
        if (ec != EPIPE) cli_error("db get", "error writing standard output: %s", strerror(ec));
        clearerr(stdout); /* said once: the check at exit need not say it again */
        return CLI_EBADINPUT;
    }
    return CLI_OK;
}

/* put ------------------------------------------------------------------------------------------ */

static int db_put(const char *path, char **files, int nfiles)
{
    cap_t **caps = calloc((size_t)nfiles, sizeof *caps);
    cap_hash_t *hashes = calloc((size_t)nfiles, sizeof *hashes);
    if (!caps || !hashes) {
        free(caps);
        free(hashes);
        cli_error("db put", "out of memory");
        return CLI_EBADINPUT;
    }
    int status = CLI_OK;
    int stdin_uses = 0;
    db_progress_t pr;
    db_progress_init(&pr);
    for (int i = 0; i < nfiles; i++) {
        if (strcmp(files[i], "-") == 0 && stdin_uses++) {
            cli_error("db put", "standard input ('-') given twice");
            status = CLI_EBADINPUT;
            continue;
        }
        if (cli_decode_file("db put", files[i], &caps[i], NULL) != CLI_OK) {
            caps[i] = NULL;
            status = CLI_EBADINPUT;
            continue;
        }
        int hrc = cap_hash(caps[i], &hashes[i]);
        if (hrc != CAP_OK) {
            cli_error("db put", "%s: %s", cli_display_name(files[i]), cap_strerror(hrc));
            status = CLI_EBADINPUT;
        }
        db_progress_tick(&pr, "decoded", (uint64_t)i + 1, (uint64_t)nfiles);
    }
    db_progress_end(&pr);
    if (status == CLI_OK) {
        cap_backend_t *db;
        status = db_open("db put", path, true, &db);
        if (status == CLI_OK) {
            cap_err_t e;
            memset(&e, 0, sizeof e);
            cap_backend_write_result_t res = {0, 0};
            int rc = cap_persist_put_many(db, caps, hashes, (size_t)nfiles, cap_alloc_libc(), &res, &e);
            cap_backend_free(db);
            if (rc != CAP_OK) {
                status = db_error("db put", path, rc, &e);
            } else {
                for (int i = 0; i < nfiles; i++) {
                    char hex[65];
                    cli_hex(hex, hashes[i].bytes, 32);
                    printf("%s\n", hex);
                }
                /* Entries that held damaged bytes: standard output stays one hash a line. */
                if (res.repaired)
                    fprintf(stderr, "capstore db put: %s: %zu repaired (damaged bytes replaced)\n", path,
                            res.repaired);
            }
        }
    } else {
        cli_error("db put", "nothing stored");
    }
    for (int i = 0; i < nfiles; i++) cap_release(caps[i]);
    free(caps);
    free(hashes);
    return status;
}

/* dispatch ------------------------------------------------------------------------------------- */

/* The action: the first argument that is neither an option nor the value of
 * --db. Its index, or 0 when there is none. */
static int find_action(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--db") == 0) {
            i++;
            continue;
        }
        if (strcmp(argv[i], "--") == 0) return i + 1 < argc ? i + 1 : 0;
        if (argv[i][0] != '-' || strcmp(argv[i], "-") == 0) return i;
    }
    return 0;
}

int cmd_db(int argc, char **argv)
{
    int ai = find_action(argc, argv);
    if (ai == 0) {
        for (int i = 1; i < argc; i++)
            if (cli_is_help(argv[i])) {
                help();
                return CLI_OK;
            }
        return cli_usage_error("db", usage, "missing action (stats, get, put, check, ls, roots, root, gc, compact, "
                                            "export or import)");
    }
    const char *action = argv[ai];
    char sub[32];
    snprintf(sub, sizeof sub, "db %s", action);
    bool is_stats = strcmp(action, "stats") == 0, is_get = strcmp(action, "get") == 0;
    bool is_put = strcmp(action, "put") == 0, is_check = strcmp(action, "check") == 0;
    bool is_life = db_life_action(action); /* ls, roots, root, gc, compact, export, import */
    if (!is_stats && !is_get && !is_put && !is_check && !is_life)
        return cli_usage_error("db", usage, "unknown action '%s'", action);
    /* Drop the action; the options may stand before or after it. */
    for (int i = ai; i + 1 < argc; i++) argv[i] = argv[i + 1];
    argc--;
    if (is_life) return db_life_run(action, argc, argv);

    cli_opt_t opts[] = {{"--db", true, false, NULL},
                        {"--raw", false, false, NULL},
                        {"--json", false, false, NULL},
                        {NULL, false, false, NULL}};
    bool want_help;
    int npos;
    int rc = cli_parse_args(sub, usage, argc, argv, opts, &want_help, &npos);
    if (rc != CLI_OK) return rc;
    if (want_help) {
        help();
        return CLI_OK;
    }
    char **pos = argv + 1; /* cli_parse_args moved the positionals to argv[1..] */
    const char *db = cli_db_path(opts[0].value);
    if (opts[1].seen && !is_get) return cli_usage_error(sub, usage, "--raw applies to get only");
    if (opts[2].seen && !is_stats) return cli_usage_error(sub, usage, "--json applies to stats only");
    if (!*db) return cli_usage_error(sub, usage, "--db wants a file name");

    if (is_stats || is_check) {
        if (npos > 0)
            return cli_usage_error(sub, usage, "unexpected argument '%s' (the database is named by --db PATH)",
                                   pos[0]);
        return is_stats ? db_stats(db, opts[2].seen) : db_check(db);
    }
    if (is_get) {
        if (npos == 0) return cli_usage_error(sub, usage, "missing HASH (64 hex digits)");
        if (!db_nameable(pos[0]))
            return cli_usage_error(sub, usage, "'%s' is not a HASH (64 hex digits, a prefix or a root name)", pos[0]);
        if (npos > 1) return cli_usage_error(sub, usage, "too many arguments (the database is named by --db PATH)");
        if (isatty(STDOUT_FILENO))
            return cli_usage_error(sub, usage,
                                   "refusing to write binary wire bytes to a terminal (redirect standard output)");
        return db_get(db, pos[0], opts[1].seen);
    }
    if (npos == 0) return cli_usage_error(sub, usage, "missing FILE");
    return db_put(db, pos, npos);
}
