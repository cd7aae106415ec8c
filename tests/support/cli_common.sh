# SPDX-License-Identifier: MIT OR Apache-2.0
# Sourced by tests/cli_*.sh, which are run as: bash cli_X.sh <capstore> <test-data-dir> <work-dir>.
# Sets CAPSTORE, VECTORS, WORK, enters a fresh WORK and defines the helpers.
CAPSTORE=$1 VECTORS=$2/vectors/caps.txt WORK=$3
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
unset CAPSTORE_DB # the tests expect the default database unless they name one
# CAPSTORE_EXEC (optional): a command put before every capstore the tests
# run, e.g. an emulator for a cross-built capstore. CAPSTORE becomes a small
# script doing that, so every way a test runs it (env, pipes, subshells)
# gets the prefix; the command's path is resolved now, so PATH may change.
if [ -n "${CAPSTORE_EXEC:-}" ]; then
    read -r -a exec_words <<<"$CAPSTORE_EXEC"
    exec_words[0]=$(command -v "${exec_words[0]}") || { echo "CAPSTORE_EXEC: no ${exec_words[0]}" >&2; exit 1; }
    mkdir -p "$WORK.exec"
    printf '#!/bin/sh\nexec %s "$@"\n' "$(printf '%q ' "${exec_words[@]}" "$CAPSTORE")" >"$WORK.exec/capstore"
    chmod +x "$WORK.exec/capstore"
    CAPSTORE=$WORK.exec/capstore
fi
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
# run RC CMD...: run CMD (stdout in ./out, stderr in ./err), expect exit status RC.
run() {
    local want=$1; shift
    "$@" >out 2>err
    local rc=$?
    [ "$rc" = "$want" ] || { fail "'$*' exited $rc, expected $want"; sed 's/^/    stderr: /' err >&2; }
}
# vec NAME FILE: write the wire bytes of vector NAME; vec_hash NAME: its hash.
vec() {
    local hex
    hex=$(awk -v n="$1" '$1 == n { print $3; exit }' "$VECTORS")
    [ -n "$hex" ] || { echo "no vector $1 in $VECTORS" >&2; exit 1; }
    if [ "$hex" = - ]; then : >"$2"; else printf "$(sed 's/../\\x&/g' <<<"$hex")" >"$2"; fi
}
vec_hash() { awk -v n="$1" '$1 == n { print $2; exit }' "$VECTORS"; }
grep_err() { grep -q -- "$1" err || fail "stderr lacks '$1': $(cat err)"; }
grep_out() { grep -q -- "$1" out || fail "stdout lacks '$1'"; }
finish() { [ "$failures" = 0 ] || { echo "$failures failure(s)"; exit 1; }; echo ok; }
