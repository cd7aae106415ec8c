# SPDX-License-Identifier: MIT OR Apache-2.0
# bench/report_md.awk — the markdown report of bench/report.sh.
#
# Input: benchmark lines "<name> <ops> <ns_per_op> <impl...>" (spec §6), each
# prefixed with its source: capstore, rust, js, or scale (the extra sweep_few
# runs); a name ending in @N2 is a run at the large N (--large). Also
# "ratio KEY VALUE" (the median of the per-round ratios seed / capstore of
# workload KEY, preferred to the ratio of the medians) and "rss publish N
# KB_PER_BLOB". Variables (-v): n reps mode date cpu sha_ni cores mem kernel
# commit version rustc node load js_args scale_small scale_large large
# publish_over_cnode hit_over_mt publish_batch_over_cnode settle_over_mt
# (medians of per-pass ratios; may be empty), and the files it also writes:
# dat (gnuplot data: workload, rust/capstore, js/capstore) and summary (the
# table README.md shows). Writes results.md on stdout. POSIX awk (mawk).

function num(x) { return x + 0 }
function has(a, k) { return (k in a) && a[k] != "" }
function fmt_ns(x) {
    if (x == "") return "n/a"
    if (x < 10) return sprintf("%.2f", x)
    if (x < 100000) return sprintf("%.1f", x)
    return sprintf("%.0f", x)
}
function fmt_ratio(x) {
    if (x == "") return "n/a"
    if (x >= 100) return sprintf("%.0fx", x)
    if (x >= 10) return sprintf("%.1fx", x)
    return sprintf("%.2fx", x)
}
function ratio(a, b) { return (a == "" || b == "" || num(b) == 0) ? "" : num(a) / num(b) }

# add_target(row, text, value, op, thr, what): one target of the issues;
# `value` is the measured ratio ("" when not measured), op "<=" or ">=".
function add_target(row, text, value, op, thr, what,   ok) {
    nt++
    t_row[nt] = row; t_text[nt] = text; t_value[nt] = value; t_op[nt] = op; t_thr[nt] = thr; t_what[nt] = what
    if (value == "") ok = "n/a"
    else if (op == "<=") ok = (num(value) <= thr) ? "yes" : "**NO**"
    else ok = (num(value) >= thr) ? "yes" : "**NO**"
    t_ok[nt] = ok
    if (ok == "yes") met++
    else if (ok == "n/a") unmeasured++
    else missed++
    row_targets[row] = row_targets[row] (row_targets[row] == "" ? "" : "; ") text
    row_met[row] = row_met[row] (row_met[row] == "" ? "" : "; ") ok
}

# The seed's single-operation equivalent of a batch workload.
function equiv(w,   base, at) {
    at = index(w, "@"); base = at ? substr(w, 1, at - 1) : w
    if (base == "publish_batch") base = "publish"
    else if (base == "lookup_batch") base = "lookup_hit"
    else if (base == "settle_tree_mt") base = "settle_tree"
    return at ? base substr(w, at) : base
}
function seed_ratio(w) { return (w in PR) ? PR[w] : ratio(R_ns[equiv(w)], C_ns[w]) }

$1 == "ratio" { PR[$2] = $3; next }
$1 == "rss" { RSS_KB = $4; next }
{
    src = $1; name = $2; ops = $3; ns = $4
    impl = ""
    for (i = 5; i <= NF; i++) impl = impl (i > 5 ? " " : "") $i
    if (NF < 4 || ns !~ /^[0-9.]+$/) next
    if (src == "capstore") {
        if (!(name in C_ns)) corder[++nc] = name
        C_ns[name] = ns; C_ops[name] = ops; C_eng[name] = impl
    } else if (src == "rust") {
        R_ns[name] = ns; R_ops[name] = ops
    } else if (src == "js") {
        nj++
        j_name[nj] = name; j_impl[nj] = impl; j_ops[nj] = ops; j_ns[nj] = ns
        if (!(name in JB_ns) || num(ns) < num(JB_ns[name])) { JB_ns[name] = ns; JB_impl[name] = impl }
    } else if (src == "scale") {
        if (num(ops) == num(scale_small)) S_small = ns
        if (num(ops) == num(scale_large)) S_large = ns
    }
}

# The JS line of a workload whose impl starts with `prefix`.
function js_line(name, prefix,   i) {
    for (i = 1; i <= nj; i++)
        if (j_name[i] == name && index(j_impl[i], prefix) == 1) return j_ns[i]
    return ""
}

END {
    ht_node = js_line("node_hash", "hashtree.hashInto")
    ssz_ht_cnode = js_line("cnode_hash", "@chainsafe/ssz(hashtree)")

    # --- the issues' targets (issues 2, 3, 4, 6 and the spec) ---
    add_target("node_hash", "<= 0.8x hashtree", ratio(C_ns["node_hash"], ht_node), "<=", 0.8,
               "capstore node_hash / hashtree.hashInto node_hash")
    add_target("cnode_hash", ">= 30x faster than @chainsafe/ssz(hashtree)", ratio(ssz_ht_cnode, C_ns["cnode_hash"]),
               ">=", 30, "@chainsafe/ssz(hashtree) cnode_hash / capstore cnode_hash")
    add_target("data_hash", "<= 1.0x 127 hashtree nodes per page",
               (has(C_ns, "data_hash") && ht_node != "") ? num(C_ns["data_hash"]) / (127 * num(ht_node)) : "",
               "<=", 1.0, "capstore data_hash per page / (127 x hashtree node_hash)")
    # Issue 15: no single operation behind the seed (lookup_miss 1.2x), at N
    # and at the large N; lookup_batch 3x the seed's lookup_hit at the large N;
    # settle_tree_mt 3.3x the seed's settle_tree. Ratios: medians of the
    # per-round ratios where report.sh gives them.
    for (i = 1; i <= nc; i++) {
        w = corder[i]
        e = equiv(w)
        if (!(e in R_ns)) continue
        base = w; sub(/@.*/, "", base)
        if (base == "publish_batch" || (base == "lookup_batch" && w !~ /@/)) continue
        thr = 1
        if (base == "lookup_miss") thr = 1.2
        if (base == "lookup_batch") thr = 3
        if (base == "settle_tree_mt") thr = 3.3
        add_target(w, ">= " thr "x faster than rust-seed" (e != w ? " " e : ""), seed_ratio(w), ">=", thr,
                   "rust-seed " e " / capstore " w ", median of the per-round ratios")
    }
    add_target("publish_batch", "<= 0.7x own cnode_hash", publish_batch_over_cnode, "<=", 0.7,
               "capstore publish_batch / capstore cnode_hash, median of the passes' ratios")
    add_target("settle_tree_mt", ">= 1.25x own settle_tree", settle_over_mt, ">=", 1.25,
               "capstore settle_tree / capstore settle_tree_mt, median of the passes' ratios")
    # Two workloads of capstore's own suite: the median of their ratios within
    # each pass when report.sh gives it, else the ratio of the medians.
    paired = hit_over_mt != "" ? hit_over_mt : ratio(C_ns["lookup_hit"], C_ns["lookup_mt"])
    add_target("lookup_mt", ">= 1.7x own lookup_hit rate", paired, ">=", 1.7,
               "capstore lookup_hit ns/op / lookup_mt ns/op (aggregate rate ratio), median of the passes' ratios")
    paired = publish_over_cnode != "" ? publish_over_cnode : ratio(C_ns["publish"], C_ns["cnode_hash"])
    add_target("publish", "<= 1.2x cnode_hash", paired, "<=", 1.2,
               "capstore publish / capstore cnode_hash, median of the passes' ratios")
    add_target("sweep_few", "N=" scale_large " within 2x of N=" scale_small, ratio(S_large, S_small), "<=", 2,
               "sweep_few ns/call at N=" scale_large " / at N=" scale_small)
    add_target("persist_get_cold", "<= 2x persist_get_essential",
               ratio(C_ns["persist_get_cold"], C_ns["persist_get_essential"]), "<=", 2,
               "capstore persist_get_cold / lmdb persist_get_essential")

    # --- header ---
    print "# capstore benchmark report"
    print ""
    print "Generated by `bench/report.sh` (" mode "), " date "."
    print ""
    machine = "**Machine:** " cpu " (SHA-NI: " sha_ni "), " cores " cores, " mem ", " kernel \
              "; load average at the end " load ". **Build:** " version ", commit " commit \
              "; peers: rust-seed (" rustc "), ssz-js (" node ")."
    print machine
    print ""
    print "All figures come from one run, N = " n " unless the ops column says otherwise. The JS"
    print "peers, capstore and the Rust seed took turns running their whole suite, " reps " round" (reps == 1 ? "" : "s")
    print "(`--reps " reps "`; the JS suite opens with hashtree's node_hash, right before"
    print "capstore's); every figure is the median of its passes, and a ratio of two capstore"
    print "workloads (publish / cnode_hash, lookup_hit / lookup_mt) the median of the passes' ratios."
    print "A ratio is peer ns/op divided by capstore ns/op: above 1 capstore is faster. The ssz-js"
    print "column is the fastest JS line of that workload (all of them are listed below)."
    print ""

    # --- the main table ---
    hdr = "| workload | ops | capstore ns/op | rust-seed ns/op | rust-seed / capstore | ssz-js ns/op | ssz-js / capstore | target | met |"
    sep = "|---|---:|---:|---:|---:|---:|---:|---|---|"
    print "## Results"
    print ""
    print hdr
    print sep
    table = hdr "\n" sep "\n"
    print "# workload rust/capstore js/capstore" > dat
    for (i = 1; i <= nc; i++) {
        w = corder[i]
        label = w
        if (C_eng[w] != "capstore" && C_eng[w] != "") label = w " (" C_eng[w] " baseline)"
        e = equiv(w)
        rr = has(R_ns, e) ? seed_ratio(w) : ""
        jr = ratio(JB_ns[w], C_ns[w])
        rust_cell = has(R_ns, e) ? fmt_ns(R_ns[e]) (e != w ? " (" e ")" : "") (R_ops[e] != C_ops[w] ? " (ops " R_ops[e] ")" : "") : "n/a"
        js_cell = has(JB_ns, w) ? fmt_ns(JB_ns[w]) : "n/a"
        line = "| " label " | " C_ops[w] " | " fmt_ns(C_ns[w]) " | " rust_cell " | " fmt_ratio(rr) " | " \
               js_cell " | " fmt_ratio(jr) " | " row_targets[w] " | " row_met[w] " |"
        print line
        table = table line "\n"
        if (rr != "" || jr != "")
            printf "%s %s %s\n", w, (rr == "" ? "?" : sprintf("%.4g", rr)), (jr == "" ? "?" : sprintf("%.4g", jr)) > dat
    }
    close(dat)
    print ""
    tally = "Targets met: " met " of " (met + missed + unmeasured) (missed ? ", missed: " missed : "") \
            (unmeasured ? ", not measured: " unmeasured : "") "."
    print tally
    print ""

    # --- targets in detail ---
    print "## Targets"
    print ""
    print "| workload | target | measured | what is compared | met |"
    print "|---|---|---:|---|---|"
    for (i = 1; i <= nt; i++)
        print "| " t_row[i] " | " t_text[i] " | " fmt_ratio(t_value[i]) " | " t_what[i] " | " t_ok[i] " |"
    print ""
    print "- The rust-seed `sweep_few` runs at most 20000 calls over as many live instances (its"
    print "  sweep scans every instance, so the workload is quadratic); capstore's runs N calls over N"
    print "  live instances. Its ratio is per call, which favours the peer when N > 20000."
    print "- `sweep_few` scaling: extra runs `capstore bench --only sweep_few --n " scale_small "` and `--n " scale_large "`" \
          " (ns per call: " fmt_ns(S_small) " and " fmt_ns(S_large) ")."
    print "- `data_hash`: a 4096-byte page is 127 node hashes (64 + 32 + ... + 1), so the bound is 127"
    print "  times hashtree's batched node time per page."
    print "- The batch workloads (issue 15) are compared with the seed's single-operation"
    print "  equivalents: `publish_batch` with `publish`, `lookup_batch` with `lookup_hit` (its target"
    print "  at N = " large "), `settle_tree_mt` (two threads: the caller and one worker) with `settle_tree`."
    print "  Rows named `workload@" large "` ran at N = " large " in every round (`--large`)."
    if (RSS_KB != "")
        print "- Memory per published blob: peak RSS of `capstore bench --only publish --n 1000000` / 10^6 = " \
              sprintf("%.3f", RSS_KB) " KB (issue 15: at most 1.02x the build before it, measured beside it)."
    print ""

    # --- every JS line ---
    if (nj) {
        print "## ssz-js lines"
        print ""
        print "`node bench-peers.mjs --n " n (js_args != "" ? " " js_args : "") "` (publish and cnode_hash use the peer's"
        print "`--publish-n` CNodes and data_hash its `--pages` pages; per-op figures are comparable)."
        print ""
        print "| workload | implementation | ops | ns/op | ns/op / capstore's |"
        print "|---|---|---:|---:|---:|"
        for (i = 1; i <= nj; i++)
            print "| " j_name[i] " | " j_impl[i] " | " j_ops[i] " | " fmt_ns(j_ns[i]) " | " fmt_ratio(ratio(j_ns[i], C_ns[j_name[i]])) " |"
        print ""
    }

    # --- what README.md shows ---
    print "_" mode "; " date "._ " machine "\n" > summary
    printf "%s", table > summary
    print "\n" tally " Details, every JS line and the targets compared: [docs/bench/results.md](docs/bench/results.md)." > summary
    close(summary)
}
