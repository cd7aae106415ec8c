/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Persistence workloads (bench_persist.c): the LMDB backend against raw LMDB
 * in the same run. Inputs are the `publish` CNodes of spec section 6 (the
 * generator reset with "publish", as the lookup workloads do), so every
 * persist workload, capstore's and the baselines, moves the same bytes; the
 * read workloads share one shuffle (generator reset with "persist_get_cold").
 *
 *   persist_put            cap_persist_put_batch of the N blobs into a fresh
 *                          LMDB backend: encode + one transaction + commit
 *                          (fsync), as the store's flush does          capstore
 *   persist_put_raw        the same wire bytes, mdb_put in one transaction
 *                          + commit (fsync)                             lmdb
 *   persist_get_cold       cap_persist_fetch (read, decode, verify the
 *                          hash) of each of the N hashes, shuffled      capstore
 *   persist_get_raw        mdb_get of each, one read transaction        lmdb
 *   persist_get_essential  mdb_get + cap_wire_decode + cap_hash of each,
 *                          one read transaction: the work a fetch cannot
 *                          avoid                                        lmdb
 *
 * Databases live in a temporary directory beside the database that --db,
 * CAPSTORE_DB or the default ./capstore.lmdb names (so that they time the
 * disk it is on; that file itself is never opened), removed after. */
#ifndef CAPSTORE_BENCH_PERSIST_H
#define CAPSTORE_BENCH_PERSIST_H

#include "bench.h"

int bench_persist_put(const bench_opts_t *o);
int bench_persist_put_raw(const bench_opts_t *o);
int bench_persist_get_cold(const bench_opts_t *o);
int bench_persist_get_raw(const bench_opts_t *o);
int bench_persist_get_essential(const bench_opts_t *o);

#endif
