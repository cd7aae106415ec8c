#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# capstore db ls | roots | root | gc | compact | export | import, inspect
# --db and dot --db, from the outside: bash cli_db_life.sh <capstore>
# <test-data-dir> <work-dir>. The database is the demo's (its root is
# recorded as "demo": a graph of 10 caps) plus every valid conformance
# vector put beside it.
set -u
. "$(dirname "$0")/support/cli_common.sh"
unset CAPSTORE_DB
C=$CAPSTORE
ROOT=12930516199183c8a05880e62676adac4694dae60923947bafb1283fab578016

run 0 "$C" demo
run 0 "$C" db roots
[ "$(cat out)" = "demo $ROOT" ] || fail "db roots: $(cat out)"
grep -q "root $ROOT, recorded as the root demo" <("$C" demo) || fail "demo does not print the root's full hash"
# every vector as a blob (files named by hash)
awk '$1 !~ /^(#|neg_)/ && $3 != "-" { print $1 }' "$VECTORS" | sort -u | while read -r name; do vec "$name" "v_$name.bin"; done
run 0 "$C" db put v_*.bin
[ -s err ] && fail "db put wrote to stderr (no terminal): $(cat err)"

# --- ls: <64 hex> <kind> <bytes>, sorted by hash; --kind; --json
run 0 "$C" db ls
cp out ls.txt
n=$(wc -l <ls.txt)
[ "$n" -gt 200 ] || fail "db ls listed $n blobs"
awk 'NF != 3 || length($1) != 64 || $1 !~ /^[0-9a-f]+$/ || $3 !~ /^[0-9]+$/ { bad = 1 } END { exit bad }' ls.txt ||
    fail "db ls: a line not '<64 hex> <kind> <bytes>'"
sort -c ls.txt || fail "db ls is not sorted by hash"
[ -s err ] && fail "db ls wrote to stderr (no terminal): $(cat err)"
grep -q "^$ROOT cnode 114$" ls.txt || fail "db ls: no line for the demo root"
run 0 "$C" db ls --kind instance
[ "$(awk '$2 != "instance"' out | wc -l)" = 0 ] || fail "db ls --kind instance listed other kinds"
[ "$(wc -l <out)" = "$(awk '$2 == "instance"' ls.txt | wc -l)" ] || fail "db ls --kind instance missed some"
run 2 "$C" db ls --kind gadget
grep_err "unknown kind 'gadget'"
run 0 "$C" db ls --json
if command -v python3 >/dev/null; then
    python3 -c 'import json,sys; d=json.load(open("out")); assert len(d) == int(sys.argv[1]) and all(set(x) == {"hash","kind","bytes"} for x in d)' "$n" ||
        fail "db ls --json is not an array of $n objects"
fi
run 0 "$C" db --db empty.lmdb put v_type_11_chain.bin
run 0 "$C" db --db empty.lmdb gc
run 0 "$C" db --db empty.lmdb ls --json
[ "$(cat out)" = "[]" ] || fail "db ls --json of an empty database: $(cat out)"
run 1 "$C" db --db nowhere.lmdb ls
grep_err "no database at nowhere.lmdb"
[ -e nowhere.lmdb ] && fail "db ls created a database"

# --- names: a hash, a unique prefix, a root name; bad arguments
run 0 "$C" db get demo
cmp -s out <("$C" db get "$ROOT") || fail "db get demo differs from db get ROOT"
run 0 "$C" db get "${ROOT:0:6}"
cmp -s out <("$C" db get "$ROOT") || fail "db get PREFIX differs"
run 2 "$C" db get abc
grep_err "is not a HASH"
run 1 "$C" db get nosuchroot
grep_err "no root named nosuchroot"
# an ambiguous prefix, when the vectors happen to share one (test_db_resolve always checks it)
pre=$(cut -c1-4 ls.txt | uniq -d | head -n 1)
if [ -n "$pre" ]; then
    run 1 "$C" db get "$pre"
    grep_err "ambiguous"
    for h in $(grep "^$pre" ls.txt | cut -d' ' -f1); do grep_err "$h"; done
fi

# --- root set / rm
run 0 "$C" db root set proc/one 5a91
run 0 "$C" db root set Alias demo
run 0 "$C" db roots
[ "$(cut -d' ' -f1 out | tr '\n' ' ')" = "Alias demo proc/one " ] || fail "db roots order: $(cat out)"
grep -q "^Alias $ROOT$" out || fail "Alias does not name the demo root"
VTYPE=$(vec_hash type_11_chain)
CN=$(printf '{"kind":"cnode","size_log":2,"slots":[{"slot":1,"target":"%s"}]}' \
    7777777777777777777777777777777777777777777777777777777777777777 | "$C" encode -o dangling.bin - && "$C" hash dangling.bin)
run 0 "$C" db put dangling.bin
run 1 "$C" db root set broken "$CN"
grep_err "7777777777777777777777777777777777777777777777777777777777777777"
run 2 "$C" db root set dead "$ROOT"
grep_err "is not a root name"
run 2 "$C" db root set ok
run 0 "$C" db root rm Alias
run 1 "$C" db root rm Alias
grep_err "no root named Alias"
run 2 "$C" db root frobnicate x

# --- gc: dry run lists what would go, then the real thing
run 0 "$C" db gc --dry-run
head -n -1 out > would.txt
grep -q "^would delete" <(tail -n 1 out) || fail "db gc --dry-run: no summary"
[ "$(wc -l <would.txt)" -gt 200 ] || fail "db gc --dry-run listed $(wc -l <would.txt) blobs"
grep -q "^$VTYPE type 33$" would.txt || fail "the type vector is not listed as garbage"
grep -q "^$ROOT " would.txt && fail "the demo root listed as garbage"
[ "$("$C" db ls | wc -l)" = "$(($(wc -l <ls.txt) + 1))" ] || fail "db gc --dry-run deleted something"
run 0 "$C" db gc "$VTYPE"
grep_out "^deleted $(($(wc -l <would.txt) - 1)) blobs"
grep_out "kept 11 blobs"
[ -s err ] && fail "db gc wrote to stderr (no terminal): $(cat err)"
run 0 "$C" db ls
grep -q "^$VTYPE " out || fail "a hash given to gc was collected"
grep -q "^$ROOT " out || fail "the demo root was collected"
[ "$(wc -l <out)" = 11 ] || fail "after gc: $(wc -l <out) blobs (the demo root's 10 and the type)"
run 0 "$C" db gc
run 0 "$C" db stats
grep_out "^blobs: *10$"
grep_out "^free_bytes: *[1-9]"
grep_out "^roots: *2$"
run 0 "$C" db stats --json
grep_out '"free_bytes": [1-9]'
run 0 "$C" db compact
grep_out "compacted ./capstore.lmdb"
run 0 "$C" db stats
grep_out "^free_bytes: *0 "
run 0 "$C" db check
run 1 "$C" db gc nosuchroot
run 1 "$C" db --db nowhere.lmdb compact

# --- archives: a graph through a pipe between two databases
"$C" db export demo -o - 2>err.export | "$C" db --db other.lmdb import - >out 2>err || fail "export | import: $(cat err.export err)"
[ -s err.export ] && fail "export wrote to stderr: $(cat err.export)"
grep_out "imported 10 caps (10 new, 0 repaired) and set 1 roots"
diff <("$C" db ls) <("$C" db --db other.lmdb ls) >/dev/null || fail "db ls differs after export | import"
run 0 "$C" db --db other.lmdb roots
[ "$(cat out)" = "demo $ROOT" ] || fail "the root did not travel"
run 0 "$C" db export demo proc/one -o a.arc
grep_out "exported 10 caps"
run 0 "$C" db export --all -o all.arc
run 2 "$C" db export demo
grep_err "missing -o"
run 2 "$C" db export -o x.arc
run 1 "$C" db export nosuchroot -o x.arc
[ -e x.arc ] && fail "a failed export left its file"
# an archive is whole or refused: a flipped byte, a truncation
size=$(wc -c <a.arc)
cp a.arc flip.arc
printf '\x55' | dd of=flip.arc bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
run 1 "$C" db --db third.lmdb import flip.arc
grep_err "record [0-9]"
grep_err "nothing imported"
[ -e third.lmdb ] && fail "a failed import left a database"
head -c $((size - 40)) a.arc >cut.arc
run 1 "$C" db --db third.lmdb import cut.arc
run 0 "$C" db --db third.lmdb import --dry-run a.arc
grep_out "a whole archive of 10 caps"
[ -e third.lmdb ] && fail "a dry run created a database"
run 0 "$C" db --db other.lmdb root set demo 5a91
run 1 "$C" db --db other.lmdb import a.arc
grep_err "a root exists with another hash"
run 0 "$C" db --db other.lmdb import --force a.arc
run 0 "$C" db --db other.lmdb roots
grep_out "^demo $ROOT$"
# a closed pipe ends the export quietly
"$C" db export --all -o - 2>err.pipe | head -c 1 >/dev/null
[ -s err.pipe ] && fail "export to a closed pipe complained: $(cat err.pipe)"

# --- inspect --db and dot --db
run 0 "$C" inspect --db capstore.lmdb demo
grep_out "^hash: *$ROOT"
grep_out "^kind: *cnode"
run 1 "$C" inspect --db capstore.lmdb nosuchroot
run 0 "$C" dot --db capstore.lmdb demo
cmp -s out capstore-demo.dot || fail "dot --db of the demo root differs from the demo's drawing"
run 2 "$C" dot --db capstore.lmdb
finish
