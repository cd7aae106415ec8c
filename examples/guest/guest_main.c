/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The guest program: a store in static storage with the built-in spin lock
 * and the arena allocator, the scenario of guest_graph.c, its line on
 * standard output, and a check against the line the host computes
 * (guest_expected.h, which the host check verifies). No libc. */
#include "guest_arena.h"
#include "guest_expected.h"
#include "guest_graph.h"
#include "guest_sys.h"

static cap_store_storage_t storage;

static size_t str_len(const char *s)
{
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static void say(int fd, const char *s) { cap_guest_write(fd, s, str_len(s)); }

static void say_size(int fd, size_t v)
{
    char buf[24];
    size_t n = sizeof buf;
    do {
        buf[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    cap_guest_write(fd, buf + n, sizeof buf - n);
}

int cap_guest_main(void)
{
    cap_store_options_t opt = {0};
    opt.alloc = cap_guest_arena();
    opt.locks = (const cap_lock_hooks_t *)0; /* the core's spin lock: no OS needed */
    opt.hash_seed[0] = 0x6a09e667f3bcc908ull;
    opt.hash_seed[1] = 0xbb67ae8584caa73bull;
    cap_store_t *s;
    int rc = cap_store_init_in_place(&storage, &opt, &s);
    if (rc != CAP_OK) {
        say(2, "capstore guest: cap_store_init_in_place failed\n");
        return 1;
    }
    cap_guest_result_t r;
    const char *step;
    rc = cap_guest_scenario(s, opt.alloc, &r, &step);
    cap_store_free(s);
    if (rc != CAP_OK) {
        say(2, "capstore guest: ");
        say(2, step);
        say(2, " failed: ");
        say(2, cap_strerror(rc));
        say(2, "\n");
        return 1;
    }
    char line[CAP_GUEST_LINE_MAX] = {0};
    cap_guest_write(1, line, cap_guest_format(line, &r));
    say(2, "capstore guest: arena peak ");
    say_size(2, cap_guest_arena_peak());
    say(2, " of ");
    say_size(2, cap_guest_arena_size());
    say(2, " bytes\n");
    if (__builtin_memcmp(line, CAP_GUEST_EXPECTED_LINE, sizeof CAP_GUEST_EXPECTED_LINE) != 0) {
        say(2, "capstore guest: MISMATCH: the host computes\n");
        say(2, CAP_GUEST_EXPECTED_LINE);
        return 1;
    }
    return 0;
}
