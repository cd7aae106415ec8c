/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Remote workloads (bench_remote.c): the Redis backend against the tier
 * named by `capstore bench --db redis://...`, and redis-benchmark against
 * the same servers in the same run. They run only when --db names a Redis
 * URI. Inputs are the `publish` CNodes of spec section 6, as for the
 * persist workloads (the generator reset with "publish"), so remote_* and
 * persist_* move the same bytes; reads share persist_get_cold's shuffle.
 * Calls carry REMOTE_BATCH hashes (about REMOTE_BATCH / masters per master
 * pipeline), and redis-benchmark runs one client per master (-c masters)
 * pipelining that many (-P) with values of the inputs' mean wire size (-d).
 *
 *   remote_put       cap_persist_put_batch of the N blobs in calls of
 *                    REMOTE_BATCH (SET ... GET, WAIT as the tier's default
 *                    says) under a fresh prefix                     capstore
 *   remote_get_raw   cap_backend_read_many of the N hashes in calls of
 *                    REMOTE_BATCH: the bytes only                   capstore
 *   remote_get_cold  cap_store_get_blobs on a fresh store in calls of
 *                    REMOTE_BATCH: read, decode, verify, publish    capstore
 *   redis_set        redis-benchmark -t set (its requests/s)        redis
 *   redis_get        redis-benchmark -t get                          redis
 *
 * Each workload writes under its own prefix and deletes its keys after. */
#ifndef CAPSTORE_BENCH_REMOTE_H
#define CAPSTORE_BENCH_REMOTE_H

#include "bench.h"

#define REMOTE_BATCH 3000

int bench_remote_put(const bench_opts_t *o);
int bench_remote_get_raw(const bench_opts_t *o);
int bench_remote_get_cold(const bench_opts_t *o);
int bench_redis_set(const bench_opts_t *o);
int bench_redis_get(const bench_opts_t *o);

#endif
