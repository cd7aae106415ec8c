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

size_t cap_err_format(const cap_err_t *e, char *buf, size_t n)
{
    fmt_t f = {buf, n, 0};
    fmt_str(&f, cap_strerror(e->code));
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
        e = 0;
        break;
    default:
        break;
    }
    if (e && e->what) {
        fmt_str(&f, ": ");
        fmt_str(&f, e->what);
    }
    if (n) buf[f.len < n ? f.len : n - 1] = 0;
    return f.len;
}
