/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Key slots and the slot map (Redis Cluster specification: a key's slot is
 * CRC16-XMODEM of the key, or of its hash tag, mod 16384; CLUSTER SLOTS
 * lists which master serves which range, and its replicas).
 *
 * The map is read under a read lock by every batch; a refresh fetches
 * CLUSTER SLOTS without any lock held (a node may be slow), then installs
 * the new map under the write lock. Refreshes are serialised, and one that
 * finds the map already newer than what its caller routed with returns at
 * once, so a burst of MOVED replies costs one refresh. */
#include <stdlib.h>
#include <string.h>

#include "redis_internal.h"

#define NO_NODE 0xFFFFu

/* The CRC of each byte value, built once (every key is hashed: a bit at a
 * time would cost eight steps a byte). */
static uint16_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_table_build(void)
{
    for (unsigned v = 0; v < 256; v++) {
        uint16_t crc = (uint16_t)(v << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        crc_table[v] = crc;
    }
}

uint16_t redis_crc16(const uint8_t *p, size_t n)
{
    pthread_once(&crc_once, crc_table_build);
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) crc = (uint16_t)((crc << 8) ^ crc_table[((crc >> 8) ^ p[i]) & 0xffu]);
    return crc;
}

unsigned redis_key_slot(const uint8_t *key, size_t n)
{
    const uint8_t *open = memchr(key, '{', n);
    if (open) {
        size_t start = (size_t)(open - key) + 1;
        const uint8_t *close = memchr(key + start, '}', n - start);
        if (close && (size_t)(close - key) > start)
            return redis_crc16(key + start, (size_t)(close - key) - start) & (REDIS_SLOTS - 1);
    }
    return redis_crc16(key, n) & (REDIS_SLOTS - 1);
}

int redis_node_index_locked(redis_t *r, const char *host, int port, unsigned *out)
{
    for (size_t i = 0; i < r->nnodes; i++)
        if (r->nodes[i].addr.port == port && strcmp(r->nodes[i].addr.host, host) == 0) {
            *out = (unsigned)i;
            return CAP_OK;
        }
    if (r->nnodes == REDIS_MAX_NODES) return CAP_EBACKEND;
    size_t hl = strlen(host);
    if (hl >= REDIS_HOST_MAX) return CAP_EBACKEND;
    redis_node_t *nd = &r->nodes[r->nnodes];
    memcpy(nd->addr.host, host, hl + 1);
    nd->addr.port = port;
    /* An IPv6 address is bracketed so that host:port reads unambiguously. */
    if (strchr(host, ':'))
        snprintf(nd->name, sizeof nd->name, "[%s]:%d", host, port);
    else
        snprintf(nd->name, sizeof nd->name, "%s:%d", host, port);
    nd->nidle = 0;
    pthread_mutex_init(&nd->mu, NULL);
    *out = (unsigned)r->nnodes++;
    return CAP_OK;
}

unsigned redis_route(redis_t *r, unsigned slot, uint64_t *epoch)
{
    pthread_rwlock_rdlock(&r->map_mu);
    unsigned ni = r->slot_node[slot];
    if (epoch) *epoch = r->epoch;
    /* An unserved slot goes to the first node: it answers CLUSTERDOWN or
     * MOVED, which the batch handles. */
    if (ni == NO_NODE) ni = r->masters[0];
    pthread_rwlock_unlock(&r->map_mu);
    return ni;
}

size_t redis_masters(redis_t *r, unsigned *out, size_t cap)
{
    pthread_rwlock_rdlock(&r->map_mu);
    size_t n = r->nmasters < cap ? r->nmasters : cap;
    for (size_t i = 0; i < n; i++) out[i] = r->masters[i];
    pthread_rwlock_unlock(&r->map_mu);
    return n;
}

static bool is_int(const redisReply *x) { return x && x->type == REDIS_REPLY_INTEGER; }

/* Install a CLUSTER SLOTS reply got from node `asked` (write lock held). */
static int install_slots(redis_t *r, const redisReply *rep, unsigned asked)
{
    uint16_t *map = r->scratch_map; /* guarded by refresh_mu */
    uint16_t masters[REDIS_MAX_NODES];
    bool replica[REDIS_MAX_NODES];
    size_t nmasters = 0, nreplicas = 0;
    memset(replica, 0, sizeof replica);
    bool every_range_replicated = rep->elements > 0;
    for (size_t s = 0; s < REDIS_SLOTS; s++) map[s] = NO_NODE;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 3 || !is_int(e->element[0]) ||
            !is_int(e->element[1]))
            return CAP_EBACKEND;
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        if (lo < 0 || hi >= REDIS_SLOTS || lo > hi) return CAP_EBACKEND;
        unsigned ids[2] = {0, 0};
        for (size_t k = 2; k < e->elements; k++) {
            const redisReply *nd = e->element[k];
            if (!nd || nd->type != REDIS_REPLY_ARRAY || nd->elements < 2 ||
                nd->element[0]->type != REDIS_REPLY_STRING || !is_int(nd->element[1]))
                return CAP_EBACKEND;
            /* An empty (or "?") endpoint means: the node you asked. */
            const char *host = nd->element[0]->str;
            if (nd->element[0]->len == 0 || strcmp(host, "?") == 0) host = r->nodes[asked].addr.host;
            long long port = nd->element[1]->integer;
            if (port < 1 || port > 65535) return CAP_EBACKEND;
            unsigned ni;
            if (redis_node_index_locked(r, host, (int)port, &ni) != CAP_OK) return CAP_EBACKEND;
            if (k == 2) {
                ids[0] = ni;
            } else {
                if (!replica[ni]) nreplicas++;
                replica[ni] = true;
                ids[1] = 1;
            }
        }
        if (!ids[1]) every_range_replicated = false;
        bool known = false;
        for (size_t m = 0; m < nmasters; m++)
            if (masters[m] == ids[0]) known = true;
        if (!known && nmasters < REDIS_MAX_NODES) masters[nmasters++] = (uint16_t)ids[0];
        for (long long s = lo; s <= hi; s++) map[s] = (uint16_t)ids[0];
    }
    if (nmasters == 0) return CAP_EBACKEND;
    memcpy(r->slot_node, map, sizeof r->slot_node);
    memcpy(r->masters, masters, nmasters * sizeof masters[0]);
    r->nmasters = nmasters;
    r->nreplicas = every_range_replicated ? nreplicas : 0;
    r->cluster = true;
    r->epoch++;
    return CAP_OK;
}

static void install_lone(redis_t *r, unsigned ni)
{
    for (size_t s = 0; s < REDIS_SLOTS; s++) r->slot_node[s] = (uint16_t)ni;
    r->masters[0] = (uint16_t)ni;
    r->nmasters = 1;
    r->nreplicas = 0;
    r->cluster = false;
    r->epoch++;
}

int redis_refresh_map(redis_t *r, uint64_t seen_epoch, cap_err_t *err)
{
    pthread_mutex_lock(&r->refresh_mu);
    pthread_rwlock_rdlock(&r->map_mu);
    uint64_t now = r->epoch;
    size_t nnodes = r->nnodes;
    pthread_rwlock_unlock(&r->map_mu);
    if (now > seen_epoch) {
        pthread_mutex_unlock(&r->refresh_mu);
        return cap_err_set(err, CAP_OK, NULL);
    }
    /* The seeds were registered first (nodes 0..nseeds-1); then the nodes
     * learnt since, masters and replicas alike (after a failover a replica
     * may be the one that knows). */
    int rc = CAP_EBACKEND;
    cap_err_t last;
    memset(&last, 0, sizeof last);
    cap_err_set(&last, CAP_EBACKEND, "no node answered");
    for (size_t i = 0; i < nnodes && rc != CAP_OK; i++) {
        const char *argv[2] = {"CLUSTER", "SLOTS"};
        size_t argvlen[2] = {7, 5};
        cap_err_t e;
        redisReply *rep = redis_node_command(r, (unsigned)i, 2, argv, argvlen, &e);
        if (!rep) {
            last = e;
            continue;
        }
        pthread_rwlock_wrlock(&r->map_mu);
        if (rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "cluster support disabled")) {
            install_lone(r, (unsigned)i);
            rc = CAP_OK;
        } else if (rep->type == REDIS_REPLY_ARRAY) {
            rc = install_slots(r, rep, (unsigned)i);
            if (rc != CAP_OK) {
                /* An empty map (the cluster still forming) or a reply we
                 * cannot read: ask the next node. */
                redis_node_fail(r, (unsigned)i, &last, "the node gave no usable slot map", NULL);
            }
        } else {
            redis_node_fail(r, (unsigned)i, &last, "CLUSTER SLOTS failed",
                            rep->type == REDIS_REPLY_ERROR ? rep->str : NULL);
        }
        pthread_rwlock_unlock(&r->map_mu);
        freeReplyObject(rep);
    }
    pthread_mutex_unlock(&r->refresh_mu);
    if (rc != CAP_OK) {
        if (err) *err = last;
        return CAP_EBACKEND;
    }
    return cap_err_set(err, CAP_OK, NULL);
}
