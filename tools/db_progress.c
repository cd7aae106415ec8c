/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Progress of the db actions over a whole database (cmd_db.h): one line on
 * standard error, rewritten in place at most four times a second and erased
 * at the end; nothing at all unless standard error is a terminal, so logs
 * and pipes stay clean. CAPSTORE_PROGRESS_MS sets another interval (the
 * tests draw every update with 0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd_db.h"

#define EVERY_MS 250

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void db_progress_init(db_progress_t *p)
{
    memset(p, 0, sizeof *p);
    p->on = isatty(STDERR_FILENO);
    p->t0 = p->shown = now_ms();
}

void db_progress_init_data(db_progress_t *p)
{
    db_progress_init(p);
    if (isatty(STDOUT_FILENO)) p->on = false;
}

/* Whether to draw now (and note it). */
static bool due(db_progress_t *p)
{
    if (!p->on) return false;
    uint64_t t = now_ms();
    static long every = -1;
    if (every < 0) {
        const char *env = getenv("CAPSTORE_PROGRESS_MS");
        every = env && *env ? strtol(env, NULL, 10) : EVERY_MS;
        if (every < 0) every = EVERY_MS;
    }
    if (t - p->shown < (uint64_t)every) return false;
    p->shown = t;
    p->drawn = true;
    return true;
}

static double rate(const db_progress_t *p, uint64_t count)
{
    uint64_t ms = now_ms() - p->t0;
    return ms ? (double)count * 1000.0 / (double)ms : 0.0;
}

void db_progress_tick(db_progress_t *p, const char *what, uint64_t done, uint64_t total)
{
    if (!due(p)) return;
    if (total)
        fprintf(stderr, "\r\033[K%s %llu/%llu (%.0f/s)", what, (unsigned long long)done, (unsigned long long)total,
                rate(p, done));
    else
        fprintf(stderr, "\r\033[K%s %llu (%.0f/s)", what, (unsigned long long)done, rate(p, done));
}

void db_progress_bytes(db_progress_t *p, const char *what, uint64_t count, uint64_t bytes)
{
    if (!due(p)) return;
    fprintf(stderr, "\r\033[K%s %llu (%.0f/s), %.1f MiB", what, (unsigned long long)count, rate(p, count),
            (double)bytes / (1024.0 * 1024.0));
}

void db_progress_fn(void *arg, const char *phase, uint64_t count, uint64_t bytes)
{
    db_progress_bytes(arg, phase, count, bytes);
}

void db_progress_end(db_progress_t *p)
{
    if (p->on && p->drawn) fprintf(stderr, "\r\033[K");
    p->drawn = false;
}
