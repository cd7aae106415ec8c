/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Error texts and message formatting (no libc: a tiny formatter). */
#include "base.h"
#include "capstore/common.h"

const char *cap_strerror(int code)
{
    switch (code) {
    case CAP_OK: return "success";
    case CAP_ENOMEM: return "out of memory";
    case CAP_EINVAL: return "invalid argument";
    case CAP_EBLOBMISSING: return "blob not found for hash";
    case CAP_EINSTANCEMISSING: return "instance not found for ref";
    case CAP_EIMAGE: return "image conversion failed";
    case CAP_EPAGESIZE: return "paged data: page length mismatch";
    case CAP_ESLOTRANGE: return "cnode slot index out of range";
    case CAP_EBUSY: return "cap is shared or frozen (make_mut first)";
    case CAP_EUNSETTLED: return "cap holds an unsettled Ref (settle first)";
    case CAP_EDECODE: return "malformed wire bytes";
    case CAP_EMISMATCH: return "hash does not match the content";
    case CAP_ECYCLE: return "cycle of Refs found during settle";
    case CAP_EIDSPACE: return "instance id space exhausted";
    case CAP_EBACKEND: return "backend failure";
    case CAP_ENOTFOUND: return "not found";
    default: return "unknown error";
    }
}

typedef struct fmt {
    char *buf;
    size_t cap;
    size_t len;
} fmt_t;

static void fmt_str(fmt_t *f, const char *s)
{
    for (; *s; s++, f->len++)
        if (f->len + 1 < f->cap) f->buf[f->len] = *s;
}

static void fmt_u64(fmt_t *f, uint64_t v)
{
    char tmp[21];
    int i = 20;
    tmp[i] = 0;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    fmt_str(f, tmp + i);
}

static void fmt_hex(fmt_t *f, const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char two[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        two[0] = digits[b[i] >> 4];
        two[1] = digits[b[i] & 15];
        fmt_str(f, two);
    }
}

int cap_err_set(cap_err_t *e, int code, const char *what)
{
    if (e) {
        cap_memset(e, 0, sizeof *e);
        e->code = code;
        e->what = what;
    }
    return code;
}

void cap_err_set_hash(cap_err_t *e, const cap_hash_t *h)
{
    if (!e || !h) return;
    e->hash = *h;
    e->has_hash = true;
}

/* Appends within detail[]; the formatter's length past the end is dropped. */
static fmt_t detail_fmt(cap_err_t *e)
{
    size_t len = 0;
    while (len < CAP_ERR_DETAIL_SIZE - 1 && e->detail[len]) len++;
    fmt_t f = {e->detail, CAP_ERR_DETAIL_SIZE, len};
    return f;
}

static void detail_end(cap_err_t *e, const fmt_t *f)
{
    e->detail[f->len < CAP_ERR_DETAIL_SIZE ? f->len : CAP_ERR_DETAIL_SIZE - 1] = 0;
}

void cap_err_add_detail(cap_err_t *e, const char *text)
{
    if (!e || !text) return;
    fmt_t f = detail_fmt(e);
    fmt_str(&f, text);
    detail_end(e, &f);
}

void cap_err_add_detail_u64(cap_err_t *e, uint64_t v)
{
    if (!e) return;
    fmt_t f = detail_fmt(e);
    fmt_u64(&f, v);
    detail_end(e, &f);
}

size_t cap_err_format(const cap_err_t *e, char *buf, size_t n)
{
    if (!buf) n = 0;
    fmt_t f = {buf, n, 0};
    if (!e) {
        fmt_str(&f, "no error detail");
        if (n) buf[f.len < n ? f.len : n - 1] = 0;
        return f.len;
    }
    fmt_str(&f, cap_strerror(e->code));
    bool what_done = false;
    switch (e->code) {
    case CAP_EINSTANCEMISSING:
        fmt_str(&f, " ");
        fmt_u64(&f, e->id);
        break;
    case CAP_EPAGESIZE:
        fmt_str(&f, " (expected=");
        fmt_u64(&f, e->expected);
        fmt_str(&f, ", got=");
        fmt_u64(&f, e->got);
        fmt_str(&f, ")");
        break;
    case CAP_EDECODE:
        fmt_str(&f, ": ");
        fmt_str(&f, e->what ? e->what : "rejected");
        fmt_str(&f, " at byte ");
        fmt_u64(&f, e->offset);
        what_done = true;
        break;
    default:
        break;
    }
    if (!what_done && e->what) {
        fmt_str(&f, ": ");
        fmt_str(&f, e->what);
    }
    /* detail[] is filled by the library, but a caller's struct may not be:
     * read at most its size. */
    if (e->detail[0]) {
        char tmp[CAP_ERR_DETAIL_SIZE];
        size_t i = 0;
        for (; i < CAP_ERR_DETAIL_SIZE - 1 && e->detail[i]; i++) tmp[i] = e->detail[i];
        tmp[i] = 0;
        fmt_str(&f, ": ");
        fmt_str(&f, tmp);
    }
    if (e->has_hash) {
        fmt_str(&f, " (hash ");
        fmt_hex(&f, e->hash.bytes, sizeof e->hash.bytes);
        fmt_str(&f, ")");
    }
    if (n) buf[f.len < n ? f.len : n - 1] = 0;
    return f.len;
}
