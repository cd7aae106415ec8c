#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Install the build into a temporary prefix, then build examples/embed.c
# against the installed headers and libraries through pkg-config — once
# against the shared library, once against the static one — and run both.
#
#   bash test_install.sh <build-dir> <source-dir> <work-dir> <cc> [extra cflags]
#
# The extra flags are the build's sanitizer flags (an instrumented library
# needs an instrumented program).
set -euo pipefail
BUILD=$1 SRC=$2 WORK=$3 CC=$4 EXTRA=${5:-}
# CAPSTORE_EXEC: put before every program run here (an emulator, for a
# cross build); empty runs them directly.
X=${CAPSTORE_EXEC:-}
rm -rf "$WORK" && mkdir -p "$WORK"
PREFIX=$WORK/prefix

fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$BUILD" --prefix "$PREFIX" >"$WORK/install.log" || {
    cat "$WORK/install.log" >&2
    fail "cmake --install"
}

pc=$(find "$PREFIX" -name capstore.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || fail "no capstore.pc installed"
export PKG_CONFIG_PATH=$(dirname "$pc")
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR

# Installed files.
header_version=$(sed -n 's/^#define CAPSTORE_VERSION "\(.*\)"$/\1/p' "$PREFIX/include/capstore/common.h")
[ -n "$header_version" ] || fail "installed common.h has no CAPSTORE_VERSION"
for h in "$SRC"/include/capstore/*.h "$SRC"/include/capstore/sys/*.h; do
    [ -e "$h" ] || continue
    rel=${h#"$SRC"/include/}
    cmp -s "$h" "$PREFIX/include/$rel" || fail "header $rel not installed (or differs)"
done
libdir=$(pkg-config --variable=libdir capstore)
[ -f "$libdir/libcapstore.a" ] || fail "no static library in $libdir"
# The SONAME carries the major version, and the minor one too while the
# major is 0 (CHANGELOG.md, Compatibility).
major=${header_version%%.*}
if [ "$major" = 0 ]; then
    minor=${header_version#0.}
    soname=libcapstore.so.0.${minor%%.*}
else
    soname=libcapstore.so.$major
fi
[ -e "$libdir/libcapstore.so" ] || fail "no libcapstore.so link in $libdir"
[ -e "$libdir/$soname" ] || fail "no $soname in $libdir"
[ -f "$libdir/libcapstore.so.$header_version" ] || fail "no libcapstore.so.$header_version in $libdir"
if command -v objdump >/dev/null; then
    # (outputs are captured before grep -q: with pipefail, a writer cut off
    # by grep's early exit would fail the pipeline)
    dyn=$(objdump -p "$libdir/libcapstore.so.$header_version")
    grep -q "SONAME *$soname" <<<"$dyn" || fail "the shared library's SONAME is not $soname"
fi
[ -x "$PREFIX/bin/capstore" ] || fail "no capstore command in $PREFIX/bin"

# The docs: every file the installed docs link to is installed beside them.
docdir=$PREFIX/share/doc/capstore
[ -f "$docdir/API.md" ] || fail "no API.md in $docdir"
for doc in "$docdir"/*.md; do
    for link in $(grep -oE '\]\([A-Za-z0-9_.-]+\.(md|json)' "$doc" | sed 's/^](//' | sort -u); do
        [ -f "$docdir/$link" ] || fail "$(basename "$doc") links to $link, which is not installed"
    done
done
for f in LICENSE-MIT LICENSE-APACHE; do [ -f "$docdir/$f" ] || fail "no $f in $docdir"; done
cmp -s "$SRC/docs/capstore.1" "$PREFIX/share/man/man1/capstore.1" || fail "no man page in share/man/man1"
cmp -s "$SRC/tools/capstore-completion.bash" "$PREFIX/share/bash-completion/completions/capstore" ||
    fail "no bash completion in share/bash-completion/completions"

# The shared library exports exactly the functions the headers declare.
if command -v nm >/dev/null; then
    grep -hE '^[A-Za-z_][A-Za-z0-9_ ]*[ *]+cap_[a-z0-9_]+\(' "$PREFIX"/include/capstore/*.h \
        "$PREFIX"/include/capstore/sys/*.h 2>/dev/null | grep -vE '^(typedef|static|return)' |
        sed -E 's/^[^(]*[ *](cap_[a-z0-9_]+)\(.*/\1/' | sort -u >"$WORK/api.txt"
    nm -D --defined-only "$libdir/libcapstore.so.$header_version" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' |
        sort -u >"$WORK/exported.txt"
    missing=$(comm -23 "$WORK/api.txt" "$WORK/exported.txt")
    extra=$(comm -13 "$WORK/api.txt" "$WORK/exported.txt")
    [ -z "$missing" ] || fail "the shared library does not export: $missing"
    [ -z "$extra" ] || fail "the shared library exports what no header declares: $extra"
fi

# The .pc file: version, prefix, flags.
pc_version=$(pkg-config --modversion capstore)
[ "$pc_version" = "$header_version" ] || fail "capstore.pc Version $pc_version != header $header_version"
[ "$(pkg-config --variable=prefix capstore)" = "$PREFIX" ] || fail "capstore.pc prefix is not $PREFIX"
libs=$(pkg-config --libs capstore)
grep -q -- '-lcapstore' <<<"$libs" || fail "pkg-config --libs lacks -lcapstore"
grep -q -- '-lpthread' <<<"$libs" || fail "pkg-config --libs lacks -lpthread"
[ "$($X "$PREFIX/bin/capstore" --version)" = "capstore $header_version" ] || fail "installed capstore --version"

# Build and run the example: shared library.
cd "$WORK"
# shellcheck disable=SC2086,SC2046
"$CC" -std=c11 -Wall -Wextra -Werror -pedantic $EXTRA $(pkg-config --cflags capstore) \
    -o embed_shared "$SRC/examples/embed.c" $(pkg-config --libs capstore)
LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} $X ./embed_shared >shared.out ||
    fail "embed (shared) failed: $(cat shared.out)"
if [ -n "$X" ]; then # ldd cannot read a foreign program: ask its loader, as ldd does
    deps=$(LD_TRACE_LOADED_OBJECTS=1 LD_LIBRARY_PATH=$libdir $X ./embed_shared)
    grep -q "$libdir/$soname" <<<"$deps" || fail "embed_shared is not linked to the installed $soname"
elif command -v ldd >/dev/null; then
    deps=$(LD_LIBRARY_PATH=$libdir ldd ./embed_shared)
    grep -q "$libdir/$soname" <<<"$deps" || fail "embed_shared is not linked to the installed $soname"
fi

# Static library: --static adds Libs.private; -l:libcapstore.a picks the archive.
static_libs=$(pkg-config --static --libs capstore | sed 's/-lcapstore\b/-l:libcapstore.a/')
# shellcheck disable=SC2086,SC2046
"$CC" -std=c11 -Wall -Wextra -Werror -pedantic $EXTRA $(pkg-config --cflags capstore) \
    -o embed_static "$SRC/examples/embed.c" $static_libs
$X ./embed_static >static.out || fail "embed (static) failed: $(cat static.out)"

# Same program, same results (hashes do not depend on how it was linked,
# only the store's random seed differs, which no hash depends on).
cmp -s shared.out static.out || fail "shared and static runs differ"
grep -q "^cnode (settled) " shared.out || fail "embed printed no settled hash"
cat shared.out
echo ok
