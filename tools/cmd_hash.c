/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore hash FILE: the cap hash of a wire file, as 64 lowercase hex digits. */
#include <stdio.h>

#include "cli.h"

static const char usage[] = "capstore hash FILE";

static void help(void)
{
    printf("usage: %s\n\n"
           "Decode FILE (the wire form of one cap; '-' reads standard input) and print its\n"
           "cap hash: mix_in_selector(hash_tree_root(payload), kind), as 64 lowercase hex\n"
           "digits and a newline.\n\n"
           "Exit status: 0 success, 1 unreadable or malformed input (the message names the\n"
           "rule broken and its byte offset), 2 usage error.\n",
           usage);
}

int cmd_hash(int argc, char **argv)
{
    int npos;
    bool want_help;
    int rc = cli_parse_args("hash", usage, argc, argv, NULL, &want_help, &npos);
    if (rc != CLI_OK) return rc;
    if (want_help) {
        help();
        return CLI_OK;
    }
    if (npos != 1) return cli_usage_error("hash", usage, npos ? "too many arguments" : "missing FILE");
    cap_t *c;
    rc = cli_decode_file("hash", argv[1], &c, NULL);
    if (rc != CLI_OK) return rc;
    char hex[65];
    int e = cli_hash_hex(c, hex);
    cap_release(c);
    if (e != CAP_OK) {
        cli_error("hash", "%s: %s", cli_display_name(argv[1]), cap_strerror(e));
        return CLI_EBADINPUT;
    }
    printf("%s\n", hex);
    return CLI_OK;
}
