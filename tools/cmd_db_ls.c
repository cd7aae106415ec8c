/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore db ls | roots | root set NAME HASH | root rm NAME: what a
 * database holds, and its named roots. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_db.h"
#include "cmd_db_life.h"
#include "db_resolve.h"

const char *db_wire_kind(const uint8_t *bytes, size_t n)
{
    if (n == 0 || bytes[0] > CAP_KIND_TYPE) return "unknown";
    return cli_kind_name((cap_kind_t)bytes[0]);
}

/* ls ------------------------------------------------------------------------------------------------- */

static const char ls_usage[] = "capstore db [--db PATH] ls [--kind KIND] [--json]";

static void ls_help(void)
{
    printf("usage: %s\n\n"
           "One line per blob of the database (an LMDB file or a redis:// tier), sorted\n"
           "by hash:\n\n"
           "  <hash: 64 hex digits> <kind> <size of the wire form in bytes>\n\n"
           "The kind is instance, image, data, cnode or type, read from the wire form's\n"
           "first byte (\"unknown\" for bytes that are no cap); nothing is decoded or\n"
           "verified (db check does that).\n\n"
           "options:\n"
           "  --kind KIND  only the blobs of that kind\n"
           "  --json       a JSON array of {\"hash\", \"kind\", \"bytes\"} objects, one a line\n\n"
           "Progress (count, rate, bytes) on standard error when it is a terminal and\n"
           "standard output is not. Exit status: 0, 1 (no database, a damaged one), 2 usage.\n",
           ls_usage);
}

/* A blob as ls prints it, kept where the backend's order is not the hash's. */
typedef struct ls_line {
    cap_hash_t h;
    const char *kind;
    size_t n;
} ls_line_t;

typedef struct ls_state {
    const char *kind;
    bool json, first;
    uint64_t n, bytes;
    db_progress_t pr;
    /* Redis gives blobs in SCAN order: listed here, sorted, then printed. */
    bool keep;
    ls_line_t *lines;
    size_t nlines, room;
} ls_state_t;

static int ls_print(ls_state_t *st, const cap_hash_t *h, const char *kind, size_t n)
{
    char hex[65];
    cli_hex(hex, h->bytes, 32);
    if (st->json) {
        printf("%s{\"hash\": \"%s\", \"kind\": \"%s\", \"bytes\": %zu}", st->first ? "[\n  " : ",\n  ", hex, kind, n);
        st->first = false;
    } else {
        printf("%s %s %zu\n", hex, kind, n);
    }
    return ferror(stdout) ? 1 : 0; /* a reader gone: stop */
}

static int ls_one(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    ls_state_t *st = arg;
    const char *kind = db_wire_kind(bytes, n);
    st->n++;
    st->bytes += n;
    db_progress_bytes(&st->pr, "listed", st->n, st->bytes);
    if (st->kind && strcmp(st->kind, kind) != 0) return 0;
    if (!st->keep) return ls_print(st, h, kind, n);
    if (st->nlines == st->room) {
        size_t room = st->room ? st->room * 2 : 1024;
        ls_line_t *v = realloc(st->lines, room * sizeof *v);
        if (!v) return CAP_ENOMEM;
        st->lines = v;
        st->room = room;
    }
    st->lines[st->nlines++] = (ls_line_t){*h, kind, n};
    return 0;
}

static int cmp_line(const void *a, const void *b)
{
    return memcmp(((const ls_line_t *)a)->h.bytes, ((const ls_line_t *)b)->h.bytes, 32);
}

/* The kept lines in hash order, each once (a SCAN may give a key twice). */
static int ls_flush(ls_state_t *st)
{
    if (st->nlines) qsort(st->lines, st->nlines, sizeof *st->lines, cmp_line);
    for (size_t i = 0; i < st->nlines; i++) {
        if (i && memcmp(st->lines[i].h.bytes, st->lines[i - 1].h.bytes, 32) == 0) continue;
        if (ls_print(st, &st->lines[i].h, st->lines[i].kind, st->lines[i].n)) return 1;
    }
    return 0;
}

int db_ls(int argc, char **argv)
{
    cli_opt_t opts[] = {{"--db", true, false, NULL},
                        {"--kind", true, false, NULL},
                        {"--json", false, false, NULL},
                        {NULL, false, false, NULL}};
    const char *path;
    int npos;
    int rc = db_life_args("db ls", ls_usage, ls_help, argc, argv, opts, &path, &npos);
    if (rc != CLI_OK) return rc == DB_LIFE_HELPED ? CLI_OK : rc;
    if (npos) return cli_usage_error("db ls", ls_usage, "unexpected argument '%s'", argv[1]);
    const char *kind = opts[1].value;
    if (kind) {
        bool known = false;
        for (int k = CAP_KIND_INSTANCE; k <= CAP_KIND_TYPE; k++) known |= strcmp(kind, cli_kind_name((cap_kind_t)k)) == 0;
        if (!known)
            return cli_usage_error("db ls", ls_usage, "unknown kind '%s' (instance, image, data, cnode or type)", kind);
    }
    cap_backend_t *db;
    if ((rc = db_open_existing("db ls", path, false, &db)) != CLI_OK) return rc;
    ls_state_t st;
    memset(&st, 0, sizeof st);
    st.kind = kind;
    st.json = opts[2].seen;
    st.first = true;
    st.keep = !cap_backend_is_lmdb(db); /* LMDB iterates in key order already */
    db_progress_init_data(&st.pr);
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int crc = cap_backend_iterate(db, ls_one, &st, &e);
    db_progress_end(&st.pr);
    cap_backend_free(db);
    if (crc == CAP_ENOMEM && e.code != CAP_ENOMEM) cap_err_set(&e, CAP_ENOMEM, "out of memory");
    if (crc == CAP_OK) crc = ls_flush(&st);
    free(st.lines);
    if (crc != CAP_OK && crc != 1) return db_error("db ls", path, crc, &e);
    if (st.json) printf(st.first ? "[]\n" : "\n]\n");
    return CLI_OK;
}

/* roots ---------------------------------------------------------------------------------------------- */

static const char roots_usage[] = "capstore db [--db PATH] roots";

static void roots_help(void)
{
    printf("usage: %s\n\n"
           "One line per named root, sorted by name:\n\n"
           "  <name> <hash: 64 hex digits>\n\n"
           "A root keeps its graph from db gc. Set and remove them with db root set and\n"
           "db root rm. Exit status: 0, 1 (no database, a damaged one), 2 usage.\n",
           roots_usage);
}

static int print_root(void *arg, const char *name, const cap_hash_t *h)
{
    (void)arg;
    char hex[65];
    cli_hex(hex, h->bytes, 32);
    printf("%s %s\n", name, hex);
    return ferror(stdout) ? 1 : 0;
}

int db_roots(int argc, char **argv)
{
    cli_opt_t opts[] = {{"--db", true, false, NULL}, {NULL, false, false, NULL}};
    const char *path;
    int npos;
    int rc = db_life_args("db roots", roots_usage, roots_help, argc, argv, opts, &path, &npos);
    if (rc != CLI_OK) return rc == DB_LIFE_HELPED ? CLI_OK : rc;
    if (npos) return cli_usage_error("db roots", roots_usage, "unexpected argument '%s'", argv[1]);
    cap_backend_t *db;
    if ((rc = db_open_existing("db roots", path, false, &db)) != CLI_OK) return rc;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int crc = cap_backend_root_list(db, print_root, NULL, &e);
    cap_backend_free(db);
    if (crc != CAP_OK && crc != 1) return db_error("db roots", path, crc, &e);
    return CLI_OK;
}

/* root set / rm --------------------------------------------------------------------------------------- */

static const char root_usage[] = "capstore db [--db PATH] root set NAME HASH | root rm NAME";

static void root_help(void)
{
    printf("usage: %s\n\n"
           "  set NAME HASH  name the cap HASH (64 hex digits, a unique prefix of at least\n"
           "                 4, or another root's name); the root is only set when the\n"
           "                 cap's whole graph is stored (else status 1, naming a hash\n"
           "                 that is missing); an existing NAME is moved\n"
           "  rm NAME        remove the root (its graph stays until db gc)\n\n"
           "NAME: 1-255 characters of [A-Za-z0-9._/-], not all hex digits.\n"
           "Exit status: 0, 1 (no database, no such root, an incomplete graph), 2 usage.\n",
           root_usage);
}

int db_root(int argc, char **argv)
{
    cli_opt_t opts[] = {{"--db", true, false, NULL}, {NULL, false, false, NULL}};
    const char *path;
    int npos;
    int rc = db_life_args("db root", root_usage, root_help, argc, argv, opts, &path, &npos);
    if (rc != CLI_OK) return rc == DB_LIFE_HELPED ? CLI_OK : rc;
    char **pos = argv + 1;
    if (npos == 0) return cli_usage_error("db root", root_usage, "missing set or rm");
    bool set = strcmp(pos[0], "set") == 0, rm = strcmp(pos[0], "rm") == 0;
    if (!set && !rm) return cli_usage_error("db root", root_usage, "unknown '%s' (set or rm)", pos[0]);
    const char *sub = set ? "db root set" : "db root rm";
    int want = set ? 3 : 2;
    if (npos < want) return cli_usage_error(sub, root_usage, set ? "missing NAME or HASH" : "missing NAME");
    if (npos > want) return cli_usage_error(sub, root_usage, "unexpected argument '%s'", pos[want]);
    const char *name = pos[1];
    if (!cap_root_name_valid(name))
        return cli_usage_error(sub, root_usage,
                               "'%s' is not a root name (1-255 of [A-Za-z0-9._/-], not all hex digits)", name);
    if (set && !db_nameable(pos[2]))
        return cli_usage_error(sub, root_usage, "'%s' is not a HASH (64 hex digits, a prefix or a root name)", pos[2]);
    cap_backend_t *db;
    if ((rc = db_open_existing(sub, path, true, &db)) != CLI_OK) return rc;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int crc;
    if (set) {
        cap_hash_t h;
        if ((rc = db_resolve(sub, root_usage, db, path, pos[2], &h, NULL)) != CLI_OK) {
            cap_backend_free(db);
            return rc;
        }
        crc = cap_backend_root_set(db, name, &h, &e);
    } else {
        crc = cap_backend_root_delete(db, name, &e);
    }
    cap_backend_free(db);
    if (crc == CAP_ENOTFOUND) {
        cli_error(sub, "%s: no root named %s", path, name);
        return CLI_EBADINPUT;
    }
    if (crc != CAP_OK) return db_error(sub, path, crc, &e);
    return CLI_OK;
}
