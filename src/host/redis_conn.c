/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Connections (a pool per node) and pipelined batches.
 *
 * A batch is grouped by node and sent as one pipeline per node; every
 * node's pipeline is written before any reply is read, so the nodes work at
 * the same time and a batch costs one round trip per node (plus one per
 * redirection or retry). hiredis 0.14's blocking contexts are not
 * thread-safe, so a call takes connections from the pools for its own use
 * and gives them back; a connection that failed, or has replies pending, is
 * closed instead. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis_internal.h"

#define BATCH_BYTES_PER_ROUND ((size_t)64 << 20) /* per node, so a huge batch does not
                                                     buffer it all twice */
#define MAX_ROUNDS 1000

static struct timeval tv_ms(unsigned ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000u);
    tv.tv_usec = (suseconds_t)((ms % 1000u) * 1000u);
    return tv;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A write to a connection the server closed raises SIGPIPE, whose default
 * action ends the process; a library must not change the process's signal
 * handling, so SIGPIPE is blocked in the calling thread while it talks to
 * the servers, and one raised meanwhile is taken off the thread before the
 * old mask comes back. */
void redis_sigpipe_block(sigset_t *old)
{
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, old);
}

void redis_sigpipe_restore(const sigset_t *old)
{
    if (!sigismember(old, SIGPIPE)) {
        sigset_t pipe_only;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_only, NULL, &zero) > 0) {
        }
    }
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

int redis_node_fail(redis_t *r, unsigned ni, cap_err_t *err, const char *what, const char *more)
{
    cap_err_set(err, CAP_EBACKEND, what);
    cap_err_add_detail(err, r->nodes[ni].name);
    if (more && *more) {
        cap_err_add_detail(err, ": ");
        cap_err_add_detail(err, more);
    }
    return CAP_EBACKEND;
}

/* AUTH on a new connection. The password is sent and never copied into a
 * message: a failure says only that authentication failed, and why as the
 * server put it (WRONGPASS, NOAUTH, ...: texts without the password). */
static int authenticate(redis_t *r, unsigned ni, redisContext *c, cap_err_t *err)
{
    if (!r->password) return CAP_OK;
    const char *argv[3];
    size_t argvlen[3];
    int argc = 0;
    argv[argc] = "AUTH";
    argvlen[argc++] = 4;
    if (r->uri.user[0]) {
        argv[argc] = r->uri.user;
        argvlen[argc++] = strlen(r->uri.user);
    }
    argv[argc] = r->password;
    argvlen[argc++] = strlen(r->password);
    redisReply *rep = redisCommandArgv(c, argc, argv, argvlen);
    if (!rep) return redis_node_fail(r, ni, err, "authentication failed", c->errstr);
    int rc = CAP_OK;
    if (rep->type == REDIS_REPLY_ERROR) {
        char why[40];
        snprintf(why, sizeof why, "%.*s", (int)strcspn(rep->str, " "), rep->str);
        rc = redis_node_fail(r, ni, err, "authentication failed", why);
    }
    freeReplyObject(rep);
    return rc;
}

redisContext *redis_conn_get(redis_t *r, unsigned ni, cap_err_t *err)
{
    redis_node_t *nd = &r->nodes[ni];
    pthread_mutex_lock(&nd->mu);
    redisContext *c = nd->nidle ? nd->idle[--nd->nidle] : NULL;
    pthread_mutex_unlock(&nd->mu);
    if (c) return c;
    c = redisConnectWithTimeout(nd->addr.host, nd->addr.port, tv_ms(r->connect_ms));
    if (!c) {
        cap_err_set(err, CAP_ENOMEM, "out of memory");
        return NULL;
    }
    if (c->err) {
        redis_node_fail(r, ni, err, "cannot connect", c->errstr);
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, tv_ms(r->command_ms)) != REDIS_OK || authenticate(r, ni, c, err) != CAP_OK) {
        if (!c->err && err && err->code == CAP_OK) redis_node_fail(r, ni, err, "cannot set timeouts", NULL);
        redisFree(c);
        return NULL;
    }
    return c;
}

void redis_conn_put(redis_t *r, unsigned ni, redisContext *c, bool healthy)
{
    if (!c) return;
    redis_node_t *nd = &r->nodes[ni];
    if (healthy && !c->err) {
        pthread_mutex_lock(&nd->mu);
        if (nd->nidle < REDIS_POOL_MAX) {
            nd->idle[nd->nidle++] = c;
            c = NULL;
        }
        pthread_mutex_unlock(&nd->mu);
    }
    if (c) redisFree(c);
}

void redis_conns_close(redis_t *r)
{
    for (size_t i = 0; i < r->nnodes; i++) {
        redis_node_t *nd = &r->nodes[i];
        pthread_mutex_lock(&nd->mu);
        for (size_t k = 0; k < nd->nidle; k++) redisFree(nd->idle[k]);
        nd->nidle = 0;
        pthread_mutex_unlock(&nd->mu);
        pthread_mutex_destroy(&nd->mu);
    }
}

redisReply *redis_node_command(redis_t *r, unsigned ni, int argc, const char **argv,
                               const size_t *argvlen, cap_err_t *err)
{
    sigset_t old;
    redis_sigpipe_block(&old);
    redisReply *rep = NULL;
    redisContext *c = redis_conn_get(r, ni, err);
    if (c) {
        rep = redisCommandArgv(c, argc, argv, argvlen);
        if (!rep)
            redis_node_fail(r, ni, err, c->err == REDIS_ERR_EOF ? "connection lost" : "command failed",
                            c->errstr);
        redis_conn_put(r, ni, c, rep != NULL);
    }
    redis_sigpipe_restore(&old);
    return rep;
}

/* Batches ---------------------------------------------------------------------------------- */

void redis_batch_free(redis_cmd_t *cmds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (cmds[i].reply) freeReplyObject(cmds[i].reply);
        cmds[i].reply = NULL;
    }
}

static bool starts(const redisReply *rep, const char *word)
{
    size_t n = strlen(word);
    return rep->len >= n && strncmp(rep->str, word, n) == 0 && (rep->len == n || rep->str[n] == ' ');
}

/* "MOVED 3999 host:port" / "ASK 3999 host:port": the node's index (added if
 * new), or -1 when unreadable. */
static int redirect_node(redis_t *r, const redisReply *rep)
{
    const char *sp = memchr(rep->str, ' ', rep->len);
    if (!sp) return -1;
    sp = memchr(sp + 1, ' ', rep->len - (size_t)(sp + 1 - rep->str));
    if (!sp) return -1;
    const char *addr = sp + 1;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr) return -1;
    char host[REDIS_HOST_MAX];
    size_t hl = (size_t)(colon - addr);
    if (hl >= sizeof host) return -1;
    memcpy(host, addr, hl);
    host[hl] = 0;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') { /* [v6]:port */
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    long port = strtol(colon + 1, NULL, 10);
    if (port < 1 || port > 65535) return -1;
    unsigned ni;
    pthread_rwlock_wrlock(&r->map_mu);
    int rc = redis_node_index_locked(r, host, (int)port, &ni);
    pthread_rwlock_unlock(&r->map_mu);
    return rc == CAP_OK ? (int)ni : -1;
}

typedef struct round_state {
    bool refresh, backoff;
    cap_err_t last; /* the latest failure, for the final error */
} round_state_t;

/* One node's part of a round: `idx` are the command indices routed to it
 * (each with its ask_node / moved override folded into `via`). */
static void run_node_read(redis_t *r, unsigned ni, redisContext *c, redis_cmd_t *cmds,
                          const size_t *idx, size_t m, bool waits, round_state_t *st, bool *healthy)
{
    size_t got = 0;
    bool ok = true;
    for (; got < m && ok; got++) {
        redis_cmd_t *cmd = &cmds[idx[got]];
        redisReply *rep = NULL;
        if (cmd->ask_node >= 0) {
            if (redisGetReply(c, (void **)&rep) != REDIS_OK) {
                ok = false;
                break;
            }
            freeReplyObject(rep); /* ASKING's +OK */
            rep = NULL;
        }
        if (redisGetReply(c, (void **)&rep) != REDIS_OK) {
            ok = false;
            break;
        }
        cmd->ask_node = -1;
        if (rep->type == REDIS_REPLY_ERROR) {
            if (starts(rep, "MOVED")) {
                int to = redirect_node(r, rep);
                cmd->ask_node = -2 - (to < 0 ? (int)ni : to); /* -2 - node: go there, no ASKING */
                st->refresh = true;
                freeReplyObject(rep);
                continue;
            }
            if (starts(rep, "ASK")) {
                int to = redirect_node(r, rep);
                if (to >= 0) cmd->ask_node = to;
                else st->refresh = true;
                freeReplyObject(rep);
                continue;
            }
            if (starts(rep, "TRYAGAIN") || starts(rep, "CLUSTERDOWN") || starts(rep, "LOADING") ||
                starts(rep, "MASTERDOWN")) {
                redis_node_fail(r, ni, &st->last, "the cluster is not serving the key", rep->str);
                st->backoff = true;
                st->refresh = true;
                freeReplyObject(rep);
                continue;
            }
        }
        cmd->reply = rep;
        cmd->code = CAP_OK;
        cmd->pending = false;
    }
    if (ok && waits) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK) {
            ok = false;
        } else {
            long long acked = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
            if (acked < r->wait_replicas) {
                /* The writes are stored but not as durable as asked: fail them
                 * (stored part of a batch is allowed: NONATOMIC_BATCH). */
                char more[48];
                snprintf(more, sizeof more, "%lld of %d replicas acknowledged", acked < 0 ? 0 : acked,
                         r->wait_replicas);
                cap_err_t e;
                redis_node_fail(r, ni, &e, "write not acknowledged by replicas", more);
                for (size_t k = 0; k < m; k++) {
                    redis_cmd_t *cmd = &cmds[idx[k]];
                    if (!cmd->write || cmd->pending) continue;
                    if (cmd->reply) freeReplyObject(cmd->reply);
                    cmd->reply = NULL;
                    cmd->code = CAP_EBACKEND;
                    st->last = e;
                }
            }
            freeReplyObject(rep);
        }
    }
    if (!ok) {
        /* Lost (or timed out): every command of this node without a reply is
         * sent again; the node may have failed over meanwhile. */
        redis_node_fail(r, ni, &st->last, c->err == REDIS_ERR_EOF ? "connection lost" : "no reply",
                        c->errstr);
        for (size_t k = got; k < m; k++) cmds[idx[k]].ask_node = -1;
        for (size_t k = 0; k < m; k++) {
            redis_cmd_t *cmd = &cmds[idx[k]];
            if (cmd->write && !cmd->pending && cmd->code == CAP_OK && waits) {
                /* Its WAIT never came back: write it again. */
                freeReplyObject(cmd->reply);
                cmd->reply = NULL;
                cmd->pending = true;
            }
        }
        st->backoff = true;
        st->refresh = true;
        *healthy = false;
    }
}

/* Send every node's pipeline, all at once: the sockets are made
 * non-blocking for the time and written as each can take more, so that a
 * node slow to read its pipeline does not hold the others' back (written
 * one after the other, each write would wait for its node to drain it).
 * A node that fails is left with its error (c->err), found on reading. */
static void send_all(redis_t *r, redisContext **conn)
{
    struct pollfd pfd[REDIS_MAX_NODES];
    unsigned which[REDIS_MAX_NODES];
    int oldfl[REDIS_MAX_NODES];
    size_t np = 0;
    for (size_t k = 0; k < REDIS_MAX_NODES; k++) {
        redisContext *c = conn[k];
        if (!c) continue;
        oldfl[k] = fcntl(c->fd, F_GETFL);
        if (oldfl[k] < 0 || fcntl(c->fd, F_SETFL, oldfl[k] | O_NONBLOCK) < 0) {
            /* Cannot switch: send it the blocking way. */
            int done = 0;
            while (!done && c->err == 0)
                if (redisBufferWrite(c, &done) != REDIS_OK) break;
            oldfl[k] = -1;
            continue;
        }
        c->flags &= ~REDIS_BLOCK; /* hiredis: EAGAIN is "later", not an error */
        pfd[np].fd = c->fd;
        pfd[np].events = POLLOUT;
        which[np++] = (unsigned)k;
    }
    while (np) {
        int got = poll(pfd, (nfds_t)np, (int)r->command_ms);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            /* No progress within the command timeout: those nodes fail. */
            for (size_t j = 0; j < np; j++) {
                redisContext *c = conn[which[j]];
                c->err = REDIS_ERR_IO;
                snprintf(c->errstr, sizeof c->errstr, "%s", "sending timed out");
            }
            break;
        }
        size_t keep = 0;
        for (size_t j = 0; j < np; j++) {
            redisContext *c = conn[which[j]];
            int done = 0;
            if ((pfd[j].revents & (POLLOUT | POLLERR | POLLHUP)) &&
                (redisBufferWrite(c, &done) != REDIS_OK || done))
                continue;
            pfd[keep] = pfd[j];
            which[keep++] = which[j];
        }
        np = keep;
    }
    for (size_t k = 0; k < REDIS_MAX_NODES; k++) {
        redisContext *c = conn[k];
        if (!c || oldfl[k] < 0) continue;
        fcntl(c->fd, F_SETFL, oldfl[k]);
        c->flags |= REDIS_BLOCK;
    }
}

int redis_batch_run(redis_t *r, redis_cmd_t *cmds, size_t n, cap_err_t *err)
{
    for (size_t i = 0; i < n; i++) {
        cmds[i].slot = redis_key_slot((const uint8_t *)cmds[i].argv[1], cmds[i].argvlen[1]);
        cmds[i].ask_node = -1;
        cmds[i].pending = true;
        cmds[i].reply = NULL;
        cmds[i].code = CAP_EBACKEND;
    }
    if (n == 0) return cap_err_set(err, CAP_OK, NULL);
    size_t *idx = malloc(n * sizeof *idx);
    unsigned *node_of = malloc(n * sizeof *node_of);
    if (!idx || !node_of) {
        free(idx);
        free(node_of);
        return cap_err_set(err, CAP_ENOMEM, "out of memory");
    }
    round_state_t st;
    memset(&st, 0, sizeof st);
    cap_err_set(&st.last, CAP_EBACKEND, "no reply");
    uint64_t deadline = now_ms() + r->retry_ms;
    unsigned backoff = 10;
    size_t start[REDIS_MAX_NODES + 1], fill[REDIS_MAX_NODES];
    size_t bytes[REDIS_MAX_NODES];
    redisContext *conn[REDIS_MAX_NODES];
    bool waits[REDIS_MAX_NODES], healthy[REDIS_MAX_NODES];
    for (size_t k = 0; k < REDIS_MAX_NODES; k++) conn[k] = NULL;
    int rc = CAP_OK;
    sigset_t old;
    redis_sigpipe_block(&old);
    for (unsigned round = 0;; round++) {
        /* Route the pending commands and group them by node (counting sort). */
        uint64_t epoch = 0;
        redis_route(r, 0, &epoch);
        size_t count[REDIS_MAX_NODES];
        memset(count, 0, sizeof count);
        size_t npending = 0;
        for (size_t i = 0; i < n; i++) {
            if (!cmds[i].pending) continue;
            unsigned ni;
            if (cmds[i].ask_node >= 0) ni = (unsigned)cmds[i].ask_node;
            else if (cmds[i].ask_node <= -2) ni = (unsigned)(-2 - cmds[i].ask_node);
            else ni = redis_route(r, cmds[i].slot, &epoch);
            if (cmds[i].ask_node <= -2) cmds[i].ask_node = -1; /* MOVED: plain resend there */
            node_of[i] = ni;
            count[ni]++;
            npending++;
        }
        if (npending == 0) break;
        start[0] = 0;
        for (size_t k = 0; k < REDIS_MAX_NODES; k++) start[k + 1] = start[k] + count[k];
        memcpy(fill, start, sizeof fill);
        for (size_t i = 0; i < n; i++)
            if (cmds[i].pending) idx[fill[node_of[i]]++] = i;
        st.refresh = st.backoff = false;
        /* Write every node's pipeline. */
        for (size_t k = 0; k < REDIS_MAX_NODES; k++) {
            conn[k] = NULL;
            healthy[k] = true;
            waits[k] = false;
            bytes[k] = 0;
            if (!count[k]) continue;
            cap_err_t e;
            redisContext *c = redis_conn_get(r, (unsigned)k, &e);
            if (!c) {
                if (e.code == CAP_ENOMEM) {
                    rc = cap_err_set(err, CAP_ENOMEM, "out of memory");
                    goto out;
                }
                st.last = e;
                st.backoff = st.refresh = true;
                count[k] = 0;
                continue;
            }
            size_t m = 0;
            for (size_t j = start[k]; j < start[k + 1]; j++, m++) {
                redis_cmd_t *cmd = &cmds[idx[j]];
                if (bytes[k] >= BATCH_BYTES_PER_ROUND) break; /* the rest next round */
                if (cmd->ask_node >= 0) redisAppendCommand(c, "ASKING");
                redisAppendCommandArgv(c, cmd->argc, cmd->argv, cmd->argvlen);
                for (int a = 0; a < cmd->argc; a++) bytes[k] += cmd->argvlen[a];
                if (cmd->write) waits[k] = true;
            }
            count[k] = m;
            if (waits[k] && r->wait_replicas > 0) {
                char num[16], ms[16];
                snprintf(num, sizeof num, "%d", r->wait_replicas);
                snprintf(ms, sizeof ms, "%u", r->wait_ms);
                redisAppendCommand(c, "WAIT %s %s", num, ms);
            } else {
                waits[k] = false;
            }
            conn[k] = c;
        }
        send_all(r, conn);
        /* Read them back. */
        for (size_t k = 0; k < REDIS_MAX_NODES; k++) {
            if (!conn[k]) continue;
            run_node_read(r, (unsigned)k, conn[k], cmds, &idx[start[k]], count[k], waits[k], &st,
                          &healthy[k]);
            redis_conn_put(r, (unsigned)k, conn[k], healthy[k]);
            conn[k] = NULL;
        }
        bool any = false;
        for (size_t i = 0; i < n && !any; i++) any = cmds[i].pending;
        if (!any) break;
        if ((st.backoff && now_ms() >= deadline) || round + 1 >= MAX_ROUNDS) {
            if (err) *err = st.last;
            rc = CAP_EBACKEND;
            goto out;
        }
        if (st.refresh) redis_refresh_map(r, epoch, NULL);
        if (st.backoff) {
            uint64_t t = now_ms();
            uint64_t left = t < deadline ? deadline - t : 0;
            sleep_ms(backoff < left ? backoff : (unsigned)left);
            backoff = backoff * 2 > 500 ? 500 : backoff * 2;
        }
    }
    rc = CAP_OK;
    for (size_t i = 0; i < n; i++)
        if (cmds[i].code != CAP_OK) {
            if (rc == CAP_OK && err) *err = st.last;
            rc = CAP_EBACKEND;
        }
    if (rc == CAP_OK) cap_err_set(err, CAP_OK, NULL);
out:
    for (size_t k = 0; k < REDIS_MAX_NODES; k++)
        if (conn[k]) redis_conn_put(r, (unsigned)k, conn[k], false);
    redis_sigpipe_restore(&old);
    if (rc != CAP_OK)
        for (size_t i = 0; i < n; i++)
            if (cmds[i].pending) cmds[i].code = rc;
    free(idx);
    free(node_of);
    return rc;
}
