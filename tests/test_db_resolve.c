/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Naming caps on the command line (tools/db_resolve.c) and the prefix
 * lookup under it (cap_lmdb_find_prefix): prefixes of every length from 1
 * to 9 digits against a brute-force count; a whole hash, a unique prefix,
 * a root name resolve; a prefix two blobs share is refused (status 1) with
 * both listed; no such root, no such prefix (1); an argument that is none
 * of the three, a prefix under 4 digits (2). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tools/cmd_common.c"
#include "../tools/db_resolve.c"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_graph.h"
#include "test_rng.h"

static char dir[256];
static cap_hash_t *keys;
static size_t nkeys;

static int collect(void *arg, const cap_hash_t *h, const uint8_t *bytes, size_t n)
{
    (void)arg;
    (void)bytes;
    (void)n;
    keys[nkeys++] = *h;
    return 0;
}

/* Run db_resolve with standard error in a file; its text in `err_text`. */
static int resolve(cap_backend_t *b, const char *arg, cap_hash_t *out, char *err_text, size_t cap)
{
    char path[300];
    snprintf(path, sizeof path, "%s/stderr", dir);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    int rc = db_resolve("test", "usage", b, "db", arg, out, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t got = pread(fd, err_text, cap - 1, 0);
    err_text[got > 0 ? got : 0] = 0;
    close(fd);
    return rc;
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/capstore_test_resolve_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    char p[400];
    snprintf(p, sizeof p, "%s/r.lmdb", dir);
    cap_lmdb_options_t o = {CAP_LMDB_NOSYNC, 0, 0, 0};
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_lmdb_open(p, &o, &b, NULL), CAP_OK);
    if (!b) return check_done("test_db_resolve");
    test_graph_t g;
    test_graph_make(&g, 71, 3000); /* enough that some 4-digit prefix is shared */
    cap_backend_root_t r = {"main", g.root};
    CHECK_EQ_INT(cap_backend_write_many(b, g.items, g.n, &r, 1, NULL, NULL), CAP_OK);
    keys = calloc(g.n, sizeof *keys);
    CHECK_EQ_INT(cap_backend_iterate(b, collect, NULL, NULL), CAP_OK);

    /* Prefix counts against brute force, odd and even lengths. */
    test_rng_t rng = {7};
    int wrong = 0;
    for (int t = 0; t < 300; t++) {
        const cap_hash_t *k = &keys[test_rng_below(&rng, nkeys)];
        char hex[65];
        cli_hex(hex, k->bytes, 32);
        size_t len = 1 + (size_t)test_rng_below(&rng, 9);
        if (t % 3 == 0) hex[len - 1] = "0123456789abcdef"[test_rng_below(&rng, 16)]; /* maybe no match */
        size_t want = 0;
        for (size_t i = 0; i < nkeys; i++) {
            char h2[65];
            cli_hex(h2, keys[i].bytes, 32);
            want += strncmp(h2, hex, len) == 0;
        }
        cap_hash_t first[4];
        size_t found = 99;
        hex[len] = 0;
        if (t % 2) for (size_t i = 0; i < len; i++) hex[i] = (char)(hex[i] >= 'a' ? hex[i] - 32 : hex[i]); /* upper */
        CHECK_EQ_INT(cap_lmdb_find_prefix(b, hex, len, first, 4, &found, NULL), CAP_OK);
        wrong += found != want;
    }
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(cap_lmdb_find_prefix(b, "12x4", 4, NULL, 0, NULL, NULL), CAP_EINVAL);

    /* A shared 4-digit prefix. */
    size_t dup = SIZE_MAX;
    for (size_t i = 1; i < nkeys && dup == SIZE_MAX; i++)
        if (keys[i].bytes[0] == keys[i - 1].bytes[0] && keys[i].bytes[1] == keys[i - 1].bytes[1]) dup = i;
    CHECK(dup != SIZE_MAX);
    char text[4096], a[65], c[65], pre[5];
    cap_hash_t out;
    if (dup != SIZE_MAX) {
        cli_hex(a, keys[dup - 1].bytes, 32);
        cli_hex(c, keys[dup].bytes, 32);
        memcpy(pre, a, 4);
        pre[4] = 0;
        CHECK_EQ_INT(resolve(b, pre, &out, text, sizeof text), CLI_EBADINPUT);
        CHECK(strstr(text, "ambiguous") != NULL);
        CHECK(strstr(text, a) != NULL && strstr(text, c) != NULL);
        /* One digit more than they share tells them apart (if it does). */
        size_t shared = 4;
        while (a[shared] == c[shared]) shared++;
        char longer[65];
        memcpy(longer, c, shared + 1);
        longer[shared + 1] = 0;
        CHECK_EQ_INT(resolve(b, longer, &out, text, sizeof text), CLI_OK);
        CHECK_MEM(out.bytes, keys[dup].bytes, 32);
    }
    char whole[65];
    cli_hex(whole, g.root.bytes, 32);
    CHECK_EQ_INT(resolve(b, whole, &out, text, sizeof text), CLI_OK);
    CHECK_MEM(out.bytes, g.root.bytes, 32);
    whole[0] = whole[0] == 'f' ? '0' : 'f'; /* a whole hash is taken as is, stored or not */
    CHECK_EQ_INT(resolve(b, whole, &out, text, sizeof text), CLI_OK);
    CHECK_EQ_INT(resolve(b, "main", &out, text, sizeof text), CLI_OK);
    CHECK_MEM(out.bytes, g.root.bytes, 32);
    CHECK_EQ_INT(resolve(b, "nope", &out, text, sizeof text), CLI_EBADINPUT);
    CHECK(strstr(text, "no root named nope") != NULL);
    CHECK_EQ_INT(resolve(b, "abc", &out, text, sizeof text), CLI_EUSAGE);
    CHECK_EQ_INT(resolve(b, "has space", &out, text, sizeof text), CLI_EUSAGE);
    /* A prefix nothing has: find a 6-digit one. */
    char none[7] = "000000";
    for (unsigned v = 0;; v++) {
        snprintf(none, sizeof none, "%06x", v);
        size_t f = 1;
        cap_lmdb_find_prefix(b, none, 6, NULL, 0, &f, NULL);
        if (f == 0) break;
    }
    CHECK_EQ_INT(resolve(b, none, &out, text, sizeof text), CLI_EBADINPUT);
    CHECK(strstr(text, "no blob") != NULL);
    cap_backend_free(b);
    free(keys);
    test_graph_free(&g);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("test_db_resolve");
}
