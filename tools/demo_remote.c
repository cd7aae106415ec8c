/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The demo's second host (see demo_remote.h). It runs as a child process so
 * that nothing but the tier connects the two: no memory, no handle, no
 * file. */
#include "demo_remote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "cli.h"

static const char *shorthex(const cap_hash_t *h, char buf[9])
{
    char hex[65];
    cli_hex(hex, h->bytes, 32);
    memcpy(buf, hex, 8);
    buf[8] = 0;
    return buf;
}

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int fail(const char *what, int rc, const cap_err_t *e)
{
    char msg[256];
    cap_err_t copy = *e;
    if (copy.code != rc) {
        memset(&copy, 0, sizeof copy);
        copy.code = rc;
    }
    cap_err_format(&copy, msg, sizeof msg);
    cli_error("demo", "host 2: %s: %s", what, msg);
    return 1;
}

/* One step of a process: its pc advanced, register 1 counting the steps. */
static int step_process(cap_t *c, void *arg)
{
    (void)arg;
    int rc = cap_instance_set_pc(c, cap_instance_pc(c) + 4);
    if (rc == CAP_OK) rc = cap_instance_set_reg(c, 1, cap_instance_reg(c, 1) + 1);
    return rc;
}

#define TRY(what, call)                                                                            \
    do {                                                                                           \
        memset(&e, 0, sizeof e);                                                                   \
        int rc_ = (call);                                                                          \
        if (rc_ != CAP_OK) {                                                                       \
            status = fail((what), rc_, &e);                                                        \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* The child: everything from the tier. Returns its exit status. */
static int host2(const char *uri, const cap_hash_t *root, const cap_hash_t *snap1, const cap_hash_t *snap2,
                 cap_hash_t *new_root)
{
    cap_backend_t *tier = NULL;
    cap_store_t *s = NULL;
    cap_ref_t *p1 = NULL, *p2 = NULL, *kernel = NULL;
    cap_t *kc = NULL;
    cap_err_t e;
    int status = 0;
    char a[9], b[9], c[9], d[9];
    TRY("cap_redis_open", cap_redis_open(uri, NULL, &tier, &e));
    TRY("cap_store_new_host", cap_store_new_host(&s));
    TRY("cap_store_add_backend", cap_store_add_backend(s, tier, &e));
    uint64_t t0 = ms_now();
    TRY("cap_store_prefetch", cap_store_prefetch(s, root, &e));
    printf("10. host 2   pid %d: its own connections and a fresh store (0 blobs); one cap_store_prefetch of root %s\n"
           "             brought the whole checkpointed graph over, a level per batch: %zu caps in memory, verified, in %llu ms\n",
           (int)getpid(), shorthex(root, a), cap_store_blob_count(s), (unsigned long long)(ms_now() - t0));
    TRY("cap_store_promote_blob_to_instance", cap_store_promote_blob_to_instance(s, snap1, &p1));
    TRY("cap_store_promote_blob_to_instance", cap_store_promote_blob_to_instance(s, snap2, &p2));
    TRY("cap_store_edit_instance", cap_store_edit_instance(s, p1, step_process, NULL, &e));
    TRY("cap_store_edit_instance", cap_store_edit_instance(s, p2, step_process, NULL, &e));
    /* A kernel cnode of its own naming the two running processes by Ref. */
    TRY("cap_cnode_new", cap_cnode_new(&kc, cap_alloc_libc(), 2));
    cap_target_t t1 = cap_target_of_ref(p1), t2 = cap_target_of_ref(p2);
    TRY("cap_cnode_set", cap_cnode_set(kc, 0, &t1));
    TRY("cap_cnode_set", cap_cnode_set(kc, 1, &t2));
    TRY("cap_store_put_instance", cap_store_put_instance(s, kc, &kernel));
    cap_target_t kt = cap_target_of_ref(kernel);
    TRY("cap_store_checkpoint", cap_store_checkpoint(s, &kt, new_root, &e));
    cap_t *x = NULL;
    cap_hash_t h1, h2;
    TRY("cap_store_get_instance", cap_store_get_instance(s, p1, &x));
    cap_hash(x, &h1);
    cap_release(x);
    TRY("cap_store_get_instance", cap_store_get_instance(s, p2, &x));
    cap_hash(x, &h2);
    cap_release(x);
    size_t written = 0;
    TRY("cap_store_flush", cap_store_flush(s, &written, &e));
    printf("             promoted snapshots %s, %s to instances #%llu, #%llu (no copy), ran a step of each\n"
           "             (pc + 4, r1 + 1; copy-on-write): now %s, %s; checkpointed under a kernel cnode of its own\n",
           shorthex(snap1, a), shorthex(snap2, b), (unsigned long long)cap_ref_id(p1),
           (unsigned long long)cap_ref_id(p2), shorthex(&h1, c), shorthex(&h2, d));
    printf("             as root %s and flushed to the tier: %zu new blobs (the rest it shares with host 1)\n",
           shorthex(new_root, a), written);
out:
    cap_ref_release(p1);
    cap_ref_release(p2);
    cap_ref_release(kernel);
    cap_release(kc);
    cap_store_free(s);
    cap_backend_free(tier);
    fflush(stdout);
    return status;
}

int demo_second_host(const char *uri, const cap_hash_t *root, const cap_hash_t *snap1,
                     const cap_hash_t *snap2)
{
    int fds[2];
    if (pipe(fds) != 0) {
        cli_error("demo", "host 2: cannot make a pipe");
        return CLI_EBADINPUT;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        cli_error("demo", "host 2: cannot start the second process");
        return CLI_EBADINPUT;
    }
    if (pid == 0) {
        close(fds[0]);
        cap_hash_t new_root;
        memset(&new_root, 0, sizeof new_root);
        int st = host2(uri, root, snap1, snap2, &new_root);
        /* Its root, for host 1 to fetch: the only thing passed back. */
        if (st == 0 && write(fds[1], &new_root, sizeof new_root) != (ssize_t)sizeof new_root) st = 1;
        _exit(st);
    }
    close(fds[1]);
    cap_hash_t got;
    ssize_t n = read(fds[0], &got, sizeof got);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || n != (ssize_t)sizeof got) {
        cli_error("demo", "host 2 failed");
        return CLI_EBADINPUT;
    }
    /* Host 1 sees host 2's work through the tier alone. */
    cap_backend_t *tier = NULL;
    cap_store_t *s = NULL;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = cap_redis_open(uri, NULL, &tier, &e);
    if (rc == CAP_OK) rc = cap_store_new_host(&s);
    if (rc == CAP_OK) rc = cap_store_add_backend(s, tier, &e);
    if (rc == CAP_OK) rc = cap_store_prefetch(s, &got, &e);
    size_t count = s ? cap_store_blob_count(s) : 0;
    cap_store_free(s);
    cap_backend_free(tier);
    if (rc != CAP_OK) return fail("host 1 fetching host 2's root", rc, &e) ? CLI_EBADINPUT : CLI_OK;
    char a[9];
    printf("11. host 1   fetched host 2's root %s from the tier with one prefetch: %zu caps, every one verified\n",
           shorthex(&got, a), count);
    return CLI_OK;
}
