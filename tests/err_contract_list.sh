#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Every public function with a `cap_err_t *` parameter has its checking
# wrapper in tests/support/err_check.h (so the tests check its contract),
# and the wrapper list names no function the headers lack. The cap_err_*
# helpers, cap_backend_fail and the SSZ reader (whose struct belongs to the
# reader, sticky by design) are not failing calls of their own.
#
#   bash err_contract_list.sh <source-dir>
set -euo pipefail
SRC=$1
# One declaration a line: drop comments and preprocessor lines, join lines,
# split at ';'.
declared=$(for h in "$SRC"/include/capstore/*.h "$SRC"/include/capstore/sys/*.h; do
               sed -e 's://.*$::' "$h" | grep -v '^\s*#'
           done | tr '\n' ' ' | sed -e 's:/\*[^*]*\*\+\([^/*][^*]*\*\+\)*/::g' | tr ';' '\n' |
           grep -E 'cap_err_t \*' | grep -oE '\bcap_[a-z0-9_]+\(' |
           sed 's/($//' | sort -u |
           grep -vxE 'cap_err_[a-z0-9_]+|cap_backend_fail|cap_ssz_[a-z0-9_]+' || true)
wrapped=$(grep -oE '^#define cap_[a-z0-9_]+\(' "$SRC/tests/support/err_check.h" | sed 's/^#define //; s/($//' | sort -u)
status=0
missing=$(comm -23 <(echo "$declared") <(echo "$wrapped"))
extra=$(comm -13 <(echo "$declared") <(echo "$wrapped"))
[ -z "$missing" ] || { echo "FAIL: no wrapper in tests/support/err_check.h for: $(echo $missing)"; status=1; }
[ -z "$extra" ] || { echo "FAIL: err_check.h wraps what no header declares: $(echo $extra)"; status=1; }
[ $status -eq 0 ] && echo "err_check.h wraps all $(echo "$declared" | wc -l) functions that take a cap_err_t *"
exit $status
