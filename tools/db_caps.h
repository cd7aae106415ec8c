/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Caps read from a database for `capstore inspect --db` and `capstore dot
 * --db` (db_caps.c). */
#ifndef CAPSTORE_DB_CAPS_H
#define CAPSTORE_DB_CAPS_H

#include <stddef.h>

#include "cap_dot.h"
#include "capstore/cap.h"

/* The caps the `n` arguments name (hashes, prefixes or root names,
 * db_resolve) in the database at `path` (read-only, crash guard armed):
 * read, decoded and verified. caps[i], hashes[i], lens[i] (the wire
 * size). CLI_OK, or the status of the first failure (message printed;
 * nothing to release then). */
int db_caps_load(const char *sub, const char *usage, const char *path, char **args, int n, cap_t **caps,
                 cap_hash_t *hashes, size_t *lens);

/* Every cap reachable from the caps the arguments name, decoded and
 * verified, as DOT nodes (*nodes malloc'd, *count of them; the caller
 * releases each node's cap and frees the array). A hash stored nowhere
 * fails (status 1, naming it). */
int db_caps_closure(const char *sub, const char *usage, const char *path, char **args, int n, cap_dot_node_t **nodes,
                    size_t *count);

#endif
