#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Redis servers for the tests, on free loopback ports (127.0.0.1 only).
#
#   redis-cluster.sh start DIR [OWNER_PID]
#                                   six redis-server processes, a cluster of
#                                   three masters and three replicas
#                                   (append-only files on, node timeout 3 s: shorter
#                                   ones fail nodes that a loaded machine delays),
#                                   made with redis-cli --cluster create;
#                                   returns once every slot is served and
#                                   every master has its replica
#   redis-cluster.sh single DIR [OWNER_PID]
#                                   one redis-server without cluster mode
# With OWNER_PID, a watchdog stops the servers once that process is gone
# (a test that crashes leaves no server behind).
#   redis-cluster.sh stop DIR       end exactly the processes started in DIR
#                                   (by the pids recorded there)
#   redis-cluster.sh kill DIR PORT [SIG]   send SIG (default KILL) to that node
#   redis-cluster.sh revive DIR PORT       start that node again, same config
#   redis-cluster.sh wait DIR       until every slot is served again
#
# DIR/ports lists the ports, one a line (which are masters: ask the nodes);
# DIR/PORT.pid the pid, DIR/PORT.log the server's log.
set -euo pipefail
# RC_DEBUG=1: how long each step took, on stderr.
T0=$(date +%s%N)
t() { [ -z "${RC_DEBUG:-}" ] || echo "redis-cluster.sh: $(( ($(date +%s%N) - T0) / 1000000 )) ms: $*" >&2; }

die() { echo "redis-cluster.sh: $*" >&2; exit 1; }

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: redis-cluster.sh start|single|stop|kill|revive|wait DIR [PORT] [SIG]"
command -v redis-server >/dev/null || die "redis-server is not installed"

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port p with p and p + 10000 (the cluster bus) free, both below the
# usual ephemeral range (32768-60999), where an outgoing connection could
# take one between this check and the bind.
pick_port() {
    local p tries=0
    while :; do
        p=$(( 10000 + (RANDOM * 32768 + RANDOM) % 12000 ))
        if ! port_in_use "$p" && ! port_in_use $((p + 10000)) && ! grep -qx "$p" "$dir/ports" 2>/dev/null; then
            echo "$p"
            return
        fi
        tries=$((tries + 1))
        [ $tries -lt 200 ] || die "no free port found"
    done
}

# Alive: running and not a zombie (the servers outlive this script, and
# whoever reaps them may take its time).
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

cli() { local p=$1; shift; redis-cli -h 127.0.0.1 -p "$p" "$@"; }

spawn() { # PORT: start the node as recorded in DIR/PORT.args
    local p=$1
    # shellcheck disable=SC2046
    redis-server $(cat "$dir/$p.args") </dev/null >>"$dir/$p.log" 2>&1 &
    echo $! >"$dir/$p.pid"
}

answers() { # PORT: wait until it answers PING
    local p=$1 i
    for i in $(seq 1 100); do
        if [ "$(cli "$p" ping 2>/dev/null)" = "PONG" ]; then return 0; fi
        alive "$(cat "$dir/$p.pid")" || break
        sleep 0.05
    done
    tail -n 20 "$dir/$p.log" >&2
    return 1
}

start_node() { # PORT CLUSTER(yes|no)
    local p=$1 cluster=$2
    mkdir -p "$dir/$p"
    local args="--port $p --bind 127.0.0.1 --dir $dir/$p --appendonly yes --protected-mode yes --daemonize no"
    if [ "$cluster" = yes ]; then
        args="$args --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 3000"
        # Replicas that lost their master serve no reads: the tests want the
        # failover, not stale answers.
        args="$args --cluster-replica-validity-factor 0"
        # A replica syncs at once (the default waits 5 s for more replicas).
        args="$args --repl-diskless-sync-delay 0"
        # ... and reports an offset (what CLUSTER SLOTS waits for) soon.
        args="$args --repl-ping-replica-period 1"
    fi
    echo "$args" >"$dir/$p.args"
    spawn "$p"
}

all_slots_served() { # every node agrees the cluster is ok and covers 16384 slots
    local p info
    for p in $(cat "$dir/ports"); do
        [ -f "$dir/$p.pid" ] && alive "$(cat "$dir/$p.pid")" || continue
        info=$(cli "$p" cluster info 2>/dev/null) || return 1
        grep -q '^cluster_state:ok' <<<"$info" || return 1
        grep -q '^cluster_slots_ok:16384' <<<"$info" || return 1
    done
    return 0
}

wait_served() {
    local i
    for i in $(seq 1 600); do
        all_slots_served && return 0
        sleep 0.1
    done
    die "the cluster in $dir does not serve every slot"
}

masters_have_replicas() {
    local p n=0 role nodes
    for p in $(cat "$dir/ports"); do
        # Every node's CLUSTER SLOTS lists all six nodes: clients learn the
        # replicas there, and a replica is left out until it has reported
        # a replication offset (gossip lags behind the replication itself).
        nodes=$(cli "$p" cluster slots 2>/dev/null) || return 1
        [ "$(grep -cE '^[0-9a-f]{40}$' <<<"$nodes")" -eq 6 ] || return 1
        role=$(cli "$p" info replication 2>/dev/null) || return 1
        if grep -q '^role:master' <<<"$role"; then
            grep -q '^connected_slaves:[1-9]' <<<"$role" || return 1
            # ... and the replica has caught up (state=online).
            grep -q 'state=online' <<<"$role" || return 1
            n=$((n + 1))
        fi
    done
    [ $n -ge 3 ]
}

watchdog() { # OWNER_PID: stop DIR's servers when the owner is gone
    local owner=$1 self=$0
    (
        trap '' HUP
        while alive "$owner"; do sleep 1; done
        bash "$self" stop "$dir"
    ) </dev/null >/dev/null 2>&1 &
    echo $! >"$dir/watchdog.pid"
}

case $cmd in
start)
    mkdir -p "$dir"
    : >"$dir/ports"
    for i in 1 2 3 4 5 6; do
        p=$(pick_port)
        echo "$p" >>"$dir/ports"
        start_node "$p" yes
    done
    t spawned
    # A port taken meanwhile (another program's): that node on another port.
    for p in $(cat "$dir/ports"); do
        q=$p
        for try in 1 2 3; do
            answers "$q" 2>/dev/null && break
            rm -rf "${dir:?}/$q" "$dir/$q.args" "$dir/$q.pid"
            q=$(pick_port)
            sed -i "s/^$p\$/$q/" "$dir/ports"
            p=$q
            start_node "$q" yes
        done
        answers "$q" || die "node $q did not start"
    done
    t answering
    addrs=$(sed 's/^/127.0.0.1:/' "$dir/ports" | tr '\n' ' ')
    # shellcheck disable=SC2086
    redis-cli --cluster create $addrs --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 ||
        { cat "$dir/create.log" >&2; die "redis-cli --cluster create failed"; }
    t created
    wait_served
    t served
    for i in $(seq 1 300); do
        masters_have_replicas && break
        sleep 0.1
    done
    masters_have_replicas || die "the masters in $dir have no synced replicas"
    [ -z "${3:-}" ] || watchdog "$3"
    ;;
single)
    mkdir -p "$dir"
    : >"$dir/ports"
    p=$(pick_port)
    echo "$p" >"$dir/ports"
    start_node "$p" no
    answers "$p" || die "the server did not start"
    [ -z "${3:-}" ] || watchdog "$3"
    ;;
stop)
    [ -d "$dir" ] || exit 0
    pids=""
    for f in "$dir"/*.pid; do
        [ -e "$f" ] && [ "$f" != "$dir/watchdog.pid" ] || continue
        pid=$(cat "$f")
        p=$(basename "$f" .pid)
        # Only a process that is still the redis-server started here (a pid
        # may have been reused since).
        if grep -qa "redis-server" "/proc/$pid/cmdline" 2>/dev/null &&
            grep -qa -- "$p" "/proc/$pid/cmdline" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            pids="$pids $pid"
        fi
        rm -f "$f"
    done
    for i in $(seq 1 50); do
        alive=""
        for pid in $pids; do alive "$pid" && alive="$alive $pid"; done
        pids=$alive
        [ -n "$pids" ] || break
        sleep 0.05
    done
    for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    # The watchdog (a subshell of this script), unless it is what runs us.
    if [ -f "$dir/watchdog.pid" ]; then
        w=$(cat "$dir/watchdog.pid")
        rm -f "$dir/watchdog.pid"
        [ "$w" = "$PPID" ] || kill -TERM "$w" 2>/dev/null || true
    fi
    ;;
kill)
    p=${3:?port}
    sig=${4:-KILL}
    pid=$(cat "$dir/$p.pid")
    grep -qa "redis-server" "/proc/$pid/cmdline" 2>/dev/null || die "node $p is not running"
    kill "-$sig" "$pid"
    if [ "$sig" = KILL ] || [ "$sig" = TERM ]; then
        for i in $(seq 1 100); do alive "$pid" || break; sleep 0.05; done
        rm -f "$dir/$p.pid"
    fi
    ;;
revive)
    p=${3:?port}
    spawn "$p"
    answers "$p" || die "node $p did not start again"
    ;;
wait)
    wait_served
    ;;
*)
    die "unknown command '$cmd'"
    ;;
esac
