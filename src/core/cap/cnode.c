/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* CNode caps: 2^size_log slots, stored as a sorted array of the occupied
 * ones only. Appending in increasing slot order is O(1) amortised (the
 * decoder builds that way); any other set is a binary search and a move. */
#include "base.h"
#include "cap/cap_internal.h"

int cap_cnode_new(cap_t **out, const cap_alloc_t *a, unsigned size_log)
{
    if (!out || !a || size_log > CAP_CNODE_MAX_SIZE_LOG)
        return CAP_EINVAL;
    cap_t *c;
    int rc = cap_alloc_bare(&c, a, CAP_KIND_CNODE);
    if (rc)
        return rc;
    c->u.cnode.size_log = (uint8_t)size_log;
    *out = c;
    return CAP_OK;
}

unsigned cap_cnode_size_log(const cap_t *c)
{
    return (c && c->kind == CAP_KIND_CNODE) ? c->u.cnode.size_log : 0;
}

size_t cap_cnode_count(const cap_t *c)
{
    return (c && c->kind == CAP_KIND_CNODE) ? c->u.cnode.count : 0;
}

/* Index of the first entry with slot >= `slot`. */
static size_t lower_bound(const cap_cnode_body_t *b, uint32_t slot)
{
    size_t lo = 0, hi = b->count;
    if (hi && b->entries[hi - 1].slot < slot)
        return hi; /* the append case, without a search */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->entries[mid].slot < slot)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool in_range(const cap_cnode_body_t *b, uint32_t slot)
{
    return (uint64_t)slot < ((uint64_t)1 << b->size_log);
}

static int grow(const cap_alloc_t *a, cap_cnode_body_t *b, bool inl)
{
    size_t cap = b->capacity ? b->capacity * 2 : 4;
    size_t max = (size_t)1 << b->size_log;
    if (cap > max)
        cap = max;
    if (cap <= b->count)
        cap = b->count + 1; /* unreachable: count < 2^size_log when a slot is free */
    cap_cnode_entry_t *e;
    if (inl) {
        /* Outgrowing the inline room: the new array lives apart. */
        e = cap_mem_alloc(a, cap * sizeof *e);
        if (!e)
            return CAP_ENOMEM;
        cap_memcpy(e, b->entries, b->count * sizeof *e);
    } else {
        e = cap_mem_realloc(a, b->entries, b->capacity * sizeof *e, cap * sizeof *e);
        if (!e)
            return CAP_ENOMEM;
    }
    b->entries = e;
    b->capacity = cap;
    return CAP_OK;
}

int cap_cnode_set(cap_t *c, uint32_t slot, const cap_target_t *t)
{
    int rc = cap_check_writable(c, CAP_KIND_CNODE);
    if (rc)
        return rc;
    cap_cnode_body_t *b = &c->u.cnode;
    if (!in_range(b, slot))
        return CAP_ESLOTRANGE;
    if (!t)
        return CAP_EINVAL;
    if (t->kind == CAP_TARGET_NONE)
        return cap_cnode_clear(c, slot);
    rc = cap_target_validate(t);
    if (rc)
        return rc;
    size_t i = lower_bound(b, slot);
    if (i < b->count && b->entries[i].slot == slot) {
        /* Replace: take the new reference before dropping the old one (they
         * may be the same handle). */
        cap_slot_target_t old = b->entries[i];
        cap_slot_target_set(&b->entries[i], t);
        b->ref_count += (size_t)b->entries[i].is_ref;
        b->ref_count -= (size_t)old.is_ref;
        cap_slot_target_drop(&old);
        return CAP_OK;
    }
    if (b->count == b->capacity) {
        rc = grow(c->alloc, b, cap_cnode_entries_inline(c));
        if (rc)
            return rc;
    }
    if (i < b->count)
        cap_memmove(&b->entries[i + 1], &b->entries[i], (b->count - i) * sizeof *b->entries);
    b->entries[i].slot = slot;
    cap_slot_target_set(&b->entries[i], t);
    b->ref_count += (size_t)b->entries[i].is_ref;
    b->count++;
    return CAP_OK;
}

int cap_cnode_clear(cap_t *c, uint32_t slot)
{
    int rc = cap_check_writable(c, CAP_KIND_CNODE);
    if (rc)
        return rc;
    cap_cnode_body_t *b = &c->u.cnode;
    if (!in_range(b, slot))
        return CAP_ESLOTRANGE;
    size_t i = lower_bound(b, slot);
    if (i == b->count || b->entries[i].slot != slot)
        return CAP_OK; /* already empty */
    cap_slot_target_t old = b->entries[i];
    b->ref_count -= (size_t)old.is_ref;
    cap_memmove(&b->entries[i], &b->entries[i + 1], (b->count - i - 1) * sizeof *b->entries);
    b->count--;
    if (b->count == 0 && !cap_cnode_entries_inline(c)) {
        /* Give the memory back once empty (a free never fails); the inline
         * room, if any, serves again. */
        cap_mem_free(c->alloc, b->entries, b->capacity * sizeof *b->entries);
        b->capacity = b->inline_capacity;
        b->entries = b->capacity ? cap_cnode_inline(c) : (cap_cnode_entry_t *)0;
    }
    cap_slot_target_drop(&old);
    return CAP_OK;
}

int cap_cnode_get(const cap_t *c, uint32_t slot, cap_target_t *out)
{
    if (!c || c->kind != CAP_KIND_CNODE || !out)
        return CAP_EINVAL;
    const cap_cnode_body_t *b = &c->u.cnode;
    if (!in_range(b, slot))
        return CAP_ESLOTRANGE;
    size_t i = lower_bound(b, slot);
    if (i < b->count && b->entries[i].slot == slot) {
        *out = cap_slot_target_view(&b->entries[i]);
    } else {
        cap_memset(out, 0, sizeof *out);
        out->kind = CAP_TARGET_NONE;
    }
    return CAP_OK;
}

int cap_cnode_entry(const cap_t *c, size_t i, uint32_t *slot, cap_target_t *out)
{
    if (!c || c->kind != CAP_KIND_CNODE)
        return CAP_EINVAL;
    const cap_cnode_body_t *b = &c->u.cnode;
    if (i >= b->count)
        return CAP_EINVAL;
    if (slot)
        *slot = b->entries[i].slot;
    if (out)
        *out = cap_slot_target_view(&b->entries[i]);
    return CAP_OK;
}
