#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Seed corpus for fuzz_decode: one file per line of a caps.txt-format vector
# file (positive and reject lines alike), holding that line's wire bytes.
#
#   fuzz/make_corpus.sh [VECTORS [OUTDIR]]
#
# VECTORS defaults to the repository's tests/vectors/caps.txt, OUTDIR
# to fuzz/corpus/seed (git-ignored). Needs xxd, perl or python3 for the hex.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
vectors=${1:-$here/../tests/vectors/caps.txt}
out=${2:-$here/corpus/seed}
[ -r "$vectors" ] || { echo "make_corpus.sh: cannot read $vectors" >&2; exit 1; }
mkdir -p "$out"

if command -v xxd >/dev/null 2>&1; then
  unhex() { xxd -r -p; }
elif command -v perl >/dev/null 2>&1; then
  unhex() { perl -e 'local $/; my $h = <STDIN>; $h =~ s/\s+//g; binmode STDOUT; print pack("H*", $h);'; }
elif command -v python3 >/dev/null 2>&1; then
  unhex() { python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))'; }
else
  echo "make_corpus.sh: need xxd, perl or python3" >&2
  exit 1
fi

n=0
while read -r name expect wire rest; do
  case "$name" in '' | '#'*) continue ;; esac
  [ -n "${wire:-}" ] || continue
  if [ "$wire" = "-" ]; then
    : >"$out/$name"
  else
    printf '%s' "$wire" | unhex >"$out/$name"
  fi
  n=$((n + 1))
done <"$vectors"
echo "make_corpus.sh: wrote $n seed files to $out"
