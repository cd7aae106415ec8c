/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The db actions of a database's life: browsing (cmd_db_ls.c: ls, roots,
 * root), collection (cmd_db_gc.c: gc, compact) and archives
 * (cmd_db_archive.c: export, import). This file routes them and holds what
 * they share: the --db rule and opening the database writable without
 * creating it. Each but compact works on a redis:// tier too
 * (docs/redis.md), through the backend table; gc calls each backend's own
 * collection. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "cmd_db.h"
#include "cmd_db_life.h"
#include "db_guard.h"
#include "db_redis.h"

typedef struct life_action {
    const char *name;
    int (*run)(int argc, char **argv);
} life_action_t;

static const life_action_t life_actions[] = {
    {"ls", db_ls},         {"roots", db_roots},   {"root", db_root},     {"gc", db_gc},
    {"compact", db_compact}, {"export", db_export}, {"import", db_import},
};

bool db_life_action(const char *action)
{
    for (size_t i = 0; i < sizeof life_actions / sizeof life_actions[0]; i++)
        if (strcmp(life_actions[i].name, action) == 0) return true;
    return false;
}

int db_life_run(const char *action, int argc, char **argv)
{
    for (size_t i = 0; i < sizeof life_actions / sizeof life_actions[0]; i++)
        if (strcmp(life_actions[i].name, action) == 0) return life_actions[i].run(argc, argv);
    return CLI_EUSAGE;
}

int db_life_args(const char *sub, const char *usage_text, void (*help_fn)(void), int argc, char **argv, cli_opt_t *opts,
                 const char **path, int *npos)
{
    bool want_help;
    int rc = cli_parse_args(sub, usage_text, argc, argv, opts, &want_help, npos);
    if (rc != CLI_OK) return rc;
    if (want_help) {
        help_fn();
        return DB_LIFE_HELPED;
    }
    *path = cli_db_path(opts[0].value);
    if (!**path) return cli_usage_error(sub, usage_text, "--db wants a file name");
    return CLI_OK;
}

int db_open_existing(const char *sub, const char *path, bool writable, cap_backend_t **out)
{
    *out = NULL;
    if (db_is_redis(path)) return db_open(sub, path, writable, out); /* a tier is there or unreachable */
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT) {
        cli_error(sub, "no database at %s", path);
        return CLI_EBADINPUT;
    }
    return db_open(sub, path, writable, out);
}
