/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Checking standard output at exit (close_stdout.c). */
#ifndef CAPSTORE_CLOSE_STDOUT_H
#define CAPSTORE_CLOSE_STDOUT_H

/* Register, once, an exit handler that flushes and closes standard output
 * and turns a write error into exit status 1 with a message on standard
 * error, as coreutils' close_stdout does. */
void cli_check_stdout_at_exit(void);

#endif
