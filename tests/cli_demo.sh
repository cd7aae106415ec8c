#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# capstore demo: bash cli_demo.sh <capstore> <test-data-dir> <work-dir>
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$(dirname "$0")/support/cli_common.sh"
# The demo builds the same caps on every run and machine; README.md shows this root.
ROOT_SHORT=12930516

# --- first run: creates ./capstore.lmdb and ./capstore-demo.dot in the current folder
run 0 "$CAPSTORE" demo
cp out run1.txt
[ -s capstore.lmdb ] || fail "no ./capstore.lmdb after the demo"
[ -s capstore-demo.dot ] || fail "no ./capstore-demo.dot after the demo"
grep_out "LMDB file ./capstore.lmdb (new file)"
for step in "1. publish" "2. spawn" "3. cow" "4. graph" "5. settle" "6. sweep" "7. flush" "8. reopen" "9. dot"; do
    grep -q "^ *$step " out || fail "no step '$step' in the output"
done
grep_out "store: 5 blobs, 0 instances"
grep_out "both share the blob's cap (no copy)"
grep_out "copied: the blob shares it"
grep_out "unchanged: 3 slots"
grep_out "store: 5 blobs, 9 instances"
grep_out "root #6 -> $ROOT_SHORT"
grep_out "checkpoint root #6 -> $ROOT_SHORT"
grep_out "blobs 5 -> 11, instances 9 -> 5"
# The processes' snapshots are blobs too (cap_store_checkpoint): the graph is closed.
grep_out "their snapshots published as blobs 5a918257, e0e59869 in the same step"
grep_out "the sweep removed 5 entries"
grep_out "instances 5 -> 0"
grep_out "11 blobs written to ./capstore.lmdb in one transaction; it holds 11 blobs (11 new)"
grep_out "(0 blobs in memory): cap_store_exists(root $ROOT_SHORT) yes"
grep_out "re-hashes to $ROOT_SHORT; walking its graph fetched 10 caps"
grep_out "wrote ./capstore-demo.dot (10 caps, 18 edges)"
# The DOT file: a graph of 10 caps from the settled root, no placeholder.
grep -q '^digraph ' capstore-demo.dot || fail "the DOT file is not a digraph"
tail -n 1 capstore-demo.dot | grep -q '^}$' || fail "the DOT file is not closed"
[ "$(grep -c '\[label="[a-z]*\\n' capstore-demo.dot)" = 10 ] || fail "the DOT file should have 10 cap nodes"
[ "$(grep -c -- '->' capstore-demo.dot)" = 18 ] || fail "the DOT file should have 18 edges"
grep -q "label=\"cnode\\\\n$ROOT_SHORT\"" capstore-demo.dot || fail "the root is not in the DOT file"
grep -q 'style=dashed' capstore-demo.dot && fail "the walk left a target unfetched"
cp capstore-demo.dot run1.dot
# The README's diagram is this graph (docs/model.sh regenerates it).
cmp -s capstore-demo.dot "$HERE/../docs/model.dot" ||
    fail "docs/model.dot differs from the demo's graph: run docs/model.sh"
if command -v dot >/dev/null 2>&1; then
    grep_out "and ./capstore-demo.png (Graphviz dot)"
    [ "$(head -c 4 capstore-demo.png | od -An -c | tr -d ' ')" = "211PNG" ] || fail "capstore-demo.png is not a PNG"
fi
# What was flushed is in the file and hashes right.
run 0 "$CAPSTORE" db check --db capstore.lmdb
run 0 "$CAPSTORE" db stats --db capstore.lmdb
grep_out "11"

# --- second run in a row: the file already has the blobs
run 0 "$CAPSTORE" demo
grep_out "(it holds blobs from earlier runs)"
grep_out "the file holds 11 blobs before this run"
grep_out "it holds 11 blobs (0 new)"
grep_out "root #6 -> $ROOT_SHORT"
grep_out "re-hashes to $ROOT_SHORT"
cmp -s run1.dot capstore-demo.dot || fail "the second run drew another graph"
diff <(sed -n '/^ 1\./,$p' run1.txt | grep -v '7. flush') <(sed -n '/^ 1\./,$p' out | grep -v '7. flush') >/dev/null ||
    fail "the second run printed other steps"

# --- options
mkdir mem
(cd mem && "$CAPSTORE" demo --memory --dot g.dot >../out 2>../err) || fail "demo --memory failed: $(cat err)"
[ -e mem/capstore.lmdb ] && fail "--memory created a database file"
[ -s mem/g.dot ] || fail "--dot g.dot wrote nothing"
grep_out "in-memory backend"
grep_out "re-hashes to $ROOT_SHORT"
run 0 "$CAPSTORE" demo --db other.lmdb --dot other.dot --png other.png
[ -s other.lmdb ] || fail "--db other.lmdb created no file"
grep_out "11 blobs written to other.lmdb"
grep_out "wrote other.dot"
if command -v dot >/dev/null 2>&1; then
    [ -s other.png ] || fail "--png other.png wrote nothing"
fi
# Without Graphviz: no PNG, still a success; a PNG asked for is a failure.
run 0 env PATH=/nonexistent "$CAPSTORE" demo --memory --dot nodot.dot
grep_out "no PNG: Graphviz's dot is not installed"
[ -s nodot.dot ] || fail "no DOT file without Graphviz"
run 1 env PATH=/nonexistent "$CAPSTORE" demo --memory --dot nodot.dot --png nodot.png
grep_err "nodot.png: Graphviz's dot program is not installed"

run 0 "$CAPSTORE" demo --help
grep_out "usage: capstore demo"
grep_out "Exit status"

# --- usage errors (exit 2)
run 2 "$CAPSTORE" demo extra
grep_err "unexpected argument 'extra'"
# The database by the one rule: --db (anywhere among the options), else
# CAPSTORE_DB, else ./capstore.lmdb; --memory uses none.
mkdir -p envdb && cd envdb
run 0 env CAPSTORE_DB=env.lmdb "$CAPSTORE" demo --memory --dot d.dot
[ -e env.lmdb ] && fail "--memory opened CAPSTORE_DB"
run 0 env CAPSTORE_DB=env.lmdb "$CAPSTORE" demo --dot d.dot
[ -s env.lmdb ] || fail "demo did not use CAPSTORE_DB"
grep_out "LMDB file env.lmdb (new file)"
[ -e capstore.lmdb ] && fail "demo used ./capstore.lmdb although CAPSTORE_DB was set"
run 0 env CAPSTORE_DB=env.lmdb "$CAPSTORE" demo --dot d.dot --db opt.lmdb
grep_out "LMDB file opt.lmdb (new file)"
run 0 env CAPSTORE_DB= "$CAPSTORE" demo --dot d.dot
grep_out "LMDB file ./capstore.lmdb (new file)"
cd ..
run 2 "$CAPSTORE" demo --db x.lmdb --memory
grep_err "exclude each other"
run 2 "$CAPSTORE" demo --dot
grep_err "needs a value"
run 2 "$CAPSTORE" demo --dot -
grep_err "wants a file name"
run 2 "$CAPSTORE" demo --frobnicate
grep_err "unknown option"

# --- bad input (exit 1): a database file that is not one
echo "not a database" >bad.lmdb
run 1 "$CAPSTORE" demo --db bad.lmdb
grep_err "bad.lmdb: .*not an LMDB file"
run 1 "$CAPSTORE" demo --db no-such-dir/x.lmdb
grep_err "no-such-dir/x.lmdb"
finish
