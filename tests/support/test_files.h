/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Files the tests read back: what a command wrote to its captured
 * standard error or output. */
#ifndef CAPSTORE_TEST_FILES_H
#define CAPSTORE_TEST_FILES_H

#include <stdbool.h>

/* Whether the file at `path` contains `needle` (its first 64 KiB); when it
 * does not, the file is printed on stderr to say what it held instead. */
bool test_file_has(const char *path, const char *needle);

#endif
