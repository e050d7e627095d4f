#!/bin/bash
# A 3-node RabbitMQ cluster on this machine, beside the system node on 5672 (chaos tests, drills).
#
#   tools/rabbitmq-cluster.sh start          start every node that is not running, join the cluster;
#                                            prints the transport URL (idempotent; restarts a killed node)
#   tools/rabbitmq-cluster.sh stop           stop every node (kill -9 the ones that don't stop)
#   tools/rabbitmq-cluster.sh status         cluster_status of node 1
#   tools/rabbitmq-cluster.sh url [VHOST]    the transport URL listing the three nodes
#   tools/rabbitmq-cluster.sh vhost NAME     add a vhost (guest may use it), print its URL
#   tools/rabbitmq-cluster.sh drop-vhost NAME  delete a vhost and everything in it
#   tools/rabbitmq-cluster.sh queues VHOST [N]  name, type and leader of every queue (asked of node N)
#   tools/rabbitmq-cluster.sh pid N          the Erlang VM's pid of node N (kill -9 / SIGSTOP drills)
#
# Each node runs as root from /usr/lib/rabbitmq/bin (the /usr/sbin wrappers switch to the rabbitmq
# user) with its own directories under $RMQ_CLUSTER_DIR and a private HOME holding the shared Erlang
# cookie. Node N is rmqN@localhost on 127.0.0.1:$((RMQ_CLUSTER_PORT + N)) (5701..5703), Erlang
# distribution on 2570N. Nodes start in parallel (15-20 s each on 2 cores). rabbitmq-server is
# installed when missing, as tools/ensure-rabbitmq.sh does (it also starts the system node).
#
# Environment: RMQ_CLUSTER_DIR (/var/tmp/ha-guest-rmq-cluster), RMQ_CLUSTER_PORT (5700),
#              RMQ_CLUSTER_WAIT_S (seconds to wait for a node, 90),
#              RMQ_CLUSTER_NET_TICKTIME (Erlang's net_ticktime of the nodes, 60 as RabbitMQ's default:
#              how long the others take to declare a hung node down; change it with every node stopped).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
base=${RMQ_CLUSTER_DIR:-/var/tmp/ha-guest-rmq-cluster}
port0=${RMQ_CLUSTER_PORT:-5700}
wait_s=${RMQ_CLUSTER_WAIT_S:-90}
net_ticktime=${RMQ_CLUSTER_NET_TICKTIME:-60}
bin=/usr/lib/rabbitmq/bin
nodes=(1 2 3)

fail() {
    echo "error: $*" >&2
    exit 1
}

port_of() { echo $((port0 + $1)); }
name_of() { echo "rmq$1@localhost"; }

port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" >/dev/null 2>&1
}

ctl() {
    # rabbitmqctl of node $1 with the cluster's cookie; the rest are its arguments.
    local n=$1
    shift
    HOME=$base/home timeout 60 "$bin/rabbitmqctl" -n "$(name_of "$n")" "$@"
}

node_env() {
    local n=$1 d=$base/n$1
    echo HOME="$base/home" RABBITMQ_NODENAME="$(name_of "$n")" RABBITMQ_NODE_PORT="$(port_of "$n")" \
        RABBITMQ_DIST_PORT=$((20000 + $(port_of "$n"))) RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" RABBITMQ_MNESIA_BASE="$d/mnesia" \
        RABBITMQ_LOG_BASE="$d/log" RABBITMQ_PID_FILE="$d/pid" RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
}

prepare() {
    [ "$(id -u)" -eq 0 ] || fail "the cluster's nodes run as root (see the recipe in this script)"
    if [ ! -x "$bin/rabbitmq-server" ]; then
        "$here/ensure-rabbitmq.sh"  # installs rabbitmq-server (and starts the system node)
        [ -x "$bin/rabbitmq-server" ] || fail "$bin/rabbitmq-server missing after installing rabbitmq-server"
    fi
    mkdir -p "$base/home"
    if [ ! -s "$base/home/.erlang.cookie" ]; then
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$base/home/.erlang.cookie"
    fi
    chmod 400 "$base/home/.erlang.cookie"
    local n d
    for n in "${nodes[@]}"; do
        d=$base/n$n
        mkdir -p "$d/mnesia" "$d/log"
        # No management plugin: its port would clash with the system node's.
        echo '[].' >"$d/enabled_plugins"
        cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$(port_of "$n")
loopback_users = none
cluster_partition_handling = pause_minority
EOF
        echo "[{kernel, [{net_ticktime, $net_ticktime}]}]." >"$d/advanced.config"
    done
}

start_node() {
    # Start node $1 in the background (no-op when its port answers).
    local n=$1
    port_open "$(port_of "$n")" && return 0
    # Erlang's scheduler flags keep three idle nodes from spinning two small cores.
    env $(node_env "$n") \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none" \
        setsid "$bin/rabbitmq-server" >>"$base/n$n/log/console.log" 2>&1 </dev/null &
}

wait_node() {
    local n=$1 deadline=$((SECONDS + wait_s))
    until port_open "$(port_of "$n")"; do
        [ "$SECONDS" -lt "$deadline" ] ||
            fail "node $(name_of "$n") did not answer on $(port_of "$n") within ${wait_s}s; logs in $base/n$n/log"
        sleep 0.5
    done
}

joined() {
    # True when node $1 is a running member of node 1's cluster.
    ctl 1 cluster_status --formatter json 2>/dev/null | grep -q "\"running_nodes\":\[[^]]*\"$(name_of "$1")\""
}

running_count() {
    # How many running nodes node $1 sees (itself included).
    ctl "$1" cluster_status --formatter json 2>/dev/null |
        python3 -c 'import json, sys; print(len(json.load(sys.stdin).get("running_nodes") or []))' 2>/dev/null || echo 0
}

heal() {
    # A node that was stopped (SIGSTOP) longer than net_ticktime comes back partitioned, alone in its
    # own view: restart its app so it rejoins the others (never reset: it keeps its data).
    local n others=0
    for n in "${nodes[@]}"; do
        [ "$(running_count "$n")" -ge 2 ] && others=1
    done
    [ "$others" -eq 1 ] || return 0  # a fresh cluster: nothing to heal, join() builds it
    for n in "${nodes[@]}"; do
        if [ "$(running_count "$n")" -lt 2 ] && [ -s "$base/n$n/joined" ]; then
            echo "node $(name_of "$n") is partitioned from the others: restarting its app" >&2
            ctl "$n" stop_app >/dev/null 2>&1 || true
            ctl "$n" start_app >/dev/null 2>&1 || fail "node $(name_of "$n") could not start again"
        fi
    done
}

join() {
    local n=$1
    joined "$n" && return 0
    local log=$base/n$n/log/join.log
    {
        ctl "$n" stop_app && ctl "$n" reset && ctl "$n" join_cluster "$(name_of 1)" && ctl "$n" start_app
    } >>"$log" 2>&1 || fail "node $(name_of "$n") could not join $(name_of 1); see $log"
    date >"$base/n$n/joined"
}

url() {
    local vhost=${1:-} hosts="" n
    for n in "${nodes[@]}"; do
        hosts+="${hosts:+,}guest:guest@127.0.0.1:$(port_of "$n")"
    done
    echo "rabbit://$hosts/$vhost"
}

start() {
    prepare
    local n
    for n in "${nodes[@]}"; do
        start_node "$n"
    done
    for n in "${nodes[@]}"; do
        wait_node "$n"
    done
    for n in "${nodes[@]}"; do
        ctl "$n" await_startup >/dev/null
    done
    heal
    local pids=()
    for n in 2 3; do
        join "$n" &
        pids+=($!)
    done
    for n in "${pids[@]}"; do
        wait "$n" || fail "a node failed to join the cluster; logs in $base/n*/log"
    done
    for n in 2 3; do
        joined "$n" || fail "node $(name_of "$n") is not a running member of the cluster"
    done
    date >"$base/n1/joined"
    echo "RabbitMQ cluster of 3 nodes answers: $(url)" >&2
    url
}

stop() {
    [ -d "$base" ] || return 0
    local n pid
    for n in "${nodes[@]}"; do
        ctl "$n" stop >/dev/null 2>&1 &
    done
    wait || true
    for n in "${nodes[@]}"; do
        pid=$(node_pid "$n")
        if [ -n "$pid" ]; then
            kill -CONT "$pid" 2>/dev/null || true  # a SIGSTOPped node can't stop itself
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
}

node_pid() {
    # The beam.smp of node $1: the pid file, else the process holding its AMQP port.
    local n=$1 pid=""
    [ -s "$base/n$n/pid" ] && pid=$(cat "$base/n$n/pid")
    if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
        echo "$pid"
        return 0
    fi
    ss -ltnpH "sport = :$(port_of "$n")" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) ctl 1 cluster_status ;;
    url) url "${2:-}" ;;
    vhost)
        [ -n "${2:-}" ] || fail "usage: $0 vhost NAME"
        ctl 1 add_vhost "$2" >/dev/null 2>&1 || true  # exists already: fine
        ctl 1 set_permissions -p "$2" guest '.*' '.*' '.*' >/dev/null
        for n in "${nodes[@]}"; do  # every node knows it (and guest's rights) before anyone connects
            deadline=$((SECONDS + 30))
            until ctl "$n" list_permissions -p "$2" -q 2>/dev/null | grep -q '^guest'; do
                [ "$SECONDS" -lt "$deadline" ] || fail "vhost $2 did not reach node $(name_of "$n")"
                sleep 0.2
            done
        done
        url "$2"
        ;;
    drop-vhost)
        [ -n "${2:-}" ] || fail "usage: $0 drop-vhost NAME"
        ctl 1 delete_vhost "$2" >/dev/null 2>&1 || true
        ;;
    queues)
        # name, type and leader node of every queue of a vhost, asked of node ${3:-1}
        ctl "${3:-1}" list_queues -p "${2:?usage: $0 queues VHOST [N]}" -q name type leader
        ;;
    pid) node_pid "${2:?usage: $0 pid N}" ;;
    *) fail "usage: $0 start|stop|status|url [VHOST]|vhost NAME|drop-vhost NAME|queues VHOST [N]|pid N" ;;
esac
