/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Naming a cap on the command line (db_resolve.c): a hash, a unique prefix
 * of one, or a root name. */
#ifndef CAPSTORE_DB_RESOLVE_H
#define CAPSTORE_DB_RESOLVE_H

#include <stdbool.h>

#include "capstore/persist.h"

/* Shortest prefix taken (as git takes 4 hex digits). */
#define DB_PREFIX_MIN 4

/* Whether `arg` could name a cap at all: 64 hex digits, at least
 * DB_PREFIX_MIN hex digits, or a valid root name. */
bool db_nameable(const char *arg);

/* The hash `arg` names in `db` (at `path`, for messages): 64 hex digits
 * (taken as is, stored or not), a prefix of at least DB_PREFIX_MIN hex
 * digits that exactly one stored blob has, or a root name. *is_root (may
 * be NULL) says it was a root name. CLI_OK; CLI_EBADINPUT with a message
 * for no such root, no blob with that prefix, or a prefix several have
 * (each listed); CLI_EUSAGE (message and usage printed) for an argument
 * that is none of the three. */
int db_resolve(const char *sub, const char *usage, cap_backend_t *db, const char *path, const char *arg,
               cap_hash_t *out, bool *is_root);

#endif
