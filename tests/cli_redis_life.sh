#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The db actions of a database's life on a Redis tier (--db redis://...),
# against a lone redis-server and then a 6-node cluster this test starts
# (support/redis-cluster.sh): ls (the same lines as an LMDB ls of the same
# blobs), roots, root set / rm (a graph not whole refused), names by prefix
# (unique, odd length, ambiguous), export / import both ways (a pipe into
# an LMDB import; LMDB -> Redis -> LMDB gives the same ls), gc (--dry-run
# deletes nothing; rooted graphs kept and db check passes; an incomplete
# graph to keep deletes nothing), compact refused. Skips (77) where
# redis-server is not installed, unless CAPSTORE_REQUIRE_ALL=1.
HERE=$(cd "$(dirname "$0")" && pwd)
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    if [ "${CAPSTORE_REQUIRE_ALL:-}" = 1 ]; then
        echo "FAIL: redis-server is not installed and CAPSTORE_REQUIRE_ALL=1" >&2
        exit 1
    fi
    echo "SKIPPED: redis-server or redis-cli is not installed"
    exit 77
fi
. "$HERE/support/cli_common.sh"
C=$CAPSTORE
SERVERS=$WORK/servers
trap 'bash "$HERE/support/redis-cluster.sh" stop "$SERVERS" >/dev/null 2>&1' EXIT
ROOT=12930516199183c8a05880e62676adac4694dae60923947bafb1283fab578016

# The LMDB side: the demo's graph (root "demo", 10 caps) as an archive,
# every valid conformance vector as a blob (one per hash: a Data cap with
# a page loaded and with that page missing share one), and two cnodes
# whose hashes share their first 4 hex digits (found once by trying
# targets 1, 2, ...).
run 0 "$C" demo
run 0 "$C" db export demo -o demo.arc
awk '$1 !~ /^(#|neg_)/ && $3 != "-" && !seen[$2]++ { print $1 }' "$VECTORS" | while read -r name; do vec "$name" "v_$name.bin"; done
cnode() { printf '{"kind":"cnode","size_log":2,"slots":[{"slot":1,"target":"%s"}]}' "$1" | "$C" encode -o "$2" -; }
cnode "$(printf '%064x' 349)" twin1.bin
cnode "$(printf '%064x' 458)" twin2.bin
T1=$("$C" hash twin1.bin) T2=$("$C" hash twin2.bin)
[ "${T1:0:4}" = "${T2:0:4}" ] || fail "the twins do not share a prefix: $T1 $T2"
# A cnode naming a blob stored nowhere: its graph is never whole.
cnode 7777777777777777777777777777777777777777777777777777777777777777 dangling.bin
CN=$("$C" hash dangling.bin)
VTYPE=$(vec_hash type_11_chain) KEEP=$(vec_hash type_zero_chain)
run 0 "$C" db --db ref.lmdb import demo.arc
run 0 "$C" db --db demo.lmdb import demo.arc
run 0 "$C" db --db ref.lmdb put v_*.bin twin1.bin twin2.bin

# life URI: every check against the tier at URI (empty at the start).
life() {
    local U=$1 n

    run 0 "$C" db --db "$U" ls
    [ -s out ] && fail "$U: ls of an empty tier: $(cat out)"
    run 0 "$C" db ls --json --db "$U"
    [ "$(cat out)" = "[]" ] || fail "$U: ls --json of an empty tier: $(cat out)"
    run 0 "$C" db --db "$U" roots
    [ -s out ] && fail "$U: roots of an empty tier: $(cat out)"

    # --- into the tier: an LMDB export through a pipe, then put
    "$C" db export demo -o - 2>err.export | "$C" db --db "$U" import - >out 2>err ||
        fail "$U: export | import: $(cat err.export err)"
    grep_out "imported 10 caps (10 new, 0 repaired) and set 1 roots"
    run 0 "$C" db --db "$U" put v_*.bin twin1.bin twin2.bin

    # --- ls: the same lines as LMDB's of the same blobs, sorted by hash
    run 0 "$C" db --db "$U" ls
    "$C" db --db ref.lmdb ls >ref.txt
    diff ref.txt out >/dev/null || fail "$U: ls differs from the LMDB ls: $(diff ref.txt out | head -5)"
    n=$(wc -l <ref.txt)
    run 0 "$C" db --db "$U" ls --kind cnode
    diff <("$C" db --db ref.lmdb ls --kind cnode) out >/dev/null || fail "$U: ls --kind cnode differs"
    run 0 "$C" db --db "$U" ls --json
    diff <("$C" db --db ref.lmdb ls --json) out >/dev/null || fail "$U: ls --json differs"

    # --- names: a root, a unique prefix (even and odd length), an ambiguous one
    run 0 "$C" db --db "$U" roots
    [ "$(cat out)" = "demo $ROOT" ] || fail "$U: roots: $(cat out)"
    run 0 "$C" db --db "$U" get demo
    cmp -s out <("$C" db --db ref.lmdb get "$ROOT") || fail "$U: get demo gave other bytes"
    run 0 "$C" db --db "$U" get "${ROOT:0:6}"
    cmp -s out <("$C" db --db ref.lmdb get "$ROOT") || fail "$U: get PREFIX gave other bytes"
    if [ "${T1:4:1}" != "${T2:4:1}" ]; then
        run 0 "$C" db --db "$U" get "${T1:0:5}"
        cmp -s out twin1.bin || fail "$U: get of a 5-digit prefix gave other bytes"
    fi
    run 1 "$C" db --db "$U" get "${T1:0:4}"
    grep_err "ambiguous"
    for h in $(grep "^${T1:0:4}" ref.txt | cut -d' ' -f1); do grep_err "$h"; done
    run 1 "$C" db --db "$U" get "$(printf '%s' "$ROOT" | cut -c1-3)0f0f0f0f"
    grep_err "no blob has a hash beginning with"
    run 1 "$C" db --db "$U" get nosuchroot
    grep_err "no root named nosuchroot"

    # --- root set / rm
    run 0 "$C" db --db "$U" root set Alias demo
    run 0 "$C" db --db "$U" root set v/type "${VTYPE:0:8}"
    run 0 "$C" db --db "$U" roots
    [ "$(cut -d' ' -f1 out | tr '\n' ' ')" = "Alias demo v/type " ] || fail "$U: roots order: $(cat out)"
    grep -q "^Alias $ROOT$" out || fail "$U: Alias does not name the demo root"
    run 0 "$C" db --db "$U" put dangling.bin
    run 1 "$C" db --db "$U" root set broken "$CN"
    grep_err 7777777777777777777777777777777777777777777777777777777777777777
    run 0 "$C" db --db "$U" roots
    grep -q "^broken " out && fail "$U: a root of an incomplete graph was set"
    run 0 "$C" db --db "$U" root rm Alias
    run 1 "$C" db --db "$U" root rm Alias
    grep_err "no root named Alias"

    # --- archives: LMDB -> Redis -> LMDB gives the same ls; import's checks
    rm -f back.lmdb back.lmdb-lock
    "$C" db --db "$U" export demo -o - 2>err.export | "$C" db --db back.lmdb import - >out 2>err ||
        fail "$U: export from the tier | import: $(cat err.export err)"
    diff <("$C" db --db demo.lmdb ls) <("$C" db --db back.lmdb ls) >/dev/null ||
        fail "$U: LMDB -> Redis -> LMDB changed the ls"
    run 0 "$C" db --db back.lmdb roots
    [ "$(cat out)" = "demo $ROOT" ] || fail "$U: the root did not come back: $(cat out)"
    run 0 "$C" db --db "$U" export --all -o all.arc
    grep_out "exported 11 caps"
    run 0 "$C" db --db "$U" import --dry-run demo.arc
    grep_out "a whole archive of 10 caps"
    run 0 "$C" db --db "$U" root set demo "$VTYPE"
    run 1 "$C" db --db "$U" import demo.arc
    grep_err "a root exists with another hash"
    run 0 "$C" db --db "$U" import --force demo.arc
    run 0 "$C" db --db "$U" roots
    grep_out "^demo $ROOT$"

    # --- gc: a dry run deletes nothing; then only the rooted graphs stay
    run 1 "$C" db --db "$U" gc "$CN"
    grep_err 7777777777777777777777777777777777777777777777777777777777777777
    [ "$("$C" db --db "$U" ls | wc -l)" = $((n + 1)) ] || fail "$U: gc of an incomplete graph deleted something"
    run 0 "$C" db --db "$U" gc --dry-run
    head -n -1 out >would.txt
    grep -q "^would delete $(wc -l <would.txt) blobs" <(tail -n 1 out) || fail "$U: gc --dry-run summary: $(tail -n 1 out)"
    grep -q "would keep 11 blobs .* reachable from 2 roots" <(tail -n 1 out) || fail "$U: gc --dry-run kept: $(tail -n 1 out)"
    sort -c would.txt || fail "$U: gc --dry-run did not list by hash"
    grep -q "^$CN cnode " would.txt || fail "$U: the dangling cnode not listed as garbage"
    grep -q "^$ROOT " would.txt && fail "$U: the demo root listed as garbage"
    [ "$("$C" db --db "$U" ls | wc -l)" = $((n + 1)) ] || fail "$U: gc --dry-run deleted something"
    run 0 "$C" db --db "$U" gc "${KEEP:0:10}"
    grep_out "^deleted $(($(wc -l <would.txt) - 1)) blobs .* in [1-9][0-9]* batches; kept 12 blobs"
    run 0 "$C" db --db "$U" ls
    grep -q "^$KEEP " out || fail "$U: a hash given to gc was collected"
    grep -q "^$T2 " out && fail "$U: an unrooted blob survived gc"
    grep -q "^$ROOT " out || fail "$U: the demo root was collected"
    grep -q "^$VTYPE " out || fail "$U: the v/type root was collected"
    [ "$(wc -l <out)" = 12 ] || fail "$U: after gc: $(wc -l <out) blobs (demo's 10, two types)"
    run 0 "$C" db --db "$U" gc --batch 1
    grep_out "^deleted 1 blobs"
    run 0 "$C" db --db "$U" check
    grep_out "^11 blobs checked, 0 bad$"
    run 0 "$C" db --db "$U" stats
    grep_out "^blobs: *11$"
    run 1 "$C" db --db "$U" gc nosuchroot

    # --- compact is LMDB's alone
    run 1 "$C" db --db "$U" compact
    grep_err "compact works on an LMDB file; a Redis tier has nothing to compact"
}

bash "$HERE/support/redis-cluster.sh" single "$SERVERS" $$ || { echo "could not start redis-server" >&2; exit 1; }
PORT=$(head -n 1 "$SERVERS/ports")
life "redis://127.0.0.1:$PORT/?prefix=life:"
bash "$HERE/support/redis-cluster.sh" stop "$SERVERS" >/dev/null 2>&1
rm -rf "$SERVERS"

bash "$HERE/support/redis-cluster.sh" start "$SERVERS" $$ || { echo "could not start the cluster" >&2; exit 1; }
SEEDS=$(head -n 2 "$SERVERS/ports" | sed 's/^/127.0.0.1:/' | paste -sd, -)
life "redis://$SEEDS/?prefix=life:"
finish
