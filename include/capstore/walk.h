/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore — walking a cap graph: the options, visitor and result shared by
 * cap_backend_walk (persist.h: straight from one backend) and
 * cap_store_walk (store.h: through a store's memory and its backends).
 *
 * A walk visits every cap reachable from a set of roots once, following
 * the children cap_for_each_child defines (docs/graph.md), breadth first,
 * reading a batch of hashes per backend call (one round trip for a remote
 * backend). It keeps no cap and no bytes once visited: only the set of
 * hashes seen (about 60 bytes each) and one batch. It is iterative: a chain
 * of any length takes no C stack. Hashes found nowhere are counted, and
 * the first few are kept with the path of hashes and fields that led to
 * them. Collection (the mark phase), export (the closure) and prefetch are
 * walks with a visitor.
 *
 * Freestanding. */
#ifndef CAPSTORE_WALK_H
#define CAPSTORE_WALK_H

#include "capstore/cap.h"

#ifdef __cplusplus
extern "C" {
#endif

/** cap_walk_options_t.flags */
#define CAP_WALK_DECODE 1u        /**< decode every cap read (strictly) and give it to the
                                       visitor; a blob that does not decode is counted bad */
#define CAP_WALK_VERIFY 2u        /**< decode and check every cap read hashes to its key
                                       (implies DECODE); a mismatch is counted bad */
#define CAP_WALK_VISIT_PROBLEMS 4u /**< call the visitor for missing and bad hashes too
                                       (status says which) */

/** Without DECODE or VERIFY, a cap read as bytes is not decoded: its
 * children come from cap_wire_for_each_child, which checks only the parts
 * that hold them (a malformed one counts as bad). Caps a store holds in
 * memory are given as caps and never re-verified. */

/** Walk options. Set `size` (or start from CAP_WALK_OPTIONS_INIT); NULL
 * options mean all defaults. */
typedef struct cap_walk_options {
    size_t size;    /**< sizeof(cap_walk_options_t), or 0 for this layout */
    unsigned flags; /**< CAP_WALK_* */
    size_t batch;   /**< hashes asked of a backend per call; 0: 256 */
} cap_walk_options_t;

#define CAP_WALK_OPTIONS_INIT {sizeof(cap_walk_options_t), 0u, 0}

/** One cap (or, with CAP_WALK_VISIT_PROBLEMS, one problem) a walk reached. */
typedef struct cap_walk_visit {
    cap_hash_t hash;
    /** CAP_OK; with CAP_WALK_VISIT_PROBLEMS also CAP_ENOTFOUND (stored
     * nowhere), CAP_EDECODE or CAP_EMISMATCH (stored, but bad; not followed). */
    int status;
    /** The wire bytes read (borrowed for the call); NULL for a cap held in
     * memory (a store walk) and for a problem. */
    const uint8_t *bytes;
    size_t n;
    /** The cap: decoded (DECODE, VERIFY) or held in memory; borrowed for the
     * call (cap_retain to keep it). NULL when only bytes were read. */
    const cap_t *cap;
    /** Edges from the nearest root (breadth first: the shortest path). */
    uint32_t depth;
} cap_walk_visit_t;

/** The visitor's return: 0 to go on, CAP_WALK_SKIP to go on without
 * following this cap's children, anything else to stop the walk, which
 * returns that value. */
typedef int (*cap_walk_fn)(void *arg, const cap_walk_visit_t *v);
#define CAP_WALK_SKIP 1

/** How many problems a result keeps, and how many steps of each path. */
#define CAP_WALK_FIRST 8
#define CAP_WALK_PATH 16

/** One step of a path: the cap `hash` names the next one through `field`
 * (and `index`: the slot, see cap_child_t). */
typedef struct cap_walk_step {
    cap_hash_t hash;
    cap_child_field_t field;
    uint32_t index;
} cap_walk_step_t;

/** A hash the walk reached but could not follow. */
typedef struct cap_walk_problem {
    cap_hash_t hash;
    int code;        /**< CAP_ENOTFOUND (stored nowhere), CAP_EDECODE, CAP_EMISMATCH */
    cap_hash_t root; /**< the root its path starts at */
    uint64_t depth;  /**< steps from that root (0: it is a root) */
    /** The last `npath` steps of the path (npath = min(depth, CAP_WALK_PATH)),
     * root side first: path[npath - 1] is the cap that names `hash`, and
     * path[0] is the root when depth <= CAP_WALK_PATH. */
    size_t npath;
    cap_walk_step_t path[CAP_WALK_PATH];
} cap_walk_problem_t;

/** What a walk found. Complete whenever the walk went to the end (CAP_OK,
 * CAP_EBLOBMISSING, CAP_EDECODE, CAP_EMISMATCH); partial otherwise. */
typedef struct cap_walk_result {
    uint64_t caps;    /**< distinct caps found (and visited) */
    uint64_t bytes;   /**< wire bytes read (caps held in memory count 0) */
    uint64_t edges;   /**< Hash children followed, repeats included */
    uint64_t missing; /**< distinct hashes reached but stored nowhere */
    uint64_t bad;     /**< distinct hashes stored with bytes that do not decode (or,
                           with VERIFY, hash to another value) */
    uint64_t reads;   /**< batched reads asked of backends (round trips) */
    uint32_t depth;   /**< the deepest level reached */
    size_t nproblems; /**< entries in problems[]: the first missing or bad hashes */
    cap_walk_problem_t problems[CAP_WALK_FIRST];
} cap_walk_result_t;

#ifdef __cplusplus
}
#endif

#endif
