#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Every public header compiles on its own, first in its translation unit, as
# C11 and as C++11 and C++17, with g++/gcc and clang++/clang and
# -Wall -Wextra -Werror -pedantic. A compiler that is not installed is
# skipped (and said so); at least one C and one C++ compiler must run.
#
#   bash headers_check.sh <source-dir> <work-dir>
set -uo pipefail
src=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
flags=(-Wall -Wextra -Werror -pedantic -fsyntax-only -I"$src/include")

first() { # the first of the named commands that is installed
  local c
  for c in "$@"; do command -v "$c" >/dev/null && { echo "$c"; return; }; done
}
modes=()
for cc in "$(first gcc)" "$(first clang clang-14)"; do
  [ -n "$cc" ] && modes+=("$cc -x c -std=c11")
done
for cxx in "$(first g++)" "$(first clang++ clang++-14)"; do
  [ -n "$cxx" ] && modes+=("$cxx -x c++ -std=c++11" "$cxx -x c++ -std=c++17")
done
c_modes=$(printf '%s\n' "${modes[@]}" | grep -c -- '-x c ' || true)
cxx_modes=$(printf '%s\n' "${modes[@]}" | grep -c -- '-x c++ ' || true)
[ "$c_modes" -gt 0 ] && [ "$cxx_modes" -gt 0 ] || { echo "FAIL: no C or no C++ compiler"; exit 1; }
command -v clang++ >/dev/null || command -v clang++-14 >/dev/null || echo "note: clang++ not installed: skipped"
command -v g++ >/dev/null || echo "note: g++ not installed: skipped"

status=0 n=0
cd "$src/include"
headers=$(find capstore -name '*.h' | sort)
cd - >/dev/null
for h in $headers; do
  tu="$work/$(echo "$h" | tr / _).in"
  printf '#include <%s>\n' "$h" >"$tu"
  for m in "${modes[@]}"; do
    # shellcheck disable=SC2086
    if ! out=$($m "${flags[@]}" "$tu" 2>&1); then
      echo "FAIL: $h does not compile alone with $m:"
      echo "$out" | head -n 10
      status=1
    fi
    n=$((n + 1))
  done
done
[ $status -eq 0 ] && echo "headers: $(echo "$headers" | wc -l) headers x ${#modes[@]} modes ($n compilations): ${modes[*]}"
exit $status
