/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The JSON form of a cap: cap -> JSON through the getters, printed as it is
 * walked; JSON -> cap through the constructors and setters, from the tree
 * and page records that tools/cap_json_stream.c reads (docs/cap-json.md). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cap_json.h"
#include "cap_json_stream.h"
#include "cli.h"

/* ===================================================================================== */
/* cap -> JSON                                                                            */
/* ===================================================================================== */

/* A streaming printer of the exact text jansson's json_dumps(JSON_INDENT(2))
 * gives, which is what `decode` printed when it built a whole tree first:
 * "key": value, items one a line, two spaces a level, and [] for an empty
 * array. (yajl's generator streams too, but its pretty form writes an empty
 * array over three lines: the output would change.) Only what the JSON form
 * needs: objects, arrays, integers, null, and strings that need no escaping
 * (kind and state names, hex, decimal digits). Output goes through a buffer
 * to a sink: a FILE, or memory for capjson_dump. */
#define JW_MAX_DEPTH 8
#define JW_BUF 65536

typedef struct jw {
    FILE *f;           /* the sink, or NULL: the memory below */
    char *mem;         /* capjson_dump's text */
    size_t mem_len, mem_cap;
    int err;           /* CAP_OK, CAP_ENOMEM or CAPJSON_EWRITE: the first failure */
    unsigned depth;
    bool first[JW_MAX_DEPTH + 1]; /* nothing written yet at this level */
    bool in_array[JW_MAX_DEPTH + 1];
    size_t len;
    char buf[JW_BUF];
} jw_t;

static void jw_flush(jw_t *w)
{
    if (w->err || !w->len) {
        w->len = 0;
        return;
    }
    if (w->f) {
        if (fwrite(w->buf, 1, w->len, w->f) != w->len) w->err = CAPJSON_EWRITE;
    } else {
        if (w->mem_cap - w->mem_len < w->len + 1) {
            size_t nc = w->mem_cap ? w->mem_cap : 4096;
            while (nc - w->mem_len < w->len + 1) {
                if (nc > SIZE_MAX / 2) {
                    w->err = CAP_ENOMEM;
                    return;
                }
                nc *= 2;
            }
            char *m = realloc(w->mem, nc);
            if (!m) {
                w->err = CAP_ENOMEM;
                return;
            }
            w->mem = m;
            w->mem_cap = nc;
        }
        memcpy(w->mem + w->mem_len, w->buf, w->len);
        w->mem_len += w->len;
        w->mem[w->mem_len] = 0;
    }
    w->len = 0;
}

static void jw_raw(jw_t *w, const char *s, size_t n)
{
    while (n) {
        if (w->len == JW_BUF) jw_flush(w);
        size_t k = JW_BUF - w->len < n ? JW_BUF - w->len : n;
        memcpy(w->buf + w->len, s, k);
        w->len += k;
        s += k;
        n -= k;
    }
}

static void jw_str_raw(jw_t *w, const char *s) { jw_raw(w, s, strlen(s)); }

/* A new line at the current depth, after a comma unless it is the first item. */
static void jw_item(jw_t *w)
{
    static const char spaces[] = "                ";
    jw_raw(w, w->first[w->depth] ? "\n" : ",\n", w->first[w->depth] ? 1 : 2);
    w->first[w->depth] = false;
    jw_raw(w, spaces, 2 * w->depth);
}

/* Where a value starts: in an array it is an item; in an object its key was. */
static void jw_value(jw_t *w)
{
    if (w->depth && w->in_array[w->depth]) jw_item(w);
}

static void jw_key(jw_t *w, const char *key)
{
    jw_item(w);
    jw_raw(w, "\"", 1);
    jw_str_raw(w, key);
    jw_raw(w, "\": ", 3);
}

static void jw_open(jw_t *w, bool array)
{
    jw_value(w);
    jw_raw(w, array ? "[" : "{", 1);
    w->depth++; /* the JSON form nests 4 deep at most */
    w->first[w->depth] = true;
    w->in_array[w->depth] = array;
}

static void jw_close(jw_t *w)
{
    static const char spaces[] = "                ";
    bool array = w->in_array[w->depth];
    if (!w->first[w->depth]) {
        jw_raw(w, "\n", 1);
        jw_raw(w, spaces, 2 * (w->depth - 1));
    }
    w->depth--;
    jw_raw(w, array ? "]" : "}", 1);
}

static void jw_string(jw_t *w, const char *s)
{
    jw_value(w);
    jw_raw(w, "\"", 1);
    jw_str_raw(w, s);
    jw_raw(w, "\"", 1);
}

static void jw_int(jw_t *w, long long v)
{
    char b[24];
    int n = snprintf(b, sizeof b, "%lld", v);
    jw_value(w);
    jw_raw(w, b, (size_t)n);
}

static void jw_u64(jw_t *w, uint64_t v)
{
    if (v <= CAPJSON_U64_NUMBER_MAX) {
        jw_int(w, (long long)v);
        return;
    }
    char b[24];
    snprintf(b, sizeof b, "%" PRIu64, v);
    jw_string(w, b);
}

static void jw_null(jw_t *w)
{
    jw_value(w);
    jw_raw(w, "null", 4);
}

/* Bytes as a string of lowercase hex, a piece at a time (a page is 64 KiB). */
static void jw_hex(jw_t *w, const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char h[512];
    jw_value(w);
    jw_raw(w, "\"", 1);
    while (n) {
        size_t k = n < sizeof h / 2 ? n : sizeof h / 2;
        for (size_t i = 0; i < k; i++) {
            h[2 * i] = digits[b[i] >> 4];
            h[2 * i + 1] = digits[b[i] & 15];
        }
        jw_raw(w, h, 2 * k);
        b += k;
        n -= k;
    }
    jw_raw(w, "\"", 1);
}

static void jw_hash(jw_t *w, const cap_hash_t *h) { jw_hex(w, h->bytes, 32); }

static void jw_u64_array(jw_t *w, const uint64_t *v, size_t n)
{
    jw_open(w, true);
    for (size_t i = 0; i < n; i++) jw_u64(w, v[i]);
    jw_close(w);
}

static void jw_u32_array(jw_t *w, const uint32_t *v, size_t n)
{
    jw_open(w, true);
    for (size_t i = 0; i < n; i++) jw_int(w, v[i]);
    jw_close(w);
}

/* A target read out of a cap must be a hash: the JSON form has no handles. */
static int j_target(const cap_target_t *t, cap_hash_t *out)
{
    if (t->kind == CAP_TARGET_REF) return CAP_EUNSETTLED;
    if (t->kind != CAP_TARGET_HASH) return CAP_EINVAL;
    *out = t->hash;
    return CAP_OK;
}

/* The cap's targets are checked before anything is printed, so that a cap
 * holding a Ref prints nothing. */
static int check_settled(const cap_t *c)
{
    cap_hash_t h;
    if (cap_kind(c) == CAP_KIND_INSTANCE) {
        cap_target_t root = cap_instance_root_cnode(c);
        return j_target(&root, &h);
    }
    if (cap_kind(c) != CAP_KIND_CNODE) return CAP_OK;
    size_t n = cap_cnode_count(c);
    for (size_t i = 0; i < n; i++) {
        uint32_t slot;
        cap_target_t t;
        int rc = cap_cnode_entry(c, i, &slot, &t);
        if (rc == CAP_OK) rc = j_target(&t, &h);
        if (rc != CAP_OK) return rc;
    }
    return CAP_OK;
}

static int from_type(const cap_t *c, jw_t *w)
{
    jw_key(w, "image_hash_chain");
    jw_hash(w, cap_type_image_hash_chain(c));
    return CAP_OK;
}

static int from_cnode(const cap_t *c, jw_t *w)
{
    jw_key(w, "size_log");
    jw_int(w, cap_cnode_size_log(c));
    jw_key(w, "slots");
    jw_open(w, true);
    size_t n = cap_cnode_count(c);
    for (size_t i = 0; i < n && !w->err; i++) {
        uint32_t slot;
        cap_target_t t;
        cap_hash_t h;
        int rc = cap_cnode_entry(c, i, &slot, &t);
        if (rc == CAP_OK) rc = j_target(&t, &h);
        if (rc != CAP_OK) return rc;
        jw_open(w, false);
        jw_key(w, "slot");
        jw_int(w, slot);
        jw_key(w, "target");
        jw_hash(w, &h);
        jw_close(w);
    }
    jw_close(w);
    return CAP_OK;
}

static int from_data(const cap_t *c, jw_t *w)
{
    uint32_t ps = cap_data_page_size(c);
    jw_key(w, "page_size");
    jw_int(w, ps);
    jw_key(w, "pages");
    jw_open(w, true);
    uint64_t n = cap_data_page_count(c);
    for (uint64_t i = 0; i < n && !w->err; i++) {
        jw_open(w, false);
        jw_key(w, "state");
        switch (cap_data_page_state(c, i)) {
        case CAP_PAGE_EMPTY: jw_string(w, "empty"); break;
        case CAP_PAGE_LOADED: {
            const uint8_t *b = cap_data_page_bytes(c, i);
            if (!b) return CAP_EINVAL;
            jw_string(w, "loaded");
            jw_key(w, "bytes");
            jw_hex(w, b, ps);
            break;
        }
        case CAP_PAGE_MISSING: {
            cap_hash_t root;
            int rc = cap_data_page_root(c, i, &root);
            if (rc != CAP_OK) return rc;
            jw_string(w, "missing");
            jw_key(w, "root");
            jw_hash(w, &root);
            break;
        }
        default: return CAP_EINVAL;
        }
        jw_close(w);
    }
    jw_close(w);
    return CAP_OK;
}

static int from_instance(const cap_t *c, jw_t *w)
{
    jw_key(w, "image_hash_chain");
    jw_hash(w, cap_instance_image_hash_chain(c));
    jw_key(w, "image_hash");
    jw_hash(w, cap_instance_image_hash(c));
    cap_target_t root = cap_instance_root_cnode(c);
    cap_hash_t h;
    int rc = j_target(&root, &h);
    if (rc != CAP_OK) return rc;
    jw_key(w, "root_cnode");
    jw_hash(w, &h);
    jw_key(w, "rw_overlays");
    jw_open(w, true);
    size_t n = cap_instance_overlay_count(c);
    for (size_t i = 0; i < n && !w->err; i++) {
        uint32_t start;
        const uint8_t *bytes;
        size_t len;
        rc = cap_instance_overlay(c, i, &start, &bytes, &len);
        if (rc != CAP_OK) return rc;
        jw_open(w, false);
        jw_key(w, "start");
        jw_int(w, start);
        jw_key(w, "bytes");
        jw_hex(w, bytes, len);
        jw_close(w);
    }
    jw_close(w);
    uint64_t regs[CAP_NUM_REGS];
    for (unsigned i = 0; i < CAP_NUM_REGS; i++) regs[i] = cap_instance_reg(c, i);
    jw_key(w, "mem_size");
    jw_int(w, cap_instance_mem_size(c));
    jw_key(w, "regs");
    jw_u64_array(w, regs, CAP_NUM_REGS);
    jw_key(w, "pc");
    jw_u64(w, cap_instance_pc(c));
    jw_key(w, "gas_remaining");
    jw_u64(w, cap_instance_gas_remaining(c));
    return CAP_OK;
}

static void jw_slot_entries(jw_t *w, const cap_slot_entry_t *e, size_t n)
{
    jw_open(w, true);
    for (size_t i = 0; i < n; i++) {
        jw_open(w, false);
        jw_key(w, "slot");
        jw_int(w, e[i].slot);
        jw_key(w, "cap_hash");
        jw_hash(w, &e[i].cap_hash);
        jw_close(w);
    }
    jw_close(w);
}

static int from_image(const cap_t *c, jw_t *w)
{
    cap_image_desc_t d;
    memset(&d, 0, sizeof d);
    cap_image_view(c, &d);
    jw_key(w, "code");
    jw_hex(w, d.code, d.code_len);
    jw_key(w, "bitmask");
    jw_hex(w, d.bitmask, d.bitmask_len);
    jw_key(w, "jump_table");
    jw_u32_array(w, d.jump_table, d.jump_table_len);
    jw_key(w, "endpoints");
    jw_open(w, true);
    for (size_t i = 0; i < d.endpoints_len; i++) {
        const cap_endpoint_t *ep = &d.endpoints[i];
        jw_open(w, false);
        jw_key(w, "entry_pc");
        jw_u64(w, ep->entry_pc);
        jw_key(w, "stack_top");
        jw_u64(w, ep->stack_top);
        jw_key(w, "arg_cnode_slot");
        jw_int(w, ep->arg_cnode_slot);
        jw_key(w, "arg_cnode_size");
        jw_int(w, ep->arg_cnode_size);
        jw_key(w, "initial_regs");
        jw_u64_array(w, ep->initial_regs, CAP_NUM_REGS);
        jw_close(w);
    }
    jw_close(w);
    jw_key(w, "mappings");
    jw_open(w, true);
    for (size_t i = 0; i < d.mappings_len; i++) {
        const cap_mapping_t *m = &d.mappings[i];
        jw_open(w, false);
        jw_key(w, "start");
        jw_u64(w, m->start);
        jw_key(w, "size");
        jw_u64(w, m->size);
        jw_key(w, "source_path");
        jw_u32_array(w, m->source_path, CAP_MAX_SOURCE_DEPTH);
        jw_key(w, "source_path_len");
        jw_int(w, m->source_path_len);
        jw_close(w);
    }
    jw_close(w);
    jw_key(w, "pinned");
    jw_slot_entries(w, d.pinned, d.pinned_len);
    jw_key(w, "initial");
    jw_slot_entries(w, d.initial, d.initial_len);
    jw_key(w, "yield_marker_slot");
    if (d.has_yield_marker)
        jw_int(w, d.yield_marker_slot);
    else
        jw_null(w);
    return CAP_OK;
}

/* Print the cap into w (then flushed). */
static int write_cap(const cap_t *c, jw_t *w)
{
    if (!c || cap_kind(c) > CAP_KIND_TYPE) return CAP_EINVAL;
    int rc = check_settled(c);
    if (rc != CAP_OK) return rc;
    jw_open(w, false);
    jw_key(w, "kind");
    jw_string(w, cli_kind_name(cap_kind(c)));
    switch (cap_kind(c)) {
    case CAP_KIND_INSTANCE: rc = from_instance(c, w); break;
    case CAP_KIND_IMAGE: rc = from_image(c, w); break;
    case CAP_KIND_DATA: rc = from_data(c, w); break;
    case CAP_KIND_CNODE: rc = from_cnode(c, w); break;
    case CAP_KIND_TYPE: rc = from_type(c, w); break;
    }
    if (rc != CAP_OK) return rc;
    jw_close(w);
    jw_raw(w, "\n", 1);
    jw_flush(w);
    return w->err;
}

int capjson_write(const cap_t *c, FILE *f)
{
    jw_t *w = calloc(1, sizeof *w);
    if (!w) return CAP_ENOMEM;
    w->f = f;
    int rc = write_cap(c, w);
    free(w);
    return rc;
}

int capjson_dump(const cap_t *c, char **text)
{
    *text = NULL;
    jw_t *w = calloc(1, sizeof *w);
    if (!w) return CAP_ENOMEM;
    int rc = write_cap(c, w);
    if (rc == CAP_OK && !w->mem) rc = CAP_ENOMEM; /* never: the text is not empty */
    if (rc == CAP_OK)
        *text = w->mem;
    else
        free(w->mem);
    free(w);
    return rc;
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
    const capjson_pages_t *pages; /* the top-level "pages" list, read as records */
} jctx_t;

/* No snprintf in these: they run twice for every page of a Data cap. */
static void path_append(jctx_t *c, const char *text)
{
    size_t n = strlen(text), room = sizeof c->path - 1 - c->len;
    if (n > room) n = room;
    memcpy(c->path + c->len, text, n);
    c->len += n;
    c->path[c->len] = 0;
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
    char buf[32], *p = buf + sizeof buf;
    *--p = 0;
    *--p = ']';
    do *--p = (char)('0' + i % 10);
    while (i /= 10);
    *--p = '[';
    path_append(c, p);
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

/* --- Data pages: JSON element -> record -> cap ------------------------------------------ */

static bool rec_reserve(capjson_pages_t *p, size_t more)
{
    if (p->cap - p->len >= more) return true;
    size_t nc = p->cap ? p->cap : 4096;
    while (nc - p->len < more) {
        if (nc > SIZE_MAX / 2) return false;
        nc *= 2;
    }
    /* Large blocks are their own mappings: glibc's realloc moves them with
     * mremap, without a second copy being resident. */
    uint8_t *r = realloc(p->rec, nc);
    if (!r) return false;
    p->rec = r;
    p->cap = nc;
    return true;
}

/* One element of the page list -> a record (see capjson_pages_t). The checks
 * and messages are those a page always had; the ones that need the page size
 * or the cap (a Loaded page's length) wait for page_apply. */
static int page_read(jctx_t *c, capjson_pages_t *pages, const json_t *p)
{
    static const char *const empty_keys[] = {"state", NULL};
    static const char *const loaded_keys[] = {"state", "bytes", NULL};
    static const char *const missing_keys[] = {"state", "root", NULL};
    if (!json_is_object(p)) return jfail(c, CAP_EINVAL, "expected an object, got %s", json_type_name(p));
    const json_t *st = json_object_get(p, "state");
    const char *s = json_is_string(st) ? json_string_value(st) : NULL;
    if (!s || (strcmp(s, "empty") != 0 && strcmp(s, "loaded") != 0 && strcmp(s, "missing") != 0)) {
        path_key(c, "state");
        return jfail(c, CAP_EINVAL, "%s: expected \"empty\", \"loaded\" or \"missing\"",
                     st ? "bad page state" : "missing required field");
    }
    int rc;
    if (strcmp(s, "empty") == 0) {
        rc = check_object(c, p, empty_keys);
        if (rc != CAP_OK) return rc;
        if (!rec_reserve(pages, 1)) return jfail(c, CAP_ENOMEM, "out of memory");
        pages->rec[pages->len++] = CAP_PAGE_EMPTY;
    } else if (strcmp(s, "loaded") == 0) {
        uint8_t *b = NULL;
        size_t bn = 0;
        const json_t *bv;
        size_t o2;
        rc = check_object(c, p, loaded_keys);
        if (rc == CAP_OK) rc = field(c, p, "bytes", true, &bv, &o2);
        if (rc == CAP_OK) rc = as_bytes(c, bv, &b, &bn);
        if (rc != CAP_OK) return rc;
        if (bn > SIZE_MAX - 9 || !rec_reserve(pages, 9 + bn)) {
            free(b);
            return jfail(c, CAP_ENOMEM, "out of memory");
        }
        uint64_t len = bn;
        pages->rec[pages->len] = CAP_PAGE_LOADED;
        memcpy(pages->rec + pages->len + 1, &len, 8);
        memcpy(pages->rec + pages->len + 9, b, bn);
        pages->len += 9 + bn;
        free(b);
    } else {
        cap_hash_t root;
        rc = check_object(c, p, missing_keys);
        if (rc == CAP_OK) rc = get_hash(c, p, "root", true, &root);
        if (rc != CAP_OK) return rc;
        if (!rec_reserve(pages, 33)) return jfail(c, CAP_ENOMEM, "out of memory");
        pages->rec[pages->len] = CAP_PAGE_MISSING;
        memcpy(pages->rec + pages->len + 1, root.bytes, 32);
        pages->len += 33;
    }
    return CAP_OK;
}

int capjson_pages_add(capjson_pages_t *pages, const json_t *page)
{
    uint64_t i = pages->count++;
    if (pages->bad) return CAP_OK;
    jctx_t c; /* not memset: this runs for every page */
    c.len = 0;
    c.path[0] = 0;
    c.msg = pages->bad_msg;
    c.msg_len = sizeof pages->bad_msg;
    c.alloc = NULL;
    c.pages = NULL;
    path_key(&c, "pages");
    path_index(&c, (size_t)i);
    size_t mark = pages->len;
    int rc = page_read(&c, pages, page);
    if (rc == CAP_OK) return CAP_OK;
    pages->len = mark;
    if (rc == CAP_ENOMEM) return rc;
    pages->bad = true;
    pages->bad_rc = rc;
    pages->bad_index = i;
    return CAP_OK;
}

void capjson_pages_free(capjson_pages_t *pages)
{
    free(pages->rec);
    pages->rec = NULL;
    pages->len = pages->cap = 0;
}

/* Set page i of d from the record at *at (then moved past it), at path
 * "pages[i]". */
static int page_apply(jctx_t *c, cap_t *d, uint64_t i, const uint8_t *rec, size_t *at)
{
    const uint8_t *r = rec + *at;
    int rc;
    switch (r[0]) {
    case CAP_PAGE_EMPTY:
        *at += 1;
        rc = cap_data_set_page_empty(d, i);
        return rc == CAP_OK ? rc : jfail_lib(c, rc, NULL);
    case CAP_PAGE_LOADED: {
        uint64_t bn;
        memcpy(&bn, r + 1, 8);
        *at += 9 + (size_t)bn;
        cap_err_t err;
        memset(&err, 0, sizeof err);
        rc = cap_data_set_page(d, i, r + 9, (size_t)bn, &err);
        if (rc == CAP_OK) return rc;
        path_key(c, "bytes");
        if (rc == CAP_EPAGESIZE)
            return jfail(c, rc, "%s: expected %" PRIu64 " bytes, got %" PRIu64, cap_strerror(rc),
                         err.expected ? err.expected : cap_data_page_size(d), err.got ? err.got : bn);
        return jfail_lib(c, rc, NULL);
    }
    default: {
        cap_hash_t root;
        memcpy(root.bytes, r + 1, 32);
        *at += 33;
        rc = cap_data_set_page_missing(d, i, &root);
        return rc == CAP_OK ? rc : jfail_lib(c, rc, NULL);
    }
    }
}

static int to_data(jctx_t *c, const json_t *j, cap_t **out)
{
    static const char *const keys[] = {"kind", "page_size", "pages", NULL};
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
    size_t old, tree_n;
    uint64_t n = 0;
    rc = get_array(c, j, "pages", &arr, &tree_n, &old);
    /* An array here is always the placeholder of the streamed list: the
     * reader streams the top level's "pages" whenever it is an array. */
    const capjson_pages_t *pages = c->pages;
    if (rc == CAP_OK && arr && (!pages || arr != pages->placeholder))
        rc = jfail(c, CAP_EINVAL, "internal error: the page list was not streamed");
    if (rc == CAP_OK && arr) n = pages->count;
    if (rc == CAP_OK && n) {
        rc = cap_data_resize(d, n);
        if (rc != CAP_OK) rc = jfail_lib(c, rc, NULL);
    }
    size_t at = 0;
    for (uint64_t i = 0; rc == CAP_OK && i < n; i++) {
        if (pages->bad && i == pages->bad_index) {
            if (c->msg && c->msg_len) snprintf(c->msg, c->msg_len, "%s", pages->bad_msg);
            rc = pages->bad_rc;
            break;
        }
        size_t o = path_index(c, (size_t)i);
        rc = page_apply(c, d, i, pages->rec, &at);
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

int capjson_tree_to_cap(const json_t *j, const capjson_pages_t *pages, const cap_alloc_t *a,
                        cap_t **out, char *msg, size_t msg_len)
{
    jctx_t c;
    memset(&c, 0, sizeof c);
    c.msg = msg;
    c.msg_len = msg_len;
    c.alloc = a;
    c.pages = pages;
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

