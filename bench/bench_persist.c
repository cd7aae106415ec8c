/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Persistence workloads: the LMDB backend and raw-LMDB baselines in the same
 * run (see bench_persist.h for what each one times). */
#include <dirent.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "bench_persist.h"
#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"

/* Inputs ------------------------------------------------------------------------------------- */

typedef struct inputs {
    size_t n;
    cap_t **caps;
    cap_hash_t *hashes;
    uint8_t *wire;    /* every encoding back to back */
    size_t *off, *len;
    char dir[256];
    char db[320];
} inputs_t;

static int fail(const char *workload, const char *what, int rc, const cap_err_t *e)
{
    fprintf(stderr, "%s: %s failed: %s (%d)%s%s\n", workload, what, cap_strerror(rc), rc,
            e && e->what ? ": " : "", e && e->what ? e->what : "");
    return 1;
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        char p[600];
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static void inputs_free(inputs_t *in)
{
    if (in->caps)
        for (size_t i = 0; i < in->n; i++) cap_release(in->caps[i]);
    free(in->caps);
    free(in->hashes);
    free(in->wire);
    free(in->off);
    free(in->len);
    if (in->dir[0]) remove_tree(in->dir);
    memset(in, 0, sizeof *in);
}

/* The publish CNodes (size_log 8; 16 distinct slots, each drawn as below(256),
 * redrawn when taken, then given a random hash), their hashes and wire
 * forms, and a fresh temporary directory in o->scratch. */
static int inputs_build(const char *workload, const bench_opts_t *o, inputs_t *in)
{
    uint64_t n = o->n;
    memset(in, 0, sizeof *in);
    const cap_alloc_t *a = cap_alloc_libc();
    in->n = (size_t)n;
    in->caps = calloc(in->n ? in->n : 1, sizeof *in->caps);
    in->hashes = calloc(in->n ? in->n : 1, sizeof *in->hashes);
    in->off = calloc(in->n ? in->n : 1, sizeof *in->off);
    in->len = calloc(in->n ? in->n : 1, sizeof *in->len);
    if (!in->caps || !in->hashes || !in->off || !in->len) {
        inputs_free(in);
        return fail(workload, "allocating inputs", CAP_ENOMEM, NULL);
    }
    bench_rng_t rng;
    bench_rng_reset(&rng, "publish");
    size_t total = 0;
    for (size_t i = 0; i < in->n; i++) {
        int rc = cap_cnode_new(&in->caps[i], a, 8);
        while (rc == CAP_OK && cap_cnode_count(in->caps[i]) < 16) {
            uint32_t slot = (uint32_t)bench_rng_below(&rng, 256);
            cap_target_t cur;
            if (cap_cnode_get(in->caps[i], slot, &cur) == CAP_OK && cur.kind != CAP_TARGET_NONE) continue;
            cap_hash_t h;
            bench_rng_hash(&rng, h.bytes);
            cap_target_t t = cap_target_of_hash(&h);
            rc = cap_cnode_set(in->caps[i], slot, &t);
        }
        if (rc == CAP_OK) rc = cap_hash(in->caps[i], &in->hashes[i]);
        if (rc == CAP_OK) rc = cap_wire_size(in->caps[i], &in->len[i]);
        if (rc != CAP_OK) {
            inputs_free(in);
            return fail(workload, "building the publish CNodes", rc, NULL);
        }
        in->off[i] = total;
        total += in->len[i];
    }
    in->wire = malloc(total ? total : 1);
    if (!in->wire) {
        inputs_free(in);
        return fail(workload, "allocating inputs", CAP_ENOMEM, NULL);
    }
    for (size_t i = 0; i < in->n; i++) {
        size_t w;
        int rc = cap_wire_encode(in->caps[i], in->wire + in->off[i], in->len[i], &w);
        if (rc != CAP_OK) {
            inputs_free(in);
            return fail(workload, "cap_wire_encode", rc, NULL);
        }
    }
    snprintf(in->dir, sizeof in->dir, "%s/capstore-bench-XXXXXX", o->scratch);
    if (!mkdtemp(in->dir)) {
        fprintf(stderr, "%s: cannot make a scratch folder in %s: %s\n", workload, o->scratch, strerror(errno));
        in->dir[0] = 0;
        inputs_free(in);
        return 1;
    }
    snprintf(in->db, sizeof in->db, "%s/bench.lmdb", in->dir);
    return 0;
}

static size_t wire_total(const inputs_t *in) { return in->n ? in->off[in->n - 1] + in->len[in->n - 1] : 0; }

/* A raw LMDB environment on in->db, mapped large enough for everything. */
static int raw_open(const char *workload, const inputs_t *in, MDB_env **env, MDB_dbi *dbi)
{
    int rc = mdb_env_create(env);
    if (rc) return fail(workload, mdb_strerror(rc), CAP_EBACKEND, NULL);
    size_t map = wire_total(in) * 4 + ((size_t)64 << 20);
    if ((rc = mdb_env_set_mapsize(*env, map)) || (rc = mdb_env_open(*env, in->db, MDB_NOSUBDIR, 0644))) {
        mdb_env_close(*env);
        return fail(workload, mdb_strerror(rc), CAP_EBACKEND, NULL);
    }
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(*env, NULL, 0, &txn))) {
        mdb_env_close(*env);
        return fail(workload, mdb_strerror(rc), CAP_EBACKEND, NULL);
    }
    if ((rc = mdb_dbi_open(txn, NULL, 0, dbi)) || (rc = mdb_txn_commit(txn))) {
        mdb_env_close(*env);
        return fail(workload, mdb_strerror(rc), CAP_EBACKEND, NULL);
    }
    return 0;
}

/* Puts ----------------------------------------------------------------------------------------- */

int bench_persist_put(const bench_opts_t *o)
{
    const char *W = "persist_put";
    inputs_t in;
    if (inputs_build(W, o, &in)) return 1;
    cap_backend_t *b = NULL;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = cap_lmdb_open(in.db, NULL, &b, &e);
    if (rc != CAP_OK) {
        inputs_free(&in);
        return fail(W, "cap_lmdb_open", rc, &e);
    }
    uint64_t t0 = bench_now_ns();
    rc = cap_persist_put_batch(b, in.caps, in.hashes, in.n, cap_alloc_libc(), NULL, &e);
    uint64_t t1 = bench_now_ns();
    int status = 0;
    cap_lmdb_stats_t st;
    if (rc != CAP_OK) {
        status = fail(W, "cap_persist_put_batch", rc, &e);
    } else if ((rc = cap_lmdb_stats(b, &st, &e)) != CAP_OK || st.blobs != in.n) {
        status = fail(W, "blob count check", rc ? rc : CAP_EINVAL, &e);
    } else {
        bench_report(o, W, in.n, (double)(t1 - t0), "capstore");
    }
    cap_backend_free(b);
    inputs_free(&in);
    return status;
}

int bench_persist_put_raw(const bench_opts_t *o)
{
    const char *W = "persist_put_raw";
    inputs_t in;
    if (inputs_build(W, o, &in)) return 1;
    MDB_env *env;
    MDB_dbi dbi;
    if (raw_open(W, &in, &env, &dbi)) {
        inputs_free(&in);
        return 1;
    }
    uint64_t t0 = bench_now_ns();
    MDB_txn *txn;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    for (size_t i = 0; i < in.n && rc == 0; i++) {
        MDB_val k = {32, in.hashes[i].bytes};
        MDB_val v = {in.len[i], in.wire + in.off[i]};
        rc = mdb_put(txn, dbi, &k, &v, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) rc = 0;
    }
    if (rc == 0) rc = mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
    uint64_t t1 = bench_now_ns();
    int status = 0;
    MDB_stat ms;
    if (rc) {
        status = fail(W, mdb_strerror(rc), CAP_EBACKEND, NULL);
    } else if (mdb_env_stat(env, &ms) != 0 || ms.ms_entries != in.n) {
        status = fail(W, "entry count check", CAP_EINVAL, NULL);
    } else {
        bench_report(o, W, in.n, (double)(t1 - t0), "lmdb");
    }
    mdb_env_close(env);
    inputs_free(&in);
    return status;
}

/* Gets ----------------------------------------------------------------------------------------- */

/* The inputs stored in in->db (untimed, through the backend, no fsync), and
 * the read order: the hashes shuffled with the generator reset to
 * "persist_get_cold" (the same order for all three read workloads). */
static int prepare_gets(const char *workload, const bench_opts_t *o, inputs_t *in, cap_hash_t **keys)
{
    if (inputs_build(workload, o, in)) return 1;
    cap_lmdb_options_t lo;
    memset(&lo, 0, sizeof lo);
    lo.flags = CAP_LMDB_NOSYNC;
    lo.initial_map_size = wire_total(in) * 3 + ((size_t)16 << 20);
    cap_backend_t *b = NULL;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = cap_lmdb_open(in->db, &lo, &b, &e);
    if (rc == CAP_OK) rc = cap_persist_put_batch(b, in->caps, in->hashes, in->n, cap_alloc_libc(), NULL, &e);
    if (rc == CAP_OK) rc = cap_backend_flush(b, &e);
    cap_backend_free(b);
    if (rc != CAP_OK) {
        inputs_free(in);
        return fail(workload, "storing the inputs", rc, &e);
    }
    uint32_t *order = calloc(in->n ? in->n : 1, sizeof *order);
    cap_hash_t *k = calloc(in->n ? in->n : 1, sizeof *k);
    if (!order || !k) {
        free(order);
        free(k);
        inputs_free(in);
        return fail(workload, "allocating the read order", CAP_ENOMEM, NULL);
    }
    for (size_t i = 0; i < in->n; i++) order[i] = (uint32_t)i;
    bench_rng_t rng;
    bench_rng_reset(&rng, "persist_get_cold");
    bench_shuffle_u32(&rng, order, in->n);
    for (size_t i = 0; i < in->n; i++) k[i] = in->hashes[order[i]];
    free(order);
    /* The caps are not needed any more: a cold read starts from bytes only. */
    for (size_t i = 0; i < in->n; i++) cap_release(in->caps[i]);
    free(in->caps);
    in->caps = NULL;
    *keys = k;
    return 0;
}

int bench_persist_get_cold(const bench_opts_t *o)
{
    const char *W = "persist_get_cold";
    inputs_t in;
    cap_hash_t *keys;
    if (prepare_gets(W, o, &in, &keys)) return 1;
    cap_backend_t *b = NULL;
    cap_err_t e;
    memset(&e, 0, sizeof e);
    int rc = cap_lmdb_open(in.db, NULL, &b, &e);
    if (rc != CAP_OK) {
        free(keys);
        inputs_free(&in);
        return fail(W, "cap_lmdb_open", rc, &e);
    }
    const cap_alloc_t *a = cap_alloc_libc();
    bool verify = !(b->flags & CAP_BACKEND_TRUSTED);
    size_t ok = 0;
    int bad = CAP_OK;
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < in.n; i++) {
        cap_t *c = NULL;
        rc = cap_persist_fetch(b, &keys[i], a, verify, &c, &e);
        if (rc == CAP_OK) {
            ok++;
            cap_release(c);
        } else {
            bad = rc;
        }
    }
    uint64_t t1 = bench_now_ns();
    int status = 0;
    if (ok != in.n)
        status = fail(W, "every fetch verifies", bad, &e);
    else
        bench_report(o, W, in.n, (double)(t1 - t0), "capstore");
    cap_backend_free(b);
    free(keys);
    inputs_free(&in);
    return status;
}

static int raw_gets(const bench_opts_t *o, const char *W, bool essential)
{
    inputs_t in;
    cap_hash_t *keys;
    if (prepare_gets(W, o, &in, &keys)) return 1;
    MDB_env *env;
    MDB_dbi dbi;
    if (raw_open(W, &in, &env, &dbi)) {
        free(keys);
        inputs_free(&in);
        return 1;
    }
    const cap_alloc_t *a = cap_alloc_libc();
    size_t ok = 0;
    uint64_t sum = 0;
    uint64_t t0 = bench_now_ns();
    MDB_txn *txn;
    int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    for (size_t i = 0; i < in.n && rc == 0; i++) {
        MDB_val k = {32, keys[i].bytes}, v;
        if (mdb_get(txn, dbi, &k, &v) != 0) continue;
        if (!essential) {
            sum += ((const uint8_t *)v.mv_data)[v.mv_size - 1];
            ok++;
            continue;
        }
        cap_t *c = NULL;
        cap_hash_t h;
        if (cap_wire_decode(v.mv_data, v.mv_size, a, &c, NULL) == CAP_OK && cap_hash(c, &h) == CAP_OK &&
            memcmp(h.bytes, keys[i].bytes, 32) == 0)
            ok++;
        cap_release(c);
    }
    if (rc == 0) mdb_txn_abort(txn);
    uint64_t t1 = bench_now_ns();
    int status = 0;
    if (rc)
        status = fail(W, mdb_strerror(rc), CAP_EBACKEND, NULL);
    else if (ok != in.n)
        status = fail(W, "every read found (and verified)", CAP_ENOTFOUND, NULL);
    else
        bench_report(o, W, in.n, (double)(t1 - t0), "lmdb");
    if (sum == 1) fprintf(stderr, " "); /* keep the reads */
    mdb_env_close(env);
    free(keys);
    inputs_free(&in);
    return status;
}

int bench_persist_get_raw(const bench_opts_t *o) { return raw_gets(o, "persist_get_raw", false); }

int bench_persist_get_essential(const bench_opts_t *o) { return raw_gets(o, "persist_get_essential", true); }
