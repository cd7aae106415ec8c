/* SPDX-License-Identifier: MIT OR Apache-2.0 */
#include "test_files.h"

#include <stdio.h>
#include <string.h>

bool test_file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f) return false;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    bool found = strstr(buf, needle) != NULL;
    if (!found) fprintf(stderr, "  %s lacks '%s': %s\n", path, needle, buf);
    return found;
}
