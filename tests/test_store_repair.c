/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* A store flush repairs what a backend holds damaged, and counts it
 * (issue 18, item 4): a backend (LMDB, then memory) holds other bytes
 * under a cap's hash; the store publishes the cap and flushes; the flush
 * reports it written (the backend's repaired count), the backend then gives
 * the right bytes back, and a fresh store fetches the cap. Before, a write
 * skipped a hash already present: the flush said "written" and the entry
 * stayed unreadable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "test_caps.h"

static void flush_repairs(cap_backend_t *b, const char *name)
{
    cap_t *c = NULL;
    CHECK_EQ_INT(cap_cnode_new(&c, cap_alloc_libc(), 4), CAP_OK);
    test_set_hash_of(c, 3, 42);
    test_set_hash_of(c, 9, 43);
    cap_hash_t h = test_hash_cap(c);
    /* Damaged: other bytes under its hash (a wire form of another cap). */
    cap_t *other = NULL;
    CHECK_EQ_INT(cap_cnode_new(&other, cap_alloc_libc(), 4), CAP_OK);
    test_set_hash_of(other, 1, 44);
    uint8_t *w;
    size_t n;
    CHECK_EQ_INT(cap_wire_encode_alloc(other, cap_alloc_libc(), &w, &n), CAP_OK);
    CHECK_EQ_INT(cap_backend_write(b, &h, w, n, NULL), CAP_OK);
    free(w);
    cap_release(other);
    cap_t *got = NULL;
    CHECK_EQ_INT(cap_persist_fetch(b, &h, cap_alloc_libc(), true, &got, NULL), CAP_EMISMATCH);

    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new_host(&s), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(s, b, NULL), CAP_OK);
    CHECK_EQ_INT(cap_store_put_cap(s, c, NULL), CAP_OK);
    size_t written = 99;
    cap_err_t e;
    CHECK_EQ_INT(cap_store_flush(s, &written, &e), CAP_OK);
    if (written != 1) fprintf(stderr, "  %s: the flush counted %zu\n", name, written);
    CHECK_EQ_INT(written, 1); /* the repair */
    CHECK_EQ_INT(cap_store_flush(s, &written, &e), CAP_OK);
    CHECK_EQ_INT(written, 0);
    cap_store_free(s);

    CHECK_EQ_INT(cap_persist_fetch(b, &h, cap_alloc_libc(), true, &got, NULL), CAP_OK);
    CHECK(got && cap_equal(got, c));
    cap_release(got);
    /* A fresh store finds it through the backend. */
    CHECK_EQ_INT(cap_store_new_host(&s), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(s, b, NULL), CAP_OK);
    got = NULL;
    CHECK_EQ_INT(cap_store_get_blob(s, &h, &got), CAP_OK);
    CHECK(got && cap_equal(got, c));
    cap_release(got);
    cap_store_free(s);
    cap_release(c);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    char dir[256], db[320];
    snprintf(dir, sizeof dir, "%s/capstore-test-repair-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(db, sizeof db, "%s/r.lmdb", dir);
    cap_lmdb_options_t o;
    memset(&o, 0, sizeof o);
    o.flags = CAP_LMDB_NOSYNC;
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_lmdb_open(db, &o, &b, NULL), CAP_OK);
    if (b) flush_repairs(b, "lmdb");
    cap_backend_free(b);
    b = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(NULL, &b), CAP_OK);
    if (b) flush_repairs(b, "mem");
    cap_backend_free(b);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("test_store_repair");
}
