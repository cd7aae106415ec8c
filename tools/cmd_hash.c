/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore hash FILE...: the cap hash of wire files, as 64 lowercase hex
 * digits; with several files one "HASH  FILE" line each, as sha256sum. */
#include <stdio.h>

#include "cli.h"

static const char usage[] = "capstore hash FILE...";

static void help(void)
{
    printf("usage: %s\n\n"
           "Decode each FILE (the wire form of one cap; '-' reads standard input) and print\n"
           "its cap hash: mix_in_selector(hash_tree_root(payload), kind), as 64 lowercase\n"
           "hex digits. With one FILE the line is the bare hash, so that scripts can write\n"
           "$(capstore hash x.cap); with several, each line is \"HASH  FILE\", as sha256sum\n"
           "prints. A file that fails is reported and the others are still hashed.\n\n"
           "Exit status: 0 success, 1 an unreadable or malformed input (the message names\n"
           "the rule broken and its byte offset), 2 usage error.\n",
           usage);
}

/* The hash of one file, or its error on stderr. */
static int hash_one(const char *path, char hex[65])
{
    cap_t *c;
    int rc = cli_decode_file("hash", path, &c, NULL);
    if (rc != CLI_OK) return rc;
    int e = cli_hash_hex(c, hex);
    cap_release(c);
    if (e != CAP_OK) {
        cli_error("hash", "%s: %s", cli_display_name(path), cap_strerror(e));
        return CLI_EBADINPUT;
    }
    return CLI_OK;
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
    if (npos == 0) return cli_usage_error("hash", usage, "missing FILE");
    int status = CLI_OK;
    for (int i = 1; i <= npos; i++) {
        char hex[65];
        if (hash_one(argv[i], hex) != CLI_OK) {
            status = CLI_EBADINPUT;
            continue;
        }
        if (npos == 1)
            printf("%s\n", hex);
        else
            printf("%s  %s\n", hex, argv[i]);
    }
    return status; /* a write error on standard output: close_stdout at exit */
}
