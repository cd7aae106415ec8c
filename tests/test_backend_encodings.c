/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Two encodings of one cap in the memory and LMDB backends
 * (support/encodings_check.h), and cap_backend_replaces itself: damage is
 * replaced, a sound value that knows as many pages is kept, a fuller copy
 * replaces a thinner one, bytes that do not decode replace nothing. Before,
 * a backend took any other bytes under a stored hash for damage: writing a
 * copy with a page missing over a whole Data cap lost the page. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "encodings_check.h"

static void test_rule(void)
{
    const cap_alloc_t *a = cap_alloc_libc();
    cap_t *c = NULL, *d = NULL;
    CHECK_EQ_INT(cap_data_new(&c, a, 32), CAP_OK);
    CHECK_EQ_INT(cap_data_resize(c, 2), CAP_OK);
    uint8_t page[32];
    memset(page, 7, sizeof page);
    CHECK_EQ_INT(cap_data_set_page(c, 0, page, sizeof page, NULL), CAP_OK);
    cap_hash_t h, root;
    CHECK_EQ_INT(cap_hash(c, &h), CAP_OK);
    uint8_t *full, *thin, *other;
    size_t full_n, thin_n, other_n;
    CHECK_EQ_INT(cap_wire_encode_alloc(c, a, &full, &full_n), CAP_OK);
    CHECK_EQ_INT(cap_data_page_root(c, 0, &root), CAP_OK);
    CHECK_EQ_INT(cap_data_set_page_missing(c, 0, &root), CAP_OK);
    CHECK_EQ_INT(cap_wire_encode_alloc(c, a, &thin, &thin_n), CAP_OK);
    CHECK_EQ_INT(cap_cnode_new(&d, a, 2), CAP_OK); /* a sound cap of another hash */
    CHECK_EQ_INT(cap_wire_encode_alloc(d, a, &other, &other_n), CAP_OK);
    bool replace = false;
    CHECK_EQ_INT(cap_backend_replaces(&h, full, full_n, thin, thin_n, a, &replace), CAP_OK);
    CHECK(!replace); /* thinner: keep the whole one */
    CHECK_EQ_INT(cap_backend_replaces(&h, thin, thin_n, full, full_n, a, &replace), CAP_OK);
    CHECK(replace); /* fuller: take it */
    CHECK_EQ_INT(cap_backend_replaces(&h, other, other_n, thin, thin_n, a, &replace), CAP_OK);
    CHECK(replace); /* stored bytes of another hash: damage */
    CHECK_EQ_INT(cap_backend_replaces(&h, full, 3, thin, thin_n, a, &replace), CAP_OK);
    CHECK(replace); /* stored bytes cut short: damage */
    replace = true;
    CHECK_EQ_INT(cap_backend_replaces(&h, full, full_n, other, other_n, a, &replace), CAP_OK);
    CHECK(!replace); /* new bytes of another hash: keep the sound value */
    CHECK_EQ_INT(cap_backend_replaces(&h, NULL, 1, thin, thin_n, a, &replace), CAP_EINVAL);
    CHECK_EQ_INT(cap_backend_replaces(&h, full, full_n, thin, thin_n, NULL, &replace), CAP_EINVAL);
    free(full);
    free(thin);
    free(other);
    cap_release(c);
    cap_release(d);
}

int main(void)
{
    test_rule();
    cap_backend_t *mem = NULL;
    CHECK_EQ_INT(cap_mem_backend_new(NULL, &mem), CAP_OK);
    encodings_check(mem, "memory", 1);
    cap_backend_free(mem);

    const char *tmp = getenv("TMPDIR");
    char dir[256], db[320];
    snprintf(dir, sizeof dir, "%s/capstore-test-encodings-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(db, sizeof db, "%s/e.lmdb", dir);
    cap_lmdb_options_t o;
    memset(&o, 0, sizeof o);
    o.flags = CAP_LMDB_NOSYNC;
    cap_backend_t *lm = NULL;
    CHECK_EQ_INT(cap_lmdb_open(db, &o, &lm, NULL), CAP_OK);
    if (lm) {
        encodings_check(lm, "lmdb", 2);
        cap_backend_free(lm);
    }
    char lock[340];
    snprintf(lock, sizeof lock, "%s-lock", db);
    unlink(db);
    unlink(lock);
    rmdir(dir);
    return check_done("test_backend_encodings");
}
