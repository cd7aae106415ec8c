/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The db actions of a database's life (cmd_db_life.c and the files it
 * names). Each gets argv[0] = "db" and the action removed. */
#ifndef CAPSTORE_CMD_DB_LIFE_H
#define CAPSTORE_CMD_DB_LIFE_H

#include <stdbool.h>

#include "capstore/persist.h"
#include "cli.h"

int db_ls(int argc, char **argv);
int db_roots(int argc, char **argv);
int db_root(int argc, char **argv);
int db_gc(int argc, char **argv);
int db_compact(int argc, char **argv);
int db_export(int argc, char **argv);
int db_import(int argc, char **argv);

/* cli_parse_args with `opts[0]` being --db, then the database path by the
 * rule (cli_db_path). CLI_OK, a usage error, or DB_LIFE_HELPED after
 * printing the help (the action then returns CLI_OK). */
#define DB_LIFE_HELPED (-1)
int db_life_args(const char *sub, const char *usage, void (*help)(void), int argc, char **argv, cli_opt_t *opts,
                 const char **path, int *npos);

/* Open a database that must exist ("no database at PATH" otherwise),
 * writable or read-only, crash guard armed. */
int db_open_existing(const char *sub, const char *path, bool writable, cap_backend_t **out);

/* The kind of a blob from its wire bytes' selector, without decoding:
 * "instance", ..., or "unknown". */
const char *db_wire_kind(const uint8_t *bytes, size_t n);

#endif
