/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore — the public API in one include. See the README for the model
 * and docs/API.md for the error codes. */
#ifndef CAPSTORE_H
#define CAPSTORE_H

#include "capstore/common.h"
#include "capstore/sha256.h"
#include "capstore/ssz.h"
#include "capstore/cap.h"
#include "capstore/walk.h"
#include "capstore/store.h"

#endif
