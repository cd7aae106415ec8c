#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# capstore bench: bash cli_bench.sh <capstore> <test-data-dir> <work-dir>
# The result lines are a contract ("<name> <ops> <ns_per_op> <engine>", one
# per workload); the figures themselves are never checked here.
set -u
. "$(dirname "$0")/support/cli_common.sh"
unset CAPSTORE_DB # the persistence workloads' scratch stores go beside ./capstore.lmdb: in $WORK
LINE='^[a-z_]+ [0-9]+ [0-9]+\.[0-9] [a-z-]+$'

# Every workload at a small N: one well-formed line each, ops = N where the
# spec says so, and nothing left behind in TMPDIR.
run 0 "$CAPSTORE" bench --n 64
names=$(awk '{print $1}' out | sort -u | wc -l)
[ "$names" -ge 11 ] || fail "expected a line per workload, got $names names"
grep -Evq "$LINE" out && fail "malformed result line: $(grep -Ev "$LINE" out | head -1)"
for w in node_hash cnode_hash publish lookup_hit lookup_miss promote_cow sweep_chain sweep_few \
    data_hash; do
    grep -Eq "^$w 64 [0-9.]+ capstore$" out || fail "no '$w 64 ... capstore' line"
done
grep -Eq '^lookup_mt 128 [0-9.]+ capstore$' out || fail "lookup_mt counts 2N lookups"
grep -Eq '^settle_tree 21 [0-9.]+ capstore$' out || fail "settle_tree of N=64 settles 21 nodes"
[ -z "$(ls -A "$WORK" | grep -v '^out$\|^err$')" ] || fail "bench left files: $(ls "$WORK")"

# --only picks, in the suite's order; --reps gives one (median) line each.
run 0 "$CAPSTORE" bench --n 32 --only publish,node_hash --reps 3
[ "$(awk '{print $1}' out | tr '\n' ' ')" = "node_hash publish " ] || fail "--only/--reps lines: $(cat out)"
run 0 "$CAPSTORE" bench --n 32 --only node_hash --json
grep_out '"name":"node_hash","ops":32,"ns_per_op":'

# Usage errors.
run 2 "$CAPSTORE" bench --n 0
grep_err "--n wants a positive integer"
run 2 "$CAPSTORE" bench --reps 0
grep_err "--reps wants an integer"
run 2 "$CAPSTORE" bench --reps 100
grep_err "--reps wants an integer"
run 2 "$CAPSTORE" bench --only nope
grep_err "unknown workload 'nope'"
run 2 "$CAPSTORE" bench --frob
grep_err "unknown option '--frob'"
# Values are checked: a negative, a missing or a non-numeric N is a usage
# error, and an unknown workload lists the valid ones.
run 2 "$CAPSTORE" bench --n -5
grep_err "--n wants a positive integer"
run 2 "$CAPSTORE" bench --n
grep_err "option --n needs a value"
run 2 "$CAPSTORE" bench --n 12abc
grep_err "--n wants a positive integer"
run 2 "$CAPSTORE" bench --reps x
grep_err "--reps wants an integer"
run 2 "$CAPSTORE" bench --only publish,nosuch
grep_err "unknown workload 'nosuch'; the workloads are: node_hash .* persist_get_essential"
run 2 "$CAPSTORE" bench --only ''
grep_err "--only wants workload names"
run 2 "$CAPSTORE" bench stray
grep_err "unexpected argument 'stray'"

# The scratch databases of the persistence workloads go beside the database
# the one rule names (--db, then CAPSTORE_DB), which is never opened; both
# are removed after.
# (a folder that does not exist shows where they went)
mkdir -p dbdir
run 0 "$CAPSTORE" bench --n 8 --only persist_put --db dbdir/my.lmdb
grep -Eq '^persist_put 8 ' out || fail "bench --db: $(cat out)"
[ -z "$(ls -A dbdir)" ] || fail "bench --db left files in dbdir: $(ls -A dbdir)"
run 1 "$CAPSTORE" bench --n 8 --only persist_put --db nodir/my.lmdb
grep_err "scratch folder in nodir"
run 1 env CAPSTORE_DB=nodir/my.lmdb "$CAPSTORE" bench --n 8 --only persist_put
grep_err "scratch folder in nodir"
run 0 env CAPSTORE_DB=nodir/my.lmdb "$CAPSTORE" bench --n 8 --only persist_put --db dbdir/my.lmdb
run 0 "$CAPSTORE" bench --help
grep_out "usage: capstore bench"
finish
