/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* inspect --json: the summary of a cap as a JSON object. Numbers beyond
 * 2^53 are written as decimal strings (as in docs/cap-json.md), so that
 * readers holding numbers as doubles never round them. */
#include "inspect_json.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define EXACT_MAX ((uint64_t)1 << 53)

/* A builder that remembers whether any step ran out of memory. */
typedef struct jb {
    bool ok;
} jb_t;

static json_t *u64(uint64_t v)
{
    if (v <= EXACT_MAX) return json_integer((json_int_t)v);
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return json_string(buf);
}

static json_t *hash(const cap_hash_t *h)
{
    char hex[65];
    cli_hex(hex, h->bytes, 32);
    return json_string(hex);
}

static json_t *target(const cap_target_t *t)
{
    if (t->kind == CAP_TARGET_HASH) return hash(&t->hash);
    return json_string(t->kind == CAP_TARGET_REF ? "(ref)" : "(none)");
}

static void put(jb_t *b, json_t *obj, const char *key, json_t *v)
{
    if (!v || json_object_set_new(obj, key, v) != 0) b->ok = false;
}

static void push(jb_t *b, json_t *arr, json_t *v)
{
    if (!v || json_array_append_new(arr, v) != 0) b->ok = false;
}

static void cnode(jb_t *b, const cap_t *c, json_t *o)
{
    size_t n = cap_cnode_count(c);
    put(b, o, "size_log", json_integer(cap_cnode_size_log(c)));
    put(b, o, "occupied", u64(n));
    json_t *slots = json_array();
    for (size_t i = 0; i < n && slots; i++) {
        uint32_t slot;
        cap_target_t t;
        if (cap_cnode_entry(c, i, &slot, &t) != CAP_OK) break;
        json_t *e = json_object();
        if (e) {
            put(b, e, "slot", json_integer(slot));
            put(b, e, "target", target(&t));
        }
        push(b, slots, e);
    }
    put(b, o, "slots", slots);
}

static const char *page_state(cap_page_state_t s)
{
    switch (s) {
    case CAP_PAGE_EMPTY: return "empty";
    case CAP_PAGE_LOADED: return "loaded";
    case CAP_PAGE_MISSING: return "missing";
    }
    return "?";
}

static void data(jb_t *b, const cap_t *c, json_t *o)
{
    uint32_t ps = cap_data_page_size(c);
    uint64_t n = cap_data_page_count(c);
    uint64_t counts[3] = {0, 0, 0};
    json_t *pages = json_array();
    for (uint64_t i = 0; i < n && pages; i++) {
        cap_page_state_t s = cap_data_page_state(c, i);
        if ((unsigned)s < 3) counts[s]++;
        cap_hash_t root;
        json_t *e = json_object();
        if (e) {
            put(b, e, "index", u64(i));
            put(b, e, "state", json_string(page_state(s)));
            put(b, e, "root", cap_data_page_root(c, i, &root) == CAP_OK ? hash(&root) : json_null());
        }
        push(b, pages, e);
    }
    put(b, o, "page_size", json_integer(ps));
    put(b, o, "page_count", u64(n));
    put(b, o, "loaded", u64(counts[CAP_PAGE_LOADED]));
    put(b, o, "empty", u64(counts[CAP_PAGE_EMPTY]));
    put(b, o, "missing", u64(counts[CAP_PAGE_MISSING]));
    put(b, o, "content_size", u64(n * ps));
    put(b, o, "pages", pages);
}

static void instance(jb_t *b, const cap_t *c, json_t *o)
{
    put(b, o, "image_hash_chain", hash(cap_instance_image_hash_chain(c)));
    put(b, o, "image_hash", hash(cap_instance_image_hash(c)));
    cap_target_t root = cap_instance_root_cnode(c);
    put(b, o, "root_cnode", target(&root));
    put(b, o, "mem_size", json_integer(cap_instance_mem_size(c)));
    put(b, o, "pc", u64(cap_instance_pc(c)));
    put(b, o, "gas_remaining", u64(cap_instance_gas_remaining(c)));
    json_t *regs = json_array();
    for (unsigned i = 0; i < CAP_NUM_REGS && regs; i++) push(b, regs, u64(cap_instance_reg(c, i)));
    put(b, o, "regs", regs);
    size_t n = cap_instance_overlay_count(c);
    uint64_t total = 0;
    json_t *ovs = json_array();
    for (size_t i = 0; i < n && ovs; i++) {
        uint32_t start;
        const uint8_t *bytes;
        size_t len;
        if (cap_instance_overlay(c, i, &start, &bytes, &len) != CAP_OK) break;
        total += len;
        json_t *e = json_object();
        if (e) {
            put(b, e, "start", json_integer(start));
            put(b, e, "bytes", u64(len));
        }
        push(b, ovs, e);
    }
    put(b, o, "overlay_bytes", u64(total));
    put(b, o, "rw_overlays", ovs);
}

static json_t *slot_list(jb_t *b, const cap_slot_entry_t *e, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n && a; i++) {
        json_t *x = json_object();
        if (x) {
            put(b, x, "slot", json_integer(e[i].slot));
            put(b, x, "cap_hash", hash(&e[i].cap_hash));
        }
        push(b, a, x);
    }
    return a;
}

static void image(jb_t *b, const cap_t *c, json_t *o)
{
    cap_image_desc_t d;
    memset(&d, 0, sizeof d);
    cap_image_view(c, &d);
    put(b, o, "code_bytes", u64(d.code_len));
    put(b, o, "bitmask_bytes", u64(d.bitmask_len));
    put(b, o, "jump_table_entries", u64(d.jump_table_len));
    put(b, o, "endpoints", u64(d.endpoints_len));
    put(b, o, "mappings", u64(d.mappings_len));
    put(b, o, "pinned", slot_list(b, d.pinned, d.pinned_len));
    put(b, o, "initial", slot_list(b, d.initial, d.initial_len));
    put(b, o, "yield_marker_slot", d.has_yield_marker ? json_integer(d.yield_marker_slot) : json_null());
}

json_t *inspect_json(const cap_t *c, const char *file, const char *hash_hex, size_t wire_len)
{
    jb_t b = {true};
    json_t *o = json_object();
    if (!o) return NULL;
    json_t *name = json_string(file);
    put(&b, o, "file", name ? name : json_string("(a file name that is not UTF-8)"));
    put(&b, o, "kind", json_string(cli_kind_name(cap_kind(c))));
    put(&b, o, "hash", json_string(hash_hex));
    put(&b, o, "wire_size", u64(wire_len));
    switch (cap_kind(c)) {
    case CAP_KIND_CNODE: cnode(&b, c, o); break;
    case CAP_KIND_DATA: data(&b, c, o); break;
    case CAP_KIND_INSTANCE: instance(&b, c, o); break;
    case CAP_KIND_IMAGE: image(&b, c, o); break;
    case CAP_KIND_TYPE: put(&b, o, "image_hash_chain", hash(cap_type_image_hash_chain(c))); break;
    }
    if (!b.ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}
