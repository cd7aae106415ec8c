/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Read sections of lock-free blob hits (src/core/store/readers.c), from the
 * inside: the store's lookups take references without the shard lock, so
 * trim must not release what it dropped while a lookup may still be on its
 * way to it. Checked here directly (label "thread"; CI also runs it under
 * ThreadSanitizer):
 *   - store_read_sync returns only after a section open when it started ends;
 *   - sync keeps making progress while other threads enter and leave
 *     sections without pause (the epoch flip: new readers count elsewhere;
 *     a starved sync shows as a hang, which the ctest timeout fails);
 *   - a trim that drops blobs waits for an open section before releasing
 *     them. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "check.h"
#include "store/store_internal.h"
#include "test_rng.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A store with its tables set up and `n` flushed blobs (hashes in hs). */
static cap_store_t *store_with_blobs(cap_backend_t **mb, cap_hash_t *hs, int n)
{
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new_host(&s), CAP_OK);
    CHECK_EQ_INT(cap_mem_backend_new(NULL, mb), CAP_OK);
    CHECK_EQ_INT(cap_store_add_backend(s, *mb, NULL), CAP_OK);
    test_rng_t rng = {0x5EC7ull};
    for (int i = 0; i < n; i++) {
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_cnode_new(&c, cap_alloc_libc(), 4), CAP_OK);
        cap_hash_t h = test_rng_hash(&rng);
        cap_target_t t = cap_target_of_hash(&h);
        CHECK_EQ_INT(cap_cnode_set(c, 1, &t), CAP_OK);
        CHECK_EQ_INT(cap_store_put_cap(s, c, &hs[i]), CAP_OK);
        cap_release(c);
    }
    size_t w;
    CHECK_EQ_INT(cap_store_flush(s, &w, NULL), CAP_OK);
    return s;
}

/* A thread that holds a read section open for a while. */
typedef struct holder {
    cap_store_t *s;
    long hold_ms;
    _Atomic int entered, left;
} holder_t;

static void *hold_section(void *p)
{
    holder_t *h = p;
    _Atomic uint32_t *rd = store_read_enter(h->s);
    atomic_store(&h->entered, 1);
    sleep_ms(h->hold_ms);
    atomic_store(&h->left, 1);
    store_read_exit(rd);
    return NULL;
}

static void start_holder(pthread_t *th, holder_t *h, cap_store_t *s, long ms)
{
    memset(h, 0, sizeof *h);
    h->s = s;
    h->hold_ms = ms;
    CHECK_EQ_INT(pthread_create(th, NULL, hold_section, h), 0);
    while (!atomic_load(&h->entered)) sleep_ms(1);
}

static void test_sync_waits(void)
{
    cap_backend_t *mb = NULL;
    cap_hash_t hs[1];
    cap_store_t *s = store_with_blobs(&mb, hs, 1);
    pthread_t th;
    holder_t h;
    start_holder(&th, &h, s, 100);
    store_read_sync(s);
    CHECK(atomic_load(&h.left)); /* sync returned only once the section ended */
    pthread_join(th, NULL);
    store_read_sync(s); /* nothing open: returns at once */
    cap_store_free(s);
    cap_backend_free(mb);
}

/* Readers that never stop entering and leaving. */
typedef struct churn {
    cap_store_t *s;
    _Atomic int stop;
    _Atomic long sections;
} churn_t;

static void *churn_sections(void *p)
{
    churn_t *c = p;
    while (!atomic_load(&c->stop)) {
        _Atomic uint32_t *a = store_read_enter(c->s);
        _Atomic uint32_t *b = store_read_enter(c->s); /* overlapping, as nested calls would */
        store_read_exit(a);
        store_read_exit(b);
        atomic_fetch_add(&c->sections, 1);
    }
    return NULL;
}

static void test_sync_progress(void)
{
    cap_backend_t *mb = NULL;
    cap_hash_t hs[1];
    cap_store_t *s = store_with_blobs(&mb, hs, 1);
    static churn_t c;
    memset(&c, 0, sizeof c);
    c.s = s;
    pthread_t th[2];
    for (int i = 0; i < 2; i++) CHECK_EQ_INT(pthread_create(&th[i], NULL, churn_sections, &c), 0);
    while (atomic_load(&c.sections) < 1000) sleep_ms(1); /* both are churning */
    /* Starved, this never ends (the ctest timeout fails it). */
    for (int i = 0; i < 2000; i++) store_read_sync(s);
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    cap_store_free(s);
    cap_backend_free(mb);
}

/* A trim on its own thread. */
typedef struct trim_arg {
    cap_store_t *s;
    int rc; /* checked by the main thread (the checks are not thread-safe) */
    size_t dropped;
    _Atomic int done;
} trim_arg_t;

static void *run_trim(void *p)
{
    trim_arg_t *t = p;
    t->rc = cap_store_trim(t->s, &t->dropped);
    atomic_store(&t->done, 1);
    return NULL;
}

static void test_trim_waits_for_readers(void)
{
    enum { N = 40 };
    cap_backend_t *mb = NULL;
    cap_hash_t hs[N];
    cap_store_t *s = store_with_blobs(&mb, hs, N);
    cap_store_set_budget(s, 1); /* every unreferenced, written blob may go */
    pthread_t holder_th, trim_th;
    holder_t h;
    start_holder(&holder_th, &h, s, 200);
    static trim_arg_t t;
    memset(&t, 0, sizeof t);
    t.s = s;
    CHECK_EQ_INT(pthread_create(&trim_th, NULL, run_trim, &t), 0);
    sleep_ms(50);
    CHECK(!atomic_load(&t.done)); /* held up by the open section */
    pthread_join(holder_th, NULL);
    pthread_join(trim_th, NULL);
    CHECK(atomic_load(&t.done));
    CHECK_EQ_INT(t.rc, CAP_OK);
    CHECK_EQ_INT((int)t.dropped, N);
    CHECK_EQ_INT((int)cap_store_blob_count(s), 0);
    /* They come back through the backend. */
    for (int i = 0; i < N; i++) {
        cap_t *c = NULL;
        CHECK_EQ_INT(cap_store_get_blob(s, &hs[i], &c), CAP_OK);
        cap_release(c);
    }
    cap_store_free(s);
    cap_backend_free(mb);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_sync_waits();
    test_sync_progress();
    test_trim_waits_for_readers();
    return check_done("test_store_readers_mt");
}
