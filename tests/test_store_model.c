/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Model-based randomized test of the store.
 *
 * Thousands of random operation sequences (fixed seeds) run against a store
 * and, side by side, against a plain reference model kept here: which blobs
 * exist (by hash, with their content and the cap object the store keeps),
 * which instance entries exist and what they hold, which handle references
 * the test holds. After every step the store must agree with the model:
 * blob_count / instance_count exactly, the strong count of every held handle
 * (test-held references + Refs from caps of entries that still exist + 1 for
 * the store's own while its entry exists), the content of entries and blobs,
 * settle's hash (= cap_hash of the model's fully settled copy), what a sweep
 * removes (exactly the cascade of unreachable entries).
 *
 * sweep_budget may remove any dead entries first, so after a partial bounded
 * sweep the model knows how many unreachable ("garbage") entries remain but
 * not which; the strong counts of handles referenced only from garbage are
 * then checked against bounds, and exactly again after the next full sweep.
 *
 * Every cap and both stores use the checking test allocator; each sequence
 * ends with all handles released, a sweep, instance_count == 0, the store
 * freed and no live allocation.
 *
 * Environment: CAPSTORE_MODEL_SEQS overrides the number of sequences. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capstore/capstore.h"
#include "capstore/host.h"
#include "check.h"
#include "test_alloc.h"

/* Limits of one sequence's model. */
#define MAXE 512    /* instance entries (model indices) per sequence */
#define MAXB 512    /* blobs per sequence */
#define MAXH 256    /* test-held handle references */
#define MAXSL 8     /* occupied slots per cnode */
#define MAXPG 3     /* pages per data cap */
#define MAXPGSZ 64  /* page size at most */
#define POOL 8      /* small pool of hashes, so contents collide */
#define MAXREPUT 64 /* remembered settled contents for re-puts */

/* Stop each sequence at the first mismatch: later steps would only repeat it. */
static int seq_failed;
static unsigned long cur_seq, cur_step;
static const char *cur_op = "";

#define MCHECK(cond)                                                                      \
    do {                                                                                  \
        check_count++;                                                                    \
        if (!(cond)) {                                                                    \
            check_failures++;                                                             \
            seq_failed = 1;                                                               \
            fprintf(stderr, "%s:%d: seq %lu step %lu op %s: CHECK failed: %s\n", __FILE__, \
                    __LINE__, cur_seq, cur_step, cur_op, #cond);                          \
        }                                                                                 \
    } while (0)

#define MCHECK_EQ(a, b)                                                                   \
    do {                                                                                  \
        long long mc_a_ = (long long)(a), mc_b_ = (long long)(b);                         \
        check_count++;                                                                    \
        if (mc_a_ != mc_b_) {                                                             \
            check_failures++;                                                             \
            seq_failed = 1;                                                               \
            fprintf(stderr, "%s:%d: seq %lu step %lu op %s: CHECK failed: %s == %s (%lld != %lld)\n", \
                    __FILE__, __LINE__, cur_seq, cur_step, cur_op, #a, #b, mc_a_, mc_b_);  \
        }                                                                                 \
    } while (0)

/* ---- random numbers ---------------------------------------------------------------- */

static uint64_t rng_x;

static uint64_t rnd(void)
{
    uint64_t x = rng_x;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_x = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint32_t below(uint32_t n) { return n ? (uint32_t)(rnd() % n) : 0; }

static int chance(unsigned percent) { return below(100) < percent; }

static void rnd_hash(cap_hash_t *h)
{
    do {
        for (int i = 0; i < 4; i++) {
            uint64_t v = rnd();
            memcpy(h->bytes + 8 * i, &v, 8);
        }
    } while (cap_hash_is_zero(h));
}

/* ---- the model's cap contents -------------------------------------------------------- */

enum { MT_NONE = 0, MT_HASH = 1, MT_REF = 2 };

typedef struct mtarget {
    int kind;
    uint32_t ref; /* model index of the handle (MT_REF) */
    cap_hash_t hash;
} mtarget_t;

typedef struct mcap {
    cap_kind_t kind;
    /* CNode */
    unsigned size_log;
    unsigned nslots;
    uint32_t slot[MAXSL]; /* increasing */
    mtarget_t t[MAXSL];
    /* Instance */
    mtarget_t root;
    uint64_t pc, gas;
    /* Type */
    cap_hash_t th;
    /* Data */
    uint32_t page_size;
    unsigned npages;
    uint8_t bytes[MAXPG * MAXPGSZ];
} mcap_t;

/* One model index per handle the store ever gave out in this sequence. */
typedef struct ment {
    uint64_t id;
    cap_ref_t *ref; /* valid while anything references the handle */
    int held;       /* references the test holds */
    int exists;     /* the entry is in the store (possibly garbage) */
    int garbage;    /* exists, unreachable: the next full sweep removes it (a bounded
                       sweep may already have) */
    mcap_t c;
} ment_t;

typedef struct mblob {
    cap_hash_t hash;
    mcap_t c;        /* settled content */
    const cap_t *ptr; /* the cap the store keeps (borrowed; NULL until seen) */
} mblob_t;

static test_alloc_t ta;      /* caps and the store under test */
static test_alloc_t ta_foreign;
static const cap_alloc_t *A; /* &ta.alloc */

static cap_store_t *S;
static int S_verify;
static ment_t M[MAXE];
static uint32_t nM;
static mblob_t B[MAXB];
static uint32_t nB;
static uint32_t H[MAXH]; /* held references: model indices */
static uint32_t nH;
static uint32_t garbage_marked, garbage_left;
static cap_hash_t pool[POOL];
static mcap_t reput[MAXREPUT];
static uint32_t nreput;
static uint64_t last_id, first_id;

/* What the sequences exercised (printed at the end, so a run that silently
 * stopped covering something shows). */
static struct {
    unsigned long settle_ok, settle_missing, settle_nodes, settle_graduated;
    unsigned long swept, sweeps_nonzero, budget_partial, abandoned_edits, reputs_hit;
    unsigned long promotes, max_instances;
} st;

/* A handle of another store, to check that foreign handles are refused. */
static cap_store_t *FS;
static cap_ref_t *FH;

/* ---- model helpers --------------------------------------------------------------------- */

static int mc_has_refs(const mcap_t *c)
{
    if (c->kind == CAP_KIND_CNODE) {
        for (unsigned i = 0; i < c->nslots; i++)
            if (c->t[i].kind == MT_REF) return 1;
    } else if (c->kind == CAP_KIND_INSTANCE) {
        return c->root.kind == MT_REF;
    }
    return 0;
}

/* Calls fn on every Ref target of c. */
#define MC_FOR_REFS(c, var, body)                                                          \
    do {                                                                                   \
        if ((c)->kind == CAP_KIND_CNODE) {                                                 \
            for (unsigned mc_i_ = 0; mc_i_ < (c)->nslots; mc_i_++)                          \
                if ((c)->t[mc_i_].kind == MT_REF) {                                        \
                    uint32_t var = (c)->t[mc_i_].ref;                                      \
                    body;                                                                  \
                }                                                                          \
        } else if ((c)->kind == CAP_KIND_INSTANCE && (c)->root.kind == MT_REF) {           \
            uint32_t var = (c)->root.ref;                                                  \
            body;                                                                          \
        }                                                                                  \
    } while (0)

static int blob_find(const cap_hash_t *h)
{
    for (uint32_t i = 0; i < nB; i++)
        if (memcmp(B[i].hash.bytes, h->bytes, 32) == 0) return (int)i;
    return -1;
}

static uint32_t live_instances(void)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < nM; i++)
        if (M[i].exists && !M[i].garbage) n++;
    return n;
}

/* Recompute which existing entries are unreachable from the test's handles and
 * mark them garbage (a garbage entry never becomes live again). */
static void mark_garbage(void)
{
    static uint8_t live[MAXE];
    static uint32_t stack[MAXE];
    uint32_t sp = 0;
    memset(live, 0, nM);
    for (uint32_t i = 0; i < nM; i++)
        if (M[i].held > 0 && !live[i]) {
            live[i] = 1;
            stack[sp++] = i;
        }
    while (sp) {
        uint32_t i = stack[--sp];
        if (!M[i].exists || M[i].garbage) continue;
        MC_FOR_REFS(&M[i].c, j, {
            if (!live[j]) {
                live[j] = 1;
                stack[sp++] = j;
            }
        });
    }
    for (uint32_t i = 0; i < nM; i++) {
        if (M[i].exists && !M[i].garbage && !live[i]) {
            M[i].garbage = 1;
            garbage_marked++;
            garbage_left++;
        }
    }
}

/* All garbage is known to be gone (a full sweep, or bounded sweeps removed it all). */
static void garbage_gone(void)
{
    for (uint32_t i = 0; i < nM; i++)
        if (M[i].garbage) {
            M[i].garbage = 0;
            M[i].exists = 0;
        }
    garbage_marked = garbage_left = 0;
}

/* Whether entry `from` reaches entry `to` through Refs in existing entries. */
static int reaches(uint32_t from, uint32_t to)
{
    static uint8_t seen[MAXE];
    static uint32_t stack[MAXE];
    uint32_t sp = 0;
    memset(seen, 0, nM);
    stack[sp++] = from;
    seen[from] = 1;
    while (sp) {
        uint32_t i = stack[--sp];
        if (i == to) return 1;
        if (!M[i].exists) continue;
        MC_FOR_REFS(&M[i].c, j, {
            if (!seen[j]) {
                seen[j] = 1;
                stack[sp++] = j;
            }
        });
    }
    return 0;
}

/* ---- building and checking real caps ----------------------------------------------------- */

/* Build a cap from model content. subst (per model index, or NULL) replaces
 * Refs with the given hashes. Returns NULL on failure (reported). */
static cap_t *build(const mcap_t *c, const cap_hash_t *subst)
{
    cap_t *cap = NULL;
    int rc = CAP_OK;
    cap_target_t t;
    switch (c->kind) {
    case CAP_KIND_CNODE:
        rc = cap_cnode_new(&cap, A, c->size_log);
        for (unsigned i = 0; rc == CAP_OK && i < c->nslots; i++) {
            if (c->t[i].kind == MT_REF)
                t = subst ? cap_target_of_hash(&subst[c->t[i].ref]) : cap_target_of_ref(M[c->t[i].ref].ref);
            else
                t = cap_target_of_hash(&c->t[i].hash);
            rc = cap_cnode_set(cap, c->slot[i], &t);
        }
        break;
    case CAP_KIND_INSTANCE:
        if (c->root.kind == MT_REF)
            t = subst ? cap_target_of_hash(&subst[c->root.ref]) : cap_target_of_ref(M[c->root.ref].ref);
        else
            t = cap_target_of_hash(&c->root.hash);
        rc = cap_instance_new(&cap, A, &t);
        if (rc == CAP_OK) rc = cap_instance_set_pc(cap, c->pc);
        if (rc == CAP_OK) rc = cap_instance_set_gas_remaining(cap, c->gas);
        break;
    case CAP_KIND_TYPE:
        rc = cap_type_new(&cap, A, &c->th);
        break;
    case CAP_KIND_DATA:
        rc = cap_data_new_inline(&cap, A, c->page_size, c->bytes, (size_t)c->npages * c->page_size);
        break;
    default:
        rc = CAP_EINVAL;
        break;
    }
    MCHECK_EQ(rc, CAP_OK);
    if (rc != CAP_OK) {
        cap_release(cap);
        return NULL;
    }
    return cap;
}

static void check_target(const cap_target_t *got, const mtarget_t *want)
{
    MCHECK_EQ(got->kind, want->kind);
    if ((int)got->kind != want->kind) return;
    if (want->kind == MT_HASH) MCHECK(memcmp(got->hash.bytes, want->hash.bytes, 32) == 0);
    if (want->kind == MT_REF) {
        MCHECK(got->ref == M[want->ref].ref);
        MCHECK_EQ(cap_ref_id(got->ref), M[want->ref].id);
    }
}

/* The real cap has exactly the model's content. */
static void check_cap(const cap_t *cap, const mcap_t *c)
{
    MCHECK(cap != NULL);
    if (!cap) return;
    MCHECK_EQ(cap_kind(cap), c->kind);
    if (cap_kind(cap) != c->kind) return;
    switch (c->kind) {
    case CAP_KIND_CNODE: {
        MCHECK_EQ(cap_cnode_size_log(cap), c->size_log);
        MCHECK_EQ(cap_cnode_count(cap), c->nslots);
        if (cap_cnode_count(cap) != c->nslots) return;
        for (unsigned i = 0; i < c->nslots; i++) {
            uint32_t slot = 0;
            cap_target_t t;
            MCHECK_EQ(cap_cnode_entry(cap, i, &slot, &t), CAP_OK);
            MCHECK_EQ(slot, c->slot[i]);
            check_target(&t, &c->t[i]);
        }
        break;
    }
    case CAP_KIND_INSTANCE: {
        cap_target_t t = cap_instance_root_cnode(cap);
        check_target(&t, &c->root);
        MCHECK_EQ(cap_instance_pc(cap), c->pc);
        MCHECK_EQ(cap_instance_gas_remaining(cap), c->gas);
        break;
    }
    case CAP_KIND_TYPE:
        MCHECK(memcmp(cap_type_image_hash_chain(cap)->bytes, c->th.bytes, 32) == 0);
        break;
    case CAP_KIND_DATA: {
        MCHECK_EQ(cap_data_page_size(cap), c->page_size);
        MCHECK_EQ(cap_data_page_count(cap), c->npages);
        if (cap_data_page_count(cap) != c->npages || cap_data_page_size(cap) != c->page_size) return;
        for (unsigned p = 0; p < c->npages; p++) {
            const uint8_t *want = c->bytes + (size_t)p * c->page_size;
            const uint8_t *got = cap_data_page_bytes(cap, p);
            if (got) {
                MCHECK(memcmp(got, want, c->page_size) == 0);
            } else {
                MCHECK_EQ(cap_data_page_state(cap, p), CAP_PAGE_EMPTY);
                for (unsigned k = 0; k < c->page_size; k++) MCHECK_EQ(want[k], 0);
            }
        }
        break;
    }
    default:
        MCHECK(0);
    }
}

/* cap_hash of a content without Refs (or with Refs replaced by subst). */
static int model_hash(const mcap_t *c, const cap_hash_t *subst, cap_hash_t *out)
{
    cap_t *cap = build(c, subst);
    if (!cap) return -1;
    int rc = cap_hash(cap, out);
    MCHECK_EQ(rc, CAP_OK);
    cap_release(cap);
    return rc;
}

/* Replace Refs in c by the hashes in subst. */
static void mc_settle_targets(mcap_t *c, const cap_hash_t *subst)
{
    if (c->kind == CAP_KIND_CNODE) {
        for (unsigned i = 0; i < c->nslots; i++)
            if (c->t[i].kind == MT_REF) {
                c->t[i].hash = subst[c->t[i].ref];
                c->t[i].kind = MT_HASH;
                c->t[i].ref = 0;
            }
    } else if (c->kind == CAP_KIND_INSTANCE && c->root.kind == MT_REF) {
        c->root.hash = subst[c->root.ref];
        c->root.kind = MT_HASH;
        c->root.ref = 0;
    }
}

/* ---- random contents ----------------------------------------------------------------------- */

static void pick_hash(cap_hash_t *h)
{
    if (chance(60))
        *h = pool[below(POOL)];
    else
        rnd_hash(h);
}

/* A Ref target to a held handle that may go into entry `into` without making
 * a cycle (into = UINT32_MAX for a new entry). Returns 0 if none fits. */
static int pick_ref(uint32_t into, uint32_t *out)
{
    if (nH == 0) return 0;
    for (int tries = 0; tries < 6; tries++) {
        uint32_t j = H[below(nH)];
        /* Mostly handles whose entry still exists (deeper graphs to settle);
         * sometimes one that graduated, which settle reports missing. */
        if (!M[j].exists && !chance(10)) continue;
        if (into != UINT32_MAX && (j == into || reaches(j, into))) continue;
        *out = j;
        return 1;
    }
    return 0;
}

static void pick_target(mtarget_t *t, uint32_t into, int refs)
{
    uint32_t j;
    if (refs && chance(60) && pick_ref(into, &j)) {
        t->kind = MT_REF;
        t->ref = j;
        memset(t->hash.bytes, 0, 32);
    } else {
        t->kind = MT_HASH;
        t->ref = 0;
        pick_hash(&t->hash);
    }
}

static int mc_slot_pos(const mcap_t *c, uint32_t slot)
{
    for (unsigned i = 0; i < c->nslots; i++)
        if (c->slot[i] == slot) return (int)i;
    return -1;
}

static void mc_cnode_set(mcap_t *c, uint32_t slot, const mtarget_t *t)
{
    int p = mc_slot_pos(c, slot);
    if (p >= 0) {
        c->t[p] = *t;
        return;
    }
    unsigned i = c->nslots;
    while (i > 0 && c->slot[i - 1] > slot) {
        c->slot[i] = c->slot[i - 1];
        c->t[i] = c->t[i - 1];
        i--;
    }
    c->slot[i] = slot;
    c->t[i] = *t;
    c->nslots++;
}

static void mc_cnode_clear(mcap_t *c, uint32_t slot)
{
    int p = mc_slot_pos(c, slot);
    if (p < 0) return;
    size_t after = c->nslots - (unsigned)p - 1;
    memmove(&c->slot[p], &c->slot[p + 1], after * sizeof c->slot[0]);
    memmove(&c->t[p], &c->t[p + 1], after * sizeof c->t[0]);
    c->nslots--;
}

static void rnd_data_bytes(uint8_t *p, size_t n)
{
    /* Mostly a few distinct patterns, so equal contents recur. */
    if (chance(50)) {
        uint8_t v = (uint8_t)below(3);
        memset(p, v, n);
        return;
    }
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)below(4);
}

/* Random content; refs = whether Ref targets may appear. */
static void rnd_mcap(mcap_t *c, int refs)
{
    memset(c, 0, sizeof *c);
    unsigned k = below(100);
    if (k < 50) {
        c->kind = CAP_KIND_CNODE;
        c->size_log = below(9);
        uint32_t capn = 1u << c->size_log;
        unsigned want = below((capn < MAXSL ? capn : MAXSL) + 1);
        if (!refs && chance(30)) want = below(2); /* small ones collide */
        while (c->nslots < want) {
            uint32_t s = below(capn);
            if (mc_slot_pos(c, s) >= 0) continue;
            mtarget_t t;
            pick_target(&t, UINT32_MAX, refs);
            mc_cnode_set(c, s, &t);
        }
    } else if (k < 65 && refs) {
        c->kind = CAP_KIND_INSTANCE;
        pick_target(&c->root, UINT32_MAX, refs);
        c->pc = below(3);
        c->gas = below(3);
    } else if (k < 82) {
        c->kind = CAP_KIND_TYPE;
        pick_hash(&c->th);
    } else {
        c->kind = CAP_KIND_DATA;
        c->page_size = chance(50) ? 32 : 64;
        c->npages = below(MAXPG + 1);
        rnd_data_bytes(c->bytes, (size_t)c->npages * c->page_size);
    }
}

/* ---- edits (applied to a writable real cap and to the model alike) ---------------------- */

enum { ED_CNODE_SET, ED_CNODE_CLEAR, ED_CNODE_BADSLOT, ED_INST_PC, ED_INST_ROOT, ED_TYPE_SET,
       ED_DATA_WRITE, ED_DATA_GROW };

typedef struct edit {
    int op;
    uint32_t slot;
    mtarget_t t;
    uint64_t v;
    cap_hash_t h;
    uint32_t off, len;
    uint8_t bytes[16];
} edit_t;

typedef struct edits {
    unsigned n;
    edit_t e[3];
} edits_t;

static void rnd_edits(edits_t *es, const mcap_t *c, uint32_t into)
{
    es->n = 1 + below(3);
    for (unsigned i = 0; i < es->n; i++) {
        edit_t *e = &es->e[i];
        memset(e, 0, sizeof *e);
        switch (c->kind) {
        case CAP_KIND_CNODE: {
            uint32_t capn = 1u << c->size_log;
            unsigned r = below(10);
            if (r < 6) {
                e->op = ED_CNODE_SET;
                e->slot = below(capn);
                pick_target(&e->t, into, 1);
            } else if (r < 9) {
                e->op = ED_CNODE_CLEAR;
                e->slot = (c->nslots && chance(70)) ? c->slot[below(c->nslots)] : below(capn);
            } else {
                e->op = ED_CNODE_BADSLOT;
                e->slot = capn + below(4);
            }
            break;
        }
        case CAP_KIND_INSTANCE:
            if (chance(50)) {
                e->op = ED_INST_PC;
                e->v = below(5);
            } else {
                e->op = ED_INST_ROOT;
                pick_target(&e->t, into, 1);
            }
            break;
        case CAP_KIND_TYPE:
            e->op = ED_TYPE_SET;
            pick_hash(&e->h);
            break;
        case CAP_KIND_DATA:
            if (c->npages == 0 || chance(15)) {
                e->op = ED_DATA_GROW;
            } else {
                e->op = ED_DATA_WRITE;
                uint32_t total = c->npages * c->page_size;
                e->len = 1 + below(16);
                if (e->len > total) e->len = total;
                e->off = below(total - e->len + 1);
                for (unsigned b = 0; b < e->len; b++) e->bytes[b] = (uint8_t)below(4);
            }
            break;
        default:
            break;
        }
    }
}

/* Count how many cnode slots the edits would leave occupied; refuse edits
 * that overflow the model's slot array by turning them into clears. */
static void fit_edits(edits_t *es, const mcap_t *c)
{
    mcap_t tmp = *c;
    for (unsigned i = 0; i < es->n; i++) {
        edit_t *e = &es->e[i];
        if (e->op == ED_CNODE_SET && mc_slot_pos(&tmp, e->slot) < 0 && tmp.nslots >= MAXSL)
            e->op = ED_CNODE_CLEAR;
        if (e->op == ED_CNODE_SET) mc_cnode_set(&tmp, e->slot, &e->t);
        if (e->op == ED_CNODE_CLEAR) mc_cnode_clear(&tmp, e->slot);
        if (e->op == ED_DATA_GROW && tmp.npages >= MAXPG) {
            e->op = ED_DATA_WRITE;
            e->len = 0;
        }
        if (e->op == ED_DATA_GROW) tmp.npages++;
    }
}

static void apply_model_edits(mcap_t *c, const edits_t *es)
{
    for (unsigned i = 0; i < es->n; i++) {
        const edit_t *e = &es->e[i];
        switch (e->op) {
        case ED_CNODE_SET: mc_cnode_set(c, e->slot, &e->t); break;
        case ED_CNODE_CLEAR: mc_cnode_clear(c, e->slot); break;
        case ED_CNODE_BADSLOT: break;
        case ED_INST_PC: c->pc = e->v; break;
        case ED_INST_ROOT: c->root = e->t; break;
        case ED_TYPE_SET: c->th = e->h; break;
        case ED_DATA_WRITE: memcpy(c->bytes + e->off, e->bytes, e->len); break;
        case ED_DATA_GROW:
            memset(c->bytes + (size_t)c->npages * c->page_size, 0, c->page_size);
            c->npages++;
            break;
        default: break;
        }
    }
}

static cap_target_t real_target(const mtarget_t *t)
{
    if (t->kind == MT_REF) return cap_target_of_ref(M[t->ref].ref);
    return cap_target_of_hash(&t->hash);
}

/* Apply edits to a writable cap; returns CAP_OK or the first unexpected error. */
static int apply_real_edits(cap_t *c, const edits_t *es)
{
    for (unsigned i = 0; i < es->n; i++) {
        const edit_t *e = &es->e[i];
        cap_target_t t;
        int rc = CAP_OK;
        switch (e->op) {
        case ED_CNODE_SET:
            t = real_target(&e->t);
            rc = cap_cnode_set(c, e->slot, &t);
            break;
        case ED_CNODE_CLEAR: rc = cap_cnode_clear(c, e->slot); break;
        case ED_CNODE_BADSLOT: {
            cap_hash_t h;
            memset(h.bytes, 7, 32);
            t = cap_target_of_hash(&h);
            int r2 = cap_cnode_set(c, e->slot, &t);
            MCHECK_EQ(r2, CAP_ESLOTRANGE);
            break;
        }
        case ED_INST_PC: rc = cap_instance_set_pc(c, e->v); break;
        case ED_INST_ROOT:
            t = real_target(&e->t);
            rc = cap_instance_set_root_cnode(c, &t);
            break;
        case ED_TYPE_SET: rc = cap_type_set_image_hash_chain(c, &e->h); break;
        case ED_DATA_WRITE:
            if (e->len) rc = cap_data_write(c, e->off, e->bytes, e->len);
            break;
        case ED_DATA_GROW: rc = cap_data_resize(c, cap_data_page_count(c) + 1); break;
        default: break;
        }
        if (rc != CAP_OK) return rc;
    }
    return CAP_OK;
}

/* ---- checks against the store ------------------------------------------------------------- */

static void check_counts(void)
{
    MCHECK_EQ(cap_store_blob_count(S), nB);
    MCHECK_EQ(cap_store_instance_count(S), live_instances() + garbage_left);
}

/* Strong counts of every handle the test holds. */
static void check_strong_counts(void)
{
    static int exact[MAXE], fromgarbage[MAXE];
    memset(exact, 0, sizeof(int) * nM);
    memset(fromgarbage, 0, sizeof(int) * nM);
    for (uint32_t i = 0; i < nM; i++) {
        if (!M[i].exists) continue;
        int *acc = M[i].garbage ? fromgarbage : exact;
        MC_FOR_REFS(&M[i].c, j, { acc[j]++; });
    }
    for (uint32_t i = 0; i < nH; i++) exact[H[i]]++;
    int precise = garbage_left == garbage_marked;
    for (uint32_t i = 0; i < nM; i++) {
        if (M[i].held == 0) continue;
        long long want = exact[i] + (M[i].exists ? 1 : 0);
        long long got = (long long)cap_ref_strong_count(M[i].ref);
        if (precise) {
            MCHECK_EQ(got, want + fromgarbage[i]);
        } else {
            MCHECK(got >= want && got <= want + fromgarbage[i]);
        }
        MCHECK_EQ(cap_ref_id(M[i].ref), M[i].id);
    }
}

/* The entry behind a held handle has the model's content (or is gone). */
static void check_entry(uint32_t idx)
{
    cap_t *c = (cap_t *)1;
    int rc = cap_store_get_instance(S, M[idx].ref, &c);
    if (M[idx].exists) {
        MCHECK_EQ(rc, CAP_OK);
        if (rc == CAP_OK) {
            check_cap(c, &M[idx].c);
            cap_release(c);
        }
    } else {
        MCHECK_EQ(rc, CAP_EINSTANCEMISSING);
        MCHECK(c == NULL);
    }
}

static void check_blob(uint32_t b)
{
    cap_t *c = NULL;
    int rc = cap_store_get_blob(S, &B[b].hash, &c);
    MCHECK_EQ(rc, CAP_OK);
    if (rc != CAP_OK) return;
    if (B[b].ptr)
        MCHECK(c == B[b].ptr);
    else
        B[b].ptr = c;
    check_cap(c, &B[b].c);
    MCHECK(cap_is_frozen(c));
    cap_release(c);
}

static void check_all(void)
{
    check_counts();
    check_strong_counts();
    for (uint32_t i = 0; i < nM; i++)
        if (M[i].held) check_entry(i);
    for (uint32_t b = 0; b < nB; b++) check_blob(b);
}

/* ---- operations ------------------------------------------------------------------------------ */

static void hold(uint32_t idx)
{
    if (nH < MAXH) {
        H[nH++] = idx;
        M[idx].held++;
    } else {
        /* Too many held: drop the new reference at once. */
        cap_ref_release(M[idx].ref);
    }
}

static void remember_reput(const mcap_t *c)
{
    if (nreput < MAXREPUT)
        reput[nreput++] = *c;
    else
        reput[below(MAXREPUT)] = *c;
}

/* Add a blob to the model if absent; returns its index. */
static uint32_t model_add_blob(const cap_hash_t *h, const mcap_t *c, const cap_t *ptr)
{
    int b = blob_find(h);
    if (b >= 0) return (uint32_t)b;
    if (nB >= MAXB) {
        fprintf(stderr, "model: too many blobs\n");
        exit(2);
    }
    B[nB].hash = *h;
    B[nB].c = *c;
    B[nB].ptr = ptr;
    return nB++;
}

static void op_put_cap(void)
{
    mcap_t c;
    if (nreput && chance(25))
        c = reput[below(nreput)];
    else
        rnd_mcap(&c, 0);
    MCHECK(!mc_has_refs(&c));
    cap_t *cap = build(&c, NULL);
    if (!cap) return;
    cap_hash_t want, got;
    if (model_hash(&c, NULL, &want) != CAP_OK) {
        cap_release(cap);
        return;
    }
    int existed = blob_find(&want) >= 0;
    int rc;
    if (chance(30)) {
        cur_op = "put_cap_with_hash";
        rc = cap_store_put_cap_with_hash(S, &want, cap);
        got = want;
    } else {
        cur_op = "put_cap";
        rc = cap_store_put_cap(S, cap, &got);
    }
    MCHECK_EQ(rc, CAP_OK);
    if (rc == CAP_OK) {
        MCHECK(memcmp(got.bytes, want.bytes, 32) == 0);
        MCHECK(cap_is_frozen(cap));
        if (c.kind == CAP_KIND_CNODE) {
            cap_hash_t h = pool[0];
            cap_target_t t = cap_target_of_hash(&h);
            MCHECK_EQ(cap_cnode_set(cap, 0, &t), CAP_EBUSY);
        }
        uint32_t b = model_add_blob(&want, &c, existed ? NULL : cap);
        if (existed && B[b].ptr) {
            cap_t *g = NULL;
            MCHECK_EQ(cap_store_get_blob(S, &want, &g), CAP_OK);
            MCHECK(g == B[b].ptr); /* re-put keeps the first cap */
            st.reputs_hit++;
            MCHECK(g != cap);
            cap_release(g);
        }
        remember_reput(&c);
    }
    cap_release(cap);
}

static void op_put_wrong_hash(void)
{
    cur_op = "put_cap_with_hash(wrong)";
    mcap_t c;
    rnd_mcap(&c, 0);
    cap_t *cap = build(&c, NULL);
    if (!cap) return;
    cap_hash_t h;
    rnd_hash(&h);
    int rc = cap_store_put_cap_with_hash(S, &h, cap);
    MCHECK_EQ(rc, CAP_EMISMATCH);
    MCHECK(!cap_store_contains_blob(S, &h));
    cap_release(cap);
}

/* put_cap / put_cap_with_hash of a cap holding a Ref: always refused. */
static void op_put_unsettled(void)
{
    cur_op = "put_cap(unsettled)";
    if (nH == 0) return;
    cap_t *cap = NULL;
    MCHECK_EQ(cap_cnode_new(&cap, A, 2), CAP_OK);
    if (!cap) return;
    cap_target_t t = cap_target_of_ref(M[H[below(nH)]].ref);
    MCHECK_EQ(cap_cnode_set(cap, below(4), &t), CAP_OK);
    cap_hash_t h;
    rnd_hash(&h);
    MCHECK_EQ(cap_store_put_cap(S, cap, &h), CAP_EUNSETTLED);
    MCHECK_EQ(cap_store_put_cap_with_hash(S, &h, cap), CAP_EUNSETTLED);
    MCHECK_EQ(cap_hash(cap, &h), CAP_EUNSETTLED);
    cap_release(cap);
}

static void pick_lookup_hash(cap_hash_t *h, int *present)
{
    if (nB && chance(70)) {
        *h = B[below(nB)].hash;
        *present = 1;
    } else {
        rnd_hash(h);
        *present = blob_find(h) >= 0;
    }
}

static void op_get_blob(void)
{
    cur_op = "get_blob";
    cap_hash_t h;
    int present;
    pick_lookup_hash(&h, &present);
    MCHECK_EQ(cap_store_contains_blob(S, &h), present);
    cap_t *c = (cap_t *)1;
    int rc;
    if (chance(30)) {
        cap_target_t t = cap_target_of_hash(&h);
        rc = cap_store_get(S, &t, &c);
    } else {
        rc = cap_store_get_blob(S, &h, &c);
    }
    if (present) {
        MCHECK_EQ(rc, CAP_OK);
        if (rc == CAP_OK) {
            uint32_t b = (uint32_t)blob_find(&h);
            if (B[b].ptr)
                MCHECK(c == B[b].ptr);
            else
                B[b].ptr = c;
            check_cap(c, &B[b].c);
            cap_release(c);
        }
    } else {
        MCHECK_EQ(rc, CAP_EBLOBMISSING);
        MCHECK(c == NULL);
    }
}

static uint32_t new_model_entry(cap_ref_t *r, const mcap_t *c)
{
    if (nM >= MAXE) {
        fprintf(stderr, "model: too many entries\n");
        exit(2);
    }
    uint32_t idx = nM++;
    memset(&M[idx], 0, sizeof M[idx]);
    M[idx].id = cap_ref_id(r);
    M[idx].ref = r;
    M[idx].exists = 1;
    M[idx].c = *c;
    MCHECK(M[idx].id >= 1);
    if (last_id == 0) MCHECK_EQ(M[idx].id, first_id ? first_id : 1);
    last_id = M[idx].id;
    for (uint32_t i = 0; i < idx; i++) MCHECK(M[i].id != M[idx].id);
    hold(idx);
    return idx;
}

static void op_promote(void)
{
    cur_op = "promote";
    cap_hash_t h;
    int present;
    pick_lookup_hash(&h, &present);
    cap_ref_t *r = (cap_ref_t *)1;
    int rc = cap_store_promote_blob_to_instance(S, &h, &r);
    if (!present) {
        MCHECK_EQ(rc, CAP_EBLOBMISSING);
        MCHECK(r == NULL);
        return;
    }
    MCHECK_EQ(rc, CAP_OK);
    if (rc != CAP_OK) return;
    uint32_t b = (uint32_t)blob_find(&h);
    uint32_t idx = new_model_entry(r, &B[b].c);
    st.promotes++;
    /* No copy: the entry shares the blob's cap. */
    cap_t *c = NULL, *bc = NULL;
    MCHECK_EQ(cap_store_get_instance(S, r, &c), CAP_OK);
    MCHECK_EQ(cap_store_get_blob(S, &h, &bc), CAP_OK);
    MCHECK(c == bc && c != NULL);
    if (!B[b].ptr) B[b].ptr = bc;
    cap_release(c);
    cap_release(bc);
    (void)idx;
}

static void op_put_instance(void)
{
    cur_op = "put_instance";
    mcap_t c;
    rnd_mcap(&c, 1);
    cap_t *cap = build(&c, NULL);
    if (!cap) return;
    cap_ref_t *r = NULL;
    int rc = cap_store_put_instance(S, cap, &r);
    MCHECK_EQ(rc, CAP_OK);
    if (rc == CAP_OK) {
        new_model_entry(r, &c);
        /* The entry shares the cap now: the caller can no longer write it. */
        if (c.kind == CAP_KIND_TYPE) MCHECK_EQ(cap_type_set_image_hash_chain(cap, &pool[1]), CAP_EBUSY);
    }
    cap_release(cap);
}

/* Put `c` (built) as a new instance; *idx = its model entry. False if it
 * could not be built or put (the check already counted the failure). */
static bool put_model_instance(const mcap_t *c, uint32_t *idx)
{
    cap_t *cap = build(c, NULL);
    if (!cap) return false;
    cap_ref_t *r = NULL;
    int rc = cap_store_put_instance(S, cap, &r);
    cap_release(cap);
    MCHECK_EQ(rc, CAP_OK);
    if (rc != CAP_OK) return false;
    *idx = new_model_entry(r, c);
    return true;
}

/* A few levels of new entries (cnodes and instances over them), children
 * shared between parents (a DAG); intermediate handles are mostly dropped,
 * so the graph hangs off its top handle(s) only. */
static void op_build_tree(void)
{
    cur_op = "build_tree";
    uint32_t level[8], nlevel = 0, next[8], nnext;
    unsigned width = 2 + below(5);
    for (unsigned i = 0; i < width; i++) {
        mcap_t c;
        rnd_mcap(&c, chance(30));
        if (!put_model_instance(&c, &level[nlevel])) return;
        nlevel++;
    }
    unsigned depth = 1 + below(3);
    for (unsigned d = 0; d < depth && nlevel > 0; d++) {
        nnext = 0;
        unsigned nparents = 1 + below(nlevel < 3 ? nlevel : 3);
        for (unsigned p = 0; p < nparents; p++) {
            mcap_t c;
            memset(&c, 0, sizeof c);
            if (chance(25)) {
                c.kind = CAP_KIND_INSTANCE;
                c.root.kind = MT_REF;
                c.root.ref = level[below(nlevel)];
                c.pc = below(3);
            } else {
                c.kind = CAP_KIND_CNODE;
                c.size_log = 3;
                unsigned nref = 1 + below(4);
                for (unsigned k = 0; k < nref; k++) {
                    mtarget_t t = {MT_REF, level[below(nlevel)], {{0}}};
                    mc_cnode_set(&c, below(8), &t);
                }
                if (chance(50)) {
                    mtarget_t t;
                    pick_target(&t, UINT32_MAX, 1);
                    mc_cnode_set(&c, below(8), &t);
                }
            }
            if (!put_model_instance(&c, &next[nnext])) return;
            nnext++;
        }
        /* Drop most references to the level below (now held by the parents). */
        for (unsigned i = 0; i < nlevel; i++) {
            if (chance(20)) continue;
            for (uint32_t k = nH; k-- > 0;)
                if (H[k] == level[i]) {
                    H[k] = H[--nH];
                    M[level[i]].held--;
                    cap_ref_release(M[level[i]].ref);
                    break;
                }
        }
        memcpy(level, next, sizeof(uint32_t) * nnext);
        nlevel = nnext;
    }
}

static void op_get_instance(void)
{
    cur_op = "get_instance";
    if (nH == 0) return;
    uint32_t idx = H[below(nH)];
    if (chance(30)) {
        cap_target_t t = cap_target_of_ref(M[idx].ref);
        cap_t *c = (cap_t *)1;
        int rc = cap_store_get(S, &t, &c);
        if (M[idx].exists) {
            MCHECK_EQ(rc, CAP_OK);
            if (rc == CAP_OK) check_cap(c, &M[idx].c);
            cap_release(rc == CAP_OK ? c : NULL);
        } else {
            MCHECK_EQ(rc, CAP_EINSTANCEMISSING);
            MCHECK(c == NULL);
        }
    } else {
        check_entry(idx);
    }
}

/* get_instance -> make_mut -> edits -> set_instance (the seed's pattern). */
static void op_make_mut_set(void)
{
    cur_op = "make_mut+set_instance";
    if (nH == 0) return;
    uint32_t idx = H[below(nH)];
    cap_t *c = NULL;
    int rc = cap_store_get_instance(S, M[idx].ref, &c);
    if (!M[idx].exists) {
        MCHECK_EQ(rc, CAP_EINSTANCEMISSING);
        return;
    }
    MCHECK_EQ(rc, CAP_OK);
    if (rc != CAP_OK) return;
    edits_t es;
    rnd_edits(&es, &M[idx].c, idx);
    fit_edits(&es, &M[idx].c);
    /* Shared with the store: not writable, setters refuse. */
    MCHECK(!cap_is_writable(c));
    if (M[idx].c.kind == CAP_KIND_INSTANCE) MCHECK_EQ(cap_instance_set_pc(c, 99), CAP_EBUSY);
    cap_t *orig = c;
    rc = cap_make_mut(&c);
    MCHECK_EQ(rc, CAP_OK);
    if (rc != CAP_OK) {
        cap_release(c);
        return;
    }
    MCHECK(c != orig); /* the store holds the original: make_mut copies */
    MCHECK(cap_is_writable(c));
    rc = apply_real_edits(c, &es);
    MCHECK_EQ(rc, CAP_OK);
    if (rc == CAP_OK) {
        cap_err_t err;
        memset(&err, 0, sizeof err);
        rc = cap_store_set_instance(S, M[idx].ref, c, &err);
        MCHECK_EQ(rc, CAP_OK);
        if (rc == CAP_OK) apply_model_edits(&M[idx].c, &es);
    }
    cap_release(c);
}

typedef struct edit_arg {
    const edits_t *es;
    int called;
    int fail;
} edit_arg_t;

static int edit_cb(cap_t *c, void *arg)
{
    edit_arg_t *ea = arg;
    ea->called++;
    MCHECK(cap_is_writable(c));
    int rc = apply_real_edits(c, ea->es);
    MCHECK_EQ(rc, CAP_OK);
    if (ea->fail) return CAP_EINVAL; /* abandon: nothing may change */
    return rc;
}

static void op_edit_instance(void)
{
    cur_op = "edit_instance";
    if (nH == 0) return;
    uint32_t idx = H[below(nH)];
    edits_t es;
    edit_arg_t ea = {&es, 0, chance(15)};
    cap_err_t err;
    memset(&err, 0, sizeof err);
    if (!M[idx].exists) {
        es.n = 0;
        int rc = cap_store_edit_instance(S, M[idx].ref, edit_cb, &ea, &err);
        MCHECK_EQ(rc, CAP_EINSTANCEMISSING);
        MCHECK_EQ(err.id, M[idx].id);
        MCHECK_EQ(ea.called, 0);
        return;
    }
    rnd_edits(&es, &M[idx].c, idx);
    fit_edits(&es, &M[idx].c);
    int rc = cap_store_edit_instance(S, M[idx].ref, edit_cb, &ea, &err);
    MCHECK_EQ(ea.called, 1);
    if (ea.fail) {
        st.abandoned_edits++;
        MCHECK_EQ(rc, CAP_EINVAL);
    } else {
        MCHECK_EQ(rc, CAP_OK);
        if (rc == CAP_OK) apply_model_edits(&M[idx].c, &es);
    }
}

/* Replace the entry's cap with a fresh one (any kind). */
static void op_replace(void)
{
    cur_op = "set_instance(replace)";
    if (nH == 0) return;
    uint32_t idx = H[below(nH)];
    mcap_t c;
    /* Refs, but none that would close a cycle through idx. */
    for (int tries = 0;; tries++) {
        rnd_mcap(&c, 1);
        int ok = 1;
        MC_FOR_REFS(&c, j, {
            if (j == idx || reaches(j, idx)) ok = 0;
        });
        if (ok) break;
        if (tries > 8) {
            rnd_mcap(&c, 0);
            break;
        }
    }
    cap_t *cap = build(&c, NULL);
    if (!cap) return;
    cap_err_t err;
    memset(&err, 0, sizeof err);
    int rc = cap_store_set_instance(S, M[idx].ref, cap, &err);
    if (M[idx].exists) {
        MCHECK_EQ(rc, CAP_OK);
        if (rc == CAP_OK) M[idx].c = c;
    } else {
        MCHECK_EQ(rc, CAP_EINSTANCEMISSING);
        MCHECK_EQ(err.code, CAP_EINSTANCEMISSING);
        MCHECK_EQ(err.id, M[idx].id);
    }
    cap_release(cap);
}

static void op_release(void)
{
    cur_op = "release";
    if (nH == 0) return;
    uint32_t k = below(nH);
    uint32_t idx = H[k];
    H[k] = H[--nH];
    M[idx].held--;
    cap_ref_release(M[idx].ref);
}

static void op_retain(void)
{
    cur_op = "retain";
    if (nH == 0 || nH >= MAXH) return;
    uint32_t idx = H[below(nH)];
    MCHECK(cap_ref_retain(M[idx].ref) == M[idx].ref);
    H[nH++] = idx;
    M[idx].held++;
}

static void op_sweep(void)
{
    cur_op = "sweep_instances";
    size_t removed = 12345;
    MCHECK_EQ(cap_store_sweep_instances(S, &removed), CAP_OK);
    MCHECK_EQ(removed, garbage_left);
    st.swept += removed;
    st.sweeps_nonzero += removed > 0;
    garbage_gone();
}

static void op_sweep_budget(void)
{
    cur_op = "sweep_budget";
    size_t budget = below(5);
    size_t removed = 12345;
    bool more = false;
    MCHECK_EQ(cap_store_sweep_budget(S, budget, &removed, &more), CAP_OK);
    size_t want = budget < garbage_left ? budget : garbage_left;
    MCHECK_EQ(removed, want);
    if (removed > garbage_left) removed = garbage_left;
    garbage_left -= (uint32_t)removed;
    MCHECK_EQ(more, garbage_left > 0);
    st.swept += removed;
    st.budget_partial += garbage_left > 0;
    if (garbage_left == 0) garbage_gone();
}

/* The model's settle of idx: post-order over the reachable existing entries.
 * Returns CAP_OK with hashes in subst, or CAP_EINSTANCEMISSING with the set
 * of missing ids flagged in missing[]. */
static int model_settle(uint32_t root, cap_hash_t *subst, uint8_t *done, uint8_t *missing,
                        uint32_t *order, uint32_t *norder)
{
    static uint32_t stack[MAXE * (MAXSL + 1) + 1];
    static uint8_t state[MAXE]; /* 0 new, 1 on stack, 2 done */
    memset(state, 0, nM);
    memset(done, 0, nM);
    memset(missing, 0, nM);
    *norder = 0;
    int err = CAP_OK;
    uint32_t sp = 0;
    stack[sp++] = root;
    while (sp) {
        uint32_t i = stack[sp - 1];
        if (state[i] == 2) {
            sp--;
            continue;
        }
        if (!M[i].exists) {
            missing[i] = 1;
            err = CAP_EINSTANCEMISSING;
            state[i] = 2;
            sp--;
            continue;
        }
        if (state[i] == 0) {
            state[i] = 1;
            MC_FOR_REFS(&M[i].c, j, {
                if (state[j] == 0) stack[sp++] = j;
            });
            continue;
        }
        /* children done */
        sp--;
        state[i] = 2;
        if (err == CAP_OK) {
            if (model_hash(&M[i].c, subst, &subst[i]) != CAP_OK) return CAP_EINVAL;
            done[i] = 1;
            order[(*norder)++] = i;
        }
    }
    return err;
}

static void op_settle(void)
{
    cur_op = "settle";
    cap_hash_t out;
    cap_err_t err;
    memset(&err, 0, sizeof err);
    if (nH == 0 || chance(5)) {
        cap_hash_t h;
        rnd_hash(&h);
        cap_target_t t = cap_target_of_hash(&h);
        MCHECK_EQ(cap_store_settle(S, &t, &out, &err), CAP_OK);
        MCHECK(memcmp(out.bytes, h.bytes, 32) == 0);
        return;
    }
    static cap_hash_t subst[MAXE];
    static uint8_t done[MAXE], missing[MAXE];
    static uint32_t order[MAXE];
    uint32_t norder = 0;
    /* Mostly an existing entry with Refs (a graph to settle), of a few picks. */
    uint32_t root = H[below(nH)];
    for (int tries = 0; tries < 4 && chance(85); tries++) {
        uint32_t j = H[below(nH)];
        if (M[j].exists && (!M[root].exists || mc_has_refs(&M[j].c))) root = j;
    }
    int want = model_settle(root, subst, done, missing, order, &norder);
    cap_target_t t = cap_target_of_ref(M[root].ref);
    int rc = cap_store_settle(S, &t, &out, &err);
    MCHECK_EQ(rc, want);
    if (rc != want) return;
    if (want == CAP_EINSTANCEMISSING) {
        MCHECK_EQ(err.code, CAP_EINSTANCEMISSING);
        int known = 0;
        for (uint32_t i = 0; i < nM; i++)
            if (missing[i] && M[i].id == err.id) known = 1;
        MCHECK(known);
        st.settle_missing++;
        return; /* atomic: nothing changed (check_all verifies) */
    }
    if (want != CAP_OK) return;
    MCHECK(memcmp(out.bytes, subst[root].bytes, 32) == 0);
    st.settle_ok++;
    st.settle_nodes += norder;
    /* Apply: Instance entries are rewritten and stay; the rest move to blobs. */
    for (uint32_t k = 0; k < norder; k++) {
        uint32_t i = order[k];
        mc_settle_targets(&M[i].c, subst);
        if (M[i].c.kind != CAP_KIND_INSTANCE) {
            st.settle_graduated++;
            M[i].exists = 0;
            model_add_blob(&subst[i], &M[i].c, NULL);
        }
    }
}

/* Foreign handles are refused and change nothing. */
static void op_foreign(void)
{
    cur_op = "foreign";
    cap_t *c = (cap_t *)1;
    cap_err_t err;
    memset(&err, 0, sizeof err);
    MCHECK_EQ(cap_store_get_instance(S, FH, &c), CAP_EINVAL);
    cap_t *cap = NULL;
    MCHECK_EQ(cap_cnode_new(&cap, A, 1), CAP_OK);
    if (!cap) return;
    MCHECK_EQ(cap_store_set_instance(S, FH, cap, &err), CAP_EINVAL);
    cap_target_t t = cap_target_of_ref(FH);
    cap_hash_t out;
    MCHECK_EQ(cap_store_settle(S, &t, &out, &err), CAP_EINVAL);
    MCHECK_EQ(cap_cnode_set(cap, 1, &t), CAP_OK);
    cap_ref_t *r = (cap_ref_t *)1;
    MCHECK_EQ(cap_store_put_instance(S, cap, &r), CAP_EINVAL);
    if (nH) {
        uint32_t idx = H[below(nH)];
        int rc = cap_store_set_instance(S, M[idx].ref, cap, &err);
        MCHECK(rc == CAP_EINVAL || (rc == CAP_EINSTANCEMISSING && !M[idx].exists));
    }
    cap_release(cap);
}

static void op_iter_blobs(void)
{
    cur_op = "iter_blobs";
    cap_blob_entry_t *e = NULL;
    size_t n = 0;
    int sorted = chance(70);
    int rc = sorted ? cap_store_iter_blobs_sorted(S, &e, &n) : cap_store_iter_blobs(S, &e, &n);
    MCHECK_EQ(rc, CAP_OK);
    if (rc != CAP_OK) return;
    MCHECK_EQ(n, nB);
    static uint8_t seen[MAXB];
    memset(seen, 0, sizeof seen);
    for (size_t i = 0; i < n; i++) {
        if (sorted && i > 0) MCHECK(memcmp(e[i - 1].hash.bytes, e[i].hash.bytes, 32) < 0);
        int b = blob_find(&e[i].hash);
        MCHECK(b >= 0);
        if (b < 0) continue;
        MCHECK(!seen[b]);
        seen[b] = 1;
        if (B[b].ptr)
            MCHECK(e[i].cap == B[b].ptr);
        else
            B[b].ptr = e[i].cap;
        cap_hash_t h;
        MCHECK_EQ(cap_hash(e[i].cap, &h), CAP_OK);
        MCHECK(memcmp(h.bytes, e[i].hash.bytes, 32) == 0);
    }
    cap_store_blobs_free(S, e, n);
}

/* ---- one sequence ------------------------------------------------------------------------------ */

static void run_sequence(unsigned long seq)
{
    cur_seq = seq;
    cur_step = 0;
    seq_failed = 0;
    rng_x = 0x9E3779B97F4A7C15ull ^ (0xD1B54A32D192ED03ull * (seq + 1));
    nM = nB = nH = 0;
    garbage_marked = garbage_left = 0;
    nreput = 0;
    last_id = 0;
    for (int i = 0; i < POOL; i++) rnd_hash(&pool[i]);

    cap_store_options_t opt;
    memset(&opt, 0, sizeof opt);
    opt.alloc = A;
    opt.locks = (seq % 3 == 1) ? cap_lock_pthread() : NULL;
    opt.hash_seed[0] = rnd();
    opt.hash_seed[1] = rnd();
    opt.first_id = (seq % 4 == 3) ? 1000 + seq : 0;
    first_id = opt.first_id;
    S_verify = seq % 2 == 1;
    opt.flags = S_verify ? CAP_STORE_VERIFY : 0;
    int rc = cap_store_new(&S, &opt);
    CHECK_EQ_INT(rc, CAP_OK);
    if (rc != CAP_OK) return;

    unsigned nops = 50 + below(151);
    for (unsigned step = 0; step < nops && !seq_failed; step++) {
        cur_step = step;
        unsigned k = below(1000);
        if (k < 100) op_put_cap();
        else if (k < 140) op_build_tree();
        else if (k < 150) (S_verify ? op_put_wrong_hash() : op_put_cap());
        else if (k < 160) op_put_unsettled();
        else if (k < 230) op_get_blob();
        else if (k < 300) op_promote();
        else if (k < 440) op_put_instance();
        else if (k < 490) op_get_instance();
        else if (k < 570) op_make_mut_set();
        else if (k < 630) op_edit_instance();
        else if (k < 660) op_replace();
        else if (k < 790) op_release();
        else if (k < 810) op_retain();
        else if (k < 840) op_sweep();
        else if (k < 880) op_sweep_budget();
        else if (k < 960) op_settle();
        else if (k < 975) op_foreign();
        else op_iter_blobs();
        mark_garbage();
        if (live_instances() + garbage_left > st.max_instances) st.max_instances = live_instances() + garbage_left;
        check_counts();
        check_strong_counts();
        if (nH) check_entry(H[below(nH)]);
        if (step % 16 == 15) check_all();
    }
    if (!seq_failed) check_all();

    /* Wind down: release everything, sweep, nothing left. */
    cur_op = "teardown";
    while (nH) op_release();
    mark_garbage();
    size_t removed = 0;
    CHECK_EQ_INT(cap_store_sweep_instances(S, &removed), CAP_OK);
    if (!seq_failed) CHECK_EQ_INT(removed, garbage_left);
    CHECK_EQ_INT(cap_store_instance_count(S), 0);
    CHECK_EQ_INT(cap_store_blob_count(S), nB);
    cap_store_free(S);
    S = NULL;
    if (!test_alloc_clean(&ta)) {
        fprintf(stderr, "seq %lu: leak: %ld blocks, %lld bytes, %ld size errors\n", seq,
                ta.live_blocks, ta.live_bytes, ta.size_errors);
        CHECK(test_alloc_clean(&ta));
        /* Reset the counters so one leak is reported once. */
        ta.live_blocks = 0;
        ta.live_bytes = 0;
        ta.size_errors = 0;
    }
}

/* A fixed scenario the random sequences rarely hit: a settle over a DAG
 * whose shared child is reached twice, and a cycle refused with CAP_ECYCLE
 * leaving the store unchanged. */
static void fixed_scenarios(void)
{
    cur_seq = (unsigned long)-1;
    cur_op = "fixed";
    cap_store_options_t opt;
    memset(&opt, 0, sizeof opt);
    opt.alloc = A;
    cap_store_t *s = NULL;
    CHECK_EQ_INT(cap_store_new(&s, &opt), CAP_OK);
    if (!s) return;

    /* DAG: top -> {a, b}, a -> c, b -> c. */
    cap_hash_t leaf;
    memset(leaf.bytes, 0x5a, 32);
    cap_t *cc = NULL, *ca = NULL, *cb = NULL, *ctop = NULL;
    cap_ref_t *rc_ = NULL, *ra = NULL, *rb = NULL, *rtop = NULL;
    cap_target_t t = cap_target_of_hash(&leaf);
    CHECK_EQ_INT(cap_cnode_new(&cc, A, 1), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(cc, 1, &t), CAP_OK);
    CHECK_EQ_INT(cap_store_put_instance(s, cc, &rc_), CAP_OK);
    t = cap_target_of_ref(rc_);
    CHECK_EQ_INT(cap_cnode_new(&ca, A, 1), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(ca, 0, &t), CAP_OK);
    CHECK_EQ_INT(cap_cnode_new(&cb, A, 2), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(cb, 3, &t), CAP_OK);
    CHECK_EQ_INT(cap_store_put_instance(s, ca, &ra), CAP_OK);
    CHECK_EQ_INT(cap_store_put_instance(s, cb, &rb), CAP_OK);
    CHECK_EQ_INT(cap_ref_strong_count(rc_), 4); /* us, store, a, b */
    cap_t *ci = NULL;
    t = cap_target_of_ref(ra);
    CHECK_EQ_INT(cap_cnode_new(&ctop, A, 1), CAP_OK);
    CHECK_EQ_INT(cap_cnode_set(ctop, 0, &t), CAP_OK);
    t = cap_target_of_ref(rb);
    CHECK_EQ_INT(cap_cnode_set(ctop, 1, &t), CAP_OK);
    t = cap_target_of_ref(ra); /* an Instance over the same child too */
    CHECK_EQ_INT(cap_instance_new(&ci, A, &t), CAP_OK);
    cap_ref_t *ri = NULL;
    CHECK_EQ_INT(cap_store_put_instance(s, ctop, &rtop), CAP_OK);
    CHECK_EQ_INT(cap_store_put_instance(s, ci, &ri), CAP_OK);

    /* Expected hash: built bottom-up by hand. */
    cap_hash_t hc, ha, hb, htop, hi;
    cap_t *x = NULL;
    CHECK_EQ_INT(cap_cnode_new(&x, A, 1), CAP_OK);
    t = cap_target_of_hash(&leaf);
    cap_cnode_set(x, 1, &t);
    cap_hash(x, &hc);
    cap_release(x);
    CHECK_EQ_INT(cap_cnode_new(&x, A, 1), CAP_OK);
    t = cap_target_of_hash(&hc);
    cap_cnode_set(x, 0, &t);
    cap_hash(x, &ha);
    cap_release(x);
    CHECK_EQ_INT(cap_cnode_new(&x, A, 2), CAP_OK);
    cap_cnode_set(x, 3, &t);
    cap_hash(x, &hb);
    cap_release(x);
    CHECK_EQ_INT(cap_cnode_new(&x, A, 1), CAP_OK);
    t = cap_target_of_hash(&ha);
    cap_cnode_set(x, 0, &t);
    t = cap_target_of_hash(&hb);
    cap_cnode_set(x, 1, &t);
    cap_hash(x, &htop);
    cap_release(x);
    t = cap_target_of_hash(&ha);
    CHECK_EQ_INT(cap_instance_new(&x, A, &t), CAP_OK);
    cap_hash(x, &hi);
    cap_release(x);

    cap_hash_t out;
    cap_err_t err;
    memset(&err, 0, sizeof err);
    t = cap_target_of_ref(rtop);
    CHECK_EQ_INT(cap_store_settle(s, &t, &out, &err), CAP_OK);
    CHECK_MEM(out.bytes, htop.bytes, 32);
    CHECK_EQ_INT(cap_store_blob_count(s), 4);
    CHECK_EQ_INT(cap_store_instance_count(s), 1); /* ri: its root still Refs a (now gone) */
    /* The Instance still refers to a, whose entry moved to the blobs. */
    t = cap_target_of_ref(ri);
    CHECK_EQ_INT(cap_store_settle(s, &t, &out, &err), CAP_EINSTANCEMISSING);
    CHECK_EQ_INT(err.id, cap_ref_id(ra));

    /* Cycle: two cnodes holding each other. */
    cap_t *p = NULL, *q = NULL;
    cap_ref_t *rp = NULL, *rq = NULL;
    CHECK_EQ_INT(cap_cnode_new(&p, A, 1), CAP_OK);
    CHECK_EQ_INT(cap_cnode_new(&q, A, 1), CAP_OK);
    CHECK_EQ_INT(cap_store_put_instance(s, p, &rp), CAP_OK);
    t = cap_target_of_ref(rp);
    CHECK_EQ_INT(cap_cnode_set(q, 0, &t), CAP_OK);
    CHECK_EQ_INT(cap_store_put_instance(s, q, &rq), CAP_OK);
    cap_release(q);
    cap_t *pm = NULL;
    CHECK_EQ_INT(cap_store_get_instance(s, rp, &pm), CAP_OK);
    CHECK_EQ_INT(cap_make_mut(&pm), CAP_OK);
    t = cap_target_of_ref(rq);
    CHECK_EQ_INT(cap_cnode_set(pm, 1, &t), CAP_OK);
    CHECK_EQ_INT(cap_store_set_instance(s, rp, pm, &err), CAP_OK);
    cap_release(pm);
    size_t blobs = cap_store_blob_count(s), insts = cap_store_instance_count(s);
    t = cap_target_of_ref(rp);
    CHECK_EQ_INT(cap_store_settle(s, &t, &out, &err), CAP_ECYCLE);
    CHECK_EQ_INT(cap_store_blob_count(s), blobs);
    CHECK_EQ_INT(cap_store_instance_count(s), insts);
    CHECK_EQ_INT(cap_ref_strong_count(rp), 3); /* us, store, q */
    CHECK_EQ_INT(cap_ref_strong_count(rq), 3); /* us, store, p */
    /* Break the cycle, settle again. */
    CHECK_EQ_INT(cap_store_get_instance(s, rp, &pm), CAP_OK);
    CHECK_EQ_INT(cap_make_mut(&pm), CAP_OK);
    CHECK_EQ_INT(cap_cnode_clear(pm, 1), CAP_OK);
    CHECK_EQ_INT(cap_store_set_instance(s, rp, pm, &err), CAP_OK);
    cap_release(pm);
    t = cap_target_of_ref(rq);
    CHECK_EQ_INT(cap_store_settle(s, &t, &out, &err), CAP_OK);

    cap_release(p);
    cap_release(ca);
    cap_release(cb);
    cap_release(cc);
    cap_release(ctop);
    cap_release(ci);
    cap_ref_release(rp);
    cap_ref_release(rq);
    cap_ref_release(ra);
    cap_ref_release(rb);
    cap_ref_release(rc_);
    cap_ref_release(rtop);
    cap_ref_release(ri);
    size_t removed = 0;
    CHECK_EQ_INT(cap_store_sweep_instances(s, &removed), CAP_OK);
    CHECK_EQ_INT(cap_store_instance_count(s), 0);
    cap_store_free(s);
    CHECK(test_alloc_clean(&ta));
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_alloc_init(&ta);
    test_alloc_init(&ta_foreign);
    A = &ta.alloc;

    /* The foreign store and its handle live for the whole run. */
    cap_store_options_t fo;
    memset(&fo, 0, sizeof fo);
    fo.alloc = &ta_foreign.alloc;
    CHECK_EQ_INT(cap_store_new(&FS, &fo), CAP_OK);
    if (!FS) return check_done("test_store_model");
    cap_t *fc = NULL;
    CHECK_EQ_INT(cap_cnode_new(&fc, &ta_foreign.alloc, 1), CAP_OK);
    CHECK_EQ_INT(cap_store_put_instance(FS, fc, &FH), CAP_OK);
    cap_release(fc);

    fixed_scenarios();

    unsigned long nseq = 2000;
    const char *env = getenv("CAPSTORE_MODEL_SEQS");
    if (env && *env) nseq = strtoul(env, NULL, 10);
    unsigned long failed_seqs = 0, ran = 0;
    for (unsigned long seq = 0; seq < nseq; seq++, ran++) {
        run_sequence(seq);
        if (seq_failed && ++failed_seqs >= 5) {
            fprintf(stderr, "stopping after 5 failing sequences\n");
            break;
        }
    }

    fprintf(stderr,
            "model: %lu sequences; settles %lu ok (%lu nodes, %lu graduated), %lu missing; "
            "%lu swept (%lu non-empty sweeps, %lu partial bounded sweeps); %lu abandoned edits; "
            "%lu re-puts of existing content; %lu promotes; max %lu instances\n",
            ran, st.settle_ok, st.settle_nodes, st.settle_graduated, st.settle_missing, st.swept,
            st.sweeps_nonzero, st.budget_partial, st.abandoned_edits, st.reputs_hit, st.promotes,
            st.max_instances);
    cap_ref_release(FH);
    cap_store_free(FS);
    CHECK(test_alloc_clean(&ta_foreign));
    CHECK(test_alloc_clean(&ta));
    return check_done("test_store_model");
}
