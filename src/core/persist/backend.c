/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Backend wrappers and moving caps through a backend (sys/backend.h,
 * persist.h: cap_backend_*, cap_persist_*).
 *
 * Freestanding: it calls nothing but the backend table, the wire codec and
 * cap_hash, so the store's provider path can use it in the guest too. */
#include "capstore/persist.h"

#define bc_memcpy __builtin_memcpy
#define bc_memcmp __builtin_memcmp

int cap_backend_fail(cap_err_t *err, int code, const char *what)
{
    return cap_err_set(err, code, what);
}

/* A backend's result, with a reason filled in when it left none. */
static int settle_rc(int rc, cap_err_t *err)
{
    if (rc == CAP_OK) return CAP_OK;
    /* A backend may only report negative codes; anything else is its bug. */
    if (rc > 0) return cap_backend_fail(err, CAP_EBACKEND, "backend returned a positive code");
    if (err) {
        err->code = rc;
        if (!err->what) {
            switch (rc) {
            case CAP_ENOTFOUND: err->what = "not stored"; break;
            case CAP_ENOMEM: err->what = "out of memory"; break;
            case CAP_EBACKEND: err->what = "backend error"; break;
            default: break;
            }
        }
    }
    return rc;
}

static void clear_err(cap_err_t *err)
{
    if (err) cap_backend_fail(err, CAP_OK, (const char *)0);
}

int cap_backend_check(const cap_backend_t *b, cap_err_t *err)
{
    if (!b) return cap_backend_fail(err, CAP_EINVAL, "NULL backend");
    if (b->version == 0 || b->version > CAP_BACKEND_VERSION)
        return cap_backend_fail(err, CAP_EINVAL, "unknown backend table version");
    if (!b->read) return cap_backend_fail(err, CAP_EINVAL, "backend has no read function");
    if (!b->write && !b->write_batch && !(b->flags & CAP_BACKEND_READONLY))
        return cap_backend_fail(err, CAP_EINVAL, "writable backend has no write function");
    clear_err(err);
    return CAP_OK;
}

int cap_backend_read(const cap_backend_t *b, const cap_hash_t *h, const cap_alloc_t *a,
                     uint8_t **bytes, size_t *n, cap_err_t *err)
{
    if (bytes) *bytes = (uint8_t *)0;
    if (n) *n = 0;
    if (!b || !h || !a || !bytes || !n) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    int rc = cap_backend_check(b, err);
    if (rc != CAP_OK) return rc;
    rc = b->read(b->ctx, h, a, bytes, n, err);
    if (rc != CAP_OK) {
        /* Never hand a half-result to the caller. */
        if (*bytes && *n) a->deallocate(a->ctx, *bytes, *n);
        *bytes = (uint8_t *)0;
        *n = 0;
        return settle_rc(rc, err);
    }
    if (*n == 0 && *bytes) *bytes = (uint8_t *)0; /* nothing to free by contract */
    return CAP_OK;
}

int cap_backend_write(const cap_backend_t *b, const cap_hash_t *h, const uint8_t *bytes, size_t n,
                      cap_err_t *err)
{
    if (!b || !h || (!bytes && n)) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    int rc = cap_backend_check(b, err);
    if (rc != CAP_OK) return rc;
    if ((b->flags & CAP_BACKEND_READONLY) || (!b->write && !b->write_batch))
        return cap_backend_fail(err, CAP_EBACKEND, "read-only");
    clear_err(err);
    if (b->write) return settle_rc(b->write(b->ctx, h, bytes, n, err), err);
    cap_backend_item_t it; /* a backend with write_batch only: a batch of one */
    it.hash = *h;
    it.bytes = bytes;
    it.n = n;
    return settle_rc(b->write_batch(b->ctx, &it, 1, err), err);
}

int cap_backend_write_batch(const cap_backend_t *b, const cap_backend_item_t *items, size_t n,
                            cap_err_t *err)
{
    if (!b || (!items && n)) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    int rc = cap_backend_check(b, err);
    if (rc != CAP_OK) return rc;
    if ((b->flags & CAP_BACKEND_READONLY) || (!b->write && !b->write_batch))
        return cap_backend_fail(err, CAP_EBACKEND, "read-only");
    clear_err(err);
    if (n == 0) return CAP_OK;
    if (b->write_batch) return settle_rc(b->write_batch(b->ctx, items, n, err), err);
    for (size_t i = 0; i < n; i++) {
        rc = b->write(b->ctx, &items[i].hash, items[i].bytes, items[i].n, err);
        if (rc != CAP_OK) return settle_rc(rc, err);
    }
    return CAP_OK;
}

int cap_backend_flush(const cap_backend_t *b, cap_err_t *err)
{
    int rc = cap_backend_check(b, err);
    if (rc != CAP_OK) return rc;
    if (!b->flush) return CAP_OK;
    return settle_rc(b->flush(b->ctx, err), err);
}

static void *probe_allocate(void *ctx, size_t size)
{
    (void)size;
    *(int *)ctx = 1;
    return (void *)0;
}

static void *probe_reallocate(void *ctx, void *ptr, size_t old_size, size_t new_size)
{
    (void)ptr;
    (void)old_size;
    (void)new_size;
    *(int *)ctx = 1;
    return (void *)0;
}

static void probe_deallocate(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    (void)ptr;
    (void)size;
}

int cap_backend_exists(const cap_backend_t *b, const cap_hash_t *h, cap_err_t *err)
{
    if (!h) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    int rc = cap_backend_check(b, err);
    if (rc != CAP_OK) return rc;
    if (b->exists) {
        rc = b->exists(b->ctx, h, err);
        if (rc == CAP_ENOTFOUND) {
            clear_err(err);
            if (err) err->code = CAP_ENOTFOUND;
            return CAP_ENOTFOUND;
        }
        return settle_rc(rc, err);
    }
    /* Fallback: a read whose allocator refuses every block but notes that it
     * was asked; a backend asks for the buffer only once it found the blob. */
    int asked = 0;
    cap_alloc_t probe = {probe_allocate, probe_reallocate, probe_deallocate, &asked};
    uint8_t *bytes = (uint8_t *)0;
    size_t n = 0;
    rc = b->read(b->ctx, h, &probe, &bytes, &n, err);
    if (rc == CAP_OK || asked) {
        clear_err(err);
        return CAP_OK;
    }
    if (rc == CAP_ENOTFOUND) {
        clear_err(err);
        if (err) err->code = CAP_ENOTFOUND;
        return CAP_ENOTFOUND;
    }
    return settle_rc(rc, err);
}

int cap_backend_iterate(const cap_backend_t *b, cap_backend_iter_fn fn, void *arg, cap_err_t *err)
{
    if (!fn) return cap_backend_fail(err, CAP_EINVAL, "NULL callback");
    int rc = cap_backend_check(b, err);
    if (rc != CAP_OK) return rc;
    if (!b->iterate) return cap_backend_fail(err, CAP_EBACKEND, "iterate not supported");
    rc = b->iterate(b->ctx, fn, arg, err);
    /* A callback's own stop value passes unchanged; a negative one (the
     * callback's or the backend's error) is a failure, with its detail. */
    return rc < 0 ? settle_rc(rc, err) : rc;
}

/* Version 2 ---------------------------------------------------------------------------------- */

static bool has_v2(const cap_backend_t *b)
{
    return b->version >= 2u;
}

int cap_backend_read_many(const cap_backend_t *b, const cap_hash_t *hashes, size_t n,
                          const cap_alloc_t *a, uint8_t **bytes, size_t *lens, int *codes,
                          cap_err_t *err)
{
    if ((!hashes || !bytes || !lens || !codes) && n)
        return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    for (size_t i = 0; i < n; i++) {
        bytes[i] = (uint8_t *)0;
        lens[i] = 0;
        codes[i] = CAP_EBACKEND;
    }
    if (!a) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    int rc = cap_backend_check(b, err);
    if (rc != CAP_OK) {
        for (size_t i = 0; i < n; i++) codes[i] = rc;
        return rc;
    }
    if (n == 0) return CAP_OK;
    if (has_v2(b) && b->read_many) {
        rc = b->read_many(b->ctx, hashes, n, a, bytes, lens, codes, err);
        for (size_t i = 0; i < n; i++) {
            if (codes[i] > 0) codes[i] = CAP_EBACKEND; /* a backend's bug, never success */
            if (codes[i] != CAP_OK || rc > 0) {
                if (bytes[i] && lens[i]) a->deallocate(a->ctx, bytes[i], lens[i]);
                bytes[i] = (uint8_t *)0;
                lens[i] = 0;
                if (rc != CAP_OK && codes[i] == CAP_OK) codes[i] = CAP_EBACKEND;
            } else if (lens[i] == 0) {
                bytes[i] = (uint8_t *)0;
            }
        }
        return settle_rc(rc, err);
    }
    /* One by one: a failure of one item is that item's; the call succeeds. */
    for (size_t i = 0; i < n; i++)
        codes[i] = b->read(b->ctx, &hashes[i], a, &bytes[i], &lens[i], (cap_err_t *)0);
    for (size_t i = 0; i < n; i++) {
        if (codes[i] > 0) codes[i] = CAP_EBACKEND;
        if (codes[i] != CAP_OK) {
            if (bytes[i] && lens[i]) a->deallocate(a->ctx, bytes[i], lens[i]);
            bytes[i] = (uint8_t *)0;
            lens[i] = 0;
        } else if (lens[i] == 0) {
            bytes[i] = (uint8_t *)0;
        }
    }
    clear_err(err);
    return CAP_OK;
}

int cap_backend_exists_many(const cap_backend_t *b, const cap_hash_t *hashes, size_t n, int *codes,
                            cap_err_t *err)
{
    if ((!hashes || !codes) && n) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    int rc = cap_backend_check(b, err);
    if (rc != CAP_OK) {
        for (size_t i = 0; i < n; i++) codes[i] = rc;
        return rc;
    }
    if (n == 0) return CAP_OK;
    if (has_v2(b) && b->exists_many) {
        for (size_t i = 0; i < n; i++) codes[i] = CAP_EBACKEND;
        rc = b->exists_many(b->ctx, hashes, n, codes, err);
        for (size_t i = 0; i < n; i++) {
            if (codes[i] > 0) codes[i] = CAP_EBACKEND;
            if (rc != CAP_OK && codes[i] != CAP_OK && codes[i] != CAP_ENOTFOUND)
                codes[i] = rc > 0 ? CAP_EBACKEND : rc;
        }
        return settle_rc(rc, err);
    }
    for (size_t i = 0; i < n; i++) codes[i] = cap_backend_exists(b, &hashes[i], (cap_err_t *)0);
    clear_err(err);
    return CAP_OK;
}

static int roots_unsupported(cap_err_t *err)
{
    return cap_backend_fail(err, CAP_EBACKEND, "roots not supported");
}

int cap_backend_write_many(const cap_backend_t *b, const cap_backend_item_t *items, size_t n,
                           const cap_backend_root_t *roots, size_t nroots,
                           cap_backend_write_result_t *res, cap_err_t *err)
{
    if (res) {
        res->written = 0;
        res->repaired = 0;
    }
    if ((!items && n) || (!roots && nroots)) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    for (size_t i = 0; i < nroots; i++)
        if (!cap_root_name_valid(roots[i].name))
            return cap_backend_fail(err, CAP_EINVAL, "bad root name");
    int rc = cap_backend_check(b, err);
    if (rc != CAP_OK) return rc;
    if ((b->flags & CAP_BACKEND_READONLY) || (!b->write && !b->write_batch))
        return cap_backend_fail(err, CAP_EBACKEND, "read-only");
    if (n == 0 && nroots == 0) {
        clear_err(err);
        return CAP_OK;
    }
    if (has_v2(b) && b->write_many) {
        cap_backend_write_result_t local = {0, 0};
        clear_err(err);
        rc = settle_rc(b->write_many(b->ctx, items, n, roots, nroots, &local, err), err);
        if (rc == CAP_OK && res) *res = local;
        return rc;
    }
    if (nroots) return roots_unsupported(err);
    rc = cap_backend_write_batch(b, items, n, err);
    if (rc == CAP_OK && res) res->written = n;
    return rc;
}

bool cap_backend_has_roots(const cap_backend_t *b)
{
    return b && b->version >= 2u && b->version <= CAP_BACKEND_VERSION && b->root_get &&
           b->root_set && b->root_delete && b->root_list;
}

bool cap_root_name_valid(const char *name)
{
    if (!name) return false;
    size_t n = 0;
    bool all_hex = true;
    for (; name[n]; n++) {
        if (n >= CAP_ROOT_NAME_MAX) return false;
        char c = name[n];
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        bool ok = hex || (c >= 'g' && c <= 'z') || (c >= 'G' && c <= 'Z') || c == '.' || c == '_' ||
                  c == '/' || c == '-';
        if (!ok) return false;
        if (!hex) all_hex = false;
    }
    return n > 0 && !all_hex;
}

static int root_entry(const cap_backend_t *b, const char *name, cap_err_t *err)
{
    if (name && !cap_root_name_valid(name)) return cap_backend_fail(err, CAP_EINVAL, "bad root name");
    int rc = cap_backend_check(b, err);
    if (rc != CAP_OK) return rc;
    if (!cap_backend_has_roots(b)) return roots_unsupported(err);
    clear_err(err);
    return CAP_OK;
}

int cap_backend_root_get(const cap_backend_t *b, const char *name, cap_hash_t *h, cap_err_t *err)
{
    if (!name || !h) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    int rc = root_entry(b, name, err);
    if (rc != CAP_OK) return rc;
    rc = b->root_get(b->ctx, name, h, err);
    if (rc == CAP_ENOTFOUND) {
        cap_backend_fail(err, CAP_ENOTFOUND, "no such root");
        cap_err_add_detail(err, name);
        return rc;
    }
    return settle_rc(rc, err);
}

int cap_backend_root_set(const cap_backend_t *b, const char *name, const cap_hash_t *h,
                         cap_err_t *err)
{
    if (!name || !h) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    int rc = root_entry(b, name, err);
    if (rc != CAP_OK) return rc;
    if (b->flags & CAP_BACKEND_READONLY) return cap_backend_fail(err, CAP_EBACKEND, "read-only");
    return settle_rc(b->root_set(b->ctx, name, h, err), err);
}

int cap_backend_root_delete(const cap_backend_t *b, const char *name, cap_err_t *err)
{
    if (!name) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    int rc = root_entry(b, name, err);
    if (rc != CAP_OK) return rc;
    if (b->flags & CAP_BACKEND_READONLY) return cap_backend_fail(err, CAP_EBACKEND, "read-only");
    rc = b->root_delete(b->ctx, name, err);
    if (rc == CAP_ENOTFOUND) {
        cap_backend_fail(err, CAP_ENOTFOUND, "no such root");
        cap_err_add_detail(err, name);
        return rc;
    }
    return settle_rc(rc, err);
}

int cap_backend_root_list(const cap_backend_t *b, cap_backend_root_fn fn, void *arg,
                          cap_err_t *err)
{
    if (!fn) return cap_backend_fail(err, CAP_EINVAL, "NULL callback");
    int rc = root_entry(b, (const char *)0, err);
    if (rc != CAP_OK) return rc;
    rc = b->root_list(b->ctx, fn, arg, err);
    return rc < 0 ? settle_rc(rc, err) : rc; /* as cap_backend_iterate */
}

void cap_backend_free(cap_backend_t *b)
{
    if (!b || !b->free) return;
    b->free(b->ctx);
}

/* Moving caps ------------------------------------------------------------------------------ */

int cap_persist_decode(const cap_hash_t *h, const uint8_t *bytes, size_t n, const cap_alloc_t *a,
                       bool verify, cap_t **out, cap_err_t *err)
{
    if (out) *out = (cap_t *)0;
    if (!h || !a || !out) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    cap_t *c = (cap_t *)0;
    int rc = cap_wire_decode(bytes, n, a, &c, err);
    if (rc != CAP_OK) {
        cap_err_set_hash(err, h);
        return rc;
    }
    if (verify) {
        cap_hash_t got;
        rc = cap_hash(c, &got);
        if (rc != CAP_OK) {
            cap_release(c);
            return cap_backend_fail(err, rc, "hashing the stored cap failed");
        }
        if (bc_memcmp(got.bytes, h->bytes, 32) != 0) {
            cap_release(c);
            cap_backend_fail(err, CAP_EMISMATCH, "stored bytes hash to another value");
            cap_err_set_hash(err, h);
            return CAP_EMISMATCH;
        }
    }
    *out = c;
    return CAP_OK;
}

int cap_persist_fetch(const cap_backend_t *b, const cap_hash_t *h, const cap_alloc_t *a, bool verify,
                      cap_t **out, cap_err_t *err)
{
    if (out) *out = (cap_t *)0;
    if (!b || !h || !a || !out) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    uint8_t *bytes;
    size_t n;
    int rc = cap_backend_read(b, h, a, &bytes, &n, err);
    if (rc != CAP_OK) {
        cap_err_set_hash(err, h);
        return rc;
    }
    rc = cap_persist_decode(h, bytes, n, a, verify, out, err);
    if (bytes) a->deallocate(a->ctx, bytes, n);
    return rc;
}

int cap_persist_put(const cap_backend_t *b, const cap_t *c, cap_hash_t *out, cap_err_t *err)
{
    if (!b || !c) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    cap_hash_t h;
    int rc = cap_hash(c, &h);
    if (rc != CAP_OK) return cap_backend_fail(err, rc, "cap_hash failed");
    const cap_alloc_t *a = cap_allocator(c);
    uint8_t *buf;
    size_t n;
    rc = cap_wire_encode_alloc(c, a, &buf, &n);
    if (rc != CAP_OK) return cap_backend_fail(err, rc, "encoding failed");
    rc = cap_backend_write(b, &h, buf, n, err);
    a->deallocate(a->ctx, buf, n);
    if (rc == CAP_OK && out) *out = h;
    return rc;
}

/* Both batch puts: encode the caps into one scratch block, then one
 * write_many (which repairs damaged entries and counts). */
static int put_caps(const cap_backend_t *b, cap_t *const *caps, const cap_hash_t *hashes, size_t n,
                    const cap_alloc_t *a, cap_hash_t *hashes_out, cap_backend_write_result_t *res,
                    cap_err_t *err)
{
    if (res) {
        res->written = 0;
        res->repaired = 0;
    }
    if (!b || (!caps && n) || !a) return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    if (n == 0) {
        clear_err(err);
        return CAP_OK;
    }
    /* One block: the items array, then every encoding back to back. */
    size_t total = 0;
    if (n > ((size_t)-1) / sizeof(cap_backend_item_t))
        return cap_backend_fail(err, CAP_ENOMEM, "batch too large");
    size_t head = n * sizeof(cap_backend_item_t);
    total = head;
    for (size_t i = 0; i < n; i++) {
        if (!caps[i]) return cap_backend_fail(err, CAP_EINVAL, "NULL cap in batch");
        size_t sz;
        int rc = cap_wire_size(caps[i], &sz);
        if (rc != CAP_OK) return cap_backend_fail(err, rc, "cap cannot be encoded");
        if (sz > ((size_t)-1) - total) return cap_backend_fail(err, CAP_ENOMEM, "batch too large");
        total += sz;
    }
    uint8_t *block = a->allocate(a->ctx, total);
    if (!block) return cap_backend_fail(err, CAP_ENOMEM, "out of memory");
    cap_backend_item_t *items = (cap_backend_item_t *)(void *)block;
    size_t pos = head;
    int rc = CAP_OK;
    for (size_t i = 0; i < n; i++) {
        size_t written;
        rc = cap_wire_encode(caps[i], block + pos, total - pos, &written);
        if (rc != CAP_OK) {
            cap_backend_fail(err, rc, "encoding failed");
            goto out;
        }
        items[i].bytes = block + pos;
        items[i].n = written;
        pos += written;
        if (hashes) {
            items[i].hash = hashes[i];
        } else {
            rc = cap_hash(caps[i], &items[i].hash);
            if (rc != CAP_OK) {
                cap_backend_fail(err, rc, "cap_hash failed");
                goto out;
            }
        }
    }
    rc = cap_backend_write_many(b, items, n, (const cap_backend_root_t *)0, 0, res, err);
    if (rc == CAP_OK && hashes_out) {
        for (size_t i = 0; i < n; i++) bc_memcpy(&hashes_out[i], &items[i].hash, sizeof(cap_hash_t));
    }
out:
    a->deallocate(a->ctx, block, total);
    return rc;
}

int cap_persist_put_batch(const cap_backend_t *b, cap_t *const *caps, const cap_hash_t *hashes,
                          size_t n, const cap_alloc_t *a, cap_hash_t *hashes_out, cap_err_t *err)
{
    return put_caps(b, caps, hashes, n, a, hashes_out, (cap_backend_write_result_t *)0, err);
}

int cap_persist_put_many(const cap_backend_t *b, cap_t *const *caps, const cap_hash_t *hashes,
                         size_t n, const cap_alloc_t *a, cap_backend_write_result_t *res,
                         cap_err_t *err)
{
    if (!hashes && n) {
        if (res) {
            res->written = 0;
            res->repaired = 0;
        }
        return cap_backend_fail(err, CAP_EINVAL, "NULL argument");
    }
    return put_caps(b, caps, hashes, n, a, (cap_hash_t *)0, res, err);
}
