#!/usr/bin/env bash
# A throwaway 3-node RabbitMQ cluster on this machine (Debian's rabbitmq-server), the reference
# for warren's cluster benchmarks (docs/benchmarks.md, "Cluster: quorum queues").
#
#   scripts/rabbitmq-cluster.sh [start]        start 3 nodes, join 2 and 3 to 1, print the AMQP URLs
#   scripts/rabbitmq-cluster.sh stop           stop the three nodes
#   scripts/rabbitmq-cluster.sh status         rabbitmqctl cluster_status, asked of node 1
#   scripts/rabbitmq-cluster.sh urls           the AMQP URLs, comma-separated (for bench --compare)
#   scripts/rabbitmq-cluster.sh ctl N ARGS...  rabbitmqctl ARGS against node N (1..3), with the cluster's cookie
#   scripts/rabbitmq-cluster.sh pid N          the beam.smp pid of node N (for a kill -9)
#   scripts/rabbitmq-cluster.sh restart N      start node N again on its data (after a kill), as a member
#
# Node i is rbench<i>@localhost on AMQP port BASE+i-1 (BASE = $RABBIT_CLUSTER_PORT, default 5781,
# away from warren's cluster ports 5672.. and 25672..), Erlang distribution port AMQP+30000.
# Each node has its own config, data and logs under ${TMPDIR:-/tmp}/warren-rabbitmq-cluster-BASE/;
# all three and rabbitmqctl share an Erlang cookie generated there, so nothing touches a system
# RabbitMQ or its cookie. Installs rabbitmq-server with apt-get if it is missing.
set -u
action=${1:-start}
base_port=${RABBIT_CLUSTER_PORT:-5781}
[[ "$base_port" =~ ^[0-9]+$ ]] || { echo "RABBIT_CLUSTER_PORT must be a port number, got '$base_port'" >&2; exit 2; }
node_count=3
state_dir=${TMPDIR:-/tmp}/warren-rabbitmq-cluster-$base_port
cookie_file=$state_dir/erlang.cookie
# The distribution port sits this far above the AMQP port; rabbitmqctl's own range is 10000 above that.
dist_port_offset=30000
# Startup on a busy 2-core machine takes 5-20 s per node; a minute means it is not coming.
start_deadline_tenths=600

amqp_port() { echo $((base_port + $1 - 1)); }
node_name() { echo "rbench$1@localhost"; }
node_dir() { echo "$state_dir/n$1"; }
url_of() { echo "amqp://guest:guest@127.0.0.1:$(amqp_port "$1")"; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The environment that makes rabbitmq-server and rabbitmqctl talk about node $1 and nothing else.
# Debian's wrapper runs both as the rabbitmq user through su, which keeps RABBITMQ_* variables.
node_env() {
  local i=$1 dir
  dir=$(node_dir "$i")
  export RABBITMQ_NODENAME=$(node_name "$i") \
    RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf \
    RABBITMQ_MNESIA_BASE=$dir/mnesia \
    RABBITMQ_LOG_BASE=$dir/log \
    RABBITMQ_PID_FILE=$dir/beam.pid \
    RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins \
    RABBITMQ_DIST_PORT=$(($(amqp_port "$i") + dist_port_offset)) \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-setcookie $(cat "$cookie_file")"
}

ctl() {
  local i=$1
  shift
  (node_env "$i" && rabbitmqctl --erlang-cookie "$(cat "$cookie_file")" -n "$(node_name "$i")" "$@")
}

beam_pid() {
  local file
  file=$(node_dir "$1")/beam.pid
  [[ -s "$file" ]] && kill -0 "$(cat "$file")" 2>/dev/null && echo "$(cat "$file")"
}

urls() {
  local i list=()
  for ((i = 1; i <= node_count; i++)); do list+=("$(url_of "$i")"); done
  (IFS=,; echo "${list[*]}")
}

# start_node N fresh|keep: fresh wipes the node's data first; keep restarts it as the member it was.
start_node() {
  local i=$1 how=$2 dir port
  dir=$(node_dir "$i")
  port=$(amqp_port "$i")
  if listening "$port"; then
    echo "port $port already answers: stop whatever listens there (or set RABBIT_CLUSTER_PORT)" >&2
    return 1
  fi
  if [[ "$how" == fresh ]]; then
    rm -rf "$dir"
    mkdir -p "$dir/mnesia" "$dir/log"
    printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n' "$port" > "$dir/rabbitmq.conf"
    : > "$dir/enabled_plugins"
    chown -R rabbitmq:rabbitmq "$dir" 2>/dev/null || true
  fi
  rm -f "$dir/beam.pid"
  (node_env "$i"; setsid rabbitmq-server > "$dir/server.out" 2>&1 < /dev/null &)
  for ((tenth = 0; tenth < start_deadline_tenths; tenth++)); do
    if listening "$port"; then return 0; fi
    sleep 0.1
  done
  echo "$(node_name "$i") did not listen on $port within $((start_deadline_tenths / 10)) s; see $dir/server.out and $dir/log" >&2
  return 1
}

stop_all() {
  local i pid
  for ((i = node_count; i >= 1; i--)); do
    [[ -f "$cookie_file" ]] || break
    pid=$(beam_pid "$i") || continue
    ctl "$i" stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null
    echo "$(node_name "$i"): stopped (pid $pid)"
  done
}

case "$action" in
  start)
    if ! command -v rabbitmq-server >/dev/null; then
      echo "installing rabbitmq-server (Debian package)..." >&2
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null; } \
        || { echo "cannot install rabbitmq-server; install it and rerun" >&2; exit 1; }
      # The package starts a system instance on 5672; this script runs its own, so leave that one alone.
    fi
    mkdir -p "$state_dir"
    if [[ -f "$cookie_file" ]] && beam_pid 1 >/dev/null; then
      echo "a cluster from $state_dir is still running: $0 stop first" >&2
      exit 1
    fi
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F > "$cookie_file"
    chmod 0400 "$cookie_file"
    chown rabbitmq:rabbitmq "$state_dir" "$cookie_file" 2>/dev/null || true
    for ((i = 1; i <= node_count; i++)); do
      start_node "$i" fresh || { stop_all >/dev/null; exit 1; }
    done
    ctl 1 await_startup >/dev/null
    for ((i = 2; i <= node_count; i++)); do
      # join_cluster needs the joining node's app stopped; start_app brings it back as a member.
      { ctl "$i" await_startup && ctl "$i" stop_app && ctl "$i" join_cluster "$(node_name 1)" && ctl "$i" start_app; } >/dev/null \
        || { echo "$(node_name "$i") could not join $(node_name 1); see $(node_dir "$i")/log" >&2; stop_all >/dev/null; exit 1; }
    done
    running=$(ctl 1 cluster_status --formatter json | grep -o '"running_nodes":\[[^]]*\]' | grep -o 'rbench[0-9]*@localhost' | sort -u | wc -l)
    if [[ "$running" -ne "$node_count" ]]; then
      echo "cluster_status shows $running running nodes, expected $node_count" >&2
      ctl 1 cluster_status >&2
      stop_all >/dev/null
      exit 1
    fi
    for ((i = 1; i <= node_count; i++)); do
      echo "$(node_name "$i") pid $(beam_pid "$i") $(url_of "$i")"
    done
    echo "urls: $(urls)" ;;
  stop) stop_all ;;
  status) ctl 1 cluster_status ;;
  urls) urls ;;
  ctl)
    [[ "${2:-}" =~ ^[1-3]$ ]] || { echo "usage: $0 ctl N ARGS... (N 1..$node_count)" >&2; exit 2; }
    i=$2
    shift 2
    ctl "$i" "$@" ;;
  restart)
    [[ "${2:-}" =~ ^[1-3]$ ]] || { echo "usage: $0 restart N (N 1..$node_count)" >&2; exit 2; }
    if beam_pid "$2" >/dev/null; then echo "$(node_name "$2") is running (pid $(beam_pid "$2"))"; exit 0; fi
    start_node "$2" keep && ctl "$2" await_startup >/dev/null || exit 1
    echo "$(node_name "$2") pid $(beam_pid "$2") $(url_of "$2")" ;;
  pid)
    [[ "${2:-}" =~ ^[1-3]$ ]] || { echo "usage: $0 pid N (N 1..$node_count)" >&2; exit 2; }
    beam_pid "$2" || { echo "$(node_name "$2") is not running" >&2; exit 1; } ;;
  *) echo "usage: $0 start|stop|status|urls|ctl N ARGS...|pid N|restart N" >&2; exit 2 ;;
esac
