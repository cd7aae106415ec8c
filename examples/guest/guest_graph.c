/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The guest example's scenario (guest_graph.h). Freestanding: no libc. */
#include "guest_graph.h"

/* Parts ------------------------------------------------------------------------------- */

int cap_guest_type(cap_t **out, const cap_alloc_t *a)
{
    cap_hash_t chain;
    for (int i = 0; i < 32; i++) chain.bytes[i] = (uint8_t)(0x5a ^ i);
    return cap_type_new(out, a, &chain);
}

/* Two 64-byte pages and a zero-padded third: 150 bytes of a pattern. */
int cap_guest_code(cap_t **out, const cap_alloc_t *a)
{
    uint8_t bytes[150];
    for (int i = 0; i < 150; i++) bytes[i] = (uint8_t)(i * 7 + 3);
    return cap_data_new_inline(out, a, 64, bytes, sizeof bytes);
}

int cap_guest_heap(cap_t **out, const cap_alloc_t *a)
{
    static const char text[] = "guest heap: no libc below this line";
    return cap_data_new_inline(out, a, CAP_PAGE_SIZE_DEFAULT, text, sizeof text - 1);
}

int cap_guest_process(cap_t **out, const cap_alloc_t *a, const cap_target_t *root_cnode)
{
    static const char overlay[] = "argv0=guest";
    cap_t *c = NULL;
    int rc = cap_instance_new(&c, a, root_cnode);
    for (unsigned i = 0; rc == CAP_OK && i < CAP_NUM_REGS; i++)
        rc = cap_instance_set_reg(c, i, 0x1111111111111111ull * i + 0x0123456789abcdefull);
    if (rc == CAP_OK) rc = cap_instance_set_pc(c, 0x10000);
    if (rc == CAP_OK) rc = cap_instance_set_gas_remaining(c, 1000000);
    if (rc == CAP_OK) rc = cap_instance_set_mem_size(c, 1u << 20);
    if (rc == CAP_OK) rc = cap_instance_add_overlay(c, 4096, overlay, sizeof overlay - 1);
    if (rc != CAP_OK) {
        cap_release(c);
        return rc;
    }
    *out = c;
    return CAP_OK;
}

/* The scenario ------------------------------------------------------------------------------ */

/* edit_instance's edit: slot 3 names the Type too. */
static int add_type_slot(cap_t *c, void *type_hash)
{
    cap_target_t t = cap_target_of_hash(type_hash);
    return cap_cnode_set(c, 3, &t);
}

#define STEP(call)                                                                                \
    do {                                                                                          \
        if (rc == CAP_OK) {                                                                       \
            rc = (call);                                                                          \
            if (rc != CAP_OK) *step = #call;                                                      \
        }                                                                                         \
    } while (0)

int cap_guest_scenario(cap_store_t *s, const cap_alloc_t *a, cap_guest_result_t *out,
                       const char **step)
{
    cap_t *type = NULL, *code = NULL, *tmpl = NULL, *heap = NULL, *work = NULL, *proc = NULL;
    cap_t *rootc = NULL, *scratch = NULL, *blob = NULL;
    cap_ref_t *cspace = NULL, *heapr = NULL, *procr = NULL, *rootr = NULL, *chain[3] = {NULL};
    cap_hash_t th, dh, tmpl_hash, again;
    cap_target_t t;
    cap_err_t err;
    size_t removed = 0;
    int rc = CAP_OK;
    *step = "";
    out->swept = 0;

    /* Publish bottom-up: a Type, a Data cap, a template cnode naming both. */
    STEP(cap_guest_type(&type, a));
    STEP(cap_store_put_cap(s, type, &th));
    STEP(cap_guest_code(&code, a));
    STEP(cap_store_put_cap(s, code, &dh));
    STEP(cap_cnode_new(&tmpl, a, 4));
    if (rc == CAP_OK) t = cap_target_of_hash(&th);
    STEP(cap_cnode_set(tmpl, 0, &t));
    if (rc == CAP_OK) t = cap_target_of_hash(&dh);
    STEP(cap_cnode_set(tmpl, 1, &t));
    STEP(cap_store_put_cap(s, tmpl, &tmpl_hash));

    /* Promote (shares the blob's cap), then copy-on-write: slot 2 := a Ref
     * to a mutable heap instance, committed with set_instance. */
    STEP(cap_store_promote_blob_to_instance(s, &tmpl_hash, &cspace));
    STEP(cap_guest_heap(&heap, a));
    STEP(cap_store_put_instance(s, heap, &heapr));
    STEP(cap_store_get_instance(s, cspace, &work));
    STEP(cap_make_mut(&work));
    if (rc == CAP_OK) t = cap_target_of_ref(heapr);
    STEP(cap_cnode_set(work, 2, &t));
    STEP(cap_store_set_instance(s, cspace, work, &err));
    /* The store's way: the edit runs on a private copy. */
    STEP(cap_store_edit_instance(s, cspace, add_type_slot, &th, &err));

    /* A process on that cspace and a root cnode holding both (the cspace
     * twice over: a DAG), all by Ref. */
    if (rc == CAP_OK) t = cap_target_of_ref(cspace);
    STEP(cap_guest_process(&proc, a, &t));
    STEP(cap_store_put_instance(s, proc, &procr));
    STEP(cap_cnode_new(&rootc, a, 2));
    if (rc == CAP_OK) t = cap_target_of_ref(procr);
    STEP(cap_cnode_set(rootc, 0, &t));
    if (rc == CAP_OK) t = cap_target_of_ref(cspace);
    STEP(cap_cnode_set(rootc, 1, &t));
    STEP(cap_store_put_instance(s, rootc, &rootr));

    /* A scratch chain #3 -> #2 -> #1, dropped at once: the sweep cascades. */
    for (int i = 0; i < 3 && rc == CAP_OK; i++) {
        STEP(cap_cnode_new(&scratch, a, 1));
        if (rc == CAP_OK && i > 0) t = cap_target_of_ref(chain[i - 1]);
        if (i > 0) STEP(cap_cnode_set(scratch, 0, &t));
        STEP(cap_store_put_instance(s, scratch, &chain[i]));
        cap_release(scratch);
        scratch = NULL;
    }
    for (int i = 0; i < 3; i++) {
        cap_ref_release(chain[i]);
        chain[i] = NULL;
    }
    STEP(cap_store_sweep_instances(s, &removed));
    out->swept += removed;

    /* Settle: Refs become hashes bottom-up; the root is content now. */
    if (rc == CAP_OK) t = cap_target_of_ref(rootr);
    STEP(cap_store_settle(s, &t, &out->root, &err));

    /* The template blob never changed under its hash. */
    STEP(cap_store_get_blob(s, &tmpl_hash, &blob));
    STEP(cap_hash(blob, &again));
    if (rc == CAP_OK && __builtin_memcmp(again.bytes, tmpl_hash.bytes, 32) != 0) {
        rc = CAP_EMISMATCH;
        *step = "the template blob re-hashes to its hash";
    }

    cap_release(blob);
    cap_release(rootc);
    cap_release(proc);
    cap_release(work);
    cap_release(heap);
    cap_release(tmpl);
    cap_release(code);
    cap_release(type);
    cap_ref_release(rootr);
    cap_ref_release(procr);
    cap_ref_release(heapr);
    cap_ref_release(cspace);
    STEP(cap_store_sweep_instances(s, &removed));
    out->swept += removed;
    out->blobs = cap_store_blob_count(s);
    out->instances = cap_store_instance_count(s);
    return rc;
}

/* The line -------------------------------------------------------------------------------- */

static size_t put_str(char *p, const char *s)
{
    size_t n = 0;
    while (s[n]) {
        p[n] = s[n];
        n++;
    }
    return n;
}

static size_t put_dec(char *p, size_t v)
{
    char tmp[24];
    size_t n = 0, k = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) p[k++] = tmp[--n];
    return k;
}

size_t cap_guest_format(char *buf, const cap_guest_result_t *r)
{
    static const char hex[] = "0123456789abcdef";
    char *p = buf;
    p += put_str(p, "capstore guest: root ");
    for (int i = 0; i < 32; i++) {
        *p++ = hex[r->root.bytes[i] >> 4];
        *p++ = hex[r->root.bytes[i] & 15];
    }
    p += put_str(p, " blobs ");
    p += put_dec(p, r->blobs);
    p += put_str(p, " instances ");
    p += put_dec(p, r->instances);
    p += put_str(p, " swept ");
    p += put_dec(p, r->swept);
    *p++ = '\n';
    *p = 0;
    return (size_t)(p - buf);
}
