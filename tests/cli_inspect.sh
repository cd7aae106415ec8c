#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# capstore inspect: bash cli_inspect.sh <capstore> <test-data-dir> <work-dir>
set -u
. "$(dirname "$0")/support/cli_common.sh"
field() { grep -Eq "^$1: +$2\$" out || fail "inspect: no line '$1: $2' in: $(cat out)"; }

# --- happy path
vec cnode_sl8_gaps_1_7_200 cnode.bin
run 0 "$CAPSTORE" inspect cnode.bin
field kind cnode
field hash "$(vec_hash cnode_sl8_gaps_1_7_200)"
field "wire size" "$(wc -c <cnode.bin) bytes"
field size_log "8 \(256 slots\)"
field occupied "3 slots"
grep -Eq "^ +slot 200 +ffff" out || fail "inspect lists no slot 200"

vec data_ps4096_mixed_L_E_M data.bin
run 0 "$CAPSTORE" inspect data.bin
field kind data
field page_size 4096
field pages "3 \(loaded 1, empty 1, missing 1\)"

vec instance_overlays_3 inst.bin
run 0 "$CAPSTORE" inspect inst.bin
field kind instance
field rw_overlays "3 \(45 bytes\)"
field root_cnode 1111111111111111111111111111111111111111111111111111111111111111

vec image_full image.bin
run 0 "$CAPSTORE" inspect - <image.bin
field file "<stdin>"
field kind image
field code "300 bytes"
field endpoints 2
field mappings 2
field pinned 2
field initial 2
field yield_marker_slot 7

vec type_11_chain type.bin
run 0 "$CAPSTORE" inspect type.bin
field image_hash_chain 1111111111111111111111111111111111111111111111111111111111111111

# several files; long lists are cut unless --all
vec cnode_sl4_full full.bin
run 0 "$CAPSTORE" inspect cnode.bin full.bin
[ "$(grep -c '^kind:' out)" = 2 ] || fail "inspect of two files should print two summaries"
grep -q "more (--all lists them)" out && fail "a 16-slot cnode should be listed whole"
vec cnode_sl8_full full8.bin
run 0 "$CAPSTORE" inspect full8.bin
grep -q "240 more (--all lists them)" out || fail "inspect should cut the 256-slot list at 16"
run 0 "$CAPSTORE" inspect --all full8.bin
[ "$(grep -Ec '^ +slot ' out)" = 256 ] || fail "inspect --all should list 256 slots"
run 0 "$CAPSTORE" inspect --help
grep_out "usage: capstore inspect"

# --json: one array, an object per file, every list whole
jfield() { grep -Eq "^ +\"$1\": $2,?\$" out || fail "inspect --json: no \"$1\": $2 in: $(cat out)"; }
run 0 "$CAPSTORE" inspect --json full8.bin data.bin inst.bin image.bin type.bin
[ "$(head -c 1 out)" = "[" ] || fail "inspect --json does not print an array"
[ "$(grep -c '"kind":' out)" = 5 ] || fail "inspect --json of five files: $(grep -c '"kind":' out) objects"
jfield kind '"cnode"'
jfield hash "\"$(vec_hash cnode_sl8_full)\""
jfield size_log 8
jfield occupied 256
[ "$(grep -c '"target":' out)" = 256 ] || fail "inspect --json cut the slot list"
jfield page_count 3
jfield missing 1
jfield overlay_bytes 45
jfield yield_marker_slot 7
jfield image_hash_chain '"1111111111111111111111111111111111111111111111111111111111111111"'
if command -v python3 >/dev/null; then
    python3 -m json.tool out >/dev/null || fail "inspect --json is not JSON"
fi
run 1 "$CAPSTORE" inspect --json type.bin no-such-file.bin
grep_err "no-such-file.bin"
[ "$(grep -c '"kind":' out)" = 1 ] || fail "inspect --json with a missing file: $(cat out)"

# --- usage errors (exit 2)
run 2 "$CAPSTORE" inspect
grep_err "missing FILE"
run 2 "$CAPSTORE" inspect - -
grep_err "standard input"
run 2 "$CAPSTORE" inspect --verbose cnode.bin
grep_err "unknown option"

# --- bad input (exit 1)
vec neg_cnode_offset_past_end bad.bin
run 1 "$CAPSTORE" inspect bad.bin
grep_err "bad.bin: malformed wire bytes: .* at byte [0-9]"
run 1 "$CAPSTORE" inspect cnode.bin bad.bin
grep_out "kind: *cnode"
run 1 "$CAPSTORE" inspect no-such-file.bin
finish
