#!/usr/bin/env bash
# A throwaway Debian rabbitmq-server on 127.0.0.1 for benchmark comparisons.
#   scripts/bench-rabbitmq.sh up PORT     start it (installs the package with apt-get if missing), print its URL
#   scripts/bench-rabbitmq.sh down PORT   stop it
# Its node name, data and logs are its own (under ${TMPDIR:-/tmp}), so it never touches a system RabbitMQ.
set -u
action=${1:-}
port=${2:-5673}
[[ "$action" == up || "$action" == down ]] && [[ "$port" =~ ^[0-9]+$ ]] || { echo "usage: $0 up|down PORT" >&2; exit 2; }

state_dir=${TMPDIR:-/tmp}/warren-bench-rabbitmq-$port
node_name=wbench$port@localhost
export RABBITMQ_NODENAME=$node_name \
  RABBITMQ_CONFIG_FILE=$state_dir/rabbitmq.conf \
  RABBITMQ_MNESIA_BASE=$state_dir/mnesia \
  RABBITMQ_LOG_BASE=$state_dir/log \
  RABBITMQ_ENABLED_PLUGINS_FILE=$state_dir/enabled_plugins \
  RABBITMQ_DIST_PORT=$((port + 20000))
url=amqp://guest:guest@127.0.0.1:$port
# Startup on a busy 2-core machine takes 5-20 s; a minute means it is not coming.
start_deadline_tenths=600

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if [[ "$action" == down ]]; then
  rabbitmqctl -n "$node_name" stop >/dev/null 2>&1 || true
  exit 0
fi

if listening; then echo "$url"; exit 0; fi
if ! command -v rabbitmq-server >/dev/null; then
  echo "installing rabbitmq-server (Debian package)..." >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null; } \
    || { echo "cannot install rabbitmq-server; install it and rerun" >&2; exit 1; }
  # The package starts a system instance on 5672; this script runs its own, so leave that one alone.
fi
mkdir -p "$state_dir/mnesia" "$state_dir/log"
printf 'listeners.tcp.default = 127.0.0.1:%s\n' "$port" > "$state_dir/rabbitmq.conf"
: > "$state_dir/enabled_plugins"
chown -R rabbitmq:rabbitmq "$state_dir" 2>/dev/null || true
setsid rabbitmq-server > "$state_dir/server.out" 2>&1 < /dev/null &
for ((tenth = 0; tenth < start_deadline_tenths; tenth++)); do
  if listening; then echo "$url"; exit 0; fi
  sleep 0.1
done
echo "rabbitmq-server did not listen on $port within $((start_deadline_tenths / 10)) s; see $state_dir/server.out" >&2
exit 1
