/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Read sections for lock-free blob hits (see store_internal.h).
 *
 * A hit takes its reference from a cap the table points to, without the
 * shard lock, while trim may be removing that slot and about to release the
 * store's reference. So a lock-free lookup runs inside a read section: a
 * count on one of a few counters, picked by the caller's stack address so
 * that threads seldom share one. Trim releases what it removed only after
 * store_read_sync, by when every section that could have seen the old slots
 * has ended. Two sets of counters and an epoch that sync flips twice (as
 * SRCU does) keep a steady stream of new readers from starving it: readers
 * that start after a flip count on the other set.
 *
 * Ordering: a reader's increment is seq_cst and its loads of the table and
 * slot pointers are seq_cst; sync starts with a seq_cst fence. Either sync's
 * loads see the reader's count, or the reader's loads come after the fence
 * in the single total order and see the removal. */
#include "store/store_internal.h"

void store_readers_init(store_readers_t *r)
{
    atomic_init(&r->epoch, 0);
    atomic_init(&r->sync_busy, 0);
    for (unsigned e = 0; e < 2; e++)
        for (unsigned k = 0; k < STORE_READ_STRIPES; k++)
            atomic_init(&r->count[e][k].n, 0);
}

static void wait_drained(store_readers_t *r, unsigned e)
{
    for (unsigned k = 0; k < STORE_READ_STRIPES; k++)
        while (atomic_load_explicit(&r->count[e][k].n, memory_order_acquire))
            store_spin_pause();
}

void store_read_sync(cap_store_t *s)
{
    store_readers_t *r = s->readers;
    atomic_thread_fence(memory_order_seq_cst);
    while (atomic_exchange_explicit(&r->sync_busy, 1, memory_order_acquire))
        store_spin_pause();
    for (unsigned flip = 0; flip < 2; flip++) {
        unsigned e = atomic_load_explicit(&r->epoch, memory_order_relaxed) & 1u;
        atomic_store_explicit(&r->epoch, e ^ 1u, memory_order_seq_cst);
        wait_drained(r, e);
    }
    atomic_store_explicit(&r->sync_busy, 0, memory_order_release);
}
