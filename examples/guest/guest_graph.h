/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The guest example's cap graph: one scenario, run by every guest program
 * (no libc) and by the host check (the normal library), which must print the
 * same line. Uses only the freestanding API. */
#ifndef CAPSTORE_GUEST_GRAPH_H
#define CAPSTORE_GUEST_GRAPH_H

#include <capstore/capstore.h>

typedef struct cap_guest_result {
    cap_hash_t root;   /* the settled root cnode */
    size_t blobs;      /* blob tier at the end */
    size_t instances;  /* instance tier at the end (after the last sweep) */
    size_t swept;      /* entries all sweeps removed */
} cap_guest_result_t;

/** Build the graph on store `s` with allocator `a`: publish a Type, a Data
 * cap and a template cnode; promote the cnode; edit it copy-on-write twice
 * (make_mut + set_instance, then edit_instance); hang a process (Instance)
 * and a root cnode on it by Ref; drop a scratch chain and sweep it; settle
 * the root; check the template blob is unchanged; release everything and
 * sweep again. Returns CAP_OK or the first failing call's code; *step names
 * that call. */
int cap_guest_scenario(cap_store_t *s, const cap_alloc_t *a, cap_guest_result_t *out,
                       const char **step);

/* The parts, for the host check's direct construction of the settled graph. */
int cap_guest_type(cap_t **out, const cap_alloc_t *a);
int cap_guest_code(cap_t **out, const cap_alloc_t *a);
int cap_guest_heap(cap_t **out, const cap_alloc_t *a);
/** A process whose root cnode is `root_cnode`. */
int cap_guest_process(cap_t **out, const cap_alloc_t *a, const cap_target_t *root_cnode);

/** The line every run prints: "capstore guest: root <64 hex> blobs B
 * instances I swept S\n" (NUL-terminated in buf, which holds
 * CAP_GUEST_LINE_MAX bytes). Returns its length. */
#define CAP_GUEST_LINE_MAX 160
size_t cap_guest_format(char *buf, const cap_guest_result_t *r);

#endif
