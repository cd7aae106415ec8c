#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Build the guest example for one target with no libc at all (the core,
# the guest's files, nothing else: -ffreestanding -nostdlib, no libgcc),
# run it and check that it prints exactly the line the host computes
# (guest_expected.h) and exits 0.
#
#   check.sh TARGET WORK [HOST_LINE]     TARGET: x86_64 | riscv64 | wasm32
#
# HOST_LINE: a file holding what examples/guest/host_check printed.
#
# x86_64 runs natively (gcc, or $CC), riscv64 under qemu-riscv64
# (riscv64-linux-gnu-gcc), wasm32 under Node's WASI (clang + wasm-ld).
set -euo pipefail
target=$1 work=$2 host_line=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
rm -rf "$work" && mkdir -p "$work"

first() { for c in "$@"; do command -v "$c" && return; done; echo "check.sh: none of $* is installed" >&2; exit 1; }

common=(-std=c11 -O2 -ffreestanding -fno-stack-protector -Wall -Wextra -Werror -Wshadow
        -Wstrict-prototypes -Wmissing-prototypes -I"$src/include")
core_flags=(-I"$src/src/core")
nobuiltin=(-fno-builtin)
case $target in
x86_64)
    cc=${CC:-gcc}
    common+=(-fno-pic)
    core_flags+=(-DCAP_SHA256_PROBE_CPU=1 -D_MM_MALLOC_H_INCLUDED) # SHA-NI where the CPU has it
    sys=guest_sys_linux.c
    link() { "$cc" -nostdlib -static -no-pie -o "$work/guest" "$@"; }
    run() { "$work/guest"; }
    ;;
riscv64)
    cc=$(first riscv64-linux-gnu-gcc)
    common+=(-fno-pic)
    sys=guest_sys_linux.c
    link() { "$cc" -nostdlib -static -no-pie -o "$work/guest" "$@"; }
    qemu=$(first qemu-riscv64-static qemu-riscv64)
    run() { "$qemu" "$work/guest"; }
    ;;
wasm32)
    cc="$(first clang clang-14) --target=wasm32-unknown-unknown"
    sys=guest_sys_wasi.c
    wasmld=$(first wasm-ld wasm-ld-14)
    # The scenario's deepest frames hold a few KiB; 256 KiB of stack is ample.
    link() { "$wasmld" --entry=_start -z stack-size=262144 -o "$work/guest.wasm" "$@"; }
    run() { node --no-warnings "$here/run_wasm.mjs" "$work/guest.wasm"; }
    ;;
*)
    echo "check.sh: unknown target '$target' (x86_64, riscv64, wasm32)" >&2
    exit 2
    ;;
esac
if "${cc%% *}" --version 2>/dev/null | grep -q "Free Software Foundation"; then
    nobuiltin+=(-fno-tree-loop-distribute-patterns) # gcc: no loop becomes a memcpy call
fi

# -nostdlib guests have no libc headers: only the compiler's own.
# Two compilers at a time; a failure is reported when the last one is done.
objs=() pids=()
compile() { # OUT SRC FLAGS...
    local o=$work/$1 f=$2
    shift 2
    # shellcheck disable=SC2086 # $cc may carry --target
    $cc "${common[@]}" "$@" -c "$f" -o "$o" &
    pids+=($!) objs+=("$o")
    if [ ${#pids[@]} -ge 2 ]; then
        wait "${pids[0]}" || failed=1
        pids=("${pids[@]:1}")
    fi
}
failed=0
for f in "$src"/src/core/*/*.c; do
    compile "core_$(basename "$(dirname "$f")")_$(basename "${f%.c}").o" "$f" "${core_flags[@]}"
done
for f in guest_graph.c guest_arena.c guest_main.c "$sys"; do
    compile "${f%.c}.o" "$here/$f"
done
compile guest_mem.o "$here/guest_mem.c" "${nobuiltin[@]}"
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ $failed = 0 ] || { echo "FAIL [$target]: the guest does not build" >&2; exit 1; }
link "${objs[@]}"

set +e
out=$(run 2>"$work/stderr")
status=$?
set -e
printf '%s\n' "$out"
sed 's/^/  stderr: /' "$work/stderr" >&2
# The guest checks itself against guest_expected.h (its exit status); with
# HOST_LINE, its line is also compared with what the host check printed.
[ "$status" = 0 ] || { echo "FAIL [$target]: the guest exited $status" >&2; exit 1; }
if [ -n "$host_line" ] && [ "$out" != "$(cat "$host_line")" ]; then
    echo "FAIL [$target]: the guest's line differs from the host's: $(cat "$host_line")" >&2
    exit 1
fi
echo "ok [$target]: the guest printed the host's line and exited 0"
