/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Graphviz DOT of a cap graph: shared by `capstore dot` (caps from wire
 * files) and `capstore demo` (caps fetched from a store). */
#ifndef CAPSTORE_CAP_DOT_H
#define CAPSTORE_CAP_DOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "capstore/cap.h"

/* Called once per target; return false to stop. `label` is borrowed for the
 * call: the slot number, "image", "root_cnode", "pinned N" or "initial N". */
typedef bool (*cap_dot_target_fn)(void *ctx, const cap_hash_t *to, const char *label);

/* Visit every Hash target among the children of `c` (cap_for_each_child:
 * a CNode's occupied slots, an Instance's image and root_cnode, an Image's
 * pinned then initial entries; Ref targets are skipped: they have no hash
 * yet). Returns false when `fn` stopped it. */
bool cap_dot_each_target(const cap_t *c, cap_dot_target_fn fn, void *ctx);

/* One node of the graph. `cap` NULL means "skip this entry" (a duplicate). */
typedef struct cap_dot_node {
    cap_hash_t hash;
    const cap_t *cap;
} cap_dot_node_t;

/* Write the graph of the given caps (distinct hashes among the non-NULL
 * ones) to `f`: one box per cap labelled with its kind and the first 8 hex
 * digits of its hash, in the order given; one small dashed ellipse per
 * target hash that is not among them; one labelled edge per target.
 * *nedges (may be NULL) gets the number of edges. Returns CAP_OK or
 * CAP_ENOMEM (nothing written then); write errors are left to ferror(f). */
int cap_dot_write(FILE *f, const cap_dot_node_t *nodes, size_t n, size_t *nedges);

#endif
