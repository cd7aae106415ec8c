/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* LMDB's file, read with pread (lmdb_file.c, lmdb_walk.c): the meta pages,
 * the size the file must have, and a walk of a B-tree page by page. Nothing
 * here maps the file, so nothing here can fault on a damaged one: every
 * field is bounds-checked before it is used.
 *
 * The layout is LMDB 0.9's documented data format (MDB_DATA_VERSION 1) for
 * a 64-bit size_t, in the machine's byte order: a page starts with a
 * 16-byte header (page number u64, pad u16, flags u16, then lower/upper
 * bounds of the free space u16 each, or the count of an overflow run u32),
 * followed by 2-byte node offsets; pages 0 and 1 are meta pages. */
#ifndef CAPSTORE_LMDB_FILE_H
#define CAPSTORE_LMDB_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "capstore/common.h"

#define LMF_PAGEHDR 16u
#define LMF_P_BRANCH 0x01u
#define LMF_P_LEAF 0x02u
#define LMF_P_OVERFLOW 0x04u
#define LMF_P_META 0x08u
#define LMF_P_LEAF2 0x20u
#define LMF_F_BIGDATA 0x01u
#define LMF_F_SUBDATA 0x02u
#define LMF_F_DUPDATA 0x04u
#define LMF_MAGIC 0xBEEFC0DEu
#define LMF_VERSION 1u
#define LMF_INVALID_PGNO UINT64_MAX
#define LMF_MAX_DEPTH 32u /* LMDB's cursor stack */
#define LMF_DB_SIZE 48u   /* one MDB_db record */
/* MDB_INTEGERKEY: the free database's keys are transaction ids. */
#define LMF_INTEGERKEY 0x08u

/* Whether this build can read the format (64-bit size_t). */
#define LMF_SUPPORTED (SIZE_MAX == UINT64_MAX)

typedef struct cap_lmf_db {
    uint32_t pad; /* the free DB's: the page size */
    uint16_t flags, depth;
    uint64_t branch_pages, leaf_pages, overflow_pages, entries, root;
} cap_lmf_db_t;

typedef struct cap_lmf_meta {
    bool read;       /* the file holds the page */
    const char *bad; /* NULL, or why LMDB would refuse it / it cannot be right */
    uint16_t page_flags;
    uint32_t magic, version, psize;
    uint64_t mapsize, last_pg, txnid;
    cap_lmf_db_t free_db, main_db;
} cap_lmf_meta_t;

typedef struct cap_lmf_file {
    int fd;
    uint64_t size;     /* bytes */
    uint32_t psize;    /* from the meta pages (0: none readable) */
    cap_lmf_meta_t meta[2];
    int in_use;        /* the meta page LMDB would use (-1: it refuses the file) */
    const char *disagree; /* NULL, or why the two meta pages cannot both be right */
} cap_lmf_file_t;

/* Read both meta pages of the open file `fd` (size `size`) and judge them as
 * LMDB does (flags, magic, version; the higher transaction id wins), plus
 * what LMDB does not check: the page size, the roots and depths within the
 * file's pages, and whether the two pages agree (same page size; the
 * transaction ids one apart, each on the page of its parity). */
void cap_lmf_read_metas(int fd, uint64_t size, cap_lmf_file_t *f);

/* Read page `pgno` (f->psize bytes) into buf. False if the file is too
 * short or the read fails. */
bool cap_lmf_read_page(const cap_lmf_file_t *f, uint64_t pgno, uint8_t *buf);

/* Native-endian loads (LMDB writes the machine's byte order). */
uint16_t cap_lmf_u16(const uint8_t *p);
uint32_t cap_lmf_u32(const uint8_t *p);
uint64_t cap_lmf_u64(const uint8_t *p);

/* A node of a branch or leaf page, its fields checked against the page. */
typedef struct cap_lmf_node {
    uint16_t flags;
    const uint8_t *key;
    size_t ksize;
    uint64_t child;       /* branch: the child's page number */
    uint64_t dsize;       /* leaf: the value's size */
    const uint8_t *data;  /* leaf: inline data (the page number of an overflow run, or an MDB_db) */
    size_t data_in_page;  /* leaf: bytes of `data` within the page */
} cap_lmf_node_t;

/* The i-th node of `page` (psize bytes, flags say branch or leaf). NULL on
 * success, else why the node is not inside the page. */
const char *cap_lmf_node(const uint8_t *page, uint32_t psize, bool branch, unsigned i, cap_lmf_node_t *out);
/* Key count of a branch or leaf page, or -1 with *why when its bounds are
 * impossible. */
int cap_lmf_numkeys(const uint8_t *page, uint32_t psize, const char **why);

/* Whether pages [from, to] of the file (past its end) are all on the free
 * list of the meta in use: LMDB may leave the last pages of a commit
 * unwritten when they were freed again in the same transaction, so a file
 * a little shorter than its last page is not always truncated. */
bool cap_lmf_tail_is_free(const cap_lmf_file_t *f, uint64_t from, uint64_t to);

#endif
