/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Which of two encodings of one hash a backend keeps (sys/backend.h:
 * cap_backend_replaces). Equal hashes do not mean equal bytes: a Data page
 * hashes alike loaded, empty or missing (docs/cap-schema.md), so a write
 * that finds its hash stored with other bytes may meet a valid encoding
 * that knows more pages than the new one, not damage. Freestanding. */
#include "capstore/persist.h"

/* Pages of `c` whose bytes are not known (0 for every kind but Data). */
static uint64_t missing_pages(const cap_t *c)
{
    if (cap_kind(c) != CAP_KIND_DATA) return 0;
    uint64_t n = cap_data_page_count(c), missing = 0;
    for (uint64_t i = 0; i < n; i++) missing += cap_data_page_state(c, i) == CAP_PAGE_MISSING;
    return missing;
}

int cap_backend_replaces(const cap_hash_t *h, const uint8_t *stored, size_t stored_n, const uint8_t *incoming,
                         size_t incoming_n, const cap_alloc_t *a, bool *replace)
{
    if (!h || !a || !replace || (stored_n && !stored) || (incoming_n && !incoming)) return CAP_EINVAL;
    cap_t *old = (cap_t *)0, *neu = (cap_t *)0;
    /* Verified: writers hand over verified bytes, but a writer's bug must
     * not replace a value with bytes that are no encoding of `h`. */
    int rc = cap_persist_decode(h, incoming, incoming_n, a, true, &neu, (cap_err_t *)0);
    if (rc == CAP_ENOMEM) return rc;
    if (rc != CAP_OK) {
        *replace = false;
        return CAP_OK;
    }
    rc = cap_persist_decode(h, stored, stored_n, a, true, &old, (cap_err_t *)0);
    if (rc == CAP_OK)
        *replace = missing_pages(neu) < missing_pages(old); /* only a fuller copy */
    else if (rc != CAP_ENOMEM)
        *replace = true; /* damaged or poisoned: the new bytes repair it */
    cap_release(old);
    cap_release(neu);
    return rc == CAP_ENOMEM ? rc : CAP_OK;
}
