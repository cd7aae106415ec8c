/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Options structs that start with their `size` (persist.h, archive.h):
 * the caller's struct copied over the defaults for the size it declares (0:
 * this layout), so an older caller's missing fields keep their defaults and
 * a newer caller's later fields are not read. */
#ifndef CAPSTORE_HOST_OPTIONS_COPY_H
#define CAPSTORE_HOST_OPTIONS_COPY_H

#include <stddef.h>
#include <string.h>

static inline void cap_options_copy(void *dst, size_t dst_size, const void *src, size_t src_size)
{
    size_t n = src_size ? src_size : dst_size;
    memcpy(dst, src, n < dst_size ? n : dst_size);
}

#endif
