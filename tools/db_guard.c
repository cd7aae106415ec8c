/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The crash guard: LMDB reads a database through a memory map and trusts
 * it (no page checksums), so a damaged file can make it touch memory past
 * the file's end (SIGBUS), follow a wild page pointer (SIGSEGV), divide by
 * a damaged size (SIGFPE) or fail one of its own assertions (which aborts).
 * Bounds checks in the library cannot
 * reach inside LMDB, so a command that reads a database turns those into a
 * clean exit 1 with a message pointing to `capstore db check`. A closed
 * pipe (SIGPIPE) is left alone: the command ends quietly, as Unix tools do. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "capstore/persist.h"
#include "db_guard.h"

static char message[1200];
static size_t message_len;
static db_guard_fn custom;
/* An alternate stack, so that a fault on a damaged page deep in a
 * recursion still reaches the handler. */
static char alt_stack[64 * 1024];

static void say(const char *s) { (void)!write(2, s, strlen(s)); }

static void on_fault(int sig)
{
    if (custom) custom(sig, NULL);
    (void)!write(2, message, message_len);
    _exit(1);
}

static void on_assert(const char *msg)
{
    if (custom) custom(0, msg);
    (void)!write(2, message, message_len > 0 ? message_len - 1 : 0); /* without the newline */
    say(" (LMDB: ");
    say(msg ? msg : "assertion failed");
    say(")\n");
    _exit(1);
}

void db_guard_set_handler(db_guard_fn fn) { custom = fn; }

void db_guard_arm(const char *path)
{
    int n = snprintf(message, sizeof message, "capstore: damaged database %s: run capstore db check\n", path);
    message_len = n < 0 ? 0 : (size_t)n < sizeof message ? (size_t)n : sizeof message - 1;
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = alt_stack;
    ss.ss_size = sizeof alt_stack;
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fault;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL); /* a damaged page size divides by zero */
    cap_lmdb_set_assert_hook(on_assert);
}
