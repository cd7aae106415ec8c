/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The archive format's constants and little-endian fields (archive.h,
 * docs/archive.md), shared by archive_export.c and archive_import.c. */
#ifndef CAPSTORE_ARCHIVE_FORMAT_H
#define CAPSTORE_ARCHIVE_FORMAT_H

#include <stdint.h>

/* "\x89CAPAR\r\n": a byte with the high bit set and a CR LF, so a transfer
 * that strips bits or rewrites line ends is caught by the first 8 bytes. */
static const uint8_t cap_arc_magic[8] = {0x89, 'C', 'A', 'P', 'A', 'R', '\r', '\n'};

#define CAP_ARC_HEADER 20u      /* magic, version u32, flags u32, roots u32 */
#define CAP_ARC_RECORD_HEAD 40u /* hash, length u64 */
#define CAP_ARC_TRAILER 48u     /* records u64, wire bytes u64, SHA-256 */
/* The largest record a reader takes (a cap's wire form is far smaller). */
#define CAP_ARC_MAX_RECORD ((uint64_t)1 << 34)

static inline void cap_arc_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline void cap_arc_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t cap_arc_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t cap_arc_get64(const uint8_t *p)
{
    return (uint64_t)cap_arc_get32(p) | (uint64_t)cap_arc_get32(p + 4) << 32;
}

#endif
