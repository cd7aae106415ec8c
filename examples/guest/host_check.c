/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The host side of the guest example: runs the guest's scenario through the
 * normal library (libc allocator, pthread locks, a random table seed) and
 * prints the line the guests print. It fails unless
 *   - the settled root equals the root of the same graph built a second
 *     way, cap by cap with hashes only (no store, promote, copy-on-write or
 *     settle), and
 *   - the line is guest_expected.h's, the one every guest checks itself
 *     against. */
#include <stdio.h>
#include <string.h>

#include <capstore/capstore.h>
#include <capstore/host.h>

#include "guest_expected.h"
#include "guest_graph.h"

static int failed(const char *what, int rc)
{
    fprintf(stderr, "guest host check: %s failed: %s\n", what, cap_strerror(rc));
    return 1;
}

/* Hash a new cap and release it. */
static int hash_and_release(cap_t *c, cap_hash_t *h)
{
    int rc = cap_hash(c, h);
    cap_release(c);
    return rc;
}

static int cnode_of(cap_hash_t *out, unsigned size_log, const cap_hash_t *const *slots, unsigned n)
{
    cap_t *c = NULL;
    int rc = cap_cnode_new(&c, cap_alloc_libc(), size_log);
    for (unsigned i = 0; rc == CAP_OK && i < n; i++) {
        cap_target_t t = cap_target_of_hash(slots[i]);
        rc = cap_cnode_set(c, i, &t);
    }
    if (rc != CAP_OK) {
        cap_release(c);
        return rc;
    }
    return hash_and_release(c, out);
}

/* The settled graph directly: slot by slot what the scenario leaves. */
static int direct_root(cap_hash_t *root)
{
    const cap_alloc_t *a = cap_alloc_libc();
    cap_t *c;
    cap_hash_t th, dh, hh, ch, ph;
    int rc;
    if ((rc = cap_guest_type(&c, a)) != CAP_OK || (rc = hash_and_release(c, &th)) != CAP_OK) return rc;
    if ((rc = cap_guest_code(&c, a)) != CAP_OK || (rc = hash_and_release(c, &dh)) != CAP_OK) return rc;
    if ((rc = cap_guest_heap(&c, a)) != CAP_OK || (rc = hash_and_release(c, &hh)) != CAP_OK) return rc;
    const cap_hash_t *cspace[] = {&th, &dh, &hh, &th};
    if ((rc = cnode_of(&ch, 4, cspace, 4)) != CAP_OK) return rc;
    cap_target_t t = cap_target_of_hash(&ch);
    if ((rc = cap_guest_process(&c, a, &t)) != CAP_OK || (rc = hash_and_release(c, &ph)) != CAP_OK)
        return rc;
    const cap_hash_t *top[] = {&ph, &ch};
    return cnode_of(root, 2, top, 2);
}

int main(void)
{
    cap_store_t *s = NULL;
    int rc = cap_store_new_host(&s);
    if (rc != CAP_OK) return failed("cap_store_new_host", rc);
    cap_guest_result_t r;
    const char *step;
    rc = cap_guest_scenario(s, cap_alloc_libc(), &r, &step);
    cap_store_free(s);
    if (rc != CAP_OK) return failed(step, rc);
    char line[CAP_GUEST_LINE_MAX];
    cap_guest_format(line, &r);
    fputs(line, stdout);

    int status = 0;
    cap_hash_t direct;
    if ((rc = direct_root(&direct)) != CAP_OK) return failed("the direct construction", rc);
    if (memcmp(direct.bytes, r.root.bytes, 32) != 0) {
        fprintf(stderr, "guest host check: the scenario's root differs from the graph built cap by cap\n");
        status = 1;
    }
    if (strcmp(line, CAP_GUEST_EXPECTED_LINE) != 0) {
        fprintf(stderr, "guest host check: guest_expected.h says\n%s", CAP_GUEST_EXPECTED_LINE);
        status = 1;
    }
    return status;
}
