/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Shared by the `capstore db` actions (cmd_db.c, cmd_db_check.c). */
#ifndef CAPSTORE_CMD_DB_H
#define CAPSTORE_CMD_DB_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "capstore/persist.h"

/* Print "capstore SUB: PATH: <cap_err_format>" and return CLI_EBADINPUT. */
int db_error(const char *sub, const char *path, int rc, const cap_err_t *e);

/* Open the database at `path` (read-only unless `create`), with the crash
 * guard armed for it. A read-only action on a missing file says "no
 * database at PATH". CLI_OK or CLI_EBADINPUT (message printed). */
int db_open(const char *sub, const char *path, bool create, cap_backend_t **out);

/* Progress on stderr, only when it is a terminal (db_progress.c): a line
 * rewritten at most a few times a second with the count, the rate and, when
 * given, the bytes; erased at the end. */
typedef struct db_progress {
    bool on;
    uint64_t t0, shown; /* start and last update (ms, monotonic) */
    bool drawn;
} db_progress_t;

void db_progress_init(db_progress_t *p);
/* For a command whose data goes to standard output: silent also when that
 * is the terminal (progress would mix with the data). */
void db_progress_init_data(db_progress_t *p);
void db_progress_tick(db_progress_t *p, const char *what, uint64_t done, uint64_t total);
/* "what N (R/s), B MiB" */
void db_progress_bytes(db_progress_t *p, const char *what, uint64_t count, uint64_t bytes);
/* A cap_progress_fn over a db_progress_t (arg): the phase names the count. */
void db_progress_fn(void *arg, const char *phase, uint64_t count, uint64_t bytes);
void db_progress_end(db_progress_t *p);

/* The actions of the database's life (cmd_db_life.c): whether `action` is
 * one, and running it with argv[0] the subcommand name and the action
 * removed from argv. */
bool db_life_action(const char *action);
int db_life_run(const char *action, int argc, char **argv);

/* capstore db check (cmd_db_check.c). */
int db_check(const char *path);

#endif
