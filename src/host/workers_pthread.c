/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The host build's worker hook: a pthread pool running one parallel-for at
 * a time. The indexes of a run are handed out one at a time from a shared
 * counter, so a thread that the OS leaves waiting (other work on the
 * machine) simply takes fewer of them; the calling thread takes its share
 * too, so a run never waits for a worker that has not woken yet. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "capstore/host.h"

typedef struct pool {
    cap_workers_t hook; /* first: the hook's address is the pool's */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers: a new job, or stop */
    pthread_cond_t idle; /* the caller: the last active worker left the job */
    pthread_t *threads;
    unsigned nthreads;   /* started */
    atomic_flag busy;    /* a run is in progress (one job at a time) */
    /* The job, written under mu while no worker is active in it. */
    uint64_t gen;
    int stop;
    void (*fn)(void *arg, size_t i);
    void *arg;
    size_t n;
    _Atomic size_t next; /* the next index to hand out */
    unsigned active;     /* workers inside the current job (mu) */
} pool_t;

static void drain(pool_t *p, void (*fn)(void *, size_t), void *arg, size_t n)
{
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (i >= n)
            return;
        fn(arg, i);
    }
}

static void *worker(void *q)
{
    pool_t *p = q;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        void (*fn)(void *, size_t) = p->fn;
        void *arg = p->arg;
        size_t n = p->n;
        p->active++;
        pthread_mutex_unlock(&p->mu);
        /* A worker that wakes after its job was finished by the others finds
         * the counter past n and takes nothing; the next job waits for it to
         * leave (active) before it resets the counter. */
        drain(p, fn, arg, n);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0)
            pthread_cond_broadcast(&p->idle);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void run_inline(size_t n, void (*fn)(void *, size_t), void *arg)
{
    for (size_t i = 0; i < n; i++)
        fn(arg, i);
}

static void pool_run(void *ctx, size_t n, void (*fn)(void *arg, size_t i), void *arg)
{
    pool_t *p = ctx;
    if (n < 2 || p->nthreads == 0 || atomic_flag_test_and_set_explicit(&p->busy, memory_order_acquire)) {
        run_inline(n, fn, arg);
        return;
    }
    pthread_mutex_lock(&p->mu);
    while (p->active) /* late workers of the previous job */
        pthread_cond_wait(&p->idle, &p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    p->gen++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    drain(p, fn, arg, n);
    /* Every index is handed out; wait for the calls still running (their
     * effects are then ordered before this return through mu). */
    pthread_mutex_lock(&p->mu);
    while (p->active)
        pthread_cond_wait(&p->idle, &p->mu);
    pthread_mutex_unlock(&p->mu);
    atomic_flag_clear_explicit(&p->busy, memory_order_release);
}

static void pool_stop(pool_t *p, unsigned started)
{
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < started; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->idle);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

cap_workers_t *cap_host_workers_new(unsigned nthreads)
{
    if (nthreads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = cpus > 0 ? (unsigned)cpus : 1u;
    }
    pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->threads = calloc(nthreads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->idle, NULL);
    atomic_flag_clear(&p->busy);
    atomic_init(&p->next, 0);
    p->hook.run = pool_run;
    p->hook.threads = nthreads;
    p->hook.ctx = p;
    unsigned started = 0;
    for (; started + 1 < nthreads; started++) {
        if (pthread_create(&p->threads[started], NULL, worker, p) != 0) {
            pool_stop(p, started);
            return NULL;
        }
    }
    p->nthreads = started;
    return &p->hook;
}

void cap_host_workers_free(cap_workers_t *w)
{
    if (!w)
        return;
    pool_t *p = (pool_t *)(void *)w;
    pool_stop(p, p->nthreads);
}
