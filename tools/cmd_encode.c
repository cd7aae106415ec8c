/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore encode [-o OUT] FILE: the JSON form -> wire bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cap_json.h"
#include "capstore/host.h"
#include "cli.h"

static const char usage[] = "capstore encode [-o OUT] FILE";

static void help(void)
{
    printf("usage: %s\n\n"
           "Read the JSON form of one cap (docs/cap-json.md; '-' reads standard input),\n"
           "build it through the library (which validates it) and write its wire form:\n"
           "to standard output, or to OUT with -o. encode(decode(x)) is x, byte for byte.\n"
           "Binary output is not written to a terminal: redirect it or use -o.\n\n"
           "options:\n"
           "  -o OUT    write the wire bytes to OUT instead of standard output\n\n"
           "Exit status: 0 success, 1 unreadable or invalid input (a JSON syntax error\n"
           "gives its line and column, an invalid field its path, e.g. slots[2].target),\n"
           "2 usage error.\n",
           usage);
}

static int write_all(FILE *f, const uint8_t *b, size_t n)
{
    if (n && fwrite(b, 1, n, f) != n) return -1;
    return fflush(f) == 0 && !ferror(f) ? 0 : -1;
}

int cmd_encode(int argc, char **argv)
{
    cli_opt_t opts[] = {{"-o", true, false, NULL}, {NULL, false, false, NULL}};
    int npos;
    bool want_help;
    int rc = cli_parse_args("encode", usage, argc, argv, opts, &want_help, &npos);
    if (rc != CLI_OK) return rc;
    if (want_help) {
        help();
        return CLI_OK;
    }
    if (npos != 1) return cli_usage_error("encode", usage, npos ? "too many arguments" : "missing FILE");
    const char *out_path = opts[0].value;
    if (!out_path && isatty(STDOUT_FILENO))
        return cli_usage_error("encode", usage,
                               "refusing to write binary wire bytes to a terminal (redirect or use -o)");

    /* Read as a stream: the text is never held whole (tools/cap_json.h). */
    bool is_stdin = strcmp(argv[1], "-") == 0;
    FILE *in = is_stdin ? stdin : fopen(argv[1], "rb");
    if (!in) {
        cli_error("encode", "%s: %s", argv[1], strerror(errno));
        return CLI_EBADINPUT;
    }
    const cap_alloc_t *a = cap_alloc_libc();
    cap_t *c;
    char msg[512];
    int e = capjson_read(in, a, &c, msg, sizeof msg);
    if (!is_stdin) fclose(in);
    if (e != CAP_OK) {
        cli_error("encode", "%s: %s", cli_display_name(argv[1]), msg);
        return CLI_EBADINPUT;
    }
    uint8_t *wire;
    size_t wn;
    e = cap_wire_encode_alloc(c, a, &wire, &wn);
    cap_release(c);
    if (e != CAP_OK) {
        cli_error("encode", "%s: %s", cli_display_name(argv[1]), cap_strerror(e));
        return CLI_EBADINPUT;
    }
    rc = CLI_OK;
    if (out_path) {
        FILE *f = fopen(out_path, "wb");
        if (!f) {
            cli_error("encode", "%s: %s", out_path, strerror(errno));
            rc = CLI_EBADINPUT;
        } else {
            int w = write_all(f, wire, wn);
            if (fclose(f) != 0) w = -1;
            if (w != 0) {
                cli_error("encode", "%s: write error", out_path);
                rc = CLI_EBADINPUT;
            }
        }
    } else if (write_all(stdout, wire, wn) != 0) {
        cli_error("encode", "error writing standard output");
        rc = CLI_EBADINPUT;
    }
    a->deallocate(a->ctx, wire, wn);
    return rc;
}
