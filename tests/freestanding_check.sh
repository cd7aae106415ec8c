#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Builds src/core as the guest would (-ffreestanding -nostdinc, only the
# compiler's own headers), links the objects into one relocatable object and
# checks with nm -u that it needs no symbol but memcpy, memmove, memset and
# memcmp (spec section 5).
set -eu
cc=$1 src=$2 out=$3
rm -rf "$out" && mkdir -p "$out"
inc=$("$cc" -print-file-name=include)
status=0
objs=()
for f in "$src"/src/core/*/*.c; do
  o="$out/$(basename "$(dirname "$f")")_$(basename "${f%.c}").o"
  if "$cc" -std=c11 -O2 -ffreestanding -nostdinc -isystem "$inc" -fno-stack-protector \
      -fno-pic -D_MM_MALLOC_H_INCLUDED -Wall -Wextra -Werror \
      -I"$src/include" -I"$src/src/core" -c "$f" -o "$o"; then
    objs+=("$o")
  else
    echo "FAIL: $f does not build freestanding"; status=1
  fi
done
[ ${#objs[@]} -gt 0 ] || { echo "FAIL: no core objects"; exit 1; }
ld -r -o "$out/core.o" "${objs[@]}"
bad=$(nm -u "$out/core.o" | awk '{print $2}' | grep -vxE 'memcpy|memmove|memset|memcmp' || true)
if [ -n "$bad" ]; then echo "FAIL: the core needs: $(echo $bad)"; status=1; fi
[ $status -eq 0 ] && echo "freestanding: ${#objs[@]} core objects, no libc symbol needed"
exit $status
