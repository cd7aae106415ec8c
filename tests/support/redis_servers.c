/* SPDX-License-Identifier: MIT OR Apache-2.0 */
#include "redis_servers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CAPSTORE_REDIS_CLUSTER_SH
#error "CAPSTORE_REDIS_CLUSTER_SH names tests/support/redis-cluster.sh (tests/CMakeLists.txt)"
#endif

static redis_servers_t *started[4];
static int nstarted;

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path) return false;
    char buf[1024];
    while (*path) {
        size_t len = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)len, path, prog);
        if (access(buf, X_OK) == 0) return true;
        path += len;
        if (*path == ':') path++;
    }
    return false;
}

void redis_test_require(const char *test)
{
    if (on_path("redis-server") && on_path("redis-cli")) return;
    const char *all = getenv("CAPSTORE_REQUIRE_ALL");
    if (all && strcmp(all, "1") == 0) {
        fprintf(stderr, "%s: FAIL: redis-server or redis-cli is not installed, and "
                        "CAPSTORE_REQUIRE_ALL=1 forbids skipping\n", test);
        exit(1);
    }
    printf("%s: SKIPPED: redis-server or redis-cli is not installed "
           "(apt-get install redis-server redis-tools)\n", test);
    exit(REDIS_TEST_SKIP);
}

static void stop_all(void)
{
    for (int i = 0; i < nstarted; i++) redis_servers_stop(started[i]);
}

int redis_servers_script(const redis_servers_t *s, const char *cmd, const char *fmt, ...)
{
    char args[256] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(args, sizeof args, fmt, ap);
        va_end(ap);
    }
    char line[1024];
    snprintf(line, sizeof line, "bash '%s' %s '%s' %s", CAPSTORE_REDIS_CLUSTER_SH, cmd, s->dir, args);
    fflush(stdout);
    int st = system(line);
    return st == -1 ? -1 : WEXITSTATUS(st);
}

void redis_servers_start(redis_servers_t *s, bool cluster)
{
    memset(s, 0, sizeof *s);
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/capstore-redis-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir)) {
        perror("mkdtemp");
        exit(1);
    }
    s->cluster = cluster;
    if (redis_servers_script(s, cluster ? "start" : "single", "%d", (int)getpid()) != 0) {
        fprintf(stderr, "FATAL: could not start the Redis %s (%s)\n", cluster ? "cluster" : "server",
                s->dir);
        redis_servers_script(s, "stop", NULL);
        exit(1);
    }
    char path[300];
    snprintf(path, sizeof path, "%s/ports", s->dir);
    FILE *f = fopen(path, "r");
    while (f && s->n < REDIS_TEST_MAX_PORTS && fscanf(f, "%d", &s->ports[s->n]) == 1) s->n++;
    if (f) fclose(f);
    if (s->n == 0) {
        fprintf(stderr, "FATAL: no ports in %s\n", path);
        exit(1);
    }
    if (nstarted == 0) atexit(stop_all);
    if (nstarted < 4) started[nstarted++] = s;
}

void redis_servers_stop(redis_servers_t *s)
{
    if (!s->dir[0]) return;
    redis_servers_script(s, "stop", NULL);
    char line[400];
    snprintf(line, sizeof line, "rm -rf '%s'", s->dir);
    if (system(line) != 0) fprintf(stderr, "warning: could not remove %s\n", s->dir);
    s->dir[0] = 0;
}

void redis_servers_uri(const redis_servers_t *s, size_t nseeds, const char *prefix, char *buf, size_t n)
{
    size_t len = (size_t)snprintf(buf, n, "redis://");
    if (nseeds == 0 || nseeds > (size_t)s->n) nseeds = (size_t)s->n;
    for (size_t i = 0; i < nseeds && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s127.0.0.1:%d", i ? "," : "", s->ports[i]);
    if (prefix && len < n) snprintf(buf + len, n - len, "/?prefix=%s", prefix);
}

int redis_cli(int port, char *out, size_t n, const char *fmt, ...)
{
    char args[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char line[700];
    snprintf(line, sizeof line, "redis-cli -h 127.0.0.1 -p %d %s 2>&1", port, args);
    fflush(stdout);
    FILE *p = popen(line, "r");
    if (!p) return -1;
    size_t len = 0;
    char tmp[4096];
    size_t got;
    while ((got = fread(tmp, 1, sizeof tmp, p)) > 0) {
        if (out && len + 1 < n) {
            size_t take = got < n - 1 - len ? got : n - 1 - len;
            memcpy(out + len, tmp, take);
            len += take;
        }
    }
    if (out && n) out[len] = 0;
    int st = pclose(p);
    return st == -1 ? -1 : WEXITSTATUS(st);
}

int redis_servers_masters(const redis_servers_t *s, int *ports, int cap)
{
    int m = 0;
    char out[4096];
    for (int i = 0; i < s->n && m < cap; i++) {
        if (redis_cli(s->ports[i], out, sizeof out, "info replication") != 0) continue;
        if (strstr(out, "role:master")) ports[m++] = s->ports[i];
    }
    return m;
}
