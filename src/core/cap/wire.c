/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Wire codec (cap-schema.md, "Wire form"): one selector byte, then the SSZ
 * serialization of the payload.
 *
 * Encoding runs one emitter twice: a dry run that sizes the output (and
 * finds Refs and lengths SSZ cannot express), then the real write into a
 * buffer known to be large enough.
 *
 * Decoding is strict and total. Each kind is checked completely on the raw
 * bytes before anything is allocated, so a rejection never depends on the
 * allocator, and allocation is bounded by the counts the input's length
 * allows. The cap is then built through the public constructors. */
#include "base.h"
#include "cap/cap_internal.h"

/* Rule names (err->what for CAP_EDECODE). Image rules take the reason that
 * cap_image_validate gives. */
static const char R_EMPTY[] = "empty_input";
static const char R_SELECTOR[] = "unknown_selector";
static const char R_TRUNCATED[] = "truncated";
static const char R_TRAILING[] = "trailing_bytes";
static const char R_OFF_BOUNDS[] = "offset_out_of_bounds";
static const char R_OFF_FIRST[] = "offset_not_at_fixed_end";
static const char R_OFF_ORDER[] = "offsets_out_of_order";
static const char R_LIST_LENGTH[] = "list_partial_element";
static const char R_LIST_LIMIT[] = "list_over_limit";
static const char R_SIZE_LOG[] = "cnode_size_log_over_16";
static const char R_SLOT_RANGE[] = "SlotOutOfRange";
static const char R_SLOT_ORDER[] = "cnode_slots_not_increasing";
static const char R_ZERO_TARGET[] = "zero_target";
static const char R_PAGE_SIZE[] = "page_size_invalid";
static const char R_PAGE_MISMATCH[] = "PageSizeMismatch";
static const char R_PAGE_SELECTOR[] = "page_selector_unknown";
static const char R_YIELD_SELECTOR[] = "yield_selector_unknown";
/* An Image rule broken, when cap_image_validate cannot be asked (no memory
 * for the arrays) or lets through what the schema forbids. */
static const char R_IMAGE[] = "ImageConvertFailed";

#define LIMIT_2P32 ((uint64_t)1 << 32)
#define CNODE_LIST_LIMIT 65536u

/* SSZ sizes of the fixed-size parts. */
#define HASH_SIZE 32u
#define INSTANCE_FIXED 224u
#define OVERLAY_FIXED 8u
#define IMAGE_FIXED 32u
#define IMAGE_FIELDS 8u
#define ENDPOINT_SIZE 125u
#define MAPPING_SIZE 49u
#define SLOT_ENTRY_SIZE 36u
#define CNODE_FIXED 5u
#define CNODE_ENTRY_SIZE 36u
#define DATA_FIXED 8u

static bool is_zero32(const uint8_t *p)
{
    uint8_t acc = 0;
    for (unsigned i = 0; i < 32; i++)
        acc |= p[i];
    return acc == 0;
}

/* ==================================================================================
 * Encoder
 * ================================================================================== */

/* A writer; `p == NULL` is a dry run that only counts. The real run writes
 * into a buffer the dry run sized, so there are no bounds checks here. */
typedef struct wout {
    uint8_t *p;
    size_t pos;
} wout_t;

static void put_bytes(wout_t *w, const void *src, size_t n)
{
    if (w->p && n)
        cap_memcpy(w->p + w->pos, src, n);
    w->pos += n;
}

static void put_u8(wout_t *w, uint8_t v)
{
    if (w->p)
        w->p[w->pos] = v;
    w->pos += 1;
}

static void put_u32(wout_t *w, uint32_t v)
{
    if (w->p)
        cap_store_le32(w->p + w->pos, v);
    w->pos += 4;
}

static void put_u64(wout_t *w, uint64_t v)
{
    if (w->p)
        cap_store_le64(w->p + w->pos, v);
    w->pos += 8;
}

/* An SSZ offset: must fit in 4 bytes. */
static int put_offset(wout_t *w, size_t v)
{
    if ((uint64_t)v > 0xffffffffu)
        return CAP_EINVAL;
    put_u32(w, (uint32_t)v);
    return CAP_OK;
}

/* Sizes add up in size_t; on a 64-bit host they cannot overflow before the
 * 4-byte offset check refuses them, but stay careful on 32-bit ones. */
static int add_size(size_t *acc, size_t n)
{
    if (*acc > (size_t)-1 - n)
        return CAP_EINVAL;
    *acc += n;
    return CAP_OK;
}

static int emit_type(const cap_t *c, wout_t *w)
{
    put_bytes(w, c->u.type_chain.bytes, HASH_SIZE);
    return CAP_OK;
}

static int emit_cnode(const cap_t *c, wout_t *w)
{
    const cap_cnode_body_t *b = &c->u.cnode;
    for (size_t i = 0; i < b->count; i++)
        if (b->entries[i].is_ref)
            return CAP_EUNSETTLED;
    put_u8(w, b->size_log);
    put_u32(w, CNODE_FIXED);
    if (!w->p) {
        w->pos += b->count * CNODE_ENTRY_SIZE;
        return CAP_OK;
    }
    for (size_t i = 0; i < b->count; i++) {
        put_u32(w, b->entries[i].slot);
        put_bytes(w, b->entries[i].u.hash.bytes, HASH_SIZE);
    }
    return CAP_OK;
}

static size_t page_wire_size(const cap_page_t *p, uint32_t page_size)
{
    if (!p)
        return 1;
    return p->state == CAP_PAGE_LOADED ? 1 + (size_t)page_size : 1 + HASH_SIZE;
}

static int emit_data(const cap_t *c, wout_t *w)
{
    const cap_data_body_t *b = &c->u.data;
    if ((uint64_t)b->page_count > SIZE_MAX / 4)
        return CAP_EINVAL;
    size_t n = (size_t)b->page_count;
    put_u32(w, b->page_size);
    put_u32(w, DATA_FIXED);
    /* Offset table: element i starts after the table and elements 0..i-1. */
    size_t off = n * 4;
    for (size_t i = 0; i < n; i++) {
        int rc = put_offset(w, off);
        if (rc)
            return rc;
        rc = add_size(&off, page_wire_size(b->pages[i], b->page_size));
        if (rc)
            return rc;
    }
    if (!w->p) {
        w->pos += off - n * 4;
        return CAP_OK;
    }
    for (size_t i = 0; i < n; i++) {
        const cap_page_t *p = b->pages[i];
        if (!p) {
            put_u8(w, CAP_PAGE_EMPTY);
        } else if (p->state == CAP_PAGE_LOADED) {
            put_u8(w, CAP_PAGE_LOADED);
            put_bytes(w, p->data, b->page_size);
        } else {
            put_u8(w, CAP_PAGE_MISSING);
            put_bytes(w, p->root.bytes, HASH_SIZE);
        }
    }
    return CAP_OK;
}

static int emit_instance(const cap_t *c, wout_t *w)
{
    const cap_instance_body_t *b = &c->u.instance;
    if (b->root_cnode.is_ref)
        return CAP_EUNSETTLED;
    put_bytes(w, b->image_hash_chain.bytes, HASH_SIZE);
    put_bytes(w, b->image_hash.bytes, HASH_SIZE);
    put_bytes(w, b->root_cnode.u.hash.bytes, HASH_SIZE);
    put_u32(w, INSTANCE_FIXED);
    put_u32(w, b->mem_size);
    for (unsigned i = 0; i < CAP_NUM_REGS; i++)
        put_u64(w, b->regs[i]);
    put_u64(w, b->pc);
    put_u64(w, b->gas_remaining);
    size_t n = b->overlay_count;
    if (n > SIZE_MAX / 4)
        return CAP_EINVAL;
    size_t off = n * 4;
    for (size_t i = 0; i < n; i++) {
        if ((uint64_t)b->overlays[i].len > LIMIT_2P32)
            return CAP_EINVAL;
        int rc = put_offset(w, off);
        if (rc)
            return rc;
        rc = add_size(&off, OVERLAY_FIXED);
        if (!rc)
            rc = add_size(&off, b->overlays[i].len);
        if (rc)
            return rc;
    }
    if (!w->p) {
        w->pos += off - n * 4;
        return CAP_OK;
    }
    for (size_t i = 0; i < n; i++) {
        put_u32(w, b->overlays[i].start);
        put_u32(w, OVERLAY_FIXED);
        put_bytes(w, b->overlays[i].bytes, b->overlays[i].len);
    }
    return CAP_OK;
}

/* Byte sizes of the 8 variable parts of an Image. */
static int image_part_sizes(const cap_image_desc_t *d, size_t sz[IMAGE_FIELDS])
{
    const size_t counts[IMAGE_FIELDS - 1] = {d->code_len,      d->bitmask_len,  d->jump_table_len,
                                             d->endpoints_len, d->mappings_len, d->pinned_len,
                                             d->initial_len};
    const size_t elem[IMAGE_FIELDS - 1] = {1, 1, 4, ENDPOINT_SIZE, MAPPING_SIZE, SLOT_ENTRY_SIZE,
                                           SLOT_ENTRY_SIZE};
    for (unsigned i = 0; i < IMAGE_FIELDS - 1; i++) {
        if ((uint64_t)counts[i] > LIMIT_2P32 || counts[i] > SIZE_MAX / elem[i])
            return CAP_EINVAL;
        sz[i] = counts[i] * elem[i];
    }
    sz[IMAGE_FIELDS - 1] = d->has_yield_marker ? 5 : 1;
    return CAP_OK;
}

static int emit_image(const cap_t *c, wout_t *w)
{
    cap_image_desc_t d;
    cap_image_view(c, &d);
    size_t sz[IMAGE_FIELDS];
    int rc = image_part_sizes(&d, sz);
    if (rc)
        return rc;
    size_t off = IMAGE_FIXED;
    for (unsigned i = 0; i < IMAGE_FIELDS; i++) {
        rc = put_offset(w, off);
        if (!rc)
            rc = add_size(&off, sz[i]);
        if (rc)
            return rc;
    }
    if (!w->p) {
        w->pos += off - IMAGE_FIXED;
        return CAP_OK;
    }
    put_bytes(w, d.code, d.code_len);
    put_bytes(w, d.bitmask, d.bitmask_len);
    for (size_t i = 0; i < d.jump_table_len; i++)
        put_u32(w, d.jump_table[i]);
    for (size_t i = 0; i < d.endpoints_len; i++) {
        const cap_endpoint_t *e = &d.endpoints[i];
        put_u64(w, e->entry_pc);
        put_u64(w, e->stack_top);
        put_u32(w, e->arg_cnode_slot);
        put_u8(w, e->arg_cnode_size);
        for (unsigned r = 0; r < CAP_NUM_REGS; r++)
            put_u64(w, e->initial_regs[r]);
    }
    for (size_t i = 0; i < d.mappings_len; i++) {
        const cap_mapping_t *m = &d.mappings[i];
        put_u64(w, m->start);
        put_u64(w, m->size);
        for (unsigned k = 0; k < CAP_MAX_SOURCE_DEPTH; k++)
            put_u32(w, m->source_path[k]);
        put_u8(w, m->source_path_len);
    }
    for (size_t i = 0; i < d.pinned_len; i++) {
        put_u32(w, d.pinned[i].slot);
        put_bytes(w, d.pinned[i].cap_hash.bytes, HASH_SIZE);
    }
    for (size_t i = 0; i < d.initial_len; i++) {
        put_u32(w, d.initial[i].slot);
        put_bytes(w, d.initial[i].cap_hash.bytes, HASH_SIZE);
    }
    if (d.has_yield_marker) {
        put_u8(w, 1);
        put_u32(w, d.yield_marker_slot);
    } else {
        put_u8(w, 0);
    }
    return CAP_OK;
}

static int emit(const cap_t *c, wout_t *w)
{
    put_u8(w, c->kind);
    switch ((cap_kind_t)c->kind) {
    case CAP_KIND_INSTANCE: return emit_instance(c, w);
    case CAP_KIND_IMAGE: return emit_image(c, w);
    case CAP_KIND_DATA: return emit_data(c, w);
    case CAP_KIND_CNODE: return emit_cnode(c, w);
    case CAP_KIND_TYPE: return emit_type(c, w);
    }
    return CAP_EINVAL;
}

int cap_wire_size(const cap_t *c, size_t *n)
{
    if (!c || !n)
        return CAP_EINVAL;
    wout_t w = {0, 0};
    int rc = emit(c, &w);
    if (rc)
        return rc;
    *n = w.pos;
    return CAP_OK;
}

int cap_wire_encode(const cap_t *c, uint8_t *buf, size_t cap, size_t *written)
{
    size_t n;
    if (!buf && cap)
        return CAP_EINVAL;
    int rc = cap_wire_size(c, &n);
    if (rc)
        return rc;
    if (cap < n)
        return CAP_EINVAL;
    wout_t w = {buf, 0};
    rc = emit(c, &w);
    if (rc)
        return rc;
    if (written)
        *written = w.pos;
    return CAP_OK;
}

int cap_wire_encode_alloc(const cap_t *c, const cap_alloc_t *a, uint8_t **buf, size_t *n)
{
    if (!a || !buf || !n)
        return CAP_EINVAL;
    size_t sz;
    int rc = cap_wire_size(c, &sz);
    if (rc)
        return rc;
    uint8_t *p = cap_mem_alloc(a, sz);
    if (!p)
        return CAP_ENOMEM;
    wout_t w = {p, 0};
    rc = emit(c, &w);
    if (rc) {
        cap_mem_free(a, p, sz);
        return rc;
    }
    *buf = p;
    *n = sz;
    return CAP_OK;
}

/* ==================================================================================
 * Decoder
 * ================================================================================== */

typedef struct win {
    const uint8_t *b; /* the whole input */
    size_t n;
    const cap_alloc_t *a;
    cap_err_t *err;
} win_t;

static int bad(win_t *d, size_t at, const char *rule)
{
    if (d->err) {
        d->err->code = CAP_EDECODE;
        d->err->what = rule;
        d->err->offset = at;
    }
    return CAP_EDECODE;
}

static uint32_t ld32(const win_t *d, size_t at) { return cap_load_le32(d->b + at); }
static uint64_t ld64(const win_t *d, size_t at) { return cap_load_le64(d->b + at); }

/* A fixed part of the given field sizes at [s, e): where the first field
 * that does not fit starts, or 0 when all fit (s is never 0: the selector
 * byte comes first). */
static size_t cut_field(size_t s, size_t e, const uint8_t *fields, size_t nf)
{
    size_t at = s;
    for (size_t i = 0; i < nf; i++) {
        if (e - at < fields[i])
            return at;
        at += fields[i];
    }
    return 0;
}

/* The offsets of a container at [s, e) whose fixed part is `fixed` bytes:
 * k offsets at absolute positions at[0..k-1]. On success part i is
 * [bounds[i], bounds[i+1]) (bounds[k] = e). */
static int container_offsets(win_t *d, size_t s, size_t e, const size_t *at, size_t k, size_t fixed,
                             size_t *bounds)
{
    size_t len = e - s, prev = fixed;
    for (size_t i = 0; i < k; i++) {
        uint32_t o = ld32(d, at[i]);
        if (o > len)
            return bad(d, at[i], R_OFF_BOUNDS);
        if (i == 0 && o != fixed)
            return bad(d, at[i], R_OFF_FIRST);
        if (o < prev)
            return bad(d, at[i], R_OFF_ORDER);
        bounds[i] = s + o;
        prev = o;
    }
    bounds[k] = e;
    return CAP_OK;
}

/* A List of variable-size elements at [s, e): check its offset table
 * (first offset = the table's size, non-decreasing, within range). */
static int var_list(win_t *d, size_t s, size_t e, uint64_t limit, size_t *count)
{
    size_t len = e - s;
    *count = 0;
    if (len == 0)
        return CAP_OK;
    if (len < 4)
        return bad(d, s, R_TRUNCATED);
    uint32_t first = ld32(d, s);
    if (first > len)
        return bad(d, s, R_OFF_BOUNDS);
    if (first == 0 || first % 4)
        return bad(d, s, R_OFF_FIRST);
    size_t cnt = first / 4;
    if ((uint64_t)cnt > limit)
        return bad(d, s, R_LIST_LIMIT);
    uint32_t prev = first;
    for (size_t i = 1; i < cnt; i++) {
        uint32_t o = ld32(d, s + 4 * i);
        if (o > len)
            return bad(d, s + 4 * i, R_OFF_BOUNDS);
        if (o < prev)
            return bad(d, s + 4 * i, R_OFF_ORDER);
        prev = o;
    }
    *count = cnt;
    return CAP_OK;
}

/* Element i of a checked variable-size list at [s, e) with cnt elements. */
static void var_elem(const win_t *d, size_t s, size_t e, size_t cnt, size_t i, size_t *es, size_t *ee)
{
    *es = s + ld32(d, s + 4 * i);
    *ee = i + 1 < cnt ? s + ld32(d, s + 4 * (i + 1)) : e;
}

/* A List of fixed-size elements at [s, e). */
static int fixed_list(win_t *d, size_t s, size_t e, size_t elem, uint64_t limit, size_t *count)
{
    size_t len = e - s;
    if (len % elem)
        return bad(d, s + len / elem * elem, R_LIST_LENGTH);
    if ((uint64_t)(len / elem) > limit)
        return bad(d, s + (size_t)limit * elem, R_LIST_LIMIT);
    *count = len / elem;
    return CAP_OK;
}

/* A decoder's last step: hand out the cap it built, or release it when a
 * setter failed (rc). */
static int built(cap_t *c, int rc, cap_t **out)
{
    if (rc) {
        cap_release(c);
        return rc;
    }
    *out = c;
    return CAP_OK;
}

/* Type ---------------------------------------------------------------------------------- */

static int dec_type(win_t *d, cap_t **out)
{
    if (d->n - 1 < HASH_SIZE)
        return bad(d, 1, R_TRUNCATED);
    if (d->n - 1 > HASH_SIZE)
        return bad(d, 1 + HASH_SIZE, R_TRAILING);
    cap_hash_t h;
    cap_memcpy(h.bytes, d->b + 1, HASH_SIZE);
    return cap_type_new(out, d->a, &h);
}

/* CNode --------------------------------------------------------------------------------- */

static int dec_cnode(win_t *d, cap_t **out)
{
    const size_t s = 1, e = d->n;
    static const uint8_t fields[] = {1, 4};
    size_t cut = cut_field(s, e, fields, 2);
    if (cut)
        return bad(d, cut, R_TRUNCATED);
    uint8_t size_log = d->b[s];
    if (size_log > CAP_CNODE_MAX_SIZE_LOG)
        return bad(d, s, R_SIZE_LOG);
    size_t at = s + 1, bounds[2];
    int rc = container_offsets(d, s, e, &at, 1, CNODE_FIXED, bounds);
    if (rc)
        return rc;
    size_t ls = bounds[0], cnt;
    rc = fixed_list(d, ls, e, CNODE_ENTRY_SIZE, CNODE_LIST_LIMIT, &cnt);
    if (rc)
        return rc;
    const uint64_t slots = (uint64_t)1 << size_log;
    for (size_t i = 0; i < cnt; i++) {
        size_t p = ls + i * CNODE_ENTRY_SIZE;
        uint32_t slot = ld32(d, p);
        if (slot >= slots)
            return bad(d, p, R_SLOT_RANGE);
        if (i && slot <= ld32(d, p - CNODE_ENTRY_SIZE))
            return bad(d, p, R_SLOT_ORDER);
        if (is_zero32(d->b + p + 4))
            return bad(d, p + 4, R_ZERO_TARGET);
    }
    cap_t *c;
    rc = cap_cnode_new(&c, d->a, size_log);
    if (rc)
        return rc;
    for (size_t i = 0; i < cnt && !rc; i++) {
        size_t p = ls + i * CNODE_ENTRY_SIZE;
        cap_target_t t;
        t.kind = CAP_TARGET_HASH;
        t.ref = 0;
        cap_memcpy(t.hash.bytes, d->b + p + 4, HASH_SIZE);
        rc = cap_cnode_set(c, ld32(d, p), &t);
    }
    return built(c, rc, out);
}

/* Data ---------------------------------------------------------------------------------- */

static int dec_data(win_t *d, cap_t **out)
{
    const size_t s = 1, e = d->n;
    static const uint8_t fields[] = {4, 4};
    size_t cut = cut_field(s, e, fields, 2);
    if (cut)
        return bad(d, cut, R_TRUNCATED);
    uint32_t ps = ld32(d, s);
    if (ps < CAP_PAGE_SIZE_MIN || ps > CAP_PAGE_SIZE_MAX || (ps & (ps - 1)))
        return bad(d, s, R_PAGE_SIZE);
    size_t at = s + 4, bounds[2];
    int rc = container_offsets(d, s, e, &at, 1, DATA_FIXED, bounds);
    if (rc)
        return rc;
    size_t ls = bounds[0], cnt;
    rc = var_list(d, ls, e, LIMIT_2P32, &cnt);
    if (rc)
        return rc;
    for (size_t i = 0; i < cnt; i++) {
        size_t es, ee;
        var_elem(d, ls, e, cnt, i, &es, &ee);
        if (es == ee)
            return bad(d, es, R_TRUNCATED);
        size_t body = ee - es - 1;
        switch (d->b[es]) {
        case CAP_PAGE_EMPTY:
            if (body)
                return bad(d, es + 1, R_TRAILING);
            break;
        case CAP_PAGE_LOADED:
            if (body != ps)
                return bad(d, es + 1, R_PAGE_MISMATCH);
            break;
        case CAP_PAGE_MISSING:
            if (body < HASH_SIZE)
                return bad(d, es + 1, R_TRUNCATED);
            if (body > HASH_SIZE)
                return bad(d, es + 1 + HASH_SIZE, R_TRAILING);
            break;
        default:
            return bad(d, es, R_PAGE_SELECTOR);
        }
    }
    cap_t *c;
    rc = cap_data_new(&c, d->a, ps);
    if (rc)
        return rc;
    if (cnt)
        rc = cap_data_resize(c, cnt);
    for (size_t i = 0; i < cnt && !rc; i++) {
        size_t es, ee;
        var_elem(d, ls, e, cnt, i, &es, &ee);
        if (d->b[es] == CAP_PAGE_LOADED) {
            rc = cap_data_set_page(c, i, d->b + es + 1, ps, 0);
        } else if (d->b[es] == CAP_PAGE_MISSING) {
            cap_hash_t h;
            cap_memcpy(h.bytes, d->b + es + 1, HASH_SIZE);
            rc = cap_data_set_page_missing(c, i, &h);
        }
    }
    return built(c, rc, out);
}

/* Instance ------------------------------------------------------------------------------ */

static int dec_instance(win_t *d, cap_t **out)
{
    const size_t s = 1, e = d->n;
    static const uint8_t fields[] = {32, 32, 32, 4, 4, 8 * CAP_NUM_REGS, 8, 8};
    size_t cut = cut_field(s, e, fields, sizeof fields);
    if (cut)
        return bad(d, cut, R_TRUNCATED);
    const size_t f_chain = s, f_image = s + 32, f_root = s + 64, f_off = s + 96, f_mem = s + 100,
                 f_regs = s + 104, f_pc = s + 208, f_gas = s + 216;
    if (is_zero32(d->b + f_root))
        return bad(d, f_root, R_ZERO_TARGET);
    size_t bounds[2];
    int rc = container_offsets(d, s, e, &f_off, 1, INSTANCE_FIXED, bounds);
    if (rc)
        return rc;
    size_t ls = bounds[0], cnt;
    rc = var_list(d, ls, e, LIMIT_2P32, &cnt);
    if (rc)
        return rc;
    for (size_t i = 0; i < cnt; i++) {
        size_t es, ee, eb[2];
        var_elem(d, ls, e, cnt, i, &es, &ee);
        static const uint8_t ov_fields[] = {4, 4};
        cut = cut_field(es, ee, ov_fields, 2);
        if (cut)
            return bad(d, cut, R_TRUNCATED);
        size_t inner = es + 4;
        rc = container_offsets(d, es, ee, &inner, 1, OVERLAY_FIXED, eb);
        if (rc)
            return rc;
        if ((uint64_t)(ee - eb[0]) > LIMIT_2P32)
            return bad(d, eb[0] + (size_t)LIMIT_2P32, R_LIST_LIMIT);
    }
    cap_target_t root;
    root.kind = CAP_TARGET_HASH;
    root.ref = 0;
    cap_memcpy(root.hash.bytes, d->b + f_root, HASH_SIZE);
    cap_t *c;
    rc = cap_instance_new(&c, d->a, &root);
    if (rc)
        return rc;
    cap_hash_t h;
    cap_memcpy(h.bytes, d->b + f_chain, HASH_SIZE);
    rc = cap_instance_set_image_hash_chain(c, &h);
    cap_memcpy(h.bytes, d->b + f_image, HASH_SIZE);
    if (!rc)
        rc = cap_instance_set_image_hash(c, &h);
    if (!rc)
        rc = cap_instance_set_mem_size(c, ld32(d, f_mem));
    for (unsigned r = 0; r < CAP_NUM_REGS && !rc; r++)
        rc = cap_instance_set_reg(c, r, ld64(d, f_regs + 8 * r));
    if (!rc)
        rc = cap_instance_set_pc(c, ld64(d, f_pc));
    if (!rc)
        rc = cap_instance_set_gas_remaining(c, ld64(d, f_gas));
    for (size_t i = 0; i < cnt && !rc; i++) {
        size_t es, ee;
        var_elem(d, ls, e, cnt, i, &es, &ee);
        rc = cap_instance_add_overlay(c, ld32(d, es), d->b + es + OVERLAY_FIXED,
                                      ee - es - OVERLAY_FIXED);
    }
    return built(c, rc, out);
}

/* Image --------------------------------------------------------------------------------- */

typedef struct image_parts {
    size_t at[IMAGE_FIELDS + 1]; /* absolute start of each part; at[8] = end */
    size_t count[IMAGE_FIELDS - 1];
} image_parts_t;

enum { IP_CODE, IP_BITMASK, IP_JUMP, IP_ENDPOINTS, IP_MAPPINGS, IP_PINNED, IP_INITIAL, IP_YIELD };

/* A pinned/initial list at [at, at + n*36): the first entry out of order or
 * with a zero cap_hash, or 0. */
static size_t slot_entries_violation(const win_t *d, size_t at, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t p = at + i * SLOT_ENTRY_SIZE;
        if (i && ld32(d, p) <= ld32(d, p - SLOT_ENTRY_SIZE))
            return p;
        if (is_zero32(d->b + p + 4))
            return p + 4;
    }
    return 0;
}

/* Where an Image rule is broken in the input, or 0; read from the raw bytes,
 * so it needs no memory. The rules are scanned in the order
 * cap_image_validate checks them, so the offset found belongs to the reason
 * it names. */
static size_t image_violation_at(const win_t *d, const image_parts_t *ip)
{
    size_t at, code_len = ip->count[IP_CODE];
    if (ip->count[IP_ENDPOINTS] > CAP_MAX_ENDPOINTS)
        return ip->at[IP_ENDPOINTS] + CAP_MAX_ENDPOINTS * ENDPOINT_SIZE;
    for (size_t i = 0; i < ip->count[IP_MAPPINGS]; i++) {
        size_t p = ip->at[IP_MAPPINGS] + i * MAPPING_SIZE;
        uint8_t len = d->b[p + 48];
        if (len > CAP_MAX_SOURCE_DEPTH)
            return p + 48;
        for (unsigned k = len; k < CAP_MAX_SOURCE_DEPTH; k++)
            if (ld32(d, p + 16 + 4 * k))
                return p + 16 + 4 * k;
    }
    if ((at = slot_entries_violation(d, ip->at[IP_PINNED], ip->count[IP_PINNED])) != 0)
        return at;
    if ((at = slot_entries_violation(d, ip->at[IP_INITIAL], ip->count[IP_INITIAL])) != 0)
        return at;
    if (ip->count[IP_BITMASK] != code_len / 8 + (code_len % 8 != 0))
        return ip->at[IP_BITMASK];
    for (size_t i = 0; i < ip->count[IP_JUMP]; i++)
        if (ld32(d, ip->at[IP_JUMP] + 4 * i) >= code_len)
            return ip->at[IP_JUMP] + 4 * i;
    return 0;
}

static int dec_image(win_t *d, cap_t **out)
{
    const size_t s = 1, e = d->n;
    if (e - s < IMAGE_FIXED)
        return bad(d, s + (e - s) / 4 * 4, R_TRUNCATED);
    image_parts_t ip;
    size_t offs[IMAGE_FIELDS];
    for (unsigned i = 0; i < IMAGE_FIELDS; i++)
        offs[i] = s + 4 * i;
    int rc = container_offsets(d, s, e, offs, IMAGE_FIELDS, IMAGE_FIXED, ip.at);
    if (rc)
        return rc;
    static const size_t elem[IMAGE_FIELDS - 1] = {1, 1, 4, ENDPOINT_SIZE, MAPPING_SIZE,
                                                  SLOT_ENTRY_SIZE, SLOT_ENTRY_SIZE};
    for (unsigned i = 0; i < IMAGE_FIELDS - 1; i++) {
        rc = fixed_list(d, ip.at[i], ip.at[i + 1], elem[i], LIMIT_2P32, &ip.count[i]);
        if (rc)
            return rc;
    }
    /* yield_marker_slot: Union[None, uint32]. */
    size_t ys = ip.at[IP_YIELD], ylen = e - ys;
    bool has_yield = false;
    if (ylen == 0)
        return bad(d, ys, R_TRUNCATED);
    if (d->b[ys] == 0) {
        if (ylen != 1)
            return bad(d, ys + 1, R_TRAILING);
    } else if (d->b[ys] == 1) {
        if (ylen < 5)
            return bad(d, ys + 1, R_TRUNCATED);
        if (ylen > 5)
            return bad(d, ys + 5, R_TRAILING);
        has_yield = true;
    } else {
        return bad(d, ys, R_YIELD_SELECTOR);
    }

    /* The arrays the description needs, in one block (each element size is a
     * multiple of the next array's alignment, so they pack in this order). */
    size_t n_ep = ip.count[IP_ENDPOINTS], n_map = ip.count[IP_MAPPINGS], n_pin = ip.count[IP_PINNED],
           n_ini = ip.count[IP_INITIAL], n_jump = ip.count[IP_JUMP];
    _Static_assert(sizeof(cap_endpoint_t) % _Alignof(cap_mapping_t) == 0, "packing");
    _Static_assert(sizeof(cap_mapping_t) % _Alignof(cap_slot_entry_t) == 0, "packing");
    _Static_assert(sizeof(cap_slot_entry_t) % _Alignof(uint32_t) == 0, "packing");
    /* Each count is at most (input length / element wire size) and every C
     * element is at most 1.1x its wire size, so these cannot overflow. */
    size_t sz_ep = n_ep * sizeof(cap_endpoint_t), sz_map = n_map * sizeof(cap_mapping_t),
           sz_pin = n_pin * sizeof(cap_slot_entry_t), sz_ini = n_ini * sizeof(cap_slot_entry_t),
           sz_jump = n_jump * sizeof(uint32_t);
    size_t total = sz_ep + sz_map + sz_pin + sz_ini + sz_jump;
    /* An Image rule broken: found without memory; the validator names it
     * below when the arrays can be had. */
    size_t where = image_violation_at(d, &ip);
    uint8_t *block = 0;
    if (total) {
        block = cap_mem_alloc(d->a, total);
        if (!block)
            return where ? bad(d, where, R_IMAGE) : CAP_ENOMEM;
    }
    /* (No arithmetic on a NULL block: an empty array stays NULL.) */
    cap_endpoint_t *ep = n_ep ? (cap_endpoint_t *)(void *)block : 0;
    cap_mapping_t *map = n_map ? (cap_mapping_t *)(void *)(block + sz_ep) : 0;
    cap_slot_entry_t *pin = n_pin ? (cap_slot_entry_t *)(void *)(block + sz_ep + sz_map) : 0;
    cap_slot_entry_t *ini =
        n_ini ? (cap_slot_entry_t *)(void *)(block + sz_ep + sz_map + sz_pin) : 0;
    uint32_t *jump = n_jump ? (uint32_t *)(void *)(block + sz_ep + sz_map + sz_pin + sz_ini) : 0;

    for (size_t i = 0; i < n_jump; i++)
        jump[i] = ld32(d, ip.at[IP_JUMP] + 4 * i);
    for (size_t i = 0; i < n_ep; i++) {
        size_t p = ip.at[IP_ENDPOINTS] + i * ENDPOINT_SIZE;
        cap_memset(&ep[i], 0, sizeof ep[i]);
        ep[i].entry_pc = ld64(d, p);
        ep[i].stack_top = ld64(d, p + 8);
        ep[i].arg_cnode_slot = ld32(d, p + 16);
        ep[i].arg_cnode_size = d->b[p + 20];
        for (unsigned r = 0; r < CAP_NUM_REGS; r++)
            ep[i].initial_regs[r] = ld64(d, p + 21 + 8 * r);
    }
    for (size_t i = 0; i < n_map; i++) {
        size_t p = ip.at[IP_MAPPINGS] + i * MAPPING_SIZE;
        cap_memset(&map[i], 0, sizeof map[i]);
        map[i].start = ld64(d, p);
        map[i].size = ld64(d, p + 8);
        for (unsigned k = 0; k < CAP_MAX_SOURCE_DEPTH; k++)
            map[i].source_path[k] = ld32(d, p + 16 + 4 * k);
        map[i].source_path_len = d->b[p + 48];
    }
    for (size_t i = 0; i < n_pin; i++) {
        size_t p = ip.at[IP_PINNED] + i * SLOT_ENTRY_SIZE;
        pin[i].slot = ld32(d, p);
        cap_memcpy(pin[i].cap_hash.bytes, d->b + p + 4, HASH_SIZE);
    }
    for (size_t i = 0; i < n_ini; i++) {
        size_t p = ip.at[IP_INITIAL] + i * SLOT_ENTRY_SIZE;
        ini[i].slot = ld32(d, p);
        cap_memcpy(ini[i].cap_hash.bytes, d->b + p + 4, HASH_SIZE);
    }

    cap_image_desc_t dd;
    cap_memset(&dd, 0, sizeof dd);
    dd.code = d->b + ip.at[IP_CODE];
    dd.code_len = ip.count[IP_CODE];
    dd.bitmask = d->b + ip.at[IP_BITMASK];
    dd.bitmask_len = ip.count[IP_BITMASK];
    dd.jump_table = jump;
    dd.jump_table_len = n_jump;
    dd.endpoints = ep;
    dd.endpoints_len = n_ep;
    dd.mappings = map;
    dd.mappings_len = n_map;
    dd.pinned = pin;
    dd.pinned_len = n_pin;
    dd.initial = ini;
    dd.initial_len = n_ini;
    dd.has_yield_marker = has_yield;
    dd.yield_marker_slot = has_yield ? ld32(d, ys + 1) : 0;

    /* The validator names the reason; the scan above finds where it is. */
    cap_err_t ierr;
    cap_memset(&ierr, 0, sizeof ierr);
    rc = cap_image_validate(&dd, &ierr);
    if (rc == CAP_EIMAGE || (rc == CAP_OK && where)) {
        const char *why = rc == CAP_EIMAGE && ierr.what ? ierr.what : R_IMAGE;
        rc = bad(d, where ? where : s, why);
    } else if (rc == CAP_OK) {
        rc = cap_image_new(out, d->a, &dd, &ierr);
        if (rc == CAP_EIMAGE)
            rc = bad(d, s, ierr.what ? ierr.what : R_IMAGE);
    }
    cap_mem_free(d->a, block, total);
    return rc;
}

int cap_wire_decode(const uint8_t *b, size_t n, const cap_alloc_t *a, cap_t **out, cap_err_t *err)
{
    if (err)
        cap_memset(err, 0, sizeof *err);
    if (!out || !a || (!b && n)) {
        if (err)
            err->code = CAP_EINVAL;
        return CAP_EINVAL;
    }
    win_t d = {b, n, a, err};
    if (n == 0)
        return bad(&d, 0, R_EMPTY);
    cap_t *c = 0;
    int rc;
    switch (b[0]) {
    case CAP_KIND_INSTANCE: rc = dec_instance(&d, &c); break;
    case CAP_KIND_IMAGE: rc = dec_image(&d, &c); break;
    case CAP_KIND_DATA: rc = dec_data(&d, &c); break;
    case CAP_KIND_CNODE: rc = dec_cnode(&d, &c); break;
    case CAP_KIND_TYPE: rc = dec_type(&d, &c); break;
    default: return bad(&d, 0, R_SELECTOR);
    }
    if (rc) {
        if (err && rc != CAP_EDECODE) {
            cap_memset(err, 0, sizeof *err);
            err->code = rc;
        }
        return rc;
    }
    *out = c;
    return CAP_OK;
}
