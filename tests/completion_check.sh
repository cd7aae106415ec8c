#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The bash completion script tools/capstore-completion.bash, sourced in
# bash with the built command on PATH as `capstore`: what it offers for
# subcommands, options, db actions, --only workloads and files, through
# COMP_WORDS / COMP_CWORD and COMPREPLY as bash would.
#
#   bash completion_check.sh <capstore> <source-dir> <work-dir>
set -uo pipefail
CAPSTORE=$(realpath "$1") SRC=$(realpath "$2") WORK=$3
rm -rf "$WORK" && mkdir -p "$WORK/bin" && cd "$WORK" || exit 1
ln -s "$CAPSTORE" bin/capstore
PATH=$WORK/bin:$PATH
status=0
fail() { echo "FAIL: $*"; status=1; }

# shellcheck source=/dev/null
source "$SRC/tools/capstore-completion.bash" || { echo "FAIL: the script does not source"; exit 1; }
complete -p capstore >/dev/null 2>&1 || fail "the script registers no completion for capstore"

# offers WORD... => EXPECTED...: the completions (in any order) of the
# command line whose last word is the one being completed.
offers() {
    local words=() w
    for w in "$@"; do
        [ "$w" = "=>" ] && break
        words+=("$w")
    done
    shift $((${#words[@]} + 1))
    COMP_WORDS=(capstore "${words[@]}")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="${COMP_WORDS[*]}"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _capstore
    local got want
    got=$(printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort | tr '\n' ' ')
    want=$(printf '%s\n' "$@" | sed '/^$/d' | sort | tr '\n' ' ')
    [ "$got" = "$want" ] || fail "capstore ${words[*]}<TAB>: got '$got', expected '$want'"
}

offers "" "=>" demo hash decode encode inspect dot db vectors bench help --help --version
offers in "=>" inspect
offers d "=>" demo decode dot db
offers help de "=>" demo decode
offers inspect -- "=>" --all --json --help
offers encode - "=>" -o --help
offers demo -- "=>" --db --memory --dot --png --help
offers bench -- "=>" --n --only --reps --json --db --help
offers bench --only pu "=>" publish publish_batch
offers bench --only node_hash,lookup_m "=>" node_hash,lookup_miss node_hash,lookup_mt
offers bench --n "" "=>"
offers db "" "=>" stats get put check
offers db get --r "=>" --raw
# Files where files go: after an option that takes a file, and as arguments.
touch a.cap b.cap my.lmdb
offers hash "" "=>" a.cap b.cap bin my.lmdb
offers hash a "=>" a.cap
offers demo --db m "=>" my.lmdb
offers encode -o b "=>" b.cap bin
offers db put "" "=>" a.cap b.cap bin my.lmdb
[ $status -eq 0 ] && echo "completion: subcommands, options, db actions, workloads and files offered"
exit $status
