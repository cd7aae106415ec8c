/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The capstore command: one function per subcommand, and the helpers they
 * share (tools/cmd_common.c). Exit statuses: 0 success, 1 bad input or a
 * failed check, 2 usage error. */
#ifndef CAPSTORE_CLI_H
#define CAPSTORE_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "capstore/cap.h"

/* Exit statuses. */
#define CLI_OK 0
#define CLI_EBADINPUT 1
#define CLI_EUSAGE 2

/* Subcommands (each gets argv[0] = its own name). */
int cmd_vectors(int argc, char **argv);
int cmd_hash(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_dot(int argc, char **argv);
int cmd_db(int argc, char **argv);
int cmd_demo(int argc, char **argv);

/* Shared helpers (cmd_common.c) -------------------------------------------------------- */

/* True for "--help" and "-h". */
bool cli_is_help(const char *arg);

/* Print "capstore <sub>: <message>\n" on stderr. */
void cli_error(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A usage error: the message, then "usage: <usage>" and a --help hint on
 * stderr. Returns CLI_EUSAGE. */
int cli_usage_error(const char *sub, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An option of a subcommand: a flag (has_value false: `seen` is set) or an
 * option taking the next argument (its `value`). Arrays end with name NULL. */
typedef struct cli_opt {
    const char *name;
    bool has_value;
    bool seen;
    const char *value;
} cli_opt_t;

/* Split argv (argv[0] is the subcommand name) into options and positional
 * arguments: "-" is positional (standard input), "--" ends options,
 * "--help"/"-h" sets *help, the options in `opts` (may be NULL) are filled
 * in; any other argument starting with '-' is a usage error. The positional
 * arguments are moved, in order, to argv[1..*npos]. Returns CLI_OK or
 * CLI_EUSAGE (after printing the error). */
int cli_parse_args(const char *sub, const char *usage, int argc, char **argv, cli_opt_t *opts,
                   bool *help, int *npos);

/* Read a whole file ("-" = standard input) into a malloc'd buffer (never
 * NULL on success, even when empty). Prints the error and returns
 * CLI_EBADINPUT on failure. */
int cli_read_file(const char *sub, const char *path, uint8_t **buf, size_t *n);

/* The name to show for a path ("-" shows as "<stdin>"). */
const char *cli_display_name(const char *path);

/* Read and decode a wire file. On failure prints "<file>: <cap_err_format>"
 * (rule and byte offset), with a hint to use `encode` when the input is JSON,
 * and returns CLI_EBADINPUT. *wire_len (may be NULL)
 * gets the input length. The cap is a new reference. */
int cli_decode_file(const char *sub, const char *path, cap_t **out, size_t *wire_len);

/* Whether bytes that are not a cap look like its JSON form (an object,
 * after blanks): a wire cap starts with a selector byte 0..4, never '{'. */
bool cli_looks_like_json(const uint8_t *buf, size_t n);

/* After a failed decode of `path`: if its bytes look like JSON, print a hint
 * that `capstore encode` makes wire bytes from it. */
void cli_hint_json(const char *sub, const char *path, const uint8_t *buf, size_t n);

/* The database a command uses, by one rule everywhere: the value of
 * `--db PATH` when given (`opt_value`, may be NULL), else the CAPSTORE_DB
 * environment variable when set and not empty, else ./capstore.lmdb.
 * Positional arguments are never taken for the database. */
#define CLI_DB_DEFAULT "./capstore.lmdb"
const char *cli_db_path(const char *opt_value);

/* Lowercase hex of n bytes into out (2n+1 chars, NUL-terminated). */
void cli_hex(char *out, const uint8_t *bytes, size_t n);

/* Hash of a cap as 64 lowercase hex chars (+NUL). Returns a cap error code. */
int cli_hash_hex(const cap_t *c, char out[65]);

/* Lowercase kind name: "instance", "image", "data", "cnode", "type". */
const char *cli_kind_name(cap_kind_t k);

#endif
