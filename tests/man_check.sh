#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The manual page docs/capstore.1 renders without a warning (groff, when
# installed) and says what the command does: every subcommand of
# `capstore --help`, every option of each one's usage, the db actions, the
# exit statuses, the environment, the files, and the command's version.
#
#   bash man_check.sh <capstore> <source-dir> <work-dir>
set -uo pipefail
CAPSTORE=$(realpath "$1") SRC=$(realpath "$2") WORK=$3
PAGE=$SRC/docs/capstore.1
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
status=0
fail() { echo "FAIL: $*"; status=1; }

# The text to search: groff's rendering, else the source with its escapes
# undone (a structural check).
if command -v groff >/dev/null; then
    LC_ALL=C groff -man -Tascii -ww -P-c -P-u -P-b "$PAGE" >page.txt 2>warnings.txt || fail "groff failed"
    [ ! -s warnings.txt ] || fail "groff warns: $(cat warnings.txt)"
    if command -v man >/dev/null; then
        MANWIDTH=80 man -l "$PAGE" >/dev/null 2>man.err || fail "man -l failed: $(cat man.err)"
    fi
    RENDERED=1
    echo "rendered with groff"
else
    sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/^\.[A-Z]* *//' -e 's/"//g' "$PAGE" >page.txt
    RENDERED=0
    echo "groff not installed: checked the source only"
fi

for section in NAME SYNOPSIS DESCRIPTION SUBCOMMANDS DATABASE "EXIT STATUS" ENVIRONMENT FILES "SEE ALSO"; do
    grep -q "^\.SH \"\?$section\"\?\$" "$PAGE" || fail "no section $section"
done
version=$("$CAPSTORE" --version | awk '{ print $2 }')
grep -q "^\.TH CAPSTORE 1 [^ ]* \"capstore $version\"" "$PAGE" || fail "the page is not of capstore $version"

subs=$("$CAPSTORE" --help | awk '/^subcommands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }')
[ -n "$subs" ] || fail "capstore --help lists no subcommands"
for sub in $subs help; do
    grep -Eq "^ +$sub( |\$)" page.txt || fail "no entry for the subcommand $sub"
    # Its options, as its usage lines show them, in its entry (the lines
    # from its tag to the next tag; the whole text without groff).
    if [ "$RENDERED" = 1 ]; then
        awk -v s="$sub" '/^       [^ ]/ { on = ($1 == s) } on' page.txt >entry.txt
    else
        cp page.txt entry.txt
    fi
    opts=$("$CAPSTORE" "$sub" --help 2>/dev/null | awk 'NR == 1 || /^ +capstore / { print; next } { exit }' |
           grep -oE "(^|[[ |])--?[a-z][a-z-]*" | sed -E 's/^[[ |]//' | sort -u)
    for o in $opts; do
        grep -q -- "$o" entry.txt || fail "the entry of $sub does not mention its option $o"
    done
done
actions=$("$CAPSTORE" db --help | grep -oE 'capstore db [a-z]+' | awk '{ print $3 }' | sort -u)
for a in $actions; do
    grep -Eq "^ +(db )?$a( |\$)" page.txt || fail "no entry for the db action $a"
done
exits=$(awk '/^\.SH "?EXIT STATUS"?$/ { on = 1; next } on && /^\.SH/ { exit } on && /^\.B [0-9]$/ { print $2 }' "$PAGE" | tr '\n' ' ')
[ "$exits" = "0 1 2 " ] || fail "EXIT STATUS lists '$exits', not 0 1 2"
grep -q "CAPSTORE_DB" page.txt || fail "the page does not name CAPSTORE_DB"
grep -q "capstore.lmdb" page.txt || fail "the page does not name ./capstore.lmdb"
[ $status -eq 0 ] && echo "man page: $(echo $subs | wc -w) subcommands, their options, db actions ($(echo $actions)), exit statuses"
exit $status
