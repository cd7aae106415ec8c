/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Store locks: the caller's hooks, or the built-in spin lock (C11 atomics,
 * test-and-test-and-set) when the options give none. */
#include "store/store_internal.h"

typedef struct spin_lock {
    _Atomic uint32_t held;
} spin_lock_t;

void store_spin_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause" ::: "memory");
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

size_t store_lock_size(const cap_lock_hooks_t *hooks)
{
    return hooks ? hooks->lock_size : sizeof(spin_lock_t);
}

void store_lock_init(const cap_store_t *s, void *l)
{
    if (s->hooks)
        s->hooks->init(s->hooks->ctx, l);
    else
        atomic_init(&((spin_lock_t *)l)->held, 0);
}

void store_lock_destroy(const cap_store_t *s, void *l)
{
    if (s->hooks)
        s->hooks->destroy(s->hooks->ctx, l);
}

void store_lock(const cap_store_t *s, void *l)
{
    if (s->hooks) {
        s->hooks->lock(s->hooks->ctx, l);
        return;
    }
    spin_lock_t *sl = l;
    for (;;) {
        if (!atomic_exchange_explicit(&sl->held, 1, memory_order_acquire))
            return;
        while (atomic_load_explicit(&sl->held, memory_order_relaxed))
            store_spin_pause();
    }
}

void store_unlock(const cap_store_t *s, void *l)
{
    if (s->hooks)
        s->hooks->unlock(s->hooks->ctx, l);
    else
        atomic_store_explicit(&((spin_lock_t *)l)->held, 0, memory_order_release);
}

void store_wait(const cap_store_t *s, void *l)
{
    if (s->hooks && s->hooks->wait) {
        s->hooks->wait(s->hooks->ctx, l);
        return;
    }
    store_unlock(s, l);
    for (unsigned i = 0; i < 64; i++)
        store_spin_pause();
    store_lock(s, l);
}

void store_notify_all(const cap_store_t *s, void *l)
{
    if (s->hooks && s->hooks->notify_all)
        s->hooks->notify_all(s->hooks->ctx, l);
}
