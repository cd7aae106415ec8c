/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* `capstore db` on a Redis tier (docs/redis.md): the database named by a
 * redis:// URI instead of a file. cmd_db.c sends the actions here when
 * db_is_redis says so; get and put go through the backend table as for
 * LMDB. */
#ifndef CAPSTORE_DB_REDIS_H
#define CAPSTORE_DB_REDIS_H

#include <stdbool.h>

#include "capstore/persist.h"

/* Whether the database name is a Redis URI ("redis://..."). */
bool db_is_redis(const char *name);

/* Open it (read-only unless `create`); the password from
 * CAPSTORE_REDIS_PASSWORD. CLI_OK or CLI_EBADINPUT (message printed). */
int db_redis_open(const char *sub, const char *uri, bool create, cap_backend_t **out);

/* db stats: masters, replicas, what writes wait for, blobs, bytes, roots. */
int db_redis_stats(const char *uri, bool json);

/* db check: every blob under the prefix decoded and re-hashed, every named
 * root's graph complete; lists each problem. */
int db_redis_check(const char *uri);

#endif
