/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* A damaged database never crashes a `capstore db` action, never makes it
 * lie, and `db check` reports the damage (issue 18).
 *
 * A database is made from the conformance vectors (`db put` of every
 * distinct cap), then copies of it are damaged in each way LMDB does not
 * protect against: a meta page's transaction id and magic, a key and a
 * child pointer of the root branch page, a leaf page's flags, truncation
 * (8 KiB, half), an inline value's size, an overflow value's size, the
 * bytes of a value, and random single-byte flips (CAPSTORE_DAMAGE_FLIPS;
 * by default 150, and 50 under AddressSanitizer: 200 in CI's two runs;
 * CAPSTORE_DAMAGE_SEED repeats a run). On every copy each
 * action (check, stats, get, put) runs in a forked child, as the command
 * would, and:
 *   - ends with status 0 or 1, never a signal;
 *   - get prints exactly the vector's bytes when it succeeds (bytes that
 *     hash to the requested hash);
 *   - check exits 1 for every named damage; for a random flip it exits 1,
 *     or else the database is whole: every blob reads back (through the
 *     library, in a child) with its own bytes, LMDB's count unchanged;
 *   - a put of the right bytes repairs a damaged value ("1 repaired") and
 *     check passes again.
 * The guard's own paths (a signal, LMDB's assertion) are checked directly. */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tools/cmd_common.c"
#include "../tools/cmd_db.c"
#include "../tools/cmd_db_check.c"
#include "../tools/db_guard.c"
#include "../tools/cmd_db_life.inc"

#include "capstore/capstore.h"
#include "check.h"
#include "test_rng.h"

#define MAX_VECS 512
/* Random flips a run: CI runs the suite twice, the second time under
 * AddressSanitizer, where every forked action costs several times more. */
#if defined(__SANITIZE_ADDRESS__)
#define DEFAULT_FLIPS 50
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DEFAULT_FLIPS 50
#endif
#endif
#ifndef DEFAULT_FLIPS
#define DEFAULT_FLIPS 150
#endif
#define SIGNALED 1000 /* run()'s result for a child killed by a signal: 1000 + signal */

typedef struct vec {
    char hex[65];
    cap_hash_t h;
    uint8_t *bytes;
    size_t n;
    char file[320];
} vec_t;

static vec_t vecs[MAX_VECS];
static size_t nvec;
static char dir[256], base[320], db[320], out_path[320], err_path[320];
static uint8_t *base_img;
static size_t base_len;
static test_rng_t rng;

/* Outcomes over the whole run. */
static unsigned actions, exit1, guard_msgs, stopped_msgs, repaired_ok;

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    *n = 0;
    if (!f) return NULL;
    size_t cap = 1 << 16;
    uint8_t *b = malloc(cap);
    size_t got;
    while (b && (got = fread(b + *n, 1, cap - *n, f)) > 0) {
        *n += got;
        if (*n == cap) {
            uint8_t *nb = realloc(b, cap * 2);
            if (!nb) break;
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    return b;
}

static bool file_has(const char *path, const char *needle)
{
    size_t n;
    uint8_t *b = read_all(path, &n);
    if (!b) return false;
    uint8_t *nb = realloc(b, n + 1);
    if (!nb) {
        free(b);
        return false;
    }
    nb[n] = 0;
    bool found = strstr((char *)nb, needle) != NULL;
    free(nb);
    return found;
}

/* Every distinct cap of caps.txt, each in a file of its own. */
static void load_vectors(const char *data)
{
    char path[512];
    snprintf(path, sizeof path, "%s/vectors/caps.txt", data);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) return;
    static char line[1 << 20];
    while (fgets(line, sizeof line, f) && nvec < MAX_VECS) {
        char name[128], hash[80];
        static char wire[1 << 20];
        if (line[0] == '#' || sscanf(line, "%127s %79s %1048575s", name, hash, wire) != 3) continue;
        if (strlen(hash) != 64 || strcmp(wire, "-") == 0) continue;
        bool dup = false;
        for (size_t i = 0; i < nvec && !dup; i++) dup = strcmp(vecs[i].hex, hash) == 0;
        if (dup) continue;
        vec_t *v = &vecs[nvec];
        memcpy(v->hex, hash, 65);
        for (int i = 0; i < 32; i++) v->h.bytes[i] = (uint8_t)(hexval(hash[2 * i]) * 16 + hexval(hash[2 * i + 1]));
        v->n = strlen(wire) / 2;
        v->bytes = malloc(v->n ? v->n : 1);
        for (size_t i = 0; i < v->n; i++)
            v->bytes[i] = (uint8_t)(hexval(wire[2 * i]) * 16 + hexval(wire[2 * i + 1]));
        snprintf(v->file, sizeof v->file, "%s/v%zu.cap", dir, nvec);
        write_file(v->file, v->bytes, v->n);
        nvec++;
    }
    fclose(f);
}

/* Run `capstore db ARGS` in a forked child, stdout and stderr into files.
 * Its exit status, or SIGNALED + the signal that ended it. */
static int run_argv(int argc, char **argv)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fo, 1);
        dup2(fe, 2);
        close(fo);
        close(fe);
        int rc = cmd_db(argc, argv);
        fflush(stdout);
        _exit(rc);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    actions++;
    if (WIFSIGNALED(st)) return SIGNALED + WTERMSIG(st);
    int rc = WEXITSTATUS(st);
    if (rc == 1) {
        exit1++;
        if (file_has(err_path, "run capstore db check")) guard_msgs++;
        if (file_has(out_path, "the check stopped at")) stopped_msgs++;
    }
    return rc;
}

static int run(const char *a0, ...)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)"db";
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && argc < 15; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return run_argv(argc, argv);
}

/* An action's status must be 0 or 1: never a signal, never anything else. */
static int action(const char *what, const char *a0, const char *a1, const char *a2, const char *a3)
{
    int rc = run(a0, a1, a2, a3, NULL);
    if (rc != 0 && rc != 1) {
        fprintf(stderr, "  %s: status %d%s\n", what, rc >= SIGNALED ? rc - SIGNALED : rc,
                rc >= SIGNALED ? " (a signal)" : "");
        CHECK(rc == 0 || rc == 1);
    }
    return rc;
}

/* get of vector i: on success the bytes must be the vector's own. */
static void get_checked(const char *label, size_t i)
{
    int rc = action("get", "get", "--db", db, vecs[i].hex);
    if (rc != 0) return;
    size_t n;
    uint8_t *b = read_all(out_path, &n);
    bool same = b && n == vecs[i].n && memcmp(b, vecs[i].bytes, n) == 0;
    if (!same) fprintf(stderr, "  %s: get %s printed other bytes\n", label, vecs[i].hex);
    CHECK(same);
    free(b);
}

/* In a child (LMDB may fault on a database check passed): every blob
 * reads back with its own bytes and LMDB counts them all. */
static bool whole(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        cap_lmdb_options_t o;
        memset(&o, 0, sizeof o);
        o.flags = CAP_LMDB_READONLY;
        cap_backend_t *b = NULL;
        if (cap_lmdb_open(db, &o, &b, NULL) != CAP_OK) _exit(2);
        for (size_t i = 0; i < nvec; i++) {
            uint8_t *bytes = NULL;
            size_t n = 0;
            if (cap_backend_read(b, &vecs[i].h, cap_alloc_libc(), &bytes, &n, NULL) != CAP_OK) _exit(3);
            if (n != vecs[i].n || memcmp(bytes, vecs[i].bytes, n) != 0) _exit(4);
            free(bytes);
        }
        cap_lmdb_stats_t st;
        if (cap_lmdb_stats(b, &st, NULL) != CAP_OK || st.blobs != nvec) _exit(5);
        cap_backend_free(b);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* The damaged copy ---------------------------------------------------------------------------- */

static uint8_t *img;
static size_t img_len;

static void fresh(void)
{
    free(img);
    img = malloc(base_len);
    memcpy(img, base_img, base_len);
    img_len = base_len;
}

static void save(void)
{
    char lock[340];
    snprintf(lock, sizeof lock, "%s-lock", db);
    unlink(lock);
    write_file(db, img, img_len);
}

/* LMDB writes its fields in the host's byte order (s390x in CI is
 * big-endian). */
static uint16_t u16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static uint64_t u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The base's layout (LMDB 0.9, 64-bit, the host's byte order): page size, the
 * meta page in use (file format 2: the open's commit, then the put's), and
 * the root page of the "blobs" database, named in the unnamed database. */
static uint32_t psize;
static uint64_t root;
static unsigned depth;
static unsigned cur_meta;

static uint8_t *page(uint64_t p) { return img + p * psize; }
static unsigned numkeys(const uint8_t *pg) { return (u16(pg + 12) - 16u) / 2; }
static uint8_t *node(uint8_t *pg, unsigned i) { return pg + u16(pg + 16 + 2 * i); }
/* A branch node's page number: its low and high 16 bits (in that order on
 * a little-endian host, swapped on a big-endian one), then the flags word. */
static uint64_t child_page(const uint8_t *n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return u16(n + 2) | (uint64_t)u16(n) << 16 | (uint64_t)u16(n + 4) << 32;
#else
    return u16(n) | (uint64_t)u16(n + 2) << 16 | (uint64_t)u16(n + 4) << 32;
#endif
}

/* A leaf page, and in it a node with an inline value (bigdata false) or
 * an overflow value (true); the vector index of its key. */
static uint8_t *find_leaf_node(bool bigdata, size_t *vi)
{
    for (uint64_t p = 2; (p + 1) * psize <= img_len; p++) {
        uint8_t *pg = page(p);
        if (u64(pg) != p || u16(pg + 10) != 0x02) continue;
        for (unsigned i = 0; i < numkeys(pg); i++) {
            uint8_t *n = node(pg, i);
            if (((u16(n + 4) & 1) != 0) != bigdata || u16(n + 6) != 32) continue;
            for (size_t v = 0; v < nvec; v++) {
                if (memcmp(vecs[v].h.bytes, n + 8, 32) == 0 && (bigdata || vecs[v].n > 8)) {
                    *vi = v;
                    return n;
                }
            }
        }
    }
    return NULL;
}

/* Run every action on the damaged copy; check must exit `want_check` (-1:
 * 0 or 1, then 0 must mean the database is whole). Returns check's status. */
static int exercise(const char *label, int want_check, unsigned gets)
{
    save();
    int c = action("check", "check", "--db", db, NULL);
    if (want_check >= 0 && c != want_check) {
        fprintf(stderr, "  %s: check exited %d, expected %d\n", label, c, want_check);
        CHECK_EQ_INT(c, want_check);
    }
    bool is_whole = c == 0 && whole();
    if (want_check < 0 && c == 0 && !is_whole) {
        fprintf(stderr, "  %s: check passed a database that is not whole\n", label);
        CHECK(is_whole);
    }
    action("stats", "stats", "--db", db, NULL);
    if (want_check >= 0) action("stats --json", "stats", "--json", "--db", db);
    if (gets >= nvec) {
        for (size_t i = 0; i < nvec; i++) get_checked(label, i);
    } else {
        for (unsigned g = 0; g < gets; g++) get_checked(label, (size_t)(test_rng_next(&rng) % nvec));
    }
    size_t pv = (size_t)(test_rng_next(&rng) % nvec);
    action("put", "put", "--db", db, vecs[pv].file);
    return c;
}

/* Named damage -------------------------------------------------------------------------------- */

static void named_cases(void)
{
    /* Meta page 0 (the first, empty snapshot) claims a transaction far
     * beyond page 1's: LMDB would use it and a put would free every page
     * of the real snapshot. Refused everywhere; nothing is lost. */
    fresh();
    size_t old_txnid = (1 - cur_meta) * psize + 147;
    img[old_txnid] ^= 0x01;
    exercise("older meta page txnid", 1, 4);
    CHECK(file_has(err_path, "damaged database")); /* the put was refused */
    fresh();
    img[old_txnid] ^= 0x01;
    save();
    CHECK_EQ_INT(action("stats", "stats", "--db", db, NULL), 1);
    CHECK(file_has(err_path, "not consecutive"));
    img[old_txnid] ^= 0x01; /* undo: the data is all there */
    save();
    CHECK(whole());

    fresh();
    img[cur_meta * psize + 16] ^= 0xff; /* the magic of the meta page in use */
    exercise("meta page in use magic", 1, 4);

    /* The root branch page: a key byte (lookups go astray; the cursor walk
     * does not notice), a child pointer. */
    CHECK(depth >= 2);
    fresh();
    uint8_t *rp = page(root);
    CHECK(numkeys(rp) >= 3);
    node(rp, 1)[8 + 1] ^= 0xff;
    exercise("root branch key", 1, (unsigned)nvec);
    fresh();
    rp = page(root);
    uint8_t *n2 = node(rp, 2);
    n2[0] ^= 0x01; /* child page number */
    exercise("root branch child", 1, 16);

    /* A leaf page's flags (leaf -> leaf|branch). */
    fresh();
    rp = page(root);
    uint64_t leaf = child_page(node(rp, 1));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    page(leaf)[11] ^= 0x01; /* the flags word's low byte */
#else
    page(leaf)[10] ^= 0x01;
#endif
    exercise("leaf flags", 1, 32);

    /* Truncation. */
    fresh();
    img_len = 8192;
    exercise("truncated to 8 KiB", 1, 4);
    CHECK(file_has(err_path, "truncated"));
    fresh();
    img_len = (base_len / 2) & ~(size_t)4095;
    exercise("truncated to half", 1, 8);
    CHECK(file_has(err_path, "truncated"));

    /* Value sizes: an inline value grown past its page, an overflow value
     * grown past its run. */
    size_t vi = 0;
    fresh();
    uint8_t *n = find_leaf_node(false, &vi);
    CHECK(n != NULL);
    if (n) {
        n[1] ^= 0x10; /* + 4096 bytes */
        exercise("inline value size", 1, 0);
        get_checked("inline value size", vi);
    }
    fresh();
    n = find_leaf_node(true, &vi);
    CHECK(n != NULL);
    if (n) {
        n[2] ^= 0x40; /* + 4 MiB */
        exercise("overflow value size", 1, 0);
        get_checked("overflow value size", vi);
    }

    /* The bytes of a value: check names it, get refuses it, a put of the
     * right bytes repairs it. */
    fresh();
    n = find_leaf_node(false, &vi);
    if (n) {
        n[8 + 32 + vecs[vi].n / 2] ^= 0x55;
        save();
        CHECK_EQ_INT(action("check", "check", "--db", db, NULL), 1);
        char line[100];
        snprintf(line, sizeof line, "bad %s", vecs[vi].hex);
        CHECK(file_has(out_path, line));
        CHECK_EQ_INT(action("get", "get", "--db", db, vecs[vi].hex), 1);
        CHECK_EQ_INT(action("put", "put", "--db", db, vecs[vi].file), 0);
        CHECK(file_has(err_path, "1 repaired"));
        CHECK(file_has(out_path, vecs[vi].hex));
        get_checked("repaired", vi);
        CHECK_EQ_INT(action("check", "check", "--db", db, NULL), 0);
        CHECK(whole());
        repaired_ok++;
    }
}

/* The guard's own paths: a fault and LMDB's assertion become status 1 and
 * the message, in the command and in the check's child. */
static void guard_paths(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fe, 2);
        db_guard_arm("some.lmdb");
        raise(SIGBUS);
        _exit(3);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    CHECK(file_has(err_path, "capstore: damaged database some.lmdb: run capstore db check"));
    pid = fork();
    if (pid == 0) {
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fe, 2);
        db_guard_arm("some.lmdb");
        on_assert("IS_LEAF(mp)");
        _exit(3);
    }
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    CHECK(file_has(err_path, "damaged database some.lmdb: run capstore db check (LMDB: IS_LEAF(mp))"));
}

int main(int argc, char **argv)
{
    const char *data = argc > 1 ? argv[1] : "tests";
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/capstore-test-damage-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(base, sizeof base, "%s/base.lmdb", dir);
    snprintf(db, sizeof db, "%s/d.lmdb", dir);
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    snprintf(err_path, sizeof err_path, "%s/err", dir);
    const char *seed_env = getenv("CAPSTORE_DAMAGE_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
    rng.state = seed ? seed : 1;
    printf("test_lmdb_damage: seed %#llx (set CAPSTORE_DAMAGE_SEED to repeat)\n", (unsigned long long)seed);
    const char *flips_env = getenv("CAPSTORE_DAMAGE_FLIPS");
    unsigned flips = flips_env ? (unsigned)strtoul(flips_env, NULL, 10) : DEFAULT_FLIPS;
    time_t t0 = time(NULL);

    load_vectors(data);
    CHECK(nvec > 200);
    /* The base database: `db put` of every distinct vector. */
    char **pa = calloc(nvec + 8, sizeof *pa);
    int pn = 0;
    pa[pn++] = (char *)"db";
    pa[pn++] = (char *)"put";
    pa[pn++] = (char *)"--db";
    pa[pn++] = base;
    for (size_t i = 0; i < nvec; i++) pa[pn++] = vecs[i].file;
    CHECK_EQ_INT(run_argv(pn, pa), 0);
    free(pa);
    base_img = read_all(base, &base_len);
    CHECK(base_img && base_len >= 3 * 4096);
    if (!base_img || base_len < 3 * 4096) return check_done("test_lmdb_damage");
    memcpy(&psize, base_img + 40, sizeof psize);
    cur_meta = u64(base_img + psize + 144) > u64(base_img + 144) ? 1 : 0;
    const uint8_t *main_db = base_img + cur_meta * psize + 16 + 24 + 48;
    uint8_t *main_leaf = base_img + u64(main_db + 40) * psize;
    for (unsigned i = 0; i < numkeys(main_leaf); i++) {
        const uint8_t *n = node(main_leaf, i);
        if (u16(n + 6) == 5 && memcmp(n + 8, "blobs", 5) == 0) {
            root = u64(n + 8 + 5 + 40);
            depth = u16(n + 8 + 5 + 6);
        }
    }
    snprintf(db, sizeof db, "%s", base);
    CHECK_EQ_INT(action("check", "check", "--db", base, NULL), 0); /* the base is sound */
    snprintf(db, sizeof db, "%s/d.lmdb", dir);

    guard_paths();
    named_cases();

    /* Random single-byte flips. */
    unsigned reported = 0, intact = 0;
    for (unsigned f = 0; f < flips; f++) {
        fresh();
        size_t off = (size_t)(test_rng_next(&rng) % base_len);
        uint8_t x = (uint8_t)(1 + test_rng_next(&rng) % 255);
        img[off] ^= x;
        char label[64];
        snprintf(label, sizeof label, "flip %u: byte %zu ^= %#x", f, off, x);
        int c = exercise(label, -1, 2);
        if (c == 1) reported++;
        else intact++;
    }
    printf("test_lmdb_damage: %zu caps; %u random flips: %u reported by check, %u left every blob whole; "
           "%u actions, %u ended with status 1 (%u with the crash guard's message, %u checks stopped by a fault), "
           "none by a signal; %u repairs; %llu s\n",
           nvec, flips, reported, intact, actions, exit1, guard_msgs, stopped_msgs, repaired_ok,
           (unsigned long long)(time(NULL) - t0));

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    free(img);
    free(base_img);
    for (size_t i = 0; i < nvec; i++) free(vecs[i].bytes);
    return check_done("test_lmdb_damage");
}
