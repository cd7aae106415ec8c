# SPDX-License-Identifier: MIT OR Apache-2.0
# bash completion for capstore: subcommands, the db actions, each
# subcommand's options, workload names after --only, files elsewhere. The
# subcommands, actions and options are read from the command's own --help
# output, so they always match the capstore being completed.

# The usage lines of `capstore $2 --help` ($1: the command as typed).
_capstore_usage()
{
    "$1" "$2" --help 2>/dev/null | awk 'NR == 1 || /^ +capstore / { print; next } { exit }'
}

# Options in usage lines (stdin); with "values", only those taking a value.
_capstore_options()
{
    grep -oE "(^|[[ |])--?[a-z][a-z-]*( [^]| -][^] |]*)?" |
        sed -E 's/^[[ |]//' |
        awk -v values="${1:-}" '{ if (values != "values" || NF > 1) print $1 }' | sort -u
}

_capstore()
{
    local cmd=${COMP_WORDS[0]} cur=${COMP_WORDS[COMP_CWORD]} prev=
    [ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}
    local subs
    subs=$("$cmd" --help 2>/dev/null | awk '/^subcommands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }')
    [ -n "$subs" ] || subs="demo hash decode encode inspect dot db vectors bench"
    COMPREPLY=()
    if [ "$COMP_CWORD" -eq 1 ]; then
        mapfile -t COMPREPLY < <(compgen -W "$subs help --help --version" -- "$cur")
        return
    fi
    local sub=${COMP_WORDS[1]}
    if [ "$sub" = help ]; then
        [ "$COMP_CWORD" -eq 2 ] && mapfile -t COMPREPLY < <(compgen -W "$subs" -- "$cur")
        return
    fi
    local usage
    usage=$(_capstore_usage "$cmd" "$sub")
    [ -n "$usage" ] || return

    # The value of an option.
    if [[ $prev == -* ]] && grep -qxF -- "$prev" < <(_capstore_options values <<<"$usage"); then
        case $prev in
        --only)
            # A comma-separated list: complete its last name.
            local workloads before=
            workloads=$("$cmd" bench --help 2>/dev/null | sed -n 's/^Workloads://p')
            [[ $cur == *,* ]] && before=${cur%,*},
            mapfile -t COMPREPLY < <(compgen -P "$before" -W "$workloads" -- "${cur##*,}")
            compopt -o nospace 2>/dev/null
            ;;
        --n | --reps) ;;
        *) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
        esac
        return
    fi
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_capstore_options <<<"$usage") --help" -- "$cur")
        return
    fi
    # db: the action first (the first word after db that is no option or value).
    if [ "$sub" = db ]; then
        local i have_action=0
        for ((i = 2; i < COMP_CWORD; i++)); do
            [[ ${COMP_WORDS[i]} == -* ]] && continue
            [[ ${COMP_WORDS[i - 1]} == --db ]] && continue
            have_action=1
        done
        if [ "$have_action" = 0 ]; then
            local actions
            actions=$(grep -oE 'capstore db (\[[^]]*\] )*[a-z]+' <<<"$usage" | awk '{ print $NF }' | sort -u)
            mapfile -t COMPREPLY < <(compgen -W "$actions" -- "$cur")
            return
        fi
    fi
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
}

complete -o filenames -F _capstore capstore
