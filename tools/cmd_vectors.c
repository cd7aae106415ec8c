/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore vectors FILE...: check conformance vectors (caps.txt and
 * ssz-basic.txt formats, line by line).
 *
 * Each non-blank, non-comment line is either
 *   <name> <cap-hash-hex> <wire-hex>   decode, hash must match, re-encoding must be identical
 *   <name> reject <wire-hex>           decoding must fail with CAP_EDECODE
 *   <name> <root-hex> <input-hex>      a merkleization vector (ssz-basic.txt), known by the
 *                                      prefix of its name (vectors_ssz.h): the root must match
 * One line is printed per failure, then "N passed, N failed". Exit 0 when
 * everything passed, 1 on a failure or an unreadable file, 2 on usage error. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "cli.h"
#include "vectors_ssz.h"

static void vectors_usage(FILE *f)
{
    fprintf(f,
            "usage: capstore vectors FILE...\n"
            "\n"
            "Check conformance vector files ('-' reads standard input), in the formats of\n"
            "caps.txt and ssz-basic.txt. Each line is '<name> <cap-hash-hex> <wire-hex>'\n"
            "(decode, compare the cap hash, re-encode and compare the bytes), '<name> reject\n"
            "<wire-hex>' (decoding must fail with a decode error), or a merkleization vector\n"
            "'<name> <root-hex> <input-hex>' whose name starts with node_hash_, zero_hash_,\n"
            "list_uint8_, list_uint32_, vector_uint64_13_, list_bytes32_65536_,\n"
            "list_bytes32_2p32_, bytevector_<n>_, mix_in_length_ or mix_in_selector_ (the\n"
            "input's hash_tree_root must be the root). Lines starting with '#' and blank\n"
            "lines are ignored. A file with no vectors is reported and counts as one\n"
            "failure. Prints one line per failure, then 'N passed, N failed'.\n"
            "Exit status: 0 all passed, 1 a check failed or a file could not be read, 2 usage.\n");
}

static int hexdig(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode hex ("-" = empty) into a new buffer. Returns 0, or -1 on bad hex or
 * out of memory (*oom set). */
static int unhex(const char *hex, uint8_t **out, size_t *n, int *oom)
{
    *out = NULL;
    *n = 0;
    *oom = 0;
    if (strcmp(hex, "-") == 0) return 0;
    size_t len = strlen(hex);
    if (len == 0 || len % 2) return -1;
    uint8_t *b = malloc(len / 2);
    if (!b) {
        *oom = 1;
        return -1;
    }
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hexdig((unsigned char)hex[2 * i]), lo = hexdig((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return -1;
        }
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = b;
    *n = len / 2;
    return 0;
}

static void hexstr(const uint8_t *b, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = 0;
}

typedef struct tally {
    unsigned long passed, failed;
} tally_t;

/* Split off the next space-separated field; NULL when none is left. */
static char *next_field(char **cur)
{
    char *p = *cur;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return NULL;
    char *start = p;
    while (*p && *p != ' ' && *p != '\t') p++;
    if (*p) *p++ = 0;
    *cur = p;
    return start;
}

static void fail_line(tally_t *t, const char *where, const char *name, const char *fmt, const char *detail)
{
    t->failed++;
    printf("FAIL %s: %s: ", where, name);
    printf(fmt, detail);
    putchar('\n');
}

static void check_line(tally_t *t, const char *where, char *line)
{
    char *cur = line;
    char *name = next_field(&cur);
    if (!name || name[0] == '#') return; /* blank or comment */
    char *expect = next_field(&cur);
    char *wire_hex = next_field(&cur);
    char *extra = wire_hex ? next_field(&cur) : NULL;
    if (!expect || !wire_hex || extra) {
        fail_line(t, where, name, "%s", "malformed line (want: <name> <hash-hex>|reject <hex>)");
        return;
    }
    int reject = strcmp(expect, "reject") == 0;
    uint8_t want_hash[32];
    if (!reject) {
        uint8_t *h;
        size_t hn;
        int oom;
        if (unhex(expect, &h, &hn, &oom) != 0 || hn != 32) {
            if (h) free(h);
            fail_line(t, where, name, "%s", oom ? "out of memory" : "malformed hash or root (want 64 hex digits)");
            return;
        }
        memcpy(want_hash, h, 32);
        free(h);
    }
    uint8_t *wire;
    size_t n;
    int oom;
    if (unhex(wire_hex, &wire, &n, &oom) != 0) {
        fail_line(t, where, name, "%s", oom ? "out of memory" : "malformed wire or input hex");
        return;
    }

    if (!reject) {
        uint8_t root[32];
        const char *why;
        int rc = vectors_ssz_root(name, wire, n, root, &why);
        if (rc != VECTORS_SSZ_NOT_SSZ) {
            if (rc == VECTORS_SSZ_NOMEM) {
                fail_line(t, where, name, "%s", "out of memory");
            } else if (rc == VECTORS_SSZ_BAD_INPUT) {
                fail_line(t, where, name, "malformed input: %s", why);
            } else if (memcmp(root, want_hash, 32) != 0) {
                char hx[65];
                hexstr(root, 32, hx);
                fail_line(t, where, name, "root mismatch: got %s", hx);
            } else {
                t->passed++;
            }
            free(wire);
            return;
        }
    }

    const cap_alloc_t *a = cap_alloc_libc();
    cap_t *c = NULL;
    cap_err_t err;
    char msg[256];
    int rc = cap_wire_decode(wire, n, a, &c, &err);
    if (reject) {
        if (rc == CAP_OK) {
            fail_line(t, where, name, "%s", "decoded, but the line says it must be rejected");
        } else if (rc != CAP_EDECODE) {
            cap_err_format(&err, msg, sizeof msg);
            fail_line(t, where, name, "rejected with the wrong error: %s", msg);
        } else {
            t->passed++;
        }
        cap_release(c);
        free(wire);
        return;
    }
    if (rc != CAP_OK) {
        cap_err_format(&err, msg, sizeof msg);
        fail_line(t, where, name, "decode failed: %s", msg);
        free(wire);
        return;
    }
    int ok = 1;
    cap_hash_t got;
    rc = cap_hash(c, &got);
    if (rc != CAP_OK) {
        cap_err_t e = {.code = rc};
        cap_err_format(&e, msg, sizeof msg);
        fail_line(t, where, name, "cap_hash failed: %s", msg);
        ok = 0;
    } else if (memcmp(got.bytes, want_hash, 32) != 0) {
        char hx[65];
        hexstr(got.bytes, 32, hx);
        fail_line(t, where, name, "cap hash mismatch: got %s", hx);
        ok = 0;
    }
    uint8_t *re = NULL;
    size_t rn = 0;
    rc = cap_wire_encode_alloc(c, a, &re, &rn);
    if (rc != CAP_OK) {
        cap_err_t e = {.code = rc};
        cap_err_format(&e, msg, sizeof msg);
        fail_line(t, where, name, "re-encode failed: %s", msg);
        ok = 0;
    } else {
        if (rn != n || memcmp(re, wire, n) != 0) {
            size_t i = 0;
            while (i < rn && i < n && re[i] == wire[i]) i++;
            snprintf(msg, sizeof msg, "%zu bytes, expected %zu; first difference at byte %zu", rn, n, i);
            fail_line(t, where, name, "re-encoding differs: %s", msg);
            ok = 0;
        }
        a->deallocate(a->ctx, re, rn);
    }
    if (ok) t->passed++;
    cap_release(c);
    free(wire);
}

/* Returns 0, or -1 when the file cannot be opened or read. */
static int check_file(tally_t *t, const char *path)
{
    int is_stdin = strcmp(path, "-") == 0;
    const char *where = is_stdin ? "<stdin>" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "capstore vectors: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned long lineno = 0;
    char where_line[4096];
    unsigned long before = t->passed + t->failed;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        snprintf(where_line, sizeof where_line, "%s:%lu", where, lineno);
        check_line(t, where_line, line);
    }
    int bad = ferror(f) ? -1 : 0;
    if (bad) fprintf(stderr, "capstore vectors: error reading %s: %s\n", path, strerror(errno));
    /* A file with no vector checks nothing: say so, and count it as failed
     * (an empty or wrong file must not pass a CI step). */
    if (!bad && t->passed + t->failed == before) {
        fprintf(stderr, "capstore vectors: %s: no vectors in it\n", where);
        t->failed++;
    }
    free(line);
    if (!is_stdin) fclose(f);
    return bad;
}

int cmd_vectors(int argc, char **argv)
{
    /* Options come first; "--" ends them; "-" is a file (standard input). */
    int first = 1;
    for (; first < argc; first++) {
        const char *arg = argv[first];
        if (strcmp(arg, "--") == 0) {
            first++;
            break;
        }
        if (arg[0] != '-' || arg[1] == 0) break;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            vectors_usage(stdout);
            return 0;
        }
        fprintf(stderr, "capstore vectors: unknown option '%s'\n", arg);
        vectors_usage(stderr);
        return 2;
    }
    if (first >= argc) {
        fprintf(stderr, "capstore vectors: no FILE given\n");
        vectors_usage(stderr);
        return 2;
    }
    tally_t t = {0, 0};
    int unreadable = 0;
    for (int i = first; i < argc; i++)
        if (check_file(&t, argv[i]) != 0) unreadable = 1;
    printf("%lu passed, %lu failed\n", t.passed, t.failed);
    return (t.failed || unreadable) ? 1 : 0;
}
