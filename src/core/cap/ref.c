/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Handles: the reference count half the cap layer owns (see cap_internal.h).
 * Everything else about a handle (what its last reference means, its entry)
 * belongs to the store that made it, through ops->release. */
#include "base.h"
#include "cap/cap_internal.h"

cap_ref_t *cap_ref_retain(cap_ref_t *r)
{
    if (r)
        atomic_fetch_add_explicit(&r->state, CAP_REF_ONE, memory_order_relaxed);
    return r;
}

void cap_ref_release(cap_ref_t *r)
{
    if (!r)
        return;
    /* No outside reference left: this release is one too many (it would
     * drive the count below zero). */
    CAP_DEBUG_CHECK((atomic_load_explicit(&r->state, memory_order_relaxed) >> 2) != 0);
    r->ops->release(r);
}

uint64_t cap_ref_id(const cap_ref_t *r)
{
    return r ? r->id : 0;
}

uint64_t cap_ref_strong_count(const cap_ref_t *r)
{
    if (!r)
        return 0;
    uint64_t s = atomic_load_explicit((_Atomic uint64_t *)&r->state, memory_order_acquire);
    return (s >> 2) + (s & CAP_REF_IN_STORE);
}
