/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Checkpoints racing edits: one thread checkpoints a process (an Instance
 * whose root cnode names an ipc cnode by Ref at first) over and over while
 * others edit it (cap_store_edit_instance) and read it. Every checkpoint's
 * root is a published, frozen blob that hashes to its key and names a
 * closed graph, whatever the editors did meanwhile; no edit is lost. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "check.h"

#define EDITS 3000
#define CHECKPOINTS 300

/* Thread-side checks count into atomics (check.h's counters are not). */
static atomic_long t_failures, t_checks;
#define TCHECK(cond)                                                                   \
    do {                                                                               \
        atomic_fetch_add(&t_checks, 1);                                                \
        if (!(cond) && atomic_fetch_add(&t_failures, 1) < 50)                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
    } while (0)

static cap_store_t *store;
static cap_ref_t *proc;

static int bump_pc(cap_t *c, void *arg)
{
    (void)arg;
    return cap_instance_set_pc(c, cap_instance_pc(c) + 1);
}

static void *editor(void *arg)
{
    (void)arg;
    for (int i = 0; i < EDITS; i++) TCHECK(cap_store_edit_instance(store, proc, bump_pc, NULL, NULL) == CAP_OK);
    return NULL;
}

static void *checkpointer(void *arg)
{
    (void)arg;
    cap_target_t t = cap_target_of_ref(proc);
    uint64_t last_pc = 0;
    for (int i = 0; i < CHECKPOINTS; i++) {
        cap_hash_t h;
        cap_err_t e;
        TCHECK(cap_store_checkpoint(store, &t, &h, &e) == CAP_OK);
        cap_t *b = NULL;
        TCHECK(cap_store_get_blob(store, &h, &b) == CAP_OK);
        if (!b) continue;
        TCHECK(cap_is_frozen(b));
        cap_hash_t again;
        TCHECK(cap_hash(b, &again) == CAP_OK && memcmp(&again, &h, 32) == 0);
        TCHECK(cap_instance_pc(b) >= last_pc); /* snapshots only move forward */
        last_pc = cap_instance_pc(b);
        cap_release(b);
        TCHECK(cap_store_walk(store, &h, 1, NULL, NULL, NULL, NULL, &e) == CAP_OK);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    CHECK_EQ_INT(cap_store_new_host(&store), CAP_OK);
    const cap_alloc_t *a = cap_alloc_libc();
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, a, 2), CAP_OK);
    cap_ref_t *ipc = NULL;
    CHECK_EQ_INT(cap_store_put_instance(store, c, &ipc), CAP_OK);
    cap_release(c);
    cap_target_t root = cap_target_of_ref(ipc);
    CHECK_EQ_INT(cap_instance_new(&c, a, &root), CAP_OK);
    CHECK_EQ_INT(cap_store_put_instance(store, c, &proc), CAP_OK);
    cap_release(c);
    pthread_t th[3];
    pthread_create(&th[0], NULL, checkpointer, NULL);
    pthread_create(&th[1], NULL, editor, NULL);
    pthread_create(&th[2], NULL, editor, NULL);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    check_count += atomic_load(&t_checks);
    check_failures += (int)atomic_load(&t_failures);
    /* No edit lost: both editors' increments are there. */
    CHECK_EQ_INT(cap_store_get_instance(store, proc, &c), CAP_OK);
    CHECK_EQ_INT(cap_instance_pc(c), 2 * EDITS);
    cap_release(c);
    cap_ref_release(ipc);
    cap_ref_release(proc);
    cap_store_free(store);
    return check_done("test_checkpoint_mt");
}
