/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* cap_store_prefetch against the cluster, with its round trips counted from
 * outside the backend: every node of the cluster announces (cluster-announce-
 * port) the port of a proxy in this program, so every client connection goes
 * through one. The proxy holds each reply back for DELAY_MS (a slow
 * network) and counts, per node, the bursts of client data that start
 * after a silence of at least DELAY_MS / 2: a client that waits for a reply
 * before it sends again is silent that long, one that pipelines is not, so
 * a burst is a round trip. (Replicas reach their masters through the
 * proxies too; their links are told by REPLCONF / PSYNC and not counted.)
 *
 *   - the counter counts: 20 fetches one at a time are 20 round trips;
 *   - the settle_tree graph (4-ary, 9 levels, 87381 caps; leaves are Data
 *     caps so that the graph is closed; CAPSTORE_REDIS_PREFETCH_LEVELS
 *     makes it smaller) written to the cluster, then a fresh store on a
 *     fresh backend prefetches it from its root: every cap in memory, and
 *     at most depth + 2 round trips per master, opening the backend
 *     included. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "redis_servers.h"
#include "test_caps.h"
#include "test_rng.h"

/* The silence that starts a round trip must stay well above the gaps in a
 * client's own pipelined writes, which a busy machine (ctest -j2 beside
 * other tests: 12 bursts on one master at 20 ms) or a sanitizer's slowdown
 * (13-14 under ASan at 20 ms) stretches to tens of milliseconds;
 * CAPSTORE_TEST_TIME_SCALE (an emulator) stretches it further. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BASE_DELAY_MS 200
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define BASE_DELAY_MS 200
#endif
#endif
#ifndef BASE_DELAY_MS
#define BASE_DELAY_MS 80
#endif
static unsigned delay_ms = BASE_DELAY_MS;
#define DELAY_MS delay_ms
#define MAX_NODES 6
#define MAX_CONNS 64

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The proxy ------------------------------------------------------------------------------- */

typedef struct chunk {
    struct chunk *next;
    uint64_t due;
    size_t len, off;
    uint8_t data[];
} chunk_t;

typedef struct pconn {
    int cfd, sfd, node;
    bool repl; /* a replica's link to its master (not a client: not counted) */
    chunk_t *down, *down_tail; /* server -> client, each held until due */
    uint8_t *up;               /* client -> server, sent at once */
    size_t up_len, up_off, up_cap;
} pconn_t;

typedef struct pnode {
    int lfd, port, real_port;
    atomic_long bursts;
    uint64_t last_up;
} pnode_t;

typedef struct proxy {
    pnode_t nodes[MAX_NODES];
    int n;
    pconn_t conns[MAX_CONNS];
    int nconns;
    int wake[2];
    atomic_int stop;
    pthread_t th;
} proxy_t;

static void nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0) return -1;
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    nonblock(fd);
    return fd;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    nonblock(fd);
    return fd;
}

static void conn_close(pconn_t *c)
{
    close(c->cfd);
    close(c->sfd);
    while (c->down) {
        chunk_t *k = c->down;
        c->down = k->next;
        free(k);
    }
    free(c->up);
    memset(c, 0, sizeof *c);
    c->cfd = c->sfd = -1;
}

static void *proxy_main(void *arg)
{
    proxy_t *p = arg;
    struct pollfd fds[1 + MAX_NODES + 2 * MAX_CONNS];
    uint8_t buf[65536];
    while (!atomic_load(&p->stop)) {
        int nf = 0;
        fds[nf++] = (struct pollfd){p->wake[0], POLLIN, 0};
        for (int i = 0; i < p->n; i++) fds[nf++] = (struct pollfd){p->nodes[i].lfd, POLLIN, 0};
        uint64_t now = now_ns(), next_due = UINT64_MAX;
        for (int i = 0; i < p->nconns; i++) {
            pconn_t *c = &p->conns[i];
            if (c->cfd < 0) {
                fds[nf++] = (struct pollfd){-1, 0, 0};
                fds[nf++] = (struct pollfd){-1, 0, 0};
                continue;
            }
            short cev = POLLIN, sev = POLLIN;
            if (c->down) {
                if (c->down->due <= now) cev |= POLLOUT;
                else if (c->down->due < next_due) next_due = c->down->due;
            }
            if (c->up_len > c->up_off) sev |= POLLOUT;
            fds[nf++] = (struct pollfd){c->cfd, cev, 0};
            fds[nf++] = (struct pollfd){c->sfd, sev, 0};
        }
        int timeout = next_due == UINT64_MAX ? 100 : (int)((next_due - now) / 1000000u) + 1;
        if (poll(fds, (nfds_t)nf, timeout) < 0 && errno != EINTR) break;
        now = now_ns();
        int f = 1;
        for (int i = 0; i < p->n; i++, f++) {
            if (!(fds[f].revents & POLLIN)) continue;
            int cfd = accept(p->nodes[i].lfd, NULL, NULL);
            if (cfd < 0) continue;
            int sfd = connect_to(p->nodes[i].real_port);
            int slot = -1;
            for (int k = 0; k < p->nconns && slot < 0; k++)
                if (p->conns[k].cfd < 0) slot = k;
            if (slot < 0 && p->nconns < MAX_CONNS) slot = p->nconns++;
            if (sfd < 0 || slot < 0) {
                close(cfd);
                if (sfd >= 0) close(sfd);
                continue;
            }
            nonblock(cfd);
            pconn_t *c = &p->conns[slot];
            memset(c, 0, sizeof *c);
            c->cfd = cfd;
            c->sfd = sfd;
            c->node = i;
        }
        for (int i = 0; i < p->nconns; i++) {
            pconn_t *c = &p->conns[i];
            struct pollfd *cf = &fds[1 + p->n + 2 * i], *sf = cf + 1;
            if (c->cfd < 0 || cf->fd != c->cfd) continue;
            bool dead = false;
            if (cf->revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r = read(c->cfd, buf, sizeof buf);
                if (r > 0) {
                    pnode_t *nd = &p->nodes[c->node];
                    /* Replicas reach their master at its announced port too
                     * (this proxy): their acknowledgements are no client's. */
                    if (memmem(buf, (size_t)r, "REPLCONF", 8) || memmem(buf, (size_t)r, "PSYNC", 5))
                        c->repl = true;
                    if (!c->repl) {
                        if (now - nd->last_up > (uint64_t)DELAY_MS * 1000000u / 2)
                            atomic_fetch_add(&nd->bursts, 1);
                        nd->last_up = now;
                    }
                    if (c->up_len + (size_t)r > c->up_cap) {
                        size_t nc = (c->up_len + (size_t)r) * 2;
                        c->up = realloc(c->up, nc);
                        c->up_cap = nc;
                    }
                    memcpy(c->up + c->up_len, buf, (size_t)r);
                    c->up_len += (size_t)r;
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    dead = true;
                }
            }
            if (!dead && (sf->revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t r = read(c->sfd, buf, sizeof buf);
                if (r > 0) {
                    chunk_t *k = malloc(sizeof *k + (size_t)r);
                    k->next = NULL;
                    k->due = now + (uint64_t)DELAY_MS * 1000000u;
                    k->len = (size_t)r;
                    k->off = 0;
                    memcpy(k->data, buf, (size_t)r);
                    if (c->down_tail) c->down_tail->next = k;
                    else c->down = k;
                    c->down_tail = k;
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    dead = true;
                }
            }
            if (!dead && (sf->revents & POLLOUT) && c->up_len > c->up_off) {
                ssize_t w = write(c->sfd, c->up + c->up_off, c->up_len - c->up_off);
                if (w > 0) c->up_off += (size_t)w;
                if (c->up_off == c->up_len) c->up_off = c->up_len = 0;
            }
            while (!dead && c->down && c->down->due <= now) {
                chunk_t *k = c->down;
                ssize_t w = write(c->cfd, k->data + k->off, k->len - k->off);
                if (w <= 0) break;
                k->off += (size_t)w;
                if (k->off < k->len) break;
                c->down = k->next;
                if (!c->down) c->down_tail = NULL;
                free(k);
            }
            if (dead) conn_close(c);
        }
        char drain[16];
        if (fds[0].revents & POLLIN) (void)!read(p->wake[0], drain, sizeof drain);
    }
    return NULL;
}

static void proxy_start(proxy_t *p, const redis_servers_t *s)
{
    memset(p, 0, sizeof *p);
    p->n = s->n;
    for (int i = 0; i < s->n; i++) {
        p->nodes[i].real_port = s->ports[i];
        p->nodes[i].lfd = listen_any(&p->nodes[i].port);
        CHECK(p->nodes[i].lfd >= 0);
    }
    CHECK(pipe(p->wake) == 0);
    CHECK(pthread_create(&p->th, NULL, proxy_main, p) == 0);
}

static void proxy_stop(proxy_t *p)
{
    atomic_store(&p->stop, 1);
    (void)!write(p->wake[1], "x", 1);
    pthread_join(p->th, NULL);
    for (int i = 0; i < p->nconns; i++)
        if (p->conns[i].cfd >= 0) conn_close(&p->conns[i]);
    for (int i = 0; i < p->n; i++) close(p->nodes[i].lfd);
    close(p->wake[0]);
    close(p->wake[1]);
}

static void proxy_reset(proxy_t *p)
{
    for (int i = 0; i < p->n; i++) atomic_store(&p->nodes[i].bursts, 0);
}

/* Every node announces its proxy's port; wait until every node's map
 * (CLUSTER SLOTS) names proxy ports only. */
static bool announce_proxies(const redis_servers_t *s, const proxy_t *p)
{
    for (int i = 0; i < s->n; i++) {
        CHECK_EQ_INT(redis_cli(s->ports[i], NULL, 0, "config set cluster-announce-bus-port %d",
                               s->ports[i] + 10000), 0);
        CHECK_EQ_INT(redis_cli(s->ports[i], NULL, 0, "config set cluster-announce-port %d",
                               p->nodes[i].port), 0);
    }
    char out[8192];
    for (int tries = 0; tries < 200; tries++) {
        bool all = true;
        for (int i = 0; i < s->n && all; i++) {
            redis_cli(s->ports[i], out, sizeof out, "cluster nodes");
            for (int k = 0; k < s->n; k++) {
                char real[32];
                snprintf(real, sizeof real, ":%d@", s->ports[k]);
                if (strstr(out, real)) all = false;
            }
        }
        if (all) return true;
        usleep(50000);
    }
    return false;
}

/* The graph ------------------------------------------------------------------------------- */

static test_rng_t rng = {0x7E57ED0C0FFEEull};

/* The settle_tree shape: 4-ary, `levels` levels; leaves are distinct Data
 * caps (settle_tree's leaves name random hashes stored nowhere; here the
 * graph must be closed). Written to `b` level by level in batches. */
static cap_hash_t write_tree(const cap_backend_t *b, unsigned levels, size_t *total)
{
    size_t width = (size_t)1 << (2 * (levels - 1));
    cap_t **caps = malloc(width * sizeof *caps);
    cap_hash_t *layer = malloc(width * sizeof *layer);
    cap_err_t e;
    *total = 0;
    for (size_t i = 0; i < width; i++) {
        uint64_t v[2] = {test_rng_next(&rng), i};
        CHECK_EQ_INT(cap_data_new_inline(&caps[i], cap_alloc_libc(), 32, v, sizeof v), CAP_OK);
    }
    for (;;) {
        CHECK_EQ_INT(cap_persist_put_batch(b, caps, NULL, width, cap_alloc_libc(), layer, &e), CAP_OK);
        for (size_t i = 0; i < width; i++) cap_release(caps[i]);
        *total += width;
        if (width == 1) break;
        width /= 4;
        for (size_t i = 0; i < width; i++) {
            CHECK_EQ_INT(cap_cnode_new(&caps[i], cap_alloc_libc(), 2), CAP_OK);
            for (uint32_t k = 0; k < 4; k++) test_set_hash(caps[i], k, &layer[4 * i + k]);
        }
    }
    cap_hash_t root = layer[0];
    free(caps);
    free(layer);
    return root;
}

int main(void)
{
    redis_test_require("test_redis_prefetch");
    unsigned levels = 9;
    const char *lv = getenv("CAPSTORE_REDIS_PREFETCH_LEVELS");
    if (lv && atoi(lv) >= 2 && atoi(lv) <= 10) levels = (unsigned)atoi(lv);
    const char *scale = getenv("CAPSTORE_TEST_TIME_SCALE");
    if (scale && atoi(scale) > 1 && atoi(scale) <= 100) delay_ms *= (unsigned)atoi(scale);
    redis_servers_t cl;
    redis_servers_start(&cl, true);
    char uri[256];
    redis_servers_uri(&cl, 0, "pf:", uri, sizeof uri);
    cap_backend_t *b = NULL;
    cap_err_t e;
    CHECK_EQ_INT(cap_redis_open(uri, NULL, &b, &e), CAP_OK);
    size_t total = 0;
    uint64_t t0 = now_ns();
    cap_hash_t root = write_tree(b, levels, &total);
    printf("prefetch: wrote the graph (%zu caps, %u levels) in %.2f s\n", total, levels,
           (double)(now_ns() - t0) / 1e9);
    cap_backend_free(b);

    proxy_t p;
    proxy_start(&p, &cl);
    CHECK(announce_proxies(&cl, &p));
    int masters[MAX_NODES];
    int nm = redis_servers_masters(&cl, masters, MAX_NODES);
    CHECK_EQ_INT(nm, 3);
    char puri[64];
    snprintf(puri, sizeof puri, "redis://127.0.0.1:%d/?prefix=pf:", p.nodes[0].port);

    /* The counter counts: one at a time, a round trip each. */
    CHECK_EQ_INT(cap_redis_open(puri, NULL, &b, &e), CAP_OK);
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new_host(&s), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(s, b, &e), CAP_OK);
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_store_fetch_blob(s, &root, &c, &e), CAP_OK); /* (connections made) */
    cap_hash_t kids[4];
    for (uint32_t k = 0; k < 4; k++) {
        cap_target_t t;
        CHECK_EQ_INT(cap_cnode_get(c, k, &t), CAP_OK);
        kids[k] = t.hash;
    }
    cap_release(c);
    usleep(2 * DELAY_MS * 1000);
    proxy_reset(&p);
    for (int i = 0; i < 20; i++) CHECK_EQ_INT(cap_backend_exists(b, &kids[i % 4], &e), CAP_OK);
    long one_by_one = 0;
    for (int i = 0; i < p.n; i++) one_by_one += atomic_load(&p.nodes[i].bursts);
    CHECK_EQ_INT(one_by_one, 20);
    cap_store_free(s);
    cap_backend_free(b);

    /* The prefetch, from a fresh backend and store. */
    usleep(2 * DELAY_MS * 1000);
    proxy_reset(&p);
    t0 = now_ns();
    CHECK_EQ_INT(cap_redis_open(puri, NULL, &b, &e), CAP_OK);
    CHECK_EQ_INT(cap_store_new_host(&s), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(s, b, &e), CAP_OK);
    int rc = cap_store_prefetch(s, &root, &e);
    double secs = (double)(now_ns() - t0) / 1e9;
    CHECK_EQ_INT(rc, CAP_OK);
    CHECK_EQ_INT(cap_store_blob_count(s), total);
    printf("prefetch: %zu caps, depth %u, through proxies adding %u ms to every reply: %.2f s "
           "(open + prefetch); one at a time would be %zu round trips, %.0f s at least\n",
           total, levels, DELAY_MS, secs, total, (double)total * DELAY_MS / 1000.0);
    for (int i = 0; i < p.n; i++) {
        bool master = false;
        for (int m = 0; m < nm; m++) master |= masters[m] == p.nodes[i].real_port;
        long rt = atomic_load(&p.nodes[i].bursts);
        printf("prefetch: node %d (%s): %ld round trips (bound depth + 2 = %u)\n", p.nodes[i].real_port,
               master ? "master" : "replica", rt, levels + 2);
        if (master) CHECK(rt <= (long)levels + 2);
        else CHECK_EQ_INT(rt, 0);
    }
    cap_store_free(s);
    cap_backend_free(b);
    proxy_stop(&p);
    redis_servers_stop(&cl);
    return check_done("test_redis_prefetch");
}
