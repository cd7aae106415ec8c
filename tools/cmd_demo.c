/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore demo: a kernel-like session end to end on the embedded default
 * store (the LMDB file ./capstore.lmdb), printed step by step, ending with
 * the final cap graph as Graphviz DOT (and PNG when Graphviz is installed).
 * Everything it builds is deterministic, so the hashes are the same on every
 * run and machine, and a second run finds its blobs already in the file. */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cap_dot.h"
#include "capstore/host.h"
#include "capstore/persist.h"
#include "cli.h"
#include "db_guard.h"
#include "db_redis.h"
#include "demo_remote.h"

extern char **environ;

#define DEMO_DOT_DEFAULT "./capstore-demo.dot"

static const char usage[] = "capstore demo [--db PATH | --memory] [--dot FILE] [--png FILE]";

static void help(void)
{
    printf("usage: %s\n\n"
           "Run a kernel-like session on a capstore store and print what happens, one or\n"
           "two lines per step, with counts and short hashes (the first 8 hex digits):\n"
           "  1. publish  an image, its data, a type and a cnode, bottom-up (put_cap)\n"
           "  2. spawn    instances by promoting the cnode blob (no copy)\n"
           "  3. cow      change them copy-on-write (make_mut / edit_instance); the blob stays\n"
           "  4. graph    link instances by Ref: a kernel cnode, two processes, a shared cnode\n"
           "  5. settle   checkpoint the graph into blobs, process snapshots too: the new root hash\n"
           "  6. sweep    drop the handles; the sweep reclaims the dead entries in a cascade\n"
           "  7. flush    write the blobs to the backend in one transaction\n"
           "  8. reopen   a fresh store on the same backend fetches the root by hash\n"
           "  9. dot      write the final cap graph as DOT (and PNG)\n\n"
           "On a Redis tier (--db redis://HOST:PORT, docs/redis.md) a second process, a\n"
           "second host, then fetches the checkpointed graph with one prefetch, runs the\n"
           "processes a step and checkpoints them; the first fetches its root back.\n\n"
           "The store persists to an LMDB database file: --db PATH, else the file the\n"
           "CAPSTORE_DB environment variable names, else %s in the current folder\n"
           "(created when missing; a second run finds the blobs already there).\n\n"
           "  --db PATH   use the LMDB file PATH\n"
           "  --memory    no file: an in-memory backend stands in for the database\n"
           "  --dot FILE  where the graph goes (default %s)\n"
           "  --png FILE  render it with Graphviz's dot to FILE (default: the DOT file's\n"
           "              name with .png, when the dot program is installed)\n\n"
           "Exit status: 0 success, 1 a failed step (the message says which and why, e.g.\n"
           "a database that cannot be opened, or --png without Graphviz), 2 usage error.\n",
           usage, CLI_DB_DEFAULT, DEMO_DOT_DEFAULT);
}

/* The handles the session holds, by role. */
enum { R_CS1, R_CS2, R_IPC, R_PROC1, R_PROC2, R_KERNEL, R_CHAIN, R_COUNT };
#define DEMO_MAX_OWNED 32

typedef struct demo {
    const cap_alloc_t *a;
    const char *where;   /* the database path, or "the in-memory backend" */
    const char *db_path; /* NULL with --memory */
    cap_backend_t *db;
    cap_store_t *s;
    cap_err_t err;
    cap_ref_t *ref[R_COUNT];
    cap_t *owned[DEMO_MAX_OWNED]; /* caps built here, released at the end */
    size_t nowned;
    uint64_t file_blobs_before;
    /* hashes of the session */
    cap_hash_t h_code, h_config, h_image, h_type, h_cnode, h_root, h_snap1, h_snap2;
    /* the final graph, fetched in the reopened store */
    cap_dot_node_t *graph;
    size_t ngraph, graph_cap;
    size_t missing; /* targets the walk could not fetch */
} demo_t;

/* Short hashes for messages: a few rotating buffers, so one printf can show
 * several (the command is single-threaded). */
static const char *sh(const cap_hash_t *h)
{
    static char bufs[8][9];
    static unsigned next;
    char *b = bufs[next++ % 8];
    char hex[65];
    cli_hex(hex, h->bytes, 32);
    memcpy(b, hex, 8);
    b[8] = 0;
    return b;
}

static unsigned long long id_of(const cap_ref_t *r) { return (unsigned long long)cap_ref_id(r); }

static int demo_fail(demo_t *d, const char *what, int rc)
{
    char msg[256];
    cap_err_t e = d->err;
    if (e.code != rc) {
        memset(&e, 0, sizeof e);
        e.code = rc;
    }
    cap_err_format(&e, msg, sizeof msg);
    cli_error("demo", "%s: %s", what, msg);
    return CLI_EBADINPUT;
}

/* Run a capstore call; on failure report it and leave the step (the caller
 * releases everything held in `d`). */
#define TRY(what, call)                                                                            \
    do {                                                                                           \
        memset(&d->err, 0, sizeof d->err);                                                         \
        int rc_ = (call);                                                                          \
        if (rc_ != CAP_OK) return demo_fail(d, (what), rc_);                                       \
    } while (0)

/* Keep a cap built here until the end (the store takes its own references). */
static cap_t *own(demo_t *d, cap_t *c)
{
    if (d->nowned < DEMO_MAX_OWNED)
        d->owned[d->nowned++] = c;
    else
        cap_release(c); /* cannot happen: the session builds fewer */
    return c;
}

static size_t nblobs(demo_t *d) { return cap_store_blob_count(d->s); }
static size_t ninst(demo_t *d) { return cap_store_instance_count(d->s); }

/* Blobs the backend holds (LMDB: its entry count; memory: its table). */
static int backend_blobs(demo_t *d, uint64_t *out)
{
    if (!d->db_path) {
        *out = cap_mem_backend_count(d->db);
        return CAP_OK;
    }
    if (db_is_redis(d->db_path)) {
        cap_redis_stats_t rs;
        int rrc = cap_redis_stats(d->db, &rs, &d->err);
        if (rrc == CAP_OK) *out = rs.blobs;
        return rrc;
    }
    cap_lmdb_stats_t st;
    int rc = cap_lmdb_stats(d->db, &st, &d->err);
    if (rc == CAP_OK) *out = st.blobs;
    return rc;
}

static int open_backend(demo_t *d)
{
    if (!d->db_path) return cap_mem_backend_new(d->a, &d->db);
    if (db_is_redis(d->db_path)) return cap_redis_open(d->db_path, NULL, &d->db, &d->err);
    db_guard_arm(d->db_path); /* a damaged file ends the demo with a message, not a signal */
    return cap_lmdb_open(d->db_path, NULL, &d->db, &d->err);
}

/* Edits run by cap_store_edit_instance on its private copy. */
typedef struct slot_edit {
    uint32_t slot;
    cap_target_t target; /* NONE clears the slot */
} slot_edit_t;

static int edit_slot(cap_t *c, void *arg)
{
    const slot_edit_t *e = arg;
    return cap_cnode_set(c, e->slot, &e->target);
}

/* 1. Publish bottom-up: leaves first, so every hash a cap names is already
 * there when it is published. ------------------------------------------------------------ */
static int step_publish(demo_t *d)
{
    cap_t *c;
    /* A "code segment": 6000 deterministic bytes, two 4096-byte pages. */
    uint8_t code[6000];
    for (size_t i = 0; i < sizeof code; i++) code[i] = (uint8_t)(i * 31u + (i >> 7));
    TRY("cap_data_new_inline(code)", cap_data_new_inline(&c, d->a, 4096, code, sizeof code));
    TRY("cap_store_put_cap(code)", cap_store_put_cap(d->s, own(d, c), &d->h_code));
    static const char config[] = "name=demo\ngas=1000000\nstack_top=0x20000\n";
    TRY("cap_data_new_inline(config)", cap_data_new_inline(&c, d->a, 256, config, sizeof config - 1));
    TRY("cap_store_put_cap(config)", cap_store_put_cap(d->s, own(d, c), &d->h_config));

    /* The image: a little code with its bitmask and jump table, one endpoint,
     * one mapping; the code data pinned in slot 0, the config given in slot 1. */
    static const uint8_t image_code[16] = {0x04, 0x07, 0x01, 0x33, 0x08, 0x00, 0x02, 0x28,
                                           0x0a, 0x03, 0x01, 0x06, 0x13, 0x00, 0x00, 0x00};
    static const uint8_t bitmask[2] = {0x55, 0x15};
    static const uint32_t jump_table[2] = {0, 8};
    cap_endpoint_t ep;
    memset(&ep, 0, sizeof ep);
    ep.entry_pc = 0;
    ep.stack_top = 0x20000;
    ep.arg_cnode_slot = 2;
    ep.arg_cnode_size = 4;
    cap_mapping_t map;
    memset(&map, 0, sizeof map);
    map.start = 0x10000;
    map.size = 0x2000;
    cap_slot_entry_t pinned = {0, d->h_code}, initial = {1, d->h_config};
    cap_image_desc_t desc;
    memset(&desc, 0, sizeof desc);
    desc.code = image_code;
    desc.code_len = sizeof image_code;
    desc.bitmask = bitmask;
    desc.bitmask_len = sizeof bitmask;
    desc.jump_table = jump_table;
    desc.jump_table_len = 2;
    desc.endpoints = &ep;
    desc.endpoints_len = 1;
    desc.mappings = &map;
    desc.mappings_len = 1;
    desc.pinned = &pinned;
    desc.pinned_len = 1;
    desc.initial = &initial;
    desc.initial_len = 1;
    TRY("cap_image_new", cap_image_new(&c, d->a, &desc, &d->err));
    TRY("cap_store_put_cap(image)", cap_store_put_cap(d->s, own(d, c), &d->h_image));
    TRY("cap_type_new", cap_type_new(&c, d->a, &d->h_image));
    TRY("cap_store_put_cap(type)", cap_store_put_cap(d->s, own(d, c), &d->h_type));

    /* The template cspace: 16 slots; image, type and config by hash. */
    TRY("cap_cnode_new", cap_cnode_new(&c, d->a, 4));
    own(d, c);
    cap_target_t t = cap_target_of_hash(&d->h_image);
    TRY("cap_cnode_set", cap_cnode_set(c, 0, &t));
    t = cap_target_of_hash(&d->h_type);
    TRY("cap_cnode_set", cap_cnode_set(c, 1, &t));
    t = cap_target_of_hash(&d->h_config);
    TRY("cap_cnode_set", cap_cnode_set(c, 2, &t));
    TRY("cap_store_put_cap(cnode)", cap_store_put_cap(d->s, c, &d->h_cnode));

    printf(" 1. publish  5 caps bottom-up with put_cap: data %s (code, 2 pages), data %s (config),\n"
           "             image %s, type %s, cnode %s (template cspace, 3 slots); store: %zu blobs, %zu instances\n",
           sh(&d->h_code), sh(&d->h_config), sh(&d->h_image), sh(&d->h_type), sh(&d->h_cnode), nblobs(d),
           ninst(d));
    return CLI_OK;
}

/* 2. Spawn: promotion makes instance entries that share the blob's cap. ---------------------- */
static int step_spawn(demo_t *d)
{
    TRY("cap_store_promote_blob_to_instance", cap_store_promote_blob_to_instance(d->s, &d->h_cnode, &d->ref[R_CS1]));
    TRY("cap_store_promote_blob_to_instance", cap_store_promote_blob_to_instance(d->s, &d->h_cnode, &d->ref[R_CS2]));
    cap_t *blob, *x1, *x2;
    TRY("cap_store_get_blob", cap_store_get_blob(d->s, &d->h_cnode, &blob));
    own(d, blob);
    TRY("cap_store_get_instance", cap_store_get_instance(d->s, d->ref[R_CS1], &x1));
    own(d, x1);
    TRY("cap_store_get_instance", cap_store_get_instance(d->s, d->ref[R_CS2], &x2));
    own(d, x2);
    bool shared = x1 == blob && x2 == blob;
    printf(" 2. spawn    promoted cnode %s to instances #%llu and #%llu: %s;\n"
           "             store: %zu blobs, %zu instances\n",
           sh(&d->h_cnode), id_of(d->ref[R_CS1]), id_of(d->ref[R_CS2]),
           shared ? "both share the blob's cap (no copy)" : "each got a copy", nblobs(d), ninst(d));
    return CLI_OK;
}

/* 3. Copy-on-write: the seed's pattern, and the store's own edit call. ------------------------ */
static int step_cow(demo_t *d)
{
    /* get_instance, then make_mut: the blob tier shares the cap, so this copies. */
    cap_t *c;
    TRY("cap_store_get_instance", cap_store_get_instance(d->s, d->ref[R_CS1], &c));
    const cap_t *was = c;
    int rc = cap_make_mut(&c);
    if (rc != CAP_OK) {
        cap_release(c);
        return demo_fail(d, "cap_make_mut", rc);
    }
    own(d, c);
    bool copied = c != was;
    cap_target_t t = cap_target_of_hash(&d->h_code);
    TRY("cap_cnode_set", cap_cnode_set(c, 3, &t));
    TRY("cap_store_set_instance", cap_store_set_instance(d->s, d->ref[R_CS1], c, &d->err));

    /* edit_instance: the store hands a private copy to the edit and commits it. */
    slot_edit_t clear = {2, {CAP_TARGET_NONE, {{0}}, NULL}};
    TRY("cap_store_edit_instance", cap_store_edit_instance(d->s, d->ref[R_CS2], edit_slot, &clear, &d->err));

    /* The blob is what it was: same slots, same hash. */
    cap_t *blob;
    cap_hash_t again;
    TRY("cap_store_get_blob", cap_store_get_blob(d->s, &d->h_cnode, &blob));
    own(d, blob);
    TRY("cap_hash", cap_hash(blob, &again));
    bool same = memcmp(&again, &d->h_cnode, sizeof again) == 0 && cap_cnode_count(blob) == 3;
    cap_t *x2;
    TRY("cap_store_get_instance", cap_store_get_instance(d->s, d->ref[R_CS2], &x2));
    own(d, x2);
    printf(" 3. cow      #%llu: get_instance + cap_make_mut (%s) + slot 3 := data %s + set_instance;\n"
           "             #%llu: cap_store_edit_instance cleared slot 2 (%zu left); blob %s %s: %zu slots, re-hashes to %s\n",
           id_of(d->ref[R_CS1]), copied ? "copied: the blob shares it" : "no copy", sh(&d->h_code),
           id_of(d->ref[R_CS2]), cap_cnode_count(x2), sh(&d->h_cnode), same ? "unchanged" : "CHANGED",
           cap_cnode_count(blob), sh(&again));
    if (!same) {
        cli_error("demo", "the blob changed under its hash");
        return CLI_EBADINPUT;
    }
    return CLI_OK;
}

/* 4. A graph of instances linked by Ref: the kernel's cnode names two
 * processes (Instance caps), whose cspaces share an ipc cnode. A scratch
 * chain nobody will hold is there for the sweep. ---------------------------------------------- */
static int put_cnode_instance(demo_t *d, unsigned size_log, uint32_t slot, const cap_target_t *t,
                              cap_ref_t **out)
{
    cap_t *c;
    TRY("cap_cnode_new", cap_cnode_new(&c, d->a, size_log));
    own(d, c);
    if (t) TRY("cap_cnode_set", cap_cnode_set(c, slot, t));
    TRY("cap_store_put_instance", cap_store_put_instance(d->s, c, out));
    return CLI_OK;
}

static int put_process(demo_t *d, cap_ref_t *cspace, uint64_t arg, cap_ref_t **out)
{
    cap_t *c;
    cap_target_t root = cap_target_of_ref(cspace);
    TRY("cap_instance_new", cap_instance_new(&c, d->a, &root));
    own(d, c);
    TRY("cap_instance_set_image_hash", cap_instance_set_image_hash(c, &d->h_image));
    TRY("cap_instance_set_image_hash_chain", cap_instance_set_image_hash_chain(c, &d->h_image));
    TRY("cap_instance_set_mem_size", cap_instance_set_mem_size(c, 0x20000));
    TRY("cap_instance_set_pc", cap_instance_set_pc(c, 0));
    TRY("cap_instance_set_gas_remaining", cap_instance_set_gas_remaining(c, 1000000));
    TRY("cap_instance_set_reg", cap_instance_set_reg(c, 0, arg));
    TRY("cap_store_put_instance", cap_store_put_instance(d->s, c, out));
    return CLI_OK;
}

static int step_graph(demo_t *d)
{
    int rc;
    cap_target_t t = cap_target_of_hash(&d->h_config);
    if ((rc = put_cnode_instance(d, 2, 0, &t, &d->ref[R_IPC])) != CLI_OK) return rc;
    slot_edit_t link = {5, cap_target_of_ref(d->ref[R_IPC])};
    TRY("cap_store_edit_instance", cap_store_edit_instance(d->s, d->ref[R_CS1], edit_slot, &link, &d->err));
    TRY("cap_store_edit_instance", cap_store_edit_instance(d->s, d->ref[R_CS2], edit_slot, &link, &d->err));
    if ((rc = put_process(d, d->ref[R_CS1], 1, &d->ref[R_PROC1])) != CLI_OK) return rc;
    if ((rc = put_process(d, d->ref[R_CS2], 2, &d->ref[R_PROC2])) != CLI_OK) return rc;

    cap_t *k;
    TRY("cap_cnode_new", cap_cnode_new(&k, d->a, 3));
    own(d, k);
    t = cap_target_of_ref(d->ref[R_PROC1]);
    TRY("cap_cnode_set", cap_cnode_set(k, 0, &t));
    t = cap_target_of_ref(d->ref[R_PROC2]);
    TRY("cap_cnode_set", cap_cnode_set(k, 1, &t));
    t = cap_target_of_hash(&d->h_image);
    TRY("cap_cnode_set", cap_cnode_set(k, 2, &t));
    TRY("cap_store_put_instance", cap_store_put_instance(d->s, k, &d->ref[R_KERNEL]));

    /* The scratch chain head -> mid -> tail: each cnode holds the next
     * handle; only the head's handle stays with us. */
    cap_ref_t *tail = NULL, *mid = NULL;
    if ((rc = put_cnode_instance(d, 1, 0, NULL, &tail)) != CLI_OK) return rc;
    t = cap_target_of_ref(tail);
    rc = put_cnode_instance(d, 1, 0, &t, &mid);
    unsigned long long tail_id = id_of(tail);
    cap_ref_release(tail);
    if (rc != CLI_OK) return rc;
    t = cap_target_of_ref(mid);
    rc = put_cnode_instance(d, 1, 0, &t, &d->ref[R_CHAIN]);
    unsigned long long mid_id = id_of(mid);
    cap_ref_release(mid);
    if (rc != CLI_OK) return rc;

    printf(" 4. graph    kernel cnode #%llu -> processes #%llu, #%llu (Instance caps) -> cspaces #%llu, #%llu -> ipc cnode #%llu,\n"
           "             all by Ref (#%llu is shared: a DAG); scratch chain #%llu -> #%llu -> #%llu; store: %zu blobs, %zu instances\n",
           id_of(d->ref[R_KERNEL]), id_of(d->ref[R_PROC1]), id_of(d->ref[R_PROC2]), id_of(d->ref[R_CS1]),
           id_of(d->ref[R_CS2]), id_of(d->ref[R_IPC]), id_of(d->ref[R_IPC]), id_of(d->ref[R_CHAIN]), mid_id,
           tail_id, nblobs(d), ninst(d));
    return CLI_OK;
}

/* 5. Checkpoint the kernel's cnode: a settle that also publishes the
 * processes' snapshots (their Instance caps stay instances) as blobs in the
 * same step, so the root names a closed graph. ------------------------------------------------- */
static int snapshot_hash(demo_t *d, cap_ref_t *r, cap_hash_t *out)
{
    cap_t *p;
    TRY("cap_store_get_instance", cap_store_get_instance(d->s, r, &p));
    own(d, p);
    TRY("cap_hash", cap_hash(p, out));
    return CLI_OK;
}

static int step_settle(demo_t *d)
{
    size_t b0 = nblobs(d), i0 = ninst(d);
    cap_target_t root = cap_target_of_ref(d->ref[R_KERNEL]);
    TRY("cap_store_checkpoint", cap_store_checkpoint(d->s, &root, &d->h_root, &d->err));
    size_t b1 = nblobs(d), i1 = ninst(d);
    int rc;
    if ((rc = snapshot_hash(d, d->ref[R_PROC1], &d->h_snap1)) != CLI_OK) return rc;
    if ((rc = snapshot_hash(d, d->ref[R_PROC2], &d->h_snap2)) != CLI_OK) return rc;
    printf(" 5. settle   checkpoint root #%llu -> %s, Refs resolved bottom-up (shared #%llu once): blobs %zu -> %zu, instances %zu -> %zu;\n"
           "             #%llu, #%llu stay instances, their snapshots published as blobs %s, %s in the same step (a closed graph)\n",
           id_of(d->ref[R_KERNEL]), sh(&d->h_root), id_of(d->ref[R_IPC]), b0, b1, i0, i1, id_of(d->ref[R_PROC1]),
           id_of(d->ref[R_PROC2]), sh(&d->h_snap1), sh(&d->h_snap2));
    return CLI_OK;
}

/* 6. Drop every handle; the sweep reclaims the dead entries, cascading
 * through the handles their caps held. ---------------------------------------------------------- */
static int step_sweep(demo_t *d)
{
    size_t i0 = ninst(d), dropped = 0;
    unsigned long long p1 = id_of(d->ref[R_PROC1]), p2 = id_of(d->ref[R_PROC2]), head = id_of(d->ref[R_CHAIN]);
    for (int r = 0; r < R_COUNT; r++) {
        if (!d->ref[r]) continue;
        cap_ref_release(d->ref[r]);
        d->ref[r] = NULL;
        dropped++;
    }
    /* The caps kept for the printout hold handles too (the processes' first
     * caps name the cspaces by Ref): let them go before the sweep. */
    for (size_t i = 0; i < d->nowned; i++) cap_release(d->owned[i]);
    d->nowned = 0;
    size_t removed = 0;
    TRY("cap_store_sweep_instances", cap_store_sweep_instances(d->s, &removed));
    printf(" 6. sweep    dropped our %zu handles; the sweep removed %zu entries: processes #%llu, #%llu, and chain #%llu,\n"
           "             whose removal released the next handle, and so on (a cascade); instances %zu -> %zu\n",
           dropped, removed, p1, p2, head, i0, ninst(d));
    return CLI_OK;
}

/* 7. Flush: the blobs reach the backend in one transaction. ------------------------------------ */
static int step_flush(demo_t *d)
{
    size_t written = 0;
    uint64_t after = 0;
    /* The root is recorded as "demo" in the same transaction (LMDB has
     * named roots; the in-memory backend has not). */
    cap_backend_root_t root = {"demo", d->h_root};
    size_t nroots = cap_backend_has_roots(d->db) ? 1 : 0;
    TRY("cap_store_flush_roots", cap_store_flush_roots(d->s, &root, nroots, &written, &d->err));
    TRY("backend statistics", backend_blobs(d, &after));
    printf(" 7. flush    %zu blobs written to %s in one %s; it holds %llu blobs (%llu new)\n", written, d->where,
           d->db_path && db_is_redis(d->db_path) ? "pipelined batch per master" : "transaction",
           (unsigned long long)after, (unsigned long long)(after - d->file_blobs_before));
    char hex[65];
    cli_hex(hex, d->h_root.bytes, 32);
    printf("             root %s%s\n", hex, nroots ? ", recorded as the root demo (capstore db roots)" : "");
    return CLI_OK;
}

/* 8. Reopen: a fresh store on the same backend knows nothing in memory and
 * fetches the root through the provider; a walk reads the rest. -------------------------------- */

/* Add a cap the walk reached to the graph (a new reference). */
static int graph_add(void *arg, const cap_walk_visit_t *v)
{
    demo_t *d = arg;
    if (d->ngraph == d->graph_cap) {
        size_t nc = d->graph_cap ? d->graph_cap * 2 : 16;
        cap_dot_node_t *nv = realloc(d->graph, nc * sizeof *nv);
        if (!nv) return CAP_ENOMEM;
        d->graph = nv;
        d->graph_cap = nc;
    }
    d->graph[d->ngraph].hash = v->hash;
    d->graph[d->ngraph].cap = cap_retain((cap_t *)v->cap);
    d->ngraph++;
    return 0;
}

/* Breadth first from the root through the store (memory, then the
 * backend), every cap read verified; nothing is published. A target the
 * backend lacks stays a placeholder in the graph. */
static int walk(demo_t *d)
{
    cap_walk_options_t o = CAP_WALK_OPTIONS_INIT;
    o.flags = CAP_WALK_VERIFY;
    cap_walk_result_t r;
    memset(&d->err, 0, sizeof d->err);
    int rc = cap_store_walk(d->s, &d->h_root, 1, &o, graph_add, d, &r, &d->err);
    if (rc != CAP_OK && rc != CAP_EBLOBMISSING) return demo_fail(d, "cap_store_walk", rc);
    d->missing = (size_t)r.missing;
    return CLI_OK;
}

static int step_reopen(demo_t *d)
{
    cap_store_free(d->s);
    d->s = NULL;
    if (d->db_path) {
        /* Close the file for real: its environment goes with the last handle. */
        cap_backend_free(d->db);
        d->db = NULL;
        TRY("cap_lmdb_open", open_backend(d));
    }
    TRY("cap_store_new_host", cap_store_new_host(&d->s));
    TRY("cap_store_add_backend", cap_store_add_backend(d->s, d->db, &d->err));
    size_t b0 = nblobs(d);
    TRY("cap_store_exists(root)", cap_store_exists(d->s, &d->h_root, &d->err));
    cap_t *root;
    cap_hash_t again;
    TRY("cap_store_fetch_blob(root)", cap_store_fetch_blob(d->s, &d->h_root, &root, &d->err));
    int rc = cap_hash(root, &again);
    if (rc != CAP_OK) {
        cap_release(root);
        return demo_fail(d, "cap_hash", rc);
    }
    bool match = memcmp(&again, &d->h_root, sizeof again) == 0;
    cap_release(root);
    if (!match) {
        cli_error("demo", "the root fetched from %s hashes to %s, not %s", d->where, sh(&again), sh(&d->h_root));
        return CLI_EBADINPUT;
    }
    if ((rc = walk(d)) != CLI_OK) return rc;
    printf(" 8. reopen   fresh store on %s (%zu blobs in memory): cap_store_exists(root %s) yes;\n"
           "             fetched through the provider, verified: re-hashes to %s; walking its graph fetched %zu caps%s\n",
           d->where, b0, sh(&d->h_root), sh(&again), d->ngraph, d->missing ? " (some targets missing)" : "");
    return CLI_OK;
}

/* 9. The final graph as DOT, and as PNG through Graphviz. -------------------------------------- */

/* Run Graphviz's dot: 0 on success, 1 when it is not installed, -1 when it failed. */
static int render_png(const char *dot_file, const char *png)
{
    char *argv[] = {"dot", "-Tpng", "-o", (char *)png, (char *)dot_file, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "dot", NULL, NULL, argv, environ);
    if (rc == ENOENT) return 1;
    if (rc != 0) return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    /* 127: the child could not run it. posix_spawnp reports that itself
     * where the child shares memory with the parent; not under qemu-user. */
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) return 1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int step_dot(demo_t *d, const char *dot_file, const char *png, bool png_asked)
{
    FILE *f = fopen(dot_file, "w");
    if (!f) {
        cli_error("demo", "%s: %s", dot_file, strerror(errno));
        return CLI_EBADINPUT;
    }
    size_t edges = 0;
    int rc = cap_dot_write(f, d->graph, d->ngraph, &edges);
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0) bad = true;
    if (rc != CAP_OK) return demo_fail(d, "writing the graph", rc);
    if (bad) {
        cli_error("demo", "%s: error writing the file", dot_file);
        return CLI_EBADINPUT;
    }
    int r = render_png(dot_file, png);
    if (r == 0) {
        printf(" 9. dot      wrote %s (%zu caps, %zu edges) and %s (Graphviz dot)\n", dot_file, d->ngraph, edges, png);
        return CLI_OK;
    }
    printf(" 9. dot      wrote %s (%zu caps, %zu edges); %s\n", dot_file, d->ngraph, edges,
           r == 1 ? "no PNG: Graphviz's dot is not installed (apt-get install graphviz)"
                  : "no PNG: Graphviz's dot failed");
    if (png_asked || r < 0) {
        cli_error("demo", "%s: %s", png, r == 1 ? "Graphviz's dot program is not installed" : "dot -Tpng failed");
        return CLI_EBADINPUT;
    }
    return CLI_OK;
}

/* The PNG's default name: the DOT file's with .png for .dot. */
static char *png_name(const char *dot_file)
{
    size_t n = strlen(dot_file);
    bool has_dot = n >= 4 && strcmp(dot_file + n - 4, ".dot") == 0;
    size_t base = has_dot ? n - 4 : n;
    char *s = malloc(base + 5);
    if (!s) return NULL;
    memcpy(s, dot_file, base);
    memcpy(s + base, ".png", 5);
    return s;
}

static void demo_free(demo_t *d)
{
    for (int r = 0; r < R_COUNT; r++) cap_ref_release(d->ref[r]);
    for (size_t i = 0; i < d->nowned; i++) cap_release(d->owned[i]);
    for (size_t i = 0; i < d->ngraph; i++) cap_release((cap_t *)d->graph[i].cap);
    free(d->graph);
    /* The store first: it borrows the backend. */
    cap_store_free(d->s);
    cap_backend_free(d->db);
}

int cmd_demo(int argc, char **argv)
{
    cli_opt_t opts[] = {{"--db", true, false, NULL},
                        {"--dot", true, false, NULL},
                        {"--png", true, false, NULL},
                        {"--memory", false, false, NULL},
                        {NULL, false, false, NULL}};
    int npos;
    bool want_help;
    int rc = cli_parse_args("demo", usage, argc, argv, opts, &want_help, &npos);
    if (rc != CLI_OK) return rc;
    if (want_help) {
        help();
        return CLI_OK;
    }
    if (npos > 0) return cli_usage_error("demo", usage, "unexpected argument '%s'", argv[1]);
    if (opts[0].seen && opts[3].seen) return cli_usage_error("demo", usage, "--db and --memory exclude each other");
    for (int i = 0; i < 3; i++)
        if (opts[i].seen && (opts[i].value[0] == 0 || strcmp(opts[i].value, "-") == 0))
            return cli_usage_error("demo", usage, "%s wants a file name", opts[i].name);

    demo_t dd;
    demo_t *d = &dd;
    memset(d, 0, sizeof *d);
    d->a = cap_alloc_libc();
    d->db_path = opts[3].seen ? NULL : cli_db_path(opts[0].seen ? opts[0].value : NULL);
    d->where = d->db_path ? d->db_path : "the in-memory backend";
    const char *dot_file = opts[1].seen ? opts[1].value : DEMO_DOT_DEFAULT;
    char *png = opts[2].seen ? NULL : png_name(dot_file);
    if (!opts[2].seen && !png) {
        cli_error("demo", "out of memory");
        return CLI_EBADINPUT;
    }

    struct stat st;
    bool existed = d->db_path && stat(d->db_path, &st) == 0;
    int status = CLI_OK;
    memset(&d->err, 0, sizeof d->err);
    if ((rc = open_backend(d)) != CAP_OK) {
        status = demo_fail(d, d->db_path ? d->db_path : "cap_mem_backend_new", rc);
        goto out;
    }
    memset(&d->err, 0, sizeof d->err);
    if ((rc = backend_blobs(d, &d->file_blobs_before)) != CAP_OK) {
        status = demo_fail(d, "backend statistics", rc);
        goto out;
    }
    if ((rc = cap_store_new_host(&d->s)) != CAP_OK) {
        status = demo_fail(d, "cap_store_new_host", rc);
        goto out;
    }
    memset(&d->err, 0, sizeof d->err);
    if ((rc = cap_store_add_backend(d->s, d->db, &d->err)) != CAP_OK) {
        status = demo_fail(d, "cap_store_add_backend", rc);
        goto out;
    }
    if (d->db_path && db_is_redis(d->db_path))
        printf("capstore demo: a kernel-like session on a store backed by the Redis tier %s (%llu blobs in it)\n",
               d->db_path, (unsigned long long)d->file_blobs_before);
    else if (d->db_path)
        printf("capstore demo: a kernel-like session on a store backed by the LMDB file %s (%s)\n", d->db_path,
               existed ? "it holds blobs from earlier runs" : "new file");
    else
        printf("capstore demo: a kernel-like session on a store backed by an in-memory backend (--memory)\n");
    if (d->db_path && existed)
        printf("             the file holds %llu blobs before this run\n", (unsigned long long)d->file_blobs_before);

    if ((status = step_publish(d)) != CLI_OK) goto out;
    if ((status = step_spawn(d)) != CLI_OK) goto out;
    if ((status = step_cow(d)) != CLI_OK) goto out;
    if ((status = step_graph(d)) != CLI_OK) goto out;
    if ((status = step_settle(d)) != CLI_OK) goto out;
    if ((status = step_sweep(d)) != CLI_OK) goto out;
    if ((status = step_flush(d)) != CLI_OK) goto out;
    if ((status = step_reopen(d)) != CLI_OK) goto out;
    status = step_dot(d, dot_file, opts[2].seen ? opts[2].value : png, opts[2].seen);
    /* On a shared tier, a second host picks the graph up (demo_remote.c). */
    if (status == CLI_OK && d->db_path && db_is_redis(d->db_path))
        status = demo_second_host(d->db_path, &d->h_root, &d->h_snap1, &d->h_snap2);
out:
    demo_free(d);
    free(png);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("demo", "error writing standard output");
        if (status == CLI_OK) status = CLI_EBADINPUT;
    }
    return status;
}
