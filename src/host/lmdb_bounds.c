/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Bounds of what LMDB hands back (lmdb_internal.h: cap_lm_val_ok).
 *
 * LMDB returns pointers into its map of the file and trusts the sizes it
 * reads from the file; a damaged size or page number yields a pointer or a
 * length past the mapping, or past the file's end inside the mapping (a
 * read there is SIGBUS). LMDB does not tell where its map is (the
 * envinfo's address is the fixed-map hint, NULL here), so the regions of
 * this process that map the file are read from /proc/self/maps, matched by
 * device and inode, and looked up again when a pointer falls outside the
 * ones known (after the map grew). A forked child may also see its
 * parent's map of the same file: any map of the file is safe to read. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "lmdb_file.h"
#include "lmdb_internal.h"

/* Read this process's maps of e's file. Called with regions_lock held exclusively. */
static void refresh(lmdb_env_t *e)
{
    e->nregions = 0;
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f) {
        e->regions_unknown = true;
        return;
    }
    char line[512];
    unsigned maj = major(e->dev), min = minor(e->dev);
    while (fgets(line, sizeof line, f) && e->nregions < (int)(sizeof e->regions / sizeof e->regions[0])) {
        uintptr_t a, b;
        uint64_t off, ino;
        unsigned dmaj, dmin;
        char perms[8];
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %" SCNx64 " %x:%x %" SCNu64, &a, &b, perms, &off, &dmaj,
                   &dmin, &ino) != 7)
            continue;
        if (dmaj != maj || dmin != min || ino != (uint64_t)e->ino || perms[0] != 'r') continue;
        e->regions[e->nregions].start = a;
        e->regions[e->nregions].end = b;
        e->regions[e->nregions].offset = off;
        e->nregions++;
    }
    fclose(f);
}

/* The region holding [p, p + n), or NULL. Called with regions_lock held. */
static const struct cap_lm_region *find(const lmdb_env_t *e, uintptr_t p, uint64_t n)
{
    for (int i = 0; i < e->nregions; i++) {
        const struct cap_lm_region *r = &e->regions[i];
        if (p >= r->start && p <= r->end && n <= r->end - p) return r;
    }
    return NULL;
}

bool cap_lm_val_ok(lmdb_env_t *e, const MDB_val *v)
{
    uintptr_t p = (uintptr_t)v->mv_data;
    uint64_t n = v->mv_size, ps = e->psize;
    if (n == 0) return true; /* nothing is read (an empty value may point just past its page) */
    if (!p || !ps) return false;
    struct cap_lm_region r;
    pthread_rwlock_rdlock(&e->regions_lock); /* readers of many threads do not queue here */
    const struct cap_lm_region *found = find(e, p, n);
    bool unknown = e->regions_unknown;
    if (found) r = *found;
    pthread_rwlock_unlock(&e->regions_lock);
    if (!found && !unknown) { /* the map moved (it grew), or the first look */
        pthread_rwlock_wrlock(&e->regions_lock);
        found = find(e, p, n);
        if (!found) {
            refresh(e);
            found = find(e, p, n);
        }
        unknown = e->regions_unknown;
        if (found) r = *found;
        pthread_rwlock_unlock(&e->regions_lock);
    }
    if (unknown) return true; /* no way to tell here: LMDB's word is taken */
    if (!found) return false;

    /* Within the pages the file holds. */
    uint64_t off = p - r.start + r.offset;
    MDB_envinfo info;
    mdb_env_info(e->env, &info);
    uint64_t limit = ((uint64_t)info.me_last_pgno + 1) * ps;
    uint64_t fsz = atomic_load(&e->file_size);
    if (off > fsz || n > fsz - off) { /* the file may have grown since we looked */
        int fd;
        struct stat sb;
        if (mdb_env_get_fd(e->env, &fd) == 0 && fstat(fd, &sb) == 0) {
            fsz = (uint64_t)sb.st_size;
            atomic_store(&e->file_size, fsz);
        }
    }
    if (fsz < limit) limit = fsz;
    if (off > limit || n > limit - off) return false;

    /* Inside its own page, or its overflow run. */
    uint64_t in = off % ps;
    if (p - in < r.start) return false;
    const uint8_t *hdr = (const uint8_t *)(p - in);
    uint64_t page = off / ps;
    if (in == LMF_PAGEHDR && (cap_lmf_u16(hdr + 10) & LMF_P_OVERFLOW)) {
        uint64_t pages = cap_lmf_u32(hdr + 12);
        return pages <= (limit - page * ps) / ps && LMF_PAGEHDR + n <= pages * ps;
    }
    return in >= LMF_PAGEHDR && n <= ps - in;
}
