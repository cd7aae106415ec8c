#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# capstore (top level): bash cli_main.sh <capstore> <test-data-dir> <work-dir>
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$(dirname "$0")/support/cli_common.sh"
# The command's version is the header's (CAPSTORE_VERSION in common.h).
HEADER=$HERE/../include/capstore/common.h
want=$(sed -n 's/^#define CAPSTORE_VERSION "\(.*\)"$/\1/p' "$HEADER")

run 0 "$CAPSTORE" --help
for sub in hash decode encode inspect dot db vectors bench; do
    grep -Eq "^  $sub " out || fail "top-level help does not list '$sub'"
done
run 0 "$CAPSTORE" --version
[ "$(cat out)" = "capstore $want" ] || fail "--version says '$(cat out)', header says $want"
for sub in hash decode encode inspect dot; do
    run 0 "$CAPSTORE" "$sub" --help
    grep_out "usage: capstore $sub"
    grep_out "Exit status"
done

# `help SUB` is `SUB --help`, for every subcommand; `help` alone is --help.
for sub in demo hash decode encode inspect dot db vectors bench; do
    run 0 "$CAPSTORE" "$sub" --help
    cp out want
    run 0 "$CAPSTORE" help "$sub"
    cmp -s out want || fail "'capstore help $sub' differs from '$sub --help'"
    grep -q "usage: capstore $sub" out || fail "'capstore help $sub' shows no usage of $sub"
done
run 0 "$CAPSTORE" help
grep_out "usage: capstore <subcommand>"
run 2 "$CAPSTORE" help frobnicate
grep_err "unknown subcommand 'frobnicate'"
run 2 "$CAPSTORE" help hash decode
grep_err "one subcommand at a time"

run 2 "$CAPSTORE"
grep_err "usage: capstore <subcommand>"
run 2 "$CAPSTORE" frobnicate
grep_err "unknown subcommand 'frobnicate'"
finish
