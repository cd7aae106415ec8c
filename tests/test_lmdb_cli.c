/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* `capstore db` (tools/cmd_db.c, cmd_db_check.c), driven in-process:
 * stats / get / put / check on a temporary database, exit statuses (0, 1
 * bad input, 2 usage), one rule naming the database (--db before or after
 * the action, else CAPSTORE_DB, else ./capstore.lmdb; a positional argument
 * is never taken for it), "no database at PATH", stats --json, get refusing
 * a terminal, put from standard input, put of a malformed file (nothing
 * stored), get of a missing hash, check finding entries whose bytes do not
 * match their key, and a put repairing such an entry ("1 repaired"). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The command's sources, compiled into this test. */
#include "../tools/cmd_common.c"
#include "../tools/cmd_db.c"
#include "../tools/cmd_db_check.c"
#include "../tools/db_guard.c"
#include "../tools/cmd_db_life.inc"

#include "capstore/capstore.h"
#include "check.h"
#include "lmdb_raw.h"

static char dir[256];
static char out_path[320], err_path[320];

/* Run cmd_db with stdout and stderr captured into files; returns its status. */
static int run(const char *stdin_file, const char *a0, ...)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)"db";
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && argc < 15; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2), si = -1;
    int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fo, 1);
    dup2(fe, 2);
    close(fo);
    close(fe);
    if (stdin_file) {
        si = dup(0);
        int fi = open(stdin_file, O_RDONLY);
        dup2(fi, 0);
        close(fi);
        clearerr(stdin);
    }
    int rc = cmd_db(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    if (si >= 0) {
        dup2(si, 0);
        close(si);
        clearerr(stdin);
    }
    return rc;
}

/* Run cmd_db with standard output on a pseudo-terminal (stderr captured). */
static int run_on_tty(const char *a0, ...)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)"db";
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && argc < 15; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) return -1;
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    if (slave < 0) return -1;
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(slave, 1);
    dup2(fe, 2);
    close(fe);
    int rc = cmd_db(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    close(slave);
    close(master);
    return rc;
}

static size_t slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return n;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(p, 1, n, f);
    fclose(f);
}

static uint64_t rng = 0xA4093822299F31D0ull;
static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

/* A random CNode's wire form into `path`; its hash as hex into hex[65]. */
static size_t make_wire_file(const char *path, char hex[65], uint8_t *wire_out, size_t cap)
{
    cap_t *c = NULL;
    cap_cnode_new(&c, cap_alloc_libc(), 4);
    for (int i = 0; i < 5; i++) {
        cap_hash_t h;
        for (int j = 0; j < 32; j++) h.bytes[j] = (uint8_t)rnd();
        h.bytes[0] |= 1;
        cap_target_t t = cap_target_of_hash(&h);
        cap_cnode_set(c, (uint32_t)(rnd() % 16), &t);
    }
    size_t n = 0;
    cap_wire_encode(c, wire_out, cap, &n);
    write_file(path, wire_out, n);
    cli_hash_hex(c, hex);
    cap_release(c);
    return n;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/capstore-test-dbcli-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    snprintf(err_path, sizeof err_path, "%s/err", dir);
    char db[400], f1[400], f2[400], f3[400], bad[400], buf[8192];
    snprintf(db, sizeof db, "%s/t.lmdb", dir);
    snprintf(f1, sizeof f1, "%s/one.cap", dir);
    snprintf(f2, sizeof f2, "%s/two.cap", dir);
    snprintf(f3, sizeof f3, "%s/three.cap", dir);
    snprintf(bad, sizeof bad, "%s/bad.cap", dir);
    char h1[65], h2[65], h3[65];
    uint8_t w1[1024], w2[1024], w3[1024];
    size_t n1 = make_wire_file(f1, h1, w1, sizeof w1);
    size_t n2 = make_wire_file(f2, h2, w2, sizeof w2);
    size_t n3 = make_wire_file(f3, h3, w3, sizeof w3);
    uint8_t junk[5] = {3, 17, 0, 0, 0};
    write_file(bad, junk, sizeof junk);

    /* Usage errors. */
    CHECK_EQ_INT(run(NULL, NULL), 2);
    CHECK_EQ_INT(run(NULL, "frobnicate", NULL), 2);
    CHECK_EQ_INT(run(NULL, "get", "--db", db, NULL), 2);  /* no HASH */
    CHECK_EQ_INT(run(NULL, "put", NULL), 2);              /* no FILE */
    CHECK_EQ_INT(run(NULL, "get", "--db", db, "12a", NULL), 2); /* a prefix under 4 digits is named */
    slurp(err_path, buf, sizeof buf);
    CHECK(strstr(buf, "'12a' is not a HASH") != NULL);
    CHECK_EQ_INT(run(NULL, "stats", "--bogus", NULL), 2);
    CHECK_EQ_INT(run(NULL, "stats", "--raw", "--db", db, NULL), 2);
    CHECK_EQ_INT(run(NULL, "check", "--json", "--db", db, NULL), 2);
    CHECK_EQ_INT(run(NULL, "--help", NULL), 0);
    slurp(out_path, buf, sizeof buf);
    CHECK(strstr(buf, "capstore db [--db PATH] check") != NULL);
    CHECK_EQ_INT(run(NULL, "get", "--help", NULL), 0);
    CHECK_EQ_INT(run(NULL, "--db", db, "--help", NULL), 0);

    /* A positional argument is never the database: no guessing from a
     * suffix or from the file's content. */
    CHECK_EQ_INT(run(NULL, "stats", db, NULL), 2);
    slurp(err_path, buf, sizeof buf);
    CHECK(strstr(buf, "unexpected argument") != NULL && strstr(buf, "--db PATH") != NULL);
    CHECK_EQ_INT(run(NULL, "check", db, NULL), 2);

    /* Read-only actions never create the database, and say so plainly. */
    CHECK_EQ_INT(run(NULL, "stats", "--db", db, NULL), 1);
    slurp(err_path, buf, sizeof buf);
    char expect[600];
    snprintf(expect, sizeof expect, "no database at %s", db);
    CHECK(strstr(buf, expect) != NULL);
    CHECK_EQ_INT(run(NULL, "--db", db, "check", NULL), 1);
    slurp(err_path, buf, sizeof buf);
    CHECK(strstr(buf, expect) != NULL);
    CHECK_EQ_INT(run(NULL, "get", "--db", db, h1, NULL), 1);
    slurp(err_path, buf, sizeof buf);
    CHECK(strstr(buf, expect) != NULL);
    struct stat sb;
    CHECK(stat(db, &sb) != 0);

    /* put: one transaction, hashes in order; --db before the action. */
    CHECK_EQ_INT(run(NULL, "--db", db, "put", f1, f2, NULL), 0);
    slurp(out_path, buf, sizeof buf);
    snprintf(expect, sizeof expect, "%s\n%s\n", h1, h2);
    CHECK(strcmp(buf, expect) == 0);
    /* A malformed file: nothing stored, status 1, the rule named. */
    CHECK_EQ_INT(run(NULL, "put", "--db", db, f3, bad, NULL), 1);
    slurp(err_path, buf, sizeof buf);
    CHECK(strstr(buf, "bad.cap") != NULL);
    CHECK(strstr(buf, "nothing stored") != NULL);
    /* From standard input, --db after the action. */
    CHECK_EQ_INT(run(f3, "put", "--db", db, "-", NULL), 0);
    slurp(out_path, buf, sizeof buf);
    CHECK(strncmp(buf, h3, 64) == 0);

    /* stats, and --json */
    CHECK_EQ_INT(run(NULL, "--db", db, "stats", NULL), 0);
    slurp(out_path, buf, sizeof buf);
    CHECK(strstr(buf, "blobs:      3\n") != NULL);
    char line[64];
    snprintf(line, sizeof line, "bytes:      %zu\n", n1 + n2 + n3);
    CHECK(strstr(buf, line) != NULL);
    CHECK(strstr(buf, "map_size:") != NULL);
    CHECK_EQ_INT(run(NULL, "stats", "--json", "--db", db, NULL), 0);
    slurp(out_path, buf, sizeof buf);
    snprintf(expect, sizeof expect, "{\"database\": \"%s\", \"blobs\": 3, \"bytes\": %zu, \"map_size\": ", db,
             n1 + n2 + n3);
    CHECK(strncmp(buf, expect, strlen(expect)) == 0);
    CHECK(strstr(buf, "\"page_size\": ") != NULL && strstr(buf, "\"depth\": 1, ") != NULL && strstr(buf, "\"format\": 2}\n") != NULL);

    /* get, with --db on either side. */
    CHECK_EQ_INT(run(NULL, "get", "--db", db, h2, NULL), 0);
    size_t got = slurp(out_path, buf, sizeof buf);
    CHECK(got == n2 && memcmp(buf, w2, n2) == 0);
    CHECK_EQ_INT(run(NULL, "--db", db, "get", h1, NULL), 0);
    got = slurp(out_path, buf, sizeof buf);
    CHECK(got == n1 && memcmp(buf, w1, n1) == 0);
    char missing[65];
    memset(missing, 'a', 64);
    missing[64] = 0;
    CHECK_EQ_INT(run(NULL, "get", "--db", db, missing, NULL), 1);
    slurp(err_path, buf, sizeof buf);
    CHECK(strstr(buf, "no blob") != NULL);
    CHECK_EQ_INT(run(NULL, "get", "--db", db, h1, h2, NULL), 2); /* one HASH */

    /* The environment names the database when --db does not. */
    setenv("CAPSTORE_DB", db, 1);
    CHECK_EQ_INT(run(NULL, "get", h2, NULL), 0);
    got = slurp(out_path, buf, sizeof buf);
    CHECK(got == n2 && memcmp(buf, w2, n2) == 0);
    char other[400];
    snprintf(other, sizeof other, "%s/other.lmdb", dir);
    CHECK_EQ_INT(run(NULL, "get", "--db", other, h2, NULL), 1); /* --db wins */
    unsetenv("CAPSTORE_DB");

    /* get never writes binary to a terminal. */
    CHECK_EQ_INT(run_on_tty("get", "--db", db, h2, NULL), 2);
    slurp(err_path, buf, sizeof buf);
    CHECK(strstr(buf, "terminal") != NULL);

    /* check: all good. */
    CHECK_EQ_INT(run(NULL, "check", "--db", db, NULL), 0);
    slurp(out_path, buf, sizeof buf);
    CHECK(strstr(buf, "3 blobs checked, 0 bad") != NULL);
    CHECK(strstr(buf, "(in use)") != NULL);
    CHECK(strstr(buf, "problem") == NULL);

    /* Damage: bytes under a wrong key, and garbage (a writer that hands
     * over unverified bytes). */
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_lmdb_open(db, NULL, &b, NULL), CAP_OK);
    if (b) {
        cap_hash_t wrong;
        memset(wrong.bytes, 0x5a, 32);
        CHECK_EQ_INT(cap_backend_write(b, &wrong, w1, n1, NULL), CAP_OK);
        cap_hash_t wrong2;
        memset(wrong2.bytes, 0x6b, 32);
        CHECK_EQ_INT(cap_backend_write(b, &wrong2, junk, sizeof junk, NULL), CAP_OK);
        cap_backend_free(b);
    }
    CHECK_EQ_INT(run(NULL, "check", "--db", db, NULL), 1);
    slurp(out_path, buf, sizeof buf);
    CHECK(strstr(buf, "5 blobs checked, 2 bad") != NULL);
    CHECK(strstr(buf, "bad 5a5a5a5a") != NULL);
    CHECK(strstr(buf, "bad 6b6b6b6b") != NULL);
    /* get refuses the damaged entry unless --raw. */
    char wrong_hex[65];
    memset(wrong_hex, 0, sizeof wrong_hex);
    for (int i = 0; i < 32; i++) memcpy(wrong_hex + 2 * i, "5a", 2);
    CHECK_EQ_INT(run(NULL, "get", "--db", db, wrong_hex, NULL), 1);
    slurp(err_path, buf, sizeof buf);
    CHECK(strstr(buf, "another value") != NULL);
    CHECK_EQ_INT(run(NULL, "get", "--raw", "--db", db, wrong_hex, NULL), 0);
    got = slurp(out_path, buf, sizeof buf);
    CHECK(got == n1 && memcmp(buf, w1, n1) == 0);

    /* A put of the right bytes repairs an entry stored with other bytes:
     * standard output stays one hash a line, the repair is counted on
     * standard error, and get works again. */
    {
        cap_hash_t hh;
        for (int i = 0; i < 32; i++) sscanf(h1 + 2 * i, "%2hhx", &hh.bytes[i]);
        /* Past the backend, whose writes keep a sound value: h1 now holds two.cap. */
        CHECK_EQ_INT(test_lmdb_raw_put(db, &hh, w2, n2), 0);
    }
    CHECK_EQ_INT(run(NULL, "get", "--db", db, h1, NULL), 1);
    CHECK_EQ_INT(run(NULL, "put", "--db", db, f2, f1, NULL), 0);
    slurp(out_path, buf, sizeof buf);
    snprintf(expect, sizeof expect, "%s\n%s\n", h2, h1);
    CHECK(strcmp(buf, expect) == 0);
    slurp(err_path, buf, sizeof buf);
    CHECK(strstr(buf, ": 1 repaired") != NULL);
    CHECK_EQ_INT(run(NULL, "get", "--db", db, h1, NULL), 0);
    got = slurp(out_path, buf, sizeof buf);
    CHECK(got == n1 && memcmp(buf, w1, n1) == 0);
    CHECK_EQ_INT(run(NULL, "put", "--db", db, f1, NULL), 0); /* nothing to repair now */
    slurp(err_path, buf, sizeof buf);
    CHECK(strstr(buf, "repaired") == NULL);

    /* The default database is ./capstore.lmdb; a positional argument is a
     * file even when it is an LMDB file. */
    char cwd[512];
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
    CHECK_EQ_INT(chdir(dir), 0);
    CHECK_EQ_INT(run(NULL, "put", f1, NULL), 0);
    CHECK(stat("capstore.lmdb", &sb) == 0);
    CHECK_EQ_INT(run(NULL, "get", h1, NULL), 0);
    CHECK_EQ_INT(rename("capstore.lmdb", "plain.lmdb"), 0);
    CHECK_EQ_INT(run(NULL, "put", "plain.lmdb", f2, NULL), 1); /* plain.lmdb is not a wire file */
    slurp(err_path, buf, sizeof buf);
    CHECK(strstr(buf, "plain.lmdb") != NULL && strstr(buf, "nothing stored") != NULL);
    CHECK(stat("capstore.lmdb", &sb) != 0);
    CHECK_EQ_INT(run(NULL, "stats", "--db", "plain.lmdb", NULL), 0);
    slurp(out_path, buf, sizeof buf);
    CHECK(strstr(buf, "blobs:      1\n") != NULL);
    if (cwd[0] && chdir(cwd) != 0) perror("chdir");

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("test_lmdb_cli");
}
