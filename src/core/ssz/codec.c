/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* SSZ serialization primitives: little-endian fields, a bounded writer and
 * a strict reader. The reader treats every length and offset as hostile:
 * each check is written so that no sum of attacker-controlled values can
 * wrap, and the first failure (absolute offset + rule) is kept. */
#include "base.h"
#include "capstore/ssz.h"

void cap_ssz_put_u8(uint8_t *p, uint8_t v) { p[0] = v; }
void cap_ssz_put_u32(uint8_t *p, uint32_t v) { cap_store_le32(p, v); }
void cap_ssz_put_u64(uint8_t *p, uint64_t v) { cap_store_le64(p, v); }
uint32_t cap_ssz_get_u32(const uint8_t *p) { return cap_load_le32(p); }
uint64_t cap_ssz_get_u64(const uint8_t *p) { return cap_load_le64(p); }

/* Writer ------------------------------------------------------------------------------ */

void cap_ssz_writer_init(cap_ssz_writer_t *w, uint8_t *buf, size_t cap)
{
    w->buf = buf;
    w->cap = buf != NULL ? cap : 0;
    w->pos = 0;
    w->overflow = false;
}

void cap_ssz_write_bytes(cap_ssz_writer_t *w, const void *p, size_t n)
{
    if (!w->overflow && n <= w->cap - w->pos) {
        if (n > 0) cap_memcpy(w->buf + w->pos, p, n);
    } else {
        w->overflow = true;
    }
    /* pos keeps counting for a dry run; it saturates rather than wraps. */
    w->pos = n > SIZE_MAX - w->pos ? SIZE_MAX : w->pos + n;
}

void cap_ssz_write_u8(cap_ssz_writer_t *w, uint8_t v) { cap_ssz_write_bytes(w, &v, 1); }

void cap_ssz_write_u32(cap_ssz_writer_t *w, uint32_t v)
{
    uint8_t b[4];
    cap_store_le32(b, v);
    cap_ssz_write_bytes(w, b, 4);
}

void cap_ssz_write_u64(cap_ssz_writer_t *w, uint64_t v)
{
    uint8_t b[8];
    cap_store_le64(b, v);
    cap_ssz_write_bytes(w, b, 8);
}

size_t cap_ssz_write_offset_slot(cap_ssz_writer_t *w)
{
    size_t slot = w->pos;
    cap_ssz_write_u32(w, 0);
    return slot;
}

void cap_ssz_patch_offset(cap_ssz_writer_t *w, size_t slot, size_t base)
{
    /* An offset SSZ cannot express (negative or >= 2^32) makes the output
     * unusable, which the writer reports the only way it can: overflow. */
    if (base > w->pos || w->pos - base > UINT32_MAX) {
        w->overflow = true;
        return;
    }
    if (w->buf != NULL && slot <= w->cap && w->cap - slot >= 4)
        cap_store_le32(w->buf + slot, (uint32_t)(w->pos - base));
}

/* Reader ------------------------------------------------------------------------------ */

void cap_ssz_reader_init(cap_ssz_reader_t *r, const uint8_t *data, size_t len, cap_err_t *err)
{
    r->data = data;
    r->start = 0;
    r->end = data != NULL ? len : 0;
    r->pos = 0;
    r->err = err;
    r->failed = false;
    /* A fresh decode: the err's "first failure wins" starts over. */
    if (err != NULL) cap_memset(err, 0, sizeof *err);
}

int cap_ssz_reader_fail(cap_ssz_reader_t *r, size_t at, const char *rule)
{
    if (!r->failed) {
        r->failed = true;
        /* Sub-readers share err: whichever failed first keeps it. */
        if (r->err != NULL && r->err->code == CAP_OK) {
            r->err->code = CAP_EDECODE;
            r->err->what = rule;
            r->err->offset = at;
        }
    }
    return CAP_EDECODE;
}

int cap_ssz_reader_sub(cap_ssz_reader_t *r, cap_ssz_reader_t *sub, size_t abs_start, size_t abs_end)
{
    sub->data = r->data;
    sub->err = r->err;
    if (!r->failed && abs_start <= abs_end && abs_start >= r->start && abs_end <= r->end) {
        sub->start = sub->pos = abs_start;
        sub->end = abs_end;
        sub->failed = false;
        return CAP_OK;
    }
    /* A failed sub-reader is empty and failed, so careless use stays safe. */
    sub->start = sub->pos = sub->end = r->start;
    sub->failed = true;
    if (r->failed) return CAP_EDECODE;
    return cap_ssz_reader_fail(r, abs_start < r->end ? abs_start : r->end, "offset_out_of_bounds");
}

size_t cap_ssz_reader_remaining(const cap_ssz_reader_t *r)
{
    return r->failed ? 0 : r->end - r->pos;
}

/* The common bounds check: n more bytes at pos, else "truncated". */
static int reader_take(cap_ssz_reader_t *r, size_t n, const uint8_t **p)
{
    static const uint8_t empty[1];
    *p = empty;
    if (r->failed) return CAP_EDECODE;
    if (n > r->end - r->pos) return cap_ssz_reader_fail(r, r->pos, "truncated");
    if (r->data != NULL) *p = r->data + r->pos; /* data is NULL only for an empty input */
    r->pos += n;
    return CAP_OK;
}

int cap_ssz_read_u8(cap_ssz_reader_t *r, uint8_t *v)
{
    const uint8_t *p;
    *v = 0;
    int rc = reader_take(r, 1, &p);
    if (rc == CAP_OK) *v = p[0];
    return rc;
}

int cap_ssz_read_u32(cap_ssz_reader_t *r, uint32_t *v)
{
    const uint8_t *p;
    *v = 0;
    int rc = reader_take(r, 4, &p);
    if (rc == CAP_OK) *v = cap_load_le32(p);
    return rc;
}

int cap_ssz_read_u64(cap_ssz_reader_t *r, uint64_t *v)
{
    const uint8_t *p;
    *v = 0;
    int rc = reader_take(r, 8, &p);
    if (rc == CAP_OK) *v = cap_load_le64(p);
    return rc;
}

int cap_ssz_read_bytes(cap_ssz_reader_t *r, const uint8_t **p, size_t n)
{
    return reader_take(r, n, p);
}

int cap_ssz_reader_expect_end(cap_ssz_reader_t *r)
{
    if (r->failed) return CAP_EDECODE;
    if (r->pos != r->end) return cap_ssz_reader_fail(r, r->pos, "trailing_bytes");
    return CAP_OK;
}

/* Offsets ----------------------------------------------------------------------------- */

/* Where to report a bad offset: the absolute position it points at, or the
 * object's end when it points past it. */
static size_t offset_target(const cap_ssz_reader_t *r, uint32_t off)
{
    return off <= r->end - r->start ? r->start + off : r->end;
}

int cap_ssz_resolve_offsets(cap_ssz_reader_t *r, const uint32_t *offsets, size_t n,
                            size_t fixed_size, size_t (*parts)[2])
{
    if (r->failed) return CAP_EDECODE;
    size_t len = r->end - r->start;
    for (size_t i = 0; i < n; i++) {
        uint32_t off = offsets[i];
        if (i == 0 && off != fixed_size)
            return cap_ssz_reader_fail(r, offset_target(r, off), "first_offset_mismatch");
        if (off > len) return cap_ssz_reader_fail(r, r->end, "offset_out_of_bounds");
        if (i > 0 && off < offsets[i - 1])
            return cap_ssz_reader_fail(r, r->start + off, "offset_out_of_order");
    }
    if (parts != NULL) {
        for (size_t i = 0; i < n; i++) {
            parts[i][0] = r->start + offsets[i];
            parts[i][1] = i + 1 < n ? r->start + offsets[i + 1] : r->end;
        }
    }
    return CAP_OK;
}

int cap_ssz_list_fixed_count(cap_ssz_reader_t *r, size_t elem_size, uint64_t limit, size_t *count)
{
    *count = 0;
    if (elem_size == 0) return CAP_EINVAL;
    if (r->failed) return CAP_EDECODE;
    size_t len = r->end - r->start;
    size_t rem = len % elem_size;
    if (rem != 0) return cap_ssz_reader_fail(r, r->end - rem, "list_length_not_multiple");
    size_t n = len / elem_size;
    if ((uint64_t)n > limit) /* limit < n, so limit * elem_size <= len cannot wrap */
        return cap_ssz_reader_fail(r, r->start + (size_t)limit * elem_size, "list_too_long");
    *count = n;
    return CAP_OK;
}

int cap_ssz_list_var_count(cap_ssz_reader_t *r, uint64_t limit, size_t *count)
{
    *count = 0;
    if (r->failed) return CAP_EDECODE;
    size_t len = r->end - r->start;
    if (len == 0) return CAP_OK;
    if (len < 4) return cap_ssz_reader_fail(r, r->start, "truncated");
    const uint8_t *table = r->data + r->start;
    uint32_t first = cap_load_le32(table);
    if (first < 4 || first % 4 != 0) return cap_ssz_reader_fail(r, r->start, "first_offset_mismatch");
    if (first > len) return cap_ssz_reader_fail(r, r->start, "offset_out_of_bounds");
    size_t n = first / 4;
    if ((uint64_t)n > limit) return cap_ssz_reader_fail(r, r->start, "list_too_long");
    /* The table lies within [start, start + first) <= end. */
    uint32_t prev = first;
    for (size_t i = 1; i < n; i++) {
        uint32_t off = cap_load_le32(table + i * 4);
        if (off < prev) return cap_ssz_reader_fail(r, r->start + i * 4, "offset_out_of_order");
        if (off > len) return cap_ssz_reader_fail(r, r->start + i * 4, "offset_out_of_bounds");
        prev = off;
    }
    *count = n;
    return CAP_OK;
}

int cap_ssz_list_var_element(cap_ssz_reader_t *r, size_t count, size_t i, size_t *abs_start,
                             size_t *abs_end)
{
    *abs_start = *abs_end = r->start;
    if (i >= count) return CAP_EINVAL;
    if (r->failed) return CAP_EDECODE;
    size_t len = r->end - r->start;
    /* Re-checked here so a count that did not come from list_var_count
     * still cannot cause a read out of range. */
    if (count > len / 4) return cap_ssz_reader_fail(r, r->start, "offset_out_of_bounds");
    const uint8_t *table = r->data + r->start;
    uint32_t a = cap_load_le32(table + i * 4);
    uint32_t b = i + 1 < count ? cap_load_le32(table + (i + 1) * 4) : (uint32_t)0;
    size_t bend = i + 1 < count ? (size_t)b : len;
    if (a > len || bend > len) return cap_ssz_reader_fail(r, r->start + i * 4, "offset_out_of_bounds");
    if (a > bend) return cap_ssz_reader_fail(r, r->start + i * 4, "offset_out_of_order");
    *abs_start = r->start + a;
    *abs_end = r->start + bend;
    return CAP_OK;
}
