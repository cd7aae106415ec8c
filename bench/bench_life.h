/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The database's life, against raw LMDB in the same run (bench_life.c):
 * collection, export and import on closed graphs the shape of settle_tree's
 * (4-ary trees of CNodes, (4^L - 1) / 3 caps for the largest L with that
 * count <= --n: 87381 for the default 100000), leaves made Type caps so
 * the graph is closed, settled by cap_store_checkpoint. Twelve such graphs
 * (distinct) go into one database (about 10^6 blobs), six under named
 * roots, six not; built once per run, untimed, with CAP_LMDB_NOSYNC and
 * raw LMDB's MDB_NOSYNC on every side.
 *
 *   gc_collect  cap_lmdb_collect: mark the six rooted graphs, delete the six
 *               others, 1024 deletions a transaction         capstore
 *   gc_raw      one pass over every key, deleting the same keys (known in
 *               advance) 1024 a transaction                  lmdb
 *   export      cap_archive_export of one graph (to a sink that counts
 *               the bytes: the format, the checksum)         capstore
 *   export_raw  the closure walked in one read transaction: mdb_get and
 *               cap_wire_decode of each cap, cap_for_each_child  lmdb
 *   import      cap_archive_import of that archive into a fresh database
 *               (everything verified, one transaction)      capstore
 *   import_raw  the same records: cap_wire_decode + cap_hash of each, then
 *               mdb_put of all in one transaction           lmdb
 *
 * Each workload prints its capstore line and its baseline's; ops is the
 * blobs in the database (gc) or the caps of the graph. */
#ifndef CAPSTORE_BENCH_LIFE_H
#define CAPSTORE_BENCH_LIFE_H

#include "bench.h"

int bench_gc_collect(const bench_opts_t *o);
int bench_export(const bench_opts_t *o);
int bench_import(const bench_opts_t *o);

#endif
