/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore db stats|get|put|check: the LMDB blob database (default
 * ./capstore.lmdb). See docs/persistence.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capstore/host.h"
#include "capstore/persist.h"
#include "cli.h"

#define DB_DEFAULT "./capstore.lmdb"

static const char usage[] = "capstore db stats [DB] | get [DB] HASH | put [DB] FILE... | check [DB]";

static void help(void)
{
    printf("usage: capstore db stats [DB]\n"
           "       capstore db get [--raw] [DB] HASH\n"
           "       capstore db put [DB] FILE...\n"
           "       capstore db check [DB]\n\n"
           "The LMDB blob database: blobs keyed by cap hash, stored in the wire form.\n"
           "DB is the database file (default %s; --db PATH names it explicitly);\n"
           "it is a single file, with DB-lock beside it.\n\n"
           "  stats  blob count, total bytes of the stored blobs, map size, file usage\n"
           "  get    the wire bytes stored under HASH (64 hex digits) on standard output;\n"
           "         they are decoded and their hash checked first (--raw: not checked)\n"
           "  put    decode each wire FILE ('-' = standard input), hash it, and store\n"
           "         them all in one transaction; prints each hash, in order. Nothing\n"
           "         is stored if any file is malformed\n"
           "  check  decode and re-hash every blob; lists each bad entry\n\n"
           "Telling DB from the other arguments: for get, an argument of 64 hex digits\n"
           "is the HASH and another one is DB; for put, the first of two or more\n"
           "arguments is DB when it ends in \".lmdb\" or is an existing LMDB file.\n"
           "stats, get and check never create the database; put does.\n\n"
           "Exit status: 0 success, 1 bad input, a missing blob or database, or a\n"
           "failed check, 2 usage error.\n",
           DB_DEFAULT);
}

static int db_error(const char *sub, const char *path, int rc, const cap_err_t *e)
{
    char msg[256];
    cap_err_t copy = *e;
    if (copy.code == 0) copy.code = rc;
    cap_err_format(&copy, msg, sizeof msg);
    cli_error(sub, "%s: %s", path, msg);
    return CLI_EBADINPUT;
}

static int open_db(const char *sub, const char *path, bool create, cap_backend_t **out)
{
    cap_lmdb_options_t o;
    memset(&o, 0, sizeof o);
    o.flags = create ? 0 : CAP_LMDB_READONLY;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = cap_lmdb_open(path, &o, out, &e);
    if (rc != CAP_OK) return db_error(sub, path, rc, &e);
    return CLI_OK;
}

static bool is_hex64(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
    }
    return i == 64;
}

static void parse_hex64(const char *s, cap_hash_t *h)
{
    for (int i = 0; i < 32; i++) {
        unsigned v = 0;
        for (int j = 0; j < 2; j++) {
            char c = s[2 * i + j];
            unsigned d = (c >= '0' && c <= '9') ? (unsigned)(c - '0')
                         : (c >= 'a' && c <= 'f') ? (unsigned)(c - 'a' + 10)
                                                  : (unsigned)(c - 'A' + 10);
            v = v * 16 + d;
        }
        h->bytes[i] = (uint8_t)v;
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* An existing file that starts with an LMDB meta page (magic 0xBEEFC0DE at
 * byte 16, native endianness). */
static bool looks_like_lmdb(const char *path)
{
    if (strcmp(path, "-") == 0) return false;
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    uint8_t head[20];
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    if (got < sizeof head) return false;
    uint32_t magic;
    memcpy(&magic, head + 16, 4);
    return magic == 0xBEEFC0DEu;
}

/* Progress on stderr (only when it is a terminal), at most once a second. */
typedef struct progress {
    bool on;
    time_t last;
} progress_t;

static void progress_init(progress_t *p)
{
    p->on = isatty(2);
    p->last = time(NULL);
}

static void progress_tick(progress_t *p, const char *what, uint64_t done, uint64_t total)
{
    if (!p->on) return;
    time_t now = time(NULL);
    if (now == p->last) return;
    p->last = now;
    if (total)
        fprintf(stderr, "\r%s %llu/%llu", what, (unsigned long long)done, (unsigned long long)total);
    else
        fprintf(stderr, "\r%s %llu", what, (unsigned long long)done);
}

static void progress_end(progress_t *p)
{
    if (p->on && p->last) fprintf(stderr, "\r\033[K");
}

/* stats ---------------------------------------------------------------------------------------- */

static int db_stats(const char *path)
{
    cap_backend_t *db;
    int rc = open_db("db stats", path, false, &db);
    if (rc != CLI_OK) return rc;
    cap_lmdb_stats_t st;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int crc = cap_lmdb_stats(db, &st, &e);
    cap_backend_free(db);
    if (crc != CAP_OK) return db_error("db stats", path, crc, &e);
    printf("database:   %s\n", path);
    printf("blobs:      %llu\n", (unsigned long long)st.blobs);
    printf("bytes:      %llu\n", (unsigned long long)st.bytes);
    printf("map_size:   %llu\n", (unsigned long long)st.map_size);
    printf("used_bytes: %llu\n", (unsigned long long)st.used_bytes);
    printf("page_size:  %u\n", (unsigned)st.page_size);
    printf("depth:      %u\n", (unsigned)st.depth);
    return CLI_OK;
}

/* get ------------------------------------------------------------------------------------------ */

static int db_get(const char *path, const char *hex, bool raw)
{
    cap_hash_t h;
    parse_hex64(hex, &h);
    cap_backend_t *db;
    int rc = open_db("db get", path, false, &db);
    if (rc != CLI_OK) return rc;
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
        cli_error("db get", "writing standard output failed");
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
    progress_t pr;
    progress_init(&pr);
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
        progress_tick(&pr, "decoded", (uint64_t)i + 1, (uint64_t)nfiles);
    }
    progress_end(&pr);
    if (status == CLI_OK) {
        cap_backend_t *db;
        status = open_db("db put", path, true, &db);
        if (status == CLI_OK) {
            cap_err_t e;
            memset(&e, 0, sizeof e);
            int rc = cap_persist_put_batch(db, caps, hashes, (size_t)nfiles, cap_alloc_libc(), NULL, &e);
            cap_backend_free(db);
            if (rc != CAP_OK) {
                status = db_error("db put", path, rc, &e);
            } else {
                for (int i = 0; i < nfiles; i++) {
                    char hex[65];
                    cli_hex(hex, hashes[i].bytes, 32);
                    printf("%s\n", hex);
                }
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

/* check ---------------------------------------------------------------------------------------- */

typedef struct check_state {
    uint64_t checked, bad;
    progress_t pr;
} check_state_t;

static int check_one(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    check_state_t *cs = arg;
    cs->checked++;
    char hex[65];
    cap_err_t e;
    memset(&e, 0, sizeof e);
    cap_t *c = NULL;
    int rc = cap_wire_decode(bytes, n, cap_alloc_libc(), &c, &e);
    if (rc == CAP_OK) {
        cap_hash_t got;
        rc = cap_hash(c, &got);
        if (rc != CAP_OK) {
            cap_backend_fail(&e, rc, "cannot hash");
        } else if (memcmp(got.bytes, h->bytes, 32) != 0) {
            char ghex[65];
            cli_hex(ghex, got.bytes, 32);
            cli_hex(hex, h->bytes, 32);
            printf("bad %s: bytes hash to %s\n", hex, ghex);
            cs->bad++;
            rc = CAP_OK;
            cap_release(c);
            progress_tick(&cs->pr, "checked", cs->checked, 0);
            return 0;
        }
        cap_release(c);
    }
    if (rc != CAP_OK) {
        char msg[256];
        if (e.code == 0) e.code = rc;
        cap_err_format(&e, msg, sizeof msg);
        cli_hex(hex, h->bytes, 32);
        printf("bad %s: %s\n", hex, msg);
        cs->bad++;
    }
    progress_tick(&cs->pr, "checked", cs->checked, 0);
    return 0;
}

static int db_check(const char *path)
{
    cap_backend_t *db;
    int rc = open_db("db check", path, false, &db);
    if (rc != CLI_OK) return rc;
    check_state_t cs;
    memset(&cs, 0, sizeof cs);
    progress_init(&cs.pr);
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int crc = cap_backend_iterate(db, check_one, &cs, &e);
    progress_end(&cs.pr);
    cap_backend_free(db);
    if (crc != CAP_OK) return db_error("db check", path, crc, &e);
    printf("%llu blobs checked, %llu bad\n", (unsigned long long)cs.checked, (unsigned long long)cs.bad);
    return cs.bad ? CLI_EBADINPUT : CLI_OK;
}

/* dispatch ------------------------------------------------------------------------------------- */

int cmd_db(int argc, char **argv)
{
    if (argc < 2) return cli_usage_error("db", usage, "missing action (stats, get, put or check)");
    if (cli_is_help(argv[1])) {
        help();
        return CLI_OK;
    }
    const char *action = argv[1];
    char sub[32];
    snprintf(sub, sizeof sub, "db %s", action);
    bool is_stats = strcmp(action, "stats") == 0, is_get = strcmp(action, "get") == 0;
    bool is_put = strcmp(action, "put") == 0, is_check = strcmp(action, "check") == 0;
    if (!is_stats && !is_get && !is_put && !is_check)
        return cli_usage_error("db", usage, "unknown action '%s'", action);

    cli_opt_t opts[] = {{"--db", true, false, NULL}, {"--raw", false, false, NULL}, {NULL, false, false, NULL}};
    bool want_help;
    int npos;
    int rc = cli_parse_args(sub, usage, argc - 1, argv + 1, opts, &want_help, &npos);
    if (rc != CLI_OK) return rc;
    if (want_help) {
        help();
        return CLI_OK;
    }
    char **pos = argv + 2; /* cli_parse_args moved the positionals to argv[1 + 1 ..] */
    const char *db = opts[0].value;
    if (opts[1].seen && !is_get) return cli_usage_error(sub, usage, "--raw applies to get only");

    if (is_stats || is_check) {
        if (npos > 1 || (npos == 1 && db)) return cli_usage_error(sub, usage, "too many arguments");
        if (npos == 1) db = pos[0];
        if (!db) db = DB_DEFAULT;
        return is_stats ? db_stats(db) : db_check(db);
    }
    if (is_get) {
        const char *hash = NULL;
        for (int i = 0; i < npos; i++) {
            if (is_hex64(pos[i]) && !hash) {
                hash = pos[i];
            } else if (!db) {
                db = pos[i];
            } else if (!hash) { /* neither the DB (already named) nor a HASH */
                return cli_usage_error(sub, usage, "'%s' is not a HASH (64 hex digits)", pos[i]);
            } else {
                return cli_usage_error(sub, usage, "too many arguments");
            }
        }
        if (!hash) return cli_usage_error(sub, usage, "missing HASH (64 hex digits)");
        return db_get(db ? db : DB_DEFAULT, hash, opts[1].seen);
    }
    /* put */
    if (npos >= 2 && !db && (ends_with(pos[0], ".lmdb") || looks_like_lmdb(pos[0]))) {
        db = pos[0];
        pos++;
        npos--;
    }
    if (npos == 0) return cli_usage_error(sub, usage, "missing FILE");
    return db_put(db ? db : DB_DEFAULT, pos, npos);
}
