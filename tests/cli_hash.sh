#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# capstore hash: bash cli_hash.sh <capstore> <test-data-dir> <work-dir>
set -u
. "$(dirname "$0")/support/cli_common.sh"

# --- happy path: one vector of each kind, and the largest page size
for name in type_11_chain cnode_sl8_gaps_1_7_200 cnode_sl16_64_spread data_ps4096_mixed_L_E_M \
            data_ps65536_one_loaded instance_overlays_3 instance_max_scalars image_full \
            image_empty_yield_none; do
    vec "$name" "$name.bin"
    run 0 "$CAPSTORE" hash "$name.bin"
    [ "$(cat out)" = "$(vec_hash "$name")" ] || fail "hash of $name: got '$(cat out)'"
    [ "$(wc -c <out)" = 65 ] || fail "hash output of $name is not 64 hex digits and a newline"
done
# standard input
run 0 "$CAPSTORE" hash - <cnode_sl8_gaps_1_7_200.bin
[ "$(cat out)" = "$(vec_hash cnode_sl8_gaps_1_7_200)" ] || fail "hash of stdin"
run 0 "$CAPSTORE" hash -- cnode_sl8_gaps_1_7_200.bin
run 0 "$CAPSTORE" hash --help
grep_out "usage: capstore hash FILE"

# --- usage errors (exit 2)
run 2 "$CAPSTORE" hash
grep_err "missing FILE"
grep_err "usage:"
run 2 "$CAPSTORE" hash --bogus type_11_chain.bin
grep_err "unknown option '--bogus'"

# --- bad input (exit 1): the rule and the byte offset
vec neg_cnode_size_log_17 bad.bin
run 1 "$CAPSTORE" hash bad.bin
grep_err "bad.bin: malformed wire bytes: .* at byte [0-9]"
[ -s out ] && fail "hash printed something for bad input"
: >empty.bin
run 1 "$CAPSTORE" hash empty.bin
grep_err "at byte 0"
run 1 "$CAPSTORE" hash - <bad.bin
grep_err "<stdin>: malformed wire bytes"
run 1 "$CAPSTORE" hash no-such-file.bin
grep_err "no-such-file.bin: No such file"

# --- several files: "HASH  FILE" lines, as sha256sum; a bad one is reported
# and the others still hashed
run 0 "$CAPSTORE" hash type_11_chain.bin image_full.bin
[ "$(cat out)" = "$(vec_hash type_11_chain)  type_11_chain.bin
$(vec_hash image_full)  image_full.bin" ] || fail "hash of two files: $(cat out)"
run 1 "$CAPSTORE" hash type_11_chain.bin bad.bin image_full.bin
[ "$(wc -l <out)" = 2 ] || fail "hash with a bad file in the middle: $(cat out)"
grep_out "  image_full.bin$"
grep_err "bad.bin: malformed wire bytes"
run 0 "$CAPSTORE" hash - image_full.bin <type_11_chain.bin
grep_out "^$(vec_hash type_11_chain)  -$"

# --- JSON where wire bytes belong: a hint to use encode (hash, decode,
# inspect read wire files the same way)
printf '{"kind":"type","image_hash_chain":"%s"}\n' "$(printf '11%.0s' {1..32})" >type.json
for sub in hash decode inspect; do
    run 1 "$CAPSTORE" "$sub" type.json
    grep_err "malformed wire bytes"
    grep_err "hint: type.json looks like the JSON form .*capstore encode type.json"
done
run 1 "$CAPSTORE" hash - <type.json
grep_err "capstore encode -"
run 1 "$CAPSTORE" hash bad.bin
grep -q hint err && fail "a hint to use encode for wire bytes that are not JSON"
finish
