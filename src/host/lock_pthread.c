/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The host build's lock hooks: a pthread mutex with a condition variable
 * (wait/notify serve single-flight fetches). */
#include <pthread.h>

#include "capstore/host.h"

typedef struct pthread_lock {
    pthread_mutex_t mu;
    pthread_cond_t cv;
} pthread_lock_t;

static void pl_init(void *ctx, void *l)
{
    (void)ctx;
    pthread_lock_t *p = l;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
}

static void pl_destroy(void *ctx, void *l)
{
    (void)ctx;
    pthread_lock_t *p = l;
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

static void pl_lock(void *ctx, void *l)
{
    (void)ctx;
    pthread_mutex_lock(&((pthread_lock_t *)l)->mu);
}

static void pl_unlock(void *ctx, void *l)
{
    (void)ctx;
    pthread_mutex_unlock(&((pthread_lock_t *)l)->mu);
}

static void pl_wait(void *ctx, void *l)
{
    (void)ctx;
    pthread_lock_t *p = l;
    pthread_cond_wait(&p->cv, &p->mu);
}

static void pl_notify_all(void *ctx, void *l)
{
    (void)ctx;
    pthread_cond_broadcast(&((pthread_lock_t *)l)->cv);
}

static const cap_lock_hooks_t pthread_hooks = {
    sizeof(pthread_lock_t), pl_init, pl_destroy, pl_lock, pl_unlock, pl_wait, pl_notify_all, NULL,
};

const cap_lock_hooks_t *cap_lock_pthread(void) { return &pthread_hooks; }
