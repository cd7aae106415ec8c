/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The crash guard of the commands that read a database (db_guard.c). */
#ifndef CAPSTORE_DB_GUARD_H
#define CAPSTORE_DB_GUARD_H

/* From now on a fault while reading the database at `path` (SIGBUS,
 * SIGSEGV, LMDB's own assertion) ends the process with status 1 and
 * "capstore: damaged database PATH: run capstore db check" on standard
 * error instead of a core dump. Arm it before opening the database. */
void db_guard_arm(const char *path);

/* The guard's message, for a caller that reports it itself (db check's
 * child reports where the check stopped instead). `fn` replaces the message
 * writer: it is called from the signal handler (async-signal-safe code
 * only) with the signal number, or 0 and LMDB's text for an assertion, and
 * must not return. NULL restores the default. */
typedef void (*db_guard_fn)(int sig, const char *assertion);
void db_guard_set_handler(db_guard_fn fn);

#endif
