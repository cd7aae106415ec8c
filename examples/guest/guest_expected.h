/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* The line the scenario prints, as the host computes it: host_check.c runs
 * the scenario through the normal library, builds the settled graph a second
 * way (cap by cap, no store) and fails unless both give this line. */
#ifndef CAPSTORE_GUEST_EXPECTED_H
#define CAPSTORE_GUEST_EXPECTED_H

#define CAP_GUEST_EXPECTED_LINE                                                                   \
    "capstore guest: root 0b47802c7dcf3e922e148972e26f9bddd1730bdecadb511f3821a294f7469000 "      \
    "blobs 6 instances 0 swept 4\n"

#endif
