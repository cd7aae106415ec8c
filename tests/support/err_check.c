/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The checking wrappers of err_check.h. This file is compiled without that
 * header forced in, so the calls below reach the library's functions. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The list and the wrappers' declarations, without the macros that
 * redirect calls (the wrappers call the real functions). */
#define CAPSTORE_TEST_ERR_CHECK_LIST_ONLY
#include "err_check.h"

#define POISON 0x5a

/* The struct the call gets: the caller's, or `local` when the caller wants
 * no detail (the library must fill it all the same). Poisoned either way. */
static cap_err_t *poison(cap_err_t *err, cap_err_t *local)
{
    cap_err_t *e = err ? err : local;
    memset(e, POISON, sizeof *e);
    return e;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

static bool poisoned_u64(uint64_t v)
{
    uint64_t p;
    memset(&p, POISON, sizeof p);
    return v == p;
}

/* What a failure's struct must hold (common.h, cap_err_t): `code` is the
 * return value; the fields of that code are set, every other one is 0
 * (detail empty); nothing still holds the poison. Returns the first broken
 * rule, or NULL. */
const char *cap_test_err_broken_rule(int rc, const cap_err_t *e)
{
    unsigned char has_hash;
    memcpy(&has_hash, &e->has_hash, 1); /* read the byte: a poisoned bool is no bool */
    const char *what;
    memcpy(&what, &e->what, sizeof what);
    if (e->code != rc) return "code is not the value returned";
    if (has_hash > 1) return "has_hash was left unset";
    if (!has_hash && !all_zero(&e->hash, sizeof e->hash)) return "hash is set without has_hash";
    if (!memchr(e->detail, 0, sizeof e->detail)) return "detail was left unset (no NUL)";
    if (what && poisoned_u64((uint64_t)(uintptr_t)what)) return "what was left unset";
    if (what && !memchr(what, 0, 256)) return "what is not a short string";
    if (rc == CAP_EDECODE) {
        if (!what) return "CAP_EDECODE without the rule (what)";
    } else if (e->offset) {
        return "offset set (or left unset) for a code other than CAP_EDECODE";
    }
    if (rc == CAP_EINSTANCEMISSING) {
        if (!e->id || poisoned_u64(e->id)) return "CAP_EINSTANCEMISSING without the id";
    } else if (e->id) {
        return "id set (or left unset) for a code other than CAP_EINSTANCEMISSING";
    }
    if (rc == CAP_EPAGESIZE) {
        if (!e->expected || poisoned_u64(e->expected) || poisoned_u64(e->got))
            return "CAP_EPAGESIZE without expected and got";
    } else if (e->expected || e->got) {
        return "expected/got set (or left unset) for a code other than CAP_EPAGESIZE";
    }
    if ((rc == CAP_EIMAGE || rc == CAP_EBACKEND) && !what) return "no reason (what) for this code";
    unsigned char has_index;
    memcpy(&has_index, &e->has_index, 1);
    if (has_index > 1) return "has_index was left unset";
    if (!has_index && e->index) return "index set without has_index";
    if ((rc == CAP_EBLOBMISSING || rc == CAP_EMISMATCH) && !has_hash) return "no hash for this code";
    return NULL;
}

int cap_test_err_check(const char *file, int line, const char *fn, int rc, const cap_err_t *e)
{
    if (rc >= 0) return rc;
    const char *rule = cap_test_err_broken_rule(rc, e);
    if (rule) {
        fprintf(stderr, "%s:%d: %s returned %d (%s), but its cap_err_t breaks the contract: %s\n",
                file, line, fn, rc, cap_strerror(rc), rule);
        abort();
    }
    return rc;
}

#define NAME(name, params, args) "cap_" #name,
static const char *const names[] = {CAP_TEST_ERR_FUNCS(NAME)};
#define NFUNCS (sizeof names / sizeof names[0])
#define INDEX(name, params, args) FN_##name,
enum { CAP_TEST_ERR_FUNCS(INDEX) };
static _Atomic unsigned long failures[NFUNCS];

size_t cap_test_err_count(void) { return NFUNCS; }
const char *cap_test_err_name(size_t i) { return i < NFUNCS ? names[i] : NULL; }
unsigned long cap_test_err_failures(size_t i) { return i < NFUNCS ? failures[i] : 0; }

#define DEFINE_WRAPPER(name, params, args)                                               \
    int cap_test_##name(const char *file, int line, CAP_TEST_UNPAREN params)             \
    {                                                                                    \
        cap_err_t local, *e = poison(err, &local);                                       \
        int rc = cap_##name args;                                                        \
        if (rc < 0) failures[FN_##name]++;                                               \
        return cap_test_err_check(file, line, "cap_" #name, rc, e);                      \
    }
CAP_TEST_ERR_FUNCS(DEFINE_WRAPPER)
