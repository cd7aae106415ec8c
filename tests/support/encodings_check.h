/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Two wire encodings of one cap meet in a backend (sys/backend.h:
 * cap_backend_replaces): a Data cap with every page loaded and the same cap
 * with a page missing hash alike. Whichever order they are written in, the
 * backend ends up holding the loaded one: a write of the thinner copy keeps
 * what is stored (counted neither written nor repaired), a write of the
 * fuller one replaces the thinner (repaired), and damaged bytes are still
 * replaced. Run against each backend by test_backend_encodings (memory,
 * LMDB) and test_redis_encodings (a lone Redis server). */
#ifndef CAPSTORE_TEST_ENCODINGS_CHECK_H
#define CAPSTORE_TEST_ENCODINGS_CHECK_H

#include "capstore/persist.h"

/* `salt` makes the caps differ between calls on one backend. */
void encodings_check(const cap_backend_t *b, const char *name, unsigned salt);

#endif
