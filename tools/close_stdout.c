/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Standard output is checked once, at exit, for every command: output is
 * buffered, so a full disk or /dev/full often shows only when the buffer is
 * flushed, after the command thought it was done. A write error there (or
 * one remembered by the stream) makes the exit status 1, with a message.
 * A reader that went away (EPIPE, when SIGPIPE is ignored) is not an error
 * worth a message: the command ends quietly, as Unix tools do. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "close_stdout.h"

static void close_stdout(void)
{
    bool had_error = ferror(stdout) != 0;
    errno = 0;
    bool close_failed = fclose(stdout) != 0;
    int ec = errno;
    if (!had_error && !close_failed) return;
    if (ec != EPIPE) {
        if (close_failed && ec)
            fprintf(stderr, "capstore: error writing standard output: %s\n", strerror(ec));
        else
            fprintf(stderr, "capstore: error writing standard output\n");
    }
    _exit(1);
}

void cli_check_stdout_at_exit(void)
{
    static bool done;
    if (done) return;
    done = true;
    atexit(close_stdout);
}
