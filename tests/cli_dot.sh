#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# capstore dot: bash cli_dot.sh <capstore> <test-data-dir> <work-dir>
set -u
. "$(dirname "$0")/support/cli_common.sh"
H7=7777777777777777777777777777777777777777777777777777777777777777

# --- happy path: instance -> cnode -> {type, data, placeholder}; an image
# with pinned/initial entries pointing outside the given files.
vec type_11_chain type.bin
vec data_ps32_one_loaded data.bin
vec image_pinned_initial image.bin
T=$(vec_hash type_11_chain) D=$(vec_hash data_ps32_one_loaded) I=$(vec_hash image_pinned_initial)
printf '{"kind":"cnode","size_log":4,"slots":[{"slot":0,"target":"%s"},{"slot":3,"target":"%s"},{"slot":5,"target":"%s"}]}' \
    "$T" "$D" "$H7" >cnode.json
run 0 "$CAPSTORE" encode -o cnode.bin cnode.json
run 0 "$CAPSTORE" hash cnode.bin
C=$(cat out)
printf '{"kind":"instance","root_cnode":"%s"}' "$C" >inst.json
run 0 "$CAPSTORE" encode -o inst.bin inst.json
run 0 "$CAPSTORE" hash inst.bin
N=$(cat out)

run 0 "$CAPSTORE" dot inst.bin cnode.bin type.bin data.bin image.bin
cp out graph.dot
grep -q '^digraph ' graph.dot || fail "not a digraph"
tail -n 1 graph.dot | grep -q '^}$' || fail "graph not closed"
node() { grep -Fq "\"$1\" [label=\"$2\\n${1:0:8}\"]" graph.dot || fail "no node $2 ${1:0:8}"; }
edge() { grep -Fq "\"$1\" -> \"$2\" [label=\"$3\"]" graph.dot || fail "no edge ${1:0:8} -> ${2:0:8} labelled $3"; }
node "$N" instance
node "$C" cnode
node "$T" type
node "$D" data
node "$I" image
edge "$N" "$C" root_cnode
edge "$C" "$T" 0
edge "$C" "$D" 3
edge "$C" "$H7" 5
grep -Fq "\"$H7\" [label=\"77777777\", shape=ellipse, style=dashed" graph.dot || fail "no placeholder for slot 5's target"
[ "$(grep -c -- '->' graph.dot)" = "$((4 + $(grep -c -- "^  \"$I\" ->" graph.dot)))" ] || fail "unexpected edges"
grep -q "\"$I\" -> .*label=\"pinned " graph.dot || fail "no pinned edge from the image"
grep -q "\"$I\" -> .*label=\"initial " graph.dot || fail "no initial edge from the image"
[ "$(grep -c "\[label=\"instance" graph.dot)" = 1 ] || fail "one node per cap"
# An Instance names its image too (cap_for_each_child: image_hash when not
# zero, then root_cnode); its image_hash_chain names no cap.
printf '{"kind":"instance","image_hash_chain":"%s","image_hash":"%s","root_cnode":"%s"}' "$H7" "$I" "$C" >inst2.json
run 0 "$CAPSTORE" encode -o inst2.bin inst2.json
run 0 "$CAPSTORE" hash inst2.bin
N2=$(cat out)
run 0 "$CAPSTORE" dot inst2.bin cnode.bin image.bin
cp out graph2.dot
grep -Fq "\"$N2\" -> \"$I\" [label=\"image\"]" graph2.dot || fail "no image edge from the instance"
grep -Fq "\"$N2\" -> \"$C\" [label=\"root_cnode\"]" graph2.dot || fail "no root_cnode edge from the instance"
[ "$(grep -c -- "^  \"$N2\" ->" graph2.dot)" = 2 ] || fail "the instance should have exactly 2 edges"
grep -n -- "^  \"$N2\" ->" graph2.dot | head -1 | grep -q 'label="image"' || fail "image comes before root_cnode"
# a target named twice gets one placeholder; a file given twice one node
run 0 "$CAPSTORE" dot cnode.bin cnode.bin
[ "$(grep -c 'label="cnode' out)" = 1 ] || fail "a cap given twice should be one node"
[ "$(grep -c 'style=dashed' out)" = 3 ] || fail "cnode alone: 3 placeholders expected"
# standard input
run 0 "$CAPSTORE" dot - <cnode.bin
grep -q "label=\"cnode" out || fail "dot of stdin"
# Graphviz accepts it (when installed; it is never needed to build)
if command -v dot >/dev/null 2>&1; then
    dot -Tsvg graph.dot >graph.svg 2>dot.err || fail "Graphviz rejects the output: $(cat dot.err)"
fi
run 0 "$CAPSTORE" dot --help
grep_out "usage: capstore dot FILE"

# --- usage errors (exit 2)
run 2 "$CAPSTORE" dot
grep_err "missing FILE"
run 2 "$CAPSTORE" dot - -
grep_err "standard input"
run 2 "$CAPSTORE" dot -T png cnode.bin
grep_err "unknown option"

# --- bad input (exit 1)
vec neg_cnode_size_log_17 bad.bin
run 1 "$CAPSTORE" dot cnode.bin bad.bin
grep_err "bad.bin: malformed wire bytes: .* at byte [0-9]"
[ -s out ] && fail "dot printed a graph despite bad input"
run 1 "$CAPSTORE" dot no-such-file.bin
finish
