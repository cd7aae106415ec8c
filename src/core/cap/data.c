/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Data caps: a list of pages, each Empty (NULL), Loaded or Missing. Pages are
 * refcounted and shared between copies; a page is written in place only
 * while one cap holds it, else copied first (copy-on-write per page). */
#include "base.h"
#include "cap/cap_internal.h"

#define MAX_PAGES ((uint64_t)1 << 32) /* List[Bytes32, 2^32] */

/* Pages --------------------------------------------------------------------------------- */

static cap_page_t *page_alloc(const cap_alloc_t *a, uint32_t size)
{
    cap_page_t *p = cap_mem_alloc(a, sizeof *p + size);
    if (!p)
        return (cap_page_t *)0;
    atomic_init(&p->refs, 1);
    atomic_init(&p->root_state, 0);
    cap_memset(p->root.bytes, 0, 32);
    p->size = size;
    return p;
}

cap_page_t *cap_page_new_loaded(const cap_alloc_t *a, const uint8_t *bytes, uint32_t size)
{
    cap_page_t *p = page_alloc(a, size);
    if (!p)
        return p;
    p->state = CAP_PAGE_LOADED;
    if (bytes)
        cap_memcpy(p->data, bytes, size);
    else
        cap_memset(p->data, 0, size);
    return p;
}

cap_page_t *cap_page_new_missing(const cap_alloc_t *a, const cap_hash_t *root)
{
    cap_page_t *p = page_alloc(a, 0);
    if (!p)
        return p;
    p->state = CAP_PAGE_MISSING;
    p->root = *root;
    atomic_store_explicit(&p->root_state, 2, memory_order_release);
    return p;
}

void cap_page_retain(cap_page_t *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void cap_page_release(const cap_alloc_t *a, cap_page_t *p)
{
    if (!p)
        return;
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    cap_mem_free(a, p, sizeof *p + p->size);
}

unsigned cap_page_depth(uint32_t page_size)
{
    unsigned d = 0;
    while (((uint32_t)32 << d) < page_size)
        d++;
    return d;
}

static bool page_size_ok(uint32_t ps)
{
    return ps >= CAP_PAGE_SIZE_MIN && ps <= CAP_PAGE_SIZE_MAX && (ps & (ps - 1)) == 0;
}

/* Construction ------------------------------------------------------------------------------ */

int cap_data_new(cap_t **out, const cap_alloc_t *a, uint32_t page_size)
{
    if (!out || !a || !page_size_ok(page_size))
        return CAP_EINVAL;
    cap_t *c;
    int rc = cap_alloc_bare(&c, a, CAP_KIND_DATA);
    if (rc)
        return rc;
    c->u.data.page_size = page_size;
    *out = c;
    return CAP_OK;
}

int cap_data_new_inline(cap_t **out, const cap_alloc_t *a, uint32_t page_size, const void *bytes,
                        size_t n)
{
    if (!out || !a || !page_size_ok(page_size) || (n && !bytes))
        return CAP_EINVAL;
    uint64_t count = (uint64_t)n / page_size + ((uint64_t)n % page_size != 0);
    if (count > MAX_PAGES)
        return CAP_EINVAL;
    cap_t *c;
    int rc = cap_data_new(&c, a, page_size);
    if (rc)
        return rc;
    cap_data_body_t *b = &c->u.data;
    if (count) {
        b->pages = cap_mem_alloc(a, (size_t)count * sizeof *b->pages);
        if (!b->pages) {
            cap_release(c);
            return CAP_ENOMEM;
        }
        b->page_capacity = count;
        const uint8_t *src = bytes;
        for (uint64_t i = 0; i < count; i++) {
            size_t off = (size_t)i * page_size;
            size_t len = n - off < page_size ? n - off : page_size;
            cap_page_t *p = cap_page_new_loaded(a, len == page_size ? src + off : (const uint8_t *)0,
                                                page_size);
            if (!p) {
                cap_release(c); /* frees the pages made so far (page_count of them) */
                return CAP_ENOMEM;
            }
            if (len != page_size)
                cap_memcpy(p->data, src + off, len);
            b->pages[i] = p;
            b->page_count = i + 1;
        }
    }
    *out = c;
    return CAP_OK;
}

/* Getters ----------------------------------------------------------------------------------- */

uint32_t cap_data_page_size(const cap_t *c)
{
    return (c && c->kind == CAP_KIND_DATA) ? c->u.data.page_size : 0;
}

uint64_t cap_data_page_count(const cap_t *c)
{
    return (c && c->kind == CAP_KIND_DATA) ? c->u.data.page_count : 0;
}

static const cap_page_t *page_at(const cap_t *c, uint64_t index)
{
    if (!c || c->kind != CAP_KIND_DATA || index >= c->u.data.page_count)
        return (const cap_page_t *)0;
    return c->u.data.pages[index];
}

cap_page_state_t cap_data_page_state(const cap_t *c, uint64_t index)
{
    const cap_page_t *p = page_at(c, index);
    return p ? (cap_page_state_t)p->state : CAP_PAGE_EMPTY;
}

const uint8_t *cap_data_page_bytes(const cap_t *c, uint64_t index)
{
    const cap_page_t *p = page_at(c, index);
    return (p && p->state == CAP_PAGE_LOADED) ? p->data : (const uint8_t *)0;
}

int cap_data_page_root(const cap_t *c, uint64_t index, cap_hash_t *out)
{
    if (!c || c->kind != CAP_KIND_DATA || !out || index >= c->u.data.page_count)
        return CAP_EINVAL;
    cap_page_root(c->u.data.pages[index], c->u.data.page_size, out->bytes);
    return CAP_OK;
}

/* Setters ----------------------------------------------------------------------------------- */

int cap_data_resize(cap_t *c, uint64_t page_count)
{
    int rc = cap_check_writable(c, CAP_KIND_DATA);
    if (rc)
        return rc;
    if (page_count > MAX_PAGES)
        return CAP_EINVAL;
    cap_data_body_t *b = &c->u.data;
    if (page_count > b->page_capacity) {
        uint64_t cap = b->page_capacity * 2;
        if (cap < page_count)
            cap = page_count;
        if (cap > MAX_PAGES)
            cap = MAX_PAGES;
        if (cap > SIZE_MAX / sizeof *b->pages)
            return CAP_ENOMEM;
        cap_page_t **np = cap_mem_realloc(c->alloc, b->pages, (size_t)b->page_capacity * sizeof *np,
                                          (size_t)cap * sizeof *np);
        if (!np)
            return CAP_ENOMEM;
        b->pages = np;
        b->page_capacity = cap;
    }
    if (page_count > b->page_count) {
        cap_memset(&b->pages[b->page_count], 0,
                   (size_t)(page_count - b->page_count) * sizeof *b->pages);
        b->page_count = page_count;
        return CAP_OK;
    }
    uint64_t old = b->page_count;
    b->page_count = page_count;
    for (uint64_t i = page_count; i < old; i++) {
        cap_page_release(c->alloc, b->pages[i]);
        b->pages[i] = (cap_page_t *)0;
    }
    if (page_count == 0 && b->pages) {
        cap_mem_free(c->alloc, b->pages, (size_t)b->page_capacity * sizeof *b->pages);
        b->pages = (cap_page_t **)0;
        b->page_capacity = 0;
    }
    return CAP_OK;
}

static void put_page(cap_t *c, uint64_t index, cap_page_t *p)
{
    cap_page_t *old = c->u.data.pages[index];
    c->u.data.pages[index] = p;
    cap_page_release(c->alloc, old);
}

int cap_data_set_page(cap_t *c, uint64_t index, const void *bytes, size_t n, cap_err_t *err)
{
    int rc = cap_check_writable(c, CAP_KIND_DATA);
    if (rc)
        return cap_err_set(err, rc, rc == CAP_EBUSY ? (const char *)0 : "not a Data cap");
    cap_data_body_t *b = &c->u.data;
    if (index >= b->page_count)
        return cap_err_set(err, CAP_EINVAL, "page index past the page count");
    if (n && !bytes)
        return cap_err_set(err, CAP_EINVAL, "NULL bytes");
    if (n != b->page_size) {
        cap_err_set(err, CAP_EPAGESIZE, "PageSizeMismatch");
        if (err) {
            err->expected = b->page_size;
            err->got = n;
        }
        return CAP_EPAGESIZE;
    }
    cap_page_t *p = cap_page_new_loaded(c->alloc, bytes, b->page_size);
    if (!p)
        return cap_err_set(err, CAP_ENOMEM, (const char *)0);
    put_page(c, index, p);
    return CAP_OK;
}

int cap_data_set_page_empty(cap_t *c, uint64_t index)
{
    int rc = cap_check_writable(c, CAP_KIND_DATA);
    if (rc)
        return rc;
    if (index >= c->u.data.page_count)
        return CAP_EINVAL;
    put_page(c, index, (cap_page_t *)0);
    return CAP_OK;
}

int cap_data_set_page_missing(cap_t *c, uint64_t index, const cap_hash_t *root)
{
    int rc = cap_check_writable(c, CAP_KIND_DATA);
    if (rc)
        return rc;
    if (index >= c->u.data.page_count || !root)
        return CAP_EINVAL;
    cap_page_t *p = cap_page_new_missing(c->alloc, root);
    if (!p)
        return CAP_ENOMEM;
    put_page(c, index, p);
    return CAP_OK;
}

#define WRITE_STACK_PAGES 32

int cap_data_write(cap_t *c, uint64_t offset, const void *bytes, size_t n)
{
    int rc = cap_check_writable(c, CAP_KIND_DATA);
    if (rc)
        return rc;
    if (n && !bytes)
        return CAP_EINVAL;
    cap_data_body_t *b = &c->u.data;
    uint64_t total = b->page_count * (uint64_t)b->page_size; /* <= 2^48 */
    if (offset > total || (uint64_t)n > total - offset)
        return CAP_EINVAL;
    if (n == 0)
        return CAP_OK;
    uint64_t first = offset / b->page_size, last = (offset + n - 1) / b->page_size;

    /* Pass 1: check, and count the pages that need a new page (Empty or shared). */
    size_t need = 0;
    for (uint64_t i = first; i <= last; i++) {
        cap_page_t *p = b->pages[i];
        if (p && p->state == CAP_PAGE_MISSING)
            return CAP_EINVAL;
        if (!p || atomic_load_explicit(&p->refs, memory_order_acquire) != 1)
            need++;
    }

    /* Pass 2: make every new page before changing anything. */
    struct fresh_page {
        uint64_t index;
        cap_page_t *page;
    } stack_new[WRITE_STACK_PAGES];
    struct fresh_page *fresh = stack_new;
    if (need > WRITE_STACK_PAGES) {
        fresh = cap_mem_alloc(c->alloc, need * sizeof *fresh);
        if (!fresh)
            return CAP_ENOMEM;
    }
    size_t made = 0;
    for (uint64_t i = first; i <= last && made < need; i++) {
        cap_page_t *p = b->pages[i];
        if (p && atomic_load_explicit(&p->refs, memory_order_acquire) == 1)
            continue;
        cap_page_t *np = cap_page_new_loaded(c->alloc, p ? p->data : (const uint8_t *)0, b->page_size);
        if (!np) {
            while (made)
                cap_page_release(c->alloc, fresh[--made].page);
            if (fresh != stack_new)
                cap_mem_free(c->alloc, fresh, need * sizeof *fresh);
            return CAP_ENOMEM;
        }
        fresh[made].index = i;
        fresh[made].page = np;
        made++;
    }

    /* Pass 3: install the new pages (exactly those made above: a page seen
     * shared stays replaced even if its other holder let go meanwhile), then
     * write. */
    const uint8_t *src = bytes;
    size_t used = 0;
    for (uint64_t i = first; i <= last; i++) {
        cap_page_t *p;
        if (used < made && fresh[used].index == i) {
            put_page(c, i, fresh[used++].page);
            p = b->pages[i];
        } else {
            /* Unshared and ours: write in place; its cached root is stale
             * (nobody else can be reading this page). */
            p = b->pages[i];
            atomic_store_explicit(&p->root_state, 0, memory_order_relaxed);
        }
        uint64_t pstart = i * (uint64_t)b->page_size;
        uint64_t lo = offset > pstart ? offset - pstart : 0;
        uint64_t hi = offset + n - pstart;
        if (hi > b->page_size)
            hi = b->page_size;
        cap_memcpy(p->data + lo, src + (pstart + lo - offset), (size_t)(hi - lo));
    }
    if (fresh != stack_new)
        cap_mem_free(c->alloc, fresh, need * sizeof *fresh);
    return CAP_OK;
}
