#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# bench/report.sh — run capstore's benchmark and its peers (the Rust seed and
# the @chainsafe SSZ/hashtree JS peers, ../shared/peers) back to back in one
# run, then write a markdown table of ratios and the issues' targets
# (docs/bench/results.md) and a chart (docs/bench/ratios.png, gnuplot).
#
# Peer figures drift between runs, so only figures of the same run are
# compared (shared/peers/README.md): that is why one script runs them all.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE="$ROOT/bench"

usage() {
    cat <<EOF
usage: bench/report.sh [--n N] [--reps R] [--quick] [--capstore PATH] [--out DIR]
                       [--peers DIR] [--scratch DIR] [--no-scaling] [--no-readme]
                       [--large N2 | --no-large] [--no-rss]

Runs, back to back: capstore bench (all workloads), the Rust seed peer and the
JS peers, with the same N; then writes DIR/results.md (ratios, targets, machine)
and DIR/ratios.png (gnuplot), and refreshes README.md's Benchmarks table.

  --n N           workload size for capstore and the peers (default 100000)
  --reps R        capstore, the Rust seed and the JS peers take turns running
                  their whole suite, R rounds, and each figure is the median of
                  its R passes (default 3)
  --quick         smoke run: N=2000, short JS timings, small scaling runs; writes
                  to SCRATCH/quick (not docs/bench) unless --out is given, and
                  never touches README.md
  --capstore P    the capstore binary (default: build/capstore, built or
                  refreshed with cmake --build first)
  --out DIR       where results.md and ratios.png go (default docs/bench)
  --peers DIR     the peers folder (default ../shared/peers beside the checkout)
  --scratch DIR   where the peers are copied and built (default
                  \${TMPDIR:-/tmp}/capstore-bench-\$(id -u)); reused by later runs
  --no-scaling    skip the extra sweep_few runs at N=10^4 and N=10^6
  --large N2      every round also runs the lookup, publish and promote
                  workloads of capstore and the Rust seed at N2 (default
                  1000000; lookup_batch is checked there against the seed's
                  lookup_hit)
  --no-large      skip those runs
  --no-rss        skip the memory-per-blob run (peak RSS of
                  capstore bench --only publish --n 1000000, by /usr/bin/time)
  --no-readme     do not refresh the table between the bench markers of README.md

Needs: cargo (Rust >= 1.88; ~/.cargo/bin is searched) with Debian's
librust-hashbrown-dev librust-spin-dev librust-sha2-dev, node 20 + npm, and
gnuplot (gnuplot-nox) for the chart. As root, missing Debian packages are
installed with apt-get; otherwise the script says what to install. A peer that
cannot be built is left out of the report (its columns read n/a) and the
script exits 1 after writing it.
EOF
}

die_usage() { echo "bench/report.sh: $*" >&2; echo "(bench/report.sh --help for more)" >&2; exit 2; }
say() { echo "report: $*" >&2; }
warn() { echo "report: WARNING: $*" >&2; WARNINGS+=("$*"); }

N=100000
N_SET=0
REPS=3
REPS_SET=0
QUICK=0
CAPSTORE=""
OUT=""
PEERS="$ROOT/../shared/peers"
SCRATCH="${TMPDIR:-/tmp}/capstore-bench-$(id -u)"
SCALING=1
LARGE=1000000
LARGE_SET=0
RSS=1
README_UPDATE=1
WARNINGS=()

while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --n)
        [ $# -ge 2 ] || die_usage "--n needs a value"
        [[ "$2" =~ ^[1-9][0-9]*$ ]] || die_usage "--n wants a positive integer, got '$2'"
        N=$2; N_SET=1; shift 2 ;;
    --reps)
        [ $# -ge 2 ] || die_usage "--reps needs a value"
        [[ "$2" =~ ^[1-9][0-9]?$ ]] || die_usage "--reps wants an integer in 1..99, got '$2'"
        REPS=$2; REPS_SET=1; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --capstore) [ $# -ge 2 ] || die_usage "--capstore needs a value"; CAPSTORE=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die_usage "--out needs a value"; OUT=$2; shift 2 ;;
    --peers) [ $# -ge 2 ] || die_usage "--peers needs a value"; PEERS=$2; shift 2 ;;
    --scratch) [ $# -ge 2 ] || die_usage "--scratch needs a value"; SCRATCH=$2; shift 2 ;;
    --no-scaling) SCALING=0; shift ;;
    --large)
        [ $# -ge 2 ] || die_usage "--large needs a value"
        [[ "$2" =~ ^[1-9][0-9]*$ ]] || die_usage "--large wants a positive integer, got '$2'"
        LARGE=$2; LARGE_SET=1; shift 2 ;;
    --no-large) LARGE=0; shift ;;
    --no-rss) RSS=0; shift ;;
    --no-readme) README_UPDATE=0; shift ;;
    *) die_usage "unknown argument '$1'" ;;
    esac
done

# Sizes. The JS peer's publish/cnode_hash and data_hash have their own sizes
# (defaults 20000 CNodes and 256 pages: @chainsafe/ssz is slow enough that
# larger ones only lengthen the run); it reports per-op times, so the ratios
# stay comparable.
JS_ARGS=()
SCALE_SMALL=10000
SCALE_LARGE=1000000
if [ "$QUICK" = 1 ]; then
    [ "$N_SET" = 1 ] || N=2000
    [ "$REPS_SET" = 1 ] || REPS=1
    JS_ARGS=(--publish-n 2000 --pages 16 --min-ms 20)
    SCALE_SMALL=1000
    SCALE_LARGE=10000
    [ "$LARGE_SET" = 1 ] || [ "$LARGE" = 0 ] || LARGE=10000
    RSS=0
    README_UPDATE=0
    [ -n "$OUT" ] || OUT="$SCRATCH/quick"
fi
[ -n "$OUT" ] || OUT="$ROOT/docs/bench"
# README.md is refreshed only for the real report in docs/bench.
[ "$(cd "$(dirname "$OUT")" 2>/dev/null && pwd)/$(basename "$OUT")" = "$ROOT/docs/bench" ] || README_UPDATE=0

mkdir -p "$SCRATCH" "$OUT"
SCRATCH=$(cd "$SCRATCH" && pwd)
OUT=$(cd "$OUT" && pwd)
RAW="$SCRATCH/raw"
rm -rf "$RAW" && mkdir -p "$RAW"
: >"$RAW/capstore.txt"
: >"$RAW/rust.txt"
: >"$RAW/js.txt"
: >"$RAW/scaling.txt"
: >"$RAW/ratios.txt"
: >"$RAW/rss.txt"

is_root() { [ "$(id -u)" = 0 ]; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# apt_need WHAT PKG...: install missing Debian packages as root; else say what
# to install. Returns 1 when something is still missing.
apt_need() {
    local what=$1; shift
    local missing=() p
    command -v dpkg-query >/dev/null 2>&1 || return 0 # not Debian: let the build speak
    for p in "$@"; do have_pkg "$p" || missing+=("$p"); done
    [ ${#missing[@]} = 0 ] && return 0
    if is_root && command -v apt-get >/dev/null 2>&1; then
        say "installing ${missing[*]} (for $what)"
        if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$SCRATCH/apt.log" 2>&1; then
            return 0
        fi
        warn "apt-get install ${missing[*]} failed (see $SCRATCH/apt.log)"
        return 1
    fi
    warn "$what needs: apt-get install -y ${missing[*]}"
    return 1
}

# copy_peer NAME: a writable copy of PEERS/NAME in SCRATCH, refreshed when the
# sources changed (build output and node_modules are kept for reuse).
copy_peer() {
    local src="$PEERS/$1" dst="$SCRATCH/$1"
    [ -d "$src" ] || { warn "no peer $src"; return 1; }
    if [ -d "$dst" ] && diff -rq -x target -x Cargo.lock -x node_modules "$src" "$dst" >/dev/null 2>&1; then
        return 0
    fi
    local keep=""
    [ -d "$dst/target" ] && keep="$SCRATCH/.$1-target" && rm -rf "$keep" && mv "$dst/target" "$keep"
    rm -rf "$dst"
    cp -r "$src" "$dst"
    chmod -R u+w "$dst" # ../shared is read-only; cargo and npm write beside the sources
    [ -n "$keep" ] && mv "$keep" "$dst/target"
    return 0
}

# --- capstore --------------------------------------------------------------------------------
if [ -z "$CAPSTORE" ]; then
    BUILD="$ROOT/build"
    say "building capstore in $BUILD (RelWithDebInfo)"
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$SCRATCH/cmake.log" 2>&1 ||
            { cat "$SCRATCH/cmake.log" >&2; exit 1; }
    fi
    cmake --build "$BUILD" -j2 --target capstore_cli >"$SCRATCH/build.log" 2>&1 ||
        { tail -n 30 "$SCRATCH/build.log" >&2; exit 1; }
    if grep -Eq '^CMAKE_BUILD_TYPE:[A-Z]+=Debug$|^CAPSTORE_SANITIZE:[A-Z]+=.+$' "$BUILD/CMakeCache.txt"; then
        warn "$BUILD is a Debug or sanitizer build: its figures mean little"
    fi
    CAPSTORE="$BUILD/capstore"
fi
[ -x "$CAPSTORE" ] || { echo "bench/report.sh: no capstore binary at $CAPSTORE" >&2; exit 1; }

# --- build the peers (before any timing, so the runs are back to back) -----------------------
RUST_BIN=""
CARGO=""
if [ -x "$HOME/.cargo/bin/cargo" ]; then CARGO="$HOME/.cargo/bin/cargo"; elif command -v cargo >/dev/null 2>&1; then CARGO=$(command -v cargo); fi
if [ -z "$CARGO" ]; then
    warn "no cargo (Rust >= 1.88; rustup installs it in ~/.cargo/bin): the Rust seed peer is left out"
elif apt_need "the Rust seed peer" librust-hashbrown-dev librust-spin-dev librust-sha2-dev && copy_peer rust-seed; then
    say "building the Rust seed peer in $SCRATCH/rust-seed (cargo build --release)"
    if (cd "$SCRATCH/rust-seed" && "$CARGO" build --release) >"$SCRATCH/rust-build.log" 2>&1; then
        RUST_BIN="$SCRATCH/rust-seed/target/release/rust-seed-bench"
    else
        tail -n 20 "$SCRATCH/rust-build.log" >&2
        warn "the Rust seed peer did not build (see $SCRATCH/rust-build.log)"
    fi
fi

JS_DIR=""
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    warn "no node/npm (Node 20): the JS peers are left out"
elif copy_peer ssz-js; then
    if [ ! -d "$SCRATCH/ssz-js/node_modules" ] || [ "$SCRATCH/ssz-js/package-lock.json" -nt "$SCRATCH/ssz-js/node_modules" ]; then
        say "installing the JS peer's packages in $SCRATCH/ssz-js (npm ci)"
        if (cd "$SCRATCH/ssz-js" && npm ci --no-audit --no-fund) >"$SCRATCH/npm.log" 2>&1; then
            JS_DIR="$SCRATCH/ssz-js"
        else
            tail -n 20 "$SCRATCH/npm.log" >&2
            warn "npm ci failed for the JS peer (see $SCRATCH/npm.log)"
        fi
    else
        JS_DIR="$SCRATCH/ssz-js"
    fi
fi

# --- run everything back to back -------------------------------------------------------------
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
# The workloads rerun at N2 (--large): issue 15 wants no single operation
# behind the seed at 10^5 and 10^6, and lookup_batch checked at 10^6.
LARGE_ONLY=lookup_hit,lookup_batch,lookup_miss,publish,publish_batch,promote_cow,lookup_mt
LARGE_RUST=lookup_hit,lookup_miss,publish,promote_cow,lookup_mt
: >"$RAW/capstore_large.passes"
: >"$RAW/rust_large.passes"
# The three take turns, one whole pass each per round (the JS suite first:
# it opens with hashtree's node_hash, the foundation's yardstick, right
# before capstore's node_hash), so that all see the same phases of a machine
# whose speed drifts; each line is then the median of its passes.
: >"$RAW/capstore.passes"
: >"$RAW/rust.passes"
: >"$RAW/js.passes"
: >"$SCRATCH/rust-run.log"
: >"$SCRATCH/js-run.log"
for round in $(seq "$REPS"); do
    if [ -n "$JS_DIR" ]; then
        say "node bench-peers.mjs --n $N ${JS_ARGS[*]} (pass $round of $REPS)"
        (cd "$JS_DIR" && node bench-peers.mjs --n "$N" "${JS_ARGS[@]}") \
            >>"$RAW/js.passes" 2>>"$SCRATCH/js-run.log" ||
            warn "bench-peers.mjs failed (see $SCRATCH/js-run.log)"
    fi
    say "capstore bench --n $N (pass $round of $REPS)"
    # (--db: the persistence workloads' scratch databases go in $SCRATCH)
    "$CAPSTORE" bench --n "$N" --db "$SCRATCH/bench.lmdb" >>"$RAW/capstore.passes" ||
        warn "capstore bench exited non-zero"
    if [ -n "$RUST_BIN" ]; then
        say "rust-seed-bench --n $N (pass $round of $REPS)"
        "$RUST_BIN" --n "$N" >>"$RAW/rust.passes" 2>>"$SCRATCH/rust-run.log" ||
            warn "rust-seed-bench failed (see $SCRATCH/rust-run.log)"
    fi
    if [ "$LARGE" != 0 ]; then
        say "capstore bench --n $LARGE --only $LARGE_ONLY (pass $round of $REPS)"
        "$CAPSTORE" bench --n "$LARGE" --only "$LARGE_ONLY" >>"$RAW/capstore_large.passes" ||
            warn "capstore bench --n $LARGE exited non-zero"
        if [ -n "$RUST_BIN" ]; then
            say "rust-seed-bench --n $LARGE --only $LARGE_RUST (pass $round of $REPS)"
            "$RUST_BIN" --n "$LARGE" --only "$LARGE_RUST" >>"$RAW/rust_large.passes" \
                2>>"$SCRATCH/rust-run.log" || warn "rust-seed-bench --n $LARGE failed"
        fi
    fi
done
# Median per (workload, engine: the rest of the line), in the order first seen.
medians() {
    awk '{ e = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", e); k = $1 " " e
           if (!(k in n)) { order[++m] = k; name[k] = $1; eng[k] = e; ops[k] = $2 }
           v[k, ++n[k]] = $3 + 0 }
         END { for (i = 1; i <= m; i++) { k = order[i]; c = n[k]
                   for (a = 1; a <= c; a++) s[a] = v[k, a]
                   for (a = 2; a <= c; a++) for (b = a; b > 1 && s[b - 1] > s[b]; b--) { t = s[b]; s[b] = s[b - 1]; s[b - 1] = t }
                   med = c % 2 ? s[(c + 1) / 2] : (s[c / 2] + s[c / 2 + 1]) / 2
                   printf "%s %s %.1f %s\n", name[k], ops[k], med, eng[k] } }' "$1"
}
medians "$RAW/capstore.passes" >"$RAW/capstore.txt"
# For a ratio of two capstore workloads (publish / cnode_hash, lookup_hit /
# lookup_mt): the median of the ratios within each pass, which the machine's
# drift between passes does not enter.
paired_median() {
    awk -v a="$2" -v b="$3" '$1 == a { x[++na] = $3 + 0 } $1 == b { y[++nb] = $3 + 0 }
        END { n = na < nb ? na : nb; k = 0
              for (i = 1; i <= n; i++) if (y[i] > 0) r[++k] = x[i] / y[i]
              for (i = 2; i <= k; i++) for (j = i; j > 1 && r[j - 1] > r[j]; j--) { t = r[j]; r[j] = r[j - 1]; r[j - 1] = t }
              if (k) printf "%.4f", k % 2 ? r[(k + 1) / 2] : (r[k / 2] + r[k / 2 + 1]) / 2 }' "$1"
}
PUBLISH_OVER_CNODE=$(paired_median "$RAW/capstore.passes" publish cnode_hash)
HIT_OVER_MT=$(paired_median "$RAW/capstore.passes" lookup_hit lookup_mt)
medians "$RAW/rust.passes" >"$RAW/rust.txt"
if [ -n "$JS_DIR" ]; then medians "$RAW/js.passes" >"$RAW/js.txt"; fi
PUBLISH_BATCH_OVER_CNODE=$(paired_median "$RAW/capstore.passes" publish_batch cnode_hash)
SETTLE_OVER_MT=$(paired_median "$RAW/capstore.passes" settle_tree settle_tree_mt)
# A ratio to the Rust seed: the median of the per-round ratios (round k's
# seed figure over round k's capstore figure), which the machine's drift
# between rounds does not enter. Lines "ratio KEY VALUE" for the report;
# KEY is the capstore workload, with @N2 for the large runs.
# cross_median CAPSTORE_PASSES RUST_PASSES CAPSTORE_NAME RUST_NAME KEY
cross_median() {
    awk -v a="$3" -v b="$4" -v key="$5" 'FNR == 1 { f++ }
        f == 1 && $1 == a { x[++na] = $3 + 0 } f == 2 && $1 == b { y[++nb] = $3 + 0 }
        END { n = na < nb ? na : nb; k = 0
              for (i = 1; i <= n; i++) if (x[i] > 0) r[++k] = y[i] / x[i]
              for (i = 2; i <= k; i++) for (j = i; j > 1 && r[j - 1] > r[j]; j--) { t = r[j]; r[j] = r[j - 1]; r[j - 1] = t }
              if (k) printf "ratio %s %.4f\n", key, k % 2 ? r[(k + 1) / 2] : (r[k / 2] + r[k / 2 + 1]) / 2 }' "$1" "$2"
}
# Per-round ratio lines of every workload both ran, and of the batch
# workloads against the seed's single-operation equivalents.
if [ -n "$RUST_BIN" ]; then
    for w in $(awk '{ print $1 }' "$RAW/capstore.txt"); do
        case $w in
        publish_batch) rw=publish ;; settle_tree_mt) rw=settle_tree ;; lookup_batch) rw=lookup_hit ;;
        *) rw=$w ;;
        esac
        grep -q "^$rw " "$RAW/rust.txt" && cross_median "$RAW/capstore.passes" "$RAW/rust.passes" "$w" "$rw" "$w" >>"$RAW/ratios.txt"
    done
    if [ "$LARGE" != 0 ]; then
        for w in $(echo "$LARGE_ONLY" | tr , ' '); do
            case $w in publish_batch) rw=publish ;; lookup_batch) rw=lookup_hit ;; *) rw=$w ;; esac
            cross_median "$RAW/capstore_large.passes" "$RAW/rust_large.passes" "$w" "$rw" "$w@$LARGE" >>"$RAW/ratios.txt"
        done
    fi
fi
if [ "$LARGE" != 0 ]; then
    medians "$RAW/capstore_large.passes" | sed "s/^\([^ ]*\) /\1@$LARGE /" >"$RAW/capstore_large.txt"
    medians "$RAW/rust_large.passes" | sed "s/^\([^ ]*\) /\1@$LARGE /" >"$RAW/rust_large.txt"
else
    : >"$RAW/capstore_large.txt"
    : >"$RAW/rust_large.txt"
fi
# Memory per published blob: peak RSS of publish at 10^6 over 10^6.
if [ "$RSS" = 1 ]; then
    if [ -x /usr/bin/time ]; then
        say "capstore bench --only publish --n 1000000 under /usr/bin/time (peak RSS)"
        if /usr/bin/time -f "%M" -o "$SCRATCH/rss.out" "$CAPSTORE" bench --only publish --n 1000000 >/dev/null; then
            awk '{ printf "rss publish 1000000 %.4f\n", $1 / 1000000 }' "$SCRATCH/rss.out" >"$RAW/rss.txt"
        else
            warn "the peak-RSS run failed"
        fi
    else
        warn "no /usr/bin/time: no memory-per-blob figure"
    fi
fi
if [ "$SCALING" = 1 ]; then
    for n in "$SCALE_SMALL" "$SCALE_LARGE"; do
        say "capstore bench --only sweep_few --n $n"
        "$CAPSTORE" bench --only sweep_few --n "$n" | sed 's/^/scale /' >>"$RAW/scaling.txt" ||
            warn "capstore bench sweep_few --n $n failed"
    done
fi

# --- machine and build facts -----------------------------------------------------------------
CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
[ -n "$CPU" ] || CPU=unknown
SHA_NI=no
grep -qw sha_ni /proc/cpuinfo 2>/dev/null && SHA_NI=yes
CORES=$(nproc 2>/dev/null || echo "?")
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || echo "?")
KERNEL=$(uname -sr)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && COMMIT="$COMMIT (with uncommitted changes)"
VERSION=$("$CAPSTORE" --version 2>/dev/null || echo capstore)
RUSTC="n/a"
[ -n "$RUST_BIN" ] && RUSTC=$("$(dirname "$CARGO")/rustc" --version 2>/dev/null || rustc --version 2>/dev/null || echo "?")
NODE="n/a"
[ -n "$JS_DIR" ] && NODE="node $(node --version)"
LOAD=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

# --- the report ------------------------------------------------------------------------------
MODE="full run"
[ "$QUICK" = 1 ] && MODE="QUICK SMOKE RUN (--quick): figures are not meaningful"
{
    sed 's/^/capstore /' "$RAW/capstore.txt"
    sed 's/^/rust /' "$RAW/rust.txt"
    sed 's/^/capstore /' "$RAW/capstore_large.txt"
    sed 's/^/rust /' "$RAW/rust_large.txt"
    sed 's/^/js /' "$RAW/js.txt"
    cat "$RAW/scaling.txt" "$RAW/ratios.txt" "$RAW/rss.txt"
} | awk -f "$HERE/report_md.awk" \
    -v n="$N" -v reps="$REPS" -v mode="$MODE" -v date="$STARTED" -v cpu="$CPU" -v sha_ni="$SHA_NI" -v cores="$CORES" \
    -v mem="$MEM" -v kernel="$KERNEL" -v commit="$COMMIT" -v version="$VERSION" -v rustc="$RUSTC" \
    -v node="$NODE" -v load="$LOAD" -v js_args="${JS_ARGS[*]}" -v scale_small="$SCALE_SMALL" \
    -v scale_large="$SCALE_LARGE" -v dat="$SCRATCH/ratios.dat" -v summary="$SCRATCH/summary.md" \
    -v publish_over_cnode="$PUBLISH_OVER_CNODE" -v hit_over_mt="$HIT_OVER_MT" \
    -v publish_batch_over_cnode="$PUBLISH_BATCH_OVER_CNODE" -v settle_over_mt="$SETTLE_OVER_MT" \
    -v large="$LARGE" \
    >"$OUT/results.md"

# --- the chart -------------------------------------------------------------------------------
rm -f "$OUT/ratios.png" # never leave an older run's chart beside this report
if ! command -v gnuplot >/dev/null 2>&1; then apt_need "the chart" gnuplot-nox || true; fi
if ! grep -qv '^#' "$SCRATCH/ratios.dat" 2>/dev/null; then
    warn "no peer figures to chart: no ratios.png"
elif command -v gnuplot >/dev/null 2>&1; then
    # gnuplot strings are single-quoted: keep quotes out of the subtitle.
    SUBTITLE="$CPU, $CORES cores, $STARTED, N=$N"
    [ "$QUICK" = 1 ] && SUBTITLE="$SUBTITLE (quick smoke run)"
    SUBTITLE=$(printf '%s' "$SUBTITLE" | tr -d "'\\\\")
    if gnuplot -e "datafile='$SCRATCH/ratios.dat'; outfile='$OUT/ratios.png'; subtitle='$SUBTITLE'" \
        "$HERE/report_chart.gp" 2>"$SCRATCH/gnuplot.log"; then
        say "wrote $OUT/ratios.png"
    else
        cat "$SCRATCH/gnuplot.log" >&2
        warn "gnuplot failed: no chart"
    fi
else
    warn "no gnuplot: no chart (apt-get install -y gnuplot-nox, then rerun)"
fi

if [ ${#WARNINGS[@]} -gt 0 ]; then
    {
        echo
        echo "## Warnings from this run"
        echo
        for w in "${WARNINGS[@]}"; do echo "- $w"; done
    } >>"$OUT/results.md"
fi
{
    echo
    regen="bench/report.sh"
    [ "$QUICK" = 1 ] && regen="$regen --quick"
    [ "$N_SET" = 1 ] && regen="$regen --n $N"
    echo "Regenerate: \`$regen\`."
    echo
    echo "<details><summary>Raw output of this run</summary>"
    for f in capstore rust capstore_large rust_large js scaling ratios rss; do
        echo
        echo "\`$f\`:"
        echo
        echo '```'
        cat "$RAW/$f.txt"
        echo '```'
    done
    echo
    echo "</details>"
} >>"$OUT/results.md"
say "wrote $OUT/results.md"

# --- README.md: the table between the bench markers ------------------------------------------
if [ "$README_UPDATE" = 1 ] && grep -q '^<!-- bench:begin -->$' "$ROOT/README.md" &&
    grep -q '^<!-- bench:end -->$' "$ROOT/README.md"; then
    awk -v summary="$SCRATCH/summary.md" '
        /^<!-- bench:begin -->$/ { print; while ((getline l < summary) > 0) print l; skip = 1; next }
        /^<!-- bench:end -->$/ { skip = 0 }
        !skip { print }' "$ROOT/README.md" >"$SCRATCH/README.new"
    cat "$SCRATCH/README.new" >"$ROOT/README.md"
    say "refreshed the Benchmarks table in README.md"
fi

if [ ${#WARNINGS[@]} -gt 0 ]; then
    say "finished with ${#WARNINGS[@]} warning(s): see the end of $OUT/results.md"
    exit 1
fi
exit 0
