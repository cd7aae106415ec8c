#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# capstore vectors: bash cli_vectors.sh <capstore> <test-data-dir> <work-dir>
set -u
. "$(dirname "$0")/support/cli_common.sh"
SSZ=$(dirname "$VECTORS")/ssz-basic.txt
caps_n=$(grep -cv '^\(#\|$\)' "$VECTORS")
ssz_n=$(grep -cv '^\(#\|$\)' "$SSZ")
last() { tail -n 1 out; }

# Both conformance files pass, each alone and together.
run 0 "$CAPSTORE" vectors "$VECTORS"
[ "$(last)" = "$caps_n passed, 0 failed" ] || fail "caps.txt: $(last)"
run 0 "$CAPSTORE" vectors "$SSZ"
[ "$(last)" = "$ssz_n passed, 0 failed" ] || fail "ssz-basic.txt: $(last)"
run 0 "$CAPSTORE" vectors "$VECTORS" "$SSZ"
[ "$(last)" = "$((caps_n + ssz_n)) passed, 0 failed" ] || fail "both files: $(last)"

# Every kind of merkleization vector is checked, not waved through: change
# the first digit of one root of each kind and each must fail.
for prefix in node_hash_ zero_hash_ list_uint8_ list_uint32_ vector_uint64_13_ \
    list_bytes32_65536_ list_bytes32_2p32_ bytevector_ mix_in_length_ mix_in_selector_; do
    line=$(grep -m1 "^$prefix" "$SSZ") || { fail "no $prefix vector"; continue; }
    name=${line%% *} rest=${line#* } root=${rest%% *} input=${rest#* }
    flipped=$( [ "${root:0:1}" = 0 ] && echo 1 || echo 0 )${root:1}
    printf '%s %s %s\n' "$name" "$flipped" "$input" >flip.txt
    run 1 "$CAPSTORE" vectors flip.txt
    grep_out "FAIL flip.txt:1: $name: root mismatch: got $root"
    [ "$(last)" = "0 passed, 1 failed" ] || fail "$prefix flipped: $(last)"
done

# Inputs that do not fit the shape the name gives fail with a reason.
Z=0000000000000000000000000000000000000000000000000000000000000000
cat >bad.txt <<EOF
node_hash_short $Z 00
zero_hash_deep $Z 41
list_uint32_ragged $Z 010203
vector_uint64_13_short $Z 00
list_bytes32_65536_ragged $Z 00
bytevector_32_long $Z ${Z}00
bytevector_nolength $Z 00
mix_in_length_short $Z $Z
EOF
run 1 "$CAPSTORE" vectors bad.txt
[ "$(grep -c 'malformed input' out)" = 8 ] || fail "malformed inputs: $(cat out)"
[ "$(last)" = "0 passed, 8 failed" ] || fail "malformed inputs: $(last)"

# caps.txt lines: a changed hash, a reject that decodes, bad hex, a short line.
hash=$(vec_hash type_11_chain) wire=$(awk '$1 == "type_11_chain" { print $3 }' "$VECTORS")
[ -n "$wire" ] || fail "no type_11_chain vector"
{
    echo "# a comment, then a blank line"
    echo
    echo "type_ok $hash $wire"
    echo "type_wrong $Z $wire"
    echo "type_not_rejected reject $wire"
    echo "type_badhex $hash 0g"
    echo "type_short $hash"
} >caps.txt
run 1 "$CAPSTORE" vectors caps.txt
grep_out "type_wrong: cap hash mismatch"
grep_out "type_not_rejected: decoded, but the line says it must be rejected"
grep_out "type_badhex: malformed wire or input hex"
grep_out "type_short: malformed line"
[ "$(last)" = "1 passed, 4 failed" ] || fail "caps lines: $(last)"

# Standard input, an unreadable file, usage.
run 0 "$CAPSTORE" vectors - <"$SSZ"
[ "$(last)" = "$ssz_n passed, 0 failed" ] || fail "stdin: $(last)"
run 1 "$CAPSTORE" vectors no-such-file
grep_err "cannot open no-such-file"
# A file with no vectors checks nothing: it is said, and it fails.
: >empty.txt
run 1 "$CAPSTORE" vectors empty.txt
grep_err "empty.txt: no vectors in it"
[ "$(last)" = "0 passed, 1 failed" ] || fail "empty file: $(last)"
printf '# a comment only\n\n' >comments.txt
run 1 "$CAPSTORE" vectors "$SSZ" comments.txt
[ "$(last)" = "$ssz_n passed, 1 failed" ] || fail "a file of comments: $(last)"
run 1 "$CAPSTORE" vectors - </dev/null
grep_err "<stdin>: no vectors in it"
run 2 "$CAPSTORE" vectors
grep_err "no FILE given"
run 0 "$CAPSTORE" vectors --help
grep_out "ssz-basic.txt"
finish
