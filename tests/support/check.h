/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Minimal test assertions for CTest programs: a failed CHECK prints where and
 * why, counts the failure, and the program exits 1 at the end (CHECK_DONE). */
#ifndef CAPSTORE_TEST_CHECK_H
#define CAPSTORE_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int check_failures;
extern long long check_count; /* long: the model test at 10^5 sequences passes 2^31 */

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        check_count++;                                                                   \
        if (!(cond)) {                                                                   \
            check_failures++;                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
        }                                                                                \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                               \
    do {                                                                                 \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                  \
        check_count++;                                                                   \
        if (check_a_ != check_b_) {                                                      \
            check_failures++;                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__,   \
                    __LINE__, #a, #b, check_a_, check_b_);                               \
        }                                                                                \
    } while (0)

#define CHECK_MEM(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)

/* Print a summary and return the process exit status. */
int check_done(const char *name);

/* Path "<test data dir>/<rel>" into buf; exits loudly if the file is missing. */
const char *check_data_path(int argc, char **argv, const char *rel, char *buf, size_t n);

/* Hex helpers. hex_decode returns -1 on bad hex; "-" decodes to 0 bytes. */
long hex_decode(const char *hex, unsigned char *out, size_t cap);
void hex_encode(const unsigned char *in, size_t n, char *out);

/* Read a text file's lines one at a time (any length). Returns NULL at EOF. */
typedef struct line_reader {
    FILE *f;
    char *buf;
    size_t cap;
} line_reader_t;
int line_reader_open(line_reader_t *lr, const char *path);
char *line_reader_next(line_reader_t *lr);
void line_reader_close(line_reader_t *lr);

#endif
