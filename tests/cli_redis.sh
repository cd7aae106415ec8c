#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# capstore db on a Redis tier (--db redis://... or CAPSTORE_DB=redis://...),
# against a lone redis-server this test starts (support/redis-cluster.sh):
# put / get / stats / check round trip, the URI taken before or after the
# action and from the environment, a password in the URI refused without
# being echoed, and a stopped server named in the error. Skips (77) where
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
SERVERS=$WORK/servers
trap 'bash "$HERE/support/redis-cluster.sh" stop "$SERVERS" >/dev/null 2>&1' EXIT
bash "$HERE/support/redis-cluster.sh" single "$SERVERS" $$ || { echo "could not start redis-server" >&2; exit 1; }
PORT=$(head -n 1 "$SERVERS/ports")
URI="redis://127.0.0.1:$PORT/?prefix=cli:"

vec cnode_sl0_slot0 a.bin
vec type_zero_chain b.bin
vec instance_minimal c.bin
A=$(vec_hash cnode_sl0_slot0) B=$(vec_hash type_zero_chain) C=$(vec_hash instance_minimal)

# put: prints the hashes in order; stored under the prefix.
run 0 "$CAPSTORE" db --db "$URI" put a.bin b.bin c.bin
[ "$(cat out)" = "$(printf '%s\n%s\n%s' "$A" "$B" "$C")" ] || fail "put printed $(cat out)"
[ "$(redis-cli -p "$PORT" dbsize)" = 3 ] || fail "put did not store 3 keys"

# get: the same bytes, the URI after the action this time.
run 0 "$CAPSTORE" db get "$A" --db "$URI"
cmp -s out a.bin || fail "get $A gave other bytes"
run 1 "$CAPSTORE" db get "$(printf '%064d' 7)" --db "$URI"
grep_err "no blob"

# stats, from CAPSTORE_DB.
CAPSTORE_DB=$URI run 0 "$CAPSTORE" db stats
grep_out "^blobs: *3$"
grep_out "^masters: *1$"
grep_out "^wait_replicas: *0$"
run 0 "$CAPSTORE" db stats --json --db "$URI"
grep_out '"blobs": 3'

# check: every blob re-hashed.
run 0 "$CAPSTORE" db check --db "$URI"
grep_out "^3 blobs checked, 0 bad$"
# A value that is no cap under a blob's name (written here through a hash
# tag-free key of the right length: the prefix and 32 bytes of 'x').
KEY="cli:$(printf 'x%.0s' $(seq 1 32))"
redis-cli -p "$PORT" set "$KEY" "not a cap" >/dev/null
run 1 "$CAPSTORE" db check --db "$URI"
grep_out "^bad 7878787878787878787878787878787878787878787878787878787878787878:"
grep_out "^4 blobs checked, 1 bad$"
redis-cli -p "$PORT" del "$KEY" >/dev/null

# The demo on the tier, with its second host (another process).
run 0 "$CAPSTORE" demo --db "redis://127.0.0.1:$PORT/?prefix=demo:" --dot demo.dot
grep_out "backed by the Redis tier"
grep_out "^10. host 2 .*one cap_store_prefetch of root 12930516"
grep_out "10 caps in memory, verified"
grep_out "^11. host 1 .*fetched host 2's root"
# Run again: everything is already there.
run 0 "$CAPSTORE" demo --db "redis://127.0.0.1:$PORT/?prefix=demo:" --dot demo.dot
grep_out "(0 new)"

# A password in the URI: refused, never echoed.
run 1 "$CAPSTORE" db stats --db "redis://u:Sekr1t-pw@127.0.0.1:$PORT"
grep_err "CAPSTORE_REDIS_PASSWORD"
grep -q "Sekr1t" err out && fail "the password was echoed"

# The server gone: the node named; back: works again.
bash "$HERE/support/redis-cluster.sh" kill "$SERVERS" "$PORT" TERM
run 1 "$CAPSTORE" db stats --db "$URI"
grep_err "127.0.0.1:$PORT"
bash "$HERE/support/redis-cluster.sh" revive "$SERVERS" "$PORT"
run 0 "$CAPSTORE" db get "$C" --db "$URI"
cmp -s out c.bin || fail "get $C after the restart gave other bytes"
finish
