#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Seed corpus for fuzz_json: the JSON form (`capstore decode`) of every wire
# seed that decodes, one file each.
#
#   fuzz/make_json_corpus.sh CAPSTORE WIRE_SEEDS [OUTDIR]
#
# CAPSTORE is the built command (e.g. build/capstore), WIRE_SEEDS a folder
# written by make_corpus.sh, OUTDIR defaults to fuzz/corpus/json-seed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: make_json_corpus.sh CAPSTORE WIRE_SEEDS [OUTDIR]" >&2; exit 2; }
capstore=$1
seeds=$2
out=${3:-$here/corpus/json-seed}
[ -x "$capstore" ] || { echo "make_json_corpus.sh: $capstore is not executable" >&2; exit 1; }
mkdir -p "$out"
n=0
for f in "$seeds"/*; do
  [ -f "$f" ] || continue
  # Reject lines do not decode: they have no JSON form.
  if "$capstore" decode "$f" >"$out/$(basename "$f").json" 2>/dev/null; then
    n=$((n + 1))
  else
    rm -f "$out/$(basename "$f").json"
  fi
done
echo "make_json_corpus.sh: wrote $n seed files to $out"
