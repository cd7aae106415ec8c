/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Reading the JSON form in chunks, in memory proportional to the input.
 *
 * Why yajl: jansson, which the command used to parse with, can only build a
 * whole tree, and a tree costs far more than its text: each page object of a
 * Data cap took a hash table and two strings, so reading the 144 MiB JSON
 * form of a Data cap of 4.2 million Empty pages took 1.7 GiB. yajl's parser reports events (a key, a string, the start of an
 * array) as it reads, from as many chunks as it is given. The events build
 * a jansson tree of everything but the top-level "pages" list, which is small
 * and lets the field checks of tools/cap_json.c stay as they were; each
 * element of "pages" is built alone, turned into a compact record
 * (capjson_pages_add) and freed.
 *
 * jansson was also strict where yajl is lenient, and the reader must not
 * accept anything it rejected before, so these are checked here: form feed
 * and vertical tab between tokens, strings holding \u0000 or UTF-8 that is
 * overlong, a surrogate or above U+10FFFF, duplicate keys, integers that do
 * not fit in 64 bits, reals that overflow, and nesting deeper than 2048
 * (jansson's limit). yajl reads a lone \uD800-\uDBFF escape as '?', which no
 * valid field, key or value holds: such input is still rejected, by the
 * field checks. Comments, trailing commas or garbage, and a second value are
 * errors in yajl's default configuration, used here; but an unterminated
 * string after the document is not (see feed), so that is checked too. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "cap_json.h"
#include "cap_json_stream.h"

#define MAX_DEPTH 2048
#define CHUNK 65536

/* An open array or object: its value, and for an object the key whose value
 * is being read. */
typedef struct frame {
    json_t *v;
    char *key;
    bool pages; /* the top-level "pages" array: its elements become records */
} frame_t;

typedef struct reader {
    yajl_handle h;
    frame_t *stack;
    size_t depth, stack_cap;
    json_t *root;
    bool any; /* an event was seen: the input is not empty */
    /* The document's value ended in the chunk being parsed, after its first
     * end_at bytes (see feed). */
    bool ended_here;
    size_t end_at;
    capjson_pages_t pages;
    /* A callback's failure (the parse stops there): code and message. */
    int rc;
    char why[400];
    /* Where the current chunk starts: line (1-based) and characters read on
     * it (UTF-8 continuation bytes do not count). */
    unsigned long long line, col;
} reader_t;

static int stop(reader_t *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int stop(reader_t *r, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
    r->rc = rc;
    return 0; /* tells yajl to stop */
}

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF
 * (what jansson accepted). */
static bool utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf)
            k = 1;
        else if (c == 0xe0)
            k = 2, lo = 0xa0;
        else if (c == 0xed)
            k = 2, hi = 0x9f;
        else if (c >= 0xe1 && c <= 0xef)
            k = 2;
        else if (c == 0xf0)
            k = 3, lo = 0x90;
        else if (c >= 0xf1 && c <= 0xf3)
            k = 3;
        else if (c == 0xf4)
            k = 3, hi = 0x8f;
        else
            return false;
        if (n - i <= k || s[i + 1] < lo || s[i + 1] > hi) return false;
        for (size_t j = 2; j <= k; j++)
            if ((s[i + j] & 0xc0) != 0x80) return false;
        i += k + 1;
    }
    return true;
}

static int check_text(reader_t *r, const unsigned char *s, size_t n)
{
    if (memchr(s, 0, n)) return stop(r, CAP_EINVAL, "\\u0000 is not allowed in a string");
    if (!utf8_ok(s, n)) return stop(r, CAP_EINVAL, "invalid UTF-8 in a string");
    return 1;
}

/* A finished value goes to the open array or object, or is the document. */
static int add(reader_t *r, json_t *v)
{
    r->any = true;
    if (!v) return stop(r, CAP_ENOMEM, "out of memory");
    if (r->depth == 0) {
        r->root = v;
        r->ended_here = true;
        r->end_at = yajl_get_bytes_consumed(r->h);
        return 1;
    }
    frame_t *f = &r->stack[r->depth - 1];
    if (f->pages) {
        int rc = capjson_pages_add(&r->pages, v);
        json_decref(v);
        return rc == CAP_OK ? 1 : stop(r, rc, "out of memory");
    }
    int e;
    if (json_is_array(f->v)) {
        e = json_array_append_new(f->v, v); /* takes v, even when it fails */
    } else {
        e = json_object_set_new_nocheck(f->v, f->key, v);
        free(f->key);
        f->key = NULL;
    }
    return e == 0 ? 1 : stop(r, CAP_ENOMEM, "out of memory");
}

static int push(reader_t *r, json_t *v)
{
    r->any = true;
    if (!v) return stop(r, CAP_ENOMEM, "out of memory");
    if (r->depth == MAX_DEPTH) {
        json_decref(v);
        return stop(r, CAP_EINVAL, "nested more than %d levels deep", MAX_DEPTH);
    }
    if (r->depth == r->stack_cap) {
        size_t nc = r->stack_cap ? 2 * r->stack_cap : 16;
        frame_t *s = realloc(r->stack, nc * sizeof *s);
        if (!s) {
            json_decref(v);
            return stop(r, CAP_ENOMEM, "out of memory");
        }
        r->stack = s;
        r->stack_cap = nc;
    }
    frame_t *parent = r->depth ? &r->stack[r->depth - 1] : NULL;
    bool pages = json_is_array(v) && r->depth == 1 && json_is_object(parent->v) && parent->key &&
                 strcmp(parent->key, "pages") == 0;
    if (pages) r->pages.placeholder = v;
    r->stack[r->depth++] = (frame_t){v, NULL, pages};
    return 1;
}

static int pop(reader_t *r)
{
    json_t *v = r->stack[--r->depth].v;
    return add(r, v);
}

static int on_null(void *ctx) { return add(ctx, json_null()); }

static int on_boolean(void *ctx, int b) { return add(ctx, json_boolean(b)); }

/* A number as jansson read it: an integer unless it has a fraction or an
 * exponent; an integer must fit in a long long, a real in a double. */
static int on_number(void *ctx, const char *s, size_t n)
{
    reader_t *r = ctx;
    char small[64], *t = n < sizeof small ? small : malloc(n + 1);
    if (!t) return stop(r, CAP_ENOMEM, "out of memory");
    memcpy(t, s, n);
    t[n] = 0;
    json_t *v = NULL;
    const char *bad = NULL;
    errno = 0;
    if (strpbrk(t, ".eE")) {
        double d = strtod(t, NULL);
        if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL))
            bad = "real number overflow";
        else
            v = json_real(d);
    } else {
        long long i = strtoll(t, NULL, 10);
        if (errno == ERANGE)
            bad = i < 0 ? "too big negative integer" : "too big integer";
        else
            v = json_integer(i);
    }
    if (t != small) free(t);
    if (bad) return stop(r, CAP_EINVAL, "%s", bad);
    return add(r, v);
}

static int on_string(void *ctx, const unsigned char *s, size_t n)
{
    reader_t *r = ctx;
    if (!check_text(r, s, n)) return 0;
    return add(r, json_stringn_nocheck((const char *)s, n));
}

static int on_start_map(void *ctx) { return push(ctx, json_object()); }

static int on_map_key(void *ctx, const unsigned char *s, size_t n)
{
    reader_t *r = ctx;
    if (!check_text(r, s, n)) return 0;
    frame_t *f = &r->stack[r->depth - 1];
    char *k = malloc(n + 1);
    if (!k) return stop(r, CAP_ENOMEM, "out of memory");
    memcpy(k, s, n);
    k[n] = 0;
    /* Checked at the key, as jansson did (JSON_REJECT_DUPLICATES). */
    if (json_object_get(f->v, k)) {
        stop(r, CAP_EINVAL, "duplicate object key \"%.64s\"", k);
        free(k);
        return 0;
    }
    f->key = k;
    return 1;
}

static int on_end(void *ctx) { return pop(ctx); }

static int on_start_array(void *ctx) { return push(ctx, json_array()); }

static const yajl_callbacks callbacks = {
    on_null, on_boolean, NULL, NULL, on_number, on_string,
    on_start_map, on_map_key, on_end, on_start_array, on_end,
};

static bool reader_init(reader_t *r)
{
    memset(r, 0, sizeof *r);
    r->line = 1;
    /* yajl's defaults are strict: no comments, no trailing garbage, one
     * value, UTF-8 checked (and checked again, more strictly, above). */
    r->h = yajl_alloc(&callbacks, NULL, r);
    return r->h != NULL;
}

static void reader_free(reader_t *r)
{
    while (r->depth) {
        frame_t *f = &r->stack[--r->depth];
        json_decref(f->v);
        free(f->key);
    }
    free(r->stack);
    json_decref(r->root);
    capjson_pages_free(&r->pages);
    if (r->h) yajl_free(r->h);
}

/* Move the position past n bytes: the lines they end, then the characters
 * after the last line feed. */
static void advance(reader_t *r, const unsigned char *s, size_t n)
{
    const unsigned char *end = s + n, *last = n ? memrchr(s, '\n', n) : NULL;
    if (last) {
        unsigned long long lines = 0;
        for (const unsigned char *p = s; p <= last; p++) lines += *p == '\n';
        r->line += lines;
        r->col = 0;
        s = last + 1;
    }
    for (; s < end; s++) r->col += (*s & 0xc0) != 0x80;
}

/* "line L, column C: <why>" into msg, the position being after the first
 * `upto` bytes of the chunk s (the column is that of the last character
 * read, which is where jansson pointed too; 1 before the first). */
static int syntax_error(reader_t *r, const unsigned char *s, size_t upto, int rc, const char *why,
                        char *msg, size_t msg_len)
{
    advance(r, s, upto);
    if (msg && msg_len)
        snprintf(msg, msg_len, "line %llu, column %llu: %s%s", r->line, r->col ? r->col : 1, why,
                 strncmp(why, "too big integer", 15) == 0
                     ? " (write u64 values above 2^53 as decimal strings)"
                     : "");
    return rc;
}

/* yajl's own message ("lexical error: invalid char in json text."), or the
 * one a callback left. */
static int parse_error(reader_t *r, yajl_status st, const unsigned char *s, size_t upto, char *msg,
                       size_t msg_len)
{
    if (st == yajl_status_client_canceled)
        return syntax_error(r, s, upto, r->rc, r->why, msg, msg_len);
    char why[400];
    unsigned char *e = yajl_get_error(r->h, 0, NULL, 0);
    snprintf(why, sizeof why, "%s", e ? (const char *)e : "parse error");
    if (e) yajl_free_error(r->h, e);
    size_t k = strlen(why);
    while (k && (why[k - 1] == '\n' || why[k - 1] == ' ')) why[--k] = 0;
    if (!r->any && strstr(why, "premature EOF")) snprintf(why, sizeof why, "no JSON value in the input");
    return syntax_error(r, s, upto, CAP_EINVAL, why, msg, msg_len);
}

/* Parse one chunk. JSON separates tokens with space, tab, line feed and
 * carriage return only; yajl also takes form feed and vertical tab (and
 * rejects them in strings), so the chunk is parsed up to the first of them,
 * and that byte is then an error. */
static int feed(reader_t *r, const unsigned char *s, size_t n, char *msg, size_t msg_len)
{
    const unsigned char *ff = memchr(s, '\f', n), *vt = memchr(s, '\v', n);
    const unsigned char *bad = ff && (!vt || ff < vt) ? ff : vt;
    size_t good = bad ? (size_t)(bad - s) : n;
    r->ended_here = false;
    yajl_status st = yajl_parse(r->h, s, good);
    /* After the value only whitespace may follow. yajl checks that, except
     * for a token still open when the input ends (`{} "abc`): it waits for
     * more, and its end of input does not close a string. Where yajl does
     * fail after the value, it is at the token's end: the error is put at its
     * first byte instead, as when the token arrives in pieces. */
    if (r->root && st != yajl_status_client_canceled) {
        for (size_t i = r->ended_here ? r->end_at : 0; i < good; i++)
            if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
                return syntax_error(r, s, i + 1, CAP_EINVAL, "parse error: trailing garbage", msg, msg_len);
    }
    if (st != yajl_status_ok) return parse_error(r, st, s, yajl_get_bytes_consumed(r->h), msg, msg_len);
    if (bad)
        return syntax_error(r, s, good + 1, CAP_EINVAL,
                            *bad == '\f' ? "invalid character: form feed (JSON whitespace is space, tab, "
                                           "line feed and carriage return)"
                                         : "invalid character: vertical tab (JSON whitespace is space, "
                                           "tab, line feed and carriage return)",
                            msg, msg_len);
    advance(r, s, n);
    return CAP_OK;
}

static int finish(reader_t *r, const cap_alloc_t *a, cap_t **out, char *msg, size_t msg_len)
{
    yajl_status st = yajl_complete_parse(r->h);
    if (st != yajl_status_ok) return parse_error(r, st, (const unsigned char *)"", 0, msg, msg_len);
    /* The text is whole and well formed: the tree is the document. */
    return capjson_tree_to_cap(r->root, &r->pages, a, out, msg, msg_len);
}

static int no_reader(char *msg, size_t msg_len)
{
    if (msg && msg_len) snprintf(msg, msg_len, "out of memory");
    return CAP_ENOMEM;
}

int capjson_read(FILE *f, const cap_alloc_t *a, cap_t **out, char *msg, size_t msg_len)
{
    *out = NULL;
    if (msg && msg_len) msg[0] = 0;
    reader_t r;
    unsigned char *buf = malloc(CHUNK);
    if (!buf || !reader_init(&r)) {
        free(buf);
        if (buf) reader_free(&r);
        return no_reader(msg, msg_len);
    }
    int rc = CAP_OK;
    for (;;) {
        size_t got = fread(buf, 1, CHUNK, f);
        if (got) rc = feed(&r, buf, got, msg, msg_len);
        if (rc != CAP_OK || got < CHUNK) break;
    }
    if (rc == CAP_OK && ferror(f)) {
        if (msg && msg_len) snprintf(msg, msg_len, "read error: %s", strerror(errno));
        rc = CAP_EINVAL;
    }
    if (rc == CAP_OK) rc = finish(&r, a, out, msg, msg_len);
    reader_free(&r);
    free(buf);
    return rc;
}

int capjson_parse_pieces(const char *text, size_t n, size_t piece, const cap_alloc_t *a, cap_t **out,
                         char *msg, size_t msg_len)
{
    *out = NULL;
    if (msg && msg_len) msg[0] = 0;
    reader_t r;
    if (!reader_init(&r)) {
        reader_free(&r);
        return no_reader(msg, msg_len);
    }
    const unsigned char *s = (const unsigned char *)text;
    int rc = CAP_OK;
    for (size_t at = 0; rc == CAP_OK && at < n; at += piece) {
        size_t k = n - at < piece ? n - at : piece;
        rc = feed(&r, s + at, k, msg, msg_len);
    }
    if (rc == CAP_OK) rc = finish(&r, a, out, msg, msg_len);
    reader_free(&r);
    return rc;
}

int capjson_parse(const char *text, size_t n, const cap_alloc_t *a, cap_t **out, char *msg,
                  size_t msg_len)
{
    return capjson_parse_pieces(text, n, n ? n : 1, a, out, msg, msg_len);
}
