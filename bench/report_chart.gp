# SPDX-License-Identifier: MIT OR Apache-2.0
# bench/report_chart.gp — the ratio chart of bench/report.sh (gnuplot 5).
# Called with -e "datafile='...'; outfile='...'; subtitle='...'"; the data file
# has one line per workload: name, rust-seed/capstore, ssz-js/capstore ("?" when
# that peer has no such workload).
set terminal pngcairo size 1100,560 font "DejaVu Sans,10" noenhanced
set output outfile
set title "Peer time / capstore time per workload (above 1: capstore is faster)\n".subtitle
set datafile missing "?"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
# Ratios span ~0.5x to ~100x: a log axis keeps both ends readable.
set logscale y 10
set yrange [0.1:*]
set ylabel "peer ns/op / capstore ns/op (log scale)"
set xtics rotate by -30 scale 0
set grid ytics
set key top left
# Parity, and the issues' usual bar against the Rust seed (2x).
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 1.5 lc rgb "black"
set arrow from graph 0, first 2 to graph 1, first 2 nohead dt 2 lc rgb "#555555"
set label "parity" at graph 0.995, first 1.08 right font ",8"
set label "2x" at graph 0.995, first 2.16 right font ",8"
plot datafile using 2:xtic(1) title "rust-seed / capstore" lc rgb "#d95f02", \
     '' using 3 title "ssz-js (fastest line) / capstore" lc rgb "#1b9e77"
