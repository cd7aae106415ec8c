/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Progress of the db actions over a whole database (tools/db_progress.c):
 * with standard error on a terminal (a pseudo-terminal here), ls, gc,
 * export, import and check draw a line with the count, the rate and (where
 * known) the bytes, and erase it at the end; ls draws nothing when its
 * listing goes to the terminal too. (Silence when standard error is not a
 * terminal: tests/cli_db_life.sh.) The command runs in a child, compiled
 * into this test; CAPSTORE_PROGRESS_MS=0 makes it draw every update. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tools/cmd_common.c"
#include "../tools/cmd_db.c"
#include "../tools/cmd_db_check.c"
#include "../tools/db_guard.c"
#include "../tools/cmd_db_life.inc"

#include "check.h"
#include "test_graph.h"

static char dir[256], db[320];

/* Run `capstore db ARGS` with standard error on a pseudo-terminal (and
 * standard output too when `out_on_tty`, else to /dev/null); what the
 * terminal showed goes to `shown`. Returns the exit status. */
static int run_pty(bool out_on_tty, char *shown, size_t cap, const char *a0, ...)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)"db";
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && argc < 15; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) return -1;
    fflush(NULL);
    pid_t kid = fork();
    if (kid == 0) {
        int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
        int null = open("/dev/null", O_WRONLY);
        close(master);
        dup2(slave, 2);
        dup2(out_on_tty ? slave : null, 1);
        setenv("CAPSTORE_PROGRESS_MS", "0", 1);
        _exit(cmd_db(argc, argv) | (fflush(stdout) ? 8 : 0));
    }
    size_t n = 0;
    for (;;) {
        ssize_t got = read(master, shown + n, cap - 1 - n);
        if (got > 0) n += (size_t)got;
        else if (got < 0 && errno == EINTR) continue;
        else break; /* EIO once the child is gone */
        if (n == cap - 1) n = cap / 2; /* keep reading; the start is enough */
    }
    shown[n] = 0;
    close(master);
    int status = 0;
    waitpid(kid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool has(const char *text, const char *what)
{
    bool ok = strstr(text, what) != NULL;
    if (!ok) fprintf(stderr, "  the terminal did not show '%s'\n", what);
    return ok;
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/capstore_test_progress_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    snprintf(db, sizeof db, "%s/p.lmdb", dir);
    cap_lmdb_options_t o = {CAP_LMDB_NOSYNC, 0, 0, 0};
    cap_backend_t *b = NULL;
    CHECK_EQ_INT(cap_lmdb_open(db, &o, &b, NULL), CAP_OK);
    if (!b) return check_done("test_db_progress");
    test_graph_t g, junk;
    test_graph_make(&g, 81, 3000);
    test_graph_make(&junk, 82, 9000);
    cap_backend_root_t r = {"main", g.root};
    CHECK_EQ_INT(cap_backend_write_many(b, g.items, g.n, &r, 1, NULL, NULL), CAP_OK);
    CHECK_EQ_INT(cap_backend_write_many(b, junk.items, junk.n, NULL, 0, NULL, NULL), CAP_OK);
    cap_backend_free(b);
    static char shown[1 << 16];
    char arc[400];
    snprintf(arc, sizeof arc, "%s/a.arc", dir);

    CHECK_EQ_INT(run_pty(false, shown, sizeof shown, "ls", "--db", db, NULL), 0);
    CHECK(has(shown, "listed ") && has(shown, "/s)") && has(shown, " MiB") && has(shown, "\r\033[K"));
    CHECK_EQ_INT(run_pty(true, shown, sizeof shown, "ls", "--db", db, NULL), 0);
    CHECK(strstr(shown, "listed ") == NULL); /* the listing has the terminal */
    CHECK_EQ_INT(run_pty(false, shown, sizeof shown, "gc", "--db", db, "--batch", "100", NULL), 0);
    CHECK(has(shown, "sweep ") && has(shown, "/s)"));
    CHECK_EQ_INT(run_pty(false, shown, sizeof shown, "export", "main", "-o", arc, "--db", db, NULL), 0);
    CHECK(has(shown, "export ") && has(shown, " MiB"));
    unlink(db);
    CHECK_EQ_INT(run_pty(false, shown, sizeof shown, "import", arc, "--db", db, NULL), 0);
    CHECK(has(shown, "import ") && has(shown, "write "));
    CHECK_EQ_INT(run_pty(false, shown, sizeof shown, "check", "--db", db, NULL), 0);
    CHECK(has(shown, "checked "));
    test_graph_free(&g);
    test_graph_free(&junk);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done("test_db_progress");
}
