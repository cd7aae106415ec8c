/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* `capstore decode` and `capstore encode` need memory in proportion to their
 * input (issue 18): at most 3x the input's size plus 64 MiB of peak resident
 * memory, both ways, on a Data cap of Empty pages (5 wire bytes a page, about
 * 37 bytes of JSON) and on one of 4 KiB Loaded pages (4101 wire bytes, about
 * 8.2 KB of JSON). Each run's peak is the child's ru_maxrss (wait4), so no
 * /usr/bin/time is needed; the round trip decode | encode must give the same
 * wire bytes.
 *
 *   json_memory CAPSTORE WORKDIR            the CI test (caps of ~20 MiB)
 *   json_memory --bench MIB CAPSTORE WORKDIR  the same on caps of MIB MiB each,
 *                                            keeping the files
 *
 * In the test, a child is also given an address-space limit well above the
 * budget, so that a regression fails quickly instead of taking the machine's
 * memory; a benchmark has none, to show the true peak. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024ull * 1024ull)
#define BUDGET_CONST (64 * MIB)

static int failures;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    failures++;
}

static void die(const char *what)
{
    fprintf(stderr, "json_memory: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void put32(FILE *f, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    if (fwrite(b, 1, 4, f) != 4) die("write");
}

/* The wire form of a Data cap (cap-schema.md, "Wire form"): selector 2, the
 * page_size, the offset of the page list (8), then the list: one u32 offset
 * per page (from the list's start), then each page as its selector (0 Empty,
 * 1 Loaded) and, when Loaded, its bytes. Written as a stream, so that this
 * process stays small (a child's ru_maxrss includes what fork copied). */
static uint64_t write_data_cap(const char *path, uint64_t pages, int loaded)
{
    const uint32_t ps = 4096;
    FILE *f = fopen(path, "wb");
    if (!f) die(path);
    if (fputc(2, f) == EOF) die("write");
    put32(f, ps);
    put32(f, 8);
    uint64_t elem = loaded ? 1 + ps : 1, off = pages * 4;
    for (uint64_t i = 0; i < pages; i++, off += elem) put32(f, (uint32_t)off);
    static uint8_t page[4096];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (uint64_t i = 0; i < pages; i++) {
        if (fputc(loaded ? 1 : 0, f) == EOF) die("write");
        if (!loaded) continue;
        for (size_t k = 0; k < sizeof page; k += 8) { /* xorshift64: bytes that are not all alike */
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            memcpy(page + k, &x, 8);
        }
        if (fwrite(page, 1, ps, f) != ps) die("write");
    }
    if (fclose(f) != 0) die("close");
    return 9 + off;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) die(path);
    return (uint64_t)st.st_size;
}

/* Run CAPSTORE SUB IN with stdout to OUT; returns the exit status (-1 on a
 * signal) and the child's peak resident memory in *peak (bytes). */
static int run(const char *capstore, const char *sub, const char *in, const char *out,
               const char *err, uint64_t as_limit, uint64_t *peak, double *secs)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fi = open("/dev/null", O_RDONLY);
        if (fo < 0 || fe < 0 || fi < 0) _exit(126);
        dup2(fi, 0), dup2(fo, 1), dup2(fe, 2);
        struct rlimit rl = {(rlim_t)as_limit, (rlim_t)as_limit};
        if (as_limit) setrlimit(RLIMIT_AS, &rl);
        execl(capstore, capstore, sub, in, (char *)NULL);
        _exit(127);
    }
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) != pid) die("wait4");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    *peak = (uint64_t)ru.ru_maxrss * 1024;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    static char ba[1 << 16], bb[1 << 16];
    while (same) {
        size_t na = fread(ba, 1, sizeof ba, fa), nb = fread(bb, 1, sizeof bb, fb);
        if (na != nb || memcmp(ba, bb, na) != 0) same = 0;
        if (na == 0) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void show_err(const char *err)
{
    FILE *f = fopen(err, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) fprintf(stderr, "    stderr: %s", line);
    if (f) fclose(f);
}

/* One direction: run it, print its figures, check the budget. */
static void direction(const char *capstore, const char *label, const char *sub, const char *in,
                      const char *out, int bench)
{
    uint64_t size = file_size(in), budget = 3 * size + BUDGET_CONST, peak;
    double secs;
    /* Twice the budget (plus room for the libraries' mappings) as a hard
     * ceiling: far enough above it that the address space a run reserves
     * but never touches does not make a good run fail. */
    uint64_t limit = bench ? 0 : 2 * budget + 256 * MIB; /* a benchmark shows the true peak */
    int rc = run(capstore, sub, in, out, "err", limit, &peak, &secs);
    printf("%-7s %-6s input %8.1f MiB  peak RSS %8.1f MiB (%5.2fx input)  budget %8.1f MiB  %6.2f s%s\n",
           label, sub, (double)size / MIB, (double)peak / MIB, (double)peak / (double)size,
           (double)budget / MIB, secs, peak <= budget ? "" : "  OVER BUDGET");
    fflush(stdout);
    if (rc != 0) {
        fail("capstore %s %s exited %d (address-space limit %.0f MiB, 0: none)", sub, in, rc,
             (double)limit / MIB);
        show_err("err");
    } else if (peak > budget) {
        fail("capstore %s %s: peak RSS %.1f MiB is over 3 x %.1f MiB + 64 MiB", sub, in,
             (double)peak / MIB, (double)size / MIB);
    }
}

static void shape(const char *capstore, const char *label, uint64_t pages, int loaded, int bench)
{
    char cap[64], json[64], back[64];
    snprintf(cap, sizeof cap, "%s.cap", label);
    snprintf(json, sizeof json, "%s.json", label);
    snprintf(back, sizeof back, "%s.back.cap", label);
    write_data_cap(cap, pages, loaded);
    direction(capstore, label, "decode", cap, json, bench);
    direction(capstore, label, "encode", json, back, bench);
    if (!same_file(cap, back)) fail("%s: decode | encode does not give the same wire bytes", label);
    if (!bench) { /* CI leaves no hundreds of MB behind */
        unlink(cap), unlink(json), unlink(back);
    }
}

int main(int argc, char **argv)
{
    uint64_t mib_empty = 20, mib_loaded = 20;
    int bench = 0;
    if (argc == 5 && strcmp(argv[1], "--bench") == 0) {
        mib_empty = mib_loaded = strtoull(argv[2], NULL, 10);
        bench = 1;
        argv += 2, argc -= 2;
    }
    if (argc != 3 || !mib_empty) {
        fprintf(stderr, "usage: json_memory [--bench MIB] CAPSTORE WORKDIR\n");
        return 2;
    }
    char capstore[4096];
    if (!realpath(argv[1], capstore)) die(argv[1]);
    mkdir(argv[2], 0755);
    if (chdir(argv[2]) != 0) die(argv[2]);
    /* 5 wire bytes an Empty page, 4101 a Loaded one (4-byte offset + selector + bytes). */
    shape(capstore, "empty", mib_empty * MIB / 5, 0, bench);
    shape(capstore, "loaded", mib_loaded * MIB / 4101, 1, bench);
    if (failures) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
