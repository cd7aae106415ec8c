#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Install the build into a temporary prefix, move the prefix elsewhere (the
# package must not remember where it was installed), then configure, build
# and run tests/consumer through find_package(capstore CONFIG): a C program
# on capstore::capstore (shared) and on capstore::capstore_static, and a C++
# one when a C++ compiler is found. A request for another minor version is
# refused while the major is 0.
#
#   bash test_find_package.sh <build-dir> <source-dir> <work-dir> <cc> [extra flags]
#
# The extra flags are the build's sanitizer flags.
set -euo pipefail
BUILD=$1 SRC=$2 WORK=$3 CC=$4 EXTRA=${5:-}
rm -rf "$WORK" && mkdir -p "$WORK"
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$BUILD" --prefix "$WORK/installed" >"$WORK/install.log" ||
    { cat "$WORK/install.log" >&2; fail "cmake --install"; }
mv "$WORK/installed" "$WORK/prefix"
PREFIX=$WORK/prefix
config=$(find "$PREFIX" -name capstoreConfig.cmake | head -n 1)
[ -n "$config" ] || fail "no capstoreConfig.cmake installed"
[ -n "$(find "$PREFIX" -name capstoreConfigVersion.cmake)" ] || fail "no capstoreConfigVersion.cmake installed"
! grep -rl "$WORK/installed" "$(dirname "$config")" >/dev/null || fail "the package names its install path"

version=$(sed -n 's/^#define CAPSTORE_VERSION "\(.*\)"$/\1/p' "$SRC/include/capstore/common.h")
major=${version%%.*} rest=${version#*.}
minor=${rest%%.*}

CC=$(command -v "$CC") || fail "no C compiler $4"
# The C++ compiler of the same family as the C one (an instrumented library
# needs the matching runtime).
# A cross compiler's too (s390x-linux-gnu-gcc: s390x-linux-gnu-g++, which
# may not be installed: then no C++ consumer, never the host's c++).
case $(basename "$CC") in
    *clang*) CXX=$(dirname "$CC")/$(basename "$CC" | sed 's/clang/clang++/') ;;
    *gcc*) CXX=$(dirname "$CC")/$(basename "$CC" | sed 's/gcc/g++/') ;;
    cc) CXX=$(dirname "$CC")/c++ ;;
    *) CXX= ;;
esac
cxx_args=(-DCONSUMER_CXX=OFF)
[ -n "$CXX" ] && [ -x "$CXX" ] && cxx_args=(-DCONSUMER_CXX=ON -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_CXX_FLAGS="$EXTRA")

configure() { # <build dir> <version wanted>
    cmake -S "$SRC/tests/consumer" -B "$1" -DCMAKE_PREFIX_PATH="$PREFIX" \
        -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
        -DCMAKE_C_COMPILER="$CC" -DCMAKE_C_FLAGS="$EXTRA" -DCMAKE_EXE_LINKER_FLAGS="$EXTRA" \
        "${cxx_args[@]}" -DCONSUMER_WANT="$2"
}
configure "$WORK/consumer" "$major.$minor" >"$WORK/configure.log" 2>&1 ||
    { cat "$WORK/configure.log" >&2; fail "configuring the consumer"; }
grep -q "capstore $version found in $PREFIX/" "$WORK/configure.log" ||
    fail "find_package did not find the installed capstore $version: $(grep found "$WORK/configure.log")"
cmake --build "$WORK/consumer" >"$WORK/build.log" 2>&1 ||
    { cat "$WORK/build.log" >&2; fail "building the consumer"; }

# CAPSTORE_EXEC: put before every program run here (an emulator, for a
# cross build); empty runs them directly.
X=${CAPSTORE_EXEC:-}
libs() { # the libraries a program loads: ldd cannot read a foreign one, its loader can
    if [ -n "$X" ]; then LD_TRACE_LOADED_OBJECTS=1 $X "$1"; else ldd "$1"; fi
}
cd "$WORK/consumer"
$X ./consumer_shared >shared.out || fail "consumer_shared: $(cat shared.out)"
$X ./consumer_static >static.out || fail "consumer_static: $(cat static.out)"
# The Type cap whose chain is 32 bytes of 0x11 (README's example).
grep -qx "capstore $version type 8908bc88[0-9a-f]*89262e8" shared.out || fail "consumer_shared printed: $(cat shared.out)"
cmp -s shared.out static.out || fail "the shared and static consumers differ"
if [ -n "$X" ] || command -v ldd >/dev/null; then
    deps=$(libs ./consumer_shared)
    grep -q "$PREFIX/lib.*/libcapstore.so" <<<"$deps" || fail "consumer_shared is not linked to the installed libcapstore.so"
    deps=$(libs ./consumer_static)
    ! grep -q "libcapstore.so" <<<"$deps" || fail "consumer_static is linked to libcapstore.so"
fi
if [ -x consumer_cxx ]; then
    $X ./consumer_cxx >cxx.out || fail "consumer_cxx: $(cat cxx.out)"
    cmp -s shared.out cxx.out || fail "the C++ consumer printed: $(cat cxx.out)"
    echo "C++ consumer: ok"
else
    echo "no C++ compiler beside $CC: C++ consumer skipped"
fi

# A 0.x package serves its own minor version only.
if [ "$major" = 0 ]; then
    if configure "$WORK/consumer-other" "0.$((minor + 1))" >"$WORK/other.log" 2>&1; then
        fail "find_package(capstore 0.$((minor + 1))) accepted capstore $version"
    fi
    grep -q "version: $version" "$WORK/other.log" ||
        fail "find_package(capstore 0.$((minor + 1))) failed for another reason: $(cat "$WORK/other.log")"
fi
cat shared.out
echo ok
