/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* CAPSTORE_SHA256 environment override of the SHA-256 kernel choice. */
#include <stdlib.h>
#include <string.h>

#include "capstore/host.h"
#include "capstore/sha256.h"

int cap_sha256_select_from_env(void)
{
    const char *v = getenv("CAPSTORE_SHA256");
    cap_sha256_kernel_t best = cap_sha256_cpu_best();
    if (!v || !*v || strcmp(v, "auto") == 0) return cap_sha256_select(best);
    if (strcmp(v, "portable") == 0) return cap_sha256_select(CAP_SHA256_PORTABLE);
    int shani = strcmp(v, "shani") == 0, shani_avx = strcmp(v, "shani-avx") == 0;
    if (shani || shani_avx) {
        /* Without the CPU feature (or a build that has no SHA-NI kernel) the
         * request cannot be honoured: run the best kernel there is and say so. */
        bool ok = shani ? cap_sha256_cpu_has_shani() : cap_sha256_cpu_has_shani_avx();
        if (ok && cap_sha256_select(shani ? CAP_SHA256_SHANI : CAP_SHA256_SHANI_AVX) == CAP_OK)
            return CAP_OK;
        cap_sha256_select(best);
        return CAP_EINVAL;
    }
    /* An unknown value: behave as unset, report the mistake. */
    cap_sha256_select(best);
    return CAP_EINVAL;
}
