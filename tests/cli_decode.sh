#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# capstore decode: bash cli_decode.sh <capstore> <test-data-dir> <work-dir>
set -u
. "$(dirname "$0")/support/cli_common.sh"

# --- happy path
vec cnode_sl8_gaps_1_7_200 cnode.bin
run 0 "$CAPSTORE" decode cnode.bin
grep_out '"kind": "cnode"'
grep_out '"size_log": 8'
grep_out '"slot": 200'
grep_out '"target": "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"'
[ "$(grep -c '"slot":' out)" = 3 ] || fail "cnode JSON should list 3 slots"
cp out cnode.json
run 0 "$CAPSTORE" decode - <cnode.bin
cmp -s out cnode.json || fail "decode of stdin differs from decode of the file"

vec data_ps4096_mixed_L_E_M data.bin
run 0 "$CAPSTORE" decode data.bin
grep_out '"page_size": 4096'
grep_out '"state": "loaded"'
grep_out '"state": "empty"'
grep_out '"state": "missing"'
grep_out '"root": "1111111111111111111111111111111111111111111111111111111111111111"'
bytes=$(sed -n 's/^ *"bytes": "\(.*\)"$/\1/p' out)
[ "${#bytes}" = 8192 ] && [[ "$bytes" =~ ^[0-9a-f]+$ ]] || fail "a loaded 4096-byte page should be 8192 lowercase hex digits"

# u64 above 2^53 are decimal strings, small ones numbers
vec instance_max_scalars inst.bin
run 0 "$CAPSTORE" decode inst.bin
grep_out '"pc": "18446744073709551615"'
grep_out '"mem_size": 4294967295'
vec instance_regs_index inst2.bin
run 0 "$CAPSTORE" decode inst2.bin
grep_out '"pc": 4096'
grep_out '"root_cnode": "2222222222222222222222222222222222222222222222222222222222222222"'

vec image_full image.bin
run 0 "$CAPSTORE" decode image.bin
for f in code bitmask jump_table endpoints mappings pinned initial yield_marker_slot \
         entry_pc stack_top arg_cnode_slot arg_cnode_size initial_regs source_path source_path_len cap_hash; do
    grep_out "\"$f\":"
done
vec image_empty_yield_none image0.bin
run 0 "$CAPSTORE" decode image0.bin
grep_out '"yield_marker_slot": null'
vec type_11_chain type.bin
run 0 "$CAPSTORE" decode type.bin
grep_out '"kind": "type"'

# the JSON is printed as the cap is walked: a failed write still ends in exit 1
if [ -w /dev/full ]; then
    "$CAPSTORE" decode data.bin >/dev/full 2>err
    rc=$?
    [ "$rc" = 1 ] || fail "decode to /dev/full exited $rc, expected 1"
    grep_err "error writing standard output"
fi

run 0 "$CAPSTORE" decode --help
grep_out "usage: capstore decode FILE"

# --- usage errors (exit 2)
run 2 "$CAPSTORE" decode
grep_err "missing FILE"
run 2 "$CAPSTORE" decode cnode.bin data.bin
grep_err "too many arguments"
run 2 "$CAPSTORE" decode -x cnode.bin
grep_err "unknown option"

# --- bad input (exit 1)
vec neg_cnode_duplicate_slot bad.bin
run 1 "$CAPSTORE" decode bad.bin
grep_err "bad.bin: malformed wire bytes: .* at byte [0-9]"
[ -s out ] && fail "decode printed JSON for bad input"
printf '\x07' >badsel.bin
run 1 "$CAPSTORE" decode badsel.bin
grep_err "at byte 0"
run 1 "$CAPSTORE" decode no-such-file.bin
finish
