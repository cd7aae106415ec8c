/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The cap_err_t contract, checked on every call the tests make: each test
 * program is compiled with `-include err_check.h`, which turns every call
 * of a public function taking a `cap_err_t *` into a call of its checking
 * wrapper (err_check.c). The wrapper fills the caller's struct with 0x5a
 * bytes (or, when the caller passes NULL, a struct of its own), makes the
 * call, and on a failure (a negative return) checks that the struct holds
 * that code and the detail the code carries, and no left-over poison.
 * A broken contract prints the call's place and aborts.
 *
 * A function added to the headers with a `cap_err_t *` parameter must be
 * added here too (the test err_contract_list says so). */
#ifndef CAPSTORE_TEST_ERR_CHECK_H
#define CAPSTORE_TEST_ERR_CHECK_H

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/archive.h"
#include "capstore/persist.h"
#include "capstore/sys/backend.h"

/* X(name without cap_, (parameters), (arguments, with e for err)) */
#define CAP_TEST_ERR_FUNCS(X) \
    X(data_set_page, (cap_t *c, uint64_t index, const void *bytes, size_t n, cap_err_t *err), (c, \
      index, bytes, n, e)) \
    X(image_new, (cap_t **out, const cap_alloc_t *a, const cap_image_desc_t *d, cap_err_t *err), \
      (out, a, d, e)) \
    X(image_validate, (const cap_image_desc_t *d, cap_err_t *err), (d, e)) \
    X(wire_decode, (const uint8_t *b, size_t n, const cap_alloc_t *a, cap_t **out, \
      cap_err_t *err), (b, n, a, out, e)) \
    X(persist_fetch, (const cap_backend_t *b, const cap_hash_t *h, const cap_alloc_t *a, \
      bool verify, cap_t **out, cap_err_t *err), (b, h, a, verify, out, e)) \
    X(persist_decode, (const cap_hash_t *h, const uint8_t *bytes, size_t n, const cap_alloc_t *a, \
      bool verify, cap_t **out, cap_err_t *err), (h, bytes, n, a, verify, out, e)) \
    X(persist_put, (const cap_backend_t *b, const cap_t *c, cap_hash_t *out, cap_err_t *err), (b, \
      c, out, e)) \
    X(persist_put_batch, (const cap_backend_t *b, cap_t *const *caps, const cap_hash_t *hashes, \
      size_t n, const cap_alloc_t *a, cap_hash_t *hashes_out, cap_err_t *err), (b, caps, hashes, \
      n, a, hashes_out, e)) \
    X(lmdb_open, (const char *path, const cap_lmdb_options_t *opt, cap_backend_t **out, \
      cap_err_t *err), (path, opt, out, e)) \
    X(lmdb_stats, (const cap_backend_t *b, cap_lmdb_stats_t *st, cap_err_t *err), (b, st, e)) \
    X(store_set_instance, (cap_store_t *s, cap_ref_t *r, cap_t *cap, cap_err_t *err), (s, r, cap, \
      e)) \
    X(store_edit_instance, (cap_store_t *s, cap_ref_t *r, int (*edit)(cap_t *c, void *arg), \
      void *arg, cap_err_t *err), (s, r, edit, arg, e)) \
    X(store_settle, (cap_store_t *s, const cap_target_t *t, cap_hash_t *out, cap_err_t *err), (s, \
      t, out, e)) \
    X(store_add_backend, (cap_store_t *s, const cap_backend_t *b, cap_err_t *err), (s, b, e)) \
    X(store_fetch_blob, (cap_store_t *s, const cap_hash_t *h, cap_t **out, cap_err_t *err), (s, \
      h, out, e)) \
    X(store_exists, (cap_store_t *s, const cap_hash_t *h, cap_err_t *err), (s, h, e)) \
    X(store_flush, (cap_store_t *s, size_t *written, cap_err_t *err), (s, written, e)) \
    X(store_pin, (cap_store_t *s, const cap_hash_t *h, cap_err_t *err), (s, h, e)) \
    X(backend_check, (const cap_backend_t *b, cap_err_t *err), (b, e)) \
    X(backend_read, (const cap_backend_t *b, const cap_hash_t *h, const cap_alloc_t *a, \
      uint8_t **bytes, size_t *n, cap_err_t *err), (b, h, a, bytes, n, e)) \
    X(backend_write, (const cap_backend_t *b, const cap_hash_t *h, const uint8_t *bytes, \
      size_t n, cap_err_t *err), (b, h, bytes, n, e)) \
    X(backend_write_batch, (const cap_backend_t *b, const cap_backend_item_t *items, size_t n, \
      cap_err_t *err), (b, items, n, e)) \
    X(backend_flush, (const cap_backend_t *b, cap_err_t *err), (b, e)) \
    X(backend_exists, (const cap_backend_t *b, const cap_hash_t *h, cap_err_t *err), (b, h, e)) \
    X(backend_iterate, (const cap_backend_t *b, cap_backend_iter_fn fn, void *arg, \
      cap_err_t *err), (b, fn, arg, e)) \
    X(backend_read_many, (const cap_backend_t *b, const cap_hash_t *hashes, size_t n, \
      const cap_alloc_t *a, uint8_t **bytes, size_t *lens, int *codes, cap_err_t *err), (b, \
      hashes, n, a, bytes, lens, codes, e)) \
    X(backend_exists_many, (const cap_backend_t *b, const cap_hash_t *hashes, size_t n, \
      int *codes, cap_err_t *err), (b, hashes, n, codes, e)) \
    X(backend_write_many, (const cap_backend_t *b, const cap_backend_item_t *items, size_t n, \
      const cap_backend_root_t *roots, size_t nroots, cap_backend_write_result_t *res, \
      cap_err_t *err), (b, items, n, roots, nroots, res, e)) \
    X(backend_root_get, (const cap_backend_t *b, const char *name, cap_hash_t *h, \
      cap_err_t *err), (b, name, h, e)) \
    X(backend_root_set, (const cap_backend_t *b, const char *name, const cap_hash_t *h, \
      cap_err_t *err), (b, name, h, e)) \
    X(backend_root_delete, (const cap_backend_t *b, const char *name, cap_err_t *err), (b, name, \
      e)) \
    X(backend_root_list, (const cap_backend_t *b, cap_backend_root_fn fn, void *arg, \
      cap_err_t *err), (b, fn, arg, e)) \
    X(backend_walk, (const cap_backend_t *b, const cap_hash_t *roots, size_t nroots, \
      const cap_walk_options_t *opt, const cap_alloc_t *a, cap_walk_fn fn, void *arg, \
      cap_walk_result_t *res, cap_err_t *err), (b, roots, nroots, opt, a, fn, arg, res, e)) \
    X(lmdb_check, (const char *path, cap_lmdb_check_fn fn, void *arg, \
      cap_lmdb_check_result_t *res, cap_err_t *err), (path, fn, arg, res, e)) \
    X(persist_put_many, (const cap_backend_t *b, cap_t *const *caps, const cap_hash_t *hashes, \
      size_t n, const cap_alloc_t *a, cap_backend_write_result_t *res, cap_err_t *err), (b, caps, \
      hashes, n, a, res, e)) \
    X(redis_open, (const char *uri, const cap_redis_options_t *opt, cap_backend_t **out, \
      cap_err_t *err), (uri, opt, out, e)) \
    X(redis_stats, (const cap_backend_t *b, cap_redis_stats_t *st, cap_err_t *err), (b, st, e)) \
    X(store_checkpoint, (cap_store_t *s, const cap_target_t *t, cap_hash_t *out, \
      cap_err_t *err), (s, t, out, e)) \
    X(store_get_blobs, (cap_store_t *s, const cap_hash_t *hashes, size_t n, cap_t **out, \
      int *codes, cap_err_t *err), (s, hashes, n, out, codes, e)) \
    X(store_prefetch, (cap_store_t *s, const cap_hash_t *root, cap_err_t *err), (s, root, e)) \
    X(store_put_caps, (cap_store_t *s, cap_t *const *caps, size_t n, cap_hash_t *hashes_out, \
      cap_err_t *err), (s, caps, n, hashes_out, e)) \
    X(store_walk, (cap_store_t *s, const cap_hash_t *roots, size_t nroots, \
      const cap_walk_options_t *opt, cap_walk_fn fn, void *arg, cap_walk_result_t *res, \
      cap_err_t *err), (s, roots, nroots, opt, fn, arg, res, e)) \
    X(wire_for_each_child, (const uint8_t *b, size_t n, cap_child_fn fn, void *arg, \
      cap_err_t *err), (b, n, fn, arg, e)) \
    X(persist_put_roots, (const cap_backend_t *b, cap_t *const *caps, const cap_hash_t *hashes, \
      size_t n, const cap_alloc_t *a, const cap_backend_root_t *roots, size_t nroots, \
      cap_backend_write_result_t *res, cap_err_t *err), (b, caps, hashes, n, a, roots, nroots, \
      res, e)) \
    X(store_flush_roots, (cap_store_t *s, const cap_backend_root_t *roots, size_t nroots, \
      size_t *written, cap_err_t *err), (s, roots, nroots, written, e)) \
    X(lmdb_collect, (const cap_backend_t *b, const cap_hash_t *roots, size_t nroots, \
      const cap_lmdb_collect_options_t *opt, cap_lmdb_collect_result_t *res, cap_err_t *err), \
      (b, roots, nroots, opt, res, e)) \
    X(lmdb_compact, (const char *path, cap_lmdb_compact_result_t *res, cap_err_t *err), (path, \
      res, e)) \
    X(lmdb_find_prefix, (const cap_backend_t *b, const char *prefix, size_t ndigits, \
      cap_hash_t *out, size_t max, size_t *found, cap_err_t *err), (b, prefix, ndigits, out, \
      max, found, e)) \
    X(redis_find_prefix, (const cap_backend_t *b, const char *prefix, size_t ndigits, \
      cap_hash_t *out, size_t max, size_t *found, cap_err_t *err), (b, prefix, ndigits, out, \
      max, found, e)) \
    X(redis_collect, (const cap_backend_t *b, const cap_hash_t *roots, size_t nroots, \
      const cap_redis_collect_options_t *opt, cap_redis_collect_result_t *res, cap_err_t *err), \
      (b, roots, nroots, opt, res, e)) \
    X(archive_export, (const cap_backend_t *b, const cap_backend_root_t *roots, size_t nroots, \
      const cap_archive_options_t *opt, cap_archive_write_fn write, void *warg, \
      cap_archive_result_t *res, cap_err_t *err), (b, roots, nroots, opt, write, warg, res, e)) \
    X(archive_import, (const cap_backend_t *b, cap_archive_read_fn read, void *rarg, \
      const cap_archive_options_t *opt, cap_archive_result_t *res, cap_err_t *err), (b, read, \
      rarg, opt, res, e))

#define CAP_TEST_UNPAREN(...) __VA_ARGS__
#define CAP_TEST_ERR_DECLARE(name, params, args) \
    int cap_test_##name(const char *file, int line, CAP_TEST_UNPAREN params);
CAP_TEST_ERR_FUNCS(CAP_TEST_ERR_DECLARE)
/* Check `e` after a call of `fn` that returned `rc`; returns `rc`. */
int cap_test_err_check(const char *file, int line, const char *fn, int rc, const cap_err_t *e);
/* The rule of the contract that `e` breaks after a call returned `rc` < 0,
 * or NULL (for the checker's own test). */
const char *cap_test_err_broken_rule(int rc, const cap_err_t *e);
/* The wrapped functions, and how many failing calls of each this program
 * has made so far. */
size_t cap_test_err_count(void);
const char *cap_test_err_name(size_t i);
unsigned long cap_test_err_failures(size_t i);

#ifndef CAPSTORE_TEST_ERR_CHECK_LIST_ONLY

#define cap_data_set_page(...) cap_test_data_set_page(__FILE__, __LINE__, __VA_ARGS__)
#define cap_image_new(...) cap_test_image_new(__FILE__, __LINE__, __VA_ARGS__)
#define cap_image_validate(...) cap_test_image_validate(__FILE__, __LINE__, __VA_ARGS__)
#define cap_wire_decode(...) cap_test_wire_decode(__FILE__, __LINE__, __VA_ARGS__)
#define cap_persist_fetch(...) cap_test_persist_fetch(__FILE__, __LINE__, __VA_ARGS__)
#define cap_persist_decode(...) cap_test_persist_decode(__FILE__, __LINE__, __VA_ARGS__)
#define cap_persist_put(...) cap_test_persist_put(__FILE__, __LINE__, __VA_ARGS__)
#define cap_persist_put_batch(...) cap_test_persist_put_batch(__FILE__, __LINE__, __VA_ARGS__)
#define cap_lmdb_open(...) cap_test_lmdb_open(__FILE__, __LINE__, __VA_ARGS__)
#define cap_lmdb_stats(...) cap_test_lmdb_stats(__FILE__, __LINE__, __VA_ARGS__)
#define cap_store_set_instance(...) cap_test_store_set_instance(__FILE__, __LINE__, __VA_ARGS__)
#define cap_store_edit_instance(...) cap_test_store_edit_instance(__FILE__, __LINE__, __VA_ARGS__)
#define cap_store_settle(...) cap_test_store_settle(__FILE__, __LINE__, __VA_ARGS__)
#define cap_store_add_backend(...) cap_test_store_add_backend(__FILE__, __LINE__, __VA_ARGS__)
#define cap_store_fetch_blob(...) cap_test_store_fetch_blob(__FILE__, __LINE__, __VA_ARGS__)
#define cap_store_exists(...) cap_test_store_exists(__FILE__, __LINE__, __VA_ARGS__)
#define cap_store_flush(...) cap_test_store_flush(__FILE__, __LINE__, __VA_ARGS__)
#define cap_store_pin(...) cap_test_store_pin(__FILE__, __LINE__, __VA_ARGS__)
#define cap_backend_check(...) cap_test_backend_check(__FILE__, __LINE__, __VA_ARGS__)
#define cap_backend_read(...) cap_test_backend_read(__FILE__, __LINE__, __VA_ARGS__)
#define cap_backend_write(...) cap_test_backend_write(__FILE__, __LINE__, __VA_ARGS__)
#define cap_backend_write_batch(...) cap_test_backend_write_batch(__FILE__, __LINE__, __VA_ARGS__)
#define cap_backend_flush(...) cap_test_backend_flush(__FILE__, __LINE__, __VA_ARGS__)
#define cap_backend_exists(...) cap_test_backend_exists(__FILE__, __LINE__, __VA_ARGS__)
#define cap_backend_iterate(...) cap_test_backend_iterate(__FILE__, __LINE__, __VA_ARGS__)
#define cap_backend_read_many(...) cap_test_backend_read_many(__FILE__, __LINE__, __VA_ARGS__)
#define cap_backend_exists_many(...) cap_test_backend_exists_many(__FILE__, __LINE__, __VA_ARGS__)
#define cap_backend_write_many(...) cap_test_backend_write_many(__FILE__, __LINE__, __VA_ARGS__)
#define cap_backend_root_get(...) cap_test_backend_root_get(__FILE__, __LINE__, __VA_ARGS__)
#define cap_backend_root_set(...) cap_test_backend_root_set(__FILE__, __LINE__, __VA_ARGS__)
#define cap_backend_root_delete(...) cap_test_backend_root_delete(__FILE__, __LINE__, __VA_ARGS__)
#define cap_backend_root_list(...) cap_test_backend_root_list(__FILE__, __LINE__, __VA_ARGS__)
#define cap_backend_walk(...) cap_test_backend_walk(__FILE__, __LINE__, __VA_ARGS__)
#define cap_lmdb_check(...) cap_test_lmdb_check(__FILE__, __LINE__, __VA_ARGS__)
#define cap_persist_put_many(...) cap_test_persist_put_many(__FILE__, __LINE__, __VA_ARGS__)
#define cap_redis_open(...) cap_test_redis_open(__FILE__, __LINE__, __VA_ARGS__)
#define cap_redis_stats(...) cap_test_redis_stats(__FILE__, __LINE__, __VA_ARGS__)
#define cap_store_checkpoint(...) cap_test_store_checkpoint(__FILE__, __LINE__, __VA_ARGS__)
#define cap_store_get_blobs(...) cap_test_store_get_blobs(__FILE__, __LINE__, __VA_ARGS__)
#define cap_store_prefetch(...) cap_test_store_prefetch(__FILE__, __LINE__, __VA_ARGS__)
#define cap_store_put_caps(...) cap_test_store_put_caps(__FILE__, __LINE__, __VA_ARGS__)
#define cap_store_walk(...) cap_test_store_walk(__FILE__, __LINE__, __VA_ARGS__)
#define cap_wire_for_each_child(...) cap_test_wire_for_each_child(__FILE__, __LINE__, __VA_ARGS__)
#define cap_persist_put_roots(...) cap_test_persist_put_roots(__FILE__, __LINE__, __VA_ARGS__)
#define cap_store_flush_roots(...) cap_test_store_flush_roots(__FILE__, __LINE__, __VA_ARGS__)
#define cap_lmdb_collect(...) cap_test_lmdb_collect(__FILE__, __LINE__, __VA_ARGS__)
#define cap_lmdb_compact(...) cap_test_lmdb_compact(__FILE__, __LINE__, __VA_ARGS__)
#define cap_lmdb_find_prefix(...) cap_test_lmdb_find_prefix(__FILE__, __LINE__, __VA_ARGS__)
#define cap_redis_find_prefix(...) cap_test_redis_find_prefix(__FILE__, __LINE__, __VA_ARGS__)
#define cap_redis_collect(...) cap_test_redis_collect(__FILE__, __LINE__, __VA_ARGS__)
#define cap_archive_export(...) cap_test_archive_export(__FILE__, __LINE__, __VA_ARGS__)
#define cap_archive_import(...) cap_test_archive_import(__FILE__, __LINE__, __VA_ARGS__)
#endif

#endif
