/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Store fingerprints (test_fingerprint.h). */
#include "test_fingerprint.h"

#include <stdio.h>
#include <string.h>

#include "check.h"

void test_fp_take(const test_watch_t *w, test_fingerprint_t *p)
{
    memset(p, 0, sizeof *p);
    CHECK(w->nh <= TEST_FP_MAXH && w->nc <= TEST_FP_MAXC);
    /* Refcounts first: the references the fingerprint takes below are not counted. */
    for (size_t i = 0; i < w->nc; i++) {
        p->refs[i] = cap_refcount(w->caps[i]);
        p->frozen[i] = cap_is_frozen(w->caps[i]);
    }
    p->blobs = cap_store_blob_count(w->s);
    p->instances = cap_store_instance_count(w->s);
    CHECK_EQ_INT(cap_store_iter_blobs_sorted(w->s, &p->entries, &p->n), CAP_OK);
    for (size_t i = 0; i < w->nh; i++) {
        p->inst_rc[i] = cap_store_get_instance(w->s, w->h[i], &p->inst[i]);
        p->strong[i] = cap_ref_strong_count(w->h[i]);
    }
}

void test_fp_drop(const test_watch_t *w, test_fingerprint_t *p)
{
    cap_store_blobs_free(w->s, p->entries, p->n);
    for (size_t i = 0; i < w->nh; i++) cap_release(p->inst[i]);
}

/* References fingerprint p holds on cap c. */
static uint32_t held_by(const test_watch_t *w, const test_fingerprint_t *p, const cap_t *c)
{
    uint32_t n = 0;
    for (size_t i = 0; i < w->nh; i++) n += p->inst[i] == c;
    for (size_t i = 0; i < p->n; i++) n += p->entries[i].cap == c;
    return n;
}

bool test_fp_same(const test_watch_t *w, const test_fingerprint_t *before)
{
    test_fingerprint_t now;
    test_fp_take(w, &now);
    bool ok = now.blobs == before->blobs && now.instances == before->instances &&
              now.n == before->n;
    for (size_t i = 0; ok && i < now.n; i++)
        ok = memcmp(now.entries[i].hash.bytes, before->entries[i].hash.bytes, 32) == 0 &&
             now.entries[i].cap == before->entries[i].cap;
    for (size_t i = 0; ok && i < w->nh; i++)
        ok = now.inst[i] == before->inst[i] && now.inst_rc[i] == before->inst_rc[i] &&
             now.strong[i] == before->strong[i];
    for (size_t i = 0; i < w->nc; i++)
        now.refs[i] -= held_by(w, before, w->caps[i]);
    for (size_t i = 0; ok && i < w->nc; i++)
        ok = now.refs[i] == before->refs[i] && now.frozen[i] == before->frozen[i];
    if (!ok) {
        fprintf(stderr, "blobs %zu/%zu inst %zu/%zu n %zu/%zu\n", before->blobs, now.blobs,
                before->instances, now.instances, before->n, now.n);
        for (size_t i = 0; i < w->nh; i++)
            if (now.inst[i] != before->inst[i] || now.inst_rc[i] != before->inst_rc[i] ||
                now.strong[i] != before->strong[i])
                fprintf(stderr, "  handle %zu: rc %d/%d strong %llu/%llu\n", i, before->inst_rc[i],
                        now.inst_rc[i], (unsigned long long)before->strong[i],
                        (unsigned long long)now.strong[i]);
        for (size_t i = 0; i < w->nc; i++)
            if (now.refs[i] != before->refs[i] || now.frozen[i] != before->frozen[i])
                fprintf(stderr, "  cap %zu: refs %u/%u frozen %d/%d\n", i, before->refs[i],
                        now.refs[i], before->frozen[i], now.frozen[i]);
    }
    test_fp_drop(w, &now);
    return ok;
}
