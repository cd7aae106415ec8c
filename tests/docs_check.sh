#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# What a new user reads first says what is true: the licence, the
# changelog of this version, the schema kept in this repository (and its
# worked examples, checked against the command), the README's two set-up
# blocks and its list of build options.
#
#   bash docs_check.sh <source-dir> <capstore> <work-dir>
set -uo pipefail
SRC=$(realpath "$1") CAPSTORE=$(realpath "$2") WORK=$3
rm -rf "$WORK" && mkdir -p "$WORK"
status=0
fail() { echo "FAIL: $*"; status=1; }

version=$(sed -n 's/^#define CAPSTORE_VERSION "\(.*\)"$/\1/p' "$SRC/include/capstore/common.h")

# Licence: both texts, a README line, an SPDX line in the first lines of
# every source file (one awk for them all).
for f in LICENSE-MIT LICENSE-APACHE; do [ -s "$SRC/$f" ] || fail "no $f"; done
grep -q 'MIT OR Apache-2.0' "$SRC/README.md" || fail "the README does not state the licence"
nospdx=$(find "$SRC/include" "$SRC/src" "$SRC/tools" "$SRC/bench" "$SRC/tests" "$SRC/fuzz" \
              "$SRC/cmake" "$SRC/examples" "$SRC/docs" "$SRC/.ci" "$SRC/CMakeLists.txt" \
              -type f \( -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.sh' -o -name '*.cmake' \
                         -o -name '*.in' -o -name 'CMakeLists.txt' -o -name run -o -name '*.bash' -o -name '*.1' \) \
              -exec awk 'FNR == 1 { if (f && !ok) print f; f = FILENAME; ok = 0 }
                         FNR <= 3 && /SPDX-License-Identifier: MIT OR Apache-2.0/ { ok = 1 }
                         END { if (f && !ok) print f }' {} +)
[ -z "$nospdx" ] || fail "no SPDX line in: $(echo $nospdx)"

# The changelog: this version has its section; the compatibility rules are
# there and name the SONAME the build gives.
grep -qE "^## $version( |$)" "$SRC/CHANGELOG.md" || fail "CHANGELOG.md has no section for $version"
grep -q '^## Compatibility' "$SRC/CHANGELOG.md" || fail "CHANGELOG.md has no Compatibility section"
major=${version%%.*} rest=${version#*.}
[ "$major" != 0 ] || grep -q "libcapstore.so.0.${rest%%.*}" "$SRC/CHANGELOG.md" ||
    fail "CHANGELOG.md does not name the SONAME libcapstore.so.0.${rest%%.*}"
grep -q 'CAPSTORE_0' "$SRC/CHANGELOG.md" || fail "CHANGELOG.md does not say how symbols are versioned"

# The schema is explained here, and the docs point at it, not at a folder
# beside the checkout.
[ -s "$SRC/docs/cap-schema.md" ] || fail "no docs/cap-schema.md"
for doc in README.md docs/cap-json.md tests/vectors/README.md docs/API.md; do
    grep -q 'cap-schema.md' "$SRC/$doc" || fail "$doc does not point to docs/cap-schema.md"
done
bad=$(grep -rln --include='*.md' 'shared/spec' "$SRC/README.md" "$SRC/CHANGELOG.md" "$SRC/docs" \
      "$SRC/tests/vectors" "$SRC/examples" || true)
[ -z "$bad" ] || fail "these still point to shared/spec: $bad"
for kind in Instance Image Data CNode Type; do
    grep -q "^### $kind (selector" "$SRC/docs/cap-schema.md" || fail "cap-schema.md has no section for $kind"
done
grep -q '^## 4. The wire form' "$SRC/docs/cap-schema.md" || fail "cap-schema.md has no wire form section"

# Its worked examples are what the command computes.
cd "$WORK"
printf '{"kind":"type","image_hash_chain":"%s"}' "$(printf '11%.0s' {1..32})" >type.json
"$CAPSTORE" encode -o type.cap type.json || fail "encoding the Type example"
type_hash=$("$CAPSTORE" hash type.cap)
grep -q "$type_hash" "$SRC/docs/cap-schema.md" || fail "cap-schema.md's Type example is not $type_hash"
printf '{"kind":"cnode","size_log":4,"slots":[{"slot":2,"target":"%s"}]}' "$type_hash" >cnode.json
"$CAPSTORE" encode -o cnode.cap cnode.json || fail "encoding the CNode example"
[ "$(od -An -tx1 -v cnode.cap | tr -d ' \n')" = "03040500000002000000$type_hash" ] ||
    fail "the CNode example's bytes differ from cap-schema.md"
grep -q 'is 42 bytes' "$SRC/docs/cap-schema.md" && grep -q '`05000000`' "$SRC/docs/cap-schema.md" &&
    grep -q '`02000000` (slot 2)' "$SRC/docs/cap-schema.md" || fail "cap-schema.md's CNode example changed"
cd - >/dev/null

# README: the set-up block installs what the library, the command and the
# demo need and nothing more; the test block installs what the tests add.
setup=$(awk '/^Set up a fresh machine/ { on = 1 } on && /^apt-get/ { print; exit }' "$SRC/README.md")
[ -n "$setup" ] || fail "no apt-get line in the README's set-up block"
for pkg in build-essential cmake pkg-config liblmdb-dev libjansson-dev; do
    grep -qw -- "$pkg" <<<"$setup" || fail "the set-up block does not install $pkg"
done
for pkg in clang llvm graphviz libssl-dev libclang-rt; do
    ! grep -q -- "$pkg" <<<"$setup" || fail "the set-up block installs $pkg, which neither the library nor the command needs"
done
grep -q 'CAPSTORE_BUILD_TESTS=OFF' <<<"$(awk '/^Set up a fresh machine/ { on = 1 } on && /^cmake/ { print; exit }' "$SRC/README.md")" ||
    fail "the set-up block configures the tests, which need OpenSSL"
testblock=$(awk '/^Run every test/ { on = 1 } on && /^apt-get/ { print; exit }' "$SRC/README.md")
grep -q libssl-dev <<<"$testblock" || fail "the README's test block does not install libssl-dev"

# README: every build option (option() or a CAPSTORE_ cache variable) is listed.
opts=$( (grep -oE '^\s*option\(CAPSTORE_[A-Z0-9_]+' "$SRC/CMakeLists.txt"
        grep -E '^\s*set\(CAPSTORE_[A-Z0-9_]+ .* CACHE ' "$SRC/CMakeLists.txt") |
       grep -oE 'CAPSTORE_[A-Z0-9_]+' | sort -u)
options=$(awk '/^## Options/ { on = 1; next } on && /^## / { exit } on' "$SRC/README.md")
for o in $opts; do
    grep -q -- "-D$o" <<<"$options" || fail "the README's options list lacks $o"
done

[ $status -eq 0 ] && echo "docs: licence, CHANGELOG $version, cap-schema.md and its examples, README blocks and options ($(echo $opts | wc -w)) checked"
exit $status
