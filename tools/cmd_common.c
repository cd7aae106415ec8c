/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Helpers shared by the capstore subcommands: argument splitting, reading
 * files or standard input, decoding with a useful message, hex. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/host.h"
#include "cli.h"

bool cli_is_help(const char *arg) { return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0; }

void cli_error(const char *sub, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "capstore %s: ", sub);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_usage_error(const char *sub, const char *usage, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "capstore %s: ", sub);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: %s\n(capstore %s --help for more)\n", usage, sub);
    return CLI_EUSAGE;
}

int cli_parse_args(const char *sub, const char *usage, int argc, char **argv, cli_opt_t *opts,
                   bool *help, int *npos)
{
    bool options_done = false;
    *help = false;
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
            argv[1 + (*npos)++] = argv[i]; /* 1 + *npos <= i: already read */
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (cli_is_help(a)) {
            *help = true;
            continue;
        }
        cli_opt_t *o = opts;
        while (o && o->name && strcmp(o->name, a) != 0) o++;
        if (!o || !o->name) return cli_usage_error(sub, usage, "unknown option '%s'", a);
        if (o->has_value) {
            if (i + 1 >= argc) return cli_usage_error(sub, usage, "option %s needs a value", a);
            o->value = argv[++i];
        }
        o->seen = true;
    }
    return CLI_OK;
}

const char *cli_display_name(const char *path) { return strcmp(path, "-") == 0 ? "<stdin>" : path; }

int cli_read_file(const char *sub, const char *path, uint8_t **buf, size_t *n)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        cli_error(sub, "%s: %s", path, strerror(errno));
        return CLI_EBADINPUT;
    }
    size_t cap = 4096, len = 0;
    uint8_t *b = malloc(cap);
    if (!b) {
        if (!is_stdin) fclose(f);
        cli_error(sub, "out of memory");
        return CLI_EBADINPUT;
    }
    for (;;) {
        if (len == cap) {
            uint8_t *nb = cap > SIZE_MAX / 2 ? NULL : realloc(b, cap * 2);
            if (!nb) {
                free(b);
                if (!is_stdin) fclose(f);
                cli_error(sub, "%s: out of memory", cli_display_name(path));
                return CLI_EBADINPUT;
            }
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int failed = ferror(f);
    int saved = errno;
    if (!is_stdin) fclose(f);
    if (failed) {
        free(b);
        cli_error(sub, "%s: read error: %s", cli_display_name(path), strerror(saved));
        return CLI_EBADINPUT;
    }
    *buf = b;
    *n = len;
    return CLI_OK;
}

int cli_decode_file(const char *sub, const char *path, cap_t **out, size_t *wire_len)
{
    uint8_t *buf;
    size_t n;
    int rc = cli_read_file(sub, path, &buf, &n);
    if (rc != CLI_OK) return rc;
    cap_err_t err;
    memset(&err, 0, sizeof err);
    rc = cap_wire_decode(buf, n, cap_alloc_libc(), out, &err);
    if (rc != CAP_OK) {
        char msg[256];
        if (err.code == 0) err.code = rc;
        cap_err_format(&err, msg, sizeof msg);
        cli_error(sub, "%s: %s", cli_display_name(path), msg);
        cli_hint_json(sub, path, buf, n);
        free(buf);
        return CLI_EBADINPUT;
    }
    free(buf);
    if (wire_len) *wire_len = n;
    return CLI_OK;
}

bool cli_looks_like_json(const uint8_t *buf, size_t n)
{
    size_t i = 0;
    if (n >= 3 && buf[0] == 0xef && buf[1] == 0xbb && buf[2] == 0xbf) i = 3; /* a UTF-8 BOM */
    while (i < n && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n')) i++;
    return i < n && buf[i] == '{';
}

void cli_hint_json(const char *sub, const char *path, const uint8_t *buf, size_t n)
{
    if (!cli_looks_like_json(buf, n)) return;
    cli_error(sub, "hint: %s looks like the JSON form (docs/cap-json.md); `capstore encode %s` "
                   "turns it into wire bytes",
              cli_display_name(path), path);
}

void cli_hex(char *out, const uint8_t *bytes, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = 0;
}

int cli_hash_hex(const cap_t *c, char out[65])
{
    cap_hash_t h;
    int rc = cap_hash(c, &h);
    if (rc != CAP_OK) {
        out[0] = 0;
        return rc;
    }
    cli_hex(out, h.bytes, 32);
    return CAP_OK;
}

const char *cli_kind_name(cap_kind_t k)
{
    switch (k) {
    case CAP_KIND_INSTANCE: return "instance";
    case CAP_KIND_IMAGE: return "image";
    case CAP_KIND_DATA: return "data";
    case CAP_KIND_CNODE: return "cnode";
    case CAP_KIND_TYPE: return "type";
    }
    return "unknown";
}

const char *cli_db_path(const char *opt_value)
{
    if (opt_value) return opt_value;
    const char *env = getenv("CAPSTORE_DB");
    if (env && *env) return env;
    return CLI_DB_DEFAULT;
}
