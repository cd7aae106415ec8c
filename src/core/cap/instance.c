/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Instance caps: a running instance's state (cap-schema.md, InstanceCap). */
#include "base.h"
#include "cap/cap_internal.h"

#define MAX_OVERLAYS ((uint64_t)1 << 32)    /* List[RwOverlay, 2^32] */
#define MAX_OVERLAY_BYTES ((uint64_t)1 << 32) /* List[uint8, 2^32] */

static const cap_instance_body_t *body(const cap_t *c)
{
    return (c && c->kind == CAP_KIND_INSTANCE) ? &c->u.instance : (const cap_instance_body_t *)0;
}

int cap_instance_new(cap_t **out, const cap_alloc_t *a, const cap_target_t *root_cnode)
{
    if (!out || !a)
        return CAP_EINVAL;
    int rc = cap_target_validate(root_cnode);
    if (rc)
        return rc;
    cap_t *c;
    rc = cap_alloc_bare(&c, a, CAP_KIND_INSTANCE);
    if (rc)
        return rc;
    cap_slot_target_set(&c->u.instance.root_cnode, root_cnode);
    *out = c;
    return CAP_OK;
}

const cap_hash_t *cap_instance_image_hash_chain(const cap_t *c)
{
    const cap_instance_body_t *b = body(c);
    return b ? &b->image_hash_chain : (const cap_hash_t *)0;
}

const cap_hash_t *cap_instance_image_hash(const cap_t *c)
{
    const cap_instance_body_t *b = body(c);
    return b ? &b->image_hash : (const cap_hash_t *)0;
}

cap_target_t cap_instance_root_cnode(const cap_t *c)
{
    const cap_instance_body_t *b = body(c);
    if (!b) {
        cap_target_t none;
        cap_memset(&none, 0, sizeof none);
        none.kind = CAP_TARGET_NONE;
        return none;
    }
    return cap_slot_target_view(&b->root_cnode);
}

uint32_t cap_instance_mem_size(const cap_t *c)
{
    const cap_instance_body_t *b = body(c);
    return b ? b->mem_size : 0;
}

uint64_t cap_instance_reg(const cap_t *c, unsigned i)
{
    const cap_instance_body_t *b = body(c);
    return (b && i < CAP_NUM_REGS) ? b->regs[i] : 0;
}

uint64_t cap_instance_pc(const cap_t *c)
{
    const cap_instance_body_t *b = body(c);
    return b ? b->pc : 0;
}

uint64_t cap_instance_gas_remaining(const cap_t *c)
{
    const cap_instance_body_t *b = body(c);
    return b ? b->gas_remaining : 0;
}

size_t cap_instance_overlay_count(const cap_t *c)
{
    const cap_instance_body_t *b = body(c);
    return b ? b->overlay_count : 0;
}

int cap_instance_overlay(const cap_t *c, size_t i, uint32_t *start, const uint8_t **bytes,
                         size_t *len)
{
    const cap_instance_body_t *b = body(c);
    if (!b || i >= b->overlay_count)
        return CAP_EINVAL;
    if (start)
        *start = b->overlays[i].start;
    if (bytes)
        *bytes = b->overlays[i].bytes;
    if (len)
        *len = b->overlays[i].len;
    return CAP_OK;
}

int cap_instance_set_image_hash_chain(cap_t *c, const cap_hash_t *h)
{
    int rc = cap_check_writable(c, CAP_KIND_INSTANCE);
    if (rc)
        return rc;
    if (!h)
        return CAP_EINVAL;
    c->u.instance.image_hash_chain = *h;
    return CAP_OK;
}

int cap_instance_set_image_hash(cap_t *c, const cap_hash_t *h)
{
    int rc = cap_check_writable(c, CAP_KIND_INSTANCE);
    if (rc)
        return rc;
    if (!h)
        return CAP_EINVAL;
    c->u.instance.image_hash = *h;
    return CAP_OK;
}

int cap_instance_set_root_cnode(cap_t *c, const cap_target_t *t)
{
    int rc = cap_check_writable(c, CAP_KIND_INSTANCE);
    if (rc)
        return rc;
    rc = cap_target_validate(t);
    if (rc)
        return rc;
    cap_slot_target_t old = c->u.instance.root_cnode;
    cap_slot_target_set(&c->u.instance.root_cnode, t); /* retain before release */
    cap_slot_target_drop(&old);
    return CAP_OK;
}

int cap_instance_set_mem_size(cap_t *c, uint32_t v)
{
    int rc = cap_check_writable(c, CAP_KIND_INSTANCE);
    if (rc)
        return rc;
    c->u.instance.mem_size = v;
    return CAP_OK;
}

int cap_instance_set_reg(cap_t *c, unsigned i, uint64_t v)
{
    int rc = cap_check_writable(c, CAP_KIND_INSTANCE);
    if (rc)
        return rc;
    if (i >= CAP_NUM_REGS)
        return CAP_EINVAL;
    c->u.instance.regs[i] = v;
    return CAP_OK;
}

int cap_instance_set_pc(cap_t *c, uint64_t v)
{
    int rc = cap_check_writable(c, CAP_KIND_INSTANCE);
    if (rc)
        return rc;
    c->u.instance.pc = v;
    return CAP_OK;
}

int cap_instance_set_gas_remaining(cap_t *c, uint64_t v)
{
    int rc = cap_check_writable(c, CAP_KIND_INSTANCE);
    if (rc)
        return rc;
    c->u.instance.gas_remaining = v;
    return CAP_OK;
}

int cap_instance_add_overlay(cap_t *c, uint32_t start, const void *bytes, size_t len)
{
    int rc = cap_check_writable(c, CAP_KIND_INSTANCE);
    if (rc)
        return rc;
    cap_instance_body_t *b = &c->u.instance;
    if ((len && !bytes) || (uint64_t)len > MAX_OVERLAY_BYTES ||
        (uint64_t)b->overlay_count >= MAX_OVERLAYS)
        return CAP_EINVAL;
    uint8_t *copy = (uint8_t *)0;
    if (len) {
        copy = cap_mem_alloc(c->alloc, len);
        if (!copy)
            return CAP_ENOMEM;
        cap_memcpy(copy, bytes, len);
    }
    if (b->overlay_count == b->overlay_capacity) {
        size_t cap = b->overlay_capacity ? b->overlay_capacity * 2 : 2;
        cap_overlay_t *o = cap_mem_realloc(c->alloc, b->overlays,
                                           b->overlay_capacity * sizeof *o, cap * sizeof *o);
        if (!o) {
            cap_mem_free(c->alloc, copy, len);
            return CAP_ENOMEM;
        }
        b->overlays = o;
        b->overlay_capacity = cap;
    }
    cap_overlay_t *o = &b->overlays[b->overlay_count++];
    o->start = start;
    o->len = len;
    o->bytes = copy;
    return CAP_OK;
}

int cap_instance_clear_overlays(cap_t *c)
{
    int rc = cap_check_writable(c, CAP_KIND_INSTANCE);
    if (rc)
        return rc;
    cap_instance_body_t *b = &c->u.instance;
    for (size_t i = 0; i < b->overlay_count; i++)
        cap_mem_free(c->alloc, b->overlays[i].bytes, b->overlays[i].len);
    cap_mem_free(c->alloc, b->overlays, b->overlay_capacity * sizeof *b->overlays);
    b->overlays = (cap_overlay_t *)0;
    b->overlay_count = b->overlay_capacity = 0;
    return CAP_OK;
}
