/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The instance tier: entries are the handles themselves (no id table), each
 * on its shard's list; the shard lock guards the entry's cap. */
#include "store/store_internal.h"

/* Link entry `e` (made by store_entry_new, holding its cap) under a fresh
 * id and hand out its first handle reference. On failure the entry and its
 * cap reference are released. */
static int link_entry(cap_store_t *s, store_entry_t *e, cap_ref_t **out)
{
    /* Ids are handed out in order and never reused; UINT64_MAX is never
     * issued (the seed's checked_add): once next_id reaches it, the space is
     * exhausted. */
    uint64_t id = atomic_load_explicit(&s->next_id, memory_order_relaxed);
    do {
        if (id == UINT64_MAX) {
            cap_t *c = e->cap;
            store_entry_discard(s, e);
            cap_release(c);
            return CAP_EIDSPACE;
        }
    } while (!atomic_compare_exchange_weak_explicit(&s->next_id, &id, id + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    e->ref.id = id;
    atomic_fetch_add_explicit(&s->live, 1, memory_order_relaxed);
    store_shard_t *sh = store_shard(s, store_entry_shard(e));
    store_lock(s, sh->lock);
    store_entry_link_locked(s, e);
    store_unlock(s, sh->lock);
    *out = &e->ref;
    return CAP_OK;
}

/* Make a new entry holding `c` (the caller's reference passes to the store,
 * or is released on failure) and hand out its first handle reference. */
static int put_entry(cap_store_t *s, cap_t *c, cap_ref_t **out)
{
    int rc = store_ensure_ready(s);
    if (rc) {
        cap_release(c);
        return rc;
    }
    store_entry_t *e = store_entry_new(s, c);
    if (!e) {
        cap_release(c);
        return CAP_ENOMEM;
    }
    return link_entry(s, e, out);
}

int cap_store_put_instance(cap_store_t *s, cap_t *cap, cap_ref_t **out)
{
    if (out)
        *out = (cap_ref_t *)0;
    if (!s || !cap || !out)
        return CAP_EINVAL;
    if (!store_cap_refs_owned(s, cap))
        return CAP_EINVAL;
    return put_entry(s, cap_retain(cap), out);
}

int cap_store_promote_blob_to_instance(cap_store_t *s, const cap_hash_t *h, cap_ref_t **out)
{
    if (out)
        *out = (cap_ref_t *)0;
    if (!s || !h || !out)
        return CAP_EINVAL;
    cap_t *c;
    int rc;
    if (!store_backend_count(s)) {
        rc = store_blob_get(s, h, &c, (cap_err_t *)0);
        if (rc)
            return rc;
        /* A promote is usually followed by make_mut, which reads the body
         * past the line the lookup touched: start that miss now. */
        __builtin_prefetch((const char *)c + 64);
        return put_entry(s, c, out); /* shares the blob's cap: no copy */
    }
    rc = store_ensure_ready(s);
    if (rc)
        return rc;
    /* With backends, the entry first: a blob fetched for a promote that then
     * ran out of memory would change the store although the call failed. */
    store_entry_t *e = store_entry_new(s, (cap_t *)0);
    if (!e)
        return CAP_ENOMEM;
    rc = store_blob_get(s, h, &c, (cap_err_t *)0);
    if (rc) {
        store_entry_discard(s, e);
        return rc;
    }
    e->cap = c; /* shares the blob's cap: no copy */
    return link_entry(s, e, out);
}

static void set_missing(cap_err_t *err, uint64_t id)
{
    if (err) {
        cap_err_set(err, CAP_EINSTANCEMISSING, (const char *)0);
        err->id = id;
    }
}

int cap_store_get_instance(cap_store_t *s, cap_ref_t *r, cap_t **out)
{
    if (out)
        *out = (cap_t *)0;
    if (!s || !out)
        return CAP_EINVAL;
    store_entry_t *e = store_entry_of(s, r);
    if (!e)
        return CAP_EINVAL;
    if (!store_is_ready(s))
        return CAP_EINSTANCEMISSING;
    store_shard_t *sh = store_shard(s, store_entry_shard(e));
    cap_t *c = (cap_t *)0;
    store_lock(s, sh->lock);
    if (e->linked)
        c = cap_retain(e->cap);
    store_unlock(s, sh->lock);
    if (!c)
        return CAP_EINSTANCEMISSING;
    *out = c;
    return CAP_OK;
}

int cap_store_get(cap_store_t *s, const cap_target_t *t, cap_t **out)
{
    if (out)
        *out = (cap_t *)0;
    if (!s || !t || !out)
        return CAP_EINVAL;
    switch (t->kind) {
    case CAP_TARGET_HASH:
        return cap_store_get_blob(s, &t->hash, out);
    case CAP_TARGET_REF:
        return cap_store_get_instance(s, t->ref, out);
    default:
        return CAP_EINVAL;
    }
}

int cap_store_set_instance(cap_store_t *s, cap_ref_t *r, cap_t *cap, cap_err_t *err)
{
    if (!s || !cap)
        return store_fail(err, CAP_EINVAL, "NULL argument");
    store_entry_t *e = store_entry_of(s, r);
    if (!e)
        return store_fail(err, CAP_EINVAL, "no handle, or a handle of another store");
    if (!store_cap_refs_owned(s, cap))
        return store_fail(err, CAP_EINVAL, "the cap holds a handle of another store");
    if (!store_is_ready(s)) {
        set_missing(err, e->ref.id);
        return CAP_EINSTANCEMISSING;
    }
    store_shard_t *sh = store_shard(s, store_entry_shard(e));
    cap_t *old = (cap_t *)0;
    bool found;
    store_lock(s, sh->lock);
    found = e->linked != 0;
    if (found) {
        old = e->cap;
        e->cap = cap_retain(cap);
        e->version++;
    }
    store_unlock(s, sh->lock);
    if (!found) {
        set_missing(err, e->ref.id);
        return CAP_EINSTANCEMISSING;
    }
    cap_release(old); /* outside the lock: may cascade into handle releases */
    return CAP_OK;
}

/* Edit on a writable copy, committed only if the entry still holds the cap
 * the copy was made from (its version is unchanged); otherwise the edit runs
 * again on the new state. An error from `edit` abandons it: nothing changes.
 * (Editing in place when only the store holds the cap would save the copy,
 * but an abandoned edit could then not be undone; the cap layer has no undo.) */
int cap_store_edit_instance(cap_store_t *s, cap_ref_t *r, int (*edit)(cap_t *c, void *arg),
                            void *arg, cap_err_t *err)
{
    if (!s || !edit)
        return store_fail(err, CAP_EINVAL, "NULL argument");
    store_entry_t *e = store_entry_of(s, r);
    if (!e)
        return store_fail(err, CAP_EINVAL, "no handle, or a handle of another store");
    if (!store_is_ready(s)) {
        set_missing(err, e->ref.id);
        return CAP_EINSTANCEMISSING;
    }
    store_shard_t *sh = store_shard(s, store_entry_shard(e));
    for (;;) {
        uint64_t version = 0;
        cap_t *c = store_entry_read(s, e, &version);
        if (!c) {
            set_missing(err, e->ref.id);
            return CAP_EINSTANCEMISSING;
        }
        cap_t *copy;
        int rc = cap_copy(c, &copy);
        cap_release(c);
        if (rc)
            return store_fail(err, rc, "copying the cap");
        const char *why = "the edit failed";
        rc = edit(copy, arg);
        if (rc == CAP_OK && !store_cap_refs_owned(s, copy)) {
            rc = CAP_EINVAL;
            why = "the edit put a handle of another store into the cap";
        }
        if (rc) {
            cap_release(copy);
            return rc < 0 ? store_fail(err, rc, why) : rc;
        }
        cap_t *old = (cap_t *)0;
        int state; /* 0 committed, 1 changed meanwhile, 2 gone */
        store_lock(s, sh->lock);
        if (!e->linked) {
            state = 2;
        } else if (e->version != version) {
            state = 1;
        } else {
            old = e->cap;
            e->cap = copy;
            e->version++;
            state = 0;
        }
        store_unlock(s, sh->lock);
        if (state == 0) {
            cap_release(old);
            return CAP_OK;
        }
        cap_release(copy);
        if (state == 2) {
            set_missing(err, e->ref.id);
            return CAP_EINSTANCEMISSING;
        }
    }
}
