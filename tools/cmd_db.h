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

/* Progress on stderr (only when it is a terminal), at most once a second. */
typedef struct db_progress {
    bool on;
    time_t last;
} db_progress_t;

void db_progress_init(db_progress_t *p);
void db_progress_tick(db_progress_t *p, const char *what, uint64_t done, uint64_t total);
void db_progress_end(db_progress_t *p);

/* capstore db check (cmd_db_check.c). */
int db_check(const char *path);

#endif
