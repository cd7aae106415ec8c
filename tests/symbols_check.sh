#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Symbol hygiene: the libraries a user links define no global symbol outside
# the cap_ prefix (the shared library's version node CAPSTORE_0 aside), so
# that nothing of ours clashes with a name in the program or kernel that
# links them.
#
#   bash symbols_check.sh <libcapstore.a> [<libcapstore.so>]
set -euo pipefail
command -v nm >/dev/null || { echo "nm not installed: skipped"; exit 0; }
status=0
check() { # <what> <nm output: "TYPE NAME" lines>
  local what=$1 bad
  bad=$(awk 'NF >= 2 { print $(NF) }' <<<"$2" | sed 's/@.*//' | grep -vE '^(cap_|CAPSTORE_0$)' | sort -u || true)
  if [ -n "$bad" ]; then
    echo "FAIL: $what defines globals outside cap_: $(echo $bad)"
    status=1
  else
    echo "$what: $(grep -c . <<<"$2") global definitions, all cap_"
  fi
}
# (outputs are captured first: with pipefail, a reader that stops early
# would fail the writer)
out=$(nm -g --defined-only "$1" | awk 'NF == 3')
check "$(basename "$1")" "$out"
static_names=$(awk '{ print $3 }' <<<"$out" | sort -u)
if [ $# -ge 2 ]; then
  out=$(nm -D --defined-only "$2" | awk 'NF == 3')
  check "$(basename "$2")" "$out"
  # Both offer the same API: the static library keeps global what the
  # shared one exports.
  shared_names=$(awk '{ sub(/@.*/, "", $3); print $3 }' <<<"$out" | grep -vx CAPSTORE_0 | sort -u)
  if [ "$static_names" != "$shared_names" ]; then
    echo "FAIL: the two libraries define different globals:"
    diff <(echo "$static_names") <(echo "$shared_names") || true
    status=1
  fi
fi
exit $status
