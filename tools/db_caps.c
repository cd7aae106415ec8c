/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Caps read from a database for inspect and dot (db_caps.h): the arguments
 * resolved as db actions resolve them, each blob decoded and its hash
 * checked, a closure walked with cap_backend_walk. */
#include <stdlib.h>
#include <string.h>

#include "capstore/host.h"
#include "capstore/persist.h"
#include "cli.h"
#include "cmd_db.h"
#include "db_caps.h"
#include "db_resolve.h"

int db_caps_load(const char *sub, const char *usage, const char *path, char **args, int n, cap_t **caps,
                 cap_hash_t *hashes, size_t *lens)
{
    for (int i = 0; i < n; i++)
        if (!db_nameable(args[i]))
            return cli_usage_error(sub, usage, "'%s' is not a hash, a hash prefix or a root name", args[i]);
    cap_backend_t *db;
    int rc = db_open(sub, path, false, &db);
    if (rc != CLI_OK) return rc;
    int loaded = 0;
    for (int i = 0; i < n && rc == CLI_OK; i++) {
        rc = db_resolve(sub, usage, db, path, args[i], &hashes[i], NULL);
        if (rc != CLI_OK) break;
        uint8_t *bytes = NULL;
        cap_err_t e;
        memset(&e, 0, sizeof e);
        int crc = cap_backend_read(db, &hashes[i], cap_alloc_libc(), &bytes, &lens[i], &e);
        if (crc == CAP_OK) crc = cap_persist_decode(&hashes[i], bytes, lens[i], cap_alloc_libc(), true, &caps[i], &e);
        free(bytes);
        if (crc == CAP_ENOTFOUND) {
            char hex[65];
            cli_hex(hex, hashes[i].bytes, 32);
            cli_error(sub, "%s: no blob %s", path, hex);
            rc = CLI_EBADINPUT;
        } else if (crc != CAP_OK) {
            rc = db_error(sub, path, crc, &e);
        } else {
            loaded++;
        }
    }
    cap_backend_free(db);
    if (rc != CLI_OK)
        for (int i = 0; i < loaded; i++) cap_release(caps[i]);
    return rc;
}

typedef struct closure {
    cap_dot_node_t *nodes;
    size_t n, room;
    bool nomem;
} closure_t;

static int keep(void *arg, const cap_walk_visit_t *v)
{
    closure_t *c = arg;
    if (c->n == c->room) {
        size_t room = c->room ? c->room * 2 : 64;
        cap_dot_node_t *nn = realloc(c->nodes, room * sizeof *nn);
        if (!nn) {
            c->nomem = true;
            return CAP_ENOMEM;
        }
        c->nodes = nn;
        c->room = room;
    }
    c->nodes[c->n].hash = v->hash;
    c->nodes[c->n].cap = cap_retain((cap_t *)v->cap);
    c->n++;
    return 0;
}

int db_caps_closure(const char *sub, const char *usage, const char *path, char **args, int n, cap_dot_node_t **nodes,
                    size_t *count)
{
    *nodes = NULL;
    *count = 0;
    for (int i = 0; i < n; i++)
        if (!db_nameable(args[i]))
            return cli_usage_error(sub, usage, "'%s' is not a hash, a hash prefix or a root name", args[i]);
    cap_backend_t *db;
    int rc = db_open(sub, path, false, &db);
    if (rc != CLI_OK) return rc;
    cap_hash_t *roots = calloc((size_t)n + 1, sizeof *roots);
    if (!roots) {
        cap_backend_free(db);
        cli_error(sub, "out of memory");
        return CLI_EBADINPUT;
    }
    for (int i = 0; i < n && rc == CLI_OK; i++) rc = db_resolve(sub, usage, db, path, args[i], &roots[i], NULL);
    closure_t c = {NULL, 0, 0, false};
    if (rc == CLI_OK) {
        cap_walk_options_t o = CAP_WALK_OPTIONS_INIT;
        o.flags = CAP_WALK_VERIFY;
        cap_err_t e;
        memset(&e, 0, sizeof e);
        int crc = cap_backend_walk(db, roots, (size_t)n, &o, cap_alloc_libc(), keep, &c, NULL, &e);
        if (c.nomem) {
            cli_error(sub, "out of memory");
            rc = CLI_EBADINPUT;
        } else if (crc != CAP_OK) {
            rc = db_error(sub, path, crc, &e);
        }
    }
    free(roots);
    cap_backend_free(db);
    if (rc != CLI_OK) {
        for (size_t i = 0; i < c.n; i++) cap_release((cap_t *)c.nodes[i].cap);
        free(c.nodes);
        return rc;
    }
    *nodes = c.nodes;
    *count = c.n;
    return CLI_OK;
}
