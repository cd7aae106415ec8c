/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Image caps: validated on construction, held in one allocation. */
#include "base.h"
#include "cap/cap_internal.h"

#define LIMIT_2P32 ((uint64_t)1 << 32)

static int image_fail(cap_err_t *err, int code, const char *what)
{
    return cap_err_set(err, code, what);
}

static bool slot_entries_ok(const cap_slot_entry_t *e, size_t n, const char **why,
                            const char *unsorted, const char *zero)
{
    for (size_t i = 0; i < n; i++) {
        if (i && e[i].slot <= e[i - 1].slot) {
            *why = unsorted;
            return false;
        }
        if (cap_hash_is_zero(&e[i].cap_hash)) {
            *why = zero;
            return false;
        }
    }
    return true;
}

int cap_image_validate(const cap_image_desc_t *d, cap_err_t *err)
{
    if (!d)
        return image_fail(err, CAP_EINVAL, "NullImageDesc");
    if ((d->code_len && !d->code) || (d->bitmask_len && !d->bitmask) ||
        (d->jump_table_len && !d->jump_table) || (d->endpoints_len && !d->endpoints) ||
        (d->mappings_len && !d->mappings) || (d->pinned_len && !d->pinned) ||
        (d->initial_len && !d->initial))
        return image_fail(err, CAP_EINVAL, "NullImageArray");
    if ((uint64_t)d->code_len > LIMIT_2P32 || (uint64_t)d->bitmask_len > LIMIT_2P32 ||
        (uint64_t)d->jump_table_len > LIMIT_2P32 || (uint64_t)d->mappings_len > LIMIT_2P32 ||
        (uint64_t)d->pinned_len > LIMIT_2P32 || (uint64_t)d->initial_len > LIMIT_2P32)
        return image_fail(err, CAP_EIMAGE, "ListTooLong");
    if (d->endpoints_len > CAP_MAX_ENDPOINTS)
        return image_fail(err, CAP_EIMAGE, "EndpointIndexOutOfRange");
    for (size_t i = 0; i < d->mappings_len; i++) {
        const cap_mapping_t *m = &d->mappings[i];
        if (m->source_path_len > CAP_MAX_SOURCE_DEPTH)
            return image_fail(err, CAP_EIMAGE,
                              "SourcePathTooDeep");
        for (unsigned k = m->source_path_len; k < CAP_MAX_SOURCE_DEPTH; k++)
            if (m->source_path[k] != 0)
                return image_fail(err, CAP_EIMAGE,
                                  "SourcePathNonZeroPadding");
    }
    const char *why = (const char *)0;
    if (!slot_entries_ok(d->pinned, d->pinned_len, &why,
                         "PinnedNotSorted",
                         "PinnedZeroCapHash") ||
        !slot_entries_ok(d->initial, d->initial_len, &why,
                         "InitialNotSorted",
                         "InitialZeroCapHash"))
        return image_fail(err, CAP_EIMAGE, why);
    if (d->bitmask_len != d->code_len / 8 + (d->code_len % 8 != 0))
        return image_fail(err, CAP_EIMAGE,
                          "BitmaskLengthMismatch");
    for (size_t i = 0; i < d->jump_table_len; i++)
        if ((uint64_t)d->jump_table[i] >= (uint64_t)d->code_len)
            return image_fail(err, CAP_EIMAGE,
                              "JumpTableOutOfRange");
    return CAP_OK;
}

/* One block: endpoints, mappings, pinned, initial, jump_table, code, bitmask
 * (in decreasing alignment). */
static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

static bool add_part(size_t *off, size_t count, size_t elem, size_t align, size_t *at)
{
    size_t o = align_up(*off, align);
    if (o < *off || (elem && count > (SIZE_MAX - o) / elem))
        return false;
    *at = o;
    *off = o + count * elem;
    return true;
}

#define ALIGN_OF(T) _Alignof(T)

/* Copy a validated description into c's body. */
static int body_fill(cap_t *c, const cap_image_desc_t *d, cap_err_t *err)
{
    size_t off = 0, at_ep, at_map, at_pin, at_ini, at_jt, at_code, at_bm;
    if (!add_part(&off, d->endpoints_len, sizeof(cap_endpoint_t), ALIGN_OF(cap_endpoint_t), &at_ep) ||
        !add_part(&off, d->mappings_len, sizeof(cap_mapping_t), ALIGN_OF(cap_mapping_t), &at_map) ||
        !add_part(&off, d->pinned_len, sizeof(cap_slot_entry_t), ALIGN_OF(cap_slot_entry_t), &at_pin) ||
        !add_part(&off, d->initial_len, sizeof(cap_slot_entry_t), ALIGN_OF(cap_slot_entry_t), &at_ini) ||
        !add_part(&off, d->jump_table_len, sizeof(uint32_t), ALIGN_OF(uint32_t), &at_jt) ||
        !add_part(&off, d->code_len, 1, 1, &at_code) || !add_part(&off, d->bitmask_len, 1, 1, &at_bm))
        return image_fail(err, CAP_ENOMEM, "ImageTooLarge");
    uint8_t *block = (uint8_t *)0;
    if (off) {
        block = cap_mem_alloc(c->alloc, off);
        if (!block)
            return image_fail(err, CAP_ENOMEM, (const char *)0);
    }
    cap_image_body_t *b = &c->u.image;
    cap_image_desc_t *o = &b->desc;
    cap_memset(o, 0, sizeof *o);
#define PLACE(field, len_field, type, at)                                                          \
    do {                                                                                           \
        o->len_field = d->len_field;                                                               \
        if (d->len_field) {                                                                        \
            cap_memcpy(block + (at), d->field, d->len_field * sizeof(type));                       \
            o->field = (const type *)(const void *)(block + (at));                                 \
        }                                                                                          \
    } while (0)
    PLACE(endpoints, endpoints_len, cap_endpoint_t, at_ep);
    PLACE(mappings, mappings_len, cap_mapping_t, at_map);
    PLACE(pinned, pinned_len, cap_slot_entry_t, at_pin);
    PLACE(initial, initial_len, cap_slot_entry_t, at_ini);
    PLACE(jump_table, jump_table_len, uint32_t, at_jt);
    PLACE(code, code_len, uint8_t, at_code);
    PLACE(bitmask, bitmask_len, uint8_t, at_bm);
#undef PLACE
    o->has_yield_marker = d->has_yield_marker;
    o->yield_marker_slot = d->has_yield_marker ? d->yield_marker_slot : 0;
    b->block = block;
    b->block_size = off;
    return CAP_OK;
}

int cap_image_body_init(cap_t *c, const cap_image_desc_t *d, cap_err_t *err)
{
    int rc = cap_image_validate(d, err);
    return rc ? rc : body_fill(c, d, err);
}

int cap_image_new(cap_t **out, const cap_alloc_t *a, const cap_image_desc_t *d, cap_err_t *err)
{
    if (!out || !a)
        return image_fail(err, CAP_EINVAL, (const char *)0);
    int rc = cap_image_validate(d, err);
    if (rc)
        return rc;
    cap_t *c;
    rc = cap_alloc_bare(&c, a, CAP_KIND_IMAGE);
    if (rc)
        return image_fail(err, rc, (const char *)0);
    rc = body_fill(c, d, err);
    if (rc) {
        cap_release(c);
        return rc;
    }
    *out = c;
    return CAP_OK;
}

void cap_image_view(const cap_t *c, cap_image_desc_t *out)
{
    if (!out)
        return;
    if (!c || c->kind != CAP_KIND_IMAGE) {
        cap_memset(out, 0, sizeof *out);
        return;
    }
    *out = c->u.image.desc;
}
