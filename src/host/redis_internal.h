/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The Redis backend's parts (src/host/redis_*.c), shared between them only:
 *   redis_uri.c      the URI: seeds, user, prefix
 *   redis_slots.c    CRC16 and key slots, the slot map and its refresh
 *   redis_conn.c     connections per node (pooled), pipelined batches with
 *                    MOVED / ASK / retries
 *   redis_backend.c  the backend table (sys/backend.h) and cap_redis_open
 *   redis_walk.c     a graph's closure in the server (roots check it)
 *   redis_scan.c     blob keys found by SCAN (iterate, stats, prefixes, gc)
 *   redis_prefix.c   cap_redis_find_prefix
 *   redis_collect.c  cap_redis_collect */
#ifndef CAPSTORE_REDIS_INTERNAL_H
#define CAPSTORE_REDIS_INTERNAL_H

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capstore/persist.h"

#define REDIS_SLOTS 16384
#define REDIS_HOST_MAX 256
#define REDIS_MAX_SEEDS 32
#define REDIS_MAX_NODES 256 /* nodes ever seen (masters and replicas); never removed */
#define REDIS_POOL_MAX 32   /* idle connections kept per node */

/* URI ------------------------------------------------------------------------------------ */

typedef struct redis_addr {
    char host[REDIS_HOST_MAX];
    int port;
} redis_addr_t;

typedef struct redis_uri {
    redis_addr_t seeds[REDIS_MAX_SEEDS];
    size_t nseeds;
    char user[REDIS_HOST_MAX]; /* "" when none */
    char *prefix;              /* malloc'd, percent-decoded; NULL when not given */
    size_t prefix_len;
    int wait;                  /* ?wait=K: K >= 0; -1 when not given */
} redis_uri_t;

/* Parse `uri`. CAP_OK, or CAP_EINVAL with err->what (and the offending
 * part in err->detail, never a password), or CAP_ENOMEM. */
int redis_uri_parse(const char *uri, redis_uri_t *out, cap_err_t *err);
void redis_uri_free(redis_uri_t *u);

/* Slots ---------------------------------------------------------------------------------- */

/* CRC16-XMODEM (polynomial 0x1021, initial 0), as the cluster specification
 * defines it for key slots. */
uint16_t redis_crc16(const uint8_t *p, size_t n);
/* The slot of a key: CRC16 of the key, or of its hash tag (the bytes between
 * the first '{' and the next '}' when not empty), mod 16384. */
unsigned redis_key_slot(const uint8_t *key, size_t n);

/* Connections and nodes -------------------------------------------------------------------- */

typedef struct redis_node {
    redis_addr_t addr;
    char name[REDIS_HOST_MAX + 8]; /* "host:port", for messages */
    pthread_mutex_t mu;            /* guards the pool */
    redisContext *idle[REDIS_POOL_MAX];
    size_t nidle;
} redis_node_t;

typedef struct redis {
    cap_backend_t table; /* first: ctx points here */
    redis_uri_t uri;
    char *prefix; /* the key prefix in use (malloc'd) */
    size_t prefix_len;
    char *password; /* malloc'd, wiped at free; NULL when none */
    unsigned flags;
    unsigned connect_ms, command_ms, retry_ms, wait_ms;
    int wait_replicas; /* resolved: 0 means do not wait */
    size_t max_blob;
    bool cluster; /* cluster mode (else a lone server: every slot on node 0) */

    /* The slot map: slot -> node index. Read under the read lock; a refresh
     * takes the write lock and bumps `epoch`. Nodes are only appended (an
     * index stays valid), under the write lock. */
    pthread_rwlock_t map_mu;
    pthread_mutex_t refresh_mu; /* one refresh at a time */
    uint16_t slot_node[REDIS_SLOTS];
    uint16_t scratch_map[REDIS_SLOTS]; /* a refresh builds here (refresh_mu) */
    uint64_t epoch;
    size_t nmasters, nreplicas;
    redis_node_t *nodes; /* REDIS_MAX_NODES, allocated at open */
    size_t nnodes;
    /* Masters in the order of the last map, for scans. */
    uint16_t masters[REDIS_MAX_NODES];
} redis_t;

/* The node of `slot` under the current map, and the map's epoch. */
unsigned redis_route(redis_t *r, unsigned slot, uint64_t *epoch);
/* Refetch the slot map from any known node (the seeds first) unless another
 * thread already did since `seen_epoch` (then CAP_OK at once). CAP_EBACKEND
 * when no node answered (err->detail names the last one tried). */
int redis_refresh_map(redis_t *r, uint64_t seen_epoch, cap_err_t *err);
/* Index of the node host:port, added if new (write lock held by caller). */
int redis_node_index_locked(redis_t *r, const char *host, int port, unsigned *out);
/* The masters of the current map (a copy), for scans; returns the count. */
size_t redis_masters(redis_t *r, unsigned *out, size_t cap);

/* A connection of node `ni` from its pool, or a new one (connected, timed
 * out, authenticated). NULL with err filled (node named) on failure. */
redisContext *redis_conn_get(redis_t *r, unsigned ni, cap_err_t *err);
/* Back to the pool when healthy (no error, no reply pending), else freed. */
void redis_conn_put(redis_t *r, unsigned ni, redisContext *c, bool healthy);
/* SIGPIPE blocked in this thread while it talks to servers (redis_conn.c). */
void redis_sigpipe_block(sigset_t *old);
void redis_sigpipe_restore(const sigset_t *old);
/* Free every pooled connection. */
void redis_conns_close(redis_t *r);
/* Fill err: CAP_EBACKEND, `what`, detail "host:port" (and more text). */
int redis_node_fail(redis_t *r, unsigned ni, cap_err_t *err, const char *what, const char *more);

/* Pipelined batches ------------------------------------------------------------------------ */

/* One command of a batch: up to 6 arguments; `key` (argument 1) decides the
 * slot. The reply is kept for the caller (freeReplyObject by redis_batch_free). */
#define REDIS_CMD_ARGS 6
typedef struct redis_cmd {
    int argc;
    const char *argv[REDIS_CMD_ARGS];
    size_t argvlen[REDIS_CMD_ARGS];
    bool write;        /* a write: the node's pipeline ends with WAIT */
    /* Filled by redis_batch_run: */
    redisReply *reply; /* the final reply (never a redirection) */
    int code;          /* CAP_OK when `reply` is set; else the item's error */
    /* internal */
    unsigned slot;
    int ask_node;      /* >= 0: send to this node after ASKING */
    bool pending;
} redis_cmd_t;

/* Run `n` commands: grouped by node, one pipeline per node per attempt (all
 * nodes' pipelines written before any reply is read, so nodes work at once),
 * redirections followed (MOVED refreshes the map; ASK sends ASKING first),
 * TRYAGAIN / CLUSTERDOWN / LOADING / lost connections retried with backoff
 * for up to r->retry_ms. Writes end each node's pipeline with WAIT when
 * r->wait_replicas > 0; a node that acknowledged fewer replicas fails its
 * writes. Every command gets its code: CAP_OK (reply set: a server error
 * reply other than a redirection is a reply too, for the caller to judge) or
 * CAP_EBACKEND. Returns CAP_OK when every command has a reply, else the
 * first failure (err: what, node), or CAP_ENOMEM. */
int redis_batch_run(redis_t *r, redis_cmd_t *cmds, size_t n, cap_err_t *err);
/* Free the replies. */
void redis_batch_free(redis_cmd_t *cmds, size_t n);
/* One command to node `ni` (no routing): the reply, or NULL with err set. */
redisReply *redis_node_command(redis_t *r, unsigned ni, int argc, const char **argv,
                               const size_t *argvlen, cap_err_t *err);

/* Keys ------------------------------------------------------------------------------------- */

/* Blob key: prefix + 32 raw bytes, into buf (r->prefix_len + 32 bytes). */
void redis_blob_key(const redis_t *r, const cap_hash_t *h, uint8_t *buf);
/* The roots hash's key: prefix + "roots" (malloc'd into *key). */
int redis_roots_key(const redis_t *r, char **key, size_t *len);

/* Scans (redis_scan.c) ---------------------------------------------------------------------- */

/* SCAN every master for blob keys whose hash begins with the `ntail` bytes
 * `tail` (0: every blob key); `each` gets the hashes of each page and may
 * stop the scan by returning non-zero (returned). SCAN may give a key more
 * than once, and one written or deleted meanwhile or not. */
int redis_scan_blobs(redis_t *r, const uint8_t *tail, size_t ntail,
                     int (*each)(void *arg, const cap_hash_t *hs, size_t n), void *arg, cap_err_t *err);

/* Closure (redis_walk.c) ------------------------------------------------------------------- */

/* Every hash reachable from `roots` stored: CAP_OK, or CAP_EBLOBMISSING
 * with err->hash the first missing one, or a read, decode or verify error
 * (err->hash names the blob). Reads level by level in batches. */
int redis_check_closure(redis_t *r, const cap_hash_t *roots, size_t nroots, cap_err_t *err);

#endif
