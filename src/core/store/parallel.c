/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Phases on the store's workers (cap_store_options_t.workers): a range of
 * items cut into parts, the parts run through the hook's parallel-for, or
 * one after the other on the calling thread when there is no hook or too
 * little work to be worth waking one. */
#include "store/store_internal.h"

/* Parts per worker thread: the hook hands parts out one at a time, so a
 * thread the OS leaves waiting takes fewer of them instead of holding the
 * whole phase up. */
#define PARTS_PER_THREAD 4u

size_t store_parts(const cap_store_t *s, size_t items, size_t min_items)
{
    const cap_workers_t *w = s->workers;
    if (!w || w->threads < 2 || min_items == 0 || items < 2 * min_items)
        return 1;
    size_t parts = (size_t)w->threads * PARTS_PER_THREAD;
    if (parts > items / min_items)
        parts = items / min_items;
    return parts < 1 ? 1 : parts;
}

void store_parallel(const cap_store_t *s, size_t parts, void (*fn)(void *arg, size_t i),
                    void *arg)
{
    const cap_workers_t *w = s->workers;
    if (parts > 1 && w) {
        w->run(w->ctx, parts, fn, arg);
        return;
    }
    for (size_t i = 0; i < parts; i++)
        fn(arg, i);
}

void store_part_range(size_t items, size_t parts, size_t i, size_t *lo, size_t *hi)
{
    /* Even cuts without a multiplication that could overflow. */
    size_t q = items / parts, r = items % parts;
    *lo = i * q + (i < r ? i : r);
    *hi = *lo + q + (i < r ? 1u : 0u);
}
