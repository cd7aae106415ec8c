#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# capstore encode: bash cli_encode.sh <capstore> <test-data-dir> <work-dir>
set -u
. "$(dirname "$0")/support/cli_common.sh"
H1=1111111111111111111111111111111111111111111111111111111111111111
Z=0000000000000000000000000000000000000000000000000000000000000000

# --- happy path: encode(decode(x)) == x for every positive vector
# (perl, part of every Debian system, turns the hex into files in one pass:
# bash's printf takes seconds on a 64 KiB page.)
count=0
mkdir -p wire
perl -ne 'next if /^#/ || /^\s*$/; my ($n, $h, $x) = split; next if $h eq "reject";
          open(my $f, ">", "wire/$n.bin") or die; print $f ($x eq "-" ? "" : pack("H*", $x))' "$VECTORS" ||
    fail "cannot write the vectors' wire files"
while read -r name hash _; do
    case "$name" in '#'* | '') continue ;; esac
    [ "$hash" = reject ] && continue
    "$CAPSTORE" decode "wire/$name.bin" >x.json 2>err || { fail "decode $name: $(cat err)"; continue; }
    "$CAPSTORE" encode x.json >y.bin 2>err || { fail "encode $name: $(cat err)"; continue; }
    cmp -s "wire/$name.bin" y.bin || fail "round trip of $name is not byte-identical"
    count=$((count + 1))
done <"$VECTORS"
[ "$count" -ge 300 ] || fail "only $count vectors round-tripped"

# hand-written JSON, absent fields taking their defaults, gives the vectors' hashes
check_json() { # check_json VECTOR JSON
    printf '%s' "$2" >in.json
    run 0 "$CAPSTORE" encode -o hw.bin in.json
    run 0 "$CAPSTORE" hash hw.bin
    [ "$(cat out)" = "$(vec_hash "$1")" ] || fail "JSON for $1 hashes to $(cat out)"
}
check_json cnode_sl8_empty '{"kind": "cnode", "size_log": 8}'
check_json type_11_chain "{\"kind\": \"type\", \"image_hash_chain\": \"$H1\"}"
check_json cnode_sl3_slot0_only "{\"kind\":\"cnode\",\"size_log\":3,\"slots\":[{\"slot\":0,\"target\":\"$H1\"}]}"
check_json data_ps4096_no_pages '{"kind": "data"}'
check_json data_ps32_three_empty '{"kind":"data","page_size":32,"pages":[{"state":"empty"},{"state":"empty"},{"state":"empty"}]}'
check_json image_empty_yield_none '{"kind": "image"}'
# u64 as a number or as a decimal string: the same cap
printf '{"kind":"instance","root_cnode":"%s","pc":4096}' "$H1" >n.json
printf '{"kind":"instance","root_cnode":"%s","pc":"4096"}' "$H1" >s.json
run 0 "$CAPSTORE" encode -o n.bin n.json
run 0 "$CAPSTORE" encode -o s.bin s.json
cmp -s n.bin s.bin || fail "pc 4096 and \"4096\" encode differently"
# standard input and stdout
run 0 "$CAPSTORE" encode - <n.json
cmp -s out n.bin || fail "encode of stdin to stdout differs from -o"
run 0 "$CAPSTORE" encode --help
grep_out "usage: capstore encode"

# --- usage errors (exit 2)
run 2 "$CAPSTORE" encode
grep_err "missing FILE"
run 2 "$CAPSTORE" encode n.json s.json
grep_err "too many arguments"
run 2 "$CAPSTORE" encode n.json -o
grep_err "option -o needs a value"
run 2 "$CAPSTORE" encode --hex n.json
grep_err "unknown option"

# --- bad input (exit 1): JSON syntax (line/column) or the field path
bad_json() { # bad_json EXPECTED-STDERR JSON
    printf '%s' "$2" >bad.json
    run 1 "$CAPSTORE" encode -o bad.bin bad.json
    grep_err "$1"
}
bad_json "bad.json: line 2, column" $'{"kind": "cnode",\n "size_log": 8,,}'
bad_json "kind: missing required field" '{"size_log": 8}'
bad_json 'unknown kind "blob"' '{"kind": "blob"}'
bad_json "slotz: unknown field" '{"kind": "cnode", "size_log": 8, "slotz": []}'
bad_json "size_log: " '{"kind": "cnode", "size_log": 17}'
bad_json "slots\[0\].slot: .*out of range" "{\"kind\":\"cnode\",\"size_log\":2,\"slots\":[{\"slot\":4,\"target\":\"$H1\"}]}"
bad_json "slots\[1\].target: " "{\"kind\":\"cnode\",\"size_log\":2,\"slots\":[{\"slot\":0,\"target\":\"$H1\"},{\"slot\":1,\"target\":\"$Z\"}]}"
bad_json "slots\[0\].target: expected a hash" '{"kind":"cnode","size_log":2,"slots":[{"slot":0,"target":"11"}]}'
bad_json "slots\[1\].slot: slot 0 appears twice" "{\"kind\":\"cnode\",\"size_log\":2,\"slots\":[{\"slot\":0,\"target\":\"$H1\"},{\"slot\":0,\"target\":\"$H1\"}]}"
bad_json "page_size: " '{"kind": "data", "page_size": 48}'
bad_json "pages\[1\].bytes: .*expected 32 bytes, got 2" '{"kind":"data","page_size":32,"pages":[{"state":"empty"},{"state":"loaded","bytes":"0102"}]}'
bad_json "pages\[0\].state: " '{"kind":"data","pages":[{"state":"gone"}]}'
bad_json "root_cnode: missing required field" '{"kind": "instance"}'
bad_json "root_cnode: " "{\"kind\": \"instance\", \"root_cnode\": \"$Z\"}"
bad_json "regs: expected 13 values" "{\"kind\":\"instance\",\"root_cnode\":\"$H1\",\"regs\":[1]}"
bad_json "pc: must not be negative" "{\"kind\":\"instance\",\"root_cnode\":\"$H1\",\"pc\":-1}"
bad_json "decimal strings" "{\"kind\":\"instance\",\"root_cnode\":\"$H1\",\"pc\":18446744073709551615}"
bad_json "rw_overlays\[0\].bytes: not a hex digit" "{\"kind\":\"instance\",\"root_cnode\":\"$H1\",\"rw_overlays\":[{\"start\":0,\"bytes\":\"zz\"}]}"
bad_json "mem_size: .*out of range" "{\"kind\":\"instance\",\"root_cnode\":\"$H1\",\"mem_size\":4294967296}"
bad_json "bitmask: image conversion failed" '{"kind": "image", "code": "00112233", "bitmask": ""}'
bad_json "jump_table\[1\]: image conversion failed" '{"kind":"image","code":"00","bitmask":"00","jump_table":[0,1]}'
bad_json "pinned\[1\]: image conversion failed" "{\"kind\":\"image\",\"pinned\":[{\"slot\":2,\"cap_hash\":\"$H1\"},{\"slot\":1,\"cap_hash\":\"$H1\"}]}"
bad_json "mappings\[0\]: image conversion failed" '{"kind":"image","mappings":[{"source_path_len":9}]}'
bad_json "expected a JSON object" '[]'
# strict JSON, as the whole-tree reader was: what yajl alone would let through
bad_json "line 1, column 16: invalid character: form feed" $'{"kind":"type"}\f'
bad_json "line 2, column 1: invalid character: vertical tab" $'{"kind":"type"}\n\v'
bad_json "line 1, column 17: .u0000 is not allowed" '{"kind":"t\u0000"}'
bad_json "line 1, column 12: invalid UTF-8" $'{"kind":"t\xc0\x80"}'
bad_json "line 1, column 17: invalid UTF-8" '{"kind":"t\udc00"}'
bad_json "line 1, column 33: duplicate object key \"pages\"" '{"pages":[],"kind":"data","pages":[]}'
bad_json "line 1, column 47: too big negative integer" '{"kind":"data","page_size":-9223372036854775809}'
bad_json "real number overflow" '{"kind":"data","page_size":1e999}'
bad_json "line 1, column 4: parse error: trailing garbage" '{} x'
bad_json "line 1, column 17: parse error: trailing garbage" '{"kind":"type"} "abc'
bad_json "line 1, column 1: lexical error" '/* a comment */ {"kind":"type"}'
bad_json "parse error: unallowed token" '{"kind":"cnode","slots":[1,]}'
bad_json "no JSON value in the input" $' \n '
printf '%*s' 2049 '' | tr ' ' '[' >deep.json
run 1 "$CAPSTORE" encode -o bad.bin deep.json
grep_err "line 1, column 2049: nested more than 2048 levels deep"
# the page list is read as a stream, yet errors come in the order of the
# fields: an unknown field after the pages before a bad page, a short page
# before a bad one after it
bad_json "x: unknown field" '{"kind":"data","pages":[{"state":"gone"}],"x":1}'
bad_json "pages\[0\].bytes: .*expected 32 bytes, got 1" '{"kind":"data","pages":[{"state":"loaded","bytes":"00"},{"state":"loaded","bytes":"zz"}],"page_size":32}'
bad_json "pages\[1\].bytes: not a hex digit" '{"kind":"data","pages":[{"state":"empty"},{"state":"loaded","bytes":"zz"}],"page_size":32}'
bad_json "pages\[2\]: expected an object, got an integer" '{"kind":"data","page_size":32,"pages":[{"state":"empty"},{"state":"empty"},7,{"state":"gone"}]}'
bad_json "pages: unknown field" '{"kind":"cnode","size_log":3,"pages":[{"state":"empty"}]}'
bad_json "pages: expected an array, got an object" '{"kind":"data","pages":{}}'
[ -e bad.bin ] && fail "encode wrote an output file for bad input"
run 1 "$CAPSTORE" encode no-such-file.json
finish
