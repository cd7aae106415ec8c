/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The demo's second part on a Redis tier (`capstore demo --db redis://...`):
 * another process, a second "host", takes the checkpointed graph from the
 * tier by its root hash. */
#ifndef CAPSTORE_DEMO_REMOTE_H
#define CAPSTORE_DEMO_REMOTE_H

#include "capstore/cap.h"

/* Fork the second host: it opens its own backend on `uri` and a fresh store,
 * fetches the graph of `root` with one cap_store_prefetch, promotes the two
 * process snapshots `snap1`, `snap2` to instances, edits them (a step of
 * each: pc and a register), checkpoints its new kernel graph, flushes it to
 * the tier and prints each step; the first host then fetches that root
 * back and says so. CLI_OK or CLI_EBADINPUT (message printed). */
int demo_second_host(const char *uri, const cap_hash_t *root, const cap_hash_t *snap1,
                     const cap_hash_t *snap2);

#endif
