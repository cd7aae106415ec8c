#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The freestanding rule (spec section 5), for every compiler and target a
# guest may use: src/core is built as a guest would build it
# (-ffreestanding -nostdinc, only the compiler's own headers, -O2), its
# objects are linked into one relocatable object (ld -r) and nm -u lists
# what that object still needs. Anything but memcpy, memmove, memset and
# memcmp fails, by name and with the objects that need it: a libc function,
# libatomic (__atomic_*), libgcc or compiler-rt (__ctzdi2, __bswapsi2, ...).
#
#   freestanding_check.sh CC SRC OUT
#
# CC is the build's own compiler, checked for its default target. Then, each
# where installed: gcc and clang for x86-64 and riscv64 (gcc through the
# cross compiler riscv64-linux-gnu-gcc, clang through --target), clang for
# wasm32. A missing compiler is a skip; with
# CAPSTORE_FREESTANDING_REQUIRE=1 (CI) it is a failure.
set -u
cc0=$1 src=$(cd "$2" && pwd) out=$3
rm -rf "$out" && mkdir -p "$out"

# One configuration: NAME COMPILER [FLAGS...]. Runs in its own folder and
# writes its verdict to NAME.log; returns non-zero on failure.
check_one() {
    local name=$1 cc=$2
    shift 2
    local dir=$out/$name log=$out/$name.log
    mkdir -p "$dir"
    {
        local inc objs=() status=0
        inc=$("$cc" "$@" -print-file-name=include)
        for f in "$src"/src/core/*/*.c; do
            local o
            o="$dir/$(basename "$(dirname "$f")")_$(basename "${f%.c}").o"
            if "$cc" "$@" -std=c11 -O2 -ffreestanding -nostdinc -isystem "$inc" \
                -fno-stack-protector -fno-pic -D_MM_MALLOC_H_INCLUDED -Wall -Wextra -Werror \
                -I"$src/include" -I"$src/src/core" -c "$f" -o "$o"; then
                objs+=("$o")
            else
                echo "FAIL [$name]: ${f#"$src"/} does not build freestanding"
                status=1
            fi
        done
        # A core that does not build has no meaningful symbol list.
        [ $status -eq 0 ] || return 1
        # The linker and nm that read this target's objects.
        local ld nm=nm allowed='memcpy|memmove|memset|memcmp'
        case $name in
        wasm32-*)
            ld=$(tool wasm-ld) nm=$(tool llvm-nm)
            # Linker-made globals of every wasm object, not functions.
            allowed="$allowed|__stack_pointer|__indirect_function_table"
            ;;
        clang-*) ld=$(tool ld.lld) ;;
        *) ld=$("$cc" "$@" -print-prog-name=ld) ;;
        esac
        if ! "$ld" -r -o "$dir/core.o" "${objs[@]}"; then
            echo "FAIL [$name]: $ld -r could not link the core"
            return 1
        fi
        local bad
        bad=$("$nm" -u "$dir/core.o" | awk '{print $NF}' | grep -vxE "$allowed" | sort -u)
        if [ -n "$bad" ]; then
            local sym msg=""
            for sym in $bad; do
                local users=""
                for o in "${objs[@]}"; do
                    "$nm" -u "$o" 2>/dev/null | awk '{print $NF}' | grep -qxF "$sym" && users="$users $(basename "$o" .o)"
                done
                msg="$msg $sym (${users# })"
            done
            echo "FAIL [$name]: the core needs:$msg"
            status=1
        fi
        [ $status -eq 0 ] && echo "ok [$name]: ${#objs[@]} core objects need only memcpy, memmove, memset, memcmp"
        return $status
    } >"$log" 2>&1
}

# The first of NAME NAME-14 that is installed (Debian names LLVM tools by version).
tool() { command -v "$1" || command -v "$1-14" || echo "$1"; }

have() { command -v "$1" >/dev/null 2>&1; }

configs=() skipped=()
add() { # NAME COMPILER [FLAGS...], when COMPILER is installed
    if have "$2"; then configs+=("$*"); else skipped+=("$1 ($2 not installed)"); fi
}
add "native-$("$cc0" -dumpmachine)" "$cc0"
gcc_x86=x86_64-linux-gnu-gcc
[ "$(uname -m)" = x86_64 ] && gcc_x86=gcc
# The build's compiler is often that very gcc: check it once.
if ! have "$gcc_x86" || [ "$(realpath "$(command -v "$cc0")")" != "$(realpath "$(command -v "$gcc_x86")")" ]; then
    add gcc-x86_64 "$gcc_x86"
fi
add clang-x86_64 "$(tool clang)" --target=x86_64-unknown-none-elf
add gcc-riscv64 riscv64-linux-gnu-gcc
add clang-riscv64 "$(tool clang)" --target=riscv64-unknown-elf -march=rv64gc
add wasm32-clang "$(tool clang)" --target=wasm32-unknown-unknown

# Two at a time (each is a serial build of the core).
status=0 pids=() names=()
for c in "${configs[@]}"; do
    # shellcheck disable=SC2086 # the configuration is NAME COMPILER FLAGS, split on purpose
    check_one $c &
    pids+=($!) names+=("${c%% *}")
    if [ ${#pids[@]} -ge 2 ]; then
        wait "${pids[0]}" || status=1
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
for n in "${names[@]}"; do cat "$out/$n.log"; done
for s in "${skipped[@]}"; do
    if [ "${CAPSTORE_FREESTANDING_REQUIRE:-0}" = 1 ]; then
        echo "FAIL [${s%% *}]: ${s#* } and CAPSTORE_FREESTANDING_REQUIRE=1"
        status=1
    else
        echo "skipped [${s%% *}]: ${s#* }"
    fi
done
exit $status
