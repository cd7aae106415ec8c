/* SPDX-License-Identifier: MIT OR Apache-2.0 */
#include "check.h"

#include <sys/stat.h>

int check_failures;
long long check_count;

int check_done(const char *name)
{
    printf("%s: %lld checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}

const char *check_data_path(int argc, char **argv, const char *rel, char *buf, size_t n)
{
    const char *dir = argc > 1 ? argv[1] : getenv("CAPSTORE_TEST_DATA_DIR");
    if (!dir) {
        fprintf(stderr, "FATAL: no test data folder given (argv[1] or CAPSTORE_TEST_DATA_DIR)\n");
        exit(2);
    }
    snprintf(buf, n, "%s/%s", dir, rel);
    struct stat st;
    if (stat(buf, &st) != 0) {
        fprintf(stderr, "FATAL: %s is missing: the conformance vectors must be present\n", buf);
        exit(2);
    }
    return buf;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long hex_decode(const char *hex, unsigned char *out, size_t cap)
{
    if (strcmp(hex, "-") == 0) return 0;
    size_t len = strlen(hex);
    if (len % 2 || len / 2 > cap) return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(len / 2);
}

void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = 0;
}

int line_reader_open(line_reader_t *lr, const char *path)
{
    lr->f = fopen(path, "r");
    lr->buf = NULL;
    lr->cap = 0;
    return lr->f ? 0 : -1;
}

char *line_reader_next(line_reader_t *lr)
{
    ssize_t n = getline(&lr->buf, &lr->cap, lr->f);
    if (n < 0) return NULL;
    while (n > 0 && (lr->buf[n - 1] == '\n' || lr->buf[n - 1] == '\r')) lr->buf[--n] = 0;
    return lr->buf;
}

void line_reader_close(line_reader_t *lr)
{
    if (lr->f) fclose(lr->f);
    free(lr->buf);
}
