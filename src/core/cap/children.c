/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Children: which fields of a cap name other caps (docs/graph.md).
 *
 * The one definition, in two forms: over a cap in memory, and over a cap's
 * wire bytes without decoding it (a walk over a database reads every blob
 * once and must not allocate a cap for each). The two list the same
 * children in the same order; tests/test_children.c holds them to it.
 *
 *   CNode     every occupied slot, in slot order
 *   Instance  image_hash when not zero, then root_cnode
 *   Image     every pinned entry, then every initial entry, in slot order
 *   Data      none (page roots are hashes of bytes, not of caps)
 *   Type      none (image_hash_chain is a type's identity, not a cap's hash;
 *             an Instance's image_hash_chain likewise)
 */
#include "base.h"
#include "cap/cap_internal.h"

const char *cap_child_field_name(cap_child_field_t f)
{
    switch (f) {
    case CAP_CHILD_SLOT: return "slot";
    case CAP_CHILD_IMAGE: return "image";
    case CAP_CHILD_ROOT_CNODE: return "root_cnode";
    case CAP_CHILD_PINNED: return "pinned";
    case CAP_CHILD_INITIAL: return "initial";
    }
    return "?";
}

static int emit(cap_child_fn fn, void *arg, cap_child_field_t f, uint32_t index,
                const cap_slot_target_t *st)
{
    cap_child_t ch;
    ch.field = f;
    ch.index = index;
    ch.target = cap_slot_target_view(st);
    return fn(arg, &ch);
}

static int emit_hash(cap_child_fn fn, void *arg, cap_child_field_t f, uint32_t index,
                     const uint8_t *h)
{
    cap_child_t ch;
    ch.field = f;
    ch.index = index;
    ch.target.kind = CAP_TARGET_HASH;
    ch.target.ref = (cap_ref_t *)0;
    cap_memcpy(ch.target.hash.bytes, h, 32);
    return fn(arg, &ch);
}

int cap_for_each_child(const cap_t *c, cap_child_fn fn, void *arg)
{
    if (!c || !fn)
        return CAP_EINVAL;
    int rc = CAP_OK;
    switch ((cap_kind_t)c->kind) {
    case CAP_KIND_CNODE: {
        const cap_cnode_body_t *b = &c->u.cnode;
        for (size_t i = 0; i < b->count && rc == CAP_OK; i++)
            rc = emit(fn, arg, CAP_CHILD_SLOT, b->entries[i].slot, &b->entries[i]);
        break;
    }
    case CAP_KIND_INSTANCE: {
        const cap_instance_body_t *in = &c->u.instance;
        if (!cap_hash_is_zero(&in->image_hash))
            rc = emit_hash(fn, arg, CAP_CHILD_IMAGE, 0, in->image_hash.bytes);
        if (rc == CAP_OK)
            rc = emit(fn, arg, CAP_CHILD_ROOT_CNODE, 0, &in->root_cnode);
        break;
    }
    case CAP_KIND_IMAGE: {
        const cap_image_desc_t *d = &c->u.image.desc;
        for (size_t i = 0; i < d->pinned_len && rc == CAP_OK; i++)
            rc = emit_hash(fn, arg, CAP_CHILD_PINNED, d->pinned[i].slot, d->pinned[i].cap_hash.bytes);
        for (size_t i = 0; i < d->initial_len && rc == CAP_OK; i++)
            rc = emit_hash(fn, arg, CAP_CHILD_INITIAL, d->initial[i].slot,
                           d->initial[i].cap_hash.bytes);
        break;
    }
    case CAP_KIND_DATA:
    case CAP_KIND_TYPE:
        break;
    }
    return rc;
}

/* Wire form ---------------------------------------------------------------------------------
 * Only the parts that hold children are read, each checked against the
 * bounds and the offset rules the decoder applies to it, with the decoder's
 * rule names; everything else is left to cap_wire_decode. */

#define W_INSTANCE_FIXED 224u /* image_hash_chain .. gas_remaining */
#define W_IMAGE_FIXED 32u     /* eight offsets */
#define W_CNODE_FIXED 5u      /* size_log, one offset */
#define W_ENTRY 36u           /* slot (uint32) + hash */

static int wbad(cap_err_t *err, size_t at, const char *rule)
{
    if (err) {
        cap_err_set(err, CAP_EDECODE, rule);
        err->offset = at;
    }
    return CAP_EDECODE;
}

static bool zero32(const uint8_t *p)
{
    uint8_t acc = 0;
    for (unsigned i = 0; i < 32; i++)
        acc |= p[i];
    return acc == 0;
}

/* Check a list of slot entries at [s, e) (offsets into b): whole entries,
 * strictly increasing slots, no zero hash. */
static int check_entries(const uint8_t *b, size_t s, size_t e, cap_child_field_t f, uint64_t limit,
                         cap_err_t *err)
{
    size_t len = e - s;
    if (len % W_ENTRY)
        return wbad(err, s + len / W_ENTRY * W_ENTRY, "list_partial_element");
    if ((uint64_t)(len / W_ENTRY) > limit)
        return wbad(err, s + (size_t)limit * W_ENTRY, "list_over_limit");
    for (size_t p = s; p < e; p += W_ENTRY) {
        if (p > s && cap_load_le32(b + p) <= cap_load_le32(b + p - W_ENTRY))
            return wbad(err, p, f == CAP_CHILD_SLOT ? "cnode_slots_not_increasing"
                                                    : "ImageConvertFailed");
        if (zero32(b + p + 4))
            return wbad(err, p + 4, f == CAP_CHILD_SLOT ? "zero_target" : "ImageConvertFailed");
    }
    return CAP_OK;
}

/* Report a checked list's entries. */
static int emit_entries(const uint8_t *b, size_t s, size_t e, cap_child_field_t f, cap_child_fn fn,
                        void *arg)
{
    for (size_t p = s; p < e; p += W_ENTRY) {
        int rc = emit_hash(fn, arg, f, cap_load_le32(b + p), b + p + 4);
        if (rc != CAP_OK)
            return rc;
    }
    return CAP_OK;
}

static int wire_cnode(const uint8_t *b, size_t n, cap_child_fn fn, void *arg, cap_err_t *err)
{
    if (n - 1 < W_CNODE_FIXED)
        return wbad(err, n, "truncated");
    uint32_t off = cap_load_le32(b + 2);
    if (off > n - 1)
        return wbad(err, 2, "offset_out_of_bounds");
    if (off != W_CNODE_FIXED)
        return wbad(err, 2, "offset_not_at_fixed_end");
    int rc = check_entries(b, 1 + W_CNODE_FIXED, n, CAP_CHILD_SLOT, 65536u, err);
    return rc ? rc : emit_entries(b, 1 + W_CNODE_FIXED, n, CAP_CHILD_SLOT, fn, arg);
}

static int wire_instance(const uint8_t *b, size_t n, cap_child_fn fn, void *arg, cap_err_t *err)
{
    if (n - 1 < W_INSTANCE_FIXED)
        return wbad(err, n, "truncated");
    const uint8_t *image = b + 33, *root = b + 65;
    if (zero32(root))
        return wbad(err, 65, "zero_target");
    int rc = CAP_OK;
    if (!zero32(image))
        rc = emit_hash(fn, arg, CAP_CHILD_IMAGE, 0, image);
    if (rc == CAP_OK)
        rc = emit_hash(fn, arg, CAP_CHILD_ROOT_CNODE, 0, root);
    return rc;
}

static int wire_image(const uint8_t *b, size_t n, cap_child_fn fn, void *arg, cap_err_t *err)
{
    size_t len = n - 1;
    if (len < W_IMAGE_FIXED)
        return wbad(err, n, "truncated");
    size_t bound[9];
    uint32_t prev = W_IMAGE_FIXED;
    for (unsigned i = 0; i < 8; i++) {
        uint32_t o = cap_load_le32(b + 1 + 4 * i);
        if (o > len)
            return wbad(err, 1 + 4 * i, "offset_out_of_bounds");
        if (i == 0 && o != W_IMAGE_FIXED)
            return wbad(err, 1, "offset_not_at_fixed_end");
        if (o < prev)
            return wbad(err, 1 + 4 * i, "offsets_out_of_order");
        bound[i] = 1 + (size_t)o;
        prev = o;
    }
    bound[8] = n;
    /* Fields 5 and 6: pinned and initial, both checked before either is
     * reported. */
    int rc = check_entries(b, bound[5], bound[6], CAP_CHILD_PINNED, (uint64_t)1 << 32, err);
    if (rc == CAP_OK)
        rc = check_entries(b, bound[6], bound[7], CAP_CHILD_INITIAL, (uint64_t)1 << 32, err);
    if (rc == CAP_OK)
        rc = emit_entries(b, bound[5], bound[6], CAP_CHILD_PINNED, fn, arg);
    if (rc == CAP_OK)
        rc = emit_entries(b, bound[6], bound[7], CAP_CHILD_INITIAL, fn, arg);
    return rc;
}

int cap_wire_for_each_child(const uint8_t *b, size_t n, cap_child_fn fn, void *arg, cap_err_t *err)
{
    if (err)
        cap_err_set(err, CAP_OK, (const char *)0);
    if ((!b && n) || !fn)
        return cap_err_set(err, CAP_EINVAL, "NULL argument");
    if (n == 0)
        return wbad(err, 0, "empty_input");
    switch (b[0]) {
    case CAP_KIND_CNODE: return wire_cnode(b, n, fn, arg, err);
    case CAP_KIND_INSTANCE: return wire_instance(b, n, fn, arg, err);
    case CAP_KIND_IMAGE: return wire_image(b, n, fn, arg, err);
    case CAP_KIND_DATA:
    case CAP_KIND_TYPE: return CAP_OK;
    default: return wbad(err, 0, "unknown_selector");
    }
}
