/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The JSON form of a cap: cap -> JSON through the getters, JSON -> cap
 * through the constructors and setters (docs/cap-json.md). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_json.h"
#include "cli.h"

/* ===================================================================================== */
/* cap -> JSON                                                                            */
/* ===================================================================================== */

static json_t *j_u64(uint64_t v)
{
    if (v <= CAPJSON_U64_NUMBER_MAX) return json_integer((json_int_t)v);
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return json_string(buf);
}

static json_t *j_hex(const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    if (n > (SIZE_MAX - 1) / 2) return NULL;
    char *s = malloc(2 * n + 1);
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = digits[b[i] >> 4];
        s[2 * i + 1] = digits[b[i] & 15];
    }
    s[2 * n] = 0;
    json_t *j = json_stringn_nocheck(s, 2 * n);
    free(s);
    return j;
}

static json_t *j_hash(const cap_hash_t *h) { return j_hex(h->bytes, 32); }

/* Set obj[key] = v, stealing v; false (and v released) when v is NULL or the
 * set fails. */
static bool j_put(json_t *obj, const char *key, json_t *v)
{
    if (!v) return false;
    return json_object_set_new_nocheck(obj, key, v) == 0;
}

static bool j_push(json_t *arr, json_t *v)
{
    if (!v) return false;
    return json_array_append_new(arr, v) == 0;
}

static json_t *j_u64_array(const uint64_t *v, size_t n)
{
    json_t *a = json_array();
    if (!a) return NULL;
    for (size_t i = 0; i < n; i++)
        if (!j_push(a, j_u64(v[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *j_u32_array(const uint32_t *v, size_t n)
{
    json_t *a = json_array();
    if (!a) return NULL;
    for (size_t i = 0; i < n; i++)
        if (!j_push(a, json_integer(v[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* A target read out of a cap must be a hash: the JSON form has no handles. */
static int j_target(const cap_target_t *t, json_t **out)
{
    if (t->kind == CAP_TARGET_REF) return CAP_EUNSETTLED;
    if (t->kind != CAP_TARGET_HASH) return CAP_EINVAL;
    *out = j_hash(&t->hash);
    return *out ? CAP_OK : CAP_ENOMEM;
}

static int from_type(const cap_t *c, json_t *o)
{
    return j_put(o, "image_hash_chain", j_hash(cap_type_image_hash_chain(c))) ? CAP_OK : CAP_ENOMEM;
}

static int from_cnode(const cap_t *c, json_t *o)
{
    if (!j_put(o, "size_log", json_integer(cap_cnode_size_log(c)))) return CAP_ENOMEM;
    json_t *slots = json_array();
    if (!j_put(o, "slots", slots)) return CAP_ENOMEM;
    size_t n = cap_cnode_count(c);
    for (size_t i = 0; i < n; i++) {
        uint32_t slot;
        cap_target_t t;
        int rc = cap_cnode_entry(c, i, &slot, &t);
        if (rc != CAP_OK) return rc;
        json_t *target;
        rc = j_target(&t, &target);
        if (rc != CAP_OK) return rc;
        json_t *e = json_object();
        if (!j_push(slots, e)) {
            json_decref(target);
            return CAP_ENOMEM;
        }
        if (!j_put(e, "slot", json_integer(slot)) || !j_put(e, "target", target)) return CAP_ENOMEM;
    }
    return CAP_OK;
}

static int from_data(const cap_t *c, json_t *o)
{
    uint32_t ps = cap_data_page_size(c);
    if (!j_put(o, "page_size", json_integer(ps))) return CAP_ENOMEM;
    json_t *pages = json_array();
    if (!j_put(o, "pages", pages)) return CAP_ENOMEM;
    uint64_t n = cap_data_page_count(c);
    for (uint64_t i = 0; i < n; i++) {
        json_t *p = json_object();
        if (!j_push(pages, p)) return CAP_ENOMEM;
        switch (cap_data_page_state(c, i)) {
        case CAP_PAGE_EMPTY:
            if (!j_put(p, "state", json_string("empty"))) return CAP_ENOMEM;
            break;
        case CAP_PAGE_LOADED: {
            const uint8_t *b = cap_data_page_bytes(c, i);
            if (!b) return CAP_EINVAL;
            if (!j_put(p, "state", json_string("loaded")) || !j_put(p, "bytes", j_hex(b, ps)))
                return CAP_ENOMEM;
            break;
        }
        case CAP_PAGE_MISSING: {
            cap_hash_t root;
            int rc = cap_data_page_root(c, i, &root);
            if (rc != CAP_OK) return rc;
            if (!j_put(p, "state", json_string("missing")) || !j_put(p, "root", j_hash(&root)))
                return CAP_ENOMEM;
            break;
        }
        default: return CAP_EINVAL;
        }
    }
    return CAP_OK;
}

static int from_instance(const cap_t *c, json_t *o)
{
    if (!j_put(o, "image_hash_chain", j_hash(cap_instance_image_hash_chain(c))) ||
        !j_put(o, "image_hash", j_hash(cap_instance_image_hash(c))))
        return CAP_ENOMEM;
    cap_target_t root = cap_instance_root_cnode(c);
    json_t *rj;
    int rc = j_target(&root, &rj);
    if (rc != CAP_OK) return rc;
    if (!j_put(o, "root_cnode", rj)) return CAP_ENOMEM;
    json_t *ovs = json_array();
    if (!j_put(o, "rw_overlays", ovs)) return CAP_ENOMEM;
    size_t n = cap_instance_overlay_count(c);
    for (size_t i = 0; i < n; i++) {
        uint32_t start;
        const uint8_t *bytes;
        size_t len;
        rc = cap_instance_overlay(c, i, &start, &bytes, &len);
        if (rc != CAP_OK) return rc;
        json_t *e = json_object();
        if (!j_push(ovs, e)) return CAP_ENOMEM;
        if (!j_put(e, "start", json_integer(start)) || !j_put(e, "bytes", j_hex(bytes, len)))
            return CAP_ENOMEM;
    }
    uint64_t regs[CAP_NUM_REGS];
    for (unsigned i = 0; i < CAP_NUM_REGS; i++) regs[i] = cap_instance_reg(c, i);
    if (!j_put(o, "mem_size", json_integer(cap_instance_mem_size(c))) ||
        !j_put(o, "regs", j_u64_array(regs, CAP_NUM_REGS)) ||
        !j_put(o, "pc", j_u64(cap_instance_pc(c))) ||
        !j_put(o, "gas_remaining", j_u64(cap_instance_gas_remaining(c))))
        return CAP_ENOMEM;
    return CAP_OK;
}

static json_t *j_slot_entries(const cap_slot_entry_t *e, size_t n)
{
    json_t *a = json_array();
    if (!a) return NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        if (!j_push(a, o) || !j_put(o, "slot", json_integer(e[i].slot)) ||
            !j_put(o, "cap_hash", j_hash(&e[i].cap_hash))) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static int from_image(const cap_t *c, json_t *o)
{
    cap_image_desc_t d;
    memset(&d, 0, sizeof d);
    cap_image_view(c, &d);
    if (!j_put(o, "code", j_hex(d.code, d.code_len)) ||
        !j_put(o, "bitmask", j_hex(d.bitmask, d.bitmask_len)) ||
        !j_put(o, "jump_table", j_u32_array(d.jump_table, d.jump_table_len)))
        return CAP_ENOMEM;
    json_t *eps = json_array();
    if (!j_put(o, "endpoints", eps)) return CAP_ENOMEM;
    for (size_t i = 0; i < d.endpoints_len; i++) {
        const cap_endpoint_t *ep = &d.endpoints[i];
        json_t *e = json_object();
        if (!j_push(eps, e) || !j_put(e, "entry_pc", j_u64(ep->entry_pc)) ||
            !j_put(e, "stack_top", j_u64(ep->stack_top)) ||
            !j_put(e, "arg_cnode_slot", json_integer(ep->arg_cnode_slot)) ||
            !j_put(e, "arg_cnode_size", json_integer(ep->arg_cnode_size)) ||
            !j_put(e, "initial_regs", j_u64_array(ep->initial_regs, CAP_NUM_REGS)))
            return CAP_ENOMEM;
    }
    json_t *maps = json_array();
    if (!j_put(o, "mappings", maps)) return CAP_ENOMEM;
    for (size_t i = 0; i < d.mappings_len; i++) {
        const cap_mapping_t *m = &d.mappings[i];
        json_t *e = json_object();
        if (!j_push(maps, e) || !j_put(e, "start", j_u64(m->start)) ||
            !j_put(e, "size", j_u64(m->size)) ||
            !j_put(e, "source_path", j_u32_array(m->source_path, CAP_MAX_SOURCE_DEPTH)) ||
            !j_put(e, "source_path_len", json_integer(m->source_path_len)))
            return CAP_ENOMEM;
    }
    if (!j_put(o, "pinned", j_slot_entries(d.pinned, d.pinned_len)) ||
        !j_put(o, "initial", j_slot_entries(d.initial, d.initial_len)) ||
        !j_put(o, "yield_marker_slot",
               d.has_yield_marker ? json_integer(d.yield_marker_slot) : json_null()))
        return CAP_ENOMEM;
    return CAP_OK;
}

int capjson_from_cap(const cap_t *c, json_t **out)
{
    *out = NULL;
    if (!c) return CAP_EINVAL;
    if (cap_kind(c) > CAP_KIND_TYPE) return CAP_EINVAL;
    const char *name = cli_kind_name(cap_kind(c));
    json_t *o = json_object();
    if (!o) return CAP_ENOMEM;
    int rc = j_put(o, "kind", json_string(name)) ? CAP_OK : CAP_ENOMEM;
    if (rc == CAP_OK) {
        switch (cap_kind(c)) {
        case CAP_KIND_INSTANCE: rc = from_instance(c, o); break;
        case CAP_KIND_IMAGE: rc = from_image(c, o); break;
        case CAP_KIND_DATA: rc = from_data(c, o); break;
        case CAP_KIND_CNODE: rc = from_cnode(c, o); break;
        case CAP_KIND_TYPE: rc = from_type(c, o); break;
        }
    }
    if (rc != CAP_OK) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return CAP_OK;
}

int capjson_dump(const cap_t *c, char **text)
{
    json_t *j;
    *text = NULL;
    int rc = capjson_from_cap(c, &j);
    if (rc != CAP_OK) return rc;
    char *s = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    if (!s) return CAP_ENOMEM;
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return CAP_ENOMEM;
    }
    t[n] = '\n';
    t[n + 1] = 0;
    *text = t;
    return CAP_OK;
}

/* ===================================================================================== */
/* JSON -> cap                                                                            */
/* ===================================================================================== */

/* The field path of what is being read, e.g. "endpoints[2].initial_regs[0]". */
typedef struct jctx {
    char path[256];
    size_t len;
    char *msg;
    size_t msg_len;
    const cap_alloc_t *alloc;
} jctx_t;

static void path_append(jctx_t *c, const char *text)
{
    size_t room = sizeof c->path - c->len;
    int w = snprintf(c->path + c->len, room, "%s", text);
    if (w < 0) return;
    c->len += (size_t)w < room ? (size_t)w : room - 1;
}

static size_t path_key(jctx_t *c, const char *key)
{
    size_t old = c->len;
    if (c->len) path_append(c, ".");
    path_append(c, key);
    return old;
}

static size_t path_index(jctx_t *c, size_t i)
{
    size_t old = c->len;
    char buf[32];
    snprintf(buf, sizeof buf, "[%zu]", i);
    path_append(c, buf);
    return old;
}

static void path_pop(jctx_t *c, size_t old)
{
    c->len = old;
    c->path[old] = 0;
}

/* Write "<path>: <message>" and return `code`. */
static int jfail(jctx_t *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int jfail(jctx_t *c, int code, const char *fmt, ...)
{
    if (c->msg && c->msg_len) {
        int w = snprintf(c->msg, c->msg_len, "%s%s", c->len ? c->path : "",
                         c->len ? ": " : "");
        size_t used = w < 0 ? 0 : (size_t)w;
        if (used < c->msg_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->msg + used, c->msg_len - used, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

/* A library error at the current path, with an optional hint. */
static int jfail_lib(jctx_t *c, int rc, const char *hint)
{
    if (hint) return jfail(c, rc, "%s (%s)", cap_strerror(rc), hint);
    return jfail(c, rc, "%s", cap_strerror(rc));
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "something else";
}

/* v must be an object whose keys are all in `allowed` (NULL-terminated). */
static int check_object(jctx_t *c, const json_t *v, const char *const *allowed)
{
    if (!json_is_object(v)) return jfail(c, CAP_EINVAL, "expected an object, got %s", json_type_name(v));
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val) {
        (void)val;
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(key, allowed[i]) == 0) ok = true;
        if (!ok) {
            char list[256];
            size_t used = 0;
            list[0] = 0;
            for (size_t i = 0; allowed[i] && used < sizeof list; i++) {
                int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", allowed[i]);
                if (w < 0) break;
                used += (size_t)w;
            }
            path_key(c, key);
            return jfail(c, CAP_EINVAL, "unknown field (expected one of: %s)", list);
        }
    }
    return CAP_OK;
}

/* A non-negative integer <= max. u64 fields (strings_ok) also take a decimal
 * string, which is how values above 2^53 are written. */
static int as_uint(jctx_t *c, const json_t *v, uint64_t max, bool strings_ok, uint64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0) return jfail(c, CAP_EINVAL, "must not be negative (got %lld)", (long long)i);
        if ((uint64_t)i > max)
            return jfail(c, CAP_EINVAL, "%lld is out of range (at most %" PRIu64 ")", (long long)i, max);
        *out = (uint64_t)i;
        return CAP_OK;
    }
    if (strings_ok && json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (n == 0 || n > 20) goto bad_string;
        uint64_t x = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9') goto bad_string;
            unsigned d = (unsigned)(s[i] - '0');
            if (x > (UINT64_MAX - d) / 10) goto bad_string;
            x = x * 10 + d;
        }
        if (x > max) return jfail(c, CAP_EINVAL, "%s is out of range (at most %" PRIu64 ")", s, max);
        *out = x;
        return CAP_OK;
    bad_string:
        return jfail(c, CAP_EINVAL, "expected a decimal string of a u64 (0..18446744073709551615)");
    }
    if (strings_ok)
        return jfail(c, CAP_EINVAL, "expected a non-negative integer or a decimal string, got %s",
                     json_type_name(v));
    return jfail(c, CAP_EINVAL, "expected a non-negative integer, got %s", json_type_name(v));
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* A hex string -> malloc'd bytes (*out is non-NULL on success, even for ""). */
static int as_bytes(jctx_t *c, const json_t *v, uint8_t **out, size_t *n)
{
    if (!json_is_string(v)) return jfail(c, CAP_EINVAL, "expected a hex string, got %s", json_type_name(v));
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len % 2) return jfail(c, CAP_EINVAL, "hex string has an odd number of digits (%zu)", len);
    uint8_t *b = malloc(len / 2 + 1);
    if (!b) return jfail(c, CAP_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i += 2) {
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return jfail(c, CAP_EINVAL, "not a hex digit at character %zu", hi < 0 ? i : i + 1);
        }
        b[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    *out = b;
    *n = len / 2;
    return CAP_OK;
}

static int as_hash(jctx_t *c, const json_t *v, cap_hash_t *h)
{
    if (!json_is_string(v) || json_string_length(v) != 64)
        return jfail(c, CAP_EINVAL, "expected a hash: a string of 64 hex digits");
    uint8_t *b;
    size_t n;
    int rc = as_bytes(c, v, &b, &n);
    if (rc != CAP_OK) return rc;
    memcpy(h->bytes, b, 32);
    free(b);
    return CAP_OK;
}

/* Field accessors: the value of obj[key] (NULL when absent and optional). The
 * path gets the key pushed; the caller pops it with path_pop(c, *old). */
static int field(jctx_t *c, const json_t *obj, const char *key, bool required, const json_t **v,
                 size_t *old)
{
    *v = json_object_get(obj, key);
    *old = path_key(c, key);
    if (!*v && required) return jfail(c, CAP_EINVAL, "missing required field");
    return CAP_OK;
}

static int get_uint(jctx_t *c, const json_t *obj, const char *key, bool required, uint64_t max,
                    bool strings_ok, uint64_t dflt, uint64_t *out)
{
    const json_t *v;
    size_t old;
    int rc = field(c, obj, key, required, &v, &old);
    if (rc != CAP_OK) return rc;
    *out = dflt;
    if (v) rc = as_uint(c, v, max, strings_ok, out);
    if (rc == CAP_OK) path_pop(c, old);
    return rc;
}

static int get_u64(jctx_t *c, const json_t *obj, const char *key, uint64_t *out)
{
    return get_uint(c, obj, key, false, UINT64_MAX, true, 0, out);
}

static int get_u32(jctx_t *c, const json_t *obj, const char *key, uint32_t *out)
{
    uint64_t v;
    int rc = get_uint(c, obj, key, false, UINT32_MAX, false, 0, &v);
    *out = (uint32_t)v;
    return rc;
}

static int get_hash(jctx_t *c, const json_t *obj, const char *key, bool required, cap_hash_t *h)
{
    const json_t *v;
    size_t old;
    int rc = field(c, obj, key, required, &v, &old);
    if (rc != CAP_OK) return rc;
    memset(h, 0, sizeof *h);
    if (v) rc = as_hash(c, v, h);
    if (rc == CAP_OK) path_pop(c, old);
    return rc;
}

/* Optional hex bytes (absent = empty); *out malloc'd, never NULL on success. */
static int get_bytes(jctx_t *c, const json_t *obj, const char *key, uint8_t **out, size_t *n)
{
    const json_t *v;
    size_t old;
    int rc = field(c, obj, key, false, &v, &old);
    if (rc != CAP_OK) return rc;
    if (v) {
        rc = as_bytes(c, v, out, n);
    } else {
        *out = malloc(1);
        *n = 0;
        if (!*out) rc = jfail(c, CAP_ENOMEM, "out of memory");
    }
    if (rc == CAP_OK) path_pop(c, old);
    return rc;
}

/* Optional array (absent = NULL, length 0). */
static int get_array(jctx_t *c, const json_t *obj, const char *key, const json_t **arr, size_t *n,
                     size_t *old)
{
    int rc = field(c, obj, key, false, arr, old);
    if (rc != CAP_OK) return rc;
    *n = 0;
    if (!*arr) return CAP_OK;
    if (!json_is_array(*arr))
        return jfail(c, CAP_EINVAL, "expected an array, got %s", json_type_name(*arr));
    *n = json_array_size(*arr);
    return CAP_OK;
}

/* An array of exactly `count` u64 values (absent = all zero). */
static int get_u64_vector(jctx_t *c, const json_t *obj, const char *key, uint64_t *out, size_t count)
{
    const json_t *arr;
    size_t n, old;
    int rc = get_array(c, obj, key, &arr, &n, &old);
    if (rc != CAP_OK) return rc;
    memset(out, 0, count * sizeof *out);
    if (arr && n != count) return jfail(c, CAP_EINVAL, "expected %zu values, got %zu", count, n);
    for (size_t i = 0; i < n; i++) {
        size_t o = path_index(c, i);
        rc = as_uint(c, json_array_get(arr, i), UINT64_MAX, true, &out[i]);
        if (rc != CAP_OK) return rc;
        path_pop(c, o);
    }
    path_pop(c, old);
    return CAP_OK;
}

/* --- the kinds --------------------------------------------------------------------- */

static int to_type(jctx_t *c, const json_t *j, cap_t **out)
{
    static const char *const keys[] = {"kind", "image_hash_chain", NULL};
    int rc = check_object(c, j, keys);
    if (rc != CAP_OK) return rc;
    cap_hash_t h;
    rc = get_hash(c, j, "image_hash_chain", false, &h);
    if (rc != CAP_OK) return rc;
    rc = cap_type_new(out, c->alloc, &h);
    if (rc != CAP_OK) return jfail_lib(c, rc, NULL);
    return CAP_OK;
}

static int to_cnode(jctx_t *c, const json_t *j, cap_t **out)
{
    static const char *const keys[] = {"kind", "size_log", "slots", NULL};
    static const char *const slot_keys[] = {"slot", "target", NULL};
    int rc = check_object(c, j, keys);
    if (rc != CAP_OK) return rc;
    uint64_t size_log;
    rc = get_uint(c, j, "size_log", true, UINT8_MAX, false, 0, &size_log);
    if (rc != CAP_OK) return rc;
    cap_t *cn = NULL;
    rc = cap_cnode_new(&cn, c->alloc, (unsigned)size_log);
    if (rc != CAP_OK) {
        path_key(c, "size_log");
        return jfail_lib(c, rc, rc == CAP_EINVAL ? "size_log must be 0..16" : NULL);
    }
    const json_t *arr;
    size_t n, old;
    rc = get_array(c, j, "slots", &arr, &n, &old);
    for (size_t i = 0; rc == CAP_OK && i < n; i++) {
        size_t o = path_index(c, i);
        const json_t *e = json_array_get(arr, i);
        uint64_t slot;
        cap_target_t t;
        t.kind = CAP_TARGET_HASH;
        t.ref = NULL;
        rc = check_object(c, e, slot_keys);
        if (rc == CAP_OK) rc = get_uint(c, e, "slot", true, UINT32_MAX, false, 0, &slot);
        if (rc == CAP_OK) rc = get_hash(c, e, "target", true, &t.hash);
        if (rc != CAP_OK) break;
        cap_target_t cur;
        if (cap_cnode_get(cn, (uint32_t)slot, &cur) == CAP_OK && cur.kind != CAP_TARGET_NONE) {
            path_key(c, "slot");
            rc = jfail(c, CAP_EINVAL, "slot %" PRIu64 " appears twice", slot);
            break;
        }
        rc = cap_cnode_set(cn, (uint32_t)slot, &t);
        if (rc == CAP_ESLOTRANGE) {
            path_key(c, "slot");
            char hint[96];
            snprintf(hint, sizeof hint, "slot %" PRIu64 " >= 2^size_log = %lu", slot,
                     1ul << size_log);
            rc = jfail_lib(c, rc, hint);
        } else if (rc == CAP_EINVAL) {
            path_key(c, "target");
            rc = jfail_lib(c, rc, "the all-zero hash is the empty slot, not a target");
        } else if (rc != CAP_OK) {
            rc = jfail_lib(c, rc, NULL);
        } else {
            path_pop(c, o);
        }
    }
    if (rc != CAP_OK) {
        cap_release(cn);
        return rc;
    }
    path_pop(c, old);
    *out = cn;
    return CAP_OK;
}

static int to_data(jctx_t *c, const json_t *j, cap_t **out)
{
    static const char *const keys[] = {"kind", "page_size", "pages", NULL};
    static const char *const empty_keys[] = {"state", NULL};
    static const char *const loaded_keys[] = {"state", "bytes", NULL};
    static const char *const missing_keys[] = {"state", "root", NULL};
    int rc = check_object(c, j, keys);
    if (rc != CAP_OK) return rc;
    uint64_t ps;
    rc = get_uint(c, j, "page_size", false, UINT32_MAX, false, CAP_PAGE_SIZE_DEFAULT, &ps);
    if (rc != CAP_OK) return rc;
    cap_t *d = NULL;
    rc = cap_data_new(&d, c->alloc, (uint32_t)ps);
    if (rc != CAP_OK) {
        path_key(c, "page_size");
        return jfail_lib(c, rc, rc == CAP_EINVAL ? "a power of two in 32..65536" : NULL);
    }
    const json_t *arr;
    size_t n, old;
    rc = get_array(c, j, "pages", &arr, &n, &old);
    if (rc == CAP_OK && n) {
        rc = cap_data_resize(d, n);
        if (rc != CAP_OK) rc = jfail_lib(c, rc, NULL);
    }
    for (size_t i = 0; rc == CAP_OK && i < n; i++) {
        size_t o = path_index(c, i);
        const json_t *p = json_array_get(arr, i);
        if (!json_is_object(p)) {
            rc = jfail(c, CAP_EINVAL, "expected an object, got %s", json_type_name(p));
            break;
        }
        const json_t *st = json_object_get(p, "state");
        const char *s = json_is_string(st) ? json_string_value(st) : NULL;
        if (!s || (strcmp(s, "empty") != 0 && strcmp(s, "loaded") != 0 && strcmp(s, "missing") != 0)) {
            path_key(c, "state");
            rc = jfail(c, CAP_EINVAL, "%s: expected \"empty\", \"loaded\" or \"missing\"",
                       st ? "bad page state" : "missing required field");
            break;
        }
        if (strcmp(s, "empty") == 0) {
            rc = check_object(c, p, empty_keys);
            if (rc == CAP_OK) {
                rc = cap_data_set_page_empty(d, i);
                if (rc != CAP_OK) rc = jfail_lib(c, rc, NULL);
            }
        } else if (strcmp(s, "loaded") == 0) {
            uint8_t *b = NULL;
            size_t bn = 0;
            const json_t *bv;
            size_t o2;
            rc = check_object(c, p, loaded_keys);
            if (rc == CAP_OK) rc = field(c, p, "bytes", true, &bv, &o2);
            if (rc == CAP_OK) rc = as_bytes(c, bv, &b, &bn);
            if (rc == CAP_OK) {
                cap_err_t err;
                memset(&err, 0, sizeof err);
                rc = cap_data_set_page(d, i, b, bn, &err);
                if (rc == CAP_EPAGESIZE)
                    rc = jfail(c, rc, "%s: expected %" PRIu64 " bytes, got %" PRIu64, cap_strerror(rc),
                               err.expected ? err.expected : ps, err.got ? err.got : (uint64_t)bn);
                else if (rc != CAP_OK)
                    rc = jfail_lib(c, rc, NULL);
                else
                    path_pop(c, o2);
            }
            free(b);
        } else {
            cap_hash_t root;
            rc = check_object(c, p, missing_keys);
            if (rc == CAP_OK) rc = get_hash(c, p, "root", true, &root);
            if (rc == CAP_OK) {
                rc = cap_data_set_page_missing(d, i, &root);
                if (rc != CAP_OK) rc = jfail_lib(c, rc, NULL);
            }
        }
        if (rc == CAP_OK) path_pop(c, o);
    }
    if (rc != CAP_OK) {
        cap_release(d);
        return rc;
    }
    path_pop(c, old);
    *out = d;
    return CAP_OK;
}

static int to_instance(jctx_t *c, const json_t *j, cap_t **out)
{
    static const char *const keys[] = {"kind", "image_hash_chain", "image_hash", "root_cnode",
                                       "rw_overlays", "mem_size", "regs", "pc", "gas_remaining",
                                       NULL};
    static const char *const ov_keys[] = {"start", "bytes", NULL};
    int rc = check_object(c, j, keys);
    if (rc != CAP_OK) return rc;
    cap_target_t root;
    root.kind = CAP_TARGET_HASH;
    root.ref = NULL;
    rc = get_hash(c, j, "root_cnode", true, &root.hash);
    if (rc != CAP_OK) return rc;
    cap_t *in = NULL;
    rc = cap_instance_new(&in, c->alloc, &root);
    if (rc != CAP_OK) {
        path_key(c, "root_cnode");
        return jfail_lib(c, rc, rc == CAP_EINVAL ? "the all-zero hash is not a valid target" : NULL);
    }
    cap_hash_t h;
    uint64_t regs[CAP_NUM_REGS], pc, gas;
    uint32_t mem;
    const char *what = NULL;
    rc = get_hash(c, j, "image_hash_chain", false, &h);
    if (rc == CAP_OK && (rc = cap_instance_set_image_hash_chain(in, &h)) != CAP_OK) what = "image_hash_chain";
    if (rc == CAP_OK) rc = get_hash(c, j, "image_hash", false, &h);
    if (rc == CAP_OK && (rc = cap_instance_set_image_hash(in, &h)) != CAP_OK) what = "image_hash";
    if (rc == CAP_OK) rc = get_u32(c, j, "mem_size", &mem);
    if (rc == CAP_OK && (rc = cap_instance_set_mem_size(in, mem)) != CAP_OK) what = "mem_size";
    if (rc == CAP_OK) rc = get_u64_vector(c, j, "regs", regs, CAP_NUM_REGS);
    for (unsigned i = 0; rc == CAP_OK && i < CAP_NUM_REGS; i++)
        if ((rc = cap_instance_set_reg(in, i, regs[i])) != CAP_OK) what = "regs";
    if (rc == CAP_OK) rc = get_u64(c, j, "pc", &pc);
    if (rc == CAP_OK && (rc = cap_instance_set_pc(in, pc)) != CAP_OK) what = "pc";
    if (rc == CAP_OK) rc = get_u64(c, j, "gas_remaining", &gas);
    if (rc == CAP_OK && (rc = cap_instance_set_gas_remaining(in, gas)) != CAP_OK) what = "gas_remaining";
    if (what) {
        path_key(c, what);
        rc = jfail_lib(c, rc, NULL);
    }
    const json_t *arr;
    size_t n = 0, old = c->len;
    if (rc == CAP_OK) rc = get_array(c, j, "rw_overlays", &arr, &n, &old);
    for (size_t i = 0; rc == CAP_OK && i < n; i++) {
        size_t o = path_index(c, i);
        const json_t *e = json_array_get(arr, i);
        uint64_t start = 0;
        uint8_t *b = NULL;
        size_t bn = 0;
        rc = check_object(c, e, ov_keys);
        if (rc == CAP_OK) rc = get_uint(c, e, "start", true, UINT32_MAX, false, 0, &start);
        if (rc == CAP_OK) rc = get_bytes(c, e, "bytes", &b, &bn);
        if (rc == CAP_OK) {
            rc = cap_instance_add_overlay(in, (uint32_t)start, b, bn);
            if (rc != CAP_OK) rc = jfail_lib(c, rc, NULL);
        }
        free(b);
        if (rc == CAP_OK) path_pop(c, o);
    }
    if (rc != CAP_OK) {
        cap_release(in);
        return rc;
    }
    path_pop(c, old);
    *out = in;
    return CAP_OK;
}

/* Image: the JSON is read into a description (arrays malloc'd here), then
 * cap_image_new validates and copies it. */
typedef struct image_parts {
    uint8_t *code, *bitmask;
    uint32_t *jump_table;
    cap_endpoint_t *endpoints;
    cap_mapping_t *mappings;
    cap_slot_entry_t *pinned, *initial;
} image_parts_t;

static void image_parts_free(image_parts_t *p)
{
    free(p->code);
    free(p->bitmask);
    free(p->jump_table);
    free(p->endpoints);
    free(p->mappings);
    free(p->pinned);
    free(p->initial);
}

/* calloc of n elements, never NULL on success (n may be 0). */
static void *alloc_array(size_t n, size_t size) { return calloc(n ? n : 1, size); }

static int get_slot_entries(jctx_t *c, const json_t *j, const char *key, cap_slot_entry_t **out,
                            size_t *count)
{
    static const char *const keys[] = {"slot", "cap_hash", NULL};
    const json_t *arr;
    size_t n, old;
    int rc = get_array(c, j, key, &arr, &n, &old);
    if (rc != CAP_OK) return rc;
    *out = alloc_array(n, sizeof **out);
    if (!*out) return jfail(c, CAP_ENOMEM, "out of memory");
    *count = n;
    for (size_t i = 0; i < n; i++) {
        size_t o = path_index(c, i);
        const json_t *e = json_array_get(arr, i);
        uint64_t slot;
        rc = check_object(c, e, keys);
        if (rc == CAP_OK) rc = get_uint(c, e, "slot", true, UINT32_MAX, false, 0, &slot);
        if (rc == CAP_OK) rc = get_hash(c, e, "cap_hash", true, &(*out)[i].cap_hash);
        if (rc != CAP_OK) return rc;
        (*out)[i].slot = (uint32_t)slot;
        path_pop(c, o);
    }
    path_pop(c, old);
    return CAP_OK;
}

static int read_image(jctx_t *c, const json_t *j, image_parts_t *p, cap_image_desc_t *d)
{
    static const char *const keys[] = {"kind", "code", "bitmask", "jump_table", "endpoints",
                                       "mappings", "pinned", "initial", "yield_marker_slot", NULL};
    static const char *const ep_keys[] = {"entry_pc", "stack_top", "arg_cnode_slot",
                                          "arg_cnode_size", "initial_regs", NULL};
    static const char *const map_keys[] = {"start", "size", "source_path", "source_path_len", NULL};
    int rc = check_object(c, j, keys);
    if (rc != CAP_OK) return rc;
    rc = get_bytes(c, j, "code", &p->code, &d->code_len);
    if (rc != CAP_OK) return rc;
    d->code = p->code;
    rc = get_bytes(c, j, "bitmask", &p->bitmask, &d->bitmask_len);
    if (rc != CAP_OK) return rc;
    d->bitmask = p->bitmask;

    const json_t *arr;
    size_t n, old;
    rc = get_array(c, j, "jump_table", &arr, &n, &old);
    if (rc != CAP_OK) return rc;
    if (!(p->jump_table = alloc_array(n, sizeof *p->jump_table))) return jfail(c, CAP_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t o = path_index(c, i);
        uint64_t v;
        rc = as_uint(c, json_array_get(arr, i), UINT32_MAX, false, &v);
        if (rc != CAP_OK) return rc;
        p->jump_table[i] = (uint32_t)v;
        path_pop(c, o);
    }
    path_pop(c, old);
    d->jump_table = p->jump_table;
    d->jump_table_len = n;

    rc = get_array(c, j, "endpoints", &arr, &n, &old);
    if (rc != CAP_OK) return rc;
    if (!(p->endpoints = alloc_array(n, sizeof *p->endpoints))) return jfail(c, CAP_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t o = path_index(c, i);
        const json_t *e = json_array_get(arr, i);
        cap_endpoint_t *ep = &p->endpoints[i];
        uint64_t v;
        rc = check_object(c, e, ep_keys);
        if (rc == CAP_OK) rc = get_u64(c, e, "entry_pc", &ep->entry_pc);
        if (rc == CAP_OK) rc = get_u64(c, e, "stack_top", &ep->stack_top);
        if (rc == CAP_OK) rc = get_u32(c, e, "arg_cnode_slot", &ep->arg_cnode_slot);
        if (rc == CAP_OK) rc = get_uint(c, e, "arg_cnode_size", false, UINT8_MAX, false, 0, &v);
        if (rc == CAP_OK) ep->arg_cnode_size = (uint8_t)v;
        if (rc == CAP_OK) rc = get_u64_vector(c, e, "initial_regs", ep->initial_regs, CAP_NUM_REGS);
        if (rc != CAP_OK) return rc;
        path_pop(c, o);
    }
    path_pop(c, old);
    d->endpoints = p->endpoints;
    d->endpoints_len = n;

    rc = get_array(c, j, "mappings", &arr, &n, &old);
    if (rc != CAP_OK) return rc;
    if (!(p->mappings = alloc_array(n, sizeof *p->mappings))) return jfail(c, CAP_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t o = path_index(c, i);
        const json_t *e = json_array_get(arr, i);
        cap_mapping_t *m = &p->mappings[i];
        const json_t *sp;
        size_t spn, spold;
        uint64_t v;
        rc = check_object(c, e, map_keys);
        if (rc == CAP_OK) rc = get_u64(c, e, "start", &m->start);
        if (rc == CAP_OK) rc = get_u64(c, e, "size", &m->size);
        if (rc == CAP_OK) rc = get_array(c, e, "source_path", &sp, &spn, &spold);
        if (rc == CAP_OK && spn > CAP_MAX_SOURCE_DEPTH)
            rc = jfail(c, CAP_EINVAL, "at most %d entries, got %zu", CAP_MAX_SOURCE_DEPTH, spn);
        for (size_t k = 0; rc == CAP_OK && k < spn; k++) {
            size_t o2 = path_index(c, k);
            rc = as_uint(c, json_array_get(sp, k), UINT32_MAX, false, &v);
            if (rc == CAP_OK) {
                m->source_path[k] = (uint32_t)v;
                path_pop(c, o2);
            }
        }
        if (rc == CAP_OK) path_pop(c, spold);
        if (rc == CAP_OK) rc = get_uint(c, e, "source_path_len", false, UINT8_MAX, false, 0, &v);
        if (rc != CAP_OK) return rc;
        m->source_path_len = (uint8_t)v;
        path_pop(c, o);
    }
    path_pop(c, old);
    d->mappings = p->mappings;
    d->mappings_len = n;

    rc = get_slot_entries(c, j, "pinned", &p->pinned, &d->pinned_len);
    if (rc != CAP_OK) return rc;
    d->pinned = p->pinned;
    rc = get_slot_entries(c, j, "initial", &p->initial, &d->initial_len);
    if (rc != CAP_OK) return rc;
    d->initial = p->initial;

    const json_t *y;
    rc = field(c, j, "yield_marker_slot", false, &y, &old);
    if (rc != CAP_OK) return rc;
    d->has_yield_marker = y && !json_is_null(y);
    if (d->has_yield_marker) {
        uint64_t v;
        rc = as_uint(c, y, UINT32_MAX, false, &v);
        if (rc != CAP_OK) return rc;
        d->yield_marker_slot = (uint32_t)v;
    }
    path_pop(c, old);
    return CAP_OK;
}

/* cap_image_validate rejected `full`: find the field (and element) that
 * breaks a rule by validating growing parts of the description — each rule
 * involves one field (and the code length), and a list breaks a rule from
 * its first bad element on, so the smallest failing prefix names it. */
enum { ST_BITMASK, ST_JUMP, ST_ENDPOINTS, ST_MAPPINGS, ST_PINNED, ST_INITIAL, ST_YIELD, ST_COUNT };
static const char *const stage_names[ST_COUNT] = {"bitmask", "jump_table", "endpoints", "mappings",
                                                  "pinned", "initial", "yield_marker_slot"};

static size_t *stage_len(cap_image_desc_t *d, int stage)
{
    switch (stage) {
    case ST_JUMP: return &d->jump_table_len;
    case ST_ENDPOINTS: return &d->endpoints_len;
    case ST_MAPPINGS: return &d->mappings_len;
    case ST_PINNED: return &d->pinned_len;
    case ST_INITIAL: return &d->initial_len;
    default: return NULL;
    }
}

static void stage_enable(cap_image_desc_t *d, const cap_image_desc_t *full, int stage)
{
    switch (stage) {
    case ST_BITMASK:
        d->code = full->code, d->code_len = full->code_len;
        d->bitmask = full->bitmask, d->bitmask_len = full->bitmask_len;
        break;
    case ST_JUMP: d->jump_table = full->jump_table, d->jump_table_len = full->jump_table_len; break;
    case ST_ENDPOINTS: d->endpoints = full->endpoints, d->endpoints_len = full->endpoints_len; break;
    case ST_MAPPINGS: d->mappings = full->mappings, d->mappings_len = full->mappings_len; break;
    case ST_PINNED: d->pinned = full->pinned, d->pinned_len = full->pinned_len; break;
    case ST_INITIAL: d->initial = full->initial, d->initial_len = full->initial_len; break;
    case ST_YIELD:
        d->has_yield_marker = full->has_yield_marker;
        d->yield_marker_slot = full->yield_marker_slot;
        break;
    }
}

static int image_fail(jctx_t *c, int rc, const cap_image_desc_t *full, cap_err_t *err0)
{
    cap_image_desc_t d;
    cap_err_t err;
    memset(&d, 0, sizeof d);
    for (int s = 0; s < ST_COUNT; s++) {
        stage_enable(&d, full, s);
        memset(&err, 0, sizeof err);
        if (cap_image_validate(&d, &err) == CAP_OK) continue;
        path_key(c, stage_names[s]);
        size_t *len = stage_len(&d, s);
        if (len) {
            size_t lo = 0, hi = *len; /* prefix lo passes, prefix hi fails */
            while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                *len = mid;
                memset(&err, 0, sizeof err);
                if (cap_image_validate(&d, &err) == CAP_OK)
                    lo = mid;
                else
                    hi = mid;
            }
            *len = hi;
            memset(&err, 0, sizeof err);
            cap_image_validate(&d, &err);
            if (hi > 0) path_index(c, hi - 1);
        }
        *err0 = err;
        break;
    }
    char m[256];
    if (!err0->code) err0->code = rc;
    cap_err_format(err0, m, sizeof m);
    return jfail(c, rc, "%s", m);
}

static int to_image(jctx_t *c, const json_t *j, cap_t **out)
{
    image_parts_t p;
    cap_image_desc_t d;
    memset(&p, 0, sizeof p);
    memset(&d, 0, sizeof d);
    int rc = read_image(c, j, &p, &d);
    if (rc == CAP_OK) {
        cap_err_t err;
        memset(&err, 0, sizeof err);
        rc = cap_image_new(out, c->alloc, &d, &err);
        if (rc == CAP_EIMAGE)
            rc = image_fail(c, rc, &d, &err);
        else if (rc != CAP_OK)
            rc = jfail_lib(c, rc, NULL);
    }
    image_parts_free(&p);
    return rc;
}

int capjson_to_cap(const json_t *j, const cap_alloc_t *a, cap_t **out, char *msg, size_t msg_len)
{
    jctx_t c;
    memset(&c, 0, sizeof c);
    c.msg = msg;
    c.msg_len = msg_len;
    c.alloc = a;
    if (msg && msg_len) msg[0] = 0;
    *out = NULL;
    if (!json_is_object(j)) return jfail(&c, CAP_EINVAL, "expected a JSON object (a cap), got %s", json_type_name(j));
    const json_t *k = json_object_get(j, "kind");
    path_key(&c, "kind");
    if (!k) return jfail(&c, CAP_EINVAL, "missing required field");
    if (!json_is_string(k))
        return jfail(&c, CAP_EINVAL, "expected a string, got %s", json_type_name(k));
    const char *kind = json_string_value(k);
    path_pop(&c, 0);
    if (strcmp(kind, "type") == 0) return to_type(&c, j, out);
    if (strcmp(kind, "cnode") == 0) return to_cnode(&c, j, out);
    if (strcmp(kind, "data") == 0) return to_data(&c, j, out);
    if (strcmp(kind, "instance") == 0) return to_instance(&c, j, out);
    if (strcmp(kind, "image") == 0) return to_image(&c, j, out);
    path_key(&c, "kind");
    return jfail(&c, CAP_EINVAL,
                 "unknown kind \"%s\" (expected instance, image, data, cnode or type)", kind);
}

int capjson_parse(const char *text, size_t n, const cap_alloc_t *a, cap_t **out, char *msg,
                  size_t msg_len)
{
    json_error_t jerr;
    *out = NULL;
    json_t *j = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        if (msg && msg_len)
            snprintf(msg, msg_len, "line %d, column %d: %s%s", jerr.line, jerr.column, jerr.text,
                     strncmp(jerr.text, "too big integer", 15) == 0
                         ? " (write u64 values above 2^53 as decimal strings)"
                         : "");
        return CAP_EINVAL;
    }
    int rc = capjson_to_cap(j, a, out, msg, msg_len);
    json_decref(j);
    return rc;
}
