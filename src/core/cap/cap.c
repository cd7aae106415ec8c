/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Caps: allocation, reference counting, freezing, copy-on-write, equality,
 * and the Ref-target walk the store's settle uses. The kind-specific
 * constructors and setters live in type.c, cnode.c, data.c, instance.c and
 * image.c; cap_hash in hash.c. */
#include "base.h"
#include "cap/cap_internal.h"

/* Helpers shared by the kinds ----------------------------------------------------------- */

bool cap_hash_is_zero(const cap_hash_t *h)
{
    CAP_DEBUG_CHECK(h != (const cap_hash_t *)0);
    uint8_t acc = 0;
    for (unsigned i = 0; i < 32; i++)
        acc |= h->bytes[i];
    return acc == 0;
}

int cap_check_writable(const cap_t *c, cap_kind_t k)
{
    if (!c || c->kind != (uint8_t)k)
        return CAP_EINVAL;
    return cap_is_writable(c) ? CAP_OK : CAP_EBUSY;
}

int cap_target_validate(const cap_target_t *t)
{
    if (!t)
        return CAP_EINVAL;
    switch (t->kind) {
    case CAP_TARGET_HASH:
        return cap_hash_is_zero(&t->hash) ? CAP_EINVAL : CAP_OK;
    case CAP_TARGET_REF:
        return t->ref ? CAP_OK : CAP_EINVAL;
    default:
        return CAP_EINVAL;
    }
}

void cap_slot_target_set(cap_slot_target_t *dst, const cap_target_t *t)
{
    if (t->kind == CAP_TARGET_REF) {
        dst->is_ref = 1;
        dst->u.ref = cap_ref_retain(t->ref);
    } else {
        dst->is_ref = 0;
        dst->u.hash = t->hash;
    }
}

void cap_slot_target_drop(cap_slot_target_t *st)
{
    if (st->is_ref) {
        struct cap_ref *r = st->u.ref;
        st->is_ref = 0;
        cap_memset(&st->u, 0, sizeof st->u);
        cap_ref_release(r);
    }
}

cap_target_t cap_slot_target_view(const cap_slot_target_t *st)
{
    if (st->is_ref)
        return cap_target_of_ref(st->u.ref);
    return cap_target_of_hash(&st->u.hash);
}

static bool slot_target_equal(const cap_slot_target_t *a, const cap_slot_target_t *b)
{
    if (a->is_ref != b->is_ref)
        return false;
    if (a->is_ref)
        return a->u.ref == b->u.ref;
    return cap_memcmp(a->u.hash.bytes, b->u.hash.bytes, 32) == 0;
}

/* Allocation and reference counting ---------------------------------------------------- */

int cap_alloc_bare(cap_t **out, const cap_alloc_t *a, cap_kind_t kind)
{
    if (!out || !a || (unsigned)kind > CAP_KIND_TYPE)
        return CAP_EINVAL;
    size_t n = CAP_BARE_SIZE(kind);
    cap_t *c = cap_mem_alloc(a, n);
    if (!c)
        return CAP_ENOMEM;
    cap_memset(c, 0, n);
    atomic_init(&c->refs, 1);
    atomic_init(&c->flags, 0);
    c->kind = (uint8_t)kind;
    c->alloc = a;
    *out = c;
    return CAP_OK;
}

cap_t *cap_retain(cap_t *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

static void free_body(cap_t *c)
{
    const cap_alloc_t *a = c->alloc;
    switch ((cap_kind_t)c->kind) {
    case CAP_KIND_CNODE: {
        cap_cnode_body_t *b = &c->u.cnode;
        if (b->ref_count)
            for (size_t i = 0; i < b->count; i++)
                cap_slot_target_drop(&b->entries[i]);
        if (!cap_cnode_entries_inline(c))
            cap_mem_free(a, b->entries, b->capacity * sizeof *b->entries);
        break;
    }
    case CAP_KIND_DATA: {
        cap_data_body_t *b = &c->u.data;
        for (uint64_t i = 0; i < b->page_count; i++)
            cap_page_release(a, b->pages[i]);
        cap_mem_free(a, b->pages, (size_t)b->page_capacity * sizeof *b->pages);
        break;
    }
    case CAP_KIND_INSTANCE: {
        cap_instance_body_t *b = &c->u.instance;
        cap_slot_target_drop(&b->root_cnode);
        for (size_t i = 0; i < b->overlay_count; i++)
            cap_mem_free(a, b->overlays[i].bytes, b->overlays[i].len);
        cap_mem_free(a, b->overlays, b->overlay_capacity * sizeof *b->overlays);
        break;
    }
    case CAP_KIND_IMAGE:
        cap_mem_free(a, c->u.image.block, c->u.image.block_size);
        break;
    case CAP_KIND_TYPE:
        break;
    }
}

/* Apart from cap_release, so that dropping a reference that is not the last
 * costs no more than the decrement. */
static __attribute__((noinline)) void cap_destroy(cap_t *c)
{
    const cap_alloc_t *a = c->alloc;
    free_body(c);
    cap_mem_free(a, c, cap_block_size(c));
}

void cap_release(cap_t *c)
{
    if (!c)
        return;
    uint32_t was = atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
    CAP_DEBUG_CHECK(was != 0); /* released once more than held */
    if (was == 1)
        cap_destroy(c);
}

cap_kind_t cap_kind(const cap_t *c)
{
    CAP_DEBUG_CHECK(c != (const cap_t *)0);
    return (cap_kind_t)c->kind;
}

const cap_alloc_t *cap_allocator(const cap_t *c)
{
    return c ? c->alloc : (const cap_alloc_t *)0;
}

uint32_t cap_refcount(const cap_t *c)
{
    return c ? atomic_load_explicit((_Atomic uint32_t *)&c->refs, memory_order_acquire) : 0;
}

void cap_freeze(cap_t *c)
{
    if (c)
        atomic_fetch_or_explicit(&c->flags, CAP_FLAG_FROZEN, memory_order_release);
}

bool cap_claim_key(cap_t *c, const cap_hash_t *h)
{
    uint32_t f = atomic_load_explicit(&c->flags, memory_order_acquire);
    if (!(f & CAP_FLAG_KEY_SET)) {
        f = atomic_fetch_or_explicit(&c->flags, CAP_FLAG_KEY_BUSY, memory_order_acquire);
        if (!(f & CAP_FLAG_KEY_BUSY)) {
            c->key = *h;
            atomic_fetch_or_explicit(&c->flags, CAP_FLAG_KEY_SET, memory_order_release);
            return true;
        }
        /* Another thread is writing it: a few stores away. */
        while (!(atomic_load_explicit(&c->flags, memory_order_acquire) & CAP_FLAG_KEY_SET))
            ;
    }
    return cap_memcmp(c->key.bytes, h->bytes, 32) == 0;
}

bool cap_is_frozen(const cap_t *c)
{
    if (!c)
        return false;
    return (atomic_load_explicit((_Atomic uint32_t *)&c->flags, memory_order_acquire) &
            CAP_FLAG_FROZEN) != 0;
}

bool cap_is_writable(const cap_t *c)
{
    if (!c)
        return false;
    return atomic_load_explicit((_Atomic uint32_t *)&c->refs, memory_order_acquire) == 1 &&
           !cap_is_frozen(c);
}

/* Copy ---------------------------------------------------------------------------------- */

/* A CNode copy is one allocation: the struct, then the entries with spare
 * room for a few more (a copy is usually made to be edited: make_mut then
 * set). */
static int copy_cnode(const cap_t *src, cap_t **out)
{
    const cap_cnode_body_t *s = &src->u.cnode;
    /* The source entries are usually cold (a published blob): start all
     * their cache misses now, so they overlap each other and the malloc. */
    {
        const char *p = (const char *)(const void *)s->entries;
        size_t bytes = s->count * sizeof *s->entries;
        for (size_t off = 0; off < bytes; off += 64)
            __builtin_prefetch(p + off);
    }
    size_t room = s->count + 2 + s->count / 8;
    size_t max = (size_t)1 << s->size_log;
    if (room > max)
        room = max;
    if (room < s->count) /* unreachable: count <= 2^size_log */
        room = s->count;
    cap_t *c = cap_mem_alloc(src->alloc, CAP_CNODE_HEAD_SIZE + room * sizeof(cap_cnode_entry_t));
    if (!c)
        return CAP_ENOMEM;
    cap_memset(c, 0, CAP_CNODE_HEAD_SIZE);
    atomic_init(&c->refs, 1);
    atomic_init(&c->flags, 0);
    c->kind = CAP_KIND_CNODE;
    c->alloc = src->alloc;
    cap_cnode_body_t *d = &c->u.cnode;
    d->size_log = s->size_log;
    d->inline_capacity = room;
    d->entries = cap_cnode_inline(c);
    d->capacity = room;
    if (s->count) {
        cap_memcpy(d->entries, s->entries, s->count * sizeof *d->entries);
        if (s->ref_count)
            for (size_t i = 0; i < s->count; i++)
                if (d->entries[i].is_ref)
                    cap_ref_retain(d->entries[i].u.ref);
    }
    d->count = s->count;
    d->ref_count = s->ref_count;
    *out = c;
    return CAP_OK;
}

static int copy_data(cap_t *dst, const cap_t *src)
{
    const cap_data_body_t *s = &src->u.data;
    cap_data_body_t *d = &dst->u.data;
    d->page_size = s->page_size;
    if (s->page_count) {
        d->pages = cap_mem_alloc(src->alloc, (size_t)s->page_count * sizeof *d->pages);
        if (!d->pages)
            return CAP_ENOMEM;
        cap_memcpy(d->pages, s->pages, (size_t)s->page_count * sizeof *d->pages);
        for (uint64_t i = 0; i < s->page_count; i++)
            if (d->pages[i])
                cap_page_retain(d->pages[i]);
    }
    d->page_count = d->page_capacity = s->page_count;
    return CAP_OK;
}

static int copy_instance(cap_t *dst, const cap_t *src)
{
    const cap_alloc_t *a = src->alloc;
    const cap_instance_body_t *s = &src->u.instance;
    cap_instance_body_t *d = &dst->u.instance;
    if (s->overlay_count) {
        d->overlays = cap_mem_alloc(a, s->overlay_count * sizeof *d->overlays);
        if (!d->overlays)
            return CAP_ENOMEM;
        size_t i;
        for (i = 0; i < s->overlay_count; i++) {
            d->overlays[i] = s->overlays[i];
            if (s->overlays[i].len) {
                d->overlays[i].bytes = cap_mem_alloc(a, s->overlays[i].len);
                if (!d->overlays[i].bytes)
                    break;
                cap_memcpy(d->overlays[i].bytes, s->overlays[i].bytes, s->overlays[i].len);
            }
        }
        if (i < s->overlay_count) {
            while (i--)
                cap_mem_free(a, d->overlays[i].bytes, d->overlays[i].len);
            cap_mem_free(a, d->overlays, s->overlay_count * sizeof *d->overlays);
            d->overlays = (cap_overlay_t *)0;
            return CAP_ENOMEM;
        }
    }
    d->overlay_count = d->overlay_capacity = s->overlay_count;
    d->image_hash_chain = s->image_hash_chain;
    d->image_hash = s->image_hash;
    d->root_cnode = s->root_cnode;
    if (d->root_cnode.is_ref)
        cap_ref_retain(d->root_cnode.u.ref);
    d->mem_size = s->mem_size;
    cap_memcpy(d->regs, s->regs, sizeof d->regs);
    d->pc = s->pc;
    d->gas_remaining = s->gas_remaining;
    return CAP_OK;
}

int cap_copy(const cap_t *src, cap_t **out)
{
    if (!src || !out)
        return CAP_EINVAL;
    if (src->kind == CAP_KIND_CNODE)
        return copy_cnode(src, out);
    cap_t *c;
    int rc = cap_alloc_bare(&c, src->alloc, (cap_kind_t)src->kind);
    if (rc)
        return rc;
    switch ((cap_kind_t)src->kind) {
    case CAP_KIND_TYPE:
        c->u.type_chain = src->u.type_chain;
        break;
    case CAP_KIND_CNODE: /* handled above */
        break;
    case CAP_KIND_DATA:
        rc = copy_data(c, src);
        break;
    case CAP_KIND_INSTANCE:
        rc = copy_instance(c, src);
        break;
    case CAP_KIND_IMAGE:
        rc = cap_image_body_init(c, &src->u.image.desc, (cap_err_t *)0);
        break;
    }
    if (rc) {
        /* The body holds nothing on failure: free only the cap. */
        cap_mem_free(src->alloc, c, sizeof *c);
        return rc;
    }
    *out = c;
    return CAP_OK;
}

int cap_make_mut(cap_t **c)
{
    if (!c || !*c)
        return CAP_EINVAL;
    if (cap_is_writable(*c))
        return CAP_OK;
    cap_t *n;
    int rc = cap_copy(*c, &n);
    if (rc)
        return rc;
    cap_release(*c);
    *c = n;
    return CAP_OK;
}

/* Equality ------------------------------------------------------------------------------ */

static bool page_equal(const cap_page_t *a, const cap_page_t *b, uint32_t page_size)
{
    if (a == b)
        return true;
    if (!a || !b || a->state != b->state)
        return false;
    if (a->state == CAP_PAGE_MISSING)
        return cap_memcmp(a->root.bytes, b->root.bytes, 32) == 0;
    return cap_memcmp(a->data, b->data, page_size) == 0;
}

static bool bytes_equal(const void *a, const void *b, size_t n)
{
    return n == 0 || cap_memcmp(a, b, n) == 0;
}

static bool image_equal(const cap_image_desc_t *a, const cap_image_desc_t *b)
{
    if (a->code_len != b->code_len || a->bitmask_len != b->bitmask_len ||
        a->jump_table_len != b->jump_table_len || a->endpoints_len != b->endpoints_len ||
        a->mappings_len != b->mappings_len || a->pinned_len != b->pinned_len ||
        a->initial_len != b->initial_len || a->has_yield_marker != b->has_yield_marker)
        return false;
    if (a->has_yield_marker && a->yield_marker_slot != b->yield_marker_slot)
        return false;
    if (!bytes_equal(a->code, b->code, a->code_len) ||
        !bytes_equal(a->bitmask, b->bitmask, a->bitmask_len) ||
        !bytes_equal(a->jump_table, b->jump_table, a->jump_table_len * sizeof(uint32_t)))
        return false;
    for (size_t i = 0; i < a->endpoints_len; i++) {
        const cap_endpoint_t *x = &a->endpoints[i], *y = &b->endpoints[i];
        if (x->entry_pc != y->entry_pc || x->stack_top != y->stack_top ||
            x->arg_cnode_slot != y->arg_cnode_slot || x->arg_cnode_size != y->arg_cnode_size ||
            cap_memcmp(x->initial_regs, y->initial_regs, sizeof x->initial_regs) != 0)
            return false;
    }
    for (size_t i = 0; i < a->mappings_len; i++) {
        const cap_mapping_t *x = &a->mappings[i], *y = &b->mappings[i];
        if (x->start != y->start || x->size != y->size || x->source_path_len != y->source_path_len ||
            cap_memcmp(x->source_path, y->source_path, sizeof x->source_path) != 0)
            return false;
    }
    for (size_t i = 0; i < a->pinned_len; i++)
        if (a->pinned[i].slot != b->pinned[i].slot ||
            cap_memcmp(a->pinned[i].cap_hash.bytes, b->pinned[i].cap_hash.bytes, 32) != 0)
            return false;
    for (size_t i = 0; i < a->initial_len; i++)
        if (a->initial[i].slot != b->initial[i].slot ||
            cap_memcmp(a->initial[i].cap_hash.bytes, b->initial[i].cap_hash.bytes, 32) != 0)
            return false;
    return true;
}

bool cap_equal(const cap_t *a, const cap_t *b)
{
    if (a == b)
        return true;
    if (!a || !b || a->kind != b->kind)
        return false;
    switch ((cap_kind_t)a->kind) {
    case CAP_KIND_TYPE:
        return cap_memcmp(a->u.type_chain.bytes, b->u.type_chain.bytes, 32) == 0;
    case CAP_KIND_CNODE: {
        const cap_cnode_body_t *x = &a->u.cnode, *y = &b->u.cnode;
        if (x->size_log != y->size_log || x->count != y->count)
            return false;
        for (size_t i = 0; i < x->count; i++)
            if (x->entries[i].slot != y->entries[i].slot ||
                !slot_target_equal(&x->entries[i], &y->entries[i]))
                return false;
        return true;
    }
    case CAP_KIND_DATA: {
        const cap_data_body_t *x = &a->u.data, *y = &b->u.data;
        if (x->page_size != y->page_size || x->page_count != y->page_count)
            return false;
        for (uint64_t i = 0; i < x->page_count; i++)
            if (!page_equal(x->pages[i], y->pages[i], x->page_size))
                return false;
        return true;
    }
    case CAP_KIND_INSTANCE: {
        const cap_instance_body_t *x = &a->u.instance, *y = &b->u.instance;
        if (cap_memcmp(x->image_hash_chain.bytes, y->image_hash_chain.bytes, 32) != 0 ||
            cap_memcmp(x->image_hash.bytes, y->image_hash.bytes, 32) != 0 ||
            !slot_target_equal(&x->root_cnode, &y->root_cnode) || x->mem_size != y->mem_size ||
            cap_memcmp(x->regs, y->regs, sizeof x->regs) != 0 || x->pc != y->pc ||
            x->gas_remaining != y->gas_remaining || x->overlay_count != y->overlay_count)
            return false;
        for (size_t i = 0; i < x->overlay_count; i++)
            if (x->overlays[i].start != y->overlays[i].start ||
                x->overlays[i].len != y->overlays[i].len ||
                !bytes_equal(x->overlays[i].bytes, y->overlays[i].bytes, x->overlays[i].len))
                return false;
        return true;
    }
    case CAP_KIND_IMAGE:
        return image_equal(&a->u.image.desc, &b->u.image.desc);
    }
    return false;
}

/* Ref targets (for settle) -------------------------------------------------------------- */

bool cap_has_refs(const cap_t *c)
{
    return cap_ref_target_count(c) != 0;
}

size_t cap_ref_target_count(const cap_t *c)
{
    if (!c)
        return 0;
    if (c->kind == CAP_KIND_CNODE)
        return c->u.cnode.ref_count;
    if (c->kind == CAP_KIND_INSTANCE)
        return c->u.instance.root_cnode.is_ref ? 1 : 0;
    return 0;
}

struct cap_ref *cap_ref_target_at(const cap_t *c, size_t i)
{
    if (!c || i >= cap_ref_target_count(c))
        return (struct cap_ref *)0;
    if (c->kind == CAP_KIND_INSTANCE)
        return c->u.instance.root_cnode.u.ref;
    const cap_cnode_body_t *b = &c->u.cnode;
    if (b->ref_count == b->count) /* every slot a Ref: direct */
        return b->entries[i].u.ref;
    for (size_t k = 0; k < b->count; k++)
        if (b->entries[k].is_ref && i-- == 0)
            return b->entries[k].u.ref;
    return (struct cap_ref *)0;
}

int cap_ref_target_rewrite(cap_t *c, const struct cap_ref *r, const cap_hash_t *h)
{
    if (!c || !r || !h || cap_hash_is_zero(h))
        return CAP_EINVAL;
    if (c->kind != CAP_KIND_CNODE && c->kind != CAP_KIND_INSTANCE)
        return CAP_EINVAL;
    if (!cap_is_writable(c))
        return CAP_EBUSY;
    cap_target_t t = cap_target_of_hash(h);
    if (c->kind == CAP_KIND_INSTANCE) {
        cap_slot_target_t *st = &c->u.instance.root_cnode;
        if (st->is_ref && st->u.ref == r) {
            cap_slot_target_drop(st);
            cap_slot_target_set(st, &t);
        }
        return CAP_OK;
    }
    cap_cnode_body_t *b = &c->u.cnode;
    for (size_t k = 0; k < b->count && b->ref_count; k++) {
        cap_slot_target_t *st = &b->entries[k];
        if (st->is_ref && st->u.ref == r) {
            b->ref_count--;
            cap_slot_target_drop(st);
            cap_slot_target_set(st, &t);
        }
    }
    return CAP_OK;
}

void cap_ref_targets_to_hashes(cap_t *c, cap_ref_hash_fn fn, void *ctx, size_t index)
{
    if (c->kind == CAP_KIND_INSTANCE) {
        cap_slot_target_t *st = &c->u.instance.root_cnode;
        if (st->is_ref) {
            st->is_ref = 0;
            st->u.hash = *fn(ctx, index, 0);
        }
        return;
    }
    if (c->kind != CAP_KIND_CNODE)
        return;
    cap_cnode_body_t *b = &c->u.cnode;
    size_t ord = 0;
    for (size_t k = 0; k < b->count && ord < b->ref_count; k++) {
        cap_slot_target_t *st = &b->entries[k];
        if (st->is_ref) {
            st->is_ref = 0;
            st->u.hash = *fn(ctx, index, ord++);
        }
    }
    b->ref_count = 0;
}
