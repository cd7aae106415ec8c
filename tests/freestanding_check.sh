#!/usr/bin/env bash
# Builds src/core as the guest would (-ffreestanding -nostdinc, only the
# compiler's own headers) and checks with nm -u that the objects need no
# symbol but memcpy, memmove, memset and memcmp.
set -eu
cc=$1 src=$2 out=$3
rm -rf "$out" && mkdir -p "$out"
inc=$("$cc" -print-file-name=include)
status=0
for f in "$src"/src/core/*/*.c; do
  o="$out/$(basename "$(dirname "$f")")_$(basename "${f%.c}").o"
  "$cc" -std=c11 -O2 -ffreestanding -nostdinc -isystem "$inc" -fno-stack-protector \
    -D_MM_MALLOC_H_INCLUDED -Wall -Wextra -Werror \
    -I"$src/include" -I"$src/src/core" -c "$f" -o "$o" || { echo "FAIL: $f does not build freestanding"; status=1; continue; }
  bad=$(nm -u "$o" | awk '{print $2}' | grep -vxE 'memcpy|memmove|memset|memcmp' || true)
  if [ -n "$bad" ]; then echo "FAIL: $f needs: $bad"; status=1; fi
done
n=$(ls "$out"/*.o 2>/dev/null | wc -l)
[ "$n" -gt 0 ] || { echo "FAIL: no core objects"; exit 1; }
[ $status -eq 0 ] && echo "freestanding: $n core objects, no libc symbol needed"
exit $status
