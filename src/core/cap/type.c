/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Type caps: one Bytes32, the image hash chain. */
#include "cap/cap_internal.h"

int cap_type_new(cap_t **out, const cap_alloc_t *a, const cap_hash_t *image_hash_chain)
{
    if (!out || !a || !image_hash_chain)
        return CAP_EINVAL;
    cap_t *c;
    int rc = cap_alloc_bare(&c, a, CAP_KIND_TYPE);
    if (rc)
        return rc;
    c->u.type_chain = *image_hash_chain;
    *out = c;
    return CAP_OK;
}

const cap_hash_t *cap_type_image_hash_chain(const cap_t *c)
{
    if (!c || c->kind != CAP_KIND_TYPE)
        return (const cap_hash_t *)0;
    return &c->u.type_chain;
}

int cap_type_set_image_hash_chain(cap_t *c, const cap_hash_t *h)
{
    int rc = cap_check_writable(c, CAP_KIND_TYPE);
    if (rc)
        return rc;
    if (!h)
        return CAP_EINVAL;
    c->u.type_chain = *h;
    return CAP_OK;
}
