#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# docs/model.sh — regenerate the README's model diagram: docs/model.dot is the
# final cap graph of `capstore demo` (written by the same DOT writer as
# `capstore dot`), rendered to docs/model.svg and docs/model.png by Graphviz.
# The demo builds the same caps on every run, so the files change only when
# the demo or the DOT writer does (tests/cli_demo.sh checks model.dot).
#
# usage: docs/model.sh [CAPSTORE]     (default: build/capstore)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CAPSTORE=${1:-$ROOT/build/capstore}
[ -x "$CAPSTORE" ] || { echo "docs/model.sh: no capstore binary at $CAPSTORE (build first)" >&2; exit 1; }
CAPSTORE=$(cd "$(dirname "$CAPSTORE")" && pwd)/$(basename "$CAPSTORE")
command -v dot >/dev/null 2>&1 || { echo "docs/model.sh: needs Graphviz (apt-get install graphviz)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# --memory: no database file; the demo runs in the scratch folder.
(cd "$tmp" && "$CAPSTORE" demo --memory --dot model.dot --png model.png >/dev/null)
cp "$tmp/model.dot" "$ROOT/docs/model.dot"
cp "$tmp/model.png" "$ROOT/docs/model.png"
dot -Tsvg "$ROOT/docs/model.dot" -o "$ROOT/docs/model.svg"
echo "wrote docs/model.dot, docs/model.svg, docs/model.png"
