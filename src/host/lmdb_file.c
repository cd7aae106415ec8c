/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* LMDB's meta pages and nodes, read with pread (lmdb_file.h). LMDB keeps no
 * checksums: a meta page is judged by its fields, and the two meta pages
 * against each other. */
#include <string.h>
#include <unistd.h>

#include "lmdb_file.h"

uint16_t cap_lmf_u16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

uint32_t cap_lmf_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

uint64_t cap_lmf_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static bool read_at(int fd, uint64_t size, uint64_t off, uint8_t *buf, size_t n)
{
    if (off > size || n > size - off) return false;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, buf + done, n - done, (off_t)(off + done));
        if (r <= 0) return false;
        done += (size_t)r;
    }
    return true;
}

bool cap_lmf_read_page(const cap_lmf_file_t *f, uint64_t pgno, uint8_t *buf)
{
    if (!f->psize || pgno > UINT64_MAX / f->psize) return false;
    return read_at(f->fd, f->size, pgno * f->psize, buf, f->psize);
}

static void read_db(const uint8_t *p, cap_lmf_db_t *d)
{
    d->pad = cap_lmf_u32(p);
    d->flags = cap_lmf_u16(p + 4);
    d->depth = cap_lmf_u16(p + 6);
    d->branch_pages = cap_lmf_u64(p + 8);
    d->leaf_pages = cap_lmf_u64(p + 16);
    d->overflow_pages = cap_lmf_u64(p + 24);
    d->entries = cap_lmf_u64(p + 32);
    d->root = cap_lmf_u64(p + 40);
}

static bool psize_ok(uint32_t p) { return p >= 512 && p <= 65536 && (p & (p - 1)) == 0; }

/* A tree's root and depth within the meta's pages. */
static const char *db_bad(const cap_lmf_db_t *d, uint64_t last_pg)
{
    if (d->root == LMF_INVALID_PGNO) return d->depth == 0 ? NULL : "an empty tree with a depth";
    if (d->root < 2 || d->root > last_pg) return "a root page outside the file's pages";
    if (d->depth == 0 || d->depth > LMF_MAX_DEPTH) return "an impossible tree depth";
    return NULL;
}

/* Meta page `idx` at byte `off`. */
static void read_meta(int fd, uint64_t size, uint64_t off, unsigned idx, cap_lmf_meta_t *m)
{
    uint8_t b[LMF_PAGEHDR + 136];
    memset(m, 0, sizeof *m);
    if (!read_at(fd, size, off, b, sizeof b)) {
        m->bad = "cannot be read (the file is too short)";
        return;
    }
    m->read = true;
    uint64_t pgno = cap_lmf_u64(b);
    m->page_flags = cap_lmf_u16(b + 10);
    const uint8_t *mm = b + LMF_PAGEHDR;
    m->magic = cap_lmf_u32(mm);
    m->version = cap_lmf_u32(mm + 4);
    m->mapsize = cap_lmf_u64(mm + 16);
    read_db(mm + 24, &m->free_db);
    read_db(mm + 24 + LMF_DB_SIZE, &m->main_db);
    m->psize = m->free_db.pad;
    m->last_pg = cap_lmf_u64(mm + 120);
    m->txnid = cap_lmf_u64(mm + 128);
    const char *bad = NULL;
    if (!(m->page_flags & LMF_P_META)) bad = "not flagged as a meta page";
    else if (m->magic != LMF_MAGIC) bad = "bad magic number";
    else if (m->version != LMF_VERSION) bad = "unknown data format version";
    else if (pgno != idx) bad = "wrong page number in its header";
    else if (!psize_ok(m->psize)) bad = "impossible page size";
    else if (m->last_pg < 1) bad = "impossible last page";
    else if (!(bad = db_bad(&m->free_db, m->last_pg))) bad = db_bad(&m->main_db, m->last_pg);
    m->bad = bad;
}

void cap_lmf_read_metas(int fd, uint64_t size, cap_lmf_file_t *f)
{
    memset(f, 0, sizeof *f);
    f->fd = fd;
    f->size = size;
    f->in_use = -1;
    read_meta(fd, size, 0, 0, &f->meta[0]);
    /* LMDB finds meta page 1 one page size (meta page 0's) further on. When
     * meta page 0 is damaged, look for page 1 at every possible page size,
     * to say what it holds. */
    uint32_t p0 = f->meta[0].psize;
    if (f->meta[0].read && psize_ok(p0)) {
        read_meta(fd, size, p0, 1, &f->meta[1]);
    } else {
        read_meta(fd, size, 4096, 1, &f->meta[1]);
        for (uint32_t p = 512; p <= 65536 && f->meta[1].bad; p *= 2) read_meta(fd, size, p, 1, &f->meta[1]);
    }
    const cap_lmf_meta_t *m0 = &f->meta[0], *m1 = &f->meta[1];
    if (!m0->bad) f->psize = m0->psize;
    else if (!m1->bad) f->psize = m1->psize;
    if (m0->bad || m1->bad) return; /* LMDB refuses a file with a bad meta page */
    f->in_use = m1->txnid > m0->txnid ? 1 : 0;
    if (m0->psize != m1->psize) {
        f->disagree = "the meta pages give different page sizes";
    } else if (m0->txnid == 0 && m1->txnid == 0) {
        /* a new file: no commit yet */
    } else if ((m0->txnid & 1) != 0 || (m1->txnid & 1) != 1) {
        /* LMDB writes transaction t to meta page t % 2. */
        f->disagree = "a meta page holds a transaction id of the other page's parity";
    } else if ((m0->txnid > m1->txnid ? m0->txnid - m1->txnid : m1->txnid - m0->txnid) != 1) {
        f->disagree = "the meta pages' transaction ids are not consecutive";
    }
}

int cap_lmf_numkeys(const uint8_t *page, uint32_t psize, const char **why)
{
    uint16_t lower = cap_lmf_u16(page + 12), upper = cap_lmf_u16(page + 14);
    if (lower < LMF_PAGEHDR || (lower & 1) || upper > psize || lower > upper) {
        *why = "impossible free-space bounds";
        return -1;
    }
    return (lower - LMF_PAGEHDR) / 2;
}

const char *cap_lmf_node(const uint8_t *page, uint32_t psize, bool branch, unsigned i, cap_lmf_node_t *out)
{
    memset(out, 0, sizeof *out);
    uint16_t upper = cap_lmf_u16(page + 14);
    uint32_t off = cap_lmf_u16(page + LMF_PAGEHDR + 2 * i);
    if (off < upper || (off & 1) || off + 8u > psize) return "a node offset outside the page's node area";
    const uint8_t *n = page + off;
    uint16_t lo, hi;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    hi = cap_lmf_u16(n);
    lo = cap_lmf_u16(n + 2);
#else
    lo = cap_lmf_u16(n);
    hi = cap_lmf_u16(n + 2);
#endif
    out->flags = cap_lmf_u16(n + 4);
    out->ksize = cap_lmf_u16(n + 6);
    out->key = n + 8;
    if (off + 8u + out->ksize > psize) return "a key running past the end of its page";
    if (branch) {
        out->child = (uint64_t)lo | ((uint64_t)hi << 16) | ((uint64_t)out->flags << 32);
        return NULL;
    }
    out->dsize = (uint64_t)lo | ((uint64_t)hi << 16);
    out->data = out->key + out->ksize;
    size_t room = psize - (off + 8u + out->ksize);
    size_t need = (out->flags & LMF_F_BIGDATA) ? 8 : (out->flags & LMF_F_SUBDATA) ? LMF_DB_SIZE : out->dsize;
    if (need > room) return "a value running past the end of its page";
    out->data_in_page = need;
    return NULL;
}
