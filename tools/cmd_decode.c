/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore decode FILE: wire form -> the JSON form (docs/cap-json.md). */
#include <stdio.h>
#include <stdlib.h>

#include "cap_json.h"
#include "cli.h"

static const char usage[] = "capstore decode FILE";

static void help(void)
{
    printf("usage: %s\n\n"
           "Decode FILE (the wire form of one cap; '-' reads standard input) and print the\n"
           "cap as pretty-printed JSON: the readable, editable form described in\n"
           "docs/cap-json.md (schema: docs/cap.schema.json). `capstore encode` turns it\n"
           "back into the identical wire bytes.\n\n"
           "Exit status: 0 success, 1 unreadable or malformed input (the message names the\n"
           "rule broken and its byte offset), 2 usage error.\n",
           usage);
}

int cmd_decode(int argc, char **argv)
{
    int npos;
    bool want_help;
    int rc = cli_parse_args("decode", usage, argc, argv, NULL, &want_help, &npos);
    if (rc != CLI_OK) return rc;
    if (want_help) {
        help();
        return CLI_OK;
    }
    if (npos != 1) return cli_usage_error("decode", usage, npos ? "too many arguments" : "missing FILE");
    cap_t *c;
    rc = cli_decode_file("decode", argv[1], &c, NULL);
    if (rc != CLI_OK) return rc;
    /* Printed as the cap is walked: no text or tree of the whole is built. */
    int e = capjson_write(c, stdout);
    cap_release(c);
    if (e == CAPJSON_EWRITE || (e == CAP_OK && (fflush(stdout) != 0 || ferror(stdout)))) {
        cli_error("decode", "error writing standard output");
        return CLI_EBADINPUT;
    }
    if (e != CAP_OK) {
        cli_error("decode", "%s: %s", cli_display_name(argv[1]), cap_strerror(e));
        return CLI_EBADINPUT;
    }
    return CLI_OK;
}
